"""Starting distributed runs: the parallel form a torchrun worker trains with, and ``--nproc N``, which
runs the same command under torchrun on this machine once :func:`check_launch` has found nothing wrong
(so a bad value is one line from the launcher, never N workers failing and torchrun's traceback)."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Sequence

import torch

from ..config import RunConfig
from ..errors import ConfigError
from ..train.memory_guard import check_run_memory
from ..train.parallel import Local
from ..train.runfile import RunPlan, load_plan_data
from .context import DistContext
from .data_parallel import DataParallel
from .pipeline import Pipeline
from .placement import STRATEGIES, auto_placement, parse_placement

log = logging.getLogger(__name__)

MODES = ("none", "data", "pipeline")
# the flags that only the launching process reads (they would relaunch inside every worker)
LAUNCH_FLAGS = ("--nproc", "--max-restarts")


def make_parallel(mode: str | None, placement: str | None = None, ctx: DistContext | None = None) -> Local:
    """The parallel form of this process: one process without torchrun, else ``mode`` over torchrun's
    ranks (data by default)."""
    ctx = ctx if ctx is not None else DistContext.from_env()
    if placement is not None and mode != "pipeline":
        raise ConfigError("--placement places units on pipeline stages; add --parallel pipeline")
    if ctx is None or ctx.world == 1:
        if mode not in (None, "none") and ctx is None:
            raise ConfigError(f"--parallel {mode} needs several processes: launch with --nproc N, or torchrun "
                              "--nproc-per-node N -m ffneuro.cli train ...")
        return Local()
    if mode == "none":
        raise ConfigError(f"--parallel none cannot run in a torchrun job of {ctx.world} processes")
    ctx.init()
    return Pipeline(ctx, placement) if mode == "pipeline" else DataParallel(ctx)


def process_cap(device: str) -> tuple[int, str]:
    """How many worker processes this machine holds, and that number in words: one per GPU where the run
    goes to CUDA (``cuda``, or ``auto`` with a GPU), else one per CPU core this process may run on."""
    if device in ("cuda", "auto") and torch.cuda.is_available():
        n = torch.cuda.device_count()
        return n, f"{n} GPU{'' if n == 1 else 's'}"
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    return n, f"{n} CPU core{'' if n == 1 else 's'}"


def check_parallel(mode: str | None, placement: str | None, nproc: int, config: RunConfig) -> None:
    """What :func:`make_parallel` and the pipeline's placement would refuse in a job of ``nproc`` processes,
    refused before the job starts: ``--placement`` without a pipeline, ``--parallel none`` on several
    processes, a pipeline of BP units, more stages than units, a bad explicit placement."""
    if placement is not None and mode != "pipeline":
        raise ConfigError("--placement places units on pipeline stages; add --parallel pipeline")
    if nproc == 1:
        return
    if mode == "none":
        raise ConfigError(f"--parallel none cannot run in a torchrun job of {nproc} processes")
    if mode != "pipeline":
        return
    if config.algo != "ff":
        raise ConfigError("--parallel pipeline needs FF units: backprop sends gradients back through every "
                          "layer (use --parallel data for BP)")
    if placement is None or placement in STRATEGIES:
        auto_placement([1.0] * config.layers, nproc)  # only the stage count matters here
    else:
        parse_placement(placement, config.layers, nproc)


def check_launch(nproc: int, mode: str | None, placement: str | None, plan: RunPlan, *,
                 data_dir: str | os.PathLike | None = None, over_cap: bool = False) -> None:
    """Everything the workers of ``--nproc N`` would check, checked once before any starts: ``plan`` (from
    :func:`~ffneuro.train.runfile.plan_run`: the config, ``--out``, ``--resume``) as N processes run it,
    N against what the machine holds (unless ``over_cap``), the dataset (loaded, then let go) and the
    memory the run needs. Raises the one-line error a worker would have raised."""
    config = RunConfig.from_dict(plan.config)
    check_parallel(mode, placement, nproc, config)
    cap, what = process_cap(config.device)
    if nproc > cap and not over_cap:
        raise ConfigError(f"--nproc {nproc} starts more processes than this machine holds ({what}); use at most "
                          f"--nproc {cap}, or add --nproc-over-cap to start them anyway")
    check_run_memory(config, load_plan_data(plan, data_dir))


def strip_launch_flags(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--nproc N`` and ``--max-restarts K`` (either as two words or ``--flag=value``)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in LAUNCH_FLAGS:
            skip = "=" not in arg
            continue
        out.append(arg)
    return out


def torchrun_command(nproc: int, argv: Sequence[str], max_restarts: int = 0) -> list[str]:
    """``torchrun --standalone --nproc-per-node N [--max-restarts K] -m ffneuro.cli ARGV`` for this Python."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            f"--max-restarts={max_restarts}", "-m", "ffneuro.cli", *argv]


def launch_local(nproc: int, argv: Sequence[str], max_restarts: int = 0) -> int:
    """Run ``ffneuro ARGV`` as ``nproc`` torchrun workers on this machine and return torchrun's exit code.
    Each worker gets one thread unless OMP_NUM_THREADS says otherwise (torchrun's own default)."""
    cmd = torchrun_command(nproc, strip_launch_flags(argv), max_restarts)
    log.info("launching: %s", " ".join(cmd[1:]))
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.call(cmd, env=env)
