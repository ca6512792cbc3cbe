"""The memory guard: a config whose estimated peak does not fit in the free memory is refused up front."""
from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from ffneuro.errors import ConfigError
from ffneuro.presets import resolve_config
from ffneuro.train.memory_guard import (
    MARGIN,
    MARGIN_BYTES,
    available_memory,
    cgroup_free_bytes,
    check_memory,
    estimate_memory,
    parse_meminfo,
)

CPU = torch.device("cpu")
MNIST = {"image_shape": (1, 28, 28), "num_classes": 10}
SPLITS = {"train_images": 50_000, "val_images": 10_000, "test_images": 10_000}
GB = 10**9


def check(config, available, **splits):
    return check_memory(config, **MNIST, **{**SPLITS, **splits}, device=CPU, available=available)


def refusal(config, available, **splits) -> str:
    with pytest.raises(ConfigError) as err:
        check(config, available, **splits)
    message = str(err.value)
    assert "\n" not in message
    return message


def guarded(n: int) -> int:
    return int(n * (1 + MARGIN)) + MARGIN_BYTES


def test_a_normal_config_passes_and_returns_its_estimate():
    config = resolve_config("mnist-small", {})
    need = check(config, 8 * GB)
    assert need.peak == max(need.train_step, need.evaluation) and need.data == 0  # CPU: data already in RAM
    assert 20e6 < need.train_step < need.evaluation < 400e6   # batch 100 trains; 100 images × 10 labels evaluate


def test_a_too_big_batch_is_refused_with_a_batch_size_that_fits():
    config = resolve_config("mnist-small", {"batch_size": 10_000_000})
    message = refusal(config, 2 * GB)
    margins = rf"plus {MARGIN:.0%} and {MARGIN_BYTES // 2**20} MiB"
    assert re.search(rf"needs about [\d.]+ GB \(memory model estimate [\d.]+ GB, {margins}", message)
    assert "but 2.00 GB of RAM is free" in message
    best = int(re.search(r"the largest --batch-size that fits is (\d+)", message).group(1))
    assert "eval-batch-size" not in message   # evaluation fits: only the training batch is named
    check(replace(config, batch_size=best), 2 * GB)   # the proposal fits under the same model ...
    with pytest.raises(ConfigError):
        check(replace(config, batch_size=best + 1), 2 * GB)   # ... and is the largest that does
    # the batch is capped by the training set: the same config fits when the set is small
    assert check(config, 2 * GB, train_images=100).train_step == check(replace(config, batch_size=100), 2 * GB,
                                                                         train_images=100).train_step


def test_a_too_big_eval_batch_is_refused_with_one_that_fits():
    config = resolve_config("mnist-small", {"eval_batch_size": 100_000_000})
    message = refusal(config, 2 * GB)
    best = int(re.search(r"the largest --eval-batch-size that fits is (\d+)", message).group(1))
    assert best % 10 == 0 and "--batch-size that fits" not in message  # FF: whole images × 10 labels
    check(replace(config, eval_batch_size=best), 2 * GB)
    with pytest.raises(ConfigError):
        check(replace(config, eval_batch_size=best + 10), 2 * GB)
    bp = resolve_config("mnist-small", {"algo": "bp", "eval_batch_size": 100_000_000})
    best = int(re.search(r"--eval-batch-size that fits is (\d+)", refusal(bp, 2 * GB)).group(1))
    check(replace(bp, eval_batch_size=best), 2 * GB)


def test_both_and_neither_fitting_are_named():
    config = resolve_config("mnist-small", {"batch_size": 10_000_000, "eval_batch_size": 100_000_000})
    message = refusal(config, 2 * GB)
    assert "--batch-size that fits" in message and "--eval-batch-size that fits" in message
    need_one = guarded(estimate_memory(replace(config, batch_size=1), **MNIST, **SPLITS, device=CPU).train_step)
    message = refusal(config, need_one - 1)
    assert "even --batch-size 1 needs" in message and "but 0." in message


def test_the_guard_can_be_switched_off_with_a_warning(monkeypatch, caplog):
    config = resolve_config("mnist-small", {"batch_size": 10_000_000})
    monkeypatch.setenv("FFNEURO_MEMORY_GUARD", "off")
    with caplog.at_level(logging.WARNING, logger="ffneuro.train.memory_guard"):
        need = check(config, 2 * GB)
    assert need.train_step > 2 * GB
    assert "training anyway" in caplog.text and "largest --batch-size" in caplog.text


def test_unknown_free_memory_refuses_nothing(monkeypatch):
    import ffneuro.train.memory_guard as guard

    monkeypatch.setattr(guard, "available_memory", lambda device: (None, "RAM"))
    config = resolve_config("mnist-small", {"batch_size": 10_000_000})
    assert check_memory(config, **MNIST, **SPLITS, device=CPU).train_step > 10 * GB


def test_data_copied_to_a_gpu_counts():
    config = resolve_config("mnist-small", {})
    need = estimate_memory(config, **MNIST, **SPLITS, device=torch.device("cuda"))
    assert need.data == 70_000 * (28 * 28 + 8)   # uint8 images and int64 labels of all three splits


def test_meminfo_parsing():
    text = "MemTotal:       24731816 kB\nMemFree:        16601512 kB\nMemAvailable:   23745632 kB\nBuffers: 1 kB\n"
    assert parse_meminfo(text) == 23745632 * 1024
    assert parse_meminfo("MemTotal: 1 kB\nMemFree: 1 kB\n") is None


def _write(folder: Path, **files: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name.replace("_", ".", 1)).write_text(text)


def test_cgroup_v2_limit_minus_usage_less_inactive_file(tmp_path):
    _write(tmp_path / "user.slice" / "job", memory_max="4000000000\n", memory_current="1500000000\n")
    (tmp_path / "user.slice" / "job" / "memory.stat").write_text("anon 1000000000\ninactive_file 300000000\n")
    assert cgroup_free_bytes("0::/user.slice/job\n", tmp_path) == 4_000_000_000 - 1_200_000_000
    # an ancestor's tighter limit wins; "max" means no limit
    _write(tmp_path / "user.slice", memory_max="2000000000\n", memory_current="1900000000\n")
    assert cgroup_free_bytes("0::/user.slice/job\n", tmp_path) == 100_000_000
    _write(tmp_path / "user.slice", memory_max="max\n")
    _write(tmp_path / "user.slice" / "job", memory_max="max\n")
    assert cgroup_free_bytes("0::/user.slice/job\n", tmp_path) is None
    # inside a container the cgroup's path does not exist below the mount: the mount's own files count
    _write(tmp_path, memory_max="1000000000\n", memory_current="400000000\n")
    assert cgroup_free_bytes("0::/elsewhere/job\n", tmp_path) == 600_000_000


def test_cgroup_v1_and_missing_files(tmp_path):
    v1 = tmp_path / "memory" / "process_api" / "abc"
    _write(v1, memory_limit_in_bytes="3000000000\n", memory_usage_in_bytes="1000000000\n")
    (v1 / "memory.stat").write_text("cache 500\ntotal_inactive_file 200000000\n")
    proc = "12:pids:/\n4:memory:/process_api/abc\n0::/\n"
    assert cgroup_free_bytes(proc, tmp_path) == 3_000_000_000 - 800_000_000
    _write(v1, memory_limit_in_bytes="9223372036854771712\n")   # v1's "no limit"
    assert cgroup_free_bytes(proc, tmp_path) is None
    assert cgroup_free_bytes(proc, tmp_path / "absent") is None
    assert cgroup_free_bytes("", tmp_path) is None


@pytest.mark.skipif(not Path("/proc/meminfo").exists(), reason="reads /proc/meminfo")
def test_free_ram_is_read_on_this_machine():
    free, what = available_memory(CPU)
    assert what == "RAM" and 0 < free <= parse_meminfo(Path("/proc/meminfo").read_text())


@pytest.mark.skipif(not hasattr(os, "wait4"), reason="needs os.wait4 for the child's own peak RSS")
def test_cli_refuses_a_run_that_cannot_fit_before_allocating_it(tmp_path):
    """A smoke run widened to 100,000 filters (unit 2 alone: 90 G parameters, 360 GB) and a batch of
    10^8: one Error line and exit 1 from the guard, before the model is built. The child's own peak RSS
    (wait4) shows that nothing of that size was allocated."""
    out = tmp_path / "big.h5"
    env = {**os.environ, "PYTHONPATH": "", "OMP_NUM_THREADS": "1"}
    env.pop("FFNEURO_MEMORY_GUARD", None)
    code = "from ffneuro.cli.main import main; main()"
    with open(tmp_path / "stdout", "w") as so, open(tmp_path / "stderr", "w") as se:
        proc = subprocess.Popen([sys.executable, "-c", code, "train", "--preset", "smoke", "--filters", "100000",
                                 "--batch-size", "100000000", "--out", str(out)], cwd=tmp_path, env=env,
                                stdout=so, stderr=se)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = (tmp_path / "stderr").read_text()
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert proc.returncode == 1, stderr
    assert len(lines) == 1 and lines[0].startswith("Error: this run needs about"), stderr
    assert "of RAM is free" in lines[0] and "even --batch-size 1 needs" in lines[0]
    assert usage.ru_maxrss * 1024 < 2 * GB   # ru_maxrss is in KiB on Linux
    assert not out.exists()
