"""The ``--nproc`` launcher checks the whole plan before it starts a worker (issue 18, items 11 and 12).

A bad value (config, dataset, placement, stages against units, algorithm, an existing --out) is one
``Error:`` line with no worker started and no torchrun traceback; ``--nproc`` is capped at what the
machine can hold unless ``--nproc-over-cap``; a restarted job that finds its run complete exits 0.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runner import invoke as cli

import ffneuro.distributed.launch as launch

TINY = ["--preset", "smoke", "--epochs", "1", "--train-limit", "200", "--val-size", "100"]
DIST_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RESTART_COUNT")




@pytest.fixture
def no_workers(monkeypatch):
    """The launcher's torchrun call, recorded instead of run (a test must never start workers by accident)."""
    for var in DIST_VARS:
        monkeypatch.delenv(var, raising=False)
    started = []

    def call(cmd, *args, **kwargs):
        started.append(cmd)
        return 0

    monkeypatch.setattr(launch.subprocess, "call", call)
    return started


@pytest.fixture
def many_cores(monkeypatch):
    """A machine that holds 64 processes, so the checks after the cap are the ones tested."""
    monkeypatch.setattr(launch, "process_cap", lambda device: (64, "64 CPU cores (test)"))


def one_error(result, *fragments: str) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


BAD = [
    (["--nproc", "1000", "--dataset", "bogus"], ()),
    (["--nproc", "2", "--dataset", "bogus"], ("bogus",)),
    (["--nproc", "2", "--dataset", "npz:/nonexistent/x.npz"], ("x.npz",)),
    (["--nproc", "2", "--parallel", "pipeline", "--placement", "5,5"], ("--placement", "5,5")),
    (["--nproc", "2", "--parallel", "pipeline", "--placement", "0,3"], ("--placement", "0,3")),
    (["--nproc", "2", "--parallel", "pipeline", "--placement", "abc"], ("--placement", "abc")),
    (["--nproc", "2", "--parallel", "pipeline", "--placement", "1,1,1", "--layers", "3"], ("3 ranks", "2 processes")),
    (["--nproc", "2", "--parallel", "pipeline", "--algo", "bp"], ("pipeline", "FF")),
    (["--nproc", "3", "--parallel", "pipeline", "--layers", "2"], ("3 stages", "2")),
    (["--nproc", "2", "--parallel", "none"], ("--parallel none",)),
    (["--nproc", "2", "--placement", "1,1"], ("--parallel pipeline",)),
    (["--nproc", "2", "--algo", "bp", "--readout", "goodness"], ("--readout goodness",)),
    (["--nproc", "2", "--val-size", "100000"], ("val",)),
]


@pytest.mark.parametrize("args,fragments", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_a_bad_launch_is_one_line_and_starts_no_worker(tmp_path, no_workers, many_cores, args, fragments):
    result = cli("train", *TINY, "--out", tmp_path / "run.h5", *args)
    one_error(result, *fragments)
    assert no_workers == []
    assert not (tmp_path / "run.h5").exists()


def test_an_existing_out_is_refused_before_any_worker(tmp_path, no_workers, many_cores):
    out = tmp_path / "run.h5"
    out.write_bytes(b"keep me")
    one_error(cli("train", *TINY, "--out", out, "--nproc", "2"), "exists")
    assert no_workers == [] and out.read_bytes() == b"keep me"


def test_nproc_is_capped_at_what_the_machine_holds(tmp_path, no_workers, monkeypatch):
    monkeypatch.setattr(launch, "process_cap", lambda device: (2, "2 CPU cores"))
    line = one_error(cli("train", *TINY, "--out", tmp_path / "run.h5", "--nproc", "3"),
                     "--nproc 3", "2 CPU cores", "--nproc-over-cap")
    assert no_workers == [], line
    result = cli("train", *TINY, "--out", tmp_path / "run.h5", "--nproc", "3", "--nproc-over-cap")
    assert result.exit_code == 0, result.output
    assert len(no_workers) == 1 and "--nproc-per-node=3" in no_workers[0]
    result = cli("train", *TINY, "--out", tmp_path / "run.h5", "--nproc", "2")
    assert result.exit_code == 0, result.output
    assert len(no_workers) == 2


def test_the_cap_is_cores_on_the_cpu_and_gpus_on_cuda(monkeypatch):
    n, what = launch.process_cap("cpu")
    assert n == len(os.sched_getaffinity(0)) and "CPU" in what
    monkeypatch.setattr(launch.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(launch.torch.cuda, "device_count", lambda: 4)
    assert launch.process_cap("cuda") == (4, "4 GPUs")
    assert launch.process_cap("auto") == (4, "4 GPUs")
    assert launch.process_cap("cpu")[0] == n


def test_a_restarted_job_that_finds_its_run_complete_exits_0(tmp_path, monkeypatch):
    """What a torchrun restart after the final commit runs: same command, TORCHELASTIC_RESTART_COUNT=1."""
    out = tmp_path / "run.h5"
    for var in DIST_VARS:
        monkeypatch.delenv(var, raising=False)
    assert cli("-q", "train", *TINY, "--out", out).exit_code == 0
    before = out.read_bytes()
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    result = cli("-q", "train", *TINY, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["run"] == str(out) and summary["already_complete"] is True and summary["epochs"] == 1
    assert out.read_bytes() == before
    # another config at that path is still refused
    result = cli("-q", "train", *TINY, "--out", out, "--lr", "0.5")
    one_error(result, "exists")


@pytest.mark.skipif(sys.platform != "linux", reason="torchrun jobs are tested on Linux")
def test_the_real_launcher_prints_one_line_and_no_torchrun_traceback(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in DIST_VARS}
    proc = subprocess.run([sys.executable, "-m", "ffneuro.cli", "-q", "train", *TINY, "--out", str(tmp_path / "x.h5"),
                           "--nproc", "2", "--parallel", "pipeline", "--placement", "5,5"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines() == [line for line in proc.stderr.strip().splitlines()
                                                if line.startswith("Error:")], proc.stderr
    assert proc.stderr.count("Error:") == 1 and "ChildFailedError" not in proc.stderr
    assert "--placement" in proc.stderr and not Path(tmp_path / "x.h5").exists()
