"""Many runs at once: the sweep grid that makes them, each point's run-file name, and grouping runs by
config with statistics (pure helpers; the paper's studies themselves are data in :mod:`ffneuro.studies`).

Nothing here touches files or torch. A *record* is a :class:`ffneuro.store.RunRecord` or any mapping
with the same names (``config``, and optionally ``metrics``, ``groups``, ``path``, ``status``), so the
helpers can be tested on synthetic dicts.

Statistics: :func:`mean_sd` gives the mean and the *sample* standard deviation (ddof=1) of the finite
values. NaN values are ignored (e.g. a readout a run does not have). With one finite value the sd is
NaN (a sample sd is undefined for n=1; the CLI prints the mean alone and JSON has ``null``); with none,
both are NaN.
"""
from __future__ import annotations

import hashlib
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# config keys never used to tell groups apart: the seed is what the statistics run over, and the
# device does not change what is computed
EXCLUDED_KEYS = ("seed", "device")
_UNSAFE = re.compile(r"[^A-Za-z0-9.+-]")
MAX_NAME = 200


# ------------------------------------------------------------------------------------------------ grids


def grid_points(grid: Mapping[str, Sequence], seeds: Sequence[int]) -> list[dict]:
    """The Cartesian product of ``grid`` (key -> values, in key order) times ``seeds``, seeds innermost.

    Each point is a dict ``{key: value, ..., "seed": s}``. An empty value list, duplicate values in a
    list, or a ``seed`` key in ``grid`` raise ValueError.
    """
    if "seed" in grid:
        raise ValueError("give seeds with the seeds argument, not as a grid key")
    for key, values in [*grid.items(), ("seed", seeds)]:
        values = list(values)
        if not values:
            raise ValueError(f"{key}: empty list of values")
        if len({repr(v) for v in values}) != len(values):
            raise ValueError(f"{key}: duplicate values in {values}")
    keys = list(grid)
    return [{**dict(zip(keys, combo)), "seed": seed}
            for combo in itertools.product(*(list(grid[k]) for k in keys)) for seed in seeds]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    return str(value)


def point_name(point: Mapping[str, Any], keys: Sequence[str] | None = None) -> str:
    """A file-name stem for a point: ``key=value`` joined by ``_`` (e.g. ``filters=32_kernel=3_seed=0``).

    ``keys`` picks and orders the keys shown (default: all). Characters other than letters, digits and
    ``.+-`` become ``-`` (so keys are best given with dashes, like the flags: ``label-strength=0.1``).
    A name longer than 200 characters is cut and given a hash of the whole so it stays unique.
    """
    keys = list(point) if keys is None else list(keys)
    parts = [f"{_UNSAFE.sub('-', str(k))}={_UNSAFE.sub('-', _text(point[k]))}" for k in keys]
    name = "_".join(parts) or "point"
    if len(name) > MAX_NAME:
        digest = hashlib.sha1(name.encode()).hexdigest()[:10]
        name = f"{name[:MAX_NAME - 11]}-{digest}"
    return name


# ----------------------------------------------------------------------------------------------- statistics


def mean_sd(values) -> tuple[float, float]:
    """(mean, sample sd with ddof=1) of the finite values; sd is NaN for one value, both NaN for none."""
    arr = np.asarray([float("nan") if v is None else v for v in values], dtype=float).ravel()
    arr = arr[np.isfinite(arr)]
    if len(arr) == 0:
        return float("nan"), float("nan")
    if len(arr) == 1:
        return float(arr[0]), float("nan")
    return float(arr.mean()), float(arr.std(ddof=1))


def _get(rec: Any, name: str, default: Any = None) -> Any:
    if isinstance(rec, Mapping):
        return rec.get(name, default)
    return getattr(rec, name, default)


def _best(values) -> float:
    arr = np.asarray(values, dtype=float).ravel()
    arr = arr[~np.isnan(arr)]
    return float(arr.max()) if len(arr) else float("nan")


def run_numbers(rec: Any) -> dict:
    """The numbers a study compares, from one record.

    ``val_acc``: per readout, the best validation accuracy over epochs (metrics ``val_acc_<readout>``);
    ``test_acc``: per readout, the test accuracy (group ``test``, ``acc_<readout>``); ``best_epoch`` and
    ``wall_time_s``: from group ``summary``, else derived from the metrics (NaN when absent).
    """
    metrics = _get(rec, "metrics", None) or {}
    groups = _get(rec, "groups", None) or {}
    val = {k.removeprefix("val_acc_"): _best(v) for k, v in metrics.items() if k.startswith("val_acc_")}
    test = {k.removeprefix("acc_"): float(v) for k, v in (groups.get("test") or {}).items()
            if k.startswith("acc_")}
    summary = groups.get("summary") or {}
    best_epoch = summary.get("best_epoch")
    if best_epoch is None:
        cols = [np.asarray(v, dtype=float).ravel() for k, v in metrics.items() if k.startswith("val_acc_")]
        stack = np.vstack(cols) if cols and len(cols[0]) else None
        if stack is not None and not np.all(np.isnan(stack)):
            # epochs without validation (--eval-every) are NaN: never the best, and no all-NaN warning
            best_epoch = int(np.argmax(np.where(np.isnan(stack), -np.inf, stack).max(axis=0))) + 1
    wall = summary.get("wall_time_s")
    if wall is None and len(np.asarray(metrics.get("wall_time_s", []))):
        wall = float(np.asarray(metrics["wall_time_s"], dtype=float).ravel()[-1])
    return {"val_acc": val, "test_acc": test,
            "best_epoch": float("nan") if best_epoch is None else float(best_epoch),
            "wall_time_s": float("nan") if wall is None else float(wall)}


# -------------------------------------------------------------------------------------------------- groups


@dataclass
class Group:
    """Runs sharing the values ``key`` of the grouping keys."""

    key: dict[str, Any]
    records: list = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.records)

    def stats(self) -> dict:
        """Mean and sd over the group's runs (see :func:`mean_sd`): val/test accuracy per readout,
        best epoch and wall time (means), n and the run paths."""
        numbers = [run_numbers(r) for r in self.records]

        def per_readout(kind: str) -> dict:
            readouts = list(dict.fromkeys(r for n in numbers for r in n[kind]))
            return {r: dict(zip(("mean", "sd"), mean_sd([n[kind].get(r, float("nan")) for n in numbers])))
                    for r in readouts}

        return {"key": dict(self.key), "n": self.n, "val_acc": per_readout("val_acc"),
                "test_acc": per_readout("test_acc"),
                "best_epoch": mean_sd([n["best_epoch"] for n in numbers])[0],
                "wall_time_s": mean_sd([n["wall_time_s"] for n in numbers])[0],
                "runs": [str(_get(r, "path", "")) for r in self.records]}


def _config(rec: Any) -> dict:
    config = _get(rec, "config")
    if not isinstance(config, Mapping):
        raise TypeError(f"record {_get(rec, 'path', '?')} has no config")
    return dict(config)


def _canon(value: Any) -> Any:
    """A hashable stand-in for a config value (floats and ints that are equal compare equal)."""
    if isinstance(value, (list, tuple)):
        return tuple(_canon(v) for v in value)
    if isinstance(value, Mapping):
        return tuple(sorted((k, _canon(v)) for k, v in value.items()))
    return value


def varying_keys(records: Sequence, exclude: Sequence[str] = EXCLUDED_KEYS) -> list[str]:
    """Config keys (in first-seen order) whose value differs between records, except ``exclude``.

    A key missing from some configs counts as the value None there.
    """
    configs = [_config(r) for r in records]
    keys = list(dict.fromkeys(k for c in configs for k in c))
    return [k for k in keys if k not in exclude and len({_canon(c.get(k)) for c in configs}) > 1]


def _sort_key(value: Any):
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, (int, float)):
        return (2, float(value) if not (isinstance(value, float) and math.isnan(value)) else math.inf)
    return (3, str(value))


def group_runs(records: Sequence, by: Sequence[str] | None = None) -> list[Group]:
    """Group records by config values.

    ``by=None``: by every config key that varies across ``records`` except ``seed`` and ``device``
    (:func:`varying_keys`); with no such key, one group with an empty key. Explicit ``by``: those keys
    in that order; a key that no record's config has raises ValueError naming the valid keys.
    Groups are sorted by key values (numbers numerically); records keep their input order.
    """
    records = list(records)
    configs = [_config(r) for r in records]
    if by is None:
        keys = varying_keys(records)
    else:
        keys = list(by)
        known = set().union(*configs) if configs else set()
        unknown = [k for k in keys if k not in known]
        if unknown:
            raise ValueError(f"unknown config key(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    groups: dict[tuple, Group] = {}
    for rec, config in zip(records, configs):
        values = {k: config.get(k) for k in keys}
        ident = tuple(_canon(v) for v in values.values())
        groups.setdefault(ident, Group(values)).records.append(rec)
    return sorted(groups.values(), key=lambda g: tuple(_sort_key(v) for v in g.key.values()))
