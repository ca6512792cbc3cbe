"""Local losses: what each unit minimises, registered with the goodness they take and their hyperparameters.

Two kinds, which decide how a network builds its training rows:

* ``pair`` losses take the FF logits (goodness − θ) of the positives and of the negatives (the same
  images with a wrong label embedded): ``bce`` (Hinton; the paper's) and ``symba`` (Lee & Song 2023).
* ``class`` losses take class-wise goodness (N, classes) and the true labels; the image carries no
  label and no negative image is made: ``cwc``, ``pvn`` and ``cwg`` (Papachristodoulou et al., AAAI 2024).

A loss's kind, hyperparameters (their defaults; set per run with ``--loss-params name=value``) and op
counts are described, without torch, in :data:`ffneuro.catalog.LOSS_INFO`; this module adds the functions.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields

import torch
import torch.nn.functional as F

from ..catalog import LOSS_INFO, LossInfo
from ..registry import Registry


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


def cwc_loss(goodness: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """CwComp's channel-wise competitive loss: cross-entropy of the class-wise goodness (N, classes) taken
    as logits, −log(exp(G_true) / Σ_k exp(G_k)), averaged over samples."""
    return F.cross_entropy(goodness, labels)


def _true_and_rest(goodness: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """G of the true class (N,) and the mean G of the other classes (N,)."""
    true = goodness.gather(1, labels.view(-1, 1)).squeeze(1)
    rest = (goodness.sum(1) - true) / (goodness.shape[1] - 1)
    return true, rest


def pvn_loss(goodness: torch.Tensor, labels: torch.Tensor, threshold: float = 2.0) -> torch.Tensor:
    """CwComp's positive-vs-negative loss: FF's BCE with the true class's goodness as the positive and the
    mean goodness of the other classes as the negative, both against ``threshold``:
    mean over the 2N terms of softplus(θ − G_true) and softplus(G_rest − θ)."""
    true, rest = _true_and_rest(goodness, labels)
    return torch.cat([F.softplus(threshold - true), F.softplus(rest - threshold)]).mean()


def cwg_loss(goodness: torch.Tensor, labels: torch.Tensor, weight: float = 0.28, threshold: float = 2.0) -> torch.Tensor:
    """CwComp's mixed loss: ``weight``·cwc + (1 − ``weight``)·pvn."""
    return weight * cwc_loss(goodness, labels) + (1.0 - weight) * pvn_loss(goodness, labels, threshold)


@dataclass(frozen=True)
class Loss(LossInfo):
    """A registered local loss: its description (:class:`~ffneuro.catalog.LossInfo`, torch-free, which
    the config checks against) with its function ``fn``."""

    fn: Callable[..., torch.Tensor] = field(kw_only=True)

    @classmethod
    def of(cls, info: LossInfo, fn: Callable[..., torch.Tensor]) -> Loss:
        """The loss ``info`` describes, computed by ``fn``."""
        return cls(**{f.name: getattr(info, f.name) for f in fields(info)}, fn=fn)

    def __call__(self, *args, **params) -> torch.Tensor:
        return self.fn(*args, **params)

    def bind(self, given: Mapping[str, float] | None = None) -> Callable[..., torch.Tensor]:
        """The loss with its hyperparameters fixed: ``bound(logit_pos, logit_neg)`` or ``bound(G, labels)``."""
        params = self.resolve(given)

        def bound(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return self.fn(a, b, **params)

        return bound


LOSSES: Registry[Loss] = Registry("FF loss")
for _name, _fn in (("bce", ff_loss), ("symba", symba_loss), ("cwc", cwc_loss), ("pvn", pvn_loss), ("cwg", cwg_loss)):
    LOSSES.register(_name)(Loss.of(LOSS_INFO[_name], _fn))   # kind, hyperparameters, op counts: ffneuro.catalog
