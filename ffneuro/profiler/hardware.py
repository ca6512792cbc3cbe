"""Hardware target profiles: one TOML file per target, validated on load and normalised to SI units.

A profile describes a target in the Accelergy style: *actions* with an energy each (a MAC in some
precision, a read of one memory word, a packet on the interconnect, a neuron update), plus the
capacities, rates and powers needed for latency and for mapping units onto cores. The profiler turns
op and memory counts into ``energy = Σ count × energy per action`` (+ static power × time), latency
from throughput or clock, and locality from the per-core limits. The schema is documented in
``docs/hw-profiles.md``.

Every number in a file is an inline table ``{ value, unit, source, basis[, note] }``. The unit is
checked against the field's dimension and converted to SI (J, W, bytes, op/s, Hz, B/s, s). ``basis``
says where the number comes from (see :data:`BASES`); anything not measured or specified needs a
``note`` saying how it was derived or why it was assumed.

Errors are :class:`HardwareProfileError` whose message starts ``<file>: <key>:``.
"""
from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

from ..errors import FFNeuroError
from ..registry import UnknownNameError

SCHEMA = "ffneuro.hw"
SCHEMA_VERSION = 1
PACKAGE = "ffneuro.hw_profiles"

KINDS = ("neuromorphic", "gpu", "cpu", "mcu", "reference")
BASES = ("measured", "specified", "modelled", "scaled", "assumed")
BASES_NEEDING_NOTE = ("modelled", "scaled", "assumed")
SCOPES = ("op", "all_in")
MEMORY_LEVELS = ("on_core", "on_chip", "off_chip")

# Native numeric formats and their width in bits; `nearest_precision` maps a run's precision onto these.
PRECISION_BITS = {"fp64": 64, "fp32": 32, "tf32": 19, "bf16": 16, "fp16": 16, "fp8": 8,
                  "int32": 32, "int16": 16, "int8": 8, "int4": 4, "binary": 1}
FLOAT_PRECISIONS = frozenset({"fp64", "fp32", "tf32", "bf16", "fp16", "fp8"})

_B = 1.0
_KI = 1024.0
# dimension -> (SI unit, {accepted unit: factor to SI}). Unit strings are matched exactly (mW ≠ MW).
UNITS: dict[str, tuple[str, dict[str, float]]] = {
    "energy": ("J", {"J": 1.0, "mJ": 1e-3, "uJ": 1e-6, "µJ": 1e-6, "nJ": 1e-9, "pJ": 1e-12, "fJ": 1e-15}),
    "power": ("W", {"kW": 1e3, "W": 1.0, "mW": 1e-3, "uW": 1e-6, "µW": 1e-6, "nW": 1e-9}),
    "bytes": ("B", {
        "B": _B, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
        "KiB": _KI, "MiB": _KI ** 2, "GiB": _KI ** 3, "TiB": _KI ** 4,
        "bit": 1 / 8, "kbit": 1e3 / 8, "Kibit": _KI / 8, "Mbit": 1e6 / 8, "Mibit": _KI ** 2 / 8,
        "Gbit": 1e9 / 8, "Gibit": _KI ** 3 / 8,
    }),
    # One op is one arithmetic operation; a MAC is two (so "MAC/s" units count double).
    "rate": ("op/s", {
        "op/s": 1.0, "ops/s": 1.0, "OP/s": 1.0, "OPS": 1.0, "kOPS": 1e3, "MOPS": 1e6, "GOPS": 1e9,
        "TOPS": 1e12, "POPS": 1e15,
        "FLOP/s": 1.0, "kFLOP/s": 1e3, "MFLOP/s": 1e6, "GFLOP/s": 1e9, "TFLOP/s": 1e12, "PFLOP/s": 1e15,
        "FLOPS": 1.0, "GFLOPS": 1e9, "TFLOPS": 1e12, "PFLOPS": 1e15,
        "MAC/s": 2.0, "kMAC/s": 2e3, "MMAC/s": 2e6, "GMAC/s": 2e9, "TMAC/s": 2e12,
    }),
    "frequency": ("Hz", {"Hz": 1.0, "kHz": 1e3, "MHz": 1e6, "GHz": 1e9}),
    "bandwidth": ("B/s", {
        "B/s": 1.0, "kB/s": 1e3, "KB/s": 1e3, "MB/s": 1e6, "GB/s": 1e9, "TB/s": 1e12,
        "KiB/s": _KI, "MiB/s": _KI ** 2, "GiB/s": _KI ** 3, "TiB/s": _KI ** 4,
        "bit/s": 1 / 8, "Mbit/s": 1e6 / 8, "Gbit/s": 1e9 / 8, "Tbit/s": 1e12 / 8,
    }),
    "time": ("s", {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9, "ps": 1e-12}),
    "count": ("1", {"1": 1.0, "count": 1.0}),
}
SI_UNITS = {si: dim for dim, (si, _) in UNITS.items()}
_UNIT_DIMENSION = {u: dim for dim, (_, table) in UNITS.items() for u in table}

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class HardwareProfileError(FFNeuroError):
    """An invalid or unreadable hardware profile; the message names the file and the key."""


class UnknownProfileError(HardwareProfileError, UnknownNameError):
    """A profile name that is not shipped; the message lists the shipped names."""


# --------------------------------------------------------------------------------------------------
# dataclasses


def _need(ok: bool, msg: str) -> None:
    if not ok:
        raise HardwareProfileError(msg)


@dataclass(frozen=True)
class Quantity:
    """One number in SI units, with where it came from.

    ``value_si`` is in ``unit`` (one of J, W, B, op/s, Hz, B/s, s, 1); ``given_value``/``given_unit``
    keep what the file said (e.g. 23.6 pJ). ``basis`` is one of :data:`BASES`.
    """

    value_si: float
    unit: str
    source: str
    basis: str
    note: str = ""
    given_value: float | None = None
    given_unit: str = ""

    def __post_init__(self) -> None:
        _need(self.unit in SI_UNITS, f"unit {self.unit!r} is not an SI unit; valid: {', '.join(SI_UNITS)}")
        _need(isinstance(self.value_si, (int, float)) and not isinstance(self.value_si, bool),
              f"value must be a number, got {self.value_si!r}")
        _need(math.isfinite(self.value_si) and self.value_si > 0, f"value must be finite and > 0, got {self.value_si}")
        _need(isinstance(self.source, str) and bool(self.source.strip()), "source must be a non-empty string")
        _need(self.basis in BASES, f"unknown basis {self.basis!r}; valid: {', '.join(BASES)}")
        _need(isinstance(self.note, str), "note must be a string")
        _need(self.basis not in BASES_NEEDING_NOTE or bool(self.note.strip()),
              f"basis {self.basis!r} needs a note saying how the number was derived or why it was assumed")
        if self.unit == "1":
            _need(float(self.value_si).is_integer(), f"a count must be a whole number, got {self.value_si}")
        object.__setattr__(self, "value_si", float(self.value_si))
        if self.given_value is None:
            object.__setattr__(self, "given_value", self.value_si)
            object.__setattr__(self, "given_unit", self.unit)

    @classmethod
    def of(cls, value: float, unit: str, *, source: str, basis: str, note: str = "") -> "Quantity":
        """Build from a value in any accepted unit, e.g. ``Quantity.of(23.6, "pJ", ...)``."""
        dim = _UNIT_DIMENSION.get(unit)
        _need(dim is not None, f"unknown unit {unit!r}")
        si, table = UNITS[dim]
        _need(isinstance(value, (int, float)) and not isinstance(value, bool), f"value must be a number, got {value!r}")
        return cls(_to_si(value, table[unit]), si, source, basis, note, given_value=value, given_unit=unit)

    @property
    def dimension(self) -> str:
        return SI_UNITS[self.unit]

    def __float__(self) -> float:
        return self.value_si

    def __int__(self) -> int:
        return int(self.value_si)

    def to_dict(self) -> dict:
        d = {"value": self.given_value, "unit": self.given_unit, "value_si": self.value_si, "unit_si": self.unit,
             "source": self.source, "basis": self.basis}
        if self.note:
            d["note"] = self.note
        return d

    def __str__(self) -> str:
        return f"{self.given_value:g} {self.given_unit}"


def _to_si(value: float, factor: float) -> float:
    """``value × factor`` rounded to 15 significant digits, so 0.23 pJ is 2.3e-13 J, not 2.3000000000000003e-13."""
    return float(f"{value * factor:.15g}")


def _check_dims(owner: str, obj: Any, spec: dict[str, tuple[str, bool]]) -> None:
    for name, (dim, required) in spec.items():
        q = getattr(obj, name)
        if q is None:
            _need(not required, f"{owner}.{name} is required")
            continue
        _need(isinstance(q, Quantity), f"{owner}.{name} must be a Quantity, got {type(q).__name__}")
        _need(q.dimension == dim,
              f"{owner}.{name} must be {_a(dim)} ({UNITS[dim][0]}), got {_a(q.dimension)} ({q.unit})")


def _quantities_dict(obj: Any, spec: dict[str, tuple[str, bool]]) -> dict:
    return {name: getattr(obj, name).to_dict() for name in spec if getattr(obj, name) is not None}


# field name -> (dimension, required); shared by the TOML parser and the dataclass checks
CORE_FIELDS = {
    "count": ("count", True),
    "neurons_per_core": ("count", False),
    "axons_per_core": ("count", False),
    "synapses_per_core": ("count", False),
    "synapse_bytes_per_core": ("bytes", False),
    "sram_bytes_per_core": ("bytes", False),
}
COMPUTE_FIELDS = {"mac": ("energy", True), "add": ("energy", False), "mult": ("energy", False),
                  "peak_rate": ("rate", False)}
MEMORY_FIELDS = {"read": ("energy", False), "write": ("energy", False), "word": ("bytes", False),
                 "capacity": ("bytes", False), "bandwidth": ("bandwidth", False)}
INTERCONNECT_FIELDS = {"packet": ("energy", False), "packet_size": ("bytes", False), "hop": ("energy", False),
                       "hop_time": ("time", False), "bandwidth": ("bandwidth", False)}
NEURO_FIELDS = {
    "synaptic_op": ("energy", False), "synaptic_op_time": ("time", False),
    "neuron_update": ("energy", False), "neuron_update_idle": ("energy", False),
    "neuron_update_time": ("time", False),
    "synaptic_update": ("energy", False), "synaptic_update_time": ("time", False),
}
POWER_FIELDS = {"static": ("power", False), "typical": ("power", False), "tdp": ("power", False)}
CLOCK_FIELDS = {"core": ("frequency", False), "tick": ("frequency", False)}


@dataclass(frozen=True)
class CoreSpec:
    """Identical cores and their per-core limits (for mapping units onto cores)."""

    count: Quantity
    neurons_per_core: Quantity | None = None
    axons_per_core: Quantity | None = None          # input axons / fan-in slots per core
    synapses_per_core: Quantity | None = None
    synapse_bytes_per_core: Quantity | None = None  # memory reserved for synaptic state
    sram_bytes_per_core: Quantity | None = None     # all local memory of one core

    def __post_init__(self) -> None:
        _check_dims("cores", self, CORE_FIELDS)

    @property
    def n(self) -> int:
        return int(self.count.value_si)

    def limits(self) -> dict[str, float]:
        """The known per-core limits, keyed ``neurons``, ``axons``, ``synapses``, ``synapse_bytes``, ``sram_bytes``."""
        out = {}
        for name in CORE_FIELDS:
            q = getattr(self, name)
            if name != "count" and q is not None:
                out[name.removesuffix("_per_core")] = q.value_si
        return out

    def to_dict(self) -> dict:
        return _quantities_dict(self, CORE_FIELDS)


@dataclass(frozen=True)
class ComputeSpec:
    """Energy per arithmetic action in one native precision.

    ``scope == "op"``: the energy of the arithmetic alone; memory, interconnect and static power are
    separate terms. ``scope == "all_in"``: a whole-chip figure at an operating point (power / rate or
    energy / event); it already contains memory, routing and static power, which must not be added again.
    """

    precision: str
    scope: str
    mac: Quantity
    add: Quantity | None = None
    mult: Quantity | None = None
    peak_rate: Quantity | None = None   # whole chip, op/s (1 MAC = 2 ops)

    def __post_init__(self) -> None:
        _need(self.precision in PRECISION_BITS,
              f"unknown precision {self.precision!r}; valid: {', '.join(PRECISION_BITS)}")
        _need(self.scope in SCOPES, f"unknown scope {self.scope!r}; valid: {', '.join(SCOPES)}")
        _check_dims(f"compute.{self.precision}", self, COMPUTE_FIELDS)

    @property
    def peak_macs_per_s(self) -> float | None:
        return None if self.peak_rate is None else self.peak_rate.value_si / 2

    def to_dict(self) -> dict:
        return {"scope": self.scope, **_quantities_dict(self, COMPUTE_FIELDS)}


@dataclass(frozen=True)
class MemorySpec:
    """One memory level. ``read``/``write`` are energies per access of ``word`` bytes.

    ``on_core``: a core's local SRAM (its size is ``cores.sram_bytes_per_core``; bandwidth per core).
    ``on_chip``: shared on-chip memory such as an L2 (capacity and bandwidth for the chip).
    ``off_chip``: DRAM/HBM (capacity and bandwidth for the device).
    """

    level: str
    read: Quantity | None = None
    write: Quantity | None = None
    word: Quantity | None = None
    capacity: Quantity | None = None
    bandwidth: Quantity | None = None

    def __post_init__(self) -> None:
        _need(self.level in MEMORY_LEVELS, f"unknown memory level {self.level!r}; valid: {', '.join(MEMORY_LEVELS)}")
        _check_dims(f"memory.{self.level}", self, MEMORY_FIELDS)
        _need(any(getattr(self, n) is not None for n in MEMORY_FIELDS), f"memory.{self.level} is empty")
        _need(self.word is not None or (self.read is None and self.write is None),
              f"memory.{self.level}.word is required when read or write is given (energies are per word)")
        _need(self.level != "on_core" or self.capacity is None,
              "memory.on_core.capacity is not allowed: give the per-core size as cores.sram_bytes_per_core")

    @property
    def read_per_byte(self) -> float | None:
        """J per byte read, or None if unknown."""
        return None if self.read is None else self.read.value_si / self.word.value_si

    @property
    def write_per_byte(self) -> float | None:
        """J per byte written; falls back to the read energy when only that is published (most sources)."""
        q = self.write or self.read
        return None if q is None else q.value_si / self.word.value_si

    def to_dict(self) -> dict:
        return _quantities_dict(self, MEMORY_FIELDS)


@dataclass(frozen=True)
class InterconnectSpec:
    """Core-to-core communication: ``packet`` (J) delivers one packet/spike of ``packet_size`` bytes to a
    nearby core; ``hop`` (J) and ``hop_time`` (s) are added per router hop beyond that."""

    packet: Quantity | None = None
    packet_size: Quantity | None = None
    hop: Quantity | None = None
    hop_time: Quantity | None = None
    bandwidth: Quantity | None = None

    def __post_init__(self) -> None:
        _check_dims("interconnect", self, INTERCONNECT_FIELDS)
        _need(any(getattr(self, n) is not None for n in INTERCONNECT_FIELDS), "interconnect is empty")
        _need(self.packet is None or self.packet_size is not None,
              "interconnect.packet_size is required when interconnect.packet is given")

    @property
    def per_byte(self) -> float | None:
        return None if self.packet is None else self.packet.value_si / self.packet_size.value_si

    def to_dict(self) -> dict:
        return _quantities_dict(self, INTERCONNECT_FIELDS)


@dataclass(frozen=True)
class NeuroSpec:
    """Event costs of a neuromorphic core (energies in J, times in s)."""

    synaptic_op: Quantity | None = None          # one spike through one synapse (weight accumulate)
    synaptic_op_time: Quantity | None = None
    neuron_update: Quantity | None = None        # one neuron state update in a timestep (active)
    neuron_update_idle: Quantity | None = None   # ... for a neuron that receives nothing
    neuron_update_time: Quantity | None = None
    synaptic_update: Quantity | None = None      # one on-chip learning update of one synapse
    synaptic_update_time: Quantity | None = None

    def __post_init__(self) -> None:
        _check_dims("neuro", self, NEURO_FIELDS)
        _need(any(getattr(self, n) is not None for n in NEURO_FIELDS), "neuro is empty")

    def to_dict(self) -> dict:
        return _quantities_dict(self, NEURO_FIELDS)


@dataclass(frozen=True)
class PowerSpec:
    static: Quantity | None = None    # leakage/idle power, charged for the whole run time
    typical: Quantity | None = None   # a published operating-point power (informational)
    tdp: Quantity | None = None       # thermal design power (an upper bound)

    def __post_init__(self) -> None:
        _check_dims("power", self, POWER_FIELDS)
        _need(any(getattr(self, n) is not None for n in POWER_FIELDS), "power is empty")

    def to_dict(self) -> dict:
        return _quantities_dict(self, POWER_FIELDS)


@dataclass(frozen=True)
class ClockSpec:
    core: Quantity | None = None   # core clock
    tick: Quantity | None = None   # neuromorphic timestep rate (e.g. 1 kHz real time)

    def __post_init__(self) -> None:
        _check_dims("clock", self, CLOCK_FIELDS)
        _need(any(getattr(self, n) is not None for n in CLOCK_FIELDS), "clock is empty")

    def to_dict(self) -> dict:
        return _quantities_dict(self, CLOCK_FIELDS)


@dataclass(frozen=True)
class HardwareProfile:
    """A validated hardware target. Build with :func:`load_profile`; ``origin`` is where it came from."""

    name: str
    description: str
    kind: str
    supports_training: bool
    on_chip_learning: bool
    precisions: tuple[str, ...]
    compute: tuple[ComputeSpec, ...]
    cores: CoreSpec | None = None
    memory: tuple[MemorySpec, ...] = ()
    interconnect: InterconnectSpec | None = None
    neuro: NeuroSpec | None = None
    power: PowerSpec | None = None
    clock: ClockSpec | None = None
    process: str = ""
    training_note: str = ""
    notes: tuple[str, ...] = ()
    origin: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        _need(isinstance(self.name, str) and bool(_NAME_RE.match(self.name)),
              f"name must be lower-case letters, digits, '-' or '_', got {self.name!r}")
        _need(isinstance(self.description, str) and bool(self.description.strip()), "description must be non-empty")
        _need(self.kind in KINDS, f"unknown kind {self.kind!r}; valid: {', '.join(KINDS)}")
        _need(isinstance(self.supports_training, bool), "supports_training must be true or false")
        _need(isinstance(self.on_chip_learning, bool), "on_chip_learning must be true or false")
        _need(self.supports_training or not self.on_chip_learning,
              "on_chip_learning = true needs supports_training = true")
        _need(self.supports_training or bool(self.training_note.strip()),
              "training_note is required when supports_training = false (say why training cannot run)")
        precisions = tuple(self.precisions)
        _need(len(precisions) > 0, "precisions must list at least one native format")
        for p in precisions:
            _need(p in PRECISION_BITS, f"unknown precision {p!r}; valid: {', '.join(PRECISION_BITS)}")
        _need(len(set(precisions)) == len(precisions), "precisions lists a format twice")
        compute = tuple(self.compute)
        got = [c.precision for c in compute]
        _need(sorted(got) == sorted(precisions),
              f"compute tables ({', '.join(got) or 'none'}) must match precisions ({', '.join(precisions)})")
        memory = tuple(self.memory)
        levels = [m.level for m in memory]
        _need(len(set(levels)) == len(levels), "a memory level is given twice")
        _need(self.kind != "neuromorphic" or self.cores is not None, "a neuromorphic target needs [cores]")
        _need(self.kind != "reference" or self.cores is None, "a reference target has no [cores]")
        object.__setattr__(self, "precisions", precisions)
        object.__setattr__(self, "compute", compute)
        object.__setattr__(self, "memory", tuple(sorted(memory, key=lambda m: MEMORY_LEVELS.index(m.level))))
        object.__setattr__(self, "notes", tuple(self.notes))

    # ---- look-ups the profiler uses

    @property
    def n_cores(self) -> int:
        return 1 if self.cores is None else self.cores.n

    def nearest_precision(self, precision: str) -> str:
        """The native format a run in ``precision`` maps to: itself if native, else the same family
        (float/int) first, then the closest bit width, ties to the wider format."""
        _need(precision in PRECISION_BITS, f"unknown precision {precision!r}; valid: {', '.join(PRECISION_BITS)}")
        if precision in self.precisions:
            return precision
        bits = PRECISION_BITS[precision]
        is_float = precision in FLOAT_PRECISIONS

        def cost(p: str) -> tuple:
            return ((p in FLOAT_PRECISIONS) != is_float, abs(PRECISION_BITS[p] - bits), -PRECISION_BITS[p])

        return min(self.precisions, key=cost)

    def compute_for(self, precision: str) -> ComputeSpec:
        """The compute table for ``precision`` (mapped with :meth:`nearest_precision`)."""
        native = self.nearest_precision(precision)
        return next(c for c in self.compute if c.precision == native)

    def mac_energy(self, precision: str) -> float:
        """J per MAC in ``precision`` (mapped to the nearest native format)."""
        return self.compute_for(precision).mac.value_si

    def memory_level(self, level: str) -> MemorySpec | None:
        _need(level in MEMORY_LEVELS, f"unknown memory level {level!r}; valid: {', '.join(MEMORY_LEVELS)}")
        return next((m for m in self.memory if m.level == level), None)

    @property
    def on_chip_sram_bytes(self) -> float | None:
        """All on-chip SRAM: cores × sram_bytes_per_core plus the on_chip level, if either is known."""
        total, known = 0.0, False
        if self.cores is not None and self.cores.sram_bytes_per_core is not None:
            total += self.cores.n * self.cores.sram_bytes_per_core.value_si
            known = True
        chip = self.memory_level("on_chip")
        if chip is not None and chip.capacity is not None:
            total += chip.capacity.value_si
            known = True
        return total if known else None

    def quantities(self) -> Iterator[tuple[str, Quantity]]:
        """Every number with its dotted key, e.g. ``("compute.int8.mac", Quantity(...))``."""
        def walk(prefix: str, d: dict) -> Iterator[tuple[str, Quantity]]:
            for key, value in d.items():
                if isinstance(value, Quantity):
                    yield f"{prefix}{key}", value

        if self.cores is not None:
            yield from walk("cores.", vars(self.cores))
        for c in self.compute:
            yield from walk(f"compute.{c.precision}.", vars(c))
        for m in self.memory:
            yield from walk(f"memory.{m.level}.", vars(m))
        for section in ("interconnect", "neuro", "power", "clock"):
            spec = getattr(self, section)
            if spec is not None:
                yield from walk(f"{section}.", vars(spec))

    def unknown_fields(self) -> list[str]:
        """Keys the profiler would use that this profile does not give (so the estimate leaves them out).

        A reference target is an energy table only, so throughput, clock and static power are not asked of it.
        """
        reference = self.kind == "reference"
        missing = [] if reference else [f"compute.{c.precision}.peak_rate" for c in self.compute if c.peak_rate is None]
        all_in = all(c.scope == "all_in" for c in self.compute)
        if not all_in:
            on_core = self.memory_level("on_core")
            if on_core is None or on_core.read is None:
                missing.append("memory.on_core.read")
            off_chip = self.memory_level("off_chip")
            if off_chip is not None and off_chip.read is None:
                missing.append("memory.off_chip.read")
            if self.n_cores > 1 and (self.interconnect is None or self.interconnect.packet is None):
                missing.append("interconnect.packet")
            if not reference and (self.power is None or self.power.static is None):
                missing.append("power.static")
        if self.kind not in ("neuromorphic", "reference") and (self.clock is None or self.clock.core is None):
            missing.append("clock.core")
        return missing

    # ---- serialisation

    def to_dict(self) -> dict:
        """Plain JSON-serialisable dict: the file's structure, each number with value/unit as given,
        value_si/unit_si, source, basis and note. :meth:`from_dict` reads it back."""
        d: dict[str, Any] = {
            "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "name": self.name,
            "description": self.description, "kind": self.kind,
            "on_chip_learning": self.on_chip_learning, "supports_training": self.supports_training,
            "precisions": list(self.precisions),
        }
        if self.process:
            d["process"] = self.process
        if self.training_note:
            d["training_note"] = self.training_note
        if self.notes:
            d["notes"] = list(self.notes)
        if self.cores is not None:
            d["cores"] = self.cores.to_dict()
        d["compute"] = {c.precision: c.to_dict() for c in self.compute}
        if self.memory:
            d["memory"] = {m.level: m.to_dict() for m in self.memory}
        for section in ("interconnect", "neuro", "power", "clock"):
            spec = getattr(self, section)
            if spec is not None:
                d[section] = spec.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: dict, origin: str = "<dict>") -> "HardwareProfile":
        """Validate a dict shaped like the TOML file (or like :meth:`to_dict`'s output)."""
        return parse_profile(_strip_si(data), origin)


def _strip_si(value: Any) -> Any:
    """Drop the value_si/unit_si keys that to_dict adds, so its output parses like a file."""
    if isinstance(value, dict):
        return {k: _strip_si(v) for k, v in value.items() if k not in ("value_si", "unit_si")}
    return value


# --------------------------------------------------------------------------------------------------
# parsing

TOP_KEYS_REQUIRED = ("schema", "schema_version", "name", "description", "kind", "on_chip_learning",
                     "supports_training", "precisions", "compute")
TOP_KEYS_OPTIONAL = ("process", "training_note", "notes", "cores", "memory", "interconnect", "neuro",
                     "power", "clock")
QUANTITY_KEYS_REQUIRED = ("value", "unit", "source", "basis")
QUANTITY_KEYS_OPTIONAL = ("note",)


class _Ctx:
    """Formats errors as '<origin>: <key>: <message>'."""

    def __init__(self, origin: str):
        self.origin = origin

    def fail(self, key: str, msg: str) -> HardwareProfileError:
        return HardwareProfileError(f"{self.origin}: {key}: {msg}" if key else f"{self.origin}: {msg}")

    def check_keys(self, key: str, table: dict, required: tuple[str, ...], optional: tuple[str, ...]) -> None:
        where = f"{key}." if key else ""
        valid = ", ".join((*required, *optional))
        for k in table:
            if k not in required and k not in optional:
                raise self.fail(f"{where}{k}", f"unknown key; valid keys{' in [' + key + ']' if key else ''}: {valid}")
        for k in required:
            if k not in table:
                raise self.fail(f"{where}{k}", "missing required field")

    def table(self, key: str, value: Any) -> dict:
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a table, got {_type_name(value)}")
        return value

    def string(self, key: str, value: Any, *, empty_ok: bool = False) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"expected a string, got {_type_name(value)}")
        if not empty_ok and not value.strip():
            raise self.fail(key, "must not be empty")
        return value

    def boolean(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {_type_name(value)}")
        return value

    def choice(self, key: str, value: Any, valid: tuple[str, ...]) -> str:
        self.string(key, value)
        if value not in valid:
            raise self.fail(key, f"unknown value {value!r}; valid: {', '.join(valid)}")
        return value

    def quantity(self, key: str, value: Any, dimension: str) -> Quantity:
        si, table = UNITS[dimension]
        if not isinstance(value, dict):
            raise self.fail(key, f"expected an inline table {{ value, unit, source, basis }} with {_a(dimension)} "
                                 f"unit, got {_type_name(value)}")
        self.check_keys(key, value, QUANTITY_KEYS_REQUIRED, QUANTITY_KEYS_OPTIONAL)
        number = value["value"]
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise self.fail(f"{key}.value", f"expected a number, got {_type_name(number)}")
        if not math.isfinite(number) or number <= 0:
            raise self.fail(f"{key}.value", f"must be finite and > 0, got {number}")
        unit = self.string(f"{key}.unit", value["unit"])
        if unit not in table:
            other = _UNIT_DIMENSION.get(unit)
            what = f"{unit!r} is {_a(other)} unit" if other else f"unknown unit {unit!r}"
            same_letters = [u for u in table if u.lower() == unit.lower()]
            hint = f" (units are case-sensitive: did you mean {same_letters[0]!r}?)" if same_letters else ""
            raise self.fail(f"{key}.unit", f"{what}, but {key} needs {_a(dimension)} unit{hint}; "
                                           f"accepted: {', '.join(table)}")
        if dimension == "count" and not float(number).is_integer():
            raise self.fail(f"{key}.value", f"a count must be a whole number, got {number}")
        source = self.string(f"{key}.source", value["source"])
        basis = self.choice(f"{key}.basis", value["basis"], BASES)
        note = self.string(f"{key}.note", value.get("note", ""), empty_ok=True)
        if basis in BASES_NEEDING_NOTE and not note.strip():
            raise self.fail(f"{key}.note", f"basis {basis!r} needs a note saying how the number was derived "
                                           "or why it was assumed")
        return Quantity(_to_si(number, table[unit]), si, source, basis, note, given_value=number, given_unit=unit)

    def section(self, key: str, value: Any, spec: dict[str, tuple[str, bool]],
                extra: tuple[str, ...] = ()) -> dict[str, Any]:
        tbl = self.table(key, value)
        required = tuple(n for n, (_, req) in spec.items() if req)
        optional = tuple(n for n, (_, req) in spec.items() if not req) + extra
        self.check_keys(key, tbl, required, optional)
        if not any(n in tbl for n in spec):
            raise self.fail(key, f"empty section; give at least one of: {', '.join(spec)}")
        return {n: self.quantity(f"{key}.{n}", tbl[n], dim) for n, (dim, _) in spec.items() if n in tbl}


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def parse_profile(data: dict, origin: str) -> HardwareProfile:
    """Validate parsed TOML (a dict) into a :class:`HardwareProfile`; errors name ``origin`` and the key."""
    ctx = _Ctx(origin)
    if not isinstance(data, dict):
        raise ctx.fail("", "a profile must be a table")
    # schema and version first, so a future file fails on its version, not on a new key
    for k in ("schema", "schema_version"):
        if k not in data:
            raise ctx.fail(k, "missing required field")
    if data["schema"] != SCHEMA:
        raise ctx.fail("schema", f"expected {SCHEMA!r}, got {data['schema']!r}")
    version = data["schema_version"]
    if isinstance(version, bool) or not isinstance(version, int) or version != SCHEMA_VERSION:
        raise ctx.fail("schema_version", f"unsupported version {version!r}; this ffneuro reads {SCHEMA_VERSION}")
    ctx.check_keys("", data, TOP_KEYS_REQUIRED, TOP_KEYS_OPTIONAL)

    name = ctx.string("name", data["name"])
    if not _NAME_RE.match(name):
        raise ctx.fail("name", f"must be lower-case letters, digits, '-' or '_', got {name!r}")
    description = ctx.string("description", data["description"])
    kind = ctx.choice("kind", data["kind"], KINDS)
    on_chip_learning = ctx.boolean("on_chip_learning", data["on_chip_learning"])
    supports_training = ctx.boolean("supports_training", data["supports_training"])
    process = ctx.string("process", data.get("process", ""), empty_ok=True)
    training_note = ctx.string("training_note", data.get("training_note", ""), empty_ok=True)
    if on_chip_learning and not supports_training:
        raise ctx.fail("on_chip_learning", "is true but supports_training is false")
    if not supports_training and not training_note.strip():
        raise ctx.fail("training_note", "required when supports_training = false (say why training cannot run)")
    notes = data.get("notes", [])
    if not isinstance(notes, list):
        raise ctx.fail("notes", f"expected an array of strings, got {_type_name(notes)}")
    notes = tuple(ctx.string(f"notes[{i}]", n) for i, n in enumerate(notes))

    precisions = data["precisions"]
    if not isinstance(precisions, list) or not precisions:
        raise ctx.fail("precisions", "expected a non-empty array of formats, e.g. [\"int8\"]")
    for i, p in enumerate(precisions):
        ctx.choice(f"precisions[{i}]", p, tuple(PRECISION_BITS))
    if len(set(precisions)) != len(precisions):
        raise ctx.fail("precisions", "lists a format twice")

    compute_tbl = ctx.table("compute", data["compute"])
    compute = []
    for p, tbl in compute_tbl.items():
        key = f"compute.{p}"
        if p not in PRECISION_BITS:
            raise ctx.fail(key, f"unknown precision; valid: {', '.join(PRECISION_BITS)}")
        if p not in precisions:
            raise ctx.fail(key, f"precision {p!r} is not listed in precisions")
        tbl = ctx.table(key, tbl)
        if "scope" not in tbl:
            raise ctx.fail(f"{key}.scope", f"missing required field ({' or '.join(repr(s) for s in SCOPES)})")
        scope = ctx.choice(f"{key}.scope", tbl["scope"], SCOPES)
        fields_ = ctx.section(key, tbl, COMPUTE_FIELDS, extra=("scope",))
        compute.append(ComputeSpec(p, scope, **fields_))
    for p in precisions:
        if p not in compute_tbl:
            raise ctx.fail(f"compute.{p}", "missing required table (every format in precisions needs one)")

    cores = None
    if "cores" in data:
        cores = CoreSpec(**ctx.section("cores", data["cores"], CORE_FIELDS))
        if cores.count.value_si < 1:
            raise ctx.fail("cores.count", "must be >= 1")
    if kind == "neuromorphic" and cores is None:
        raise ctx.fail("cores", "missing required table for a neuromorphic target (needed for locality)")
    if kind == "reference" and cores is not None:
        raise ctx.fail("cores", "a reference target has no cores")

    memory = []
    if "memory" in data:
        mem_tbl = ctx.table("memory", data["memory"])
        for level, tbl in mem_tbl.items():
            key = f"memory.{level}"
            if level not in MEMORY_LEVELS:
                raise ctx.fail(key, f"unknown memory level; valid: {', '.join(MEMORY_LEVELS)}")
            spec = {k: v for k, v in MEMORY_FIELDS.items() if not (level == "on_core" and k == "capacity")}
            values = ctx.section(key, tbl, spec)
            if ("read" in values or "write" in values) and "word" not in values:
                raise ctx.fail(f"{key}.word", "missing: needed when read or write is given (energies are per word)")
            memory.append(MemorySpec(level, **values))

    interconnect = None
    if "interconnect" in data:
        values = ctx.section("interconnect", data["interconnect"], INTERCONNECT_FIELDS)
        if "packet" in values and "packet_size" not in values:
            raise ctx.fail("interconnect.packet_size", "missing: needed when interconnect.packet is given")
        interconnect = InterconnectSpec(**values)
    neuro = NeuroSpec(**ctx.section("neuro", data["neuro"], NEURO_FIELDS)) if "neuro" in data else None
    power = PowerSpec(**ctx.section("power", data["power"], POWER_FIELDS)) if "power" in data else None
    clock = ClockSpec(**ctx.section("clock", data["clock"], CLOCK_FIELDS)) if "clock" in data else None

    try:
        return HardwareProfile(
            name=name, description=description, kind=kind, supports_training=supports_training,
            on_chip_learning=on_chip_learning, precisions=tuple(precisions), compute=tuple(compute),
            cores=cores, memory=tuple(memory), interconnect=interconnect, neuro=neuro, power=power,
            clock=clock, process=process, training_note=training_note, notes=notes, origin=origin,
        )
    except HardwareProfileError as e:  # cross-field checks not caught above
        raise ctx.fail("", str(e)) from None


def parse_toml(text: str | bytes, origin: str) -> HardwareProfile:
    """Parse TOML text; a syntax error names ``origin`` and the line."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise HardwareProfileError(f"{origin}: not UTF-8 text ({e})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise HardwareProfileError(f"{origin}: TOML syntax error: {e}") from None
    return parse_profile(data, origin)


# --------------------------------------------------------------------------------------------------
# loading


def shipped_profiles() -> list[str]:
    """Names of the profiles that ship with ffneuro (the ``*.toml`` files in ``ffneuro.hw_profiles``)."""
    root = resources.files(PACKAGE)
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml") and p.is_file())


@lru_cache(maxsize=None)
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
    """A shipped profile by name (``"loihi"``) or any profile by path (``"my/chip.toml"``)."""
    if _looks_like_path(name_or_path):
        return validate_file(name_or_path)
    if not isinstance(name_or_path, str):
        raise HardwareProfileError(f"expected a profile name or path, got {type(name_or_path).__name__}")
    names = shipped_profiles()
    if name_or_path not in names:
        raise UnknownProfileError(f"unknown hardware profile {name_or_path!r}; shipped: {', '.join(names)} "
                                  "(or give a path to a .toml file)")
    return _load_shipped(name_or_path)


__all__ = [
    "SCHEMA", "SCHEMA_VERSION", "KINDS", "BASES", "SCOPES", "MEMORY_LEVELS", "PRECISION_BITS", "UNITS",
    "HardwareProfileError", "UnknownProfileError",
    "Quantity", "CoreSpec", "ComputeSpec", "MemorySpec", "InterconnectSpec", "NeuroSpec", "PowerSpec",
    "ClockSpec", "HardwareProfile",
    "load_profile", "validate_file", "shipped_profiles", "parse_profile", "parse_toml",
]
