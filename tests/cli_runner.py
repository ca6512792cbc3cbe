"""``ffneuro ARGS`` in-process for the tests, with the root logger restored afterwards (each command
points it at the runner's stderr, which is closed once the command returns)."""
from __future__ import annotations

import logging

from click.testing import CliRunner, Result
from ffneuro.cli.main import main


def invoke(*args, ok: bool = False) -> Result:
    """Run ``ffneuro ARGS``; with ``ok``, assert that it exited 0."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        result = CliRunner().invoke(main, [str(a) for a in args])
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    if ok:
        assert result.exit_code == 0, (result.output, result.exception)
    return result
