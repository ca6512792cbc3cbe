"""Starting distributed runs: the parallel form a torchrun worker trains with, and ``--nproc N``, which
runs the same command under torchrun on this machine."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Sequence

from ..errors import ConfigError
from ..train.parallel import Local
from .context import DistContext
from .data_parallel import DataParallel
from .pipeline import Pipeline

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
