"""RunWriter: creates one HDF5 file per training run and appends to it, epoch by epoch."""
from __future__ import annotations

import contextlib
import importlib
import logging
import os
from pathlib import Path
from typing import Any, Iterator, Mapping

import h5py
import numpy as np

from ..errors import RunFileError
from .schema import (
    EPOCH, RESERVED_GROUPS, SCHEMA_NAME, SCHEMA_VERSION, FINISH_STATUSES, UNIT, UNITS, WEIGHT_SETS,
    escape, utc_now, write_json_attrs,
)

log = logging.getLogger(__name__)

_STRING = h5py.string_dtype("utf-8")


def _ffneuro_version() -> str:
    return getattr(importlib.import_module("ffneuro"), "__version__", "unknown")


def _to_numpy(value: Any) -> np.ndarray:
    """Arrays, scalars and (detached, CPU-copied) torch tensors as numpy; strings as HDF5 UTF-8 strings."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    if isinstance(value, str) or (isinstance(value, (list, tuple)) and value and isinstance(value[0], str)):
        return np.array(value, dtype=_STRING)
    return np.asarray(value)


def _epoch_scale(group: h5py.Group) -> h5py.Dataset:
    """An empty, growable 1-based 'epoch' coordinate that is its own dimension scale."""
    ds = group.create_dataset(EPOCH, shape=(0,), maxshape=(None,), dtype="i8", chunks=(256,))
    ds.make_scale(EPOCH)
    return ds


def _unit_scale(group: h5py.Group, unit_names: list[str]) -> h5py.Dataset:
    ds = group.create_dataset(UNIT, data=np.array(unit_names, dtype=_STRING), dtype=_STRING)
    ds.make_scale(UNIT)
    return ds


def _label_dims(ds: h5py.Dataset, group: h5py.Group, dims: tuple[str, ...]) -> None:
    """Name the dimensions of ``ds`` and attach the same-named scales of its group (netCDF-4 style)."""
    for axis, dim in enumerate(dims):
        ds.dims[axis].label = dim
        ds.dims[axis].attach_scale(group[dim])


def _write_values(group: h5py.Group, values: Mapping[str, Any]) -> None:
    """Write ``values`` into ``group``: nested dicts become subgroups, everything else a dataset."""
    for key, value in values.items():
        if isinstance(value, Mapping):
            _write_values(group.create_group(escape(key)), value)
        else:
            group.create_dataset(escape(key), data=_to_numpy(value))


class RunWriter:
    """Creates a run file and appends to it; every call opens, writes, flushes and closes the file so a crash
    loses at most the running epoch and the file stays readable."""

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        config: dict,
        environment: dict,
        unit_names: list[str],
        accounting: dict[str, list],
        force: bool = False,
    ):
        self.path = Path(path)
        self.unit_names = list(unit_names)
        if self.path.exists() and not force:
            raise RunFileError(f"{self.path} exists; pass --force to overwrite")
        parent = self.path.parent
        if not parent.is_dir():
            raise RunFileError(f"cannot create run file {self.path}: directory {parent} does not exist")
        if not os.access(parent, os.W_OK):
            raise RunFileError(f"cannot create run file {self.path}: directory {parent} is not writable")
        for field, values in accounting.items():
            if len(values) != len(self.unit_names):
                raise ValueError(f"accounting field {field!r} has {len(values)} values for {len(unit_names)} units")
        # Build the new file beside the target and swap it in, so a failed start never destroys an old run.
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with h5py.File(tmp, "w") as f:
                self._initialise(f, config, environment, accounting)
            os.replace(tmp, self.path)
        except OSError as exc:
            raise RunFileError(f"cannot create run file {self.path}: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        log.info("created run file %s", self.path)

    @classmethod
    def reopen(cls, path: str | os.PathLike) -> "RunWriter":
        """A writer on an existing run (e.g. to add the profiler's results); refuses anything else."""
        from .reader import read_run  # the reader validates the header and the required groups

        record = read_run(path)
        writer = cls.__new__(cls)
        writer.path, writer.unit_names = Path(path), list(record.unit_names)
        return writer

    def _initialise(self, f: h5py.File, config: dict, environment: dict, accounting: dict[str, list]) -> None:
        f.attrs.update(
            schema=SCHEMA_NAME, schema_version=SCHEMA_VERSION, ffneuro_version=_ffneuro_version(),
            created=utc_now(), status="running", message="", epochs_done=0,
        )
        write_json_attrs(f.create_group("config"), config)
        write_json_attrs(f.create_group("environment"), environment)
        acc = f.create_group("accounting")
        _unit_scale(acc, self.unit_names)
        for field, values in accounting.items():
            _label_dims(acc.create_dataset(escape(field), data=np.asarray(values)), acc, (UNIT,))
        metrics = f.create_group("metrics")
        _epoch_scale(metrics)
        units = metrics.create_group(UNITS)
        _epoch_scale(units)
        _unit_scale(units, self.unit_names)

    @contextlib.contextmanager
    def _open(self) -> Iterator[h5py.File]:
        """Open the run for appending; closing on exit flushes everything to disk."""
        try:
            with h5py.File(self.path, "a") as f:
                yield f
        except OSError as exc:
            raise RunFileError(f"cannot write run file {self.path}: {exc}") from exc

    def append_epoch(self, scalars: dict[str, float], per_unit: dict[str, list[float]] | None = None) -> None:
        """Append one epoch row; keys absent this epoch read NaN, keys new this epoch are NaN for earlier epochs."""
        per_unit = per_unit or {}
        n_units = len(self.unit_names)
        for key, values in per_unit.items():
            if len(values) != n_units:
                raise ValueError(f"per-unit metric {key!r} has {len(values)} values for {n_units} units")
        for key in [*scalars, *per_unit]:
            if key in (EPOCH, UNIT, UNITS):
                raise ValueError(f"metric name {key!r} is reserved")
        with self._open() as f:
            epochs = int(f.attrs["epochs_done"]) + 1
            self._append(f["metrics"], scalars, epochs, (EPOCH,))
            self._append(f["metrics"][UNITS], per_unit, epochs, (EPOCH, UNIT))
            f.attrs["epochs_done"] = epochs

    def _append(self, group: h5py.Group, row: Mapping[str, Any], epochs: int, dims: tuple[str, ...]) -> None:
        """Grow every variable of ``group`` to ``epochs`` rows (new rows are NaN fill) and write ``row`` last."""
        tail = (len(self.unit_names),) if len(dims) == 2 else ()
        for key in row:
            name = escape(key)
            if name not in group:
                ds = group.create_dataset(
                    name, shape=(0, *tail), maxshape=(None, *tail), dtype="f8", fillvalue=np.nan, chunks=True
                )
                _label_dims(ds, group, dims)
        for name, ds in group.items():
            if isinstance(ds, h5py.Dataset) and name != UNIT:
                ds.resize(epochs, axis=0)
        group[EPOCH][-1] = epochs
        for key, value in row.items():
            group[escape(key)][-1] = value

    def save_weights(self, which: str, state: Mapping[str, Any], *, epoch: int) -> None:
        """Store a parameter set as /weights/<which>, replacing the previous one (in place when shapes match)."""
        if which not in WEIGHT_SETS:
            raise ValueError(f"weights must be one of {WEIGHT_SETS}, not {which!r}")
        arrays = {escape(k): _to_numpy(v) for k, v in state.items()}
        with self._open() as f:
            weights = f.require_group("weights")
            old = weights.get(which)
            # In-place writes keep the file from growing at every new best (HDF5 never reclaims deleted space).
            same = old is not None and set(old) == set(arrays) and all(
                old[k].shape == a.shape and old[k].dtype == a.dtype for k, a in arrays.items()
            )
            if same:
                for k, a in arrays.items():
                    old[k][...] = a
                group = old
            else:
                if old is not None:
                    del weights[which]
                group = weights.create_group(which)
                for k, a in arrays.items():
                    group.create_dataset(k, data=a)
            group.attrs["epoch"] = epoch

    def write_group(self, name: str, values: dict, attrs: dict | None = None) -> None:
        """Write /<name> (replacing it) with ``values`` as datasets (nested dicts as subgroups) and ``attrs``."""
        if name in RESERVED_GROUPS:
            raise ValueError(f"group name {name!r} is reserved")
        if "attrs" in values:
            raise ValueError("a group value may not be named 'attrs' (readers list the group's attributes there)")
        with self._open() as f:
            if escape(name) in f:
                del f[escape(name)]
            group = f.create_group(escape(name))
            _write_values(group, values)
            group.attrs.update(attrs or {})

    def finish(self, status: str = "complete", message: str = "") -> None:
        """Mark the run as ended: root attrs status, message and finished (ISO UTC)."""
        if status not in FINISH_STATUSES:
            raise ValueError(f"finish status must be one of {FINISH_STATUSES}, not {status!r}")
        with self._open() as f:
            f.attrs.update(status=status, message=message, finished=utc_now())
        log.info("run file %s finished: %s", self.path, status)
