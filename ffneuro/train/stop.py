"""Stopping a run cleanly: SIGINT and SIGTERM only set a flag, which the loops check between batches.

A handler that raised from wherever the signal landed could fire inside a library callback (and be
swallowed) or half-way through a write; a flag is checked only at safe points, where the trainer stops
and keeps the last committed epoch. A second Ctrl-C stops at once (commits are atomic, so that too
loses nothing but the running epoch).
"""
from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

log = logging.getLogger(__name__)


class StopRequested(KeyboardInterrupt):
    """A stop asked for by a signal; a KeyboardInterrupt, so callers that handle Ctrl-C handle it too."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


class StopSignals:
    """While active (``with StopSignals() as stop``), SIGINT and SIGTERM are recorded, not raised;
    :meth:`check` raises :class:`StopRequested` at the caller's safe point. Outside the main thread
    (where handlers cannot be installed) it records nothing and ``check`` never raises."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt("stopped at once by a second Ctrl-C")
        if self.signum is None:
            self.signum = signum
            log.warning("%s received: stopping after the current batch%s", signal.Signals(signum).name,
                        " (Ctrl-C again to stop at once)" if signum == signal.SIGINT else "")

    def check(self) -> None:
        """Raise StopRequested if a stop signal arrived."""
        if self.signum is not None:
            raise StopRequested(self.signum)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def never_stop() -> None:
    """The check used when no StopSignals is active."""
