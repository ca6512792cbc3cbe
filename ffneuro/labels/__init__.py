"""Label schemes: how a class is written into the image so every FF unit can see it."""
from __future__ import annotations

from . import channel, fourier, morph, onehot  # noqa: F401  (registers the schemes)
from .base import LabelScheme, minmax01, random_wrong_labels
from .registry import LABELS


def build_labels(name: str, num_classes: int, image_shape, strength: float, **params) -> LabelScheme:
    """Instantiate the registered scheme ``name``; ``params`` are its own options (e.g. frequencies)."""
    return LABELS.get(name)(num_classes, tuple(image_shape), strength, **params)


__all__ = ["LABELS", "LabelScheme", "build_labels", "minmax01", "random_wrong_labels"]
