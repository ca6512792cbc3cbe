"""Replace a file's contents all at once: write a temporary beside it, fsync, rename over it.

A reader (or a crash, or a full disk) sees the old file or the new one, never a mix. Every disk
write goes through Python's own I/O here, so a full disk is an OSError with a clear message instead
of an HDF5 library failure.
"""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from ..errors import RunFileError

_FULL = (errno.ENOSPC, errno.EDQUOT)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def temp_path(path: Path) -> Path:
    """The temporary a replacement of ``path`` is built in (hidden, and named after its writer's pid)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def remove_stale_temps(path: Path) -> None:
    """Delete temporaries of ``path`` that a killed writer left (call only while holding its lock)."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            stale.unlink()
        except OSError:
            pass


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_error(path: Path, exc: OSError, size: int) -> RunFileError:
    """One line for a failed write of ``size`` bytes to ``path``; a full disk says how much was needed."""
    if exc.errno in _FULL:
        free = free_bytes(path.parent)
        have = f", {human_bytes(free)} free" if free is not None else ""
        return RunFileError(f"disk full: writing {path} needs {human_bytes(size)}{have} in {path.parent}; "
                            "the file keeps its last committed state")
    return RunFileError(f"cannot write {path}: {exc.strerror or exc}")


def replace_file(path: Path, data: bytes | memoryview, mode: int | None = None) -> None:
    """Make ``data`` the contents of ``path`` atomically (and durably); on any failure ``path`` is unchanged."""
    tmp = temp_path(path)
    size = len(data)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            if mode is not None:  # keep the replaced file's permissions (umask does not apply to fchmod)
                os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_error(path, exc, size) from None
    except BaseException:  # Ctrl-C between write and rename: leave no temporary behind
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
