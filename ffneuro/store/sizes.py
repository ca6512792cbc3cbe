"""Whether a stored run's config describes the network its weights are for, told from the file's headers.

A run file may come from anyone: its config is a JSON attribute that can claim any size (``filters=1e9``
asks for 196 GB), while its weights are datasets whose size the reader bounds by the file's own size.
Every parameter of a trained network is stored, so a config whose network has more parameters than the
file holds weight values is not the run's own; it is refused before anything builds, costs or maps that
network (``eval``, ``cam``, ``profile`` of a run). No data is read: dataset shapes come from the headers.
Torch-free, so the profiler may call it.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import h5py

from ..config import RunConfig
from ..errors import RunFileError
from .reader import RunRecord, _open

log = logging.getLogger(__name__)

#: The weight sets a run may store, in the order the check looks for one.
WEIGHT_SETS = ("final", "best")


def stored_weight_elements(path: str | Path, which: str | None = None) -> tuple[str, int] | None:
    """(the weight set, how many values its datasets hold) from the headers of run file ``path`` (the file's
    structure checked first: no link or external storage is followed); ``which`` ("final"/"best"), or the
    first of :data:`WEIGHT_SETS` the file has. None when it stores no such weights (no epoch committed)."""
    path = Path(path)
    with _open(path) as f:
        group = f.get("weights")
        if not isinstance(group, h5py.Group):
            return None
        names = [which] if which is not None else [w for w in WEIGHT_SETS if w in group]
        if not names or not isinstance(group.get(names[0]), h5py.Group):
            return None
        total = 0
        for name, ds in group[names[0]].items():
            if not isinstance(ds, h5py.Dataset):
                raise RunFileError(f"{path}: /weights/{names[0]}/{name} is not a dataset")
            total += math.prod(ds.shape or ())   # the header's shape: no data is read
        return names[0], total


def check_stored_network(record: RunRecord, config: RunConfig, image_shape: Sequence[int], num_classes: int,
                         which: str | None = None) -> list:
    """The block specs of the stored run's network (:meth:`RunConfig.check_shapes`: an impossible shape is a
    one-line ConfigError), refusing with a one-line RunFileError naming the file a config whose network has
    more parameters than the file's weights hold values: a damaged or crafted config, whose network would
    otherwise be built (or costed) at whatever size it claims."""
    specs = config.check_shapes(tuple(image_shape), num_classes)
    params = sum(s.params for s in specs)
    stored = stored_weight_elements(record.path, which)
    if stored is None:
        log.debug("%s stores no weights: its config's network size is not checked against them", record.path)
        return specs
    name, values = stored
    if params > values:
        raise RunFileError(f"{record.path}: its config describes a network of {params:,} parameters but its "
                           f"{name} weights hold {values:,} values: the config is not this run's own (damaged or "
                           "crafted); refused")
    return specs
