"""One writer per run file: an advisory lock on a sidecar ``RUN.h5.lock`` that names its holder.

The lock is ``flock`` on the sidecar, so the kernel drops it when the holder dies, even by ``kill -9``;
a left-over sidecar is harmless (nobody holds it) and is removed by the next writer. The sidecar holds
the holder's pid, host and start time as JSON; its mtime is the holder's heartbeat.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import RunFileError
from .schema import utc_now

try:  # POSIX; elsewhere runs are written without a lock (and a warning)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

log = logging.getLogger(__name__)

HEARTBEAT_S = 30.0  # a live writer touches its sidecar at least this often while it trains


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


@dataclass(frozen=True)
class Holder:
    """Who holds a run's lock: process id, host, since when, and the last heartbeat (sidecar mtime)."""

    pid: int
    host: str
    since: str
    heartbeat: float  # seconds since the epoch

    def describe(self) -> str:
        age = max(0.0, time.time() - self.heartbeat)
        return f"pid {self.pid} on host {self.host} (since {self.since}, last heartbeat {age:.0f} s ago)"


def _read_holder(fd: int, path: Path) -> Holder:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096).decode() or "{}")
        mtime = os.fstat(fd).st_mtime
    except (OSError, ValueError):
        info, mtime = {}, 0.0
    return Holder(int(info.get("pid", -1)), str(info.get("host", "?")), str(info.get("since", "?")), mtime)


def holder_of(path: str | os.PathLike) -> Holder | None:
    """The live writer of ``path``, or None when nobody holds its lock (finished, or crashed)."""
    if fcntl is None:
        return None
    sidecar = lock_path(Path(path))
    try:
        fd = os.open(sidecar, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                return _read_holder(fd, sidecar)
            return None  # a file system without flock: unknown, treat as not held
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class RunLock:
    """An exclusive lock on a run file, taken at once or refused with the holder's name (never waits)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.sidecar = lock_path(self.path)
        self._fd: int | None = None
        self._last_beat = 0.0

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        if self._fd is not None:
            return self
        if fcntl is None:  # pragma: no cover - Windows
            log.warning("no file locking on %s: nothing stops a second writer of %s", sys.platform, self.path)
            self._fd = -1
            return self
        for _ in range(10):  # retried only when the previous holder removed the sidecar as we opened it
            try:
                fd = os.open(self.sidecar, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise RunFileError(f"cannot lock {self.path}: {exc.strerror or exc} ({self.sidecar})") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = _read_holder(fd, self.sidecar)
                os.close(fd)
                if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise RunFileError(f"{self.path} is being written by {holder.describe()}; "
                                       "wait for it to finish or stop it") from None
                log.warning("file locking unavailable for %s (%s): nothing stops a second writer",
                            self.path, exc.strerror or exc)
                self._fd = -1
                return self
            try:
                same = os.fstat(fd).st_ino == os.stat(self.sidecar).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # we locked a sidecar its holder had just unlinked: start over
                os.close(fd)
                continue
            info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": utc_now()})
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, info.encode(), 0)
            except OSError as exc:  # a full disk: the lock still holds, only its label is missing
                log.warning("cannot label the lock of %s: %s", self.path, exc.strerror or exc)
            self._fd = fd
            self._last_beat = time.monotonic()
            return self
        raise RunFileError(f"cannot lock {self.path}: its lock file keeps changing ({self.sidecar})")

    def heartbeat(self, force: bool = False) -> None:
        """Touch the sidecar (at most every HEARTBEAT_S unless forced) so others see the writer is alive."""
        if self._fd is None or self._fd < 0:
            return
        now = time.monotonic()
        if force or now - self._last_beat >= HEARTBEAT_S:
            self._last_beat = now
            try:
                os.utime(self._fd)
            except OSError:
                pass

    def release(self) -> None:
        """Remove the sidecar, then drop the lock (in that order, so no one locks a file about to vanish)."""
        fd, self._fd = self._fd, None
        if fd is None or fd < 0:
            return
        try:
            self.sidecar.unlink(missing_ok=True)
        except OSError:
            pass
        os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
