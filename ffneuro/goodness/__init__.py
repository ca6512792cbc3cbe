"""Goodness functions: how strongly a unit's activity says "this input is positive".

Pure functions of a batch of activations ``y`` (N, ...), returning one value per sample. The FF
logit is ``goodness(y) - theta``; a unit is trained with binary cross-entropy on that logit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

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


@dataclass(frozen=True)
class Goodness:
    """A goodness function and its default threshold θ for a layer of ``neurons`` neurons."""

    name: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    default_theta: Callable[[int], float]


GOODNESS: Registry[Goodness] = Registry("goodness")
GOODNESS.register("sumsq")(Goodness("sumsq", sum_squares, lambda neurons: float(neurons)))
GOODNESS.register("meansq")(Goodness("meansq", mean_squares, lambda neurons: 1.0))


def ff_logits(y: torch.Tensor, goodness: Goodness, theta: float) -> torch.Tensor:
    """Per-sample FF logit ``goodness(y) - θ``, computed in fp32 for stability (``y.float()`` is a no-op,
    no copy, when ``y`` is already fp32)."""
    return goodness.fn(y.float()) - theta


def ff_loss(logit_pos: torch.Tensor, logit_neg: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy: positives toward 1, negatives toward 0, averaged over both sets."""
    loss_pos = F.softplus(-logit_pos).mean()  # -log σ(l)
    loss_neg = F.softplus(logit_neg).mean()   # -log(1 - σ(l))
    return 0.5 * (loss_pos + loss_neg)


def symba_loss(logit_pos: torch.Tensor, logit_neg: torch.Tensor, alpha: float = 4.0) -> torch.Tensor:
    """SymBa (Lee & Song 2023): softplus(-α·(G⁺ − G⁻)) on each image's own positive/negative pair.

    θ cancels, so the loss only asks the true label to beat a wrong one on the same image.
    """
    return F.softplus(-alpha * (logit_pos - logit_neg)).mean()


LOSSES: Registry[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = Registry("FF loss")
LOSSES.register("bce")(ff_loss)
LOSSES.register("symba")(symba_loss)


def pair_accuracy(logit_pos: torch.Tensor, logit_neg: torch.Tensor) -> torch.Tensor:
    """Fraction of images whose positive beats its own negative (G⁺ > G⁻): independent of θ, so it
    also tracks learning under SymBa, whose loss never calibrates goodness against θ."""
    return (logit_pos > logit_neg).float().mean()


def discrimination_accuracy(logit_pos: torch.Tensor, logit_neg: torch.Tensor) -> torch.Tensor:
    """Fraction of samples classified right by σ(logit) > 0.5: positives above, negatives below."""
    correct = (logit_pos > 0).float().sum() + (logit_neg <= 0).float().sum()
    return correct / (logit_pos.numel() + logit_neg.numel())

