"""Data-parallel units: every rank trains every unit on its share of each batch.

All ranks draw the same global batch (the same generator: shuffling, augmentation, negative labels),
and each runs its contiguous share of the rows. Before any optimiser steps, its gradients are scaled by
the share's size over the batch's and summed over the ranks (one all-reduce per unit, from an optimiser
step pre-hook), so every optimiser — each unit's own, still local to the unit — applies the gradient of
the global batch mean, as one process would. Replicas therefore stay identical, and rank 0's weights and
states are the run's. Per-sample blocks only: batch norm (trifecta) normalises per share and peer
normalisation tracks each share's activity, so those differ from one process.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.distributed as dist

from ..accounting.wire import data_parallel_grad_bytes
from ..models.ff_net import StepResult
from ..train.parallel import Local
from .context import DistContext

CHECKS_EVERY = 10  # batches between the ranks' agreement on a stop signal (one tiny all-reduce)


def share_of(n: int, rank: int, world: int) -> slice:
    """Rank ``rank``'s contiguous share of ``n`` rows (the first ``n % world`` ranks get one more)."""
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


class DataParallel(Local):
    """Every rank trains the whole network on its share of each batch; gradients are averaged per unit."""

    name = "data"

    def __init__(self, ctx: DistContext):
        self.ctx, self.rank, self.world = ctx, ctx.rank, ctx.world
        self.weight = 1.0                 # this rank's share of the current batch
        self._device = torch.device("cpu")
        self.grad_bytes = 0               # gradient bytes handed to all-reduce since the last wire() call
        self.steps = 0
        self.predicted = 0.0              # what the accounting says one step hands to all-reduce

    def device(self, requested: str) -> torch.device:
        self._device = self.ctx.device(requested)
        return self._device

    def prepare(self, model, batch_size: int) -> None:
        for opt in model.optimizers().values():
            opt.register_step_pre_hook(self._average_gradients)
        readout = getattr(model, "linear", None)
        self.predicted = data_parallel_grad_bytes(
            model.layer_specs(), sum(p.numel() for p in readout.parameters()) if readout is not None else 0)

    def _average_gradients(self, optimizer: torch.optim.Optimizer, args, kwargs) -> None:
        """Σ_ranks (share / batch) · grad: the gradient of the whole batch's mean loss, in every rank."""
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads]).mul_(self.weight)
        dist.all_reduce(flat)
        self.grad_bytes += flat.numel() * flat.element_size()
        offset = 0
        for g in grads:
            g.copy_(flat[offset: offset + g.numel()].view_as(g))
            offset += g.numel()

    def train_batch(self, model, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> StepResult:
        rows = share_of(len(y), self.rank, self.world)
        self.weight = (rows.stop - rows.start) / len(y)
        step = model.train_batch(x, y, generator, rows=rows)
        self.steps += 1
        w = self.weight
        return StepResult({k: v * w for k, v in step.losses.items()},
                          None if step.train_loss is None else step.train_loss * w,
                          None if step.unit_stats is None else [s.scaled(w) for s in step.unit_stats])

    def reduce(self, t: torch.Tensor) -> torch.Tensor:
        out = t.detach().clone()
        dist.all_reduce(out)
        return out

    def agree(self, flag: bool) -> bool:
        return self.ctx.any(flag, self._device)

    def checks_every(self) -> int:
        return CHECKS_EVERY

    def count_correct(self, model, split, slices: Sequence[slice], readouts: Sequence[str],
                      check_stop: Callable[[], None]) -> dict[str, int]:
        mine = super().count_correct(model, split, slices[self.rank::self.world], readouts, lambda: None)
        counts = self.reduce(torch.tensor([mine[r] for r in readouts], dtype=torch.float64, device=self._device))
        return {r: int(c) for r, c in zip(readouts, counts.tolist())}

    def gather_state(self, model, state, arrays, meta):
        return state, arrays, meta         # the replicas are identical: rank 0's is the run's

    def share(self, obj):
        return self.ctx.broadcast(obj)

    def wire(self) -> dict[str, float]:
        """Gradient bytes each rank handed to all-reduce per step (a ring all-reduce sends 2(W-1)/W of it),
        measured and as the accounting predicts."""
        per_step = self.grad_bytes / max(self.steps, 1)
        self.grad_bytes = self.steps = 0
        return {"wire_grad_bytes_per_step": float(per_step), "wire_grad_bytes_per_step_predicted": self.predicted}

    def describe(self) -> dict:
        return {"mode": self.name, "world_size": self.world}
