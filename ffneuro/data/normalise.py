"""Input standardisation (``RunConfig.normalise``): what a run's images become after scaling to [0, 1].

Every consumer of a run's inputs (training, validation and test evaluation, ``ffneuro eval``, ``cam``)
reads its batches through the trainer's ``Split.batch``, which calls :func:`standardise`: the one place
the option is applied. ``export`` and ``simulate`` refuse a standardised run (:func:`refuse_standardised`).
``"none"`` (the default, and what a run file written before the option existed means) leaves the images
in [0, 1].

Each named setting is (per-channel mean, per-channel std) of the [0, 1]-scaled image, with its source:

* ``mnist``: (0.1307,) / (0.3081,), the mean and standard deviation of MNIST's 60,000 training pixels
  as PyTorch's MNIST example and CwComp's ``Datasets.py`` (X_MNIST, dataset "MNIST") use them;
* ``half``: (0.5,) / (0.5,), which maps [0, 1] onto [-1, 1]: CwComp's ``Datasets.py`` for every other
  one-channel set (X_MNIST with dataset "FMNIST");
* ``imagenet``: (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225), ImageNet's channel statistics
  (torchvision's pretrained-model convention): CwComp's ``Datasets.py`` for CIFAR-10 (X_CIFAR);
* ``fashion-mnist``: (0.2860,) / (0.3530,), Fashion-MNIST's training pixels, as the Trifecta code
  (tdooms/trifecta ``main.py``, ``Data``) uses them;
* ``cifar10``: (0.4914, 0.4822, 0.4465) / (0.2023, 0.1994, 0.2010), the widely copied CIFAR-10 values the
  Trifecta code uses (the means are the training pixels'; these stds are not the pixels' own, about
  0.247, 0.243, 0.261, but the code's, kept so that a preset feeds what the code feeds).

Torch-free at import (``ffneuro.config`` reads :data:`NORMALISATIONS`): :func:`standardise` works on
whatever tensor it is given through its own methods.
"""
from __future__ import annotations

from typing import Any

from ..errors import ConfigError

NONE = "none"
NORMALISATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]] | None] = {
    NONE: None,
    "mnist": ((0.1307,), (0.3081,)),
    "half": ((0.5,), (0.5,)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
}


def check_normalisation(name: str, channels: int | None = None) -> None:
    """A ConfigError unless ``name`` is a known setting whose mean/std fit images of ``channels`` channels."""
    if name not in NORMALISATIONS:
        raise ConfigError(f"unknown normalise {name!r}; valid: {', '.join(NORMALISATIONS)}")
    stats = NORMALISATIONS[name]
    if stats is not None and channels is not None and len(stats[0]) != channels:
        raise ConfigError(f"normalise {name!r} has {len(stats[0])}-channel statistics but the images have "
                          f"{channels} channel{'s' if channels != 1 else ''}")


def standardise(x: Any, name: str) -> Any:
    """``(x - mean) / std`` per channel of an (N, C, H, W) float batch in [0, 1], in place (``x`` itself
    for ``"none"``)."""
    stats = NORMALISATIONS[name]
    if stats is None:
        return x
    mean, std = stats
    shape = (1, len(mean), 1, 1)
    return x.sub_(x.new_tensor(mean).view(shape)).div_(x.new_tensor(std).view(shape))


def describe(name: str) -> str:
    """A short human reading of a setting, e.g. ``(x - 0.1307) / 0.3081``."""
    stats = NORMALISATIONS[name]
    if stats is None:
        return "x in [0, 1]"
    mean, std = (m[0] if len(m) == 1 else m for m in stats)
    return f"(x - {mean}) / {std}"


def refuse_standardised(name: str, run: str, what: str, why: str) -> None:
    """A ConfigError when a run's inputs were standardised and ``what`` (export, simulate) cannot carry that."""
    if NORMALISATIONS.get(name) is not None:
        raise ConfigError(f"{run} was trained on standardised inputs (normalise {name!r}: {describe(name)}); "
                          f"{what} cannot reproduce them: {why}")
