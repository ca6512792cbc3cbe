"""What an FF objective (goodness + loss) costs per unit and per row: the accounting's view of it.

The counts come from the registered goodness and loss (``ffneuro.goodness``); the phase and memory
models take an :class:`ObjectiveCost` so that a new loss is costed from its own registration, not
from constants hard-coded for one loss.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..catalog import GOODNESS_PER_CLASS, LOSS_INFO
from . import ops


@dataclass(frozen=True)
class ObjectiveCost:
    """``pairs``: every image runs as a positive and a negative (2 rows), the label embedded in the image;
    otherwise (class-wise goodness) one unlabelled row per image. ``groups``: goodness values per row (1,
    or the classes). ``loss_fwd``/``loss_bwd``: the loss's elementwise ops as (per goodness value, per
    row). ``peer_norm``: the unit adds Hinton's peer-normalisation penalty."""

    pairs: bool = True
    groups: int = 1
    loss_fwd: tuple[int, int] = (0, ops.FF_LOSS_FWD)
    loss_bwd: tuple[int, int] = (0, ops.FF_LOSS_BWD)
    peer_norm: bool = False

    def __post_init__(self) -> None:
        if self.groups < 1:
            raise ValueError(f"groups must be >= 1, got {self.groups}")

    @property
    def rows_per_image(self) -> int:
        return 2 if self.pairs else 1

    def goodness_loss_ops(self, goodness_elems: int) -> int:
        """Per row: square and accumulate every element, scale and subtract θ per goodness value, the loss.
        (Peer normalisation works on the positive rows only: see :meth:`peer_ops`.)"""
        g = ops.GOODNESS_FWD[0] * goodness_elems + ops.GOODNESS_FWD[1] * self.groups
        return g + self.loss_fwd[0] * self.groups + self.loss_fwd[1]

    def goodness_backward_ops(self, goodness_elems: int) -> int:
        """Per row: the loss's backward, then dL/dy = (2 dL/dg / count) · y per element."""
        g = ops.GOODNESS_BWD[0] * goodness_elems + ops.GOODNESS_BWD[1] * self.groups
        return g + self.loss_bwd[0] * self.groups + self.loss_bwd[1]

    def peer_ops(self, goodness_elems: int) -> tuple[int, int]:
        """(forward, backward) ops of peer normalisation per positive row (0 without it)."""
        if not self.peer_norm:
            return 0, 0
        return ops.PEER_NORM_FWD * goodness_elems, ops.PEER_NORM_BWD * goodness_elems


PAIRS = ObjectiveCost()   # the paper's objective: bce (or symba) on per-sample goodness


def objective_cost(config, num_classes: int) -> ObjectiveCost:
    """The :class:`ObjectiveCost` of a :class:`~ffneuro.config.RunConfig` (its goodness, loss and peer norm)."""
    loss = LOSS_INFO[config.loss]
    return ObjectiveCost(pairs=loss.kind == "pair", groups=num_classes if GOODNESS_PER_CLASS[config.goodness] else 1,
                         loss_fwd=tuple(loss.fwd_ops), loss_bwd=tuple(loss.bwd_ops),
                         peer_norm=getattr(config, "peer_norm", 0.0) > 0)
