"""One writer per run file: an advisory lock on a sidecar ``RUN.h5.lock`` that names its holder.

The writer takes ``flock`` on the sidecar, so the kernel drops the lock when the holder dies, even by
``kill -9``; a left-over sidecar is harmless (nobody holds it) and is removed by the next writer. On Linux
the writer also takes an open-file-description lock, which readers *test* without taking anything, so a
reader never makes a writer fail. The sidecar holds the holder's pid, host and start time as JSON; its
mtime is the holder's heartbeat.

In a shared folder the sidecar is created 0600 with ``O_EXCL|O_NOFOLLOW`` and used only if, once open,
it is a regular file of this user with a single link: a symlink or hard link planted by someone else is
refused, never written through, and a sidecar of another user is reported as such.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import socket
import stat
import struct
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
#: how long a writer retries a lock that is busy: an old ffneuro's read probe holds it for microseconds
BUSY_RETRY_S = 0.25
_BUSY = (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)
_LINKED = (errno.ELOOP, errno.EMLINK)  # what O_NOFOLLOW gives for a symlink (Linux, BSD)
# struct flock of 64-bit Linux (type, whence, start, len, pid): for the open-file-description locks
_FLOCK = "hhqqi4x"
_OFD = (fcntl is not None and sys.platform.startswith("linux") and hasattr(fcntl, "F_OFD_SETLK")
        and struct.calcsize("l") == 8)


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def _alive(pid: int, host: str) -> bool | None:
    """Whether ``pid`` runs, when it is a process of this host; None when that cannot be told."""
    if pid <= 0 or host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it runs, as another user
        return True
    return True


@dataclass(frozen=True)
class Holder:
    """Who holds a run's lock: process id (-1: not labelled yet), host, since when, the last heartbeat
    (sidecar mtime), and whether that process still runs (None: another host, or unknown)."""

    pid: int
    host: str
    since: str
    heartbeat: float  # seconds since the epoch; 0: unknown
    alive: bool | None = None

    def describe(self) -> str:
        if self.pid < 0:
            return "a process that has not labelled the lock yet (busy)"
        notes = [f"since {self.since}"] if self.since else []
        if self.heartbeat > 0:
            notes.append(f"last heartbeat {max(0.0, time.time() - self.heartbeat):.0f} s ago")
        if self.alive is False:
            notes.append("not running: another process holds its lock")
        return f"pid {self.pid} on host {self.host}" + (f" ({', '.join(notes)})" if notes else "")


def _read_holder(fd: int) -> tuple[Holder, dict]:
    """The holder named by an open sidecar, and its whole label (type-checked: it may be anyone's text)."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        mtime = os.fstat(fd).st_mtime
    except (OSError, ValueError, RecursionError):
        info, mtime = {}, 0.0
    info = info if isinstance(info, dict) else {}
    pid = info.get("pid")
    pid = pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else -1
    host = info.get("host") if isinstance(info.get("host"), str) and info.get("host") else "?"
    since = info.get("since") if isinstance(info.get("since"), str) else ""
    return Holder(pid, host, since, mtime if pid > 0 else 0.0, _alive(pid, host)), info


def _ofd(fd: int, command: int, kind: int) -> bytes | None:
    """An open-file-description lock request on the whole file; None where the system has none."""
    if not _OFD:
        return None
    try:
        return fcntl.fcntl(fd, command, struct.pack(_FLOCK, kind, os.SEEK_SET, 0, 0, 0))
    except OSError:
        return None


def _ofd_held(fd: int) -> bool | None:
    """Whether a writer holds the sidecar's description lock, tested without taking anything."""
    answer = _ofd(fd, fcntl.F_OFD_GETLK, fcntl.F_RDLCK) if _OFD else None
    return None if answer is None else struct.unpack(_FLOCK, answer)[0] != fcntl.F_UNLCK


def _lockers(fd: int) -> str:
    """Who holds locks on the open sidecar, from /proc/locks (Linux): 'pid P of another user (uid U)',
    or '' when that cannot be told."""
    try:
        st = os.fstat(fd)
        with open("/proc/locks") as f:
            lines = f.read(1 << 20).splitlines()
    except OSError:
        return ""
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids = []
    for line in lines:
        fields = line.split()
        if "->" in fields or len(fields) < 6 or fields[5] != dev:
            continue  # a waiter, or another file
        try:
            pid = int(fields[4])
        except ValueError:
            continue
        if pid > 0 and pid != os.getpid() and pid not in pids:
            pids.append(pid)
    names = []
    for pid in pids:
        try:
            uid = os.stat(f"/proc/{pid}").st_uid
        except OSError:
            names.append(f"pid {pid}")
            continue
        names.append(f"pid {pid}" + (f" of another user (uid {uid})" if uid != os.geteuid() else ""))
    return ", ".join(names)


def holder_of(path: str | os.PathLike) -> Holder | None:
    """The live writer of ``path``, or None when nobody holds its lock (finished, or crashed).

    A probe never takes the lock where the system can test it (Linux), so it never makes a writer fail;
    elsewhere (or for a sidecar of an older ffneuro) it takes a shared lock for an instant, and a lock it
    cannot take at once is "busy": a Holder, possibly not labelled yet (pid -1)."""
    if fcntl is None:
        return None
    sidecar = lock_path(Path(path))
    try:
        fd = os.open(sidecar, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        held = _ofd_held(fd)
        holder, label = _read_holder(fd)
        if held is None or (not held and label.get("ofd") is not True):
            try:  # a writer without a description lock: probe its flock
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError as exc:
                held = exc.errno in _BUSY  # else a file system without flock: unknown, treat as not held
            else:
                fcntl.flock(fd, fcntl.LOCK_UN)
                held = False
        return _read_holder(fd)[0] if held else None
    finally:
        os.close(fd)


class RunLock:
    """An exclusive lock on a run file, taken at once or refused with the holder's name (never waits
    for a writer; retries only an instant for a reader's probe)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.sidecar = lock_path(self.path)
        self._fd: int | None = None
        self._last_beat = 0.0

    @property
    def held(self) -> bool:
        return self._fd is not None

    def _refuse(self, why: str) -> RunFileError:
        return RunFileError(f"cannot lock {self.path}: its lock file {self.sidecar} {why}")

    def _open(self) -> int | None:
        """Create the sidecar (0600, O_EXCL) or open the existing one, never through a link; None when it
        vanished between the two (its holder just removed it). Refuses anything but this user's own file."""
        flags = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            try:
                fd = os.open(self.sidecar, flags | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                fd = os.open(self.sidecar, flags)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno in _LINKED or os.path.islink(self.sidecar):
                raise self._refuse("is a symbolic link; it is never followed (remove it if you did not make it)") from None
            if exc.errno == errno.EACCES and os.path.exists(self.sidecar):
                try:
                    owner = os.stat(self.sidecar, follow_symlinks=False).st_uid
                except OSError:
                    owner = -1
                if owner != os.geteuid():
                    raise self._refuse(f"is owned by another user (uid {owner}); it may be writing the run, "
                                       "or remove the lock file") from None
            raise RunFileError(f"cannot lock {self.path}: {exc.strerror or exc} ({self.sidecar})") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise self._refuse("is not a regular file")
            if st.st_uid != os.geteuid():
                raise self._refuse(f"is owned by another user (uid {st.st_uid}); it may be writing the run, "
                                   "or remove the lock file")
            if st.st_nlink != 1:
                raise self._refuse("has another hard link; it is never written (remove it if you did not make it)")
            if st.st_mode & 0o077:  # a sidecar of an older ffneuro (0644): nobody else needs to open it
                os.fchmod(fd, 0o600)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _flock(self, fd: int) -> bool:
        """Take the exclusive flock, retrying an instant while only a reader's probe may hold it; False
        where the file system has no flock. Raises the one-line refusal naming the holder."""
        deadline = time.monotonic() + BUSY_RETRY_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except OSError as exc:
                if exc.errno not in _BUSY:
                    log.warning("file locking unavailable for %s (%s): nothing stops a second writer",
                                self.path, exc.strerror or exc)
                    return False
            if time.monotonic() >= deadline:
                raise self._busy(fd)
            time.sleep(0.005)

    def _busy(self, fd: int) -> RunFileError:
        """The refusal when another process holds the lock: the writer its label names when that one
        runs, else whoever really holds it (another user, or a process that is not an ffneuro writer)."""
        holder, _ = _read_holder(fd)
        if holder.pid > 0 and holder.alive is not False:
            return RunFileError(f"{self.path} is being written by {holder.describe()}; "
                                "wait for it to finish or stop it")
        who = _lockers(fd) or "another process"
        named = (f"not by the writer it names (pid {holder.pid}, not running)" if holder.pid > 0
                 else "which names no writer")
        return RunFileError(f"{self.path} is locked by {who} through its lock file {self.sidecar}, {named}; "
                            "stop that process or remove the lock file")

    def acquire(self) -> RunLock:
        if self._fd is not None:
            return self
        if fcntl is None:  # pragma: no cover - Windows
            log.warning("no file locking on %s: nothing stops a second writer of %s", sys.platform, self.path)
            self._fd = -1
            return self
        for _ in range(10):  # retried only when the previous holder removed the sidecar as we opened it
            fd = self._open()
            if fd is None:
                continue
            try:
                if not self._flock(fd):
                    self._fd = -1
                    os.close(fd)
                    return self
                mine = os.fstat(fd)
                try:
                    now = os.stat(self.sidecar, follow_symlinks=False)
                    same = (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino)
                except FileNotFoundError:
                    same = False
            except BaseException:
                os.close(fd)
                raise
            if not same:  # we locked a sidecar its holder had just unlinked: start over
                os.close(fd)
                continue
            try:
                os.ftruncate(fd, 0)  # a reader sees "busy, not labelled yet" rather than a stale label
                ofd = _ofd(fd, fcntl.F_OFD_SETLK, fcntl.F_WRLCK) is not None if _OFD else False
                info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": utc_now(), "ofd": ofd})
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
        """Remove the sidecar (only if its name is still our file), then drop the lock (in that order, so
        no one locks a file about to vanish)."""
        fd, self._fd = self._fd, None
        if fd is None or fd < 0:
            return
        try:
            mine, now = os.fstat(fd), os.stat(self.sidecar, follow_symlinks=False)
            if (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
                self.sidecar.unlink()
        except OSError:
            pass
        os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
