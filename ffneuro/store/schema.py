"""Names, versions and small helpers shared by the run-file writer and reader (see docs/run-schema.md)."""
from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import RunFileError

SCHEMA_NAME = "ffneuro.run"
SCHEMA_VERSION = 1

#: The group holding what resuming needs (optimiser and RNG states, the trainer's progress).
STATE = "state"
STATE_META = "meta.json"  # in /state: its JSON metadata as uint8 text (see writer._json_block)
#: Root groups with a fixed meaning; everything else at the root was written by ``write_group``.
RESERVED_GROUPS = frozenset({"config", "environment", "accounting", "metrics", "weights", STATE})
#: Dataset names used as dimension scales (and the per-unit subgroup of /metrics).
EPOCH, UNIT, UNITS = "epoch", "unit", "units"
WEIGHT_SETS = ("final", "best")
FINISH_STATUSES = ("complete", "failed", "interrupted")


def pending_path(path: Path) -> Path:
    """Where a ``--force`` run of ``path`` lives until it completes and replaces ``path``: NAME.new.h5."""
    return path.with_name(f"{path.stem}.new{path.suffix}")


def replaced_path(path: Path) -> Path | None:
    """The file a ``--force`` run at ``path`` replaces, told by its name alone (STEM.new.h5 replaces STEM.h5
    beside it); None for any other name. A path stored in a run file is never where anything is written."""
    stem, suffix = path.stem, path.suffix
    if not stem.endswith(".new") or len(stem) <= len(".new"):
        return None
    return path.with_name(stem[: -len(".new")] + suffix)


def escape(name: str) -> str:
    """Make a key usable as one HDF5 link name: '%' and '/' are percent-encoded, dots are kept."""
    return name.replace("%", "%25").replace("/", "%2F")


def unescape(name: str) -> str:
    """Invert :func:`escape`."""
    return name.replace("%2F", "/").replace("%25", "%")


def utc_now() -> str:
    """Current time as an ISO-8601 UTC string, to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_json_attrs(group: h5py.Group, values: dict[str, Any]) -> None:
    """Store ``values`` as attr "json" (authoritative) and mirror each top-level key as an attr for browsing.

    Numbers and strings are mirrored as themselves; anything else (None, bools, lists, dicts) as its JSON text.
    """
    group.attrs["json"] = json.dumps(values, sort_keys=True)
    for key, value in values.items():
        if key == "json":
            continue
        if isinstance(value, str):
            group.attrs[key] = str(value)  # str subclasses (torch's version string) become plain str
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            group.attrs[key] = value
        else:
            group.attrs[key] = json.dumps(value, sort_keys=True)


def describe_value(value: Any) -> str:
    """A short, safe account of an attribute's value for an error message (it may be anyone's data)."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return f"{text[:40]}{'...' if len(text) > 40 else ''} ({type(value).__name__})"


def as_text(value: Any) -> str | None:
    """A str or UTF-8 bytes attribute as str; None for anything else (numbers, arrays, references)."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return str(value) if isinstance(value, str) else None


def as_int(value: Any) -> int | None:
    """An integer attribute as int; None for anything else (bools, floats such as NaN, arrays, text)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        return None
    return int(value)


def check_header(f: h5py.File, path: Path) -> int:
    """Raise RunFileError unless ``f`` is an ffneuro run this version can read; return its schema version."""
    raw = f.attrs.get("schema")
    if raw is None:
        raise RunFileError(f"{path}: not an ffneuro run file (no 'schema' attribute)")
    schema = as_text(raw)
    if schema is None:
        raise RunFileError(f"{path}: not an ffneuro run file (attribute 'schema' is {describe_value(raw)}, not text)")
    if schema != SCHEMA_NAME:
        raise RunFileError(f"{path}: not an ffneuro run file (schema {schema[:60]!r}, expected {SCHEMA_NAME!r})")
    raw = f.attrs.get("schema_version", -1)
    version = as_int(raw)
    if version is None:
        raise RunFileError(f"{path}: attribute 'schema_version' must be an integer, not {describe_value(raw)}")
    if version > SCHEMA_VERSION:
        raise RunFileError(
            f"{path}: run file schema version {version} is newer than this ffneuro supports "
            f"({SCHEMA_VERSION}); upgrade ffneuro to read it"
        )
    if version < 1:
        raise RunFileError(f"{path}: run file has an invalid schema_version {version}")
    return version
