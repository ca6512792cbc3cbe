"""The optimisers a unit may own (``--optimizer``): name → a function of (parameters, lr, momentum, weight decay)."""
from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from ..registry import Registry

OPTIMIZERS: Registry[Callable[..., torch.optim.Optimizer]] = Registry("optimizer")


@OPTIMIZERS.register("adam")
def adam(params: Iterable[torch.nn.Parameter], lr: float, momentum: float = 0.9, weight_decay: float = 0.0):
    """Adam (β₁ 0.9, β₂ 0.999); ``momentum`` is not used."""
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


@OPTIMIZERS.register("sgd")
def sgd(params: Iterable[torch.nn.Parameter], lr: float, momentum: float = 0.9, weight_decay: float = 0.0):
    """SGD with (heavy-ball) momentum, as in Hinton's FF code."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
