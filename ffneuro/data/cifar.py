"""CIFAR-10 and CIFAR-100 in the official python layout, read with a restricted unpickler."""
from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .dataset import DATASETS, Dataset, as_labels
from .download import dataset_folder, require_files

try:
    from numpy._core.multiarray import _reconstruct
    from numpy._core.numeric import _frombuffer
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct
    from numpy.core.numeric import _frombuffer

# Everything a pickled dict of numpy arrays and lists needs, under both numpy module spellings.
_ALLOWED: dict[tuple[str, str], Any] = {
    **{(f"numpy.{core}.multiarray", "_reconstruct"): _reconstruct for core in ("core", "_core")},
    **{(f"numpy.{core}.numeric", "_frombuffer"): _frombuffer for core in ("core", "_core")},  # protocol 5
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,  # bytes written by Python 3 with protocol < 3
}


class _PlainDataUnpickler(pickle.Unpickler):
    """Unpickles only plain data and numpy arrays; any other global (e.g. ``os.system``) is a DataError."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[module, name]
        except KeyError:
            raise DataError(f"refusing to unpickle {module}.{name}: only plain data and numpy arrays are allowed") from None


def load_pickle(path: Path) -> Any:
    """Unpickle ``path`` with the restricted unpickler (latin1 for Python 2 pickles, like the official files)."""
    try:
        return _PlainDataUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None
    except Exception as exc:  # a corrupt pickle can raise almost anything
        raise DataError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc})") from exc


def _read_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) and labels from one batch: ``data`` rows hold the R, G then B 32x32 planes."""
    batch = load_pickle(path)
    if not isinstance(batch, dict):
        raise DataError(f"{path}: expected a pickled dict, got {type(batch).__name__}")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    missing = [k for k in ("data", label_key) if k not in batch]
    if missing:
        raise DataError(f"{path}: missing key(s) {', '.join(missing)}")
    data = np.asarray(batch["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{path}: 'data' must be uint8 (N, 3072), got {data.dtype} {data.shape}")
    return data.reshape(-1, 3, 32, 32), as_labels(batch[label_key], path)


def _load(name: str, root: Path, download: bool, train: list[str], test: str, label_key: str, num_classes: int) -> Dataset:
    """Read the train batches (concatenated in order) and the test batch of a CIFAR dataset."""
    require_files(name, root, [*train, test], download)
    folder = dataset_folder(name, root)
    parts = [_read_batch(folder / f, label_key) for f in train]
    x_test, y_test = _read_batch(folder / test, label_key)
    return Dataset(name, np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts]),
                   x_test, y_test, num_classes)


@DATASETS.register("cifar10")
def load_cifar10(root: Path, download: bool) -> Dataset:
    """CIFAR-10: 50000/10000 colour images of 3x32x32, 10 classes (``data_batch_1..5``, ``test_batch``)."""
    return _load("cifar10", root, download, [f"data_batch_{i}" for i in range(1, 6)], "test_batch", "labels", 10)


@DATASETS.register("cifar100")
def load_cifar100(root: Path, download: bool) -> Dataset:
    """CIFAR-100 with its 100 fine labels (coarse labels unused): 50000/10000 images of 3x32x32."""
    return _load("cifar100", root, download, ["train"], "test", "fine_labels", 100)
