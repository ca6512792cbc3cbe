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
    """An HDF5 file that is not a readable ffneuro run."""


__all__ = ["FFNeuroError", "ConfigError", "DataError", "RunFileError", "UnknownNameError"]
