"""An FF unit: one layer that learns alone, with its own goodness loss and its own optimiser.

Inputs arrive detached and outputs leave detached, so no autograd graph ever spans two units, and
only one unit's activations are alive during its update.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import nn

from ..accounting import UnitCost, unit_cost
from ..goodness import (
    LOSSES,
    Goodness,
    discrimination_accuracy,
    ff_logits,
    pair_accuracy,
)
from ..precision import autocast
from .block import ConvBlock, rms_normalize


@dataclass
class UnitStats:
    """Sums over the batches of an epoch, kept on the device to avoid a sync per batch."""

    loss: torch.Tensor
    goodness_pos: torch.Tensor
    goodness_neg: torch.Tensor
    disc_acc: torch.Tensor
    pair_acc: torch.Tensor

    def __add__(self, other: "UnitStats") -> "UnitStats":
        return UnitStats(*(a + b for a, b in zip(self.values(), other.values())))

    def values(self) -> tuple[torch.Tensor, ...]:
        return (self.loss, self.goodness_pos, self.goodness_neg, self.disc_acc, self.pair_acc)


class FFUnit(nn.Module):
    """A conv layer trained by FF: BCE on goodness − θ, positives toward 1, negatives toward 0."""

    def __init__(self, name: str, block: ConvBlock, goodness: Goodness, theta: float | None,
                 *, trainable: bool, lr: float, precision: str = "fp32", loss: str = "bce"):
        super().__init__()
        self.name, self.block, self.goodness = name, block, goodness
        # the default θ counts the unit's neurons: its conv outputs (a quarter of filters·H·W when strided)
        self.theta = goodness.default_theta(math.prod(block.neuron_shape)) if theta is None else float(theta)
        self.trainable, self.precision = trainable, precision
        self.loss_fn = LOSSES.get(loss)
        self.requires_grad_(trainable)
        self.optimizer = torch.optim.Adam(self.parameters(), lr=lr) if trainable else None

    def set_lr(self, lr: float) -> None:
        if self.optimizer is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = lr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Activations of the unit's neurons, on which goodness is measured."""
        with autocast(x.device, self.precision):
            return self.block(x)

    def hand_on(self, y: torch.Tensor) -> torch.Tensor:
        """What the next unit receives: pooled, RMS-normalised, detached activations."""
        return rms_normalize(self.block.pool_out(y.detach()).float())

    def logits(self, y: torch.Tensor) -> torch.Tensor:
        return ff_logits(y, self.goodness, self.theta)

    def train_step(self, x: torch.Tensor, n: int) -> tuple[torch.Tensor, UnitStats]:
        """One local update on ``x``: its first ``n`` rows are positives, the rest negatives.

        Positives and negatives travel as one tensor through the whole FF step (one conv call for
        both passes, and no per-unit ``torch.cat`` copy); returns the hand-on output of all rows, in
        the same order, and the step's statistics.
        """
        x = x.detach()
        with torch.set_grad_enabled(self.trainable):
            y = self(x)
            logit = self.logits(y)
            loss = self.loss_fn(logit[:n], logit[n:])
            if self.trainable:
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
        with torch.no_grad():
            logit = logit.detach()
            g = logit + self.theta
            stats = UnitStats(loss.detach(), g[:n].mean(), g[n:].mean(),
                              discrimination_accuracy(logit[:n], logit[n:]),
                              pair_accuracy(logit[:n], logit[n:]) if 2 * n == len(logit) else logit.new_tensor(float("nan")))
            out = self.hand_on(y)
        return out, stats

    def cost(self) -> UnitCost:
        return unit_cost(replace(self.block.spec, name=self.name, trainable=self.trainable), self.precision)
