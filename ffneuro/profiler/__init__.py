"""Turns op and memory accounting into energy, latency and locality estimates for hardware targets."""
from .hardware import (
    BASES,
    KINDS,
    MEMORY_LEVELS,
    PRECISION_BITS,
    SCOPES,
    ClockSpec,
    ComputeSpec,
    CoreSpec,
    HardwareProfile,
    HardwareProfileError,
    InterconnectSpec,
    MemorySpec,
    NeuroSpec,
    PowerSpec,
    Quantity,
    UnknownProfileError,
    load_profile,
    shipped_profiles,
    validate_file,
)

__all__ = [
    "BASES", "KINDS", "MEMORY_LEVELS", "PRECISION_BITS", "SCOPES",
    "ClockSpec", "ComputeSpec", "CoreSpec", "HardwareProfile", "HardwareProfileError", "InterconnectSpec",
    "MemorySpec", "NeuroSpec", "PowerSpec", "Quantity", "UnknownProfileError",
    "load_profile", "shipped_profiles", "validate_file",
]
