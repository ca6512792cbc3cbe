"""Label schemes: how a class is written into the image so every FF unit can see it."""
from __future__ import annotations

from . import channel, fourier, morph, onehot  # noqa: F401  (registers the schemes)
from .base import LabelScheme, minmax01, random_wrong_labels
from .registry import LABELS


def build_labels(name: str, num_classes: int, image_shape, strength: float, *, run_seed: int | None = None,
                 **params) -> LabelScheme:
    """Instantiate the registered scheme ``name``; ``params`` are its own options (e.g. frequencies).
    ``run_seed``: the run's seed, which a :attr:`~LabelScheme.run_seeded` scheme draws its patterns from
    (unless ``params`` names a ``seed``); the other schemes ignore it."""
    scheme = LABELS.get(name)
    if run_seed is not None and scheme.run_seeded:
        params.setdefault("seed", int(run_seed))
    return scheme(num_classes, tuple(image_shape), strength, **params)


__all__ = ["LABELS", "LabelScheme", "build_labels", "minmax01", "random_wrong_labels"]
