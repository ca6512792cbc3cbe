"""Plain JSON values from numpy arrays and scalars, with NaN and ±inf as ``null`` (strict JSON)."""
from __future__ import annotations

import math

import numpy as np


def jsonable(value):
    """Plain JSON types: numpy arrays and scalars as lists and numbers, NaN and ±inf as ``null``."""
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
