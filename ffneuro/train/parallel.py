"""How the trainer's work is spread over processes: the interface, and its one-process form.

The trainer walks epochs and batches once, whatever runs them. A ``Parallel`` decides what a batch step
computes in this process, how per-process sums become run-wide ones, how ranks agree to stop, how
evaluation runs, and how a checkpoint is gathered or restored. ``Local`` is one process doing all of it;
``ffneuro.distributed`` has data-parallel and pipelined forms on torch.distributed.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..models.ff_net import StepResult
from .device import pick_device


class Local:
    """One process trains every unit on every batch (the default)."""

    rank, world = 0, 1
    name = "none"

    @property
    def is_main(self) -> bool:
        """Whether this process writes the run file and logs."""
        return self.rank == 0

    def device(self, requested: str) -> torch.device:
        """Where this process computes (``auto``: CUDA when available)."""
        return pick_device(requested)

    def prepare(self, model: torch.nn.Module, batch_size: int) -> None:
        """Get ``model`` ready before the first step of batches of ``batch_size`` (hooks, placement)."""

    def train_batch(self, model, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> StepResult:
        """This process's part of one step on the global batch ``x``, ``y``; every loss in
        ``model.loss_names()`` order, as this process's contribution to the run-wide mean."""
        return model.train_batch(x, y, generator)

    def reduce(self, t: torch.Tensor) -> torch.Tensor:
        """The sum over processes of a tensor of per-process contributions."""
        return t

    def agree(self, flag: bool) -> bool:
        """True when ``flag`` is true in any process (so every process stops at the same batch)."""
        return flag

    def checks_every(self) -> int:
        """Batches between stop checks (1: every batch; collective checks are spaced out)."""
        return 1

    def count_correct(self, model, split, slices: Sequence[slice], readouts: Sequence[str],
                      check_stop: Callable[[], None]) -> dict[str, int]:
        """Correct predictions per readout over the evaluation batches ``slices`` of ``split``, run-wide."""
        correct = dict.fromkeys(readouts, 0)
        for sl in slices:
            check_stop()
            x, y = split.batch(sl)
            for r, pred in model.predict_all(x, readouts).items():
                correct[r] += int((pred == y).sum())
        return correct

    def gather_state(self, model, state: dict[str, np.ndarray], arrays: dict, meta: dict
                     ) -> tuple[dict[str, np.ndarray], dict, dict]:
        """The whole network's weights and resume state on the main process (each process may hold a part)."""
        return state, arrays, meta

    def share(self, obj):
        """``obj`` from the main process, in every process (a restored checkpoint)."""
        return obj

    def wire(self) -> dict[str, float]:
        """Bytes this run sent between processes per training step (measured and predicted), if any."""
        return {}

    def describe(self) -> dict:
        """How the run was spread over processes (stored in the run's environment)."""
        return {"mode": self.name, "world_size": self.world}
