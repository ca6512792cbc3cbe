"""The linear readout: a classifier on detached FF features, trained alongside with its own optimiser (Adam
unless the config names another)."""
from __future__ import annotations

import torch
from torch import nn

from ..units.optim import OPTIMIZERS


class LinearReadout(nn.Module):
    """One linear layer, cross-entropy, its own optimiser; gradients never reach the FF units."""

    def __init__(self, in_features: int, num_classes: int, lr: float, optimizer: str = "adam",
                 momentum: float = 0.9, weight_decay: float = 0.0, init: str = "torch"):
        """``init`` torch: PyTorch's default weights and a bias; zero: no bias, every weight 0 (the softmax
        classifier of Hinton's code, github.com/loeweX/Forward-Forward, src/ff_model.py)."""
        super().__init__()
        self.linear = nn.Linear(in_features, num_classes, bias=init != "zero")
        if init == "zero":
            nn.init.zeros_(self.linear.weight)
        self.optimizer = OPTIMIZERS.get(optimizer)(self.parameters(), lr=lr, momentum=momentum,
                                                   weight_decay=weight_decay)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features)

    def train_step(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = nn.functional.cross_entropy(self(features.detach()), labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
