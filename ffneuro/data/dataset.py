"""The in-memory dataset every loader returns, the registry of loaders, and the train/validation split."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import ConfigError, DataError
from ..registry import Registry

Loader = Callable[[Path, bool], "Dataset"]
"""A loader takes the data root and whether it may download, and returns a Dataset."""

DATASETS: Registry[Loader] = Registry("dataset")


@dataclass(frozen=True)
class Dataset:
    """Images as uint8 (N, C, H, W) and int64 labels in [0, num_classes); checked on creation."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise DataError(f"{self.name}: num_classes must be >= 1, got {self.num_classes}")
        for part in ("train", "test"):
            x, y = getattr(self, f"x_{part}"), getattr(self, f"y_{part}")
            if x.dtype != np.uint8 or x.ndim != 4:
                raise DataError(f"{self.name}: x_{part} must be uint8 (N, C, H, W), got {x.dtype} {x.shape}")
            if y.dtype != np.int64 or y.ndim != 1:
                raise DataError(f"{self.name}: y_{part} must be int64 (N,), got {y.dtype} {y.shape}")
            if len(x) != len(y):
                raise DataError(f"{self.name}: {len(x)} {part} images but {len(y)} labels")
            if len(y) and (y.min() < 0 or y.max() >= self.num_classes):
                raise DataError(f"{self.name}: {part} labels outside [0, {self.num_classes})")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DataError(f"{self.name}: train images {self.x_train.shape[1:]} but test images {self.x_test.shape[1:]}")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)


def split_train_val(x: np.ndarray, y: np.ndarray, val_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split off the LAST ``val_size`` training images as validation (deterministic, no shuffling).

    Returns ``(x_train, y_train, x_val, y_val)`` as views; ``val_size == 0`` gives empty validation arrays.
    """
    if len(x) != len(y):
        raise DataError(f"{len(x)} images but {len(y)} labels")
    if not 0 <= val_size < len(x):
        raise ConfigError(f"validation size must be in [0, {len(x)}) for {len(x)} training images, got {val_size}")
    cut = len(x) - val_size
    return x[:cut], y[:cut], x[cut:], y[cut:]


def as_labels(y: np.ndarray | list, origin: str | os.PathLike) -> np.ndarray:
    """Labels as a 1-D int64 array; anything non-integer is a DataError naming ``origin``."""
    y = np.asarray(y)
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or y.size == 0):
        raise DataError(f"{origin}: labels must be a 1-D integer array, got {y.dtype} {y.shape}")
    return y.astype(np.int64)
