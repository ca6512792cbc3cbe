"""Training on several processes with torch.distributed (gloo on the CPU, launched by torchrun): data-parallel
and pipelined units against one process, the bytes on the wire against the accounting, and a torchrun
job that loses a worker to kill -9 and finishes with the same weights as an uninterrupted one."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from ffneuro.accounting.wire import data_parallel_grad_bytes, pipeline_wire_bytes
from ffneuro.blocks import layer_specs
from ffneuro.distributed.data_parallel import share_of
from ffneuro.distributed.launch import make_parallel, strip_launch_flags, torchrun_command
from ffneuro.distributed.placement import auto_placement, parse_placement, stage_units, unit_step_times
from ffneuro.errors import ConfigError
from ffneuro.presets import resolve_config
from ffneuro.store import read_run

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="torchrun jobs are tested on Linux")

TINY = ["--preset", "smoke", "--train-limit", "200", "--val-size", "100"]
TIMING = ("epoch_train_time_s", "wall_time_s", "images_per_s")


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                              "MASTER_PORT", "TORCHELASTIC_RESTART_COUNT")}
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def ffneuro(cwd: Path, *args, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "ffneuro.cli", "-q", *map(str, args)], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=timeout)
    return proc


def assert_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stdout + proc.stderr


def compare(one: Path, other: Path, exact: bool) -> None:
    """Weights and every non-timing metric of two runs: identical, or equal to float tolerance."""
    a, b = read_run(one), read_run(other)
    same = np.array_equal if exact else (lambda x, y: np.allclose(x, y, rtol=1e-3, atol=1e-4, equal_nan=True))
    for which in ("final", "best"):
        wa, wb = a.weights(which), b.weights(which)
        assert wa.keys() == wb.keys()
        for k in wa:
            assert same(wa[k], wb[k]), (which, k, float(np.abs(wa[k] - wb[k]).max()))
    for k, v in a.metrics.items():
        if k not in TIMING and not k.startswith("wire_"):
            assert same(v, b.metrics[k]), (k, v, b.metrics[k])
    for k, v in a.unit_metrics.items():
        assert same(v, b.unit_metrics[k]), (k, v, b.unit_metrics[k])


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    cwd = tmp_path_factory.mktemp("one")
    assert_ok(ffneuro(cwd, "train", *TINY, "--epochs", "2", "--layers", "3", "--out", "one.h5"))
    return cwd / "one.h5"


# ----------------------------------------------------------------------------------------- pure parts


def test_placement_is_parsed_or_balanced_by_cost():
    assert parse_placement("1,2", 3, 2) == [1, 2]
    for text, problem in (("1,1", "places 2 units"), ("3", "names 1 ranks"), ("0,3", "at least one"),
                          ("a,b", "one unit count")):
        with pytest.raises(ConfigError, match=problem):
            parse_placement(text, 3, 2)
    assert auto_placement([1, 1, 1, 1], 2) == [2, 2]
    assert auto_placement([5, 1, 1, 1], 2) == [1, 3]          # the largest stage as small as possible: 5
    assert auto_placement([1, 1, 8], 2) == [2, 1]
    assert list(stage_units([1, 3], 1)) == [1, 2, 3]
    with pytest.raises(ConfigError, match="at least 3 units"):
        auto_placement([1, 1], 3)


def test_measured_unit_times_leave_the_model_untouched():
    """The placement probe trains copies: the model's weights, optimiser states and every later step
    are as if it had never run."""
    import torch

    from ffneuro.models import build_model
    config = resolve_config("smoke", {"layers": 3})
    model = build_model(config, (1, 16, 16), 10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    times = unit_step_times(model, 8, torch.device("cpu"), repeats=2)
    assert len(times) == 3 and all(t > 0 for t in times)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(not u.optimizer.state for u in model.units if u.optimizer is not None)


def test_shares_cover_a_batch_once():
    for n in (1, 7, 50):
        for world in (1, 2, 3):
            rows = [share_of(n, r, world) for r in range(world)]
            assert sum(s.stop - s.start for s in rows) == n and rows[0].start == 0 and rows[-1].stop == n
            assert all(a.stop == b.start for a, b in zip(rows, rows[1:]))


def test_launch_flags_stay_with_the_launcher():
    argv = ["-q", "train", "--nproc", "2", "--epochs", "3", "--max-restarts=1", "--parallel", "pipeline"]
    assert strip_launch_flags(argv) == ["-q", "train", "--epochs", "3", "--parallel", "pipeline"]
    cmd = torchrun_command(2, ["train"], 1)
    assert cmd[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "--max-restarts=1"]
    assert cmd[-3:] == ["-m", "ffneuro.cli", "train"]


def test_parallel_flags_without_processes_are_one_line_errors(tmp_path, monkeypatch):
    for var in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ConfigError, match="needs several processes"):
        make_parallel("data")
    with pytest.raises(ConfigError, match="add --parallel pipeline"):
        make_parallel("data", "1,1")
    proc = ffneuro(tmp_path, "train", *TINY, "--parallel", "pipeline", "--out", tmp_path / "x.h5")
    assert proc.returncode == 1 and proc.stderr.count("Error:") == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "x.h5").exists()


def test_wire_predictions_from_the_specs():
    config = resolve_config("smoke", {"layers": 3})
    specs = layer_specs(config, (1, 16, 16))
    hand_on = [int(np.prod(s.out_shape)) for s in specs]
    # pair objective with a linear readout from unit 1: 2N rows, the neutral pass, and the features so far
    got = pipeline_wire_bytes(specs, [1, 2], 10, pairs=True, linear=True, readout_from=1)
    assert got == [4 * (20 * hand_on[0] + 10 * hand_on[0] + 10 * hand_on[0]), 0.0]
    got = pipeline_wire_bytes(specs, [2, 1], 10, pairs=True, linear=False, readout_from=1)
    assert got == [4 * 20 * hand_on[1], 0.0]
    trained = sum(s.params for s in specs if s.trainable)
    assert data_parallel_grad_bytes(specs, readout_params=42) == 4 * (trained + 42)


def test_the_wire_is_what_the_accounting_says_crosses_unit_boundaries():
    """The same figures as the profiler's interconnect: at a stage boundary after unit k, the bytes the
    accounting says leave unit k in its forward passes (positive, negative, neutral), plus the neutral
    outputs of the readout units up to k, which the readout reads across their boundaries."""
    from ffneuro.accounting import ff_training_costs

    config = resolve_config("smoke", {"layers": 3})
    specs = layer_specs(config, (1, 16, 16))
    cost = ff_training_costs(specs, num_classes=10, batch=10, linear_readout=True, readout_from=2)
    leaves = lambda i, *names: sum(cost.units[i].phase(n).crossing_written for n in names)
    for counts in ([1, 2], [2, 1], [1, 1, 1]):
        wire = pipeline_wire_bytes(specs, counts, 10, pairs=True, linear=True, readout_from=2)
        k = -1
        for r, c in enumerate(counts[:-1]):
            k += c
            features = sum(leaves(j, "forward_neutral") for j in range(1, k + 1))     # readout units 2..k+1
            assert wire[r] == leaves(k, "forward_pos", "forward_neg", "forward_neutral") + features, (counts, r)


# ------------------------------------------------------------------------------------ torchrun jobs


def test_pipelined_units_are_the_same_computation_as_one_process(one_process, tmp_path):
    """Three units on two ranks (1 + 2), then on three (1 + 1 + 1): weights and metrics bit-identical, and
    each rank's bytes on the wire as the accounting predicts."""
    for placement in ("1,2", "1,1,1"):
        out = tmp_path / f"pipe{placement.replace(',', '')}.h5"
        proc = ffneuro(tmp_path, "train", *TINY, "--epochs", "2", "--layers", "3", "--out", out,
                       "--nproc", str(placement.count(",") + 1), "--parallel", "pipeline", "--placement", placement,
                       "--nproc-over-cap")  # 3 ranks on a 2-core CI machine
        assert_ok(proc)
        compare(one_process, out, exact=True)
        rec = read_run(out)
        assert rec.environment["parallel"] == {"mode": "pipeline", "world_size": placement.count(",") + 1,
                                               "placement": [int(c) for c in placement.split(",")],
                                               "placed_by": "given"}
        for r in range(placement.count(",") + 1):
            measured = rec.metrics[f"wire_bytes_per_step_rank{r}"]
            np.testing.assert_array_equal(measured, rec.metrics[f"wire_bytes_per_step_rank{r}_predicted"])
        assert rec.metrics["wire_bytes_per_step_rank0"][0] > 0


def test_data_parallel_units_match_one_process_to_float_tolerance(tmp_path):
    """Two ranks on shares of each batch against one process on the whole batch: the same weights and
    metrics to float tolerance. Plain SGD, because Adam turns the last-bit differences of near-zero
    gradients into lr-sized steps of either sign (its update is about lr × sign(g)); the gradient bytes
    each rank hands to all-reduce per step are what the accounting predicts."""
    args = ["train", *TINY, "--epochs", "2", "--layers", "3", "--optimizer", "sgd", "--lr", "0.05"]
    assert_ok(ffneuro(tmp_path, *args, "--readout", "goodness", "--out", "one.h5"))
    assert_ok(ffneuro(tmp_path, *args, "--readout", "goodness", "--out", "data.h5", "--nproc", "2",
                      "--parallel", "data"))
    compare(tmp_path / "one.h5", tmp_path / "data.h5", exact=False)
    rec = read_run(tmp_path / "data.h5")
    assert rec.environment["parallel"] == {"mode": "data", "world_size": 2}
    specs = layer_specs(resolve_config("smoke", {"layers": 3}), (1, 16, 16))
    np.testing.assert_array_equal(rec.metrics["wire_grad_bytes_per_step"], data_parallel_grad_bytes(specs))
    # with the linear readout (Adam) its gradients travel too
    assert_ok(ffneuro(tmp_path, *args, "--out", "lin.h5", "--nproc", "2", "--parallel", "data"))
    readout = sum(int(np.prod(s.out_shape)) for s in specs) * 10 + 10     # smoke reads out from unit 1
    np.testing.assert_array_equal(read_run(tmp_path / "lin.h5").metrics["wire_grad_bytes_per_step"],
                                  data_parallel_grad_bytes(specs, readout))
    # the run keeps the accounting's prediction beside the measurement, as a pipeline's does
    lin = read_run(tmp_path / "lin.h5").metrics
    np.testing.assert_array_equal(lin["wire_grad_bytes_per_step_predicted"], lin["wire_grad_bytes_per_step"])


def _workers(root: int) -> dict[int, int]:
    """LOCAL_RANK → pid of the torchrun workers below process ``root``."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    found = {}
    for pid in parents:
        p = pid
        while p in parents and p != root and p > 1:
            p = parents[p]
        if p != root:
            continue
        try:
            env = dict(v.split("=", 1) for v in Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0") if "=" in v)
        except OSError:
            continue
        if "LOCAL_RANK" in env and "TORCHELASTIC_RESTART_COUNT" in env:
            found[int(env["LOCAL_RANK"])] = pid
    return found


def _job_after_first_epoch(cwd: Path, argv: list[str], log: Path) -> tuple[subprocess.Popen, dict[int, int]]:
    """Start ``ffneuro -q ARGV`` (a torchrun job writing job.h5, its output to ``log``), wait until job.h5 has
    committed an epoch, and return the job with its two workers' pids (killed with it if that fails)."""
    with open(log, "w") as sink:  # a file, not a pipe nobody reads: torchrun must never block on its output
        job = subprocess.Popen([sys.executable, "-m", "ffneuro.cli", "-q", *argv], cwd=cwd, env=_env(), stdout=sink,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            path = cwd / "job.h5"
            if path.exists() and read_run(path).epochs_done >= 1:
                break
            assert job.poll() is None, log.read_text()
            time.sleep(0.01)
        workers = _workers(job.pid)                             # torchrun puts its workers in their own sessions
        assert set(workers) == {0, 1}, workers
    except BaseException:
        _kill_job(job)
        raise
    return job, workers


def _kill_job(job: subprocess.Popen) -> None:
    """kill -9 of a torchrun job: its workers, then the launcher and torchrun."""
    for pid in _workers(job.pid).values():
        os.kill(pid, signal.SIGKILL)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()


def test_a_killed_worker_restarts_the_job_which_ends_as_if_uninterrupted(tmp_path):
    args = ["train", *TINY, "--epochs", "4", "--parallel", "data", "--nproc", "2"]
    assert_ok(ffneuro(tmp_path, *args, "--out", "ref.h5"))
    log = tmp_path / "job.log"
    job, workers = _job_after_first_epoch(tmp_path, [*args, "--max-restarts", "1", "--out", "job.h5"], log)
    try:
        os.kill(workers[1], signal.SIGKILL)                     # mid-epoch: epochs 2 to 4 are still to come
        assert job.wait(timeout=300) == 0, log.read_text()
    finally:
        if job.poll() is None:
            _kill_job(job)
    rec = read_run(tmp_path / "job.h5")
    assert (rec.status, rec.epochs_done) == ("complete", 4)
    with h5py.File(tmp_path / "job.h5", "r") as f:
        assert int(f.attrs.get("resumed", 0)) >= 1             # the restarted job continued the same file
    assert "continuing job.h5 from its last committed epoch" in log.read_text()
    compare(tmp_path / "ref.h5", tmp_path / "job.h5", exact=True)


def test_a_pipelined_run_killed_and_resumed_is_the_one_process_run(tmp_path):
    """kill -9 of the whole job after its first epoch, then --resume on two pipeline ranks: every rank
    restores its units from rank 0's broadcast, and the run ends bit-identical to one process."""
    args = ["train", *TINY, "--epochs", "4", "--layers", "3"]
    assert_ok(ffneuro(tmp_path, *args, "--out", "one.h5"))
    job, _ = _job_after_first_epoch(tmp_path, [*args, "--nproc", "2", "--parallel", "pipeline", "--out", "job.h5"],
                                    tmp_path / "job.log")
    _kill_job(job)
    assert read_run(tmp_path / "job.h5").epochs_done < 4
    assert_ok(ffneuro(tmp_path, "train", "--resume", "job.h5", "--nproc", "2", "--parallel", "pipeline"))
    compare(tmp_path / "one.h5", tmp_path / "job.h5", exact=True)
    parallel = read_run(tmp_path / "job.h5").environment["parallel"]   # placed by measured step times
    assert parallel["placed_by"] == "time" and len(parallel["unit_step_s"]) == 3
    assert parallel["placement"] == auto_placement(parallel["unit_step_s"], 2)
