"""A local-learning unit: a block, a goodness, a local loss, an optimiser, and how it hands its output on.

Inputs arrive detached and outputs leave detached, so no autograd graph ever spans two units, and
only one unit's activations are alive during its update. The same unit serves every FF variant: the
block type (conv, fc, cfse, trifecta), the goodness (per sample or class-wise), the loss (on
positive/negative pairs, or on class-wise goodness with the true labels) and the optimiser are parts.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import torch
from torch import nn

from ..accounting import UnitCost, unit_cost
from ..blocks.module import BlockModule
from ..errors import ConfigError
from ..goodness import (
    LOSSES,
    Goodness,
    discrimination_accuracy,
    pair_accuracy,
    peer_normalisation,
)
from ..precision import autocast
from .optim import OPTIMIZERS


@dataclass
class UnitStats:
    """Sums over the batches of an epoch, kept on the device to avoid a sync per batch.

    Pair losses: mean goodness of positives and negatives, σ(logit) accuracy on both, and the fraction
    of images whose positive beats its own negative. Class losses: mean goodness of the true class and of
    the other classes, the unit's own classification accuracy (argmax of its class-wise goodness), and
    the fraction whose true class beats the mean of the others.
    """

    loss: torch.Tensor
    goodness_pos: torch.Tensor
    goodness_neg: torch.Tensor
    disc_acc: torch.Tensor
    pair_acc: torch.Tensor

    def __add__(self, other: UnitStats) -> UnitStats:
        return UnitStats(*(a + b for a, b in zip(self.values(), other.values())))

    def values(self) -> tuple[torch.Tensor, ...]:
        return (self.loss, self.goodness_pos, self.goodness_neg, self.disc_acc, self.pair_acc)

    def scaled(self, weight: float) -> UnitStats:
        """Every value times ``weight`` (a process's share of a batch, so that shares add up to its mean)."""
        return UnitStats(*(v * weight for v in self.values()))

    @classmethod
    def zeros(cls, like: torch.Tensor) -> UnitStats:
        """No contribution (a unit another process trains)."""
        return cls(*(like.new_zeros(()) for _ in range(5)))


@dataclass(frozen=True)
class LocalObjective:
    """What a unit learns to do on its own: its goodness, the threshold θ (None: the goodness's default
    for the unit's size), the local loss and its parameters, the classes of a class-wise goodness, and
    Hinton's peer normalisation (weight and running-mean momentum; weight 0: off)."""

    goodness: Goodness
    loss: str = "bce"
    theta: float | None = None
    loss_params: Mapping[str, float] | None = None
    classes: int | None = None
    peer_norm: float = 0.0
    peer_momentum: float = 0.9


@dataclass(frozen=True)
class OptimizerSettings:
    """A unit's own optimiser: a registered name (``--optimizer``) and its settings."""

    name: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0

    def build(self, params) -> torch.optim.Optimizer:
        return OPTIMIZERS.get(self.name)(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)


class FFUnit(nn.Module):
    """One layer that learns alone. Pair losses (bce, symba) see ``x`` as positives then negatives; class
    losses (cwc, pvn, cwg) see labelled images and class-wise goodness (``classes`` channel groups)."""

    def __init__(self, name: str, block: BlockModule, objective: LocalObjective, optimizer: OptimizerSettings, *,
                 trainable: bool, precision: str = "fp32"):
        super().__init__()
        goodness = objective.goodness
        self.name, self.block, self.goodness = name, block, goodness
        self.loss = LOSSES.get(objective.loss)
        if goodness.per_class != (self.loss.kind == "class"):
            raise ConfigError(f"loss {objective.loss!r} takes "
                              f"{'class-wise' if self.loss.kind == 'class' else 'per-sample'} goodness, but goodness "
                              f"{goodness.name!r} is {'class-wise' if goodness.per_class else 'per sample'}")
        self.loss_fn = self.loss.bind(objective.loss_params)
        self.classes = objective.classes
        # the default θ counts the neurons goodness is measured on (conv outputs, before pooling, for conv)
        theta = objective.theta
        self.theta = goodness.default_theta(math.prod(block.goodness_shape)) if theta is None else float(theta)
        self.trainable, self.precision = trainable, precision
        self.active = True   # False while an --unit-epochs schedule has stopped this unit's training
        self.peer_norm, self.peer_momentum = float(objective.peer_norm), float(objective.peer_momentum)
        if self.peer_norm > 0:   # each neuron's running mean activity on positives, started at 0.5 (Hinton's code)
            self.register_buffer("peer_running", torch.full((math.prod(block.goodness_shape),), 0.5))
        self.requires_grad_(trainable)
        self.optimizer = optimizer.build(self.parameters()) if trainable else None

    @property
    def learning(self) -> bool:
        """Whether a train step updates this unit now (trainable, and not stopped by its epoch schedule)."""
        return self.trainable and self.active

    def set_lr(self, lr: float) -> None:
        if self.optimizer is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = lr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """What goodness is measured on (the block's output before hand-on)."""
        with autocast(x.device, self.precision):
            return self.block(x)

    def hand_on(self, y: torch.Tensor) -> torch.Tensor:
        """What the next unit receives: the block's hand-on of the detached activations, in fp32."""
        return self.block.hand_on(y.detach()).float()

    def scores(self, y: torch.Tensor) -> torch.Tensor:
        """Goodness of ``y`` in fp32: (N,) per sample, or (N, classes) class-wise."""
        return self.goodness(y.float(), self.classes)

    def logits(self, y: torch.Tensor) -> torch.Tensor:
        """Per-sample FF logit goodness − θ (pair losses)."""
        return self.scores(y) - self.theta

    def train_step(self, x: torch.Tensor, n: int, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, UnitStats]:
        """One local update on ``x``. Pair losses: its first ``n`` rows are positives, the rest negatives
        (one tensor through the whole step: one conv call for both passes). Class losses: ``labels`` are
        the rows' classes (every row is a positive, ``n == len(x)``). Returns the hand-on output of all
        rows, in order, and the step's statistics."""
        x = x.detach()
        pair = self.loss.kind == "pair"
        if not pair and labels is None:
            raise ValueError(f"loss {self.loss.name!r} needs the labels of the rows")
        with torch.set_grad_enabled(self.learning):
            y = self(x)
            scores = self.scores(y)
            if pair:
                logit = scores - self.theta
                loss = self.loss_fn(logit[:n], logit[n:])
            else:
                loss = self.loss_fn(scores, labels)
            if self.peer_norm > 0 and self.learning:
                penalty, running = peer_normalisation(y[:n].float(), self.peer_running, self.peer_momentum)
                loss = loss + self.peer_norm * penalty
                self.peer_running.copy_(running)
            if self.learning:
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                with torch.no_grad(), autocast(x.device, self.precision):
                    self.block.after_update(x)   # e.g. cfse's bn_refresh: batch-norm statistics of the new weights
        with torch.no_grad():
            stats = self._stats(loss.detach(), scores.detach(), n, labels)
            out = self.hand_on(y)
        return out, stats

    def _stats(self, loss: torch.Tensor, scores: torch.Tensor, n: int, labels: torch.Tensor | None) -> UnitStats:
        if self.loss.kind == "pair":
            logit = scores - self.theta
            return UnitStats(loss, scores[:n].mean(), scores[n:].mean(), discrimination_accuracy(logit[:n], logit[n:]),
                             pair_accuracy(logit[:n], logit[n:]) if 2 * n == len(logit) else logit.new_tensor(float("nan")))
        true = scores.gather(1, labels.view(-1, 1)).squeeze(1)
        rest = (scores.sum(1) - true) / (scores.shape[1] - 1)
        return UnitStats(loss, true.mean(), rest.mean(), (scores.argmax(1) == labels).float().mean(),
                         (true > rest).float().mean())

    def cost(self) -> UnitCost:
        return unit_cost(replace(self.block.spec, name=self.name, trainable=self.trainable), self.precision,
                         ff_passes=2 if self.loss.kind == "pair" else 1)
