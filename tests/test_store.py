"""Run files: round trip, crash safety, overwrite rules, NaN back-fill, bad-file errors, discovery, xarray view."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from ffneuro.errors import RunFileError
from ffneuro.store import SCHEMA_NAME, SCHEMA_VERSION, RunWriter, find_runs, read_run

REPO = Path(__file__).resolve().parents[1]
CONFIG = {"lr": 0.03, "seed": None, "augment": True, "channels": [8, 16], "label": "onehot"}
ENV = {"torch": "2.2.0", "cuda": None, "cores": 2}
UNITS = ["unit0", "unit1"]
ACCOUNTING = {"params": [216, 1168], "macs": [1.5e5, 9.0e5]}


def new_writer(path: Path, **kw) -> RunWriter:
    return RunWriter(path, config=CONFIG, environment=ENV, unit_names=UNITS, accounting=ACCOUNTING, **kw)


@pytest.fixture
def run_path(tmp_path: Path) -> Path:
    """A finished three-epoch run with weights and a test group."""
    path = tmp_path / "run.h5"
    w = new_writer(path)
    for e in range(1, 4):
        w.append_epoch({"loss": 1.0 / e, "accuracy": 0.5 + 0.1 * e}, {"goodness": [e, 2.0 * e]})
    w.save_weights("best", {"units.0.conv.weight": np.full((2, 1, 3, 3), 1.0, np.float32)}, epoch=2)
    w.save_weights("final", {"units.0.conv.weight": np.zeros((2, 1, 3, 3), np.float32), "a/b": np.arange(3)}, epoch=3)
    w.write_group("test", {"accuracy": 0.91, "confusion": np.eye(2), "classes": ["cat", "dog"]}, {"split": "test"})
    w.finish()
    return path


def test_round_trip(run_path: Path):
    run = read_run(run_path)
    assert (run.schema_version, run.status, run.epochs_done) == (SCHEMA_VERSION, "complete", 3)
    assert run.created and run.finished and run.message == ""
    assert run.config == CONFIG and run.environment == ENV and run.unit_names == UNITS
    np.testing.assert_allclose(run.metrics["loss"], [1.0, 0.5, 1 / 3])
    np.testing.assert_allclose(run.unit_metrics["goodness"], [[1, 2], [2, 4], [3, 6]])
    assert set(run.accounting) == set(ACCOUNTING)
    np.testing.assert_array_equal(run.accounting["macs"], ACCOUNTING["macs"])
    test = run.groups["test"]
    assert test["accuracy"] == 0.91 and test["classes"] == ["cat", "dog"] and test["attrs"] == {"split": "test"}
    np.testing.assert_array_equal(test["confusion"], np.eye(2))
    assert run.weights("best")["units.0.conv.weight"].dtype == np.float32
    final = run.weights()
    np.testing.assert_array_equal(final["a/b"], np.arange(3))
    with pytest.raises(RunFileError, match="available: best, final"):
        run.weights("other")


def testh5py_only_layout(run_path: Path):
    with h5py.File(run_path, "r") as f:
        assert f.attrs["schema"] == SCHEMA_NAME
        assert f["config"].attrs["seed"] == "null" and f["config"].attrs["lr"] == 0.03
        loss = f["metrics/loss"]
        assert loss.dims[0].label == "epoch" and list(loss.dims[0][0][()]) == [1, 2, 3]
        assert f["metrics/units/goodness"].dims[1][0].name == "/metrics/units/unit"
        assert f["weights/best"].attrs["epoch"] == 2


def test_weights_overwrite_in_place_and_replace(tmp_path: Path):
    path = tmp_path / "w.h5"
    w = new_writer(path)
    w.save_weights("best", {"w": np.zeros(1000)}, epoch=1)
    size = path.stat().st_size
    for epoch in range(2, 6):
        w.save_weights("best", {"w": np.full(1000, float(epoch))}, epoch=epoch)
    assert path.stat().st_size == size
    w.save_weights("best", {"v": np.ones(2)}, epoch=6)
    assert list(read_run(path).weights("best")) == ["v"]


def test_crash_after_two_epochs_leaves_readable_file(tmp_path: Path):
    path = tmp_path / "crash.h5"
    script = (
        "import os, sys\n"
        "from ffneuro.store import RunWriter\n"
        "w = RunWriter(sys.argv[1], config={}, environment={}, unit_names=['u'], accounting={})\n"
        "w.append_epoch({'loss': 1.0}, {'g': [1.0]})\n"
        "w.append_epoch({'loss': 0.5}, {'g': [2.0]})\n"
        "os._exit(3)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(path)], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr
    run = read_run(path)
    assert (run.status, run.epochs_done) == ("running", 2)
    np.testing.assert_array_equal(run.metrics["loss"], [1.0, 0.5])


def test_existing_path_needs_force_and_force_replaces_only_on_completion(run_path: Path):
    with pytest.raises(RunFileError, match="exists; pass --force"):
        new_writer(run_path)
    old = run_path.read_bytes()
    w = new_writer(run_path, force=True)
    pending = run_path.with_name("run.new.h5")
    assert w.pending and w.path == pending and w.target == run_path
    w.append_epoch({"loss": 9.0})
    assert run_path.read_bytes() == old                     # the old run is untouched while the new one runs
    rec = read_run(pending)
    assert (rec.status, rec.epochs_done, rec.replaces, rec.pending) == ("running", 1, "run.h5", True)
    w.finish("interrupted", "stopped")                      # an unfinished replacement never replaces
    assert run_path.read_bytes() == old and read_run(pending).status == "interrupted"
    with RunWriter.open(pending) as again:                  # resuming it takes both locks
        assert again.pending and again.target == run_path
        again.append_epoch({"loss": 8.0})
        again.finish("complete")
    assert not pending.exists()
    rec = read_run(run_path)
    assert (rec.status, rec.epochs_done, rec.pending) == ("complete", 2, False)
    assert list(run_path.parent.glob(".*.tmp")) == [] and list(run_path.parent.glob("*.lock")) == []


def test_missing_directory(tmp_path: Path):
    with pytest.raises(RunFileError, match="does not exist"):
        new_writer(tmp_path / "nope" / "run.h5")


def test_nan_backfill(tmp_path: Path):
    path = tmp_path / "nan.h5"
    w = new_writer(path)
    w.append_epoch({"loss": 1.0})
    w.append_epoch({"loss": 0.5, "late": 7.0}, {"g": [1.0, 2.0]})
    w.append_epoch({"late": 8.0})
    run = read_run(path)
    np.testing.assert_array_equal(run.metrics["loss"], [1.0, 0.5, np.nan])
    np.testing.assert_array_equal(run.metrics["late"], [np.nan, 7.0, 8.0])
    np.testing.assert_array_equal(run.unit_metrics["g"], [[np.nan, np.nan], [1.0, 2.0], [np.nan, np.nan]])


def test_bad_files(tmp_path: Path, run_path: Path):
    text = tmp_path / "text.h5"
    text.write_text("not hdf5\n")
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = [1, 2]
    truncated = tmp_path / "truncated.h5"
    data = run_path.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    future = tmp_path / "future.h5"
    future.write_bytes(data)
    with h5py.File(future, "a") as f:
        f.attrs["schema_version"] = SCHEMA_VERSION + 1
    cases = {text: "not an HDF5 file", foreign: "no 'schema'", truncated: "truncated or corrupt",
             future: "newer than this ffneuro supports", tmp_path / "missing.h5": "no such file"}
    for path, problem in cases.items():
        with pytest.raises(RunFileError, match=problem) as info:
            read_run(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_find_runs(tmp_path: Path, run_path: Path):
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    (tmp_path / "notes.txt").write_text("hi")
    assert find_runs(tmp_path) == ([run_path], [tmp_path / "other.h5"])


def test_xarray_view(run_path: Path):
    xr = pytest.importorskip("xarray")
    pytest.importorskip("h5netcdf")
    with xr.open_dataset(run_path, group="metrics", engine="h5netcdf") as ds:
        assert ds["loss"].dims == ("epoch",) and list(ds["epoch"].values) == [1, 2, 3]
    with xr.open_dataset(run_path, group="metrics/units", engine="h5netcdf") as ds:
        assert ds["goodness"].dims == ("epoch", "unit") and list(ds["unit"].values) == UNITS


def test_open_adds_a_group_to_a_finished_run_and_refuses_non_runs(tmp_path):
    path = tmp_path / "r.h5"
    w = RunWriter(path, config={"a": 1}, environment={}, unit_names=["u1"], accounting={"params": [3]})
    w.append_epoch({"loss": 1.0})
    w.finish("complete")
    with RunWriter.open(path) as w:
        w.write_group("profile", {"energy_j": 2.5}, attrs={"hw": "loihi"})
    rec = read_run(path)
    assert rec.groups["profile"]["energy_j"] == 2.5 and rec.status == "complete" and rec.epochs_done == 1
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = 1
    with pytest.raises(RunFileError):
        RunWriter.open(other)
    assert not other.with_name("other.h5.lock").exists()     # a refused open leaves no lock behind


def test_commit_epoch_is_one_transaction_and_round_trips_the_resume_state(tmp_path):
    path = tmp_path / "c.h5"
    state = {"optimizers": {"unit2": {"0": {"step": np.float32(3.0), "exp_avg": np.arange(4.0)}}},
             "rng": {"generator": np.arange(16, dtype=np.uint8)}}
    with new_writer(path) as w:
        for epoch in (1, 2):
            w.commit_epoch(epoch, {"loss": 1.0 / epoch}, {"goodness": [epoch, epoch]},
                           {"w": np.full(3, float(epoch))}, best=epoch == 1, state=state,
                           state_meta={"progress": {"epochs_done": epoch, "best_val": float("nan")}})
        with pytest.raises(ValueError, match="does not follow"):
            w.commit_epoch(5, {"loss": 0.0}, None, {"w": np.zeros(3)}, best=False)
        with pytest.raises(RuntimeError):                    # a failing transaction changes nothing
            with w.transaction() as f:
                f.attrs["epochs_done"] = 99
                raise RuntimeError("boom")
    rec = read_run(path)
    assert (rec.epochs_done, rec.state_epoch) == (2, 2)
    assert rec.weights()["w"].tolist() == [2.0] * 3 and rec.weights("best")["w"].tolist() == [1.0] * 3
    arrays, meta = rec.state()
    assert meta["progress"]["epochs_done"] == 2 and np.isnan(meta["progress"]["best_val"])
    step = arrays["optimizers"]["unit2"]["0"]["step"]
    assert step.dtype == np.float32 and step.shape == () and float(step) == 3.0
    np.testing.assert_array_equal(arrays["rng"]["generator"], np.arange(16, dtype=np.uint8))
    assert "state" not in rec.groups


def test_a_second_writer_is_refused_with_the_holders_name(tmp_path):
    path = tmp_path / "locked.h5"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom ffneuro.store import RunWriter\n"
         "w = RunWriter(sys.argv[1], config={}, environment={}, unit_names=['u'], accounting={})\n"
         "print('ready', flush=True)\ntime.sleep(60)\n", str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        before = path.read_bytes()
        for attempt in (lambda: RunWriter.open(path), lambda: new_writer(path, force=True)):
            with pytest.raises(RunFileError, match=rf"being written by pid {holder.pid} on host") as info:
                attempt()
            assert "\n" not in str(info.value)
        assert path.read_bytes() == before and not path.with_name("locked.new.h5").exists()
        assert read_run(path).writer().pid == holder.pid
    finally:
        holder.kill()
        holder.wait()
    assert read_run(path).writer() is None                  # the kernel dropped the dead holder's lock
    with RunWriter.open(path) as w:                         # and the next writer takes over
        w.append_epoch({"loss": 1.0})


def test_a_full_disk_leaves_the_last_commit_and_says_how_much_was_needed(tmp_path, monkeypatch):
    import errno

    path = tmp_path / "full.h5"
    w = new_writer(path)
    w.append_epoch({"loss": 1.0})
    before = path.read_bytes()
    real_write = os.write

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(RunFileError, match=r"disk full: writing .*full\.h5 needs \d+\.\d KB") as info:
        w.append_epoch({"loss": 0.5})
    monkeypatch.setattr(os, "write", real_write)
    assert "\n" not in str(info.value) and "keeps its last committed state" in str(info.value)
    assert path.read_bytes() == before and list(tmp_path.glob(".*.tmp")) == []
    w.append_epoch({"loss": 0.25})                          # space is back: the writer carries on
    np.testing.assert_array_equal(read_run(path).metrics["loss"], [1.0, 0.25])
    w.close()


def test_read_only_run_cannot_be_opened_for_writing(tmp_path):
    path = tmp_path / "ro.h5"
    new_writer(path).finish()
    path.chmod(0o444)
    try:
        with pytest.raises(RunFileError, match="read-only"):
            RunWriter.open(path)
    finally:
        path.chmod(0o644)
