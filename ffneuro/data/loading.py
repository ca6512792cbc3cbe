"""Load any dataset by name: a registered one (mnist, cifar10, synthetic, ...) or ``npz:PATH``."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ..errors import DataError, FFNeuroError, UnknownNameError
from . import cifar, idx, synthetic  # noqa: F401  (registers the loaders)
from .dataset import DATASETS, Dataset, split_sizes
from .npz import PREFIX, load_npz
from .paths import resolve_data_dir


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, *, download: bool = True) -> Dataset:
    """Load dataset ``name`` from the data root (see :func:`resolve_data_dir`), downloading missing files if allowed."""
    if name.startswith(PREFIX):
        return load_npz(name)
    loader = DATASETS.get(name)
    return loader(resolve_data_dir(data_dir), download)


def load_data(name: str, data_dir: str | os.PathLike | None = None) -> Dataset:
    """:func:`load_dataset`, with any unexpected reading failure reported as a DataError.

    The loaders turn the usual problems into DataError themselves; this catches what slips through
    (e.g. an empty or half-written file that the parser rejects with EOFError) so that bad data is
    reported as bad data, not as an internal error.
    """
    return checked_load(name, lambda: load_dataset(name, data_dir))


def checked_load(name: str, load) -> Dataset:
    """``load()``, with OSError, EOFError and ValueError turned into a DataError naming the dataset."""
    try:
        return load()
    except (FFNeuroError, UnknownNameError, KeyboardInterrupt):
        raise
    except (OSError, EOFError, ValueError) as exc:
        raise DataError(f"cannot load dataset {name}: {type(exc).__name__}: {exc}") from exc


def data_source(name: str, data_dir: str | os.PathLike | None = None) -> str:
    """Where :func:`load_dataset` reads ``name`` from, as an absolute path: stored with a run so that
    ``eval`` and ``cam`` find the same data without being told again."""
    if name.startswith(PREFIX):
        return str(Path(name.removeprefix(PREFIX)).expanduser().resolve())
    return str(resolve_data_dir(data_dir).resolve())


def load_from_source(name: str, source: str) -> Dataset:
    """Load ``name`` from a location :func:`data_source` gave (an npz dataset from its stored absolute path)."""
    if name.startswith(PREFIX):
        return load_npz(PREFIX + source)
    return load_dataset(name, source)


def dataset_names() -> list[str]:
    """Every accepted dataset name: the registered ones plus the ``npz:PATH`` form."""
    return [*DATASETS.names(), f"{PREFIX}PATH"]


# (C, H, W) and class count of each registered dataset, so a network can be built and profiled
# without reading its files.
SHAPES: dict[str, tuple[tuple[int, int, int], int]] = {
    "mnist": ((1, 28, 28), 10),
    "fashion-mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
    "cifar100": ((3, 32, 32), 100),
    "synthetic": ((1, 16, 16), 10),
}


def dataset_shape(name: str) -> tuple[tuple[int, int, int], int]:
    """Image shape (C, H, W) and number of classes of ``name``; ``npz:PATH`` reads the file."""
    if name.startswith(PREFIX):
        data = load_npz(name)
        return data.image_shape, data.num_classes
    DATASETS.get(name)  # an unknown name lists the valid ones
    return SHAPES[name]


# Images in the training file of each registered dataset (validation is split off them), so that a
# config's split can be resolved without reading the files.
TRAIN_IMAGES: dict[str, int] = {"mnist": 60000, "fashion-mnist": 60000, "cifar10": 50000, "cifar100": 50000,
                                "synthetic": 1000}


def train_images(name: str) -> int:
    """Number of images in the training file of dataset ``name``; ``npz:PATH`` reads the file."""
    if name.startswith(PREFIX):
        return len(load_npz(name).y_train)
    DATASETS.get(name)  # an unknown name lists the valid ones
    return TRAIN_IMAGES[name]


def same_split(a: Mapping, b: Mapping) -> bool:
    """Whether two configs (as dicts) train and validate on the same images: same dataset and train
    limit, and validation sizes (None: automatic) that resolve to the same counts, so a run stored
    with the old default ``val_size=10000`` matches an automatic split of the same 10,000 images."""
    if a.get("dataset") != b.get("dataset") or a.get("train_limit") != b.get("train_limit"):
        return False
    try:
        n, limit = train_images(a["dataset"]), a.get("train_limit")
        return split_sizes(n, a.get("val_size"), limit) == split_sizes(n, b.get("val_size"), limit)
    except (FFNeuroError, KeyError, OSError):
        return False
