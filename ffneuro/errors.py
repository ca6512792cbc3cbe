"""Exceptions the CLI turns into one-line errors with a non-zero exit (never a traceback)."""
from __future__ import annotations

from .registry import UnknownNameError


class FFNeuroError(Exception):
    """Base class for user-facing errors: bad config, missing data, bad run files."""


class ConfigError(FFNeuroError, ValueError):
    """An invalid option value or combination."""


class DataError(FFNeuroError):
    """Dataset files missing, corrupt, or of the wrong format."""


class RunFileError(FFNeuroError):
    """An HDF5 file that is not a readable ffneuro run, or one that cannot be written."""


class NotModelled(FFNeuroError):
    """A figure a block (or target) does not model, such as a block type without a memory replay: an
    answer the memory guard and the profiler report as "not modelled", never a reason to use another
    block's rule instead."""


class Diverged(FFNeuroError):
    """Training produced a non-finite or exploding loss or weights; the run keeps its last good epoch."""


__all__ = ["FFNeuroError", "ConfigError", "DataError", "RunFileError", "Diverged", "NotModelled", "UnknownNameError"]
