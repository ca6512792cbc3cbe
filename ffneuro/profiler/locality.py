"""Mapping units onto a target's cores, and where each byte of a workload's traffic lives.

Three mapping styles, chosen from the profile:

* ``"neurons"``: a neuromorphic target with per-core neuron/synapse limits (Loihi, Loihi 2,
  TrueNorth). A unit is unrolled: each of its neurons is placed on a core and stores its own fan-in
  (conv weights are not shared across cores), so a unit needs
  ``max(ceil(neurons / neurons_per_core), ceil(synapses / synapses_per_core),
  ceil(synapse bytes / synapse_bytes_per_core), ceil(all bytes / sram_bytes_per_core))`` cores.
* ``"sram"``: a many-core target with only a per-core memory size (SpiNNaker 2): neurons are software,
  weights are shared, and a unit needs ``ceil(its state / sram_bytes_per_core)`` cores.
* ``"monolithic"``: GPU, CPU, MCU or a reference table: the device is one unit of compute; locality
  is whether the working set fits the on-chip SRAM/cache.

Traffic of each phase (from :mod:`ffneuro.accounting`) is split three ways: the tensors that cross a
unit's boundary (FF: only its input and its handed-on output; BP: also every stored activation and
every error signal); the parameter state (weights, weight gradients, Adam moments); and the unit's
own activations. Crossing tensors leave the core (off-core memory, plus the interconnect on a many-core
target); the rest stays on the core when it fits there (see :func:`classify`).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from ..accounting import LayerSpec, LinearSpec, PhaseCost, nbytes
from .hardware import HardwareProfile

STYLES = ("neurons", "sram", "monolithic")


def mapping_style(hw: HardwareProfile) -> str:
    limits = hw.cores.limits() if hw.cores is not None else {}
    if hw.kind == "neuromorphic" and any(k in limits for k in ("neurons", "synapses", "synapse_bytes")):
        return "neurons"
    if hw.kind == "neuromorphic":
        return "sram"
    return "monolithic"


@dataclass(frozen=True)
class UnitMapping:
    """Where one unit goes. ``cores`` is 1 on a monolithic device (the device itself)."""

    unit: str
    neurons: int
    synapses: int            # weights the cores store: unrolled connections ("neurons" style), shared weights otherwise
    state_bytes: int         # weights (+ gradients and Adam moments when training) and per-sample neuron state
    cores: int
    limited_by: str          # the per-core limit that set ``cores`` ("monolithic" on a monolithic device)
    fan_in: int
    fan_in_fits: bool | None  # a neuron's fan-in within one core's input axons (None: no axon limit given)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Mapping:
    """A whole network on one target for one workload."""

    style: str
    units: tuple[UnitMapping, ...]
    cores_needed: int
    chips_needed: int
    weights_on_chip: bool | None   # every unit's parameter state fits one chip (None: capacity unknown)
    on_chip_bytes: float | None    # on-chip SRAM/cache of one chip, if known

    def unit(self, name: str) -> UnitMapping:
        return next(u for u in self.units if u.unit == name)

    def to_dict(self) -> dict:
        return {"style": self.style, "units": [u.to_dict() for u in self.units], "cores_needed": self.cores_needed,
                "chips_needed": self.chips_needed, "weights_on_chip": self.weights_on_chip,
                "on_chip_bytes": self.on_chip_bytes}


def _fan_in(spec) -> int:
    return spec.fan_in if isinstance(spec, LayerSpec) else spec.in_features


def parameter_state_bytes(spec, *, training: bool, weight_precision: str, master: str = "fp32") -> int:
    """Weights at ``weight_precision``; when training also the master copy's gradient and Adam's two
    moments (fp32) for a trainable unit."""
    w = nbytes(spec.params, weight_precision)
    if training and spec.trainable:
        w += 3 * nbytes(spec.params, master)
    return w


def map_units(specs: Sequence[LayerSpec | LinearSpec], hw: HardwareProfile, *, training: bool,
              precision: str, weight_precision: str | None = None) -> Mapping:
    """Map ``specs`` onto ``hw``. ``precision`` is the activation format on the device (the native
    format the run maps to); weights are stored at ``weight_precision`` (default: ``precision``)."""
    style = mapping_style(hw)
    wprec = weight_precision or precision
    limits = hw.cores.limits() if hw.cores is not None else {}
    units = []
    for s in specs:
        neurons, fan_in = s.neurons, _fan_in(s)
        # neuron state: positive and negative pass of one sample (training), one sample (inference)
        neuron_state = nbytes(neurons * (2 if training else 1), precision)
        axons = limits.get("axons")
        fits = None if axons is None else fan_in <= axons
        if style == "neurons":
            synapses = s.connections
            syn_bytes = nbytes(synapses, wprec)
            if training and s.trainable:
                syn_bytes += 3 * nbytes(synapses, "fp32")   # per-synapse gradient and optimiser state
            need = {"neurons": neurons, "synapses": synapses, "synapse_bytes": syn_bytes,
                    "sram_bytes": syn_bytes + neuron_state}
            cores_by = {k: math.ceil(need[k] / limits[k]) for k in need if k in limits}
            limited_by = max(cores_by, key=cores_by.get)
            units.append(UnitMapping(s.name, neurons, synapses, syn_bytes + neuron_state, max(1, cores_by[limited_by]),
                                     limited_by, fan_in, fits))
        else:
            state = parameter_state_bytes(s, training=training, weight_precision=wprec) + neuron_state
            if style == "sram":
                cores = max(1, math.ceil(state / limits["sram_bytes"])) if "sram_bytes" in limits else 1
                units.append(UnitMapping(s.name, neurons, s.weights, state, cores, "sram_bytes", fan_in, fits))
            else:
                units.append(UnitMapping(s.name, neurons, s.weights, state, 1, "monolithic", fan_in, None))
    on_chip = hw.on_chip_sram_bytes
    if style == "monolithic":
        resident = sum(parameter_state_bytes(s, training=training, weight_precision=wprec) for s in specs)
        return Mapping(style, tuple(units), 1, 1, None if on_chip is None else resident <= on_chip, on_chip)
    cores_needed = sum(u.cores for u in units)
    return Mapping(style, tuple(units), cores_needed, math.ceil(cores_needed / hw.n_cores),
                   cores_needed <= hw.n_cores, on_chip)


@dataclass(frozen=True)
class Placement:
    """Bytes of one phase by where they go: ``*_on`` stay on the unit's core(s), ``*_off`` leave it;
    ``interconnect`` is what travels core to core (the crossing tensors a unit sends)."""

    read_on: float = 0
    write_on: float = 0
    read_off: float = 0
    write_off: float = 0
    interconnect: float = 0

    @property
    def on_core(self) -> float:
        return self.read_on + self.write_on

    @property
    def off_core(self) -> float:
        return self.read_off + self.write_off

    def __add__(self, other: Placement) -> Placement:
        return Placement(*(a + b for a, b in zip(asdict(self).values(), asdict(other).values())))


def classify(phase: PhaseCost, *, style: str, params_local: bool, activations_local: bool,
             crossing_local: bool) -> Placement:
    """Split a phase's bytes: crossing tensors (off-core unless ``crossing_local``), parameter state
    (on-core if ``params_local``), the unit's own activations (on-core if ``activations_local``)."""
    r, w = phase.bytes_read, phase.bytes_written
    parts = {  # (read, write, local?)
        "crossing": (phase.crossing_read, phase.crossing_written, crossing_local),
        "params": (r.parameter_state, w.parameter_state, params_local),
        "own": (r.activation_traffic - phase.crossing_read, w.activation_traffic - phase.crossing_written,
                activations_local),
    }
    p = Placement()
    for rd, wr, local in parts.values():
        p = p + (Placement(read_on=rd, write_on=wr) if local else Placement(read_off=rd, write_off=wr))
    if style != "monolithic":
        p = p + Placement(interconnect=phase.crossing_written)
    return p


def crossing_tensors(workload: str, spec, *, first: bool) -> tuple[str, ...]:
    """Names of the tensors that leave or enter a unit's core during one step of ``workload``."""
    if isinstance(spec, LinearSpec):
        out = ("features in", "class scores out")
        return out + (("error signal to the layer below", "features stored for the weight gradient")
                      if workload == "bp_train" else ())
    if workload == "bp_train":
        stored = "stored activations (ReLU output" + (", pooled map" if spec.pooled else "") + ")"
        return ("input", "output", stored, "stored input", "error signal from above") + \
            (() if first else ("error signal to the layer below",))
    return ("input", "output")
