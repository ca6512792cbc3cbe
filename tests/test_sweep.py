"""``ffneuro sweep`` and ``ffneuro runs table``, and the pure helpers of ffneuro.run_groups behind them."""
from __future__ import annotations

import csv
import io
import json
import math
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from ffneuro.cli.sweep import sweep
from ffneuro.cli.table import table

from ffneuro.config import RunConfig
from ffneuro.run_groups import (
    Group,
    grid_points,
    group_runs,
    mean_sd,
    point_name,
    run_numbers,
    varying_keys,
)
from ffneuro.store import read_run
from ffneuro.train.runfile import config_diff

SMOKE = ["--preset", "smoke", "--epochs", "1", "--train-limit", "200", "--val-size", "100"]
GRID = ["--filters", "4,8", "--seeds", "0,1"]
NAMES = ["filters=4_seed=0.h5", "filters=4_seed=1.h5", "filters=8_seed=0.h5", "filters=8_seed=1.h5"]


def one_error(result, *fragments):
    """Non-zero exit through click, exactly one ``Error:`` line holding ``fragments``, no traceback."""
    assert result.exit_code != 0, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    text = result.output  # click >= 8.2: stdout and stderr together
    errors = [line for line in text.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, text
    assert "Traceback" not in text
    for f in fragments:
        assert f in errors[0], errors[0]


# ------------------------------------------------------------------------------------------- pure helpers


def test_grid_points_product_order_and_seeds():
    points = grid_points({"filters": [32, 64], "kernel": [3, 5, 7]}, seeds=[0, 1])
    assert len(points) == 2 * 3 * 2
    assert points[0] == {"filters": 32, "kernel": 3, "seed": 0}
    assert points[1] == {"filters": 32, "kernel": 3, "seed": 1}   # seeds innermost
    assert points[-1] == {"filters": 64, "kernel": 7, "seed": 1}
    assert len({tuple(p.items()) for p in points}) == len(points)
    assert grid_points({}, [3]) == [{"seed": 3}]
    for bad in ({"filters": []}, {"filters": [1, 1]}, {"seed": [1]}):
        with pytest.raises(ValueError):
            grid_points(bad, [0])
    with pytest.raises(ValueError):
        grid_points({"filters": [1]}, [])


def test_point_name_is_safe_and_ordered():
    point = {"filters": 32, "kernel": 3, "seed": 0}
    assert point_name(point) == "filters=32_kernel=3_seed=0"
    assert point_name(point, ["kernel", "seed"]) == "kernel=3_seed=0"
    assert point_name({"label-strength": 0.1, "dataset": "npz:/a b/x.npz", "train-first-layer": True}) == \
        "label-strength=0.1_dataset=npz--a-b-x.npz_train-first-layer=true"
    long = point_name({"dataset": "x" * 500, "seed": 1})
    assert len(long) <= 200 and long != point_name({"dataset": "x" * 499 + "y", "seed": 1})


def test_mean_sd_matches_numpy():
    values = [0.91, 0.93, 0.96, 0.90]
    m = sum(values) / 4
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / 3)   # sample sd, by hand
    assert mean_sd(values) == pytest.approx((m, sd))
    assert mean_sd(values)[1] == pytest.approx(np.std(values, ddof=1))
    assert mean_sd(np.array(values)) == pytest.approx((m, sd))
    mean, sd1 = mean_sd([0.5])
    assert mean == 0.5 and math.isnan(sd1)                  # n=1: sd undefined -> NaN (documented)
    assert all(math.isnan(x) for x in mean_sd([]))
    assert mean_sd([1.0, float("nan"), 3.0, None]) == pytest.approx((2.0, math.sqrt(2)))  # NaN ignored


def _rec(path, seed, filters, kernel=3, device="cpu", val=(0.5, 0.7), test=0.6, best_epoch=2, wall=10.0):
    return {"path": path, "status": "complete",
            "config": {"filters": filters, "kernel": kernel, "seed": seed, "device": device, "lr": 1e-3},
            "metrics": {"val_acc_linear": np.array(val), "val_acc_goodness": np.array([0.1, float("nan")])},
            "groups": {"test": {"acc_linear": test, "acc_goodness": 0.1},
                       "summary": {"best_epoch": best_epoch, "wall_time_s": wall}}}


def test_group_runs_by_varying_keys_and_explicit_keys():
    records = [_rec("a", 0, 64, test=0.6, wall=4.0, device="cuda"), _rec("b", 1, 64, test=0.8, wall=6.0),
               _rec("c", 0, 8, val=(0.2, 0.3), best_epoch=1), _rec("d", 1, 8, val=(0.4, 0.2), best_epoch=3),
               _rec("e", 2, 8, val=(0.9, 0.2))]
    assert varying_keys(records) == ["filters"]     # seed and device vary but never group
    groups = group_runs(records)
    assert [g.key for g in groups] == [{"filters": 8}, {"filters": 64}]   # numeric order
    assert [g.n for g in groups] == [3, 2] and all(isinstance(g, Group) for g in groups)
    small, big = (g.stats() for g in groups)
    assert big["test_acc"]["linear"]["mean"] == pytest.approx(0.7)
    assert big["test_acc"]["linear"]["sd"] == pytest.approx(np.std([0.6, 0.8], ddof=1))
    assert big["wall_time_s"] == pytest.approx(5.0) and big["runs"] == ["a", "b"]
    assert small["val_acc"]["linear"]["mean"] == pytest.approx(np.mean([0.3, 0.4, 0.9]))  # best over epochs
    assert small["val_acc"]["linear"]["sd"] == pytest.approx(np.std([0.3, 0.4, 0.9], ddof=1))
    assert small["val_acc"]["goodness"]["mean"] == pytest.approx(0.1)
    assert small["best_epoch"] == pytest.approx(2.0)
    # explicit keys, including a constant one; one group for everything when nothing varies
    assert [(g.key, g.n) for g in group_runs(records, by=["kernel"])] == [({"kernel": 3}, 5)]
    assert [(g.key, g.n) for g in group_runs(records[:2])] == [({}, 2)]
    with pytest.raises(ValueError, match="nope"):
        group_runs(records, by=["nope"])


def test_run_numbers_without_summary_group():
    rec = {"config": {}, "metrics": {"val_acc_linear": np.array([0.2, 0.5, 0.4]),
                                     "wall_time_s": np.array([1.0, 2.0, 3.5])}, "groups": {}}
    n = run_numbers(rec)
    assert n["val_acc"] == {"linear": 0.5} and n["test_acc"] == {}
    assert n["best_epoch"] == 2.0 and n["wall_time_s"] == 3.5


def test_run_numbers_skips_epochs_without_validation():
    """--eval-every leaves NaN epochs: never the best, and no all-NaN RuntimeWarning."""
    nan = float("nan")
    rec = {"config": {}, "metrics": {"val_acc_linear": np.array([nan, 0.5, nan, 0.7]),
                                     "val_acc_goodness": np.array([nan, 0.6, nan, 0.2])}, "groups": {}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        n = run_numbers(rec)
        assert n["best_epoch"] == 4.0 and n["val_acc"] == {"linear": 0.7, "goodness": 0.6}
        running = {"config": {}, "metrics": {"val_acc_linear": np.array([nan])}, "groups": {}}
        assert math.isnan(run_numbers(running)["best_epoch"])


# ----------------------------------------------------------------------------------------------- sweep


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A 2-point × 2-seed smoke sweep, trained once for the module: (out dir, JSON result)."""
    out = tmp_path_factory.mktemp("sweep") / "grid"
    result = CliRunner().invoke(sweep, [*SMOKE, *GRID, "--out-dir", str(out), "--json"])
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def test_sweep_writes_one_complete_run_per_point_and_a_manifest(swept):
    out, summary = swept
    assert sorted(p.name for p in out.glob("*.h5")) == NAMES
    assert summary["trained"] == 4 and summary["skipped"] == 0
    for name in NAMES:
        rec = read_run(out / name)
        assert rec.status == "complete" and rec.epochs_done == 1
        assert rec.config["filters"] == int(name.split("_")[0].split("=")[1])
        assert rec.config["seed"] == int(name.split("seed=")[1][0]) and rec.config["preset"] == "smoke"
    manifest = json.loads((out / "sweep.json").read_text())
    assert manifest["grid"]["filters"] == [4, 8] and manifest["seeds"] == [0, 1]
    assert [p["file"] for p in manifest["points"]] == NAMES
    assert manifest["points"][0]["point"] == {"filters": 4, "epochs": 1, "train-limit": 200, "val-size": 100,
                                              "seed": 0}
    assert all(p["status"] == "trained" for p in manifest["points"])


def test_sweep_resumes_skipping_complete_and_resuming_failed(swept):
    out, _ = swept
    mtimes = {n: (out / n).stat().st_mtime_ns for n in NAMES}
    again = CliRunner().invoke(sweep, [*SMOKE, *GRID, "--out-dir", str(out), "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["trained"] == 0
    assert {n: (out / n).stat().st_mtime_ns for n in NAMES} == mtimes   # nothing rewritten

    with h5py.File(out / NAMES[1], "a") as f:
        f.attrs["status"] = "failed"
    mtimes = {n: (out / n).stat().st_mtime_ns for n in NAMES}
    third = CliRunner().invoke(sweep, [*SMOKE, *GRID, "--out-dir", str(out), "--json"])
    assert third.exit_code == 0, third.output
    res = json.loads(third.stdout)
    assert (res["trained"], res["resumed"], res["skipped"]) == (0, 1, 3)   # its one epoch is committed: it resumes
    assert [p["status"] for p in res["points"]] == ["skipped", "resumed", "skipped", "skipped"]
    assert read_run(out / NAMES[1]).status == "complete"
    assert [n for n in NAMES if (out / n).stat().st_mtime_ns != mtimes[n]] == [NAMES[1]]


def test_sweep_refuses_a_complete_run_with_another_config(swept):
    out, _ = swept
    args = ["--preset", "smoke", "--epochs", "2", "--train-limit", "200", "--val-size", "100", *GRID]
    result = CliRunner().invoke(sweep, [*args, "--out-dir", str(out)])
    one_error(result, "another config", "epochs")


def test_config_diff_counts_a_validation_size_only_where_the_split_differs():
    stored = RunConfig(dataset="mnist", val_size=10000, filters=32, device="cpu").to_dict()
    assert config_diff(stored, {**stored, "val_size": None, "device": "cuda"}) == {}  # the old default, now automatic
    assert config_diff(stored, {**stored, "val_size": 5000}) == {"val_size": (10000, 5000)}
    limited = {**stored, "train_limit": 500}
    assert config_diff(limited, {**limited, "val_size": None}) == {"val_size": (10000, None)}  # now 125 images


@pytest.mark.parametrize("args, fragments", [
    (["--kernel", "3,x"], ["--kernel", "'x' is not a valid integer"]),
    (["--filters", "4,,8"], ["--filters", "empty value"]),
    (["--filters", "4,4"], ["--filters", "repeats"]),
    (["--labels", "fourier1,nope"], ["--labels", "nope"]),
    (["--label-strength", "0.1,2"], ["--label-strength", "2"]),
    (["--seeds", "0,-1"], ["--seeds"]),
    (["--kernel", "3,4"], ["kernel must be a positive odd number, got 4"]),   # checked before any training
    (["--dataset", "synthetic,nope"], ["unknown dataset 'nope'"]),           # data is loaded before any write
    (["--lr", "1e-3,inf"], ["--lr", "'inf' is not a finite number"]),
    (["--theta", "nan"], ["--theta", "finite"]),
])
def test_sweep_bad_values_give_one_error_line(tmp_path, args, fragments):
    result = CliRunner().invoke(sweep, [*SMOKE, *args, "--out-dir", str(tmp_path / "o")])
    one_error(result, *fragments)
    assert not (tmp_path / "o").exists()


def test_sweep_out_dir_that_is_a_file(tmp_path):
    target = tmp_path / "f"
    target.write_text("keep")
    one_error(CliRunner().invoke(sweep, [*SMOKE, "--out-dir", str(target)]), "not a directory")
    assert target.read_text() == "keep"


# ----------------------------------------------------------------------------------------------- table


def _expected(out: Path, filters: int) -> dict:
    recs = [read_run(out / n) for n in NAMES if n.startswith(f"filters={filters}_")]
    return {
        "val": {r: mean_sd([float(np.nanmax(rec.metrics[f"val_acc_{r}"])) for rec in recs])
                for r in ("goodness", "linear")},
        "test": {r: mean_sd([rec.groups["test"][f"acc_{r}"] for rec in recs]) for r in ("goodness", "linear")},
        "wall": float(np.mean([rec.groups["summary"]["wall_time_s"] for rec in recs])),
    }


def test_table_json_groups_by_the_swept_key(swept):
    out, _ = swept
    result = CliRunner().invoke(table, [str(out), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["by"] == ["filters"]
    assert [(g["key"], g["n"]) for g in data["groups"]] == [({"filters": 4}, 2), ({"filters": 8}, 2)]
    for g in data["groups"]:
        exp = _expected(out, g["key"]["filters"])
        for r in ("goodness", "linear"):
            assert (g["val_acc"][r]["mean"], g["val_acc"][r]["sd"]) == pytest.approx(exp["val"][r])
            assert (g["test_acc"][r]["mean"], g["test_acc"][r]["sd"]) == pytest.approx(exp["test"][r])
        assert g["wall_time_s"] == pytest.approx(exp["wall"]) and g["best_epoch"] == 1.0
        assert len(g["runs"]) == 2


def test_table_csv_and_text(swept):
    out, _ = swept
    result = CliRunner().invoke(table, [str(out), "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["filters"], r["n"]) for r in rows] == [("4", "2"), ("8", "2")]
    exp = _expected(out, 8)
    assert float(rows[1]["test_acc_linear_mean"]) == pytest.approx(exp["test"]["linear"][0])
    assert float(rows[1]["test_acc_linear_sd"]) == pytest.approx(exp["test"]["linear"][1])
    text = CliRunner().invoke(table, [str(out)])
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert lines[0].split()[:2] == ["filters", "n"] and "±" in lines[1] and len(lines) == 3
    # explicit --by (flag spelling accepted), and a single file: one group, sd shown as the mean alone
    by = json.loads(CliRunner().invoke(table, [str(out), "--by", "train-limit,filters", "--format", "json"]).stdout)
    assert [g["key"] for g in by["groups"]] == [{"train_limit": 200, "filters": 4}, {"train_limit": 200, "filters": 8}]
    single = json.loads(CliRunner().invoke(table, [str(out / NAMES[0]), "--format", "json"]).stdout)
    assert single["groups"][0]["n"] == 1 and single["groups"][0]["test_acc"]["linear"]["sd"] is None


def test_table_bad_input(swept, tmp_path):
    out, _ = swept
    one_error(CliRunner().invoke(table, [str(out), "--by", "nope"]), "--by", "nope")
    one_error(CliRunner().invoke(table, [str(tmp_path)]), "no complete ffneuro runs")
    one_error(CliRunner().invoke(table, [str(tmp_path / "missing")]), "no such file")
    one_error(CliRunner().invoke(table, [str(out), "--format", "xml"]), "--format")
