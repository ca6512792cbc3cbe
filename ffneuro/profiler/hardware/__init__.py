"""Hardware target profiles: one TOML file per target, validated on load and normalised to SI units.

quantities (units, Quantity) ← profile (the schema dataclasses) ← parse (TOML → profile) ← load (by name or path).
"""
from .errors import HardwareProfileError, UnknownProfileError
from .load import PACKAGE, load_profile, shipped_profiles, validate_file
from .operating import FORM as OPERATING_POINT_FORM
from .operating import (
    OperatingPointError,
    at_clock,
    describe,
    split_operating_point,
    split_stack,
    voltage_at,
    with_stack,
)
from .parse import (
    QUANTITY_KEYS_OPTIONAL,
    QUANTITY_KEYS_REQUIRED,
    TOP_KEYS_OPTIONAL,
    TOP_KEYS_REQUIRED,
    parse_profile,
    parse_toml,
    profile_from_dict,
)
from .profile import (
    CLOCK_FIELDS,
    COMPUTE_FIELDS,
    CONV_WEIGHTS,
    CORE_FIELDS,
    FLOAT_PRECISIONS,
    INTERCONNECT_FIELDS,
    KINDS,
    MEMORY_FIELDS,
    MEMORY_LEVELS,
    NEURO_FIELDS,
    POWER_FIELDS,
    PRECISION_BITS,
    SCHEMA,
    SCHEMA_VERSION,
    SCOPES,
    ClockSpec,
    ComputeSpec,
    CoreSpec,
    ExecutedAs,
    HardwareProfile,
    InterconnectSpec,
    LearningSpec,
    MappingSpec,
    MemorySpec,
    NeuroSpec,
    PowerSpec,
    RooflineKernel,
    RooflineMemory,
    RooflineSpec,
    VoltageLevel,
    VoltageSpec,
)
from .quantities import BASES, BASES_NEEDING_NOTE, SI_UNITS, UNITS, Fact, Quantity

__all__ = [
    "SCHEMA", "SCHEMA_VERSION", "KINDS", "BASES", "SCOPES", "MEMORY_LEVELS", "PRECISION_BITS", "UNITS",
    "HardwareProfileError", "UnknownProfileError",
    "Quantity", "CoreSpec", "ComputeSpec", "MemorySpec", "InterconnectSpec", "NeuroSpec", "PowerSpec",
    "ClockSpec", "HardwareProfile", "MappingSpec", "LearningSpec", "ExecutedAs", "Fact", "CONV_WEIGHTS",
    "load_profile", "validate_file", "shipped_profiles", "parse_profile", "parse_toml",
    "profile_from_dict", "at_clock", "describe", "split_operating_point", "voltage_at", "split_stack", "with_stack", "OperatingPointError",
    "OPERATING_POINT_FORM", "RooflineSpec", "RooflineKernel", "RooflineMemory", "VoltageSpec", "VoltageLevel",
    # the rest of the schema's tables, importable from here as they were from the single module
    "PACKAGE", "BASES_NEEDING_NOTE", "FLOAT_PRECISIONS", "SI_UNITS",
    "CORE_FIELDS", "COMPUTE_FIELDS", "MEMORY_FIELDS", "INTERCONNECT_FIELDS", "NEURO_FIELDS", "POWER_FIELDS",
    "CLOCK_FIELDS", "TOP_KEYS_REQUIRED", "TOP_KEYS_OPTIONAL", "QUANTITY_KEYS_REQUIRED", "QUANTITY_KEYS_OPTIONAL",
]
