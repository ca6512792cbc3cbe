"""What the README promises about run files, proved with real processes: one writer per file, epochs
committed whole, ``--force`` that never costs the old run, a full disk, kills at random instants,
bit-identical resume, and divergence that fails loudly."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from ffneuro.errors import RunFileError
from ffneuro.store import holder_of, read_run

TINY = ["--preset", "smoke", "--train-limit", "200", "--val-size", "100"]
TIMING_KEYS = {"epoch_train_time_s", "wall_time_s", "images_per_s"}


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def ffneuro(cwd: Path, *args, timeout: float = 300) -> subprocess.CompletedProcess:
    """``ffneuro ARGS`` in a fresh process (outside the repo root, whose ffneuro/ would shadow the install)."""
    return subprocess.run([sys.executable, "-m", "ffneuro.cli", "-q", *map(str, args)], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=timeout)


def start(cwd: Path, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ffneuro.cli", "-q", *map(str, args)], cwd=cwd, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_epochs(path: Path, epochs: int, proc: subprocess.Popen, timeout: float = 240) -> None:
    """Poll until ``path`` has ``epochs`` committed epochs (readers never see a half-written file)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and read_run(path).epochs_done >= epochs:
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended early: {proc.returncode} {proc.stderr.read()}")
        time.sleep(0.02)
    raise AssertionError(f"{path} did not reach {epochs} epochs in {timeout} s")


def error_line(stderr: str) -> str:
    """The one ``Error:`` line of a failed command (and no traceback)."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, stderr
    return errors[0]


def assert_consistent(path: Path) -> int:
    """Every part of a run file tells the same epoch: metrics rows, final weights, resume state."""
    rec = read_run(path)
    e = rec.epochs_done
    assert all(len(v) == e for v in rec.metrics.values())
    with h5py.File(path, "r") as f:
        assert list(f["metrics/epoch"][()]) == list(range(1, e + 1))
        if e:
            assert f["weights/final"].attrs["epoch"] == e and f["state"].attrs["epoch"] == e
            assert f["weights/best"].attrs["epoch"] <= e
    return e


# ------------------------------------------------------------------------------------------ one writer


def test_a_second_writer_of_a_live_run_is_refused_and_changes_nothing(tmp_path):
    run = tmp_path / "run.h5"
    first = start(tmp_path, "train", *TINY, "--epochs", "500", "--out", run)
    try:
        wait_for_epochs(run, 1, first)
        listing = json.loads(ffneuro(tmp_path, "runs", "list", ".", "--json").stdout)["runs"]
        assert listing[0]["status"] == "running" and listing[0]["writer"]["pid"] == first.pid
        for args in (["train", *TINY, "--epochs", "2", "--out", run, "--force"], ["train", "--resume", run]):
            second = ffneuro(tmp_path, *args)
            assert second.returncode == 1
            assert f"run.h5 is being written by pid {first.pid} on host" in error_line(second.stderr)
        assert not (tmp_path / "run.new.h5").exists()
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=60)
    finally:
        first.kill()
    assert first.returncode == 143, err
    rec = read_run(run)
    assert rec.status == "interrupted" and rec.message == "stopped by SIGTERM" and rec.config["epochs"] == 500
    assert assert_consistent(run) >= 1
    assert holder_of(run) is None and not run.with_name("run.h5.lock").exists()


def test_force_keeps_the_old_run_until_the_new_one_completes(tmp_path):
    run = tmp_path / "run.h5"
    assert ffneuro(tmp_path, "train", *TINY, "--epochs", "1", "--out", run).returncode == 0
    old = run.read_bytes()
    new = start(tmp_path, "train", *TINY, "--epochs", "4", "--lr", "0.002", "--out", run, "--force")
    wait_for_epochs(tmp_path / "run.new.h5", 1, new)
    new.send_signal(signal.SIGTERM)
    _, err = new.communicate(timeout=60)
    assert new.returncode == 143, err
    assert run.read_bytes() == old                                  # the complete run is still there, untouched
    assert "--resume" in err and "run.new.h5" in err
    pending = read_run(tmp_path / "run.new.h5")
    assert (pending.status, pending.replaces, pending.pending) == ("interrupted", "run.h5", True)
    listing = json.loads(ffneuro(tmp_path, "runs", "list", ".", "--json").stdout)["runs"]
    assert {Path(r["run"]).name: r["status"] for r in listing} == {
        "run.h5": "complete", "run.new.h5": "interrupted, replaces run.h5"}

    resumed = ffneuro(tmp_path, "train", "--resume", "run.new.h5", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["run"] == "run.h5"
    assert not (tmp_path / "run.new.h5").exists()
    rec = read_run(run)
    assert (rec.status, rec.epochs_done, rec.config["epochs"], rec.config["lr"]) == ("complete", 4, 4, 0.002)


# ------------------------------------------------------------------------------------------- full disk


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB tmpfs (skipped where mounting is not allowed)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _fill(folder: Path) -> Path:
    """Take every free byte of ``folder``'s file system."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        for block in (65536, 1):
            try:
                while True:
                    f.write(b"\0" * block)
            except OSError:
                pass
    return filler


def test_a_full_disk_stops_the_run_with_one_line_and_keeps_its_last_epoch(small_disk, tmp_path):
    run = small_disk / "run.h5"
    proc = start(tmp_path, "train", *TINY, "--epochs", "8", "--out", run)
    try:
        wait_for_epochs(run, 1, proc)
        filler = _fill(small_disk)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    line = error_line(err)
    assert line.startswith(f"Error: disk full: writing {run} needs ") and " free in " in line, line
    epochs = assert_consistent(run)                                 # opens, and says one epoch everywhere
    assert epochs >= 1 and list(small_disk.glob(".*.tmp")) == []

    before = run.read_bytes()                                       # the profiler prints and warns, stores nothing
    prof = ffneuro(tmp_path, "profile", run, "--hw", "loihi")
    assert prof.returncode == 0 and "not stored" in prof.stderr and "disk full" in prof.stderr, prof.stderr
    assert run.read_bytes() == before and "Traceback" not in prof.stderr

    filler.unlink()                                                 # space is back: the run continues
    again = ffneuro(tmp_path, "train", "--resume", run)
    assert again.returncode == 0, again.stderr
    rec = read_run(run)
    assert (rec.status, rec.epochs_done) == ("complete", 8)


# ---------------------------------------------------------------------------------- random-instant kills

STRESS = """
import sys
import numpy as np
from ffneuro.store import RunWriter, read_run
path = sys.argv[1]
try:
    w, start = RunWriter.open(path), read_run(path).epochs_done
except Exception:
    w, start = RunWriter(path, config={}, environment={}, unit_names=["u1", "u2"], accounting={}), 0
print("ready", flush=True)
for e in range(start + 1, 10**9):
    weights = {"a": np.full(60000, e, np.float64), "b": np.full((64, 64), e, np.float32), "c": np.full(7, e)}
    w.commit_epoch(e, {"loss": float(e)}, {"g": [e, -e]}, weights, best=e % 3 == 0,
                   state={"s": np.full(3000, e), "rng": {"x": np.full(5, e, np.uint8)}}, state_meta={"epoch": e})
"""


def test_kills_at_random_instants_never_leave_a_mixed_or_broken_file(tmp_path):
    """40 SIGKILLs of a committing writer at random (seeded) instants: after each, the file opens, every
    part of it is from one epoch, the lock is free, and the next writer carries on from there."""
    path = tmp_path / "stress.h5"
    rng = random.Random(20261129)
    last = 0
    for _ in range(40):
        proc = subprocess.Popen([sys.executable, "-c", STRESS, str(path)], cwd=tmp_path, stdout=subprocess.PIPE,
                                text=True, env=_env())
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.25))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        rec = read_run(path)
        e = rec.epochs_done
        assert e >= last
        last = e
        assert rec.metrics.get("loss", np.zeros(0)).tolist() == [float(i) for i in range(1, e + 1)]
        assert rec.unit_metrics.get("g", np.zeros((0, 2))).tolist() == [[i, -i] for i in range(1, e + 1)]
        if e:
            final = rec.weights("final")
            assert all(np.all(a == e) for a in final.values()), {k: np.unique(a) for k, a in final.items()}
            with h5py.File(path, "r") as f:
                assert f["weights/final"].attrs["epoch"] == e
                if e >= 3:
                    b = int(f["weights/best"].attrs["epoch"])
                    assert b == e - e % 3 and all(np.all(f["weights/best"][k][()] == b) for k in ("a", "b", "c"))
            arrays, meta = rec.state()
            assert rec.state_epoch == e and meta == {"epoch": e}
            assert np.all(arrays["s"] == e) and np.all(arrays["rng"]["x"] == e)
        assert holder_of(path) is None
    assert last >= 20, "the writer barely committed: the kills did not exercise much"


def test_sigterm_at_random_instants_always_stops_cleanly(tmp_path):
    """Eight SIGTERMs at random instants of a training run that is resumed after each: every one stops the
    process within seconds, and the file is consistent and resumable."""
    run = tmp_path / "run.h5"
    rng = random.Random(7)
    args = ["train", *TINY, "--epochs", "400", "--out", run]
    for i in range(8):
        proc = start(tmp_path, *args) if i == 0 else start(tmp_path, "train", "--resume", run)
        if i == 0:
            wait_for_epochs(run, 1, proc)
        time.sleep(rng.uniform(0.0, 1.5))
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError("SIGTERM was not honoured within 60 s") from None
        assert proc.returncode in (143, -signal.SIGTERM), err   # -15: it came before ffneuro's handler was in place
        assert "Traceback" not in err
        assert read_run(run).status in ("interrupted", "running")
        assert_consistent(run)


# -------------------------------------------------------------------------------------------- resume


@pytest.mark.parametrize("algo", ["ff", "bp"])
def test_resume_after_kill_9_is_bit_identical_to_one_go(tmp_path, algo):
    args = [*TINY, "--algo", algo, "--epochs", "5", "--eval-every", "2", "--augment", "crop+flip"]
    assert ffneuro(tmp_path, "train", *args, "--out", "one.h5").returncode == 0
    proc = start(tmp_path, "train", *args, "--out", "two.h5")
    wait_for_epochs(tmp_path / "two.h5", 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = read_run(tmp_path / "two.h5")
    assert killed.status == "running" and 2 <= killed.epochs_done < 5
    listing = json.loads(ffneuro(tmp_path, "runs", "list", ".", "--json").stdout)["runs"]
    assert {Path(r["run"]).name: r["status"] for r in listing}["two.h5"] == "crashed"

    conflict = ffneuro(tmp_path, "train", "--resume", "two.h5", "--lr", "0.5")
    stored_lr = killed.config["lr"]
    assert conflict.returncode == 1 and f"lr 0.5 (the run has {stored_lr!r})" in error_line(conflict.stderr)
    done = ffneuro(tmp_path, "train", "--resume", "two.h5")
    assert done.returncode == 0, done.stderr
    again = ffneuro(tmp_path, "train", "--resume", "two.h5")
    assert again.returncode == 1 and "is complete (5 epochs); nothing to resume" in error_line(again.stderr)

    one, two = read_run(tmp_path / "one.h5"), read_run(tmp_path / "two.h5")
    assert (two.status, two.epochs_done) == ("complete", 5)
    for which in ("final", "best"):
        a, b = one.weights(which), two.weights(which)
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a), which
    for name in set(one.metrics) - TIMING_KEYS:
        np.testing.assert_array_equal(one.metrics[name], two.metrics[name], err_msg=name)
    for name in one.unit_metrics:
        np.testing.assert_array_equal(one.unit_metrics[name], two.unit_metrics[name], err_msg=name)
    for group in ("test", "activity"):
        for key, value in one.groups[group].items():
            if key != "attrs":
                np.testing.assert_array_equal(value, two.groups[group][key], err_msg=f"{group}/{key}")
    assert one.groups["summary"]["best_epoch"] == two.groups["summary"]["best_epoch"]


# ----------------------------------------------------------------------------------------- divergence


def test_a_diverging_run_fails_loudly_and_keeps_its_last_good_epoch(tmp_path):
    run = tmp_path / "div.h5"
    proc = ffneuro(tmp_path, "train", *TINY, "--epochs", "3", "--lr", "10", "--out", run)
    assert proc.returncode == 1
    line = error_line(proc.stderr)
    assert "diverged at epoch 1" in line and "loss is" in line and "keeps 0 committed epoch(s)" in line, line
    rec = read_run(run)
    assert (rec.status, rec.failure, rec.epochs_done) == ("failed", "diverged", 0)
    assert rec.message in line


def test_stale_lock_and_temporaries_of_a_killed_writer_do_not_block(tmp_path):
    path = tmp_path / "r.h5"
    proc = subprocess.Popen([sys.executable, "-c", STRESS, str(path)], cwd=tmp_path, stdout=subprocess.PIPE,
                            text=True, env=_env())
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.2)
    proc.kill()
    proc.wait()
    (tmp_path / ".r.h5.99999.tmp").write_bytes(b"half a file")     # what a writer killed mid-write leaves
    assert (tmp_path / "r.h5.lock").exists() and holder_of(path) is None
    with pytest.raises(RunFileError, match="no such file"):
        read_run(tmp_path / "missing.h5")
    from ffneuro.store import RunWriter

    with RunWriter.open(path) as w:
        w.write_group("note", {"x": 1})
    assert not (tmp_path / ".r.h5.99999.tmp").exists() and not (tmp_path / "r.h5.lock").exists()


# ------------------------------------------------------------------------------------- sweeps, data, write-backs


def test_an_interrupted_sweep_resumes_its_point_from_the_last_epoch(tmp_path):
    out = tmp_path / "grid"
    args = ["sweep", *TINY, "--epochs", "4", "--filters", "4", "--seeds", "0", "--out-dir", out]
    proc = start(tmp_path, *args)
    point = out / "seed=0.h5"
    wait_for_epochs(point, 1, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    kept = read_run(point).epochs_done
    assert json.loads((out / "sweep.json").read_text())["points"][0]["status"] == "interrupted"
    again = subprocess.run([sys.executable, "-m", "ffneuro.cli", *map(str, args), "--json"], cwd=tmp_path,
                           env=_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert (json.loads(again.stdout)["resumed"], json.loads(again.stdout)["trained"]) == (1, 0)
    assert f"resuming after epoch {kept}" in again.stderr
    rec = read_run(point)
    assert (rec.status, rec.epochs_done) == ("complete", 4) and rec.groups["summary"]["wall_time_s"] > 0


def test_eval_and_cam_find_the_runs_data_without_being_told(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    data.mkdir()
    np.savez(data / "set.npz", x_train=rng.integers(0, 255, (300, 12, 12), np.uint8), y_train=np.arange(300) % 3,
             x_test=rng.integers(0, 255, (40, 12, 12), np.uint8), y_test=np.arange(40) % 3)
    trained = ffneuro(data, "train", "--preset", "smoke", "--dataset", "npz:set.npz", "--val-size", "50",
                      "--epochs", "1", "--out", tmp_path / "run.h5")
    assert trained.returncode == 0, trained.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    evaluated = ffneuro(elsewhere, "eval", tmp_path / "run.h5", "--json")    # a relative npz path, another cwd
    assert evaluated.returncode == 0, evaluated.stderr
    assert set(json.loads(evaluated.stdout)["accuracy"]) == {"goodness", "linear"}


def test_profile_and_cam_on_a_read_only_run_print_and_warn(tmp_path):
    run = tmp_path / "ro.h5"
    assert ffneuro(tmp_path, "train", *TINY, "--epochs", "1", "--out", run).returncode == 0
    run.chmod(0o444)
    before = run.read_bytes()
    prof = ffneuro(tmp_path, "profile", run, "--hw", "loihi")
    assert prof.returncode == 0 and "energy" in prof.stdout.lower(), prof.stderr
    assert "not stored" in prof.stderr and "read-only" in prof.stderr
    quiet = ffneuro(tmp_path, "profile", run, "--hw", "loihi", "--no-store")
    assert quiet.returncode == 0 and "not stored" not in quiet.stderr
    cam = ffneuro(tmp_path, "cam", run, "--samples", "1", "--out", tmp_path / "cam", "--no-store")
    assert cam.returncode == 0 and "maps not stored" in cam.stdout, cam.stderr
    assert run.read_bytes() == before
    run.chmod(0o644)
    stored = ffneuro(tmp_path, "profile", run, "--hw", "loihi")
    assert stored.returncode == 0 and "profile-loihi" in read_run(run).groups


def test_non_finite_flags_are_refused_before_anything_runs(tmp_path):
    for flag, value in (("--lr", "inf"), ("--theta", "nan"), ("--linear-lr", "-inf")):
        proc = ffneuro(tmp_path, "train", *TINY, flag, value, "--out", tmp_path / "x.h5")
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
        assert not (tmp_path / "x.h5").exists()
