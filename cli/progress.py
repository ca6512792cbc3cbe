"""Progress bars on stderr for long work; hidden when stderr is not a terminal or with --quiet."""
from __future__ import annotations

import sys

import click


class BarProgress:
    """Implements the trainer's Progress protocol with click's progress bar."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and sys.stderr.isatty()
        self._bar = None

    def start(self, label: str, total: int) -> None:
        if self.enabled:
            self._bar = click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True)
            self._bar.__enter__()

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None
