"""The in-memory dataset every loader returns, the registry of loaders, and the train/validation split."""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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


# The automatic validation split (``val_size=None``): one image in AUTO_VAL_SHARE of those in use,
# at most AUTO_VAL_MAX. That is MNIST's 50,000 / 10,000 and CIFAR's 40,000 / 10,000 as before.
AUTO_VAL_MAX = 10_000
AUTO_VAL_SHARE = 5


def split_sizes(n: int, val_size: int | None = None, train_limit: int | None = None, *,
                name: str = "the dataset") -> tuple[int, int]:
    """(training, validation) image counts taken from the ``n`` images of a training file.

    An explicit ``val_size`` is kept as given. ``None`` means automatic: a fifth of the images in use,
    at most 10,000 (MNIST 50,000 / 10,000, CIFAR 40,000 / 10,000, synthetic 800 / 200). With a
    ``train_limit`` L it is L // 4 (still a fifth of the images in use), at most 10,000 and at most
    the n - L images the limit leaves. A limit beyond what the data holds is a ConfigError.
    """
    if n < 1:
        raise ConfigError(f"{name} has no training images")
    if val_size is not None:
        if not 0 <= val_size < n:
            raise ConfigError(f"validation size must be in [0, {n}) for {n} training images, got {val_size}")
        left = n - val_size
        if train_limit is not None and train_limit > left:
            raise ConfigError(f"train limit {train_limit} exceeds the {left} images of {name} left for training "
                              f"({n} minus {val_size} for validation); lower --train-limit or --val-size")
        return (left if train_limit is None else train_limit), val_size
    if train_limit is None:
        val = min(AUTO_VAL_MAX, n // AUTO_VAL_SHARE)
        return n - val, val
    if train_limit > n:
        raise ConfigError(f"train limit {train_limit} exceeds the {n} training images of {name}")
    return train_limit, min(AUTO_VAL_MAX, train_limit // (AUTO_VAL_SHARE - 1), n - train_limit)


def split_train_val(x: np.ndarray, y: np.ndarray, val_size: int | None, train_limit: int | None = None, *,
                    name: str = "the dataset") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The FIRST training images (all but the validation split, or ``train_limit`` of them) and the LAST
    ones as validation, sized by :func:`split_sizes` (deterministic, no shuffling).

    Returns ``(x_train, y_train, x_val, y_val)`` as views; a validation size of 0 gives empty arrays.
    """
    if len(x) != len(y):
        raise DataError(f"{len(x)} images but {len(y)} labels")
    n_train, n_val = split_sizes(len(x), val_size, train_limit, name=name)
    cut = len(x) - n_val
    return x[:n_train], y[:n_train], x[cut:], y[cut:]


def as_labels(y: np.ndarray | list, origin: str | os.PathLike) -> np.ndarray:
    """Labels as a 1-D int64 array; anything non-integer is a DataError naming ``origin``."""
    y = np.asarray(y)
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or y.size == 0):
        raise DataError(f"{origin}: labels must be a 1-D integer array, got {y.dtype} {y.shape}")
    return y.astype(np.int64)
