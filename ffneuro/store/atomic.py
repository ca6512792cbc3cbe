"""Replace a file's contents all at once: write a temporary beside it, fsync, rename over it.

A reader (or a crash, or a full disk) sees the old file or the new one, never a mix. Every disk
write goes through Python's own I/O here, so a full disk is an OSError with a clear message instead
of an HDF5 library failure. The temporary is created 0600 under an unguessable name with
``O_EXCL|O_NOFOLLOW`` (so a link planted in a shared folder is never written through), and only this
user's temporaries of exactly this file are ever cleaned up.
"""
from __future__ import annotations

import errno
import glob
import os
import re
import secrets
import shutil
import stat
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


def _temp_name(path: Path) -> re.Pattern:
    """The names of temporaries of ``path``: random hex (this version) or a pid (older ones), nothing else."""
    return re.compile(rf"\.{re.escape(path.name)}\.(?:[0-9a-f]{{12}}|[0-9]+)\.tmp")


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new, empty 0600 temporary beside ``path`` under a random name (never an existing file or link)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o600), tmp
        except FileExistsError:
            continue
    raise OSError(errno.EEXIST, "cannot find a free temporary name", str(path.parent))


def _new_file_mode() -> int:
    """0644 less the umask: the mode ``open()`` gives a new file (read from /proc where it can be, since
    setting the umask to read it is not thread-safe)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o644 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o644 & ~mask


def remove_stale_temps(path: Path) -> None:
    """Delete temporaries of ``path`` that a killed writer left (call only while holding its lock): only
    this user's, named exactly as temporaries of ``path`` (glob characters in the name match themselves)."""
    pattern = _temp_name(path)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        if not pattern.fullmatch(stale.name):
            continue
        try:
            st = os.lstat(stale)
            if st.st_uid == os.geteuid() and (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                stale.unlink()
        except OSError:
            pass


def _discard(tmp: Path | None) -> None:
    """Remove a temporary after a failure, quietly: on a read-only or full file system this fails too."""
    if tmp is not None:
        try:
            tmp.unlink()
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
    """Make ``data`` the contents of ``path`` atomically (and durably); on any failure ``path`` is unchanged
    and the error is one RunFileError line. ``mode``: the permissions (default: a new file's)."""
    size = len(data)
    tmp = None
    try:
        fd, tmp = _create_temp(path)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            # the replaced file's permissions, or a new file's (umask does not apply to fchmod)
            os.fchmod(fd, mode if mode is not None else _new_file_mode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        _discard(tmp)
        raise write_error(path, exc, size) from None
    except BaseException:  # Ctrl-C between write and rename: leave no temporary behind
        _discard(tmp)
        raise
    fsync_dir(path.parent)
