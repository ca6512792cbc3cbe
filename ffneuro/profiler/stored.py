"""Where ``ffneuro profile`` keeps its results in a run file: one group per profiled target.

The group is keyed by the full target string (``HardwareProfile.label``: name, ``:STACK`` and ``@CLOCK``),
so two operating points or software stacks of one chip are two groups, not one overwritten. Files written
before this keyed the group by the profile's name alone (``profile-cortex-m7`` for ``cortex-m7@280MHz``);
they are read by the ``target`` each group stores, so their one result keeps its full target.
"""
from __future__ import annotations

from typing import Any

PREFIX = "profile-"


def profile_group(target: str) -> str:
    """The run-file group of the profile of ``target`` (a ``HardwareProfile.label``)."""
    return PREFIX + target


def stored_profiles(groups: dict[str, Any]) -> dict[str, dict]:
    """The stored profiles among a run's ``groups`` (``RunRecord.groups``), by full target string, sorted:
    the target each group records, else (a group without one) the name after ``profile-``."""
    out = {}
    for name, values in groups.items():
        if not name.startswith(PREFIX) or not isinstance(values, dict):
            continue
        target = values.get("target")
        out[str(target) if isinstance(target, str) and target else name.removeprefix(PREFIX)] = values
    return dict(sorted(out.items()))
