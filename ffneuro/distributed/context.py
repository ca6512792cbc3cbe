"""Where this process stands in a torchrun job, and the few collectives ffneuro uses.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK and TORCHELASTIC_RESTART_COUNT for every worker; without them
ffneuro runs in one process as usual. Backends: NCCL with CUDA devices, gloo on the CPU.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ..errors import ConfigError

#: how long a collective waits for a peer before the job fails (a dead peer makes torchrun restart it)
TIMEOUT = datetime.timedelta(seconds=int(os.environ.get("FFNEURO_DIST_TIMEOUT", "300")))


@dataclass(frozen=True)
class DistContext:
    """This worker's rank among ``world`` workers, its local rank on its machine, the restart count."""

    rank: int
    world: int
    local_rank: int = 0
    restart: int = 0

    @classmethod
    def from_env(cls) -> DistContext | None:
        """The context torchrun gave this process, or None when it was not launched by torchrun."""
        if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
            return None
        return cls(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)),
                   int(os.environ.get("TORCHELASTIC_RESTART_COUNT", 0)))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, requested: str) -> torch.device:
        """One CUDA device per local rank (``auto``/``cuda``), else the CPU."""
        if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
            return torch.device("cpu")
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda was asked for but no CUDA device is available")
        if self.local_rank >= torch.cuda.device_count():
            raise ConfigError(f"local rank {self.local_rank} has no GPU: this machine has "
                              f"{torch.cuda.device_count()}; use --nproc-per-node {torch.cuda.device_count()}")
        return torch.device("cuda", self.local_rank)

    def init(self) -> None:
        """Join the process group: gloo for CPU tensors, and NCCL for CUDA tensors where there is a GPU
        (each rank on the GPU of its local rank)."""
        if dist.is_initialized():
            return
        backend = "gloo"
        if torch.cuda.is_available() and self.local_rank < torch.cuda.device_count():
            torch.cuda.set_device(self.local_rank)
            backend = "cpu:gloo,cuda:nccl"
        # A restarted job meets in the same store as the attempt before: under a fresh prefix, no rank can
        # read a dead peer's address (seen here: the new rank 1 dialling the old rank 0, refused).
        agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"   # torchrun's agent hosts it
        store = dist.TCPStore(os.environ.get("MASTER_ADDR", "127.0.0.1"), int(os.environ.get("MASTER_PORT", "29500")),
                              self.world, is_master=not agent_store and self.rank == 0, timeout=TIMEOUT)
        store = dist.PrefixStore(f"ffneuro/attempt{self.restart}", store)
        dist.init_process_group(backend, store=store, rank=self.rank, world_size=self.world, timeout=TIMEOUT)

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()

    # ------------------------------------------------------------------------------- collectives

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        """``obj`` from rank ``src`` on every rank (any picklable value)."""
        box = [obj if self.rank == src else None]
        dist.broadcast_object_list(box, src=src)
        return box[0]

    def gather(self, obj: Any, dst: int = 0) -> list[Any] | None:
        """Every rank's ``obj`` on rank ``dst`` (a list by rank), None elsewhere."""
        out = [None] * self.world if self.rank == dst else None
        dist.gather_object(obj, out, dst=dst)
        return out

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when ``flag`` is true on any rank (how ranks agree to stop together)."""
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())
