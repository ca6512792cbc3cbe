"""Loading: the profiles shipped in ``ffneuro.hw_profiles`` by name, or any profile file by path."""
from __future__ import annotations

import os
from functools import cache
from importlib import resources
from pathlib import Path

from .errors import HardwareProfileError, UnknownProfileError
from .operating import at_clock, split_operating_point, split_stack, with_stack
from .parse import parse_toml
from .profile import HardwareProfile

PACKAGE = "ffneuro.hw_profiles"


def shipped_profiles() -> list[str]:
    """Names of the profiles that ship with ffneuro (the ``*.toml`` files in ``ffneuro.hw_profiles``)."""
    root = resources.files(PACKAGE)
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml") and p.is_file())


@cache
def _load_shipped(name: str) -> HardwareProfile:
    res = resources.files(PACKAGE).joinpath(f"{name}.toml")
    origin = str(res)
    profile = parse_toml(res.read_bytes(), origin)
    if profile.name != name:
        raise HardwareProfileError(f"{origin}: name: {profile.name!r} differs from the file name {name!r}")
    return profile


def _looks_like_path(value: str | os.PathLike) -> bool:
    if isinstance(value, os.PathLike):
        return True
    return value.endswith(".toml") or "/" in value or os.sep in value


def validate_file(path: str | os.PathLike) -> HardwareProfile:
    """Load and validate the TOML file at ``path`` (what ``ffneuro hw validate`` runs)."""
    p = Path(path)
    if not p.is_file():
        raise HardwareProfileError(f"{p}: no such file" if not p.exists() else f"{p}: not a file")
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise HardwareProfileError(f"{p}: cannot read ({e.strerror or e})") from None
    return parse_toml(raw, str(p))


def load_profile(name_or_path: str | os.PathLike) -> HardwareProfile:
    """A shipped profile by name (``"loihi"``) or any profile by path (``"my/chip.toml"``), optionally
    with one of its software stacks and at an operating point: ``"cortex-m7:bosch-v1.2@140MHz"``
    (:func:`~.operating.with_stack`, then :func:`~.operating.at_clock`)."""
    if isinstance(name_or_path, str):
        base, clock_hz = split_operating_point(name_or_path)
        if clock_hz is not None:
            return at_clock(load_profile(base), clock_hz)
        base, stack = split_stack(name_or_path)
        if stack is not None:
            return with_stack(load_profile(base), stack)
    if _looks_like_path(name_or_path):
        return validate_file(name_or_path)
    if not isinstance(name_or_path, str):
        raise HardwareProfileError(f"expected a profile name or path, got {type(name_or_path).__name__}")
    names = shipped_profiles()
    if name_or_path not in names:
        raise UnknownProfileError(f"unknown hardware profile {name_or_path!r}; shipped: {', '.join(names)} "
                                  "(or give a path to a .toml file)")
    return _load_shipped(name_or_path)
