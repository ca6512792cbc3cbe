"""What a run config may name, without torch: the goodness functions, losses, label schemes and optimisers.

The torch-backed registries (:data:`ffneuro.goodness.GOODNESS` and ``LOSSES``,
:data:`ffneuro.labels.LABELS`, :data:`ffneuro.units.OPTIMIZERS`) hold the code; this module holds what
:class:`~ffneuro.config.RunConfig` needs to check a name and how the names fit together, so that
``import ffneuro.config`` (and ``ffneuro --help``) load no torch. A loss is described here once
(:class:`LossInfo`) and :mod:`ffneuro.goodness.losses` adds its function; ``tests/test_catalog.py``
checks that every other table here names exactly what its registry registers, so they cannot drift.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import ConfigError

#: goodness name -> whether it is class-wise (one value per class-owned channel group, CwComp) rather
#: than one value per sample (:class:`ffneuro.goodness.Goodness` ``per_class``)
GOODNESS_PER_CLASS: Mapping[str, bool] = {"sumsq": False, "meansq": False, "classwise": True,
                                              "classmean": True}

#: the registered label schemes (``--labels``; ``none`` is the config's "no label in the image")
LABEL_SCHEMES: tuple[str, ...] = ("channel", "channel-normal", "fourier1", "fourier2", "morph", "onehot")

#: the label schemes that give the label input channels of its own (the others write it into the image's):
#: name -> how many channels they add to an FF network's input. The one statement of it: registering a
#: scheme (:data:`ffneuro.labels.LABELS`) sets its ``LabelScheme.extra_channels`` from here
LABEL_CHANNELS: Mapping[str, int] = {"channel": 1, "channel-normal": 1}


def label_channels(labels: str, algo: str = "ff") -> int:
    """Input channels the label adds to a network's images: an FF network's scheme may add its own; a BP
    network has no label."""
    return LABEL_CHANNELS.get(labels, 0) if algo == "ff" else 0


def network_input_shape(labels: str, image_shape, algo: str = "ff") -> tuple[int, ...]:
    """What the first unit of a network takes for (C, H, W) images: an FF network whose label scheme adds
    channels sees them too; a BP network (and any scheme that writes into the image) sees the image's shape."""
    shape = tuple(image_shape)
    extra = label_channels(labels, algo)
    return (shape[0] + extra, *shape[1:]) if extra else shape

#: the optimisers a unit may own (``--optimizer``)
OPTIMIZER_NAMES: tuple[str, ...] = ("adam", "sgd")

#: what the FF linear readout's cross-entropy is taken of (``--linear-loss``): its logits, or their softmax
#: (CwComp's code; :func:`ffneuro.models.readouts.readout_loss`)
LINEAR_LOSSES: tuple[str, ...] = ("ce", "ce-of-softmax")

LOSS_KINDS = ("pair", "class")


@dataclass(frozen=True)
class LossInfo:
    """A local loss without its function: the goodness it takes (``kind``: ``pair`` losses take the FF
    logits of positives and negatives, ``class`` losses class-wise goodness and the true labels), its
    hyperparameters with their defaults, where it comes from, and its elementwise op counts for the
    accounting as (per class, per row) pairs: a pair loss counts per logit (per class 0), a class loss per row."""

    name: str
    kind: str
    source: str
    params: Mapping[str, float] = field(default_factory=dict)
    fwd_ops: tuple[int, int] = (0, 4)
    bwd_ops: tuple[int, int] = (0, 3)

    def __post_init__(self) -> None:
        if self.kind not in LOSS_KINDS:
            raise ValueError(f"loss kind must be one of {', '.join(LOSS_KINDS)}, got {self.kind!r}")

    def resolve(self, given: Mapping[str, float] | None) -> dict[str, float]:
        """Every hyperparameter of this loss: the defaults overridden by ``given`` (an unknown name is a
        ConfigError that lists the valid ones)."""
        given = dict(given or {})
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            valid = ", ".join(sorted(self.params)) or "none"
            raise ConfigError(f"loss {self.name!r} has no parameter {unknown[0]!r}; its parameters: {valid}")
        return {**self.params, **{k: float(v) for k, v in given.items()}}


#: loss name -> its description; :mod:`ffneuro.goodness.losses` registers each with its function
LOSS_INFO: Mapping[str, LossInfo] = {info.name: info for info in (
    LossInfo("bce", "pair", "Hinton 2022; the paper's"),
    LossInfo("symba", "pair", "Lee & Song 2023 (SymBa)", {"alpha": 4.0}),
    # CE per class: max, subtract, exp, accumulate, subtract; per row: log, pick (ffneuro.accounting.ops.CE_*)
    LossInfo("cwc", "class", "Papachristodoulou et al., AAAI 2024 (CwC)", fwd_ops=(5, 2), bwd_ops=(1, 1)),
    # per class: gather/accumulate the rest; per row: two softplus (3 each), the rest's mean, their share of the mean
    LossInfo("pvn", "class", "Papachristodoulou et al., AAAI 2024 (PvN)", {"threshold": 2.0},
             fwd_ops=(1, 9), bwd_ops=(1, 7)),
    LossInfo("cwg", "class", "Papachristodoulou et al., AAAI 2024 (CWG)", {"weight": 0.28, "threshold": 2.0},
             fwd_ops=(6, 14), bwd_ops=(2, 10)),
)}
