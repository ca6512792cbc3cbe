"""RunWriter: the one writer of a run file, from creation (or reopening) to close.

It holds the run's lock all along (:mod:`.lock`), and every change is a transaction: the file is
loaded into memory, changed there by h5py, and the new image replaces the file atomically
(:mod:`.atomic`). So an epoch's metrics, weights and resume state become visible together or not
at all, a crash or a full disk at any instant leaves the last committed state, and HDF5 never
writes to the disk itself.
"""
from __future__ import annotations

import contextlib
import errno
import importlib
import io
import json
import logging
import os
import socket
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import RunFileError
from .atomic import fsync_dir, remove_stale_temps, replace_file
from .lock import RunLock
from .schema import (
    EPOCH,
    FINISH_STATUSES,
    RESERVED_GROUPS,
    SCHEMA_NAME,
    SCHEMA_VERSION,
    STATE,
    STATE_META,
    UNIT,
    UNITS,
    WEIGHT_SETS,
    escape,
    pending_path,
    utc_now,
    write_json_attrs,
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


def _flat(values: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """Nested dicts of arrays as {"a/b/c": array} with each key escaped (so '/' only separates levels)."""
    out: dict[str, np.ndarray] = {}
    for key, value in values.items():
        name = prefix + escape(key)
        if isinstance(value, Mapping):
            out.update(_flat(value, name + "/"))
        else:
            out[name] = _to_numpy(value)
    return out


def _json_block(values: dict) -> np.ndarray:
    """JSON as uint8, padded with spaces to a multiple of 4 KB so that the next epoch's (slightly longer or
    shorter) text is usually written in place; JSON ignores the padding."""
    text = json.dumps(values, sort_keys=True).encode()
    size = -(-max(len(text), 1) // 4096) * 4096
    return np.frombuffer(text.ljust(size), dtype=np.uint8)


def _put_arrays(parent: h5py.Group, name: str, values: Mapping[str, Any]) -> h5py.Group:
    """Make /parent/name hold exactly ``values`` (nested dicts as subgroups); in place when every name,
    shape and dtype matches, because HDF5 never reclaims the space of a deleted dataset."""
    arrays = _flat(values)
    old = parent.get(name)
    if old is not None:
        present: dict[str, h5py.Dataset] = {}
        old.visititems(lambda k, obj: present.__setitem__(k, obj) if isinstance(obj, h5py.Dataset) else None)
        if set(present) == set(arrays) and all(
            present[k].shape == a.shape and present[k].dtype == a.dtype for k, a in arrays.items()
        ):
            for k, a in arrays.items():
                present[k][...] = a
            return old
        del parent[name]
    group = parent.create_group(name)
    _write_values(group, values)
    return group


def is_read_only(path: Path) -> bool:
    """No write bit on the file (honoured even for root, who could write it anyway), or not writable here."""
    try:
        no_bits = not path.stat().st_mode & 0o222
    except OSError:
        return True
    return no_bits or not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK)


def _read_own(path: Path) -> tuple[bytes, int]:
    """The bytes and mode of the regular file ``path``, never through a symbolic link (a neighbour in a
    shared folder may have swapped the run for one between two commits)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            raise RunFileError(f"{path} is a symbolic link; a run is never read or written through one") from None
        raise RunFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise RunFileError(f"{path} is not a regular file")
        try:
            return f.read(), st.st_mode & 0o777
        except OSError as exc:
            raise RunFileError(f"cannot read {path}: {exc.strerror or exc}") from exc


class RunWriter:
    """Creates a run file (or a pending replacement beside an existing one, with ``force``) and owns it.

    With ``force`` and an existing ``path``, the new run is written to ``NAME.new.h5`` and renamed
    over ``path`` only when it completes, so an unfinished new run never costs the old one.
    Use as a context manager or call :meth:`close` (``finish`` closes too).
    """

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
        target = Path(path)
        self.unit_names = list(unit_names)
        for field, values in accounting.items():
            if len(values) != len(self.unit_names):
                raise ValueError(f"accounting field {field!r} has {len(values)} values for {len(unit_names)} units")
        parent = target.parent
        if not parent.is_dir():
            raise RunFileError(f"cannot create run file {target}: directory {parent} does not exist")
        if not os.access(parent, os.W_OK):
            raise RunFileError(f"cannot create run file {target}: directory {parent} is not writable")
        self._locks = [RunLock(target).acquire()]
        try:
            if target.exists() and not force:  # checked under the lock: another writer may just have made it
                raise RunFileError(f"{target} exists; pass --force to overwrite")
            self.target = target
            self.file = pending_path(target) if target.exists() else target
            if self.file != target:
                self._locks.append(RunLock(self.file).acquire())
                if self.file.exists():
                    log.warning("discarding the unfinished replacement %s", self.file)
            remove_stale_temps(self.file)
            buf = io.BytesIO()
            with h5py.File(buf, "w") as f:
                self._initialise(f, config, environment, accounting)
            replace_file(self.file, buf.getbuffer())
        except BaseException:
            self.close()
            raise
        log.info("created run file %s%s", self.file, f" (replaces {target} when complete)" if self.pending else "")

    @classmethod
    def open(cls, path: str | os.PathLike) -> RunWriter:
        """The writer of an existing run (to resume it, or to add the profiler's results); takes its lock,
        and that of the file a pending replacement will replace."""
        from .reader import read_run, run_file_problem  # the reader validates the header and the required groups

        path = Path(path)
        if path.is_symlink():  # a commit would replace the link itself, not write the file it points to
            raise RunFileError(f"{path} is a symbolic link; a run is never read or written through one "
                               "(give the file it points to)")
        writer = cls.__new__(cls)
        writer._locks = [RunLock(path).acquire()]
        try:
            record = read_run(path)
            if is_read_only(path):
                raise RunFileError(f"{path} is read-only")
            writer.file, writer.unit_names = path, list(record.unit_names)
            # the file a --force run replaces is told by its own name (STEM.new.h5 -> STEM.h5), never by
            # a path stored in it; and it is replaced only while it is an ffneuro run (or absent)
            writer.target = record.destination
            if writer.pending:
                writer._locks.append(RunLock(writer.target).acquire())
                problem = run_file_problem(writer.target)
                if problem is not None:
                    raise RunFileError(f"{path} would replace {writer.target} when complete, but that is "
                                       f"not an ffneuro run ({problem}); rename one of them")
            remove_stale_temps(path)
        except BaseException:
            writer.close()
            raise
        return writer

    @property
    def path(self) -> Path:
        """The file this writer writes (a pending replacement until the run completes)."""
        return self.file

    @property
    def pending(self) -> bool:
        """True while this run is a replacement of ``target`` that has not completed."""
        return self.file != self.target

    def _initialise(self, f: h5py.File, config: dict, environment: dict, accounting: dict[str, list]) -> None:
        f.attrs.update(
            schema=SCHEMA_NAME, schema_version=SCHEMA_VERSION, ffneuro_version=_ffneuro_version(),
            created=utc_now(), status="running", message="", epochs_done=0,
        )
        if self.pending:
            f.attrs["replaces"] = self.target.name
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

    # ------------------------------------------------------------------------------- transactions

    @contextlib.contextmanager
    def transaction(self) -> Iterator[h5py.File]:
        """The run file, open in memory for changes that reach the disk together when the block ends
        (and not at all if it raises)."""
        if not self._locks:
            raise RunFileError(f"{self.file}: this writer is closed")
        data, mode = _read_own(self.file)
        buf = io.BytesIO(data)
        del data
        try:
            f = h5py.File(buf, "r+")
        except OSError as exc:
            raise RunFileError(f"{self.file}: cannot read HDF5 data (truncated or corrupt file?)") from exc
        with f:
            yield f
            # fixed-length strings: rewriting a variable-length attribute leaks a 4 KB heap at every commit
            f.attrs.update(committed=np.bytes_(utc_now()), writer_pid=os.getpid(),
                           writer_host=np.bytes_(socket.gethostname()))
        replace_file(self.file, buf.getbuffer(), mode)

    def heartbeat(self) -> None:
        """Tell others this writer is alive (cheap; rate-limited)."""
        if self._locks:
            self._locks[0].heartbeat()

    def commit_epoch(self, epoch: int, scalars: dict[str, float], per_unit: dict[str, list[float]] | None,
                     weights: Mapping[str, Any], *, best: bool, state: Mapping[str, Any] | None = None,
                     state_meta: dict | None = None) -> None:
        """Epoch ``epoch``'s metrics row, its weights as ``final`` (and ``best``), and the state a resume needs,
        in one commit."""
        with self.transaction() as f:
            done = int(f.attrs["epochs_done"])
            if epoch != done + 1:
                raise ValueError(f"epoch {epoch} does not follow the {done} epochs in {self.file}")
            self._append(f, scalars, per_unit or {})
            self._weights(f, "final", weights, epoch)
            if best:
                self._weights(f, "best", weights, epoch)
            if state is not None:
                group = _put_arrays(f, STATE, {**state, STATE_META: _json_block(state_meta or {})})
                group.attrs["epoch"] = epoch

    def append_epoch(self, scalars: dict[str, float], per_unit: dict[str, list[float]] | None = None) -> None:
        """Append one epoch row; keys absent this epoch read NaN, keys new this epoch are NaN for earlier epochs."""
        with self.transaction() as f:
            self._append(f, scalars, per_unit or {})

    def save_weights(self, which: str, state: Mapping[str, Any], *, epoch: int) -> None:
        """Store a parameter set as /weights/<which>, replacing the previous one."""
        with self.transaction() as f:
            self._weights(f, which, state, epoch)

    def write_group(self, name: str, values: dict, attrs: dict | None = None) -> None:
        """Write /<name> (replacing it) with ``values`` as datasets (nested dicts as subgroups) and ``attrs``."""
        with self.transaction() as f:
            self._group(f, name, values, attrs)

    def finish(self, status: str = "complete", message: str = "", *, groups: dict[str, tuple[dict, dict]] | None = None,
               failure: str = "") -> None:
        """End the run: write ``groups`` (name → (values, attrs)) and root attrs status, message, finished
        (and ``failure``, a short kind such as "diverged") in one commit; a complete pending run then
        replaces its target. Closes the writer."""
        if status not in FINISH_STATUSES:
            raise ValueError(f"finish status must be one of {FINISH_STATUSES}, not {status!r}")
        try:
            with self.transaction() as f:
                for name, (values, attrs) in (groups or {}).items():
                    self._group(f, name, values, attrs)
                f.attrs.update(status=status, message=message, finished=utc_now())
                if failure:
                    f.attrs["failure"] = failure
                elif "failure" in f.attrs:
                    del f.attrs["failure"]
            if status == "complete" and self.pending:
                self.complete_replacement()
            log.info("run file %s finished: %s", self.target if status == "complete" else self.file, status)
        finally:
            self.close()

    def complete_replacement(self) -> None:
        """Rename a complete pending run over the run it replaces."""
        try:
            os.replace(self.file, self.target)
        except OSError as exc:
            raise RunFileError(f"cannot replace {self.target} with {self.file}: {exc.strerror or exc}") from exc
        fsync_dir(self.target.parent)
        log.info("%s replaced %s", self.file, self.target)
        self.file = self.target

    def close(self) -> None:
        """Release the run's lock(s); idempotent."""
        for lock in reversed(getattr(self, "_locks", [])):
            lock.release()
        self._locks = []

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------------- changes (in memory)

    def _append(self, f: h5py.File, scalars: Mapping[str, Any], per_unit: Mapping[str, list]) -> None:
        n_units = len(self.unit_names)
        for key, values in per_unit.items():
            if len(values) != n_units:
                raise ValueError(f"per-unit metric {key!r} has {len(values)} values for {n_units} units")
        for key in [*scalars, *per_unit]:
            if key in (EPOCH, UNIT, UNITS):
                raise ValueError(f"metric name {key!r} is reserved")
        epochs = int(f.attrs["epochs_done"]) + 1
        self._append_row(f["metrics"], scalars, epochs, (EPOCH,))
        self._append_row(f["metrics"][UNITS], per_unit, epochs, (EPOCH, UNIT))
        f.attrs["epochs_done"] = epochs

    def _append_row(self, group: h5py.Group, row: Mapping[str, Any], epochs: int, dims: tuple[str, ...]) -> None:
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

    @staticmethod
    def _weights(f: h5py.File, which: str, state: Mapping[str, Any], epoch: int) -> None:
        if which not in WEIGHT_SETS:
            raise ValueError(f"weights must be one of {WEIGHT_SETS}, not {which!r}")
        weights = f.require_group("weights")
        # parameter names are flat (dots, not nested dicts): escape them whole so '/' stays in the name
        group = _put_arrays(weights, which, {k: v for k, v in state.items()})
        group.attrs["epoch"] = epoch

    @staticmethod
    def _group(f: h5py.File, name: str, values: dict, attrs: dict | None) -> None:
        if name in RESERVED_GROUPS:
            raise ValueError(f"group name {name!r} is reserved")
        if "attrs" in values:
            raise ValueError("a group value may not be named 'attrs' (readers list the group's attributes there)")
        if escape(name) in f:
            del f[escape(name)]
        group = f.create_group(escape(name))
        _write_values(group, values)
        group.attrs.update(attrs or {})


def write_back(path: str | os.PathLike, name: str, values: dict, attrs: dict | None = None) -> None:
    """Add (or replace) group /<name> of an existing run, under its lock, in one commit."""
    with RunWriter.open(path) as writer:
        writer.write_group(name, values, attrs)
