"""Helpers shared by the commands: strict JSON output, plain tables, one-line errors, run write-backs, pyplot."""
from __future__ import annotations

import functools
import json
from pathlib import Path

import click

from ffneuro.errors import FFNeuroError, UnknownNameError
from ffneuro.jsonable import jsonable


def echo_json(value) -> None:
    """Print ``value`` as strict JSON (no NaN literals) on stdout."""
    click.echo(json.dumps(jsonable(value), indent=2, allow_nan=False))


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


def write_text_atomic(path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file beside it, moved into place only once complete
    (a full disk leaves no empty or partial file, and an existing one unchanged); one-line RunFileError."""
    from ffneuro.store.atomic import replace_file

    replace_file(Path(path), text.encode("utf-8"))


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend; a one-line error when matplotlib (optional:
    ``pip install 'ffneuro[plot]'``) is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise FFNeuroError("plotting needs matplotlib: pip install 'ffneuro[plot]' (or pip install matplotlib)") from None
    return plt
