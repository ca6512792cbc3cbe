"""Helpers shared by the commands: strict JSON output and dataset loading with one-line errors."""
from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import secrets
from pathlib import Path

import click
import numpy as np

from ffneuro.data import load_dataset, load_from_source
from ffneuro.errors import DataError, FFNeuroError, RunFileError, UnknownNameError


def jsonable(value):
    """Plain JSON types: numpy arrays and scalars as lists and numbers, NaN and ±inf as ``null``."""
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def echo_json(value) -> None:
    """Print ``value`` as strict JSON (no NaN literals) on stdout."""
    click.echo(json.dumps(jsonable(value), indent=2, allow_nan=False))


def load_data(name: str, data_dir: str | os.PathLike | None):
    """:func:`ffneuro.data.load_dataset`, with any unexpected reading failure reported as a DataError.

    The loaders turn the usual problems into DataError themselves; this catches what slips through
    (e.g. an empty or half-written file that the parser rejects with EOFError) so that bad data is
    reported as bad data, not as an internal error.
    """
    return _loading(name, lambda: load_dataset(name, data_dir))


def _loading(name: str, load):
    try:
        return load()
    except (FFNeuroError, UnknownNameError, KeyboardInterrupt):
        raise
    except (OSError, EOFError, ValueError) as exc:
        raise DataError(f"cannot load dataset {name}: {type(exc).__name__}: {exc}") from exc


def load_run_data(record, config, data_dir):
    """A stored run's dataset: from ``data_dir`` when given, else from where the run recorded it came from
    (if that still exists), else the usual search ($FFNEURO_DATA, the cache)."""
    from ffneuro.train.runfile import stored_data_source

    source = stored_data_source(record) if data_dir is None else None
    if source is not None:
        return _loading(config.dataset, lambda: load_from_source(config.dataset, source))
    return load_data(config.dataset, data_dir)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file beside it, moved into place only once complete:
    a failed write (a full disk) leaves neither an empty or partial ``path`` nor a stray temporary file, and
    an existing ``path`` unchanged. Any OSError becomes a one-line RunFileError naming ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as f:  # "x": the user's umask applies, as for a plain write
            f.write(text)
            f.flush()
            os.fsync(f.fileno())  # a full disk may only say so here
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise RunFileError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise


def table(rows: list[list[str]]) -> str:
    """Left-aligned plain-text columns; the first row is the header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def one_line_errors(fn):
    """ffneuro's user-facing errors as ``Error: ...`` even when the command runs outside the main group."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (FFNeuroError, UnknownNameError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def store_in_run(run_file, name: str, values: dict, attrs: dict | None, store: bool) -> bool:
    """Write group ``name`` into ``run_file`` unless ``store`` is off; a run that cannot take it (read-only,
    being trained, a full disk) gets a warning, not an error: the result was already printed."""
    import logging

    from ffneuro.errors import RunFileError
    from ffneuro.store import write_back

    if not store:
        return False
    try:
        write_back(run_file, name, values, attrs)
    except RunFileError as exc:
        logging.getLogger("ffneuro.cli").warning("warning: not stored in the run file (%s)", exc)
        return False
    return True


no_store_option = click.option("--no-store", "store", flag_value=False, default=True,
                               help="print only; do not write the result into the run file")


def stored_config(record, **overrides):
    """The RunConfig a run file was trained with (``overrides`` e.g. device), or a one-line RunFileError."""
    from ffneuro.config import RunConfig
    from ffneuro.errors import ConfigError

    try:
        return RunConfig.from_dict({**record.config, **overrides})
    except (ConfigError, TypeError) as exc:
        raise RunFileError(f"{record.path}: stored config is not valid for this ffneuro: {exc}") from exc


def restore_trainer(record, config, weights: str, data_dir):
    """A Trainer for ``config`` on its dataset with the run's ``weights`` (final|best) loaded."""
    from ffneuro.models.weights import weights_mismatch
    from ffneuro.train import Trainer

    state = record.weights(weights)
    trainer = Trainer(config, load_run_data(record, config, data_dir))
    unfit = f"{record.path}: the stored {weights} weights do not fit the network of its config"
    mismatch = weights_mismatch({k: tuple(v.shape) for k, v in trainer.model.state_dict().items()}, state)
    if mismatch:
        raise RunFileError(f"{unfit}: {mismatch}")
    try:
        trainer.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:  # names and shapes fit: e.g. a bad dtype
        raise RunFileError(f"{unfit}: {' '.join(str(exc).split()) or type(exc).__name__}") from exc
    return trainer
