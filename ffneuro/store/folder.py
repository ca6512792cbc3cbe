"""Reading a folder of run files one file at a time: a bad file is one line naming it, never the end of the folder.

``runs list``, ``runs table``, ``plot``, ``sweep`` and ``study table`` read many files; whatever one file
raises while it is read (a :class:`~ffneuro.errors.RunFileError`, or any other error a malformed or
hostile file provokes in h5py, json or the code that summarises it) becomes a :class:`BadFile` and the
next file is read. Only interrupts (``KeyboardInterrupt``, ``SystemExit``) stop the loop.
"""
from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ..errors import RunFileError
from .reader import RunRecord, read_run

log = logging.getLogger(__name__)

T = TypeVar("T")

#: the longest reason kept for one bad file (a hostile file can make an error message of any length)
MAX_REASON = 300


@dataclass(frozen=True)
class BadFile:
    """A file of a folder that could not be read as a run, and why (one line, without the path)."""

    path: Path
    reason: str

    def line(self) -> str:
        """``PATH: REASON``, the one line a command prints for this file."""
        return f"{self.path}: {self.reason}"


def error_reason(path: Path, exc: BaseException) -> str:
    """What went wrong reading ``path``, as one short line that does not repeat the path.

    A RunFileError's message is its own (it usually starts with the path, which is cut); any other
    error comes from inside h5py, json or numpy and is shown with its type (e.g. ``malformed run file
    (RecursionError: maximum recursion depth exceeded)`` for a link loop)."""
    text = str(exc).strip()
    lines = text.splitlines()
    text = lines[0].strip() if lines else ""
    prefix = f"{path}: "
    if text.startswith(prefix):
        text = text[len(prefix):]
    if not isinstance(exc, RunFileError):
        text = f"malformed run file ({type(exc).__name__}: {text})" if text else \
            f"malformed run file ({type(exc).__name__})"
    if not text:
        text = "unreadable"
    return text if len(text) <= MAX_REASON else text[:MAX_REASON - 3] + "..."


# RunRecord fields a folder command uses, and the type each must have
_FIELD_TYPES = {"status": str, "created": str, "config": dict, "environment": dict, "unit_names": list,
                "metrics": dict, "unit_metrics": dict, "accounting": dict, "groups": dict, "replaces": str}

_KIND = {dict: "an object", str: "a string", list: "a list", int: "an integer", float: "a number",
         type(None): "null", bool: "a boolean"}


def read_checked(path: str | os.PathLike) -> RunRecord:
    """:func:`~ffneuro.store.read_run`, and a RunFileError naming the field when one of the fields the
    folder commands use has the wrong type (e.g. a config whose JSON is a list, or an integer status)."""
    rec = read_run(path)
    for name, kind in _FIELD_TYPES.items():
        value = getattr(rec, name)
        if not isinstance(value, kind):
            raise RunFileError(f"{path}: malformed run file: {name} is {_KIND.get(type(value), type(value).__name__)}, "
                               f"expected {_KIND[kind]}")
    return rec


def read_each(paths: Iterable[Path], read: Callable[[Path], T] = read_checked) -> tuple[list[T], list[BadFile]]:
    """``read(path)`` for every path: (the results of those that worked, in order; one BadFile per other)."""
    good: list[T] = []
    bad: list[BadFile] = []
    for path in paths:
        path = Path(path)
        try:
            good.append(read(path))
        except Exception as exc:  # noqa: BLE001  one file, whatever it raises, never stops the others
            log.debug("cannot read %s", path, exc_info=True)
            bad.append(BadFile(path, error_reason(path, exc)))
    return good, bad


def _not_a_file(path: Path) -> str | None:
    """Why the folder entry ``path`` is not a regular file to read, or None if it is one."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if path.is_symlink():
            return "a symbolic link that loops or points nowhere"
        return f"cannot stat: {exc.strerror or exc}"
    if stat.S_ISREG(st.st_mode):
        return None
    return "not a regular file"


def run_candidates(directory: str | os.PathLike) -> tuple[list[Path], list[BadFile]]:
    """The ``*.h5`` entries directly in ``directory``, sorted: (regular files, BadFile per entry that is
    neither a regular file nor a folder, e.g. a symbolic link loop). Folders named ``*.h5`` are ignored."""
    directory = Path(directory)
    if not directory.is_dir():
        raise RunFileError(f"{directory}: not a directory")
    try:
        entries = sorted(directory.glob("*.h5"))
    except OSError as exc:
        raise RunFileError(f"{directory}: cannot list the folder: {exc.strerror or exc}") from exc
    files: list[Path] = []
    bad: list[BadFile] = []
    for path in entries:
        if path.is_dir():
            continue
        why = _not_a_file(path)
        if why is None:
            files.append(path)
        else:
            bad.append(BadFile(path, why))
    return files, bad


def runs_in(directory: str | os.PathLike, read: Callable[[Path], T] = read_checked) -> tuple[list[T], list[BadFile]]:
    """``read`` applied to every ``*.h5`` file in ``directory`` (sorted): (results, bad files), where each
    file that ``read`` fails on, and each ``*.h5`` entry that is not a regular file, is one BadFile.
    Raises RunFileError only when ``directory`` itself is not a readable folder."""
    files, bad = run_candidates(directory)
    good, unreadable = read_each(files, read)
    return good, sorted(bad + unreadable, key=lambda b: b.path)
