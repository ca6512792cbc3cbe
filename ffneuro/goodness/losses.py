"""Local losses: what each unit minimises, registered with the goodness they take and their hyperparameters.

Two kinds, which decide how a network builds its training rows:

* ``pair`` losses take the FF logits (goodness − θ) of the positives and of the negatives (the same
  images with a wrong label embedded): ``bce`` (Hinton; the paper's) and ``symba`` (Lee & Song 2023).
* ``class`` losses take class-wise goodness (N, classes) and the true labels; the image carries no
  label and no negative image is made: ``cwc``, ``pvn`` and ``cwg`` (Papachristodoulou et al., AAAI 2024).

A loss's hyperparameters have defaults here and are set per run with ``--loss-params name=value``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..registry import Registry

KINDS = ("pair", "class")


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
class Loss:
    """A registered local loss: its function, the goodness it takes (``kind``), its hyperparameters with
    their defaults, where it comes from, and its elementwise op counts for the accounting, as
    (per class, per row) pairs: a pair loss counts per logit (per class 0), a class loss per row."""

    name: str
    fn: Callable[..., torch.Tensor]
    kind: str
    source: str
    params: Mapping[str, float] = field(default_factory=dict)
    fwd_ops: tuple[int, int] = (0, 4)
    bwd_ops: tuple[int, int] = (0, 3)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"loss kind must be one of {', '.join(KINDS)}, got {self.kind!r}")

    def __call__(self, *args, **params) -> torch.Tensor:
        return self.fn(*args, **params)

    def resolve(self, given: Mapping[str, float] | None) -> dict[str, float]:
        """Every hyperparameter of this loss: the defaults overridden by ``given`` (an unknown name is a
        ConfigError that lists the valid ones)."""
        given = dict(given or {})
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            valid = ", ".join(sorted(self.params)) or "none"
            raise ConfigError(f"loss {self.name!r} has no parameter {unknown[0]!r}; its parameters: {valid}")
        return {**self.params, **{k: float(v) for k, v in given.items()}}

    def bind(self, given: Mapping[str, float] | None = None) -> Callable[..., torch.Tensor]:
        """The loss with its hyperparameters fixed: ``bound(logit_pos, logit_neg)`` or ``bound(G, labels)``."""
        params = self.resolve(given)

        def bound(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return self.fn(a, b, **params)

        return bound


LOSSES: Registry[Loss] = Registry("FF loss")
LOSSES.register("bce")(Loss("bce", ff_loss, "pair", "Hinton 2022; the paper's"))
LOSSES.register("symba")(Loss("symba", symba_loss, "pair", "Lee & Song 2023 (SymBa)", {"alpha": 4.0}))
# CE per class: max, subtract, exp, accumulate, subtract; per row: log, pick (ffneuro.accounting.ops.CE_*)
LOSSES.register("cwc")(Loss("cwc", cwc_loss, "class", "Papachristodoulou et al., AAAI 2024 (CwC)",
                            fwd_ops=(5, 2), bwd_ops=(1, 1)))
# per class: gather/accumulate the rest; per row: two softplus (3 each), the rest's mean, their share of the mean
LOSSES.register("pvn")(Loss("pvn", pvn_loss, "class", "Papachristodoulou et al., AAAI 2024 (PvN)",
                            {"threshold": 2.0}, fwd_ops=(1, 9), bwd_ops=(1, 7)))
LOSSES.register("cwg")(Loss("cwg", cwg_loss, "class", "Papachristodoulou et al., AAAI 2024 (CWG)",
                            {"weight": 0.28, "threshold": 2.0}, fwd_ops=(6, 14), bwd_ops=(2, 10)))
