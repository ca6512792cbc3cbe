"""Hostile files and shared folders (issue 18): no symlink or HDF5 trick makes ffneuro read or overwrite a
file outside the run, and every bad file is one line that names it.

Each case builds its hostile file with tests/hostile_files.py, checksums the victims before and after,
and asserts one named-file error (or safe behaviour). Cases that need a second user run only as root.
"""
from __future__ import annotations

import errno
import json
import os
import resource
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import pytest
from cli_runner import invoke as cli
from hostile_files import (
    BAD_ATTRIBUTES,
    STRUCTURES,
    checksums,
    external_link,
    external_storage,
    fill_value_bomb,
    good_run,
    victim,
    virtual_dataset,
)

from ffneuro.errors import RunFileError
from ffneuro.store import RunWriter, holder_of, read_run
from ffneuro.store.atomic import remove_stale_temps, replace_file
from ffneuro.store.lock import RunLock
from ffneuro.train.runfile import plan_run

ROOT = os.geteuid() == 0
NOBODY = 65534
needs_root = pytest.mark.skipif(not ROOT, reason="a second user needs root")
linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/locks and description locks are Linux's")




def one_error(result) -> str:
    """The single ``Error:`` line of a failed command, with no internal error and no traceback."""
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "internal error" not in lines[0] and "Traceback" not in result.output, result.output
    return lines[0]


def refused(path: Path, *fragments: str, read=read_run) -> str:
    """``read(path)`` raises one RunFileError line naming ``path`` and holding every fragment."""
    with pytest.raises(RunFileError) as info:
        read(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def _holder(script: str, *args) -> subprocess.Popen:
    """A helper process running ``script`` that prints 'ready' once it holds what it should."""
    proc = subprocess.Popen([sys.executable, "-c", script, *map(str, args)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _stop(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait()


# ------------------------------------------------------------------------------------ lock and temp files


def test_a_symlinked_lock_file_is_refused_and_its_target_untouched(tmp_path):
    secret = victim(tmp_path, "root-owned-0600")
    run = tmp_path / "run.h5"
    run.with_name("run.h5.lock").symlink_to(secret)
    before = checksums(secret, run.with_name("run.h5.lock"))
    with pytest.raises(RunFileError, match="symbolic link") as info:
        RunWriter(run, config={}, environment={}, unit_names=["u"], accounting={})
    assert "run.h5.lock" in str(info.value) and "\n" not in str(info.value)
    assert checksums(secret, run.with_name("run.h5.lock")) == before and not run.exists()


def test_a_lock_file_is_created_0600_and_checked_after_opening(tmp_path):
    run = tmp_path / "run.h5"
    with RunLock(run) as lock:
        st = os.stat(lock.sidecar, follow_symlinks=False)
        assert stat.S_ISREG(st.st_mode) and st.st_mode & 0o777 == 0o600 and st.st_uid == os.geteuid()
    fifo = tmp_path / "fifo.h5.lock"
    os.mkfifo(fifo)                                   # opening a FIFO for reading would hang a reader forever
    assert holder_of(tmp_path / "fifo.h5") is None
    with pytest.raises(RunFileError, match="not a regular file"):
        RunLock(tmp_path / "fifo.h5").acquire()


def test_a_hard_linked_lock_file_is_refused(tmp_path):
    secret = victim(tmp_path, "secret")
    os.link(secret, tmp_path / "run.h5.lock")
    before = checksums(secret)
    with pytest.raises(RunFileError, match="hard link"):
        RunLock(tmp_path / "run.h5").acquire()
    assert checksums(secret) == before


@needs_root
def test_a_lock_file_of_another_user_is_reported_as_such(tmp_path):
    sidecar = tmp_path / "run.h5.lock"
    sidecar.write_text("{}")
    os.chown(sidecar, NOBODY, NOBODY)
    with pytest.raises(RunFileError, match=f"owned by another user \\(uid {NOBODY}\\)"):
        RunLock(tmp_path / "run.h5").acquire()
    assert sidecar.read_text() == "{}"


HOLD = """
import fcntl, json, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
if sys.argv[2]:
    os.write(fd, sys.argv[2].replace('PID', str(os.getpid())).encode())
if int(sys.argv[3]):
    os.setuid(int(sys.argv[3]))
fcntl.flock(fd, fcntl.LOCK_SH if sys.argv[4] == 'sh' else fcntl.LOCK_EX)
print('ready', flush=True)
import time; time.sleep(60)
"""


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@linux
def test_a_lock_held_by_another_process_is_not_blamed_on_the_dead_pid_in_its_label(tmp_path):
    dead = _dead_pid()
    label = json.dumps({"pid": dead, "host": socket.gethostname(), "since": "2026-01-01T00:00:00+00:00"})
    holder = _holder(HOLD, tmp_path / "crashed.h5.lock", label, 0, "sh")
    try:
        with pytest.raises(RunFileError) as info:
            RunLock(tmp_path / "crashed.h5").acquire()
        message = str(info.value)
        assert f"pid {dead}" in message and "not running" in message, message
        assert f"pid {holder.pid}" in message and "\n" not in message, message
        assert holder_of(tmp_path / "crashed.h5") is None     # a shared lock is a reader's: no live writer
    finally:
        _stop(holder)


@needs_root
@linux
def test_a_lock_held_by_another_user_is_reported_as_such(tmp_path):
    sidecar = tmp_path / "crashed.h5.lock"         # an old world-readable sidecar another user flock'ed
    holder = _holder(HOLD, sidecar, json.dumps({"pid": _dead_pid(), "host": socket.gethostname()}), NOBODY, "sh")
    try:
        with pytest.raises(RunFileError, match=f"another user \\(uid {NOBODY}"):
            RunLock(tmp_path / "crashed.h5").acquire()
    finally:
        _stop(holder)


def test_the_holder_message_never_prints_an_empty_since(tmp_path):
    label = json.dumps({"pid": "PID", "host": socket.gethostname(), "since": ""}).replace('"PID"', "PID")
    holder = _holder(HOLD, tmp_path / "run.h5.lock", label, 0, "ex")
    try:
        with pytest.raises(RunFileError, match=f"being written by pid {holder.pid} on host") as info:
            RunLock(tmp_path / "run.h5").acquire()
        assert "since" not in str(info.value), str(info.value)
    finally:
        _stop(holder)


@linux
def test_a_read_probe_never_makes_a_writer_fail(tmp_path, monkeypatch):
    """A writer that starts while a reader probes the lock (runs list, a sweep) takes it all the same."""
    import fcntl

    run = tmp_path / "r.h5"
    _stop(_holder("import sys, time\nfrom ffneuro.store.lock import RunLock\nRunLock(sys.argv[1]).acquire()\n"
                  "print('ready', flush=True)\ntime.sleep(60)\n", run))    # killed: its sidecar stays, unheld
    assert run.with_name("r.h5.lock").exists()
    probing, done = threading.Event(), threading.Event()
    real_flock = fcntl.flock

    def slow_shared(fd, op):                         # a probe that holds its shared lock until the writer tried
        real_flock(fd, op)
        if op & fcntl.LOCK_SH and threading.current_thread().name == "probe":
            probing.set()
            done.wait(5)

    monkeypatch.setattr(fcntl, "flock", slow_shared)
    probe = threading.Thread(target=holder_of, args=(run,), name="probe")
    probe.start()
    probing.wait(1)
    try:
        RunLock(run).acquire().release()
    finally:
        done.set()
        probe.join()


def test_a_second_train_without_force_on_a_live_run_names_the_holder(tmp_path, monkeypatch):
    run = good_run(tmp_path, "live.h5", status="running")
    holder = _holder("import sys, time\nfrom ffneuro.store import RunWriter\nw = RunWriter.open(sys.argv[1])\n"
                     "print('ready', flush=True)\ntime.sleep(60)\n", run)
    try:
        before = checksums(run)
        with pytest.raises(RunFileError, match=f"being written by pid {holder.pid}"):
            plan_run("smoke", {}, out=run)
        assert checksums(run) == before
    finally:
        _stop(holder)


def test_a_symlinked_temp_file_is_never_written_through(tmp_path):
    run = good_run(tmp_path, "run.h5", status="running")
    secret = victim(tmp_path, "victim.txt")
    before = checksums(secret)
    with RunWriter.open(run) as w:                  # between two commits, a neighbour links a guessable name
        for name in (f".run.h5.{os.getpid()}.tmp", *(f".run.h5.{c * 8}.tmp" for c in "abc")):
            (tmp_path / name).symlink_to(secret)
        w.append_epoch({"loss": 0.5})
        w.finish("complete")
    assert checksums(secret) == before and read_run(run).epochs_done == 2


def test_temp_files_are_0600_while_written(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append(Path(src).name)
        real_replace(src, dst)

    target = tmp_path / "notes.txt"
    monkeypatch.setattr(os, "replace", spy)
    real_write = os.write
    modes = []

    def write(fd, data):
        modes.append(os.fstat(fd).st_mode & 0o777)
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    replace_file(target, b"hello")
    assert modes and set(modes) == {0o600}, modes
    assert seen and seen[0] != f".notes.txt.{os.getpid()}.tmp"           # not a name others can guess
    assert target.read_bytes() == b"hello"


def test_glob_characters_in_a_run_name_delete_no_other_file(tmp_path):
    others = [tmp_path / ".abc.h5.12345.tmp", tmp_path / ".a-notes.h5.backup.tmp", tmp_path / ".a.h5.x.h5.1.tmp"]
    for p in others:
        p.write_bytes(b"another run's commit in progress")
    before = checksums(*others)
    with RunWriter(tmp_path / "a*.h5", config={}, environment={}, unit_names=["u"], accounting={}) as w:
        w.append_epoch({"loss": 1.0})
    remove_stale_temps(tmp_path / "a.h5")
    assert checksums(*others) == before


def test_a_read_only_file_system_is_one_line(tmp_path, monkeypatch):
    target = tmp_path / "out.csv"
    real_open, real_unlink = os.open, os.unlink

    def read_only(*a, **kw):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(os, "open", lambda p, *a, **kw: read_only() if str(tmp_path) in str(p) else real_open(p, *a, **kw))
    monkeypatch.setattr(os, "unlink", lambda p, *a, **kw: read_only() if str(tmp_path) in str(p) else real_unlink(p, *a, **kw))
    with pytest.raises(RunFileError, match="Read-only file system") as info:
        replace_file(target, b"a,b\n")
    assert str(target) in str(info.value) and "\n" not in str(info.value)


# ------------------------------------------------------------------------------------------ HDF5 tricks


def test_external_storage_is_refused_and_the_secret_never_printed(tmp_path):
    secret = victim(tmp_path, "secret.txt", b"TOP-SECRET-PASSWORD\n")
    leak = external_storage(tmp_path, secret)
    refused(leak, "external storage", "/summary/leak")
    result = cli("runs", "show", leak, "--json")
    assert "TOP-SECRET" not in result.output and str(leak) in one_error(result)


def test_external_storage_in_the_weights_is_never_written_by_a_resume(tmp_path):
    target = victim(tmp_path, "victim3.bin", b"\0" * 16)
    path = external_storage(tmp_path, target, where="weights/final/units.0.w", name="ext.h5")
    with h5py.File(path, "a") as f:
        f.attrs["status"] = "interrupted"
    before = checksums(target)
    refused(path, "external storage", read=RunWriter.open)
    assert str(path) in one_error(cli("train", "--resume", path))
    assert str(path) in one_error(cli("eval", path))
    assert checksums(target) == before


def test_a_virtual_dataset_is_refused(tmp_path):
    refused(virtual_dataset(tmp_path, tmp_path / "source.h5"), "virtual dataset", "/summary/mapped")


def test_an_external_link_is_refused(tmp_path):
    refused(external_link(tmp_path, tmp_path / "other.h5"), "external link", "/summary/away")


STRUCTURE_PROBLEMS = {
    "soft_link": "soft link", "soft_link_loop": "soft link", "hard_link_loop": "more than once",
    "deep_groups": "nested deeper than", "fill_value_bomb": "too large", "string_fill_bomb": "too large",
    "reference_attribute": "unsupported", "compound_dataset": "unsupported",
}


@pytest.mark.parametrize("case", sorted(STRUCTURES))
def test_a_malformed_structure_is_one_named_error(tmp_path, case):
    path = STRUCTURES[case](tmp_path)
    refused(path, STRUCTURE_PROBLEMS[case])
    assert str(path) in one_error(cli("runs", "show", path, "--json"))


ATTRIBUTE_PROBLEMS = {
    "schema_version_text": "'schema_version'", "schema_version_nan": "'schema_version'",
    "schema_version_array": "'schema_version'", "schema_array": "'schema'", "status_int": "'status'",
    "epochs_done_text": "'epochs_done'", "created_array": "'created'", "replaces_int": "'replaces'",
    "config_list": "/config", "config_null": "/config", "config_deep": "/config",
    "environment_text": "/environment", "metric_scalar": "/metrics/loss", "unit_names_numbers": "/accounting/unit",
    "test_acc_text": "/test/acc_linear",
}


@pytest.mark.parametrize("case", sorted(BAD_ATTRIBUTES))
def test_a_badly_typed_attribute_is_one_named_error(tmp_path, case):
    path = BAD_ATTRIBUTES[case](tmp_path)
    refused(path, ATTRIBUTE_PROBLEMS[case])
    assert str(path) in one_error(cli("runs", "show", path))


def test_a_fill_value_bomb_is_refused_before_any_data_is_read(tmp_path):
    bomb = fill_value_bomb(tmp_path)
    assert bomb.stat().st_size < 200_000
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    refused(bomb, "too large", "3.0 GB")
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) / 1024
    assert grown_mb < 50, f"reading the bomb's shape grew the peak RSS by {grown_mb:.0f} MB"


def test_runs_list_lists_every_good_run_beside_every_hostile_file(tmp_path):
    good = [good_run(tmp_path, "good1.h5"), good_run(tmp_path, "good2.h5", status="interrupted")]
    secret = victim(tmp_path, "secret.txt")
    bad = [external_storage(tmp_path, secret), virtual_dataset(tmp_path, tmp_path / "src.hdf5"),
           external_link(tmp_path, tmp_path / "other.hdf5")]
    bad += [make(tmp_path) for make in STRUCTURES.values()]
    bad += [make(tmp_path) for make in BAD_ATTRIBUTES.values()]
    before = checksums(secret)
    result = cli("runs", "list", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    listing = json.loads(result.stdout)
    assert sorted(r["run"] for r in listing["runs"]) == sorted(map(str, good))
    assert sorted(listing["skipped"]) == sorted(map(str, bad))
    assert checksums(secret) == before


# ------------------------------------------------------------------------------------------------ replaces


def _pending(folder: Path, name: str, replaces: str, status: str) -> Path:
    path = good_run(folder, name, status=status)
    with h5py.File(path, "a") as f:
        f.attrs["replaces"] = replaces
    return path


def test_a_renamed_complete_force_run_replaces_nothing(tmp_path):
    other = good_run(tmp_path, "f_TERM_25.h5")
    archived = _pending(tmp_path, "archived.h5", "f_TERM_25.h5", "complete")
    before = checksums(other, archived)
    rec = read_run(archived)
    assert not rec.pending
    result = cli("train", "--resume", archived)
    assert "is complete" in one_error(result)
    assert checksums(other, archived) == before
    listing = json.loads(cli("runs", "list", tmp_path, "--json").stdout)["runs"]
    assert {Path(r["run"]).name: r["status"] for r in listing} == {"archived.h5": "complete", "f_TERM_25.h5": "complete"}


@pytest.mark.parametrize("name,replaces,status", [
    ("crafted.h5", "thesis.tex", "interrupted"), ("x.new.h5", "../thesis.tex", "interrupted"),
    ("thesis.new.h5", "thesis.tex", "interrupted"), ("y.new.h5", "thesis.tex", "interrupted"),
    ("thesis.new.h5", "thesis.tex", "complete"), ("x.new.h5", "/tmp/thesis.tex", "complete")])
def test_a_crafted_replaces_never_writes_the_path_it_names(tmp_path, name, replaces, status):
    (tmp_path / "sub").mkdir()
    folder = tmp_path / "sub"
    thesis = victim(tmp_path, "thesis.tex")
    inner = victim(folder, "thesis.tex")
    path = _pending(folder, name, replaces, status)
    before = checksums(thesis, inner)
    assert not read_run(path).pending
    with RunWriter.open(path) as w:
        assert not w.pending and w.target == path
        w.finish("complete")
    assert checksums(thesis, inner) == before and path.exists()


def test_a_force_run_killed_before_its_rename_is_still_finished_by_resume(tmp_path):
    """The one complete run whose ``replaces`` is honoured: STEM.new.h5 naming STEM.h5, its rename cut short."""
    old = good_run(tmp_path, "run.h5")
    cut = _pending(tmp_path, "run.new.h5", "run.h5", "complete")
    rec = read_run(cut)
    assert rec.cut_short and not rec.pending and rec.destination == old
    result = cli("train", "--resume", cut)
    assert result.exit_code == 0 and "now replaces" in result.output, result.output
    assert not cut.exists() and read_run(old).replaces == "run.h5"


def test_a_pending_run_never_replaces_a_file_that_is_not_a_run(tmp_path):
    notes = victim(tmp_path, "notes.h5", b"my notes, not HDF5\n")
    path = _pending(tmp_path, "notes.new.h5", "notes.h5", "interrupted")
    before = checksums(notes)
    refused(path, "notes.h5", "not an ffneuro run", read=RunWriter.open)
    assert checksums(notes) == before


def test_an_unfinished_force_run_still_replaces_its_own_stem(tmp_path):
    old = good_run(tmp_path, "run.h5")
    pending = _pending(tmp_path, "run.new.h5", "run.h5", "interrupted")
    assert read_run(pending).pending
    with RunWriter.open(pending) as w:
        assert w.pending and w.target == old
        w.finish("complete")
    assert not pending.exists() and read_run(old).status == "complete"


def test_weights_and_state_are_read_within_the_size_bound(tmp_path):
    run = good_run(tmp_path, "w.h5", status="interrupted")
    with h5py.File(run, "a") as f:
        f["weights/final"].create_dataset("huge", shape=(10**9,), dtype="f4", chunks=(2**16,), fillvalue=0.5)
    refused(run, "too large", "/weights/final/huge")
    started = time.monotonic()
    with pytest.raises(RunFileError):
        RunWriter.open(run)
    assert time.monotonic() - started < 2


def test_a_damaged_resume_state_is_one_named_error(tmp_path):
    run = tmp_path / "cut.h5"
    done = cli("-q", "train", "--preset", "smoke", "--train-limit", "50", "--val-size", "20", "--epochs", "1",
               "--out", run)
    assert done.exit_code == 0, done.output
    with h5py.File(run, "a") as f:                  # an interrupted run whose RNG state went missing
        f.attrs["status"] = "interrupted"
        del f["state/rng"]
    assert str(run) in one_error(cli("-q", "train", "--resume", run))


def test_a_run_swapped_for_a_symlink_is_never_read_or_written_through(tmp_path):
    run = good_run(tmp_path, "run.h5", status="running")
    private = good_run(tmp_path, "private.h5")
    private.chmod(0o600)
    before = checksums(private)
    with RunWriter.open(run) as w:                  # between two commits, a neighbour swaps the run for a link
        run.unlink()
        run.symlink_to(private)
        with pytest.raises(RunFileError, match="symbolic link") as info:
            w.append_epoch({"loss": 0.5})
        assert str(run) in str(info.value)
    refused(run, "symbolic link", read=RunWriter.open)
    assert checksums(private) == before and run.is_symlink()
