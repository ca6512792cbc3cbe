"""The paper's studies (ffneuro.studies) and ``ffneuro study list|show|run|table``."""
from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from ffneuro.cli.main import main

from ffneuro.data import split_sizes, train_images
from ffneuro.errors import ConfigError
from ffneuro.presets import PRESETS, resolve_config
from ffneuro.store import read_run
from ffneuro.studies import BUDGETS, STUDIES, Budget, PaperValue, Study, run_stem
from ffneuro.train.runfile import check_trainable


def invoke(*args):
    return CliRunner().invoke(main, ["-q", *args])


# ------------------------------------------------------------------------------------------- the studies


@pytest.mark.parametrize("name", STUDIES.names())
def test_every_study_resolves_at_every_budget(name):
    study = STUDIES.get(name)
    assert study.budgets()
    for budget in study.budgets():
        points = study.points(budget)
        stems = [stem for stem, _ in points]
        assert len(set(stems)) == len(stems), stems          # one file per point
        for _, config in points:
            check_trainable(config)                           # e.g. BP points read out linearly
        keys = study.group_keys(budget)
        # every arm/grid combination is one group of len(seeds) runs
        groups = {tuple(config.to_dict()[k] for k in keys) for _, config in points}
        assert len(points) == len(groups) * len(study.seeds)


def test_studies_share_the_base_point():
    """The budget's base config has the same file in every study that contains it, so it is trained once."""
    readout = {stem for stem, _ in STUDIES.get("readout").points("cpu")}
    assert readout == {"seed=0", "seed=1", "seed=2"}
    for name in ("labelset", "pooling", "strength", "hyper"):
        study = STUDIES.get(name)
        assert {f"seed={s}" for s in study.seeds} <= {stem for stem, _ in study.points("cpu")}, name
    width = dict(STUDIES.get("width").points("cpu"))
    assert "seed=0" in width and width["seed=0"].algo == "ff"
    assert "algo=bp_filters=8_lr=0.001_readout=linear_seed=0" in width


def test_mnist_studies_run_at_every_mnist_budget():
    for name in ("readout", "labelset", "pooling", "hyper", "strength", "width"):
        assert set(STUDIES.get(name).budgets()) == {"paper", "cpu", "smoke"}, name
    assert set(STUDIES.get("shortcut").budgets()) == {"cifar10-paper", "cifar10-cpu"}
    assert {c.dataset for _, c in STUDIES.get("shortcut").points("cifar10-cpu")} == {"cifar10"}


def test_cpu_budget_is_the_stated_one():
    base = BUDGETS.get("cpu").base()
    assert (base.preset, base.train_limit, base.val_size, base.epochs, base.eval_every) == ("mnist-small", 15000, 5000, 2, 2)
    assert base.label_strength == 0.35     # pinned: the measured study runs used the paper's K
    assert BUDGETS.get("paper").base().epochs == 200


def test_presets_and_studies_keep_the_split_of_the_old_fixed_default():
    """val_size used to default to 10000 (smoke: 200) and a train limit was silently capped; the automatic
    split must give every preset and every study point the same training and validation images as then."""
    def old_split(n, config):
        val = config.val_size if config.val_size is not None else 200 if config.preset == "smoke" else 10000
        return (n - val if config.train_limit is None else min(config.train_limit, n - val)), val

    configs = [resolve_config(name, {}) for name in PRESETS.names()]
    configs += [config for name in STUDIES.names() for budget in STUDIES.get(name).budgets()
                for _, config in STUDIES.get(name).points(budget)]
    for config in configs:
        n = train_images(config.dataset)
        assert split_sizes(n, config.val_size, config.train_limit) == old_split(n, config), config


def test_run_stem_names_what_differs_from_base():
    base = {"filters": 32, "label_strength": 0.35, "seed": 0, "preset": "x"}
    assert run_stem({**base, "seed": 3}, base) == "seed=3"
    assert run_stem({**base, "label_strength": 0.1, "filters": 8}, base) == "filters=8_label-strength=0.1_seed=0"
    assert run_stem({**base, "preset": "other"}, base) == "seed=0"    # the preset name is not a value


def test_study_and_budget_validation():
    with pytest.raises(ConfigError, match="unknown config keys fliters"):
        Study("x", "t", "q", grids={"cpu": {"fliters": (1, 2)}})
    with pytest.raises(ConfigError, match="repeats"):
        Study("x", "t", "q", grids={"cpu": {"filters": (8, 8)}})
    with pytest.raises(ConfigError, match="empty"):
        Study("x", "t", "q", grids={"cpu": {"filters": ()}})
    with pytest.raises(ConfigError, match="at least one"):
        Study("x", "t", "q", grids={"cpu": {}}, seeds=())
    with pytest.raises(ConfigError, match="unknown config keys"):
        Study("x", "t", "q", grids={"cpu": {}}, arms=({"algorithm": "bp"},))
    with pytest.raises(ConfigError, match="unknown config keys"):
        Budget("b", "smoke", {"epoch": 1}, "note")
    with pytest.raises(ConfigError, match="no grid for budget 'paper'"):
        Study("x", "t", "q", grids={"cpu": {}}).points("paper")


def test_paper_values_match_the_compared_keys_only():
    from ffneuro.cli.study import paper_values

    s = Study("x", "t", "q", grids={"cpu": {"filters": (8, 128)}},
              paper=(PaperValue({"filters": 128, "epochs": 200}, "goodness", "test", 0.99, 0.01, "src"),))
    assert paper_values(s, [{"filters": 8}, {"filters": 128}]) == [None, "0.9900 ± 0.0100 (goodness, test)"]
    assert paper_values(s, [{}]) == ["0.9900 ± 0.0100 (goodness, test)"]   # a one-group table


# ------------------------------------------------------------------------------------------------- CLI


def test_list_and_show():
    result = invoke("study", "list")
    assert result.exit_code == 0, result.output
    for name in STUDIES.names():
        assert name in result.output
    result = invoke("study", "show", "width", "--budget", "cpu")
    assert result.exit_code == 0, result.output
    assert "algo=bp, filters=8, readout=linear, lr=0.001" in result.output
    assert "0.9916" in result.output


def test_unknown_study_is_one_line_error(tmp_path):
    result = invoke("study", "run", "nope", "--out-dir", str(tmp_path))
    assert result.exit_code != 0
    assert "unknown study 'nope'; valid: cwcomp-cifar10, cwcomp-fashion-mnist" in result.output
    assert "Traceback" not in result.output


def test_run_resumes_shares_points_and_tabulates(tmp_path):
    out = tmp_path / "studies"
    result = invoke("study", "run", "labelset", "--budget", "smoke", "--seeds", "0", "--out-dir", str(out), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)["studies"]
    assert report == [{"study": "labelset", "points": 2, "trained": 2, "resumed": 0, "skipped": 0, "diverged": 0}]
    assert sorted(p.name for p in out.glob("*.h5")) == ["labels=fourier2_seed=0.h5", "seed=0.h5"]
    assert read_run(out / "labels=fourier2_seed=0.h5").config["labels"] == "fourier2"

    # readout's only point at seed 0 is the base config labelset already trained; labelset itself resumes
    result = invoke("study", "run", "readout,labelset", "--budget", "smoke", "--seeds", "0", "--out-dir", str(out), "--json")
    assert result.exit_code == 0, result.output
    assert [(r["trained"], r["skipped"]) for r in json.loads(result.output)["studies"]] == [(0, 1), (0, 2)]
    manifest = json.loads((out / "study-labelset.json").read_text())
    assert {p["status"] for p in manifest["points"]} == {"skipped"}

    result = invoke("study", "table", "labelset", str(out), "--budget", "smoke", "--format", "json")
    assert result.exit_code == 0, result.output
    table = json.loads(result.output)
    assert table["by"] == ["labels"]
    assert [g["key"]["labels"] for g in table["groups"]] == ["fourier1", "fourier2"]
    assert all(g["n"] == 1 for g in table["groups"])
    assert table["groups"][0]["extra"]["paper (its own setting)"].startswith("0.9916")
    assert table["groups"][1]["extra"]["paper (its own setting)"] is None
    assert all(re.fullmatch(r"1×\d+", g["extra"]["threads"]) for g in table["groups"])   # one process, N threads
    # the study's seeds 1 and 2 were not trained: listed, not silently dropped
    assert sorted(table["skipped"]) == ["labels=fourier2_seed=1", "labels=fourier2_seed=2", "seed=1", "seed=2"]

    result = invoke("study", "table", "labelset", str(out), "--budget", "smoke")
    assert result.exit_code == 0, result.output
    assert "missing (4)" in result.output and "fourier2" in result.output


def test_all_means_every_study_at_that_budget(tmp_path):
    from ffneuro.cli.study import _studies

    assert [s.name for s in _studies("all", "cifar10-cpu")] == ["shortcut"]
    assert "shortcut" not in [s.name for s in _studies("all", "cpu")]
    result = invoke("study", "run", "readout,shortcut", "--budget", "smoke", "--out-dir", str(tmp_path / "x"))
    assert result.exit_code != 0 and "no grid for budget 'smoke'" in result.output
    assert not (tmp_path / "x").exists()      # refused before readout trained anything


def test_table_without_runs_says_how_to_run(tmp_path):
    result = invoke("study", "table", "pooling", str(tmp_path), "--budget", "smoke")
    assert result.exit_code != 0
    assert "ffneuro study run pooling --budget smoke" in result.output


def test_plot(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "studies"
    assert invoke("study", "run", "labelset", "--budget", "smoke", "--seeds", "0", "--out-dir", str(out)).exit_code == 0
    png = tmp_path / "labelset.png"
    result = invoke("study", "plot", "labelset", str(out), "--budget", "smoke", "--out", str(png))
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = invoke("study", "plot", "readout", str(out), "--budget", "smoke", "--out", str(png))
    assert result.exit_code != 0 and "nothing to plot" in result.output


def test_published_setting_studies_run_their_own_preset_and_show_the_papers_number():
    from ffneuro.cli.study import paper_values

    s = STUDIES.get("cwcomp-mnist")
    assert s.budgets() == ["cpu20k", "published"]
    points = s.points("cpu20k")
    assert [stem for stem, _ in points] == ["cwcomp-mnist_epochs=1_seed=0", "cwcomp-mnist_epochs=2_seed=0"]
    assert all(c.preset == "cwcomp-mnist" and c.train_limit == 20000 and c.arch == "cfse" for _, c in points)
    assert [c.epochs for _, c in s.points("published")] == [20]
    shown = paper_values(s, [{"epochs": 1}, {"epochs": 2}])
    assert shown == ["0.9942 (best predictor, test)"] * 2
    assert "not read" in STUDIES.get("trifecta-mnist").paper_note and not STUDIES.get("trifecta-mnist").paper
    # studies sharing a folder keep apart by preset name
    stems = [stem for name in ("hinton-fc-mnist", "cwcomp-mnist") for stem, _ in STUDIES.get(name).points("cpu20k")]
    assert len(set(stems)) == len(stems)
