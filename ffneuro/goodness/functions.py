"""Goodness functions: how strongly a unit's activity says "this input is positive" (or, class-wise,
"this input is of class k").

Pure functions of a batch of activations ``y`` (N, ...), returning one value per sample (or per sample
and class). The FF logit is ``goodness(y) - theta``.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..registry import Registry


class _SumSquares(torch.autograd.Function):
    """Per-sample ``Σ y² / count`` with a lean backward.

    Autograd's ``y.flatten(1).pow(2).sum(1)`` backward builds ``grad * (2 * y.pow(1))``: three
    full-size tensors (``mean`` adds a fourth, its expanded ``grad / count``). Here ``2 / count`` is
    folded into the per-sample gradient (N values) and the backward makes one full-size tensor, the
    gradient itself. Only ``y`` is saved, which ReLU already keeps alive (for the fp32 goodness of bf16
    activations it is ``ff_logits``' fp32 copy, which ``pow`` saved too). Forward and backward do the
    same roundings as the autograd expressions, so values and gradients are bit-identical.
    """

    @staticmethod
    def forward(ctx, y: torch.Tensor, count: int) -> torch.Tensor:
        ctx.save_for_backward(y)
        ctx.count = count
        g = y.flatten(1).pow(2).sum(1)
        return g if count == 1 else g / count

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (y,) = ctx.saved_tensors
        per_sample = (grad if ctx.count == 1 else grad / ctx.count) * 2.0   # N values, not N × neurons
        return y * per_sample.view(-1, *([1] * (y.dim() - 1))).to(y.dtype), None


def sum_squares(y: torch.Tensor) -> torch.Tensor:
    """Σ y² over all neurons of each sample (the paper's goodness)."""
    return _SumSquares.apply(y, 1)


def mean_squares(y: torch.Tensor) -> torch.Tensor:
    """mean y² over all neurons of each sample; independent of layer size."""
    return _SumSquares.apply(y, math.prod(y.shape[1:]))


class _GroupSumSquares(torch.autograd.Function):
    """Per-sample, per-group ``Σ y² / count`` over ``groups`` equal, consecutive slices of each sample's
    (channel-major) activations, with the same lean backward as :class:`_SumSquares`: the gradient is
    ``y * (2·grad / count)`` per group, one full-size tensor."""

    @staticmethod
    def forward(ctx, y: torch.Tensor, groups: int) -> torch.Tensor:
        ctx.save_for_backward(y)
        ctx.groups = groups
        grouped = y.reshape(y.shape[0], groups, -1)
        return grouped.pow(2).sum(2) / grouped.shape[2]

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (y,) = ctx.saved_tensors
        count = y[0].numel() // ctx.groups
        per_group = (grad / count * 2.0).to(y.dtype)              # (N, groups) values, not N × neurons
        out = y.reshape(y.shape[0], ctx.groups, -1) * per_group.unsqueeze(2)
        return out.view_as(y), None


class _GroupMean(torch.autograd.Function):
    """Per-sample, per-group mean of ``y`` over ``groups`` equal, consecutive slices of each sample's
    (channel-major) activations. Its gradient does not depend on ``y`` (1/count per element), so
    nothing is saved; the backward writes one full-size tensor, the gradient itself."""

    @staticmethod
    def forward(ctx, y: torch.Tensor, groups: int) -> torch.Tensor:
        ctx.shape, ctx.dtype, ctx.groups = y.shape, y.dtype, groups
        return y.reshape(y.shape[0], groups, -1).mean(2)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        n, groups = ctx.shape[0], ctx.groups
        count = math.prod(ctx.shape[1:]) // groups
        out = torch.empty(ctx.shape, dtype=ctx.dtype, device=grad.device)
        out.view(n, groups, count).copy_((grad / count).to(ctx.dtype).unsqueeze(2).expand(n, groups, count))
        return out, None


def classwise_means(y: torch.Tensor, groups: int) -> torch.Tensor:
    """mean y over each of ``groups`` consecutive channel (or feature) groups: (N, ...) → (N, groups).

    DeeperForward's "mean goodness" (Sun et al., ICLR 2025): the plain mean, not the mean square, of the
    ReLU outputs of the channels class k owns. Its gradient is the same for every neuron of a group, so a
    neuron whose output is small still learns as fast as a large one (the square's gradient, 2y, starves
    it), which is what lets the paper train 17 layers.
    """
    if y.shape[1] % groups:
        raise ValueError(f"{y.shape[1]} channels do not split into {groups} equal groups")
    return _GroupMean.apply(y, groups)


def classwise_squares(y: torch.Tensor, groups: int) -> torch.Tensor:
    """mean y² over each of ``groups`` consecutive channel (or feature) groups: (N, ...) → (N, groups).

    CwComp's goodness: with one group per class, entry [n, k] is how strongly the channels that class k
    owns respond to sample n (Papachristodoulou et al., AAAI 2024).
    """
    if y.shape[1] % groups:
        raise ValueError(f"{y.shape[1]} channels do not split into {groups} equal groups")
    return _GroupSumSquares.apply(y, groups)


@dataclass(frozen=True)
class Goodness:
    """A goodness function and its default threshold θ for a layer of ``neurons`` neurons.

    ``per_class``: the goodness is one value per class-owned group of channels ((N, classes), CwComp),
    not one per sample; a unit then classifies by itself, and the network needs no label in its input.
    ``fn`` takes the activations (and, when ``per_class``, the number of groups). ``power``: the goodness
    sums ``y ** power`` over neurons (2: squares; 1: DeeperForward's mean of the activity itself).
    """

    name: str
    fn: Callable[..., torch.Tensor]
    default_theta: Callable[[int], float]
    per_class: bool = False
    power: int = 2

    def __call__(self, y: torch.Tensor, groups: int | None = None) -> torch.Tensor:
        """Goodness of ``y``: (N,) per sample, or (N, groups) when ``per_class``."""
        if self.per_class:
            if groups is None:
                raise ValueError(f"goodness {self.name!r} needs the number of class groups")
            return self.fn(y, groups)
        return self.fn(y)

    def position_map(self, y: torch.Tensor, groups: int | None = None) -> torch.Tensor:
        """Each spatial position's share of the goodness: (N, C, H, W) → (N, K, H, W) whose sum over
        (H, W) is the goodness (K = 1 per sample, K = groups when ``per_class``). The goodness of every
        registered function is a sum of ``y ** power`` over neurons, so it splits exactly by position."""
        if y.dim() != 4:
            raise ValueError(f"a goodness map needs (N, C, H, W) activations; these are {tuple(y.shape)} "
                             "(a fully connected unit has no spatial layout)")
        sq = y.float().pow(self.power)
        if not self.per_class:
            scale = float(self.fn(torch.ones(1, *y.shape[1:]))) / y[0].numel()
            return sq.sum(1, keepdim=True) * scale
        n, c, h, w = y.shape
        return sq.view(n, groups, c // groups, h, w).sum(2) / (c // groups * h * w)


GOODNESS: Registry[Goodness] = Registry("goodness")
GOODNESS.register("sumsq")(Goodness("sumsq", sum_squares, lambda neurons: float(neurons)))
GOODNESS.register("meansq")(Goodness("meansq", mean_squares, lambda neurons: 1.0))
# CwComp's threshold (used by its pvn and cwg losses) is 2.0 on the mean square of a class's channels
GOODNESS.register("classwise")(Goodness("classwise", classwise_squares, lambda neurons: 2.0, per_class=True))
# DeeperForward's mean goodness (class-wise, no square); its losses (cwc) use no threshold: θ is a placeholder
# for the pvn and cwg losses, half the mean of a unit-variance ReLU's (≈ 0.4) rounded
GOODNESS.register("classmean")(Goodness("classmean", classwise_means, lambda neurons: 0.2, per_class=True, power=1))


def ff_logits(y: torch.Tensor, goodness: Goodness, theta: float) -> torch.Tensor:
    """Per-sample FF logit ``goodness(y) - θ``, computed in fp32 for stability (``y.float()`` is a no-op,
    no copy, when ``y`` is already fp32)."""
    return goodness.fn(y.float()) - theta


def pair_accuracy(logit_pos: torch.Tensor, logit_neg: torch.Tensor) -> torch.Tensor:
    """Fraction of images whose positive beats its own negative (G⁺ > G⁻): independent of θ, so it
    also tracks learning under SymBa, whose loss never calibrates goodness against θ."""
    return (logit_pos > logit_neg).float().mean()


def discrimination_accuracy(logit_pos: torch.Tensor, logit_neg: torch.Tensor) -> torch.Tensor:
    """Fraction of samples classified right by σ(logit) > 0.5: positives above, negatives below."""
    correct = (logit_pos > 0).float().sum() + (logit_neg <= 0).float().sum()
    return correct / (logit_pos.numel() + logit_neg.numel())

