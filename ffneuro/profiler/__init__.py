"""Turns op and memory accounting into energy, latency and locality estimates for hardware targets."""
from .energy import (
    ActionCounts,
    ActionEnergies,
    EnergyBreakdown,
    action_energies,
    dynamic_energy,
    latency,
)
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
    profile_from_dict,
    shipped_profiles,
    validate_file,
)
from .locality import (
    Mapping,
    Placement,
    UnitMapping,
    classify,
    map_units,
    mapping_style,
)
from .report import (
    DEFAULT_ACTIVITY,
    ESTIMATE_PRECISIONS,
    PROFILED,
    ProfileReport,
    UnitEstimate,
    WorkloadEstimate,
    format_si,
    profile_config,
    profile_graph,
    profile_network,
)

__all__ = [
    "BASES", "KINDS", "MEMORY_LEVELS", "PRECISION_BITS", "SCOPES",
    "ClockSpec", "ComputeSpec", "CoreSpec", "HardwareProfile", "HardwareProfileError", "InterconnectSpec",
    "MemorySpec", "NeuroSpec", "PowerSpec", "Quantity", "UnknownProfileError",
    "load_profile", "profile_from_dict", "shipped_profiles", "validate_file",
    # estimates
    "DEFAULT_ACTIVITY", "ESTIMATE_PRECISIONS", "FFvsBP", "PROFILED", "Ranked", "ff_vs_bp", "rank", "SCENARIOS", "SPREAD", "overlaps", "ActionCounts", "ActionEnergies", "EnergyBreakdown", "Mapping", "Placement", "ProfileReport",
    "UnitEstimate", "UnitMapping", "WorkloadEstimate", "action_energies", "classify", "dynamic_energy",
    "format_si", "latency", "map_units", "mapping_style", "profile_config", "profile_graph", "profile_network",
]
from .ranking import FFvsBP, Ranked, ff_vs_bp, rank
from .uncertainty import SCENARIOS, SPREAD, overlaps

# sparsity and synops need torch; import them as ffneuro.profiler.sparsity (measure_activity, measure_sparsity)
# and ffneuro.profiler.synops (layer_synops). activity (which rate each layer gets) and static (parameter
# count, footprint, connection sparsity) are pure.
