"""The hardware profile schema: a validated target as typed, frozen dataclasses.

A profile describes a target in the Accelergy style: *actions* with an energy each (a MAC in some
precision, a read of one memory word, a packet on the interconnect, a neuron update), plus the
capacities, rates and powers needed for latency and for mapping units onto cores. The profiler turns
op and memory counts into ``energy = Σ count × energy per action`` (+ static power × time), latency
from throughput or clock, and locality from the per-core limits. The schema is documented in
``docs/hw-profiles.md``.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import _a, _need
from .quantities import UNITS, Fact, Quantity

SCHEMA = "ffneuro.hw"
SCHEMA_VERSION = 1

KINDS = ("neuromorphic", "gpu", "cpu", "mcu", "reference")
SCOPES = ("op", "all_in")
MEMORY_LEVELS = ("on_core", "on_chip", "off_chip")

# Native numeric formats and their width in bits; `nearest_precision` maps a run's precision onto these.
PRECISION_BITS = {"fp64": 64, "fp32": 32, "tf32": 19, "bf16": 16, "fp16": 16, "fp8": 8,
                  "int32": 32, "int16": 16, "int8": 8, "int4": 4, "binary": 1}
FLOAT_PRECISIONS = frozenset({"fp64", "fp32", "tf32", "bf16", "fp16", "fp8"})

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
# a software stack's name may carry a version ("st-v1.2", "krai-xcubeai7.3-v1.1")
_STACK_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


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
POWER_FIELDS = {"static": ("power", False), "dynamic": ("power", False), "typical": ("power", False),
                "tdp": ("power", False)}
VOLTAGE_FIELDS = {"core": ("voltage", True)}
VOLTAGE_LEVEL_FIELDS = {"max_clock": ("frequency", True), "core": ("voltage", True)}
ROOFLINE_KERNELS = ("conv", "depthwise", "pointwise", "linear", "pool")
ROOFLINE_KERNEL_FIELDS = {"macs_per_cycle": ("macs_per_cycle", True), "overhead": ("cycles", False)}
ROOFLINE_MEMORIES = ("weights", "activations")
ROOFLINE_MEMORY_FIELDS = {"bytes_per_cycle": ("bytes_per_cycle", False), "bandwidth": ("bandwidth", False),
                          "access_bytes": ("bytes", False), "access_time": ("time", False)}
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
    """Powers at the profile's clock and voltage. ``static`` + ``dynamic`` split a supply power for
    scaling to another operating point (dynamic ∝ f·V², static ∝ V); on a target with a
    ``[roofline]`` the two together are the power drawn while running (energy = power × latency)."""

    static: Quantity | None = None    # leakage/idle power, charged for the whole run time
    dynamic: Quantity | None = None   # switching power while running, at clock.core and voltage.core
    typical: Quantity | None = None   # a published operating-point power (informational)
    tdp: Quantity | None = None       # thermal design power (an upper bound)

    def __post_init__(self) -> None:
        _check_dims("power", self, POWER_FIELDS)
        _need(any(getattr(self, n) is not None for n in POWER_FIELDS), "power is empty")

    def to_dict(self) -> dict:
        return _quantities_dict(self, POWER_FIELDS)

    @property
    def running_w(self) -> float | None:
        """static + dynamic (W), the supply power while running; None unless ``dynamic`` is given."""
        if self.dynamic is None:
            return None
        return self.dynamic.value_si + (0.0 if self.static is None else self.static.value_si)


@dataclass(frozen=True)
class VoltageLevel:
    """One voltage-scaling level: the core voltage the chip needs up to ``max_clock``."""

    max_clock: Quantity
    core: Quantity

    def __post_init__(self) -> None:
        _check_dims("voltage.levels", self, VOLTAGE_LEVEL_FIELDS)

    def to_dict(self) -> dict:
        return _quantities_dict(self, VOLTAGE_LEVEL_FIELDS)


@dataclass(frozen=True)
class VoltageSpec:
    """The core voltage at the profile's clock, and the voltage-scaling levels (lowest voltage first)
    an operating point picks from (``NAME@CLOCK``: the lowest level whose max_clock reaches CLOCK)."""

    core: Quantity
    levels: tuple[VoltageLevel, ...] = ()

    def __post_init__(self) -> None:
        _check_dims("voltage", self, VOLTAGE_FIELDS)
        levels = tuple(sorted(self.levels, key=lambda lv: lv.max_clock.value_si))
        _need(len({lv.max_clock.value_si for lv in levels}) == len(levels), "voltage.levels: a max_clock is given twice")
        object.__setattr__(self, "levels", levels)

    def level_for(self, clock_hz: float) -> VoltageLevel | None:
        """The lowest level that runs ``clock_hz``; None if no level reaches it (or none is given)."""
        return next((lv for lv in self.levels if clock_hz <= lv.max_clock.value_si * (1 + 1e-12)), None)

    def to_dict(self) -> dict:
        d = _quantities_dict(self, VOLTAGE_FIELDS)
        if self.levels:
            d["levels"] = [lv.to_dict() for lv in self.levels]
        return d


@dataclass(frozen=True)
class RooflineKernel:
    """What the target's ``precision`` kernels of one kind reach (ffneuro.profiler.roofline)."""

    precision: str
    kind: str
    macs_per_cycle: Quantity
    overhead: Quantity | None = None

    def __post_init__(self) -> None:
        _need(self.kind in ROOFLINE_KERNELS, f"roofline: unknown kernel kind {self.kind!r}; valid: {', '.join(ROOFLINE_KERNELS)}")
        _check_dims(f"roofline.{self.precision}.{self.kind}", self, ROOFLINE_KERNEL_FIELDS)

    def to_dict(self) -> dict:
        return _quantities_dict(self, ROOFLINE_KERNEL_FIELDS)


@dataclass(frozen=True)
class RooflineMemory:
    """Where weights (``weights``) or activations (``activations``) are read from: ``bytes_per_cycle``,
    ``bandwidth`` (B/s), or ``access_bytes`` per ``access_time`` (flash; wait states follow the clock)."""

    role: str
    bytes_per_cycle: Quantity | None = None
    bandwidth: Quantity | None = None
    access_bytes: Quantity | None = None
    access_time: Quantity | None = None

    def __post_init__(self) -> None:
        _need(self.role in ROOFLINE_MEMORIES, f"roofline: unknown memory {self.role!r}; valid: {', '.join(ROOFLINE_MEMORIES)}")
        _check_dims(f"roofline.{self.role}", self, ROOFLINE_MEMORY_FIELDS)
        forms = [self.bytes_per_cycle is not None, self.bandwidth is not None,
                 self.access_bytes is not None or self.access_time is not None]
        _need(sum(forms) == 1, f"roofline.{self.role}: give exactly one of bytes_per_cycle, bandwidth, or "
                               "access_bytes with access_time")
        _need(not forms[2] or (self.access_bytes is not None and self.access_time is not None),
              f"roofline.{self.role}: access_bytes and access_time go together")

    def to_dict(self) -> dict:
        return _quantities_dict(self, ROOFLINE_MEMORY_FIELDS)


@dataclass(frozen=True)
class RooflineSpec:
    """A per-layer roofline (docs/hw-profiles.md): kernel ceilings by precision and kind, and the
    memories weights and activations stream from."""

    weights: RooflineMemory
    activations: RooflineMemory
    kernels: tuple[RooflineKernel, ...]

    def __post_init__(self) -> None:
        kernels = tuple(self.kernels)
        keys = [(k.precision, k.kind) for k in kernels]
        _need(len(set(keys)) == len(keys), "roofline: a kernel is given twice")
        _need(len(kernels) > 0, "roofline: give at least one kernel table, e.g. [roofline.int8.conv]")
        object.__setattr__(self, "kernels", kernels)

    @property
    def precisions(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(k.precision for k in self.kernels))

    def for_precision(self, precision: str) -> tuple[RooflineKernel, ...]:
        return tuple(k for k in self.kernels if k.precision == precision)

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"weights": self.weights.to_dict(), "activations": self.activations.to_dict()}
        for k in self.kernels:
            d.setdefault(k.precision, {})[k.kind] = k.to_dict()
        return d


@dataclass(frozen=True)
class ClockSpec:
    core: Quantity | None = None   # core clock
    tick: Quantity | None = None   # neuromorphic timestep rate (e.g. 1 kHz real time)

    def __post_init__(self) -> None:
        _check_dims("clock", self, CLOCK_FIELDS)
        _need(any(getattr(self, n) is not None for n in CLOCK_FIELDS), "clock is empty")

    def to_dict(self) -> dict:
        return _quantities_dict(self, CLOCK_FIELDS)


# choices a profile states as facts: key -> allowed values
CONV_WEIGHTS = ("shared", "unrolled")        # a conv kernel stored once per core, or once per neuron
AXON_MODES = ("population", "per_input")    # one input axon per input position (channels as atoms), or per element
SPREAD_MODES = ("none", "idle_cores")       # may a layer use cores its memory does not need?
LEARNING_RULES = ("trace",)                 # on-chip rules a learning engine runs
EXECUTED_OPS = ("conv", "linear")
MAPPING_FIELDS = {"kernel_copies": ("count", False)}
MAPPING_FACTS = {"conv_weights": (CONV_WEIGHTS, True), "axons": (AXON_MODES, False), "spread": (SPREAD_MODES, False)}
LEARNING_FIELDS = {"synapse_state": ("bytes", False), "neuron_state": ("bytes", False)}
PARTITIONER_RULES = ("lava", "nxtf")        # the toolchain whose partitioner the mapping follows
PARTITIONER_FACTS = {"rule": (PARTITIONER_RULES, True)}
PARTITIONER_FIELDS = {"neurons_per_core": ("count", False), "synapse_words_per_core": ("count", False),
                      "dense_synapses_per_1000_words": ("count", False), "conv_synapses_per_1000_words": ("count", False),
                      "output_axons_per_core": ("count", False), "synapses_per_entry": ("count", False),
                      "synapse_words_per_axon": ("count", False), "dendritic_accumulator_slots": ("count", False)}
# per-timestep and per-inference costs of a software stack (the host and embedded-CPU work around the cores)
# (neuromorphic targets), and of an MCU's inference library: its kernels' speed against the profile's
# [roofline] ceilings, its per-layer call overhead, and the supply its submission ran at
STACK_FIELDS = {"step_time": ("time", False), "step_time_per_input_core": ("time", False),
                "step_power": ("power", False), "inference_time": ("time", False),
                "inference_energy": ("energy", False),
                "dense_kernel_speed": ("factor", False), "separable_kernel_speed": ("factor", False),
                "layer_overhead": ("cycles", False), "supply_power": ("power", False),
                "supply_voltage": ("voltage", False)}
# which roofline kernel kinds each stack speed multiplies
STACK_KERNEL_SPEEDS = {"dense_kernel_speed": ("conv", "linear"), "separable_kernel_speed": ("depthwise", "pointwise")}
LEARNING_FACTS = {"rule": (LEARNING_RULES, True)}


def _check_facts(owner: str, obj: Any, spec: dict[str, tuple[tuple[str, ...], bool]]) -> None:
    for name, (choices, required) in spec.items():
        f = getattr(obj, name)
        if f is None:
            _need(not required, f"{owner}.{name} is required")
            continue
        _need(isinstance(f, Fact), f"{owner}.{name} must be a Fact, got {type(f).__name__}")
        _need(f.value in choices, f"{owner}.{name}: unknown value {f.value!r}; valid: {', '.join(choices)}")


@dataclass(frozen=True)
class MappingSpec:
    """How a network is laid out on the cores (neuromorphic targets; docs/hw-profiles.md).

    ``conv_weights``: ``shared`` (a conv kernel is stored once per core that holds neurons of the layer,
    and input axons point at it) or ``unrolled`` (every neuron stores its own fan-in). ``kernel_copies``:
    copies of a shared kernel slice one core needs (default 1). ``axons``: ``population`` (one input
    axon per input position, the channel carried with the spike) or ``per_input`` (one per input element).
    ``spread``: ``idle_cores`` lets a layer use cores of the chips in use that its memory does not need.
    """

    conv_weights: Fact
    kernel_copies: Quantity | None = None
    axons: Fact | None = None
    spread: Fact | None = None

    def __post_init__(self) -> None:
        _check_facts("mapping", self, MAPPING_FACTS)
        _check_dims("mapping", self, MAPPING_FIELDS)

    @property
    def shared(self) -> bool:
        return self.conv_weights.value == "shared"

    @property
    def copies(self) -> int:
        return 1 if self.kernel_copies is None else int(self.kernel_copies.value_si)

    @property
    def population_axons(self) -> bool:
        return self.axons is not None and self.axons.value == "population"

    @property
    def spreads(self) -> bool:
        return self.spread is not None and self.spread.value == "idle_cores"

    def to_dict(self) -> dict:
        d = {n: getattr(self, n).to_dict() for n in MAPPING_FACTS if getattr(self, n) is not None}
        return {**d, **_quantities_dict(self, MAPPING_FIELDS)}


@dataclass(frozen=True)
class LearningSpec:
    """What a chip's on-chip learning rule stores and does (targets with ``on_chip_learning``).

    ``rule``: ``trace`` (a local rule computed from spike traces: per synapse the weight and
    ``synapse_state`` bytes; per neuron ``neuron_state`` bytes of traces; no optimiser moments).
    """

    rule: Fact
    synapse_state: Quantity | None = None
    neuron_state: Quantity | None = None

    def __post_init__(self) -> None:
        _check_facts("learning", self, LEARNING_FACTS)
        _check_dims("learning", self, LEARNING_FIELDS)

    @property
    def synapse_state_bytes(self) -> float:
        return 0.0 if self.synapse_state is None else self.synapse_state.value_si

    @property
    def neuron_state_bytes(self) -> float:
        return 0.0 if self.neuron_state is None else self.neuron_state.value_si

    def to_dict(self) -> dict:
        return {"rule": self.rule.to_dict(), **_quantities_dict(self, LEARNING_FIELDS)}


@dataclass(frozen=True)
class PartitionerSpec:
    """The limits a toolchain's partitioner applies when it cuts layers into cores (docs/hw-profiles.md).

    ``rule = "lava"`` (Loihi 2, Lava/netx): a conv layer is cut along its output width into slices of a
    power-of-two number of columns (the whole height and all channels), the widest slice that keeps
    ``neurons_per_core`` and ``synapse_words_per_core`` (weights packed ``conv_synapses_per_1000_words`` a word);
    a dense layer into groups of a power-of-two number of neurons whose fan-in fits the synapse words
    (``dense_synapses_per_1000_words``). ``rule = "nxtf"`` (Loihi, NxTF): the core limits of ``[cores]`` plus
    the per-core synapse words, output-axon entries and synapses per entry given here. A layer whose synapses
    carry delays of ``d`` bits keeps at most ``dendritic_accumulator_slots`` / 2**d compartments on a core (each
    compartment needs an accumulator slot per delay value; NxSDK refuses more)."""

    rule: Fact
    neurons_per_core: Quantity | None = None
    synapse_words_per_core: Quantity | None = None
    dense_synapses_per_1000_words: Quantity | None = None
    conv_synapses_per_1000_words: Quantity | None = None
    output_axons_per_core: Quantity | None = None
    synapses_per_entry: Quantity | None = None
    synapse_words_per_axon: Quantity | None = None
    dendritic_accumulator_slots: Quantity | None = None

    def __post_init__(self) -> None:
        _check_facts("partitioner", self, PARTITIONER_FACTS)
        _check_dims("partitioner", self, PARTITIONER_FIELDS)

    def get(self, name: str) -> float | None:
        q = getattr(self, name)
        return None if q is None else q.value_si

    def to_dict(self) -> dict:
        return {"rule": self.rule.to_dict(), **_quantities_dict(self, PARTITIONER_FIELDS)}


@dataclass(frozen=True)
class StackSpec:
    """A software stack: on a neuromorphic chip its costs around the neurocores (``step_time`` per
    timestep for barrier sync and the embedded CPUs' management, ``step_time_per_input_core`` per
    timestep for each core the host injects input spikes into, ``step_power`` drawn while that overhead
    runs, and per inference ``inference_time``/``inference_energy`` for host I/O); on an MCU its
    inference library (``dense_kernel_speed``/``separable_kernel_speed``: factors on the [roofline]
    ceilings of conv and linear / depthwise and pointwise kernels, ``layer_overhead`` cycles per layer
    call, and the ``supply_power``/``supply_voltage`` its measurement ran at). Applied with
    :func:`~.operating.with_stack`; a field left out keeps the profile's number. A stack with no numbers
    (it adds nothing, e.g. inputs preloaded on chip) must say why in ``source`` and ``note``."""

    name: str
    step_time: Quantity | None = None
    step_time_per_input_core: Quantity | None = None
    step_power: Quantity | None = None
    inference_time: Quantity | None = None
    inference_energy: Quantity | None = None
    dense_kernel_speed: Quantity | None = None
    separable_kernel_speed: Quantity | None = None
    layer_overhead: Quantity | None = None
    supply_power: Quantity | None = None
    supply_voltage: Quantity | None = None
    source: str = ""
    note: str = ""

    def __post_init__(self) -> None:
        _need(isinstance(self.name, str) and bool(_STACK_NAME_RE.match(self.name)),
              f"bad stack name {self.name!r}: lower-case letters, digits, '.', '-' or '_'")
        _check_dims(f"stacks.{self.name}", self, STACK_FIELDS)
        _need(any(getattr(self, n) is not None for n in STACK_FIELDS) or (self.source.strip() and self.note.strip()),
              f"stacks.{self.name}: give at least one of {', '.join(STACK_FIELDS)}, or (a stack that adds "
              "nothing) a source and a note saying why")

    def to_dict(self) -> dict:
        d = _quantities_dict(self, STACK_FIELDS)
        d.update({k: getattr(self, k) for k in ("source", "note") if getattr(self, k)})
        return d


@dataclass(frozen=True)
class ExecutedAs:
    """How a run in ``precision`` actually executes each op kind on this target (``conv``, ``linear``),
    e.g. PyTorch runs fp32 convolutions on TF32 tensor cores by default on Ampere and later GPUs."""

    precision: str
    ops: tuple[tuple[str, Fact], ...]

    def __post_init__(self) -> None:
        _need(self.precision in PRECISION_BITS,
              f"executed_as: unknown precision {self.precision!r}; valid: {', '.join(PRECISION_BITS)}")
        ops = tuple(self.ops)
        for op, fact in ops:
            _need(op in EXECUTED_OPS, f"executed_as.{self.precision}: unknown op {op!r}; valid: {', '.join(EXECUTED_OPS)}")
            _need(isinstance(fact, Fact) and fact.value in PRECISION_BITS,
                  f"executed_as.{self.precision}.{op}: unknown precision {getattr(fact, 'value', fact)!r}")
        object.__setattr__(self, "ops", ops)

    def get(self, op: str) -> Fact | None:
        return next((f for o, f in self.ops if o == op), None)

    def to_dict(self) -> dict:
        return {op: f.to_dict() for op, f in self.ops}


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
    mapping: MappingSpec | None = None
    learning: LearningSpec | None = None
    executed_as: tuple[ExecutedAs, ...] = ()
    voltage: VoltageSpec | None = None
    roofline: RooflineSpec | None = None
    partitioner: PartitionerSpec | None = None
    stacks: tuple[StackSpec, ...] = ()
    process: str = ""
    training_note: str = ""
    notes: tuple[str, ...] = ()
    origin: str = field(default="", compare=False)
    operating_point: str = field(default="", compare=False)   # "140MHz" for a profile loaded as NAME@CLOCK
    selected_stack: str = field(default="", compare=False)    # "bosch-v1.2" for a profile loaded as NAME:STACK

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
        # what the estimate of an event-driven chip rests on may not be left out silently
        _need(self.kind != "neuromorphic" or self.neuro is not None,
              "a neuromorphic target needs [neuro] (its synaptic-op and neuron-update costs)")
        _need(self.kind != "neuromorphic" or self.mapping is not None,
              "a neuromorphic target needs [mapping] (how conv weights are laid out on its cores)")
        _need(not self.on_chip_learning or self.learning is not None,
              "on_chip_learning = true needs [learning] (what the chip's learning rule stores)")
        executed = tuple(self.executed_as)
        for e in executed:
            _need(e.precision in self.precisions, f"executed_as.{e.precision}: not one of precisions")
            for op, f in e.ops:
                _need(f.value in self.precisions, f"executed_as.{e.precision}.{op}: {f.value} is not one of precisions")
        if self.roofline is not None:
            for p in self.roofline.precisions:
                _need(p in precisions, f"roofline.{p}: not one of precisions")
            kinds = {k.kind for k in self.roofline.kernels}
            _need("pool" in kinds, "roofline: a [roofline.<precision>.pool] ceiling is required (elementwise "
                                   "ops: activations, pooling, adds)")
            _need(self.clock is not None and self.clock.core is not None,
                  "roofline: needs clock.core (its ceilings are per core cycle)")
        object.__setattr__(self, "executed_as", executed)
        stacks = tuple(self.stacks)
        _need(len({st.name for st in stacks}) == len(stacks), "a software stack is given twice")
        object.__setattr__(self, "stacks", stacks)
        object.__setattr__(self, "precisions", precisions)
        object.__setattr__(self, "compute", compute)
        object.__setattr__(self, "memory", tuple(sorted(memory, key=lambda m: MEMORY_LEVELS.index(m.level))))
        object.__setattr__(self, "notes", tuple(self.notes))

    # ---- look-ups the profiler uses

    @property
    def label(self) -> str:
        """How reports name the target: ``name``, with ``:STACK`` for a selected software stack and
        ``@CLOCK`` at another operating point."""
        return (self.name + (f":{self.selected_stack}" if self.selected_stack else "")
                + (f"@{self.operating_point}" if self.operating_point else ""))

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

    def executed_precision(self, precision: str, op: str) -> tuple[str, Fact | None]:
        """The native format ``op`` (conv or linear) of a run in ``precision`` executes in, and the fact
        saying so when it differs from :meth:`nearest_precision` (e.g. fp32 convs as tf32)."""
        native = self.nearest_precision(precision)
        for e in self.executed_as:
            if e.precision == native:
                fact = e.get(op)
                if fact is not None:
                    return fact.value, fact
        return native, None

    def mac_energy(self, precision: str) -> float:
        """J per MAC in ``precision`` (mapped to the nearest native format)."""
        return self.compute_for(precision).mac.value_si

    def stack(self, name: str | None = None) -> StackSpec | None:
        """The software stack ``name`` (None: the profile's first, its default); None if it gives none."""
        if name is None:
            return self.stacks[0] if self.stacks else None
        found = next((st for st in self.stacks if st.name == name), None)
        _need(found is not None, f"{self.name} has no software stack {name!r}; valid: "
                                 f"{', '.join(st.name for st in self.stacks) or 'none'}")
        return found

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
        for section in ("interconnect", "neuro", "power", "clock", "mapping", "learning", "voltage", "partitioner"):
            spec = getattr(self, section)
            if spec is not None:
                yield from walk(f"{section}.", vars(spec))
        if self.voltage is not None:
            for lv in self.voltage.levels:
                yield from walk(f"voltage.levels[{lv.max_clock}].", vars(lv))
        if self.roofline is not None:
            for role in ROOFLINE_MEMORIES:
                yield from walk(f"roofline.{role}.", vars(getattr(self.roofline, role)))
            for k in self.roofline.kernels:
                yield from walk(f"roofline.{k.precision}.{k.kind}.", vars(k))
        for st in self.stacks:
            yield from walk(f"stacks.{st.name}.", vars(st))

    def fitted(self) -> list[tuple[str, Quantity]]:
        """The numbers fitted to measurements, with their keys (each names its fit_set)."""
        return [(key, q) for key, q in self.quantities() if q.basis == "fitted"]

    def facts(self) -> Iterator[tuple[str, Fact]]:
        """Every stated choice with its dotted key, e.g. ``("mapping.conv_weights", Fact("shared", ...))``."""
        for section in ("mapping", "learning", "partitioner"):
            spec = getattr(self, section)
            if spec is not None:
                for key, value in vars(spec).items():
                    if isinstance(value, Fact):
                        yield f"{section}.{key}", value
        for e in self.executed_as:
            for op, f in e.ops:
                yield f"executed_as.{e.precision}.{op}", f

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
        if self.kind == "neuromorphic" and not all_in:
            missing += [f"neuro.{n}" for n in ("neuron_update", "synaptic_op_time")
                        if self.neuro is None or getattr(self.neuro, n) is None]
        if self.on_chip_learning and (self.neuro is None or self.neuro.synaptic_update is None):
            missing.append("neuro.synaptic_update")
        return missing

    # ---- serialisation

    def to_dict(self) -> dict:
        """Plain JSON-serialisable dict: the file's structure, each number with value/unit as given,
        value_si/unit_si, source, basis and note. :func:`~.parse.profile_from_dict` reads it back."""
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
        for section in ("interconnect", "neuro", "power", "clock", "mapping", "learning"):
            spec = getattr(self, section)
            if spec is not None:
                d[section] = spec.to_dict()
        if self.executed_as:
            d["executed_as"] = {e.precision: e.to_dict() for e in self.executed_as}
        if self.voltage is not None:
            d["voltage"] = self.voltage.to_dict()
        if self.roofline is not None:
            d["roofline"] = self.roofline.to_dict()
        if self.partitioner is not None:
            d["partitioner"] = self.partitioner.to_dict()
        if self.stacks:
            d["stacks"] = {st.name: st.to_dict() for st in self.stacks}
        return d
