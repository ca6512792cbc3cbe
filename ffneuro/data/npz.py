"""``npz:PATH`` datasets: a NumPy .npz with x_train, y_train, x_test, y_test (uint8 images, integer labels)."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..errors import DataError
from .dataset import Dataset, as_labels

PREFIX = "npz:"
KEYS = ("x_train", "y_train", "x_test", "y_test")


def to_nchw(x: np.ndarray, origin: str) -> np.ndarray:
    """(N, H, W) gains a channel axis; (N, H, W, C) with C in {1, 3} becomes (N, C, H, W) unless already channel-first."""
    if x.dtype != np.uint8:
        raise DataError(f"{origin}: images must be uint8, got {x.dtype}")
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4:
        return x.transpose(0, 3, 1, 2) if x.shape[3] in (1, 3) and x.shape[1] not in (1, 3) else x
    raise DataError(f"{origin}: images must be (N, H, W), (N, H, W, C) or (N, C, H, W), got {x.shape}")


def load_npz(spec: str) -> Dataset:
    """Load ``npz:PATH``; num_classes is the largest label + 1."""
    path = Path(spec.removeprefix(PREFIX)).expanduser()
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in KEYS if k not in f.files]
            if missing:
                raise DataError(f"{path}: missing array(s) {', '.join(missing)} (needs {', '.join(KEYS)})")
            arrays = {k: f[k] for k in KEYS}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from exc
    x_train, x_test = (to_nchw(arrays[k], f"{path}:{k}") for k in ("x_train", "x_test"))
    y_train, y_test = (as_labels(arrays[k], f"{path}:{k}") for k in ("y_train", "y_test"))
    for split, x in (("train", x_train), ("test", x_test)):
        if len(x) == 0:  # an empty test split would train and report NaN test accuracy
            raise DataError(f"{path}: the {split} split is empty (x_{split} holds no images)")
    num_classes = int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1
    return Dataset(spec, x_train, y_train, x_test, y_test, num_classes)
