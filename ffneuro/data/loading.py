"""Load any dataset by name: a registered one (mnist, cifar10, synthetic, ...) or ``npz:PATH``."""
from __future__ import annotations

import os

from . import cifar, idx, synthetic  # noqa: F401  (registers the loaders)
from .dataset import DATASETS, Dataset
from .npz import PREFIX, load_npz
from .paths import resolve_data_dir


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, *, download: bool = True) -> Dataset:
    """Load dataset ``name`` from the data root (see :func:`resolve_data_dir`), downloading missing files if allowed."""
    if name.startswith(PREFIX):
        return load_npz(name)
    loader = DATASETS.get(name)
    return loader(resolve_data_dir(data_dir), download)


def dataset_names() -> list[str]:
    """Every accepted dataset name: the registered ones plus the ``npz:PATH`` form."""
    return [*DATASETS.names(), f"{PREFIX}PATH"]
