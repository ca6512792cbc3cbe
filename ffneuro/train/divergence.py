"""Stopping a run whose loss or weights blow up, instead of storing NaN weights as a finished run.

Losses are summed on the device and looked at every CHECK_EVERY batches (one sync each), so the
check costs nothing per batch. A loss is *diverged* when it is not finite, or when its mean over the
batches since the last check exceeds EXPLODE_FACTOR × max(1, its value on the run's first batch):
a healthy local loss falls from where it starts, and 1000× above it is far outside any learning curve.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from ..errors import Diverged

CHECK_EVERY = 50
EXPLODE_FACTOR = 1e3


class DivergenceGuard:
    """Watches the per-step losses (one per unit and readout, named) of one epoch."""

    def __init__(self, names: list[str], epoch: int, reference: list[float] | None = None,
                 reduce: Callable[[torch.Tensor], torch.Tensor] | None = None):
        self.names, self.epoch = names, epoch
        # several processes: each adds its contribution, and every check sees the run-wide sums (the
        # same decision in every process, taken at the same batch)
        self.reduce = reduce or (lambda t: t)
        self.reference = reference  # first-batch losses of the run; set on the first check if None
        self._first: torch.Tensor | None = None
        self._sum: torch.Tensor | None = None
        self._count = 0

    def add(self, losses: torch.Tensor, batch: int) -> None:
        """Record one batch's losses (a 1-D tensor, in ``names`` order); check every CHECK_EVERY batches."""
        losses = losses.detach().float()
        if self.reference is None and self._first is None:
            self._first = losses.clone()
        self._sum = losses.clone() if self._sum is None else self._sum + losses
        self._count += 1
        if self._count >= CHECK_EVERY:
            self.check(batch)

    def check(self, batch: int) -> None:
        """Raise Diverged if any loss since the last check is non-finite or exploding."""
        if self._sum is None:
            return
        if self.reference is None:
            self.reference = [float(v) for v in self.reduce(self._first).tolist()]
        means = (self.reduce(self._sum) / self._count).tolist()
        self._sum, self._count = None, 0
        for name, value, ref in zip(self.names, means, self.reference):
            where = f"epoch {self.epoch}, batch {batch + 1}: {name} loss"
            if not math.isfinite(value):
                raise Diverged(f"diverged at {where} is {value} (non-finite)")
            limit = EXPLODE_FACTOR * max(1.0, abs(ref) if math.isfinite(ref) else 1.0)
            if value > limit:
                raise Diverged(f"diverged at {where} is {value:.4g}, over {EXPLODE_FACTOR:g}× its first value "
                               f"({ref:.4g})")

    def check_weights(self, model: nn.Module, agree: Callable[[bool], bool] | None = None) -> None:
        """Raise Diverged if any parameter holds a non-finite value after the epoch (in any process, with
        ``agree``)."""
        params = [(n, p) for n, p in model.named_parameters()]
        finite = torch.stack([torch.isfinite(p).all() for _, p in params]).tolist() if params else []
        bad = [n for (n, _), ok in zip(params, finite) if not ok]
        if (agree or bool)(bool(bad)):
            if not bad:
                raise Diverged(f"diverged in epoch {self.epoch}: non-finite weights in another process's units")
            raise Diverged(f"diverged in epoch {self.epoch}: non-finite weights in {', '.join(bad[:3])}"
                           + (f" and {len(bad) - 3} more" if len(bad) > 3 else ""))
