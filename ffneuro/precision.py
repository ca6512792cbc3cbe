"""Numeric precision of the compute: fp32, or bf16 autocast (weights and optimiser stay fp32)."""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:
    import torch

PRECISIONS = ("fp32", "bf16")


def autocast(device: torch.device | str, precision: str):
    """A context that runs conv/linear in ``precision``; a no-op for fp32."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return contextlib.nullcontext()
    import torch  # here, not above: the config checks PRECISIONS without loading torch
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
