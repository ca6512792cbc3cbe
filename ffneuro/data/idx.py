"""MNIST and Fashion-MNIST: the IDX format (gzip'd or raw) in ``<root>/mnist/`` and ``<root>/fashion-mnist/``."""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from .dataset import DATASETS, Dataset, as_labels
from .download import dataset_folder, require_files

_UBYTE = 0x08


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read an unsigned-byte IDX file with ``ndim`` dimensions; any corruption is a DataError naming the file."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: unreadable ({exc})") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != _UBYTE or raw[3] != ndim:
        raise DataError(f"{path}: not an unsigned-byte IDX file with {ndim} dimension(s) (bad magic number {raw[:4].hex()})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated header")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    if len(raw) - header != int(np.prod(dims)):
        raise DataError(f"{path}: {len(raw) - header} data bytes, expected {int(np.prod(dims))} for shape {dims}")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims).copy()  # writable


def _load_idx_dataset(name: str, root: Path, download: bool) -> Dataset:
    """Read the four IDX files of an MNIST-like dataset, preferring uncompressed copies when present."""
    folder = dataset_folder(name, root)
    stems = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    files = [s if (folder / s).is_file() else f"{s}.gz" for s in stems]
    require_files(name, root, files, download)
    paths = [folder / f for f in files]
    x_train, x_test = (read_idx(p, 3)[:, None] for p in paths[0::2])
    y_train, y_test = (as_labels(read_idx(p, 1), p) for p in paths[1::2])
    return Dataset(name, x_train, y_train, x_test, y_test, num_classes=10)


@DATASETS.register("mnist")
def load_mnist(root: Path, download: bool) -> Dataset:
    """MNIST handwritten digits: 60000/10000 images of 1x28x28, 10 classes."""
    return _load_idx_dataset("mnist", root, download)


@DATASETS.register("fashion-mnist")
def load_fashion_mnist(root: Path, download: bool) -> Dataset:
    """Fashion-MNIST clothing images: 60000/10000 images of 1x28x28, 10 classes."""
    return _load_idx_dataset("fashion-mnist", root, download)
