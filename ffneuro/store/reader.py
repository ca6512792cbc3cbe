"""read_run / find_runs: load ffneuro run files into plain Python and numpy, with one-line errors for bad files."""
from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import RunFileError
from .lock import Holder, holder_of
from .schema import EPOCH, RESERVED_GROUPS, STATE, STATE_META, UNIT, UNITS, check_header, unescape

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _open(path: Path) -> Iterator[h5py.File]:
    """Open a run read-only without taking a file lock, so a live writer's next open is never blocked."""
    if not path.exists():
        raise RunFileError(f"{path}: no such file")
    if not path.is_file():
        raise RunFileError(f"{path}: not a file")
    if not h5py.is_hdf5(path):
        raise RunFileError(f"{path}: not an HDF5 file")
    try:
        with h5py.File(path, "r", locking=False) as f:
            yield f
    except OSError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RunFileError(f"{path}: cannot read HDF5 data (truncated or corrupt file?): {reason}") from exc


def _plain(value: Any) -> Any:
    """numpy scalars and bytes as Python values; arrays unchanged."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value.item() if isinstance(value, np.generic) else value


def _read_dataset(ds: h5py.Dataset) -> Any:
    """A dataset as a numpy array, a Python scalar, a str, or a list of str."""
    if h5py.check_string_dtype(ds.dtype):
        value = ds.asstr()[()]
        return value.tolist() if isinstance(value, np.ndarray) else value
    return _plain(ds[()])


def _read_tree(group: h5py.Group) -> dict[str, Any]:
    """Datasets of ``group`` by (unescaped) name; subgroups as nested dicts."""
    return {
        unescape(name): _read_tree(item) if isinstance(item, h5py.Group) else _read_dataset(item)
        for name, item in group.items()
    }


def _read_arrays(group: h5py.Group) -> dict[str, Any]:
    """Every dataset of ``group`` as a numpy array of its stored dtype (0-d for scalars), nested by subgroup."""
    return {
        unescape(name): _read_arrays(item) if isinstance(item, h5py.Group) else np.asarray(item[()])
        for name, item in group.items()
    }


def _variables(group: h5py.Group, *scales: str) -> dict[str, np.ndarray]:
    """The data variables of a group: its datasets other than the dimension scales."""
    return {
        unescape(name): ds[()] for name, ds in group.items() if isinstance(ds, h5py.Dataset) and name not in scales
    }


@dataclass
class RunRecord:
    """Everything in a run file except the weights, which :meth:`weights` loads on demand."""

    path: Path
    schema_version: int
    status: str
    created: str
    epochs_done: int
    config: dict
    environment: dict
    unit_names: list[str]
    metrics: dict[str, np.ndarray]
    unit_metrics: dict[str, np.ndarray]
    accounting: dict[str, np.ndarray]
    groups: dict[str, dict]
    message: str = ""
    finished: str = ""
    ffneuro_version: str = "unknown"
    replaces: str = ""          # a pending --force run: the file name it replaces when it completes
    failure: str = ""           # with status "failed": a short kind, e.g. "diverged"
    committed: str = ""         # time of the last commit
    state_epoch: int = 0        # the epoch whose resume state is stored (0: none)

    @property
    def pending(self) -> bool:
        """A replacement that has not yet been renamed over the run it replaces."""
        return bool(self.replaces) and self.replaces != self.path.name

    def writer(self) -> Holder | None:
        """The live process writing this run, if any (a 'running' run without one crashed or was killed)."""
        return holder_of(self.path)

    def state(self) -> tuple[dict[str, Any], dict]:
        """The stored resume state: (nested dict of arrays, its JSON metadata)."""
        with _open(self.path) as f:
            if STATE not in f:
                raise RunFileError(f"{self.path}: no resume state in this run (written by an older ffneuro?)")
            arrays = _read_arrays(f[STATE])
            meta = arrays.pop(STATE_META, None)
            return arrays, json.loads(meta.tobytes().decode()) if meta is not None else {}

    def weights(self, which: str = "final") -> dict[str, np.ndarray]:
        """Load one parameter set ("final" or "best") from the file."""
        with _open(self.path) as f:
            available = sorted(f["weights"]) if "weights" in f else []
            if which not in available:
                raise RunFileError(
                    f"{self.path}: no {which!r} weights; available: {', '.join(available) or 'none'}"
                )
            return {unescape(name): ds[()] for name, ds in f["weights"][which].items()}


def read_run(path: str | os.PathLike) -> RunRecord:
    """Read a run file; anything that is not a readable ffneuro run raises a one-line RunFileError."""
    path = Path(path)
    with _open(path) as f:
        version = check_header(f, path)
        try:
            attrs = {k: _plain(v) for k, v in f.attrs.items()}
            units = f["metrics"][UNITS]
            return RunRecord(
                path=path,
                schema_version=version,
                status=attrs["status"],
                created=attrs["created"],
                epochs_done=int(attrs["epochs_done"]),
                config=json.loads(f["config"].attrs["json"]),
                environment=json.loads(f["environment"].attrs["json"]),
                unit_names=_read_dataset(f["accounting"][UNIT]),
                metrics=_variables(f["metrics"], EPOCH),
                unit_metrics=_variables(units, EPOCH, UNIT),
                accounting=_variables(f["accounting"], UNIT),
                groups={
                    unescape(name): {**_read_tree(g), "attrs": {k: _plain(v) for k, v in g.attrs.items()}}
                    for name, g in f.items()
                    if name not in RESERVED_GROUPS and isinstance(g, h5py.Group)
                },
                message=attrs.get("message", ""),
                finished=attrs.get("finished", ""),
                ffneuro_version=attrs.get("ffneuro_version", "unknown"),
                replaces=attrs.get("replaces", ""),
                failure=attrs.get("failure", ""),
                committed=attrs.get("committed", ""),
                state_epoch=int(f[STATE].attrs.get("epoch", 0)) if STATE in f else 0,
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise RunFileError(f"{path}: malformed run file: {exc}") from exc


def find_runs(directory: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """Split the ``*.h5`` files directly in ``directory`` (sorted) into readable ffneuro runs and skipped others."""
    directory = Path(directory)
    if not directory.is_dir():
        raise RunFileError(f"{directory}: not a directory")
    runs: list[Path] = []
    skipped: list[Path] = []
    for path in sorted(p for p in directory.glob("*.h5") if p.is_file()):
        try:
            with _open(path) as f:
                check_header(f, path)
            runs.append(path)
        except RunFileError as exc:
            log.debug("skipping %s", exc)
            skipped.append(path)
    return runs, skipped
