"""read_run / find_runs: load ffneuro run files into plain Python and numpy, with one-line errors for bad files.

A run file may come from anyone (a shared folder, a download), so it is read defensively: before any data,
its whole structure is walked; links (soft, external), external storage and virtual datasets, which would
read other files, are refused; so are loops, deep nesting, unsupported types and datasets larger than the
file can honestly hold (a few KB of fill value can claim gigabytes). Attributes are type-checked. Every
problem is one RunFileError line naming the file and what is wrong.
"""
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
from ..hdf5_walk import checked_datasets, data_bytes, supported_dtype
from .atomic import human_bytes
from .lock import Holder, holder_of
from .schema import (
    EPOCH,
    RESERVED_GROUPS,
    STATE,
    STATE_META,
    UNIT,
    UNITS,
    as_int,
    as_text,
    check_header,
    describe_value,
    replaced_path,
    unescape,
)

log = logging.getLogger(__name__)

#: Groups nested deeper than this are refused (ffneuro writes at most a handful of levels).
MAX_DEPTH = 32
#: Links in a file beyond this are refused (a run has a few hundred).
MAX_LINKS = 100_000
#: The data of a file is read only up to max(READ_FLOOR, INFLATION × its size): ffneuro writes no
#: compression, so its data is never larger than the file; the slack allows a repacked (compressed) file.
READ_FLOOR = 64 * 2**20
INFLATION = 16


def _fail(path: Path, what: str) -> RunFileError:
    return RunFileError(f"{path}: {what}")


def check_structure(f: h5py.File, path: Path, size: int) -> None:
    """Refuse, before any data is read, what would read another file, never end, or take more memory
    than a file of ``size`` bytes can honestly hold (HDF5's own calls: cheap, and no h5py objects)."""
    budget = max(READ_FLOOR, INFLATION * size)
    total = 0
    for name, oid in checked_datasets(f, lambda what: _fail(path, what), files="run files", max_links=MAX_LINKS,
                                      max_depth=MAX_DEPTH):
        where, dtype = "/" + name, oid.dtype
        if not supported_dtype(dtype):
            raise _fail(path, f"dataset {where} has an unsupported type ({dtype})")
        nbytes, shape = data_bytes(oid, dtype)
        if nbytes > budget:
            raise _fail(path, f"dataset {where} is too large: {human_bytes(nbytes)} (shape {shape}) in a file of "
                              f"{human_bytes(size)}; at most {human_bytes(budget)} is read")
        total += nbytes
    if total > budget:
        raise _fail(path, f"its datasets are too large together: {human_bytes(total)} in a file of "
                          f"{human_bytes(size)}; at most {human_bytes(budget)} is read")


@contextlib.contextmanager
def _open(path: Path) -> Iterator[h5py.File]:
    """Open a run read-only without taking a file lock (so a live writer's next open is never blocked),
    its structure checked (:func:`check_structure`) before anything else is read."""
    if not path.exists():
        raise RunFileError(f"{path}: no such file")
    if not path.is_file():
        raise RunFileError(f"{path}: not a file")
    if not h5py.is_hdf5(path):
        raise RunFileError(f"{path}: not an HDF5 file")
    try:
        size = path.stat().st_size
        with h5py.File(path, "r", locking=False) as f:
            try:
                check_structure(f, path, size)
            except (KeyError, ValueError, TypeError) as exc:
                raise _fail(path, f"malformed run file: {exc}") from None
            yield f
    except (OSError, RuntimeError) as exc:  # RuntimeError: HDF5's, e.g. a link it cannot traverse
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RunFileError(f"{path}: cannot read HDF5 data (truncated or corrupt file?): {reason}") from exc


def _plain(value: Any) -> Any:
    """numpy scalars and bytes as Python values; arrays unchanged."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value.item() if isinstance(value, np.generic) else value


def _attr_value(path: Path, where: str, key: str, value: Any) -> Any:
    """A group attribute as a plain value (text, number, or an array of them); anything else is refused."""
    if isinstance(value, (bytes, str)):
        text = as_text(value)
        if text is not None:
            return text
    elif isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return value.item()
    elif isinstance(value, (int, float)):
        return value
    elif isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return value
    elif isinstance(value, np.ndarray) and value.dtype.kind in "SO" and value.size <= 1_000_000:
        texts = [as_text(v) for v in value.flat]  # as str, so that JSON can show them
        if all(t is not None for t in texts):
            return np.array(texts, dtype=str).reshape(value.shape)
    raise _fail(path, f"attribute {key!r} of {where} has an unsupported type ({type(value).__name__})")


def _attrs(path: Path, obj: h5py.HLObject) -> dict[str, Any]:
    where = obj.name or "/"
    return {k: _attr_value(path, where, k, v) for k, v in obj.attrs.items()}


def _read_dataset(ds: h5py.Dataset) -> Any:
    """A dataset as a numpy array, a Python scalar, a str, or a list of str."""
    if h5py.check_string_dtype(ds.dtype):
        value = ds.asstr()[()]
        return value.tolist() if isinstance(value, np.ndarray) else value
    return _plain(ds[()])


def _read_tree(path: Path, group: h5py.Group) -> dict[str, Any]:
    """Datasets of ``group`` by (unescaped) name; subgroups as nested dicts."""
    return {
        unescape(name): _read_tree(path, item) if isinstance(item, h5py.Group) else _read_dataset(item)
        for name, item in group.items()
    }


def _read_arrays(group: h5py.Group) -> dict[str, Any]:
    """Every dataset of ``group`` as a numpy array of its stored dtype (0-d for scalars), nested by subgroup."""
    return {
        unescape(name): _read_arrays(item) if isinstance(item, h5py.Group) else np.asarray(item[()])
        for name, item in group.items()
    }


def _group(path: Path, parent: h5py.Group, name: str) -> h5py.Group:
    item = parent.get(name)
    if not isinstance(item, h5py.Group):
        where = f"{parent.name.rstrip('/')}/{name}"
        raise _fail(path, f"{where} is {'missing' if item is None else 'not a group'}; not a readable ffneuro run")
    return item


def _variables(path: Path, group: h5py.Group, shape: tuple[int, ...], *scales: str) -> dict[str, np.ndarray]:
    """The data variables of a group (its datasets other than the dimension scales), each of ``shape``."""
    out = {}
    for name, ds in group.items():
        if not isinstance(ds, h5py.Dataset) or name in scales:
            continue
        if ds.shape != shape:
            raise _fail(path, f"{ds.name} has shape {ds.shape}; expected {shape} (one value per epoch"
                              f"{' and unit' if len(shape) == 2 else ''})")
        out[unescape(name)] = ds[()]
    return out


def _json_attr(path: Path, group: h5py.Group) -> dict:
    """The JSON object stored as attribute "json" of ``group`` (config, environment)."""
    raw = group.attrs.get("json")
    text = as_text(raw) if raw is not None else None
    if text is None:
        raise _fail(path, f"attribute 'json' of {group.name} is {'missing' if raw is None else describe_value(raw)}, "
                          "not JSON text")
    try:
        value = json.loads(text)
    except RecursionError:
        raise _fail(path, f"attribute 'json' of {group.name} is nested too deeply") from None
    except ValueError as exc:
        raise _fail(path, f"attribute 'json' of {group.name} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise _fail(path, f"attribute 'json' of {group.name} is {type(value).__name__}, not a JSON object")
    return value


def _scalar_numbers(path: Path, groups: dict[str, dict], name: str, keys: tuple[str, ...], prefix: str = "") -> None:
    """The numbers other commands take from group ``name`` (test accuracies, summary) must be numbers."""
    for key, value in groups.get(name, {}).items():
        if key == "attrs" or not (key in keys or (prefix and key.startswith(prefix))):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(path, f"/{name}/{key} is {describe_value(value)}, not a number")


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
    replaces: str = ""          # a --force run: the file name it replaces when it completes
    failure: str = ""           # with status "failed": a short kind, e.g. "diverged"
    committed: str = ""         # time of the last commit
    state_epoch: int = 0        # the epoch whose resume state is stored (0: none)

    @property
    def replacement_of(self) -> Path | None:
        """The file this --force run replaces: STEM.h5 beside this STEM.new.h5, and only when the stored
        ``replaces`` agrees. Never a path taken from the file (which may come from anyone)."""
        target = replaced_path(self.path)
        return target if target is not None and self.replaces == target.name else None

    @property
    def pending(self) -> bool:
        """An unfinished --force run (STEM.new.h5) that replaces STEM.h5 when it completes."""
        return self.replacement_of is not None and self.status != "complete"

    @property
    def cut_short(self) -> bool:
        """A complete --force run still named STEM.new.h5: killed between its last commit and its rename."""
        return self.replacement_of is not None and self.status == "complete"

    @property
    def destination(self) -> Path:
        """The file this run ends as: the one it replaces for an unfinished or cut-short --force run, else itself."""
        return self.replacement_of if self.replacement_of is not None else self.path

    def writer(self) -> Holder | None:
        """The live process writing this run, if any (a 'running' run without one crashed or was killed)."""
        return holder_of(self.path)

    def state(self) -> tuple[dict[str, Any], dict]:
        """The stored resume state: (nested dict of arrays, its JSON metadata)."""
        with _open(self.path) as f:
            if STATE not in f:
                raise RunFileError(f"{self.path}: no resume state in this run (written by an older ffneuro?)")
            arrays = _read_arrays(_group(self.path, f, STATE))
            meta = arrays.pop(STATE_META, None)
            if meta is None:
                return arrays, {}
            try:
                value = json.loads(np.asarray(meta).tobytes().decode())
            except (ValueError, RecursionError) as exc:
                raise _fail(self.path, f"/{STATE}/{STATE_META} is not valid JSON: {exc}") from None
            if not isinstance(value, dict):
                raise _fail(self.path, f"/{STATE}/{STATE_META} is {type(value).__name__}, not a JSON object")
            return arrays, value

    def group_attrs(self, name: str) -> dict[str, Any]:
        """The attributes of group ``/name`` at any depth (e.g. ``simulation/loihi2``); {} when it is absent."""
        with _open(self.path) as f:
            group = f.get(name)
            return _attrs(self.path, group) if isinstance(group, h5py.Group) else {}

    def weights(self, which: str = "final") -> dict[str, np.ndarray]:
        """Load one parameter set ("final" or "best") from the file."""
        with _open(self.path) as f:
            group = _group(self.path, f, "weights") if "weights" in f else None
            available = sorted(group) if group is not None else []
            if which not in available:
                raise RunFileError(
                    f"{self.path}: no {which!r} weights; available: {', '.join(available) or 'none'}"
                )
            weights = {}
            for name, ds in _group(self.path, group, which).items():
                if not isinstance(ds, h5py.Dataset) or ds.dtype.kind not in "biuf":
                    raise _fail(self.path, f"/weights/{which}/{name} is not an array of numbers")
                weights[unescape(name)] = ds[()]
            return weights


def _text(path: Path, attrs: dict, key: str, default: str | None = None) -> str:
    raw = attrs.get(key)
    if raw is None and default is not None:
        return default
    text = as_text(raw) if raw is not None else None
    if text is None:
        raise _fail(path, f"attribute {key!r} is {'missing' if raw is None else describe_value(raw)}, not text")
    return text


def _count(path: Path, attrs: dict, key: str, default: int | None = None) -> int:
    raw = attrs.get(key)
    if raw is None and default is not None:
        return default
    value = as_int(raw) if raw is not None else None
    if value is None or value < 0:
        raise _fail(path, f"attribute {key!r} is {'missing' if raw is None else describe_value(raw)}, "
                          "not a count")
    return value


def read_run(path: str | os.PathLike) -> RunRecord:
    """Read a run file; anything that is not a readable ffneuro run raises a one-line RunFileError."""
    path = Path(path)
    with _open(path) as f:
        version = check_header(f, path)
        try:
            attrs = dict(f.attrs.items())
            epochs = _count(path, attrs, "epochs_done")
            accounting = _group(path, f, "accounting")
            metrics = _group(path, f, "metrics")
            unit_ds = accounting.get(UNIT)
            unit_names = _read_dataset(unit_ds) if isinstance(unit_ds, h5py.Dataset) else None
            if not isinstance(unit_names, list) or not all(isinstance(u, str) for u in unit_names):
                raise _fail(path, f"/accounting/{UNIT} is not a list of unit names")
            groups = {
                unescape(name): {**_read_tree(path, g), "attrs": _attrs(path, g)}
                for name, g in f.items()
                if name not in RESERVED_GROUPS and isinstance(g, h5py.Group)
            }
            _scalar_numbers(path, groups, "test", (), prefix="acc_")
            _scalar_numbers(path, groups, "summary", ("best_epoch", "wall_time_s"))
            state = f.get(STATE)
            return RunRecord(
                path=path,
                schema_version=version,
                status=_text(path, attrs, "status"),
                created=_text(path, attrs, "created"),
                epochs_done=epochs,
                config=_json_attr(path, _group(path, f, "config")),
                environment=_json_attr(path, _group(path, f, "environment")),
                unit_names=unit_names,
                metrics=_variables(path, metrics, (epochs,), EPOCH, UNITS),
                unit_metrics=_variables(path, _group(path, metrics, UNITS), (epochs, len(unit_names)), EPOCH, UNIT),
                accounting=_variables(path, accounting, (len(unit_names),), UNIT),
                groups=groups,
                message=_text(path, attrs, "message", ""),
                finished=_text(path, attrs, "finished", ""),
                ffneuro_version=_text(path, attrs, "ffneuro_version", "unknown"),
                replaces=_text(path, attrs, "replaces", ""),
                failure=_text(path, attrs, "failure", ""),
                committed=_text(path, attrs, "committed", ""),
                state_epoch=_count(path, dict(state.attrs.items()), "epoch", 0) if isinstance(state, h5py.Group) else 0,
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise RunFileError(f"{path}: malformed run file: {exc}") from exc


def run_file_problem(path: Path) -> str | None:
    """Why ``path`` is not an ffneuro run file (missing is fine: None), or None when it is one."""
    if not os.path.lexists(path):
        return None
    try:
        with _open(path) as f:
            check_header(f, path)
    except RunFileError as exc:
        return str(exc).removeprefix(f"{path}: ")
    return None


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
