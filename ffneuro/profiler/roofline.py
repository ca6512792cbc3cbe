"""A per-layer roofline for MCU and GPU targets: cycles = max(compute, memory) + call overhead.

Each layer (a unit of the spec graph) runs one kernel kind (:data:`KERNELS`). Its compute time is its
MACs over the kind's ceiling (MACs per cycle, what the target's kernels reach, not the ALU peak) plus
its elementwise ops (activations, pooling, residual adds) over the ``pool`` ceiling. Its memory time is
the weights it streams over the weight memory's bytes per cycle (on an MCU the flash, whose wait states
grow with the clock) plus the activations it reads and writes over the activation memory's. A layer
costs the slower of the two plus a fixed per-call overhead; layers run one after another, so
``latency = Σ (max(compute, memory) + overhead) / clock``. The constants and their sources live in
the hardware profile's ``[roofline]`` table (docs/hw-profiles.md). Pure: no torch, no ffneuro.blocks.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import FFNeuroError
from .hardware import HardwareProfile
from .hardware.profile import RooflineMemory
from .uncertainty import value

KERNELS = ("conv", "depthwise", "pointwise", "linear", "pool")


class RooflineError(FFNeuroError):
    """A roofline that cannot be evaluated (a kernel kind it has no ceiling for, a bad number)."""


@dataclass(frozen=True)
class KernelCeiling:
    """What one kernel kind reaches: ``macs_per_cycle`` (ops per cycle for ``pool``) and a fixed
    ``overhead_cycles`` per call (dispatch, requantisation set-up, a GPU kernel launch)."""

    kind: str
    macs_per_cycle: float
    overhead_cycles: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KERNELS:
            raise RooflineError(f"unknown kernel kind {self.kind!r}; valid: {', '.join(KERNELS)}")
        if not (math.isfinite(self.macs_per_cycle) and self.macs_per_cycle > 0):
            raise RooflineError(f"{self.kind}: macs_per_cycle must be finite and > 0, got {self.macs_per_cycle}")
        if not (math.isfinite(self.overhead_cycles) and self.overhead_cycles >= 0):
            raise RooflineError(f"{self.kind}: overhead_cycles must be finite and >= 0, got {self.overhead_cycles}")


@dataclass(frozen=True)
class MemoryCeiling:
    """How fast one memory delivers bytes to the core, in one of three forms: ``bytes_per_cycle`` (a
    memory on the core clock: SRAM/TCM), ``bandwidth`` in B/s (a memory on its own clock: HBM), or
    ``access_bytes`` per access of ``access_time`` seconds (flash: an access takes
    ``ceil(access_time × clock)`` cycles, i.e. the wait states plus one, so bytes per cycle fall as the
    clock rises)."""

    bytes_per_cycle: float | None = None
    bandwidth: float | None = None
    access_bytes: float | None = None
    access_time_s: float | None = None

    def __post_init__(self) -> None:
        forms = [self.bytes_per_cycle is not None, self.bandwidth is not None,
                 self.access_bytes is not None or self.access_time_s is not None]
        if sum(forms) != 1:
            raise RooflineError("a memory ceiling gives exactly one of bytes_per_cycle, bandwidth, or "
                                "access_bytes with access_time")
        if forms[2] and (self.access_bytes is None or self.access_time_s is None):
            raise RooflineError("a flash-like memory ceiling needs both access_bytes and access_time")
        for name in ("bytes_per_cycle", "bandwidth", "access_bytes", "access_time_s"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v > 0):
                raise RooflineError(f"memory ceiling {name} must be finite and > 0, got {v}")

    def cycles_per_access(self, clock_hz: float) -> int | None:
        """Core cycles one access takes at ``clock_hz`` (wait states + 1), for a flash-like memory."""
        if self.access_time_s is None:
            return None
        # a tiny tolerance so that 280 MHz × (1/42 MHz) = 6.666… stays 7, and 42 MHz exactly stays 1
        return max(1, math.ceil(self.access_time_s * clock_hz - 1e-9))

    def bytes_per_cycle_at(self, clock_hz: float) -> float:
        """Bytes per core cycle at ``clock_hz``."""
        if self.bytes_per_cycle is not None:
            return self.bytes_per_cycle
        if self.bandwidth is not None:
            return self.bandwidth / clock_hz
        return self.access_bytes / self.cycles_per_access(clock_hz)


@dataclass(frozen=True)
class Roofline:
    """A target's roofline at one clock: a ceiling per kernel kind, where weights and activations are
    read from, and the core clock that turns cycles into seconds."""

    clock_hz: float
    kernels: tuple[KernelCeiling, ...]
    weights: MemoryCeiling
    activations: MemoryCeiling

    def __post_init__(self) -> None:
        if not (math.isfinite(self.clock_hz) and self.clock_hz > 0):
            raise RooflineError(f"clock must be finite and > 0, got {self.clock_hz}")
        kinds = [k.kind for k in self.kernels]
        if len(set(kinds)) != len(kinds):
            raise RooflineError("a kernel kind is given twice")
        object.__setattr__(self, "kernels", tuple(self.kernels))

    def ceiling(self, kind: str) -> KernelCeiling:
        for k in self.kernels:
            if k.kind == kind:
                return k
        raise RooflineError(f"the roofline has no ceiling for {kind!r} kernels (it gives: "
                            f"{', '.join(k.kind for k in self.kernels) or 'none'})")


@dataclass(frozen=True)
class LayerWork:
    """What one layer call does: ``macs`` in a ``kind`` kernel, ``elementwise_ops`` (activation,
    pooling, adds), ``weight_bytes`` streamed from the weight memory and ``activation_bytes`` read and
    written in the activation memory."""

    kind: str
    macs: float
    elementwise_ops: float = 0.0
    weight_bytes: float = 0.0
    activation_bytes: float = 0.0
    calls: int = 1          # kernel calls (each pays the overhead once), e.g. one per pass of a training step


@dataclass(frozen=True)
class LayerTime:
    """A layer's cycles by term, and which one bound it (``compute`` or ``memory``)."""

    compute_cycles: float
    memory_cycles: float
    overhead_cycles: float

    @property
    def cycles(self) -> float:
        return max(self.compute_cycles, self.memory_cycles) + self.overhead_cycles

    @property
    def bound(self) -> str:
        return "memory" if self.memory_cycles > self.compute_cycles else "compute"


def layer_time(work: LayerWork, roof: Roofline) -> LayerTime:
    """Cycles of one layer call on ``roof``: max(compute, memory) + the kind's call overhead."""
    k = roof.ceiling(work.kind)
    compute = work.macs / k.macs_per_cycle
    if work.elementwise_ops:
        compute += work.elementwise_ops / roof.ceiling("pool").macs_per_cycle
    memory = work.weight_bytes / roof.weights.bytes_per_cycle_at(roof.clock_hz) \
        + work.activation_bytes / roof.activations.bytes_per_cycle_at(roof.clock_hz)
    return LayerTime(compute, memory, k.overhead_cycles * work.calls)


def latency_s(works: Iterable[LayerWork], roof: Roofline) -> float:
    """Seconds for layers run one after another: Σ cycles / clock."""
    return sum(layer_time(w, roof).cycles for w in works) / roof.clock_hz


def _memory(m: RooflineMemory, scenario: str) -> MemoryCeiling:
    return MemoryCeiling(bytes_per_cycle=value(m.bytes_per_cycle, scenario, rate=True),
                         bandwidth=value(m.bandwidth, scenario, rate=True),
                         access_bytes=None if m.access_bytes is None else m.access_bytes.value_si,
                         access_time_s=value(m.access_time, scenario))


def roofline_for(hw: HardwareProfile, precision: str, scenario: str = "nominal") -> Roofline | None:
    """The roofline of ``hw`` for kernels in native ``precision`` at its clock, at ``scenario``'s end of
    each constant's range (:mod:`.uncertainty`); None where the profile has no roofline for it."""
    spec = hw.roofline
    if spec is None or precision not in spec.precisions:
        return None
    kernels = tuple(KernelCeiling(k.kind, value(k.macs_per_cycle, scenario, rate=True),
                                  0.0 if k.overhead is None else value(k.overhead, scenario))
                    for k in spec.for_precision(precision))
    return Roofline(hw.clock.core.value_si, kernels, _memory(spec.weights, scenario), _memory(spec.activations, scenario))


def kernel_kind(op: str, *, groups: int = 1, in_channels: int = 1, kernel: tuple[int, ...] = ()) -> str:
    """The kernel kind a layer runs as: ``linear`` for a fully connected layer; for a convolution
    ``depthwise`` (one group per input channel), ``pointwise`` (a 1×1 kernel), else ``conv``."""
    if op == "linear":
        return "linear"
    if op == "pool":
        return "pool"
    if op != "conv":
        raise RooflineError(f"unknown layer op {op!r}; valid: conv, linear, pool")
    if groups > 1 and groups == in_channels:
        return "depthwise"
    if kernel and all(k == 1 for k in kernel):
        return "pointwise"
    return "conv"


def supply_power_w(static_w: float, dynamic_w: float, *, clock_ratio: float, voltage_ratio: float) -> float:
    """Supply power at another operating point: dynamic power ∝ f·V², static (leakage) power ∝ V
    (the leakage current held); the ratios are new / reference."""
    if clock_ratio <= 0 or voltage_ratio <= 0:
        raise RooflineError("clock and voltage ratios must be > 0")
    return static_w * voltage_ratio + dynamic_w * clock_ratio * voltage_ratio ** 2
