"""What a run's optimisers cost: the state they keep per parameter, their update's ops and transients.

A run names the units' optimiser (``optimizer``: adam or sgd, with ``momentum`` and ``weight_decay``) and
the FF linear readout's (``linear_optimizer``, ``linear_weight_decay``), and whether the readout has a
bias (``linear_init=zero``: none) and what its loss is taken of (``linear_loss``). The memory replay and
the phase accounting take an :class:`Optimizers` so that an SGD unit or readout is costed as SGD, not as
Adam (BP's network is always Adam).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..catalog import LINEAR_LOSSES
from . import ops

OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class OptimizerCost:
    """One ``torch.optim`` optimiser as PyTorch runs it: Adam (two moments per parameter) or SGD (one
    momentum buffer per parameter when ``momentum`` is not 0, else no state); ``weight_decay`` (L2, added
    to the gradient) makes a gradient-sized temporary."""

    name: str = "adam"
    momentum: float = 0.9       # SGD only (Adam's betas are fixed)
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.name!r}; valid: {', '.join(OPTIMIZERS)}")

    @property
    def state_per_param(self) -> int:
        """Values of optimiser state per parameter: Adam's two moments, SGD's momentum buffer (or none)."""
        if self.name == "adam":
            return 2
        return 1 if self.momentum else 0

    @property
    def ops_per_param(self) -> int:
        """Elementwise ops of one update per parameter (``ops.ADAM_OPS``, ``ops.SGD_OPS``, ...)."""
        base = ops.ADAM_OPS if self.name == "adam" else \
            ops.SGD_OPS + (ops.MOMENTUM_OPS if self.momentum else 0)
        return base + (ops.WEIGHT_DECAY_OPS if self.weight_decay else 0)

    def transient_bytes(self, tensors: Sequence[int], backend: str) -> int:
        """Bytes the ``step()`` allocates and frees, for parameter tensors of ``tensors`` bytes.

        CPU (the single-tensor path, one parameter at a time, so the largest sets it): Adam's
        ``exp_avg_sq.sqrt() / c`` (two tensors), plus ``grad.add(param)`` with weight decay; SGD only the
        weight-decay ``grad.add(param)``. CUDA (the foreach path, all parameters at once): Adam's
        ``_foreach_sqrt`` (its weight-decayed gradients are deleted before it); SGD's weight-decay
        ``_foreach_add``."""
        if not tensors:
            return 0
        decay = 1 if self.weight_decay else 0
        if self.name == "adam":
            return sum(tensors) if backend == "cuda" else (2 + decay) * max(tensors)
        if not decay:
            return 0
        return sum(tensors) if backend == "cuda" else max(tensors)


ADAM = OptimizerCost()


@dataclass(frozen=True)
class Optimizers:
    """The optimisers of an FF network: the units' and the linear readout's, whether the readout has a
    bias, and its loss (``ce``, or ``ce-of-softmax``: a softmax before the cross-entropy, whose forward and
    backward the readout's step also computes). The defaults: Adam for both, with a bias, ``ce``."""

    units: OptimizerCost = ADAM
    readout: OptimizerCost = ADAM
    readout_bias: bool = True
    readout_loss: str = "ce"

    def __post_init__(self) -> None:
        if self.readout_loss not in LINEAR_LOSSES:
            raise ValueError(f"unknown linear loss {self.readout_loss!r}; valid: {', '.join(LINEAR_LOSSES)}")

    @property
    def readout_softmax_first(self) -> bool:
        return self.readout_loss == "ce-of-softmax"


DEFAULT_OPTIMIZERS = Optimizers()


def optimizers_of(config) -> Optimizers:
    """The :class:`Optimizers` of a :class:`~ffneuro.config.RunConfig` (fields missing from an older config
    read as their defaults: Adam, a readout with a bias and the plain cross-entropy)."""
    get = lambda name, default: getattr(config, name, default)  # noqa: E731
    momentum = get("momentum", 0.9)
    units = OptimizerCost(get("optimizer", "adam"), momentum, get("weight_decay", 0.0))
    readout = OptimizerCost(get("linear_optimizer", "adam"), momentum, get("linear_weight_decay", 0.0))
    return Optimizers(units, readout, get("linear_init", "torch") != "zero", get("linear_loss", "ce"))
