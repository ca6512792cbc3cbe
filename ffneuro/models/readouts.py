"""The linear readout: a classifier on detached FF features, trained alongside with its own optimiser (Adam
unless the config names another)."""
from __future__ import annotations

import torch
from torch import nn

from ..catalog import LINEAR_LOSSES
from ..units.optim import OPTIMIZERS


def readout_loss(logits: torch.Tensor, labels: torch.Tensor, kind: str = "ce") -> torch.Tensor:
    """The readout's training loss (``RunConfig.linear_loss``). ``ce``: cross-entropy of the logits.
    ``ce-of-softmax``: cross-entropy of the softmax *outputs*, a softmax of probabilities, as CwComp's
    softmax predictor trains (github.com/andreaspapac/CwComp, src/Layer_fc.py: its ``forward`` returns the
    softmax, which ``nn.CrossEntropyLoss`` then takes as logits). Its gradient is bounded and vanishes as
    the outputs saturate, so it learns differently, not just more slowly; the class predicted is the same."""
    if kind == "ce":
        return nn.functional.cross_entropy(logits, labels)
    if kind == "ce-of-softmax":
        return nn.functional.cross_entropy(logits.softmax(1), labels)
    raise ValueError(f"unknown linear loss {kind!r}; valid: {', '.join(LINEAR_LOSSES)}")


class LinearReadout(nn.Module):
    """One linear layer, cross-entropy, its own optimiser; gradients never reach the FF units."""

    def __init__(self, in_features: int, num_classes: int, lr: float, optimizer: str = "adam",
                 momentum: float = 0.9, weight_decay: float = 0.0, init: str = "torch", loss: str = "ce"):
        """``init`` torch: PyTorch's default weights and a bias; zero: no bias, every weight 0 (the softmax
        classifier of Hinton's code, github.com/loeweX/Forward-Forward, src/ff_model.py). ``loss``: what
        :func:`readout_loss` computes."""
        super().__init__()
        if loss not in LINEAR_LOSSES:
            raise ValueError(f"unknown linear loss {loss!r}; valid: {', '.join(LINEAR_LOSSES)}")
        self.loss = loss
        self.linear = nn.Linear(in_features, num_classes, bias=init != "zero")
        if init == "zero":
            nn.init.zeros_(self.linear.weight)
        self.optimizer = OPTIMIZERS.get(optimizer)(self.parameters(), lr=lr, momentum=momentum,
                                                   weight_decay=weight_decay)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features)

    def train_step(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = readout_loss(self(features.detach()), labels, self.loss)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
