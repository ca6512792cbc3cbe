"""benchmarks/fidelity.py's tables over seeds (issue 19): the summary with the standard deviation, every seed's
reads, and the reference-against-preset comparison (Welch's t-test of the means, Brown–Forsythe of the
spreads), on a small results file written here."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from benchmark_scripts import BENCHMARKS, load_benchmark
from scipy import stats

REF_E1 = [0.70, 0.72, 0.74]
OURS_E1 = [0.60, 0.70, 0.80]


def _run(side: str, seed: int, reads: list[float], label: str = "as published") -> dict:
    return {"side": side, "label": label, "seed": seed, "train_images": 5000,
            "epochs": [{"epoch": e + 1, "test": {"goodness": acc}} for e, acc in enumerate(reads)]}


@pytest.fixture()
def fid(tmp_path, monkeypatch):
    monkeypatch.setenv("FIDELITY_RESULTS", str(tmp_path))
    runs = [_run("reference", s, [REF_E1[s], 0.80 + s / 100]) for s in range(3)]
    # the preset's seed 2 stopped after epoch 1: epoch 2 has seeds 0 and 1 only
    runs += [_run("ffneuro", s, [OURS_E1[s], 0.9][: 1 if s == 2 else 2]) for s in range(3)]
    runs.append(_run("ffneuro", 0, [0.5], label="a probe"))
    (tmp_path / "fidelity-cwcomp-mnist.json").write_text(json.dumps({"preset": "cwcomp-mnist", "runs": runs}))
    return load_benchmark("fidelity")


def test_summary_table_gives_the_standard_deviation_only_when_asked(fid):
    plain, with_sd = fid.table("cwcomp-mnist"), fid.table("cwcomp-mnist", sd=True)
    assert "| reference | as published | goodness | 72.00% (70.00–74.00) | 81.00% (80.00–82.00) | 3 |" in plain
    assert "sd" not in plain
    assert "| reference | as published | goodness | 72.00% (70.00–74.00, sd 2.00) | 81.00% (80.00–82.00, sd 1.00) | 3 |" \
        in with_sd
    # the sample standard deviation (n - 1); epoch 2 of two equal reads has sd 0
    assert "| ffneuro | as published | goodness | 70.00% (60.00–80.00, sd 10.00) | 90.00% (90.00–90.00, sd 0.00) | 3 |" \
        in with_sd
    assert "| ffneuro | a probe | goodness | 50.00% | – | 1 |" in with_sd


def test_seed_table_lists_every_seed_and_the_epochs_a_stopped_run_lacks(fid):
    rows = fid.seeds_table("cwcomp-mnist", "as published").splitlines()[2:]
    assert len(rows) == 6
    assert "| ffneuro | as published | goodness | 2 | 80.00% | – |" in rows
    assert "| reference | as published | goodness | 1 | 72.00% | 81.00% |" in rows
    assert "a probe" in fid.seeds_table("cwcomp-mnist")


def _welch_p(a: list[float], b: list[float]) -> float:
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    t = (np.mean(a) - np.mean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return 2 * stats.t.sf(abs(t), df)


def _brown_forsythe_p(a: list[float], b: list[float]) -> float:
    """One-way ANOVA on the absolute deviations from each group's median, by hand."""
    za, zb = np.abs(np.subtract(a, np.median(a))), np.abs(np.subtract(b, np.median(b)))
    grand = np.mean(np.concatenate([za, zb]))
    between = len(za) * (za.mean() - grand) ** 2 + len(zb) * (zb.mean() - grand) ** 2
    within = ((za - za.mean()) ** 2).sum() + ((zb - zb.mean()) ** 2).sum()
    n = len(za) + len(zb)
    return stats.f.sf(between / (within / (n - 2)), 1, n - 2)


def test_compare_tests_means_and_spreads_where_each_side_has_three_seeds(fid):
    rows = fid.compare("cwcomp-mnist").splitlines()
    epoch1 = next(r for r in rows if r.startswith("| goodness | 1 |"))
    cells = [c.strip() for c in epoch1.strip("|").split("|")]
    assert cells[2:5] == ["3, 72.00%, 2.00", "3, 70.00%, 10.00", "-2.00"]
    assert float(cells[5]) == pytest.approx(_welch_p(REF_E1, OURS_E1), abs=6e-4)
    assert float(cells[6]) == pytest.approx(_brown_forsythe_p(REF_E1, OURS_E1), abs=6e-4)
    # epoch 2: the preset has 2 seeds, too few for either test
    epoch2 = next(r for r in rows if r.startswith("| goodness | 2 |"))
    assert epoch2.endswith("| – | – |") and "| 2, 90.00%, 0.00 |" in epoch2


def test_compare_with_an_unknown_setting_is_one_error_line(fid, tmp_path):
    done = subprocess.run([sys.executable, str(BENCHMARKS / "fidelity.py"), "compare", "cwcomp-mnist", "--label", "nope"],
                          capture_output=True, text=True, env={"FIDELITY_RESULTS": str(tmp_path), "PATH": ""})
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == ["Error: no reference runs labelled 'nope' or no ffneuro runs "
                                                "labelled 'nope'"]


def test_a_setting_run_at_two_budgets_names_its_images_and_compare_asks_for_one(fid, tmp_path):
    """The 5k and 20k runs of one setting must not read as one row, nor be pooled in a comparison."""
    path = tmp_path / "fidelity-cwcomp-mnist.json"
    doc = json.loads(path.read_text())
    bigger = [{**_run(side, s, [0.9, 0.95]), "train_images": 20000} for side in ("reference", "ffneuro")
              for s in range(3)]
    path.write_text(json.dumps({**doc, "runs": doc["runs"] + bigger}))
    plain = fid.table("cwcomp-mnist")
    assert "| reference | as published, 20,000 images | goodness | 90.00% (90.00–90.00) | 95.00% (95.00–95.00) | 3 |" \
        in plain
    assert "| reference | as published, 5,000 images | goodness | 72.00% (70.00–74.00) |" in plain
    assert "| ffneuro | a probe | goodness | 50.00% | – | 1 |" in plain   # one budget: its label alone
    # one budget asked for: the rows read as before
    assert "| reference | as published | goodness | 72.00% (70.00–74.00) | 81.00% (80.00–82.00) | 3 |" \
        in fid.table("cwcomp-mnist", images=5000)
    assert "20,000" not in fid.table("cwcomp-mnist", images=5000)
    assert len(fid.seeds_table("cwcomp-mnist", "as published", images=20000).splitlines()) == 2 + 6
    with pytest.raises(ValueError, match="5,000 and 20,000 training images"):
        fid.compare("cwcomp-mnist")
    rows = fid.compare("cwcomp-mnist", images=20000).splitlines()
    assert next(r for r in rows if r.startswith("| goodness | 1 |")).split("|")[3].strip() == "3, 90.00%, 0.00"
