"""Errors of the hardware profiles, and the helpers that build their messages.

Errors are :class:`HardwareProfileError` whose message starts ``<file>: <key>:``.
"""
from __future__ import annotations

from ...errors import FFNeuroError
from ...registry import UnknownNameError


class HardwareProfileError(FFNeuroError):
    """An invalid or unreadable hardware profile; the message names the file and the key."""


class UnknownProfileError(HardwareProfileError, UnknownNameError):
    """A profile name that is not shipped; the message lists the shipped names."""


def _need(ok: bool, msg: str) -> None:
    if not ok:
        raise HardwareProfileError(msg)


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"
