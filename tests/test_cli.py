"""The ``ffneuro`` command line: train/eval/runs on the synthetic smoke preset, and every kind of bad input.

Bad input must give exit code != 0, exactly one ``Error:`` line, no traceback, and never lose data.
Nothing here touches the network: every download mirror points at a missing file:// path.
"""
from __future__ import annotations

import csv
import dataclasses
import errno
import io
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from cli_runner import invoke
from click.testing import CliRunner
from ffneuro.cli.main import main
from ffneuro.cli.progress import BarProgress

import ffneuro
import ffneuro.data.download as download
from ffneuro.errors import RunFileError
from ffneuro.presets import resolve_config
from ffneuro.store import RunWriter, read_run
from ffneuro.train import Trainer

# seconds-long runs: 200 training images, 100 validation images, 200 test images
SMOKE = ["--preset", "smoke", "--epochs", "1", "--train-limit", "200", "--val-size", "100"]
TIMING_KEYS = {"epoch_train_time_s", "wall_time_s", "images_per_s"}
IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


# ---------------------------------------------------------------------------------------------- fixtures



@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path_factory):
    """Every mirror becomes a missing file:// folder, http(s) is refused, and $FFNEURO_DATA is an empty dir."""
    absent = (tmp_path_factory.mktemp("mirror") / "absent").as_uri() + "/"
    for name, source in list(download.SOURCES.items()):
        monkeypatch.setitem(download.SOURCES, name, dataclasses.replace(source, mirrors=(absent,)))
    real_urlopen = urllib.request.urlopen

    def urlopen(url, *args, **kwargs):
        target = getattr(url, "full_url", url)
        if not str(target).startswith("file:"):
            raise urllib.error.URLError(f"network disabled in tests: {target}")
        return real_urlopen(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.setenv("FFNEURO_DATA", str(tmp_path_factory.mktemp("data")))


def cli(*args, ok: bool = True):
    """Invoke ``ffneuro ARGS`` in-process (stdout and stderr separate: click >= 8.2's result.stdout/.stderr),
    asserting exit 0 unless ``ok`` is false."""
    return invoke(*args, ok=ok)


def assert_clean_error(result, *fragments: str, code: int | None = None) -> str:
    """Non-zero exit through click (no uncaught exception), one ``Error:`` line holding ``fragments``, no traceback."""
    assert result.exit_code != 0, result.output
    if code is not None:
        assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # not an uncaught exception
    assert "Traceback" not in result.output
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def train_json(out: Path, *extra: str) -> dict:
    result = cli("train", *SMOKE, "--out", out, "--json", *extra)
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def ff_run(runs_dir):
    """(path, stdout JSON, result) of one FF smoke run, trained once for the module."""
    path = runs_dir / "ff.h5"
    result = cli("train", *SMOKE, "--out", path, "--json")
    return path, json.loads(result.stdout), result


@pytest.fixture(scope="module")
def bp_run(runs_dir):
    path = runs_dir / "bp.h5"
    result = cli("train", *SMOKE, "--algo", "bp", "--out", path, "--json")
    return path, json.loads(result.stdout), result


@pytest.fixture
def existing(tmp_path) -> tuple[Path, bytes]:
    """A file that bad commands must leave byte-identical."""
    path = tmp_path / "existing.h5"
    path.write_bytes(b"precious bytes that must survive\n")
    return path, path.read_bytes()


# ---------------------------------------------------------------------------------------------- train


def test_train_ff_json_on_stdout_only(ff_run):
    path, summary, result = ff_run
    assert summary["run"] == str(path)
    assert summary["algo"] == "ff" and summary["dataset"] == "synthetic" and summary["epochs"] == 1
    assert set(summary["test_acc"]) == {"goodness", "linear"}
    assert all(0.0 <= a <= 1.0 for a in summary["test_acc"].values())
    assert summary["train_images"] == 200 and summary["config"]["preset"] == "smoke"
    # stdout is exactly one JSON document; the logs went to stderr
    assert result.stdout.lstrip().startswith("{") and result.stdout.rstrip().endswith("}")
    assert "training FF" in result.stderr and "training FF" not in result.stdout
    assert "epoch 1/1" in result.stderr


def test_smoke_preset_learns_ff(tmp_path):
    """The whole smoke preset (2 epochs on 800 synthetic images, seconds) learns both readouts far above chance
    (10%): measured 75–95% goodness over seeds 0–4. Its stored weights reproduce the result."""
    out = tmp_path / "smoke.h5"
    summary = json.loads(cli("train", "--preset", "smoke", "--out", out, "--json").stdout)
    assert summary["train_images"] == 800 and summary["epochs"] == 2
    for split in ("val_acc", "test_acc"):
        assert summary[split]["goodness"] >= 0.5 and summary[split]["linear"] >= 0.5, summary
    unit_loss = read_run(out).unit_metrics["loss"]
    assert unit_loss[-1, -1] < 0.5, unit_loss  # the last unit moved far off log 2 = 0.693 (no label signal)
    assert json.loads(cli("eval", out, "--json").stdout)["accuracy"] == summary["test_acc"]


def test_train_bp_json(bp_run):
    path, summary, result = bp_run
    assert summary["algo"] == "bp"
    assert set(summary["test_acc"]) == {"linear"}
    assert read_run(path).status == "complete"
    assert "training BP" in result.stderr


def test_run_file_is_complete(ff_run):
    path, summary, _ = ff_run
    rec = read_run(path)
    assert rec.status == "complete"
    assert rec.epochs_done == rec.config["epochs"] == 1
    assert rec.config == summary["config"]
    assert {k.removeprefix("acc_"): v for k, v in rec.groups["test"].items() if k.startswith("acc_")} == summary["test_acc"]
    assert rec.groups["data"]["train_images"] == 200 and rec.groups["data"]["val_images"] == 100
    assert {"val_acc_goodness", "val_acc_linear", "train_loss", "lr"} <= set(rec.metrics)
    assert rec.unit_names == ["unit1", "unit2"] and rec.unit_metrics["loss"].shape == (1, 2)
    for which in ("final", "best"):
        weights = rec.weights(which)
        assert weights and all(np.isfinite(w).all() for w in weights.values() if w.dtype.kind == "f")


def test_text_output_and_flags_override_preset(tmp_path):
    out = tmp_path / "four.h5"
    result = cli("train", *SMOKE, "--filters", "4", "--kernel", "3", "--lr", "0.01", "--out", out)
    assert result.stdout.startswith(f"{out}: test goodness ")
    rec = read_run(out)
    assert rec.config["filters"] == 4 and rec.config["lr"] == 0.01
    assert rec.config["dataset"] == "synthetic" and rec.config["layers"] == 2  # the rest is the preset's
    # 3×3 convs with bias: unit1 sees 1 channel, unit2 sees the 4 filters of unit1
    assert list(rec.accounting["params"]) == [4 * 1 * 9 + 4, 4 * 4 * 9 + 4]


def test_model_flags_reach_the_run(tmp_path):
    out = tmp_path / "flags.h5"
    cli("train", *SMOKE, "--precision", "bf16", "--labels", "onehot", "--label-strength", "0.5", "--goodness", "sumsq",
        "--device", "cpu", "--batch-size", "100", "--seed", "5", "--layers", "3", "--readout-from", "2", "--out", out)
    rec = read_run(out)
    expected = {"precision": "bf16", "labels": "onehot", "label_strength": 0.5, "goodness": "sumsq", "device": "cpu",
                "batch_size": 100, "seed": 5, "layers": 3, "readout_from": 2}
    assert {k: rec.config[k] for k in expected} == expected
    assert rec.unit_names == ["unit1", "unit2", "unit3"] and rec.environment["device"] == "cpu"


def test_readout_linear_reports_only_linear(tmp_path):
    summary = train_json(tmp_path / "lin.h5", "--readout", "linear")
    assert set(summary["test_acc"]) == set(summary["val_acc"]) == {"linear"}
    summary = train_json(tmp_path / "good.h5", "--readout", "goodness")
    assert set(summary["test_acc"]) == {"goodness"}


def test_nan_accuracies_are_json_null(tmp_path):
    summary = train_json(tmp_path / "noval.h5", "--val-size", "0")
    assert summary["val_acc"] == {"goodness": None, "linear": None}
    assert "NaN" not in json.dumps(summary)


def test_quiet_hides_info_logs(tmp_path):
    for args in (["-q", "train", *SMOKE, "--out", tmp_path / "a.h5"], ["train", "-q", *SMOKE, "--out", tmp_path / "b.h5"]):
        result = cli(*args)
        assert result.stderr == "", result.stderr
        assert "test goodness" in result.stdout


def test_progress_bar_only_on_a_terminal(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not BarProgress(True).enabled  # not a TTY
    monkeypatch.setattr(sys, "stderr", Tty())
    assert not BarProgress(False).enabled  # --quiet
    bar = BarProgress(True)
    assert bar.enabled
    bar.start("epoch 1/1", 3)
    bar.advance()
    bar.finish()
    assert "epoch 1/1" in sys.stderr.getvalue()


def test_deterministic_with_seed(tmp_path):
    def run(name, seed):
        path = tmp_path / name
        cli("train", *SMOKE, "--epochs", "2", "--seed", seed, "--out", path)
        return read_run(path)

    a, b, c = run("a.h5", 3), run("b.h5", 3), run("c.h5", 4)
    for key in set(a.metrics) - TIMING_KEYS:
        np.testing.assert_array_equal(a.metrics[key], b.metrics[key], err_msg=key)
    for key in a.unit_metrics:
        np.testing.assert_array_equal(a.unit_metrics[key], b.unit_metrics[key], err_msg=key)
    assert a.groups["test"] == b.groups["test"]
    wa, wb, wc = a.weights("final"), b.weights("final"), c.weights("final")
    assert set(wa) == set(wb) == set(wc)
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)
    assert any(not np.array_equal(wa[k], wc[k]) for k in wa)
    assert not np.array_equal(a.unit_metrics["loss"], c.unit_metrics["loss"])


def test_keyboard_interrupt_marks_run_interrupted(tmp_path, monkeypatch):
    original = Trainer._train_epoch

    def train_epoch(self, epoch, progress, beat=None):
        if epoch == 1:  # the second epoch
            raise KeyboardInterrupt
        return original(self, epoch, progress)

    monkeypatch.setattr(Trainer, "_train_epoch", train_epoch)
    out = tmp_path / "int.h5"
    result = cli("train", *SMOKE, "--epochs", "3", "--out", out, "--json", ok=False)
    assert result.exit_code == 130, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    assert "Interrupted" in result.stderr
    rec = read_run(out)
    assert rec.status == "interrupted" and rec.message == "stopped by the user"
    assert rec.epochs_done == 1 and rec.metrics["val_acc_linear"].shape == (1,)
    assert rec.weights("final")  # epoch 1's parameters are kept
    assert "test" not in rec.groups


def test_failure_during_training_marks_run_failed(tmp_path, monkeypatch):
    def boom(self, epoch, progress, beat=None):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(Trainer, "_train_epoch", boom)
    out = tmp_path / "fail.h5"
    assert_clean_error(cli("train", *SMOKE, "--out", out, ok=False), "internal error", "simulated bug")
    rec = read_run(out)
    assert rec.status == "failed" and "simulated bug" in rec.message


# ---------------------------------------------------------------------------------------------- eval


def test_eval_matches_train(ff_run):
    path, summary, _ = ff_run
    result = cli("eval", path, "--json")
    report = json.loads(result.stdout)
    assert report["accuracy"] == summary["test_acc"]
    assert report["weights"] == "final" and report["split"] == "test"
    text = cli("eval", path).stdout
    assert f"goodness {summary['test_acc']['goodness']:.4f}" in text and f"linear {summary['test_acc']['linear']:.4f}" in text


def test_eval_one_readout(ff_run):
    path, summary, _ = ff_run
    report = json.loads(cli("eval", path, "--readout", "linear", "--json").stdout)
    assert report["accuracy"] == {"linear": summary["test_acc"]["linear"]}


def test_eval_best_weights_and_val_split(ff_run):
    path, summary, _ = ff_run
    report = json.loads(cli("eval", path, "--weights", "best", "--json").stdout)
    assert report["weights"] == "best"
    assert report["accuracy"] == summary["test_acc"]  # one epoch: best is final
    report = json.loads(cli("eval", path, "--split", "val", "--json").stdout)
    assert report["accuracy"] == summary["val_acc"]


def test_eval_bp(bp_run):
    path, summary, _ = bp_run
    assert json.loads(cli("eval", path, "--json").stdout)["accuracy"] == summary["test_acc"]
    assert_clean_error(cli("eval", path, "--readout", "goodness", ok=False), "no goodness readout", "linear")


def test_eval_run_without_weights(tmp_path):
    out = tmp_path / "zero.h5"
    cli("train", *SMOKE, "--epochs", "0", "--out", out)
    assert_clean_error(cli("eval", out, ok=False), str(out), "no 'final' weights")


def test_eval_and_cam_on_weights_that_do_not_fit_say_why_in_one_line(ff_run, tmp_path):
    """torch's own message spans lines and was cut to 'Error(s) in loading state_dict for FFNet:'."""
    path = tmp_path / "altered.h5"
    shutil.copy(ff_run[0], path)
    with h5py.File(path, "a") as f:
        final = f["weights"]["final"]
        del final["units.0.block.conv.bias"]
        final["extra.weight"] = np.zeros(3, np.float32)
        weight = final["units.1.block.conv.weight"][()]
        del final["units.1.block.conv.weight"]
        final["units.1.block.conv.weight"] = weight[:, :, :3, :3]
    for command in (["eval", path], ["cam", path, "--samples", "1", "--out", tmp_path / "cam"]):
        assert_clean_error(cli(*command, ok=False), str(path), "do not fit", "1 missing: units.0.block.conv.bias",
                           "1 unexpected: extra.weight",
                           "1 of another shape: units.1.block.conv.weight (file 8×8×3×3, network 8×8×7×7)")


# ---------------------------------------------------------------------------------------------- runs


def test_runs_list(ff_run, bp_run, tmp_path):
    for path in (ff_run[0], bp_run[0]):
        shutil.copy(path, tmp_path / path.name)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.arange(3)
    (tmp_path / "notes.h5").write_text("not hdf5")
    result = cli("runs", "list", tmp_path)
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["run", "status", "algo"]
    assert any("ff.h5" in line and "complete" in line and "ff" in line.split() for line in lines)
    assert any("bp.h5" in line and "bp" in line.split() for line in lines)
    assert "other.h5" not in result.stdout
    assert f"skipped (not a readable ffneuro run): {tmp_path / 'other.h5'}" in result.stderr
    assert "notes.h5" in result.stderr
    listing = json.loads(cli("runs", "list", tmp_path, "--json").stdout)
    assert [Path(r["run"]).name for r in listing["runs"]] == ["bp.h5", "ff.h5"]
    assert {Path(p).name for p in listing["skipped"]} == {"other.h5", "notes.h5"}
    ff = next(r for r in listing["runs"] if r["run"].endswith("ff.h5"))
    assert ff["test_acc"] == ff_run[1]["test_acc"] and ff["epochs"] == "1/1"


def test_runs_list_survives_a_damaged_run(ff_run, tmp_path):
    shutil.copy(ff_run[0], tmp_path / "good.h5")
    shutil.copy(ff_run[0], tmp_path / "damaged.h5")
    with h5py.File(tmp_path / "damaged.h5", "a") as f:  # header intact, body broken
        del f["metrics"]
    result = cli("runs", "list", tmp_path)
    assert "good.h5" in result.stdout and "damaged.h5" not in result.stdout
    assert "damaged.h5" in result.stderr


def test_runs_list_empty_and_missing_dir(tmp_path):
    assert "no ffneuro runs" in cli("runs", "list", tmp_path).stdout
    assert_clean_error(cli("runs", "list", tmp_path / "nope", ok=False), "nope", "not a directory")


def test_runs_show(ff_run):
    path, summary, _ = ff_run
    text = cli("runs", "show", path).stdout
    assert f"{path}  [complete]" in text
    assert "ff on synthetic, preset smoke, epochs 1/1" in text
    assert "accounting (per sample):" in text and "unit1" in text and "params" in text
    assert f"goodness={summary['test_acc']['goodness']:.4f}" in text
    shown = json.loads(cli("runs", "show", path, "--json").stdout)
    assert shown["status"] == "complete" and shown["config"] == summary["config"]
    assert shown["test_acc"] == summary["test_acc"] and shown["units"] == ["unit1", "unit2"]
    assert shown["accounting"]["params"] == [400, 3144]  # 8 filters 7×7: 8·49+8 and 8·8·49+8
    assert shown["last_epoch"]["val_acc_linear"] == summary["val_acc"]["linear"]


def test_runs_export_csv_and_json(ff_run, tmp_path):
    path = ff_run[0]
    result = cli("runs", "export", path, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    header = result.stdout.splitlines()[0].split(",")
    assert header[0] == "epoch"
    assert {"val_acc_goodness", "val_acc_linear", "loss.unit1", "loss.unit2", "disc_acc.unit2"} <= set(header)
    assert len(rows) == 1 and rows[0]["epoch"] == "1"
    assert float(rows[0]["val_acc_linear"]) == ff_run[1]["val_acc"]["linear"]
    data = json.loads(cli("runs", "export", path, "--format", "json").stdout)
    assert len(data) == 1 and data[0]["epoch"] == 1 and "goodness_pos.unit1" in data[0]
    out = tmp_path / "metrics.csv"
    cli("runs", "export", path, "--out", out)
    assert out.read_text() == result.stdout


def test_runs_export_never_clobbers(ff_run, tmp_path, existing):
    run = tmp_path / "run.h5"
    shutil.copy(ff_run[0], run)
    before = run.read_bytes()
    assert_clean_error(cli("runs", "export", run, "--out", run, ok=False), "run file itself")
    assert_clean_error(cli("runs", "export", run, "--out", run, "--force", ok=False), "run file itself")
    assert run.read_bytes() == before
    path, content = existing
    assert_clean_error(cli("runs", "export", run, "--out", path, ok=False), "exists", "--force")
    assert path.read_bytes() == content
    cli("runs", "export", run, "--out", path, "--force")
    assert path.read_text().startswith("epoch,")


def test_runs_export_write_failure_leaves_no_file_and_keeps_the_old_one(ff_run, tmp_path, existing, monkeypatch):
    """A full disk (here: fsync fails with ENOSPC, as it may after a buffered write) leaves neither an empty
    --out nor a temporary file, and an existing --out unchanged."""
    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    new = tmp_path / "new.csv"
    assert_clean_error(cli("runs", "export", ff_run[0], "--out", new, ok=False), f"disk full: writing {new} needs")
    path, content = existing
    assert_clean_error(cli("runs", "export", ff_run[0], "--out", path, "--force", ok=False), str(path))
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no new.csv, no temporary file


def test_runs_export_on_a_real_full_disk(ff_run, tmp_path):
    """The same on a full 16 kB tmpfs, mounted in a private mount namespace (skipped where that is impossible)."""
    exe, unshare = shutil.which("ffneuro"), shutil.which("unshare")
    if exe is None or unshare is None:
        pytest.skip("needs the ffneuro executable and unshare")
    disk = tmp_path / "disk"
    disk.mkdir()
    script = ('mount -t tmpfs -o size=16k tmpfs "$1" || exit 77; printf old > "$1/old.csv"; '
              'head -c 1000000 /dev/zero > "$1/filler" 2>/dev/null; '
              '"$2" runs export "$3" --out "$1/old.csv" --force; echo "rc=$?"; ls -A "$1"; cat "$1/old.csv"')
    proc = subprocess.run([unshare, "-rm", "sh", "-c", script, "sh", disk, exe, ff_run[0]],
                          check=False, capture_output=True, text=True, timeout=120)
    if proc.returncode == 77 or "unshare:" in proc.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    # the old file is intact and nothing else is left (before: an empty or cut-off old.csv)
    assert proc.stdout.split() == ["rc=1", "filler", "old.csv", "old"], proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0].startswith(f"Error: disk full: writing {disk}/old.csv needs "), proc.stderr


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("args, fragments", [
    (["--preset", "nope"], ["nope", "mnist-small", "paper-mnist", "smoke"]),
    (["--dataset", "nope"], ["unknown dataset 'nope'", "mnist", "synthetic", "cifar10"]),
    (["--labels", "nope"], ["nope", "fourier1", "fourier2", "onehot"]),
    (["--algo", "xx"], ["ff", "bp"]),
    (["--epochs", "-1"], ["--epochs", "-1"]),
    (["--label-strength", "1.5"], ["--label-strength", "1.5"]),
    (["--label-strength", "-0.1"], ["--label-strength"]),
    (["--lr", "0"], ["--lr"]),
    (["--batch-size", "0"], ["--batch-size"]),
    (["--epochs", "two"], ["--epochs", "two"]),
    (["--kernel", "4"], ["kernel", "odd"]),
    (["--readout-from", "5"], ["readout_from"]),
    (["--algo", "bp", "--readout", "goodness"], ["--readout goodness", "linear"]),
    (["--val-size", "5000"], ["validation size"]),
    (["--pool", "max", "--layers", "6"], ["pool"]),
    (["--seed", str(2**70)], ["--seed"]),
    (["--lr", "inf"], ["--lr", "'inf' is not a finite number"]),        # click's FloatRange lets inf and nan pass
    (["--lr", "nan"], ["--lr", "'nan' is not a finite number"]),
    (["--linear-lr", "inf"], ["--linear-lr", "finite"]),
    (["--theta", "nan"], ["--theta", "finite"]),
    (["--theta", "-inf"], ["--theta", "finite"]),
    (["--label-strength", "nan"], ["--label-strength", "finite"]),
    (["--cooldown-start", "nan"], ["--cooldown-start", "finite"]),
    (["--unit-lrs", "1e-3,inf"], ["--unit-lrs", "finite"]),
    (["--unit-lrs", "nan,1e-3"], ["--unit-lrs", "finite"]),
    (["--kernel", "99"], ["unit1:", "16×16 input map", "--kernel 31 or less"]),
])
def test_bad_train_options(tmp_path, args, fragments):
    out = tmp_path / "bad.h5"
    result = cli("train", *SMOKE, *args, "--out", out, ok=False)
    assert_clean_error(result, *fragments)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no half-made files or folders either


@pytest.mark.parametrize("args, fragments", [
    (["--train-limit", "1001"], ["train limit 1001", "1000 training images of synthetic"]),
    (["--train-limit", "900", "--val-size", "200"], ["train limit 900", "800 images of synthetic", "--val-size"]),
])
def test_train_limit_beyond_the_data_is_refused(tmp_path, args, fragments):
    out = tmp_path / "bad.h5"
    assert_clean_error(cli("train", "--preset", "smoke", *args, "--out", out, ok=False), *fragments)
    assert list(tmp_path.iterdir()) == []


def test_default_preset_on_synthetic_splits_validation_by_the_dataset(tmp_path):
    """mnist-small's flags (the default preset) on the 1000-image synthetic set: validation is a fifth, not 10,000
    (``--epochs 1`` failed on that; 0 epochs split the data the same way without the training time)."""
    out = tmp_path / "syn.h5"
    cli("-q", "train", "--dataset", "synthetic", "--epochs", "0", "--out", out)
    rec = read_run(out)
    assert rec.config["val_size"] is None  # automatic, stored as such (like theta)
    assert (rec.groups["data"]["train_images"], rec.groups["data"]["val_images"]) == (800, 200)


def test_train_limit_shrinks_the_automatic_validation_split_and_says_so(tmp_path):
    out = tmp_path / "limited.h5"
    result = cli("train", "--preset", "smoke", "--epochs", "1", "--train-limit", "300", "--out", out)
    assert "using 300 training / 75 validation images" in result.stderr
    assert (read_run(out).groups["data"]["train_images"], read_run(out).groups["data"]["val_images"]) == (300, 75)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu(tmp_path):
    assert_clean_error(cli("train", *SMOKE, "--device", "cuda", "--out", tmp_path / "x.h5", ok=False), "CUDA")


def test_missing_mnist_fails_fast_offline(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "runs" / "m.h5"
    t0 = time.perf_counter()
    result = cli("train", "--dataset", "mnist", "--data-dir", empty, "--out", out, ok=False)
    assert time.perf_counter() - t0 < 10
    line = assert_clean_error(result, "mnist: missing", str(empty / "mnist"), "--data-dir")
    assert all(name in line for name in IDX_FILES)
    assert not out.parent.exists()  # the --out folder is only made once the data has loaded


def test_corrupt_mnist_files(tmp_path):
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    for name in IDX_FILES:
        (folder / name).write_bytes(b"\x1f\x8b garbage, not a gzip stream")
    out = tmp_path / "m.h5"
    result = cli("train", "--dataset", "mnist", "--data-dir", tmp_path / "data", "--out", out, ok=False)
    assert_clean_error(result, str(folder / IDX_FILES[0]))
    assert not out.exists()


@pytest.mark.parametrize("content", [b"", b"not a zip archive"])
def test_corrupt_npz(tmp_path, content):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(content)
    result = cli("train", *SMOKE, "--dataset", f"npz:{bad}", "--out", tmp_path / "x.h5", ok=False)
    assert_clean_error(result, str(bad))
    assert not (tmp_path / "x.h5").exists()


def test_existing_out_is_left_alone(existing):
    path, content = existing
    assert_clean_error(cli("train", *SMOKE, "--out", path, ok=False), str(path), "exists", "--force")
    assert path.read_bytes() == content


def test_force_keeps_old_file_when_run_fails_before_writing(existing, monkeypatch):
    path, content = existing
    # fails after loading the data, before the run file is created
    assert_clean_error(cli("train", *SMOKE, "--val-size", "5000", "--force", "--out", path, ok=False), "validation size")
    assert path.read_bytes() == content

    def broken(self, *args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(RunWriter, "_initialise", broken)  # fails while building the new file
    assert_clean_error(cli("train", *SMOKE, "--force", "--out", path, ok=False), "disk full")
    assert path.read_bytes() == content
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no .tmp left behind


def test_force_overwrites(existing):
    path, _ = existing
    cli("train", *SMOKE, "--force", "--out", path)
    assert read_run(path).status == "complete"


def test_unwritable_out(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out in (blocker / "x.h5", blocker / "sub" / "x.h5"):
        assert_clean_error(cli("train", *SMOKE, "--out", out, ok=False), "cannot create run file", "not a directory")
    assert_clean_error(cli("train", *SMOKE, "--out", tmp_path, ok=False), "--out")  # a directory
    assert blocker.read_text() == "x"


def test_read_only_dir(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if os.access(locked, os.W_OK):  # root writes anywhere: pretend it may not
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == locked else real_access(p, mode, **kw))
    try:
        for out in (locked / "x.h5", locked / "sub" / "x.h5"):
            assert_clean_error(cli("train", *SMOKE, "--out", out, ok=False), "cannot create run file", "not writable")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


@pytest.fixture
def bad_run_files(ff_run, tmp_path) -> dict[str, Path]:
    text = tmp_path / "text.h5"
    text.write_text("hello")
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.arange(3)
    truncated = tmp_path / "truncated.h5"
    data = ff_run[0].read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    return {"missing": tmp_path / "missing.h5", "text": text, "foreign": foreign, "truncated": truncated}


@pytest.mark.parametrize("command", [["eval"], ["runs", "show"], ["runs", "show", "--json"], ["runs", "export"]])
@pytest.mark.parametrize("kind, fragment", [
    ("missing", "no such file"), ("text", "not an HDF5 file"), ("foreign", "not an ffneuro run file"),
    ("truncated", "truncated or corrupt"),
])
def test_bad_run_file(bad_run_files, command, kind, fragment):
    path = bad_run_files[kind]
    before = path.read_bytes() if path.exists() else None
    result = cli(*command[:2], path, *command[2:], ok=False)
    assert_clean_error(result, str(path), fragment)
    assert (path.read_bytes() if path.exists() else None) == before


# ---------------------------------------------------------------------------------------------- help, version


def test_help_and_version():
    help_text = cli("train", "--help").stdout
    assert "one forward pass per class" in help_text
    for flag in ("--preset", "--labels", "--label-strength", "--readout", "--train-limit", "--out", "--force", "--json"):
        assert flag in help_text
    assert cli("--version").stdout.strip() == f"ffneuro, version {ffneuro.__version__}"
    assert "one forward pass per class" in cli("eval", "--help").stdout
    for sub in ("list", "show", "export"):
        assert cli("runs", sub, "--help").exit_code == 0


def test_help_lists_every_command_with_its_own_summary_and_loads_no_torch():
    """``ffneuro --help`` lists the commands from ffneuro.cli.main.COMMANDS without importing them: each
    entry must load its command, and its summary must be the command's own."""
    import click
    from ffneuro.cli.main import COMMANDS

    listed = cli("--help").stdout
    ctx = click.Context(main)
    for name, (_, _, summary) in COMMANDS.items():
        assert f"  {name} " in listed
        assert main.get_command(ctx, name).get_short_help_str(10**6) == summary, name
    assert "table" in main.get_command(ctx, "runs").commands
    code = ("import sys; from ffneuro.cli.main import main\ntry: main(['--help'])\nexcept SystemExit: pass\n"
            "assert 'torch' not in sys.modules, 'ffneuro --help imported torch'")
    # -P: the working directory (the repo root in CI) must not shadow the installed package (ffneuro.cli is cli/)
    result = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and "train" in result.stdout, result.stderr


def test_help_shows_each_flags_effective_default():
    """Every model flag's default is None (the preset's value stands); --help says what that value is."""
    small = resolve_config("mnist-small", {})

    def help_of(*command):
        result = CliRunner().invoke(main, [*command, "--help"], terminal_width=300)
        assert result.exit_code == 0, result.output
        return " ".join(result.stdout.split())

    text = help_of("train")
    for fragment in (f"training epochs [default: {small.epochs} (mnist-small)]",
                     f"[default: {small.lr:g} (mnist-small)]", f"[default: {small.kernel} (mnist-small)]",
                     "[default: --freeze-first-layer (mnist-small)]", "[default: automatic, a fifth",
                     "another --preset changes those defaults", "--theta FLOAT goodness threshold θ [default: the"):
        assert fragment in text, fragment
    assert "None" not in text
    assert f"training epochs (comma-separated values) [default: {small.epochs} (mnist-small)]" in help_of("sweep")
    assert f"[default: {small.filters} (mnist-small)]" in help_of("profile")


# ---------------------------------------------------------------------------------------------- the real executable


def _exe(tmp_path: Path, *args) -> subprocess.CompletedProcess:
    exe = shutil.which("ffneuro")
    if exe is None:
        pytest.skip("the ffneuro executable is not on PATH")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FFNEURO_DATA": str(tmp_path / "data")}
    return subprocess.run([exe, *map(str, args)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_executable_bad_input_exits_nonzero_without_traceback(tmp_path):
    proc = _exe(tmp_path, "train", *SMOKE, "--dataset", "nope", "--out", tmp_path / "x.h5")
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.strip()] == [
        "Error: unknown dataset 'nope'; valid: cifar10, cifar100, fashion-mnist, mnist, synthetic"]
    assert not (tmp_path / "x.h5").exists()


def test_executable_truncated_run(ff_run, tmp_path):
    data = ff_run[0].read_bytes()
    truncated = tmp_path / "t.h5"
    truncated.write_bytes(data[: len(data) // 3])
    proc = _exe(tmp_path, "eval", truncated)
    assert proc.returncode == 1 and proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"Error: {truncated}: "), proc.stderr


def test_eval_every_skips_validation_between_evaluations(tmp_path):
    path = tmp_path / "r.h5"
    result = CliRunner().invoke(main, ["-q", "train", "--preset", "smoke", "--epochs", "3", "--eval-every", "2",
                                       "--train-limit", "200", "--val-size", "100", "--out", str(path)])
    assert result.exit_code == 0, result.output
    rec = read_run(path)
    val = rec.metrics["val_acc_linear"]
    assert np.isnan(val[0]) and not np.isnan(val[1]) and not np.isnan(val[2])  # epochs 2 and 3 (the last)
    assert rec.weights("best") and rec.groups["summary"]["best_epoch"] in (2, 3)


def test_sigterm_closes_the_run_as_interrupted(tmp_path):
    """``kill`` (or a scheduler's time limit) mid-training: exit 143, the file is readable and says why."""
    import signal

    out = tmp_path / "term.h5"
    code = "from ffneuro.cli.main import main; main()"
    proc = subprocess.Popen([sys.executable, "-c", code, "-q", "train", *map(str, SMOKE), "--epochs", "200",
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path)  # not the repo root, whose ffneuro/ would shadow the installed package
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until at least one epoch is in the file
        try:
            if read_run(out).epochs_done >= 1:
                break
        except (RunFileError, OSError):  # not created yet, or being written
            pass
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "Terminated." in err and "Traceback" not in err
    rec = read_run(out)
    assert rec.status == "interrupted" and rec.message == "stopped by SIGTERM"
    assert rec.epochs_done >= 1
