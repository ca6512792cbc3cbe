"""Energy and latency from action counts, Accelergy-style: ``Σ count × energy per action``.

Actions and the profile entries they are charged at (the run's precision mapped with
``HardwareProfile.nearest_precision``):

=====================  ==================================================================================
MAC                    ``compute.<p>.mac`` (on a neuromorphic core: one synaptic op). Event-driven targets
                       (``kind = "neuromorphic"``) are charged *effective* MACs: forward and weight-gradient
                       MACs whose input activation is zero are skipped.
elementwise op         ``compute.<p>.add`` if given, else half a MAC (a MAC is two ops)
neuron update          ``neuro.neuron_update`` per neuron per forward pass, on neuromorphic targets that give
                       it (replaces that pass's bias-add and ReLU ops)
synaptic update        ``neuro.synaptic_update`` per stored synapse per optimiser step, on targets with
                       ``on_chip_learning`` that give it (replaces Adam's elementwise ops)
on-core byte           ``memory.on_core`` read/write per byte
off-core byte          ``memory.off_chip`` if the profile has it, else ``memory.on_chip``, else another
                       core's ``memory.on_core`` (the tensor is parked in a different core's SRAM)
interconnect byte      ``interconnect.packet / packet_size``, for bytes a unit sends to another core
static                 ``power.static`` × latency × chips
overhead               a software stack's (``[stacks.NAME]``) per-timestep management and per-inference
                       host I/O: ``step_power`` × their time + ``inference_energy`` (:func:`stack_overhead`)
=====================  ==================================================================================

With ``scope = "all_in"`` the compute energy already contains memory, routing and static power: only
the compute term is summed and the others are reported as 0 (the byte counts are still reported).
A missing entry contributes nothing and is listed in the estimate's ``unknown``.

Latency of a unit: the slower of compute time and off-core memory time (a roofline). Compute time is
ops / ``peak_rate`` scaled to the cores the unit occupies (the whole device on a monolithic target),
or synaptic-op and neuron-update times spread over the unit's cores, or one tick per input on a
time-stepped chip that gives only ``clock.tick``. Units run one after another, so latencies add.
A profile with a ``[roofline]`` for the run's precision (MCUs, GPUs) times each unit with its
per-layer roofline instead (:mod:`.roofline`), and where it splits its supply power into
``power.static`` + ``power.dynamic`` a unit's energy is that power × the unit's time.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ..vector import FieldVector
from .hardware import HardwareProfile
from .roofline import Roofline, roofline_for
from .uncertainty import value

ENERGY_TERMS = ("compute_j", "on_core_j", "off_core_j", "interconnect_j", "static_j", "overhead_j")


@dataclass(frozen=True)
class EnergyBreakdown(FieldVector):
    """Joules by where they are spent; ``+`` and ``scaled`` come from :class:`~ffneuro.vector.FieldVector`."""

    compute_j: float = 0.0
    on_core_j: float = 0.0
    off_core_j: float = 0.0
    interconnect_j: float = 0.0
    static_j: float = 0.0
    overhead_j: float = 0.0    # the software stack's per-timestep management and per-inference host I/O

    @property
    def total_j(self) -> float:
        """All the joules (the fields' sum, :attr:`total`)."""
        return self.total

    def to_dict(self) -> dict:
        return {**asdict(self), "total_j": self.total_j}


@dataclass(frozen=True)
class ActionEnergies:
    """Per-action energies (J, J per byte) and rates of one target for a run in one precision, at one
    end of the uncertainty range (``scenario``: nominal, low or high); None = not given.

    ``mac_j``/``peak_ops_per_s`` are a conv's, ``linear_mac_j``/``linear_peak_ops_per_s`` a linear
    layer's: the two can execute in different formats (PyTorch runs fp32 convs as TF32 on recent GPUs,
    fp32 matmuls as fp32). ``precision`` is the format the run asked for; ``native_precision`` the one
    it maps to; ``conv_precision``/``linear_precision`` what each op kind executes in."""

    target: str
    native_precision: str
    scope: str
    event_driven: bool
    mac_j: float
    elementwise_j: float
    neuron_update_j: float | None
    synaptic_update_j: float | None
    on_core_read_j: float | None
    on_core_write_j: float | None
    off_core_read_j: float | None
    off_core_write_j: float | None
    off_core_level: str | None
    interconnect_j: float | None
    static_w: float | None
    peak_ops_per_s: float | None
    n_cores: int
    synaptic_op_time_s: float | None
    neuron_update_time_s: float | None
    tick_hz: float | None
    off_core_bandwidth: float | None
    linear_mac_j: float = 0.0
    linear_peak_ops_per_s: float | None = None
    conv_precision: str = ""
    linear_precision: str = ""
    precision: str = ""
    scenario: str = "nominal"
    executed_notes: tuple[str, ...] = ()
    roofline: Roofline | None = None      # per-layer roofline (MCU/GPU profiles with [roofline]); sets the latency
    running_w: float | None = None        # power.static + power.dynamic: with a roofline, energy = this × latency

    @property
    def all_in(self) -> bool:
        return self.scope == "all_in"

    def for_op(self, linear: bool) -> tuple[float, float | None]:
        """(J per MAC, peak op/s) of a conv (``linear=False``) or a linear layer."""
        return (self.linear_mac_j, self.linear_peak_ops_per_s) if linear else (self.mac_j, self.peak_ops_per_s)

    def unknown(self) -> tuple[str, ...]:
        """Entries an estimate needs that the profile does not give (so they count as 0)."""
        if self.all_in:
            out = []
        else:
            out = [name for name, v in (("memory.on_core.read", self.on_core_read_j),
                                        ("off-core memory energy", self.off_core_read_j),
                                        ("power.static", self.static_w)) if v is None]
            if self.n_cores > 1 and self.interconnect_j is None:
                out.append("interconnect.packet")
            if self.event_driven and self.neuron_update_j is None:
                out.append("neuro.neuron_update")
        if self.peak_ops_per_s is None and self.synaptic_op_time_s is None and self.tick_hz is None:
            out.append(f"compute.{self.native_precision}.peak_rate (latency)")
        return tuple(out)

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["executed_notes"] = list(self.executed_notes)
        r = self.roofline
        d["roofline"] = None if r is None else {
            "clock_hz": r.clock_hz,
            "kernels": {k.kind: {"macs_per_cycle": k.macs_per_cycle, "overhead_cycles": k.overhead_cycles}
                        for k in r.kernels},
            "weights_bytes_per_cycle": r.weights.bytes_per_cycle_at(r.clock_hz),
            "activations_bytes_per_cycle": r.activations.bytes_per_cycle_at(r.clock_hz)}
        return d


def _compute(hw: HardwareProfile, native: str, scenario: str):
    comp = next(c for c in hw.compute if c.precision == native)
    mac = value(comp.mac, scenario)
    return comp, mac, value(comp.peak_rate, scenario, rate=True)


def action_energies(hw: HardwareProfile, precision: str, scenario: str = "nominal") -> ActionEnergies:
    """What each action costs on ``hw`` for a run in ``precision``, at ``scenario`` (see
    :mod:`.uncertainty`)."""
    native = hw.nearest_precision(precision)
    conv_p, conv_fact = hw.executed_precision(precision, "conv")
    lin_p, lin_fact = hw.executed_precision(precision, "linear")
    comp, mac, peak = _compute(hw, conv_p, scenario)
    _, lin_mac, lin_peak = _compute(hw, lin_p, scenario)
    base = next(c for c in hw.compute if c.precision == native)
    elementwise = value(base.add, scenario) if base.add is not None else value(base.mac, scenario) / 2
    notes = tuple(f"{native} {op} layers execute as {fact.value} on {hw.name} ({fact.note or fact.source})"
                  for op, fact in (("conv", conv_fact), ("linear", lin_fact)) if fact is not None and fact.value != native)
    neuro = hw.neuro
    event_driven = hw.kind == "neuromorphic"
    neuron_update = value(neuro.neuron_update, scenario) if (neuro and neuro.neuron_update and event_driven) else None
    synaptic_update = (value(neuro.synaptic_update, scenario)
                       if (neuro and neuro.synaptic_update and hw.on_chip_learning) else None)
    on_core = hw.memory_level("on_core")
    on_r = value(on_core.read, scenario) / on_core.word.value_si if (on_core and on_core.read) else None
    on_w = value(on_core.write or on_core.read, scenario) / on_core.word.value_si \
        if (on_core and (on_core.write or on_core.read)) else None
    off_level, off_r, off_w, off_bw = None, None, None, None
    for level in ("off_chip", "on_chip", "on_core"):
        m = hw.memory_level(level)
        if m is not None and m.read is not None:
            off_level = level
            off_r = value(m.read, scenario) / m.word.value_si
            off_w = value(m.write or m.read, scenario) / m.word.value_si
            break
    off_chip = hw.memory_level("off_chip")
    if off_chip is not None and off_chip.bandwidth is not None:
        off_bw = value(off_chip.bandwidth, scenario, rate=True)
    ic = hw.interconnect
    ic_j = value(ic.packet, scenario) / ic.packet_size.value_si if (ic is not None and ic.packet is not None) else None
    static = value(hw.power.static, scenario) if (hw.power and hw.power.static) else None
    running = None
    if hw.power is not None and hw.power.dynamic is not None:
        running = value(hw.power.dynamic, scenario) + (static or 0.0)
    return ActionEnergies(
        target=hw.name, native_precision=native, scope=comp.scope, event_driven=event_driven,
        mac_j=mac, elementwise_j=elementwise, neuron_update_j=neuron_update, synaptic_update_j=synaptic_update,
        on_core_read_j=on_r, on_core_write_j=on_w, off_core_read_j=off_r, off_core_write_j=off_w,
        off_core_level=off_level, interconnect_j=ic_j if hw.n_cores > 1 else None, static_w=static,
        peak_ops_per_s=peak, n_cores=hw.n_cores,
        synaptic_op_time_s=value(neuro.synaptic_op_time, scenario) if (neuro and neuro.synaptic_op_time) else None,
        neuron_update_time_s=value(neuro.neuron_update_time, scenario) if (neuro and neuro.neuron_update_time) else None,
        tick_hz=value(hw.clock.tick, scenario, rate=True) if (hw.clock and hw.clock.tick) else None,
        off_core_bandwidth=off_bw, linear_mac_j=lin_mac, linear_peak_ops_per_s=lin_peak, conv_precision=conv_p,
        linear_precision=lin_p, precision=precision, scenario=scenario, executed_notes=notes,
        roofline=roofline_for(hw, native, scenario), running_w=running)


@dataclass(frozen=True)
class ActionCounts(FieldVector):
    """What a unit does in one workload (per batch or per sample); ``+`` and ``scaled`` come from
    :class:`~ffneuro.vector.FieldVector`."""

    macs: float = 0.0              # charged MACs (effective on event-driven targets)
    dense_macs: float = 0.0
    elementwise_ops: float = 0.0
    neuron_updates: float = 0.0
    synaptic_updates: float = 0.0
    read_on: float = 0.0
    write_on: float = 0.0
    read_off: float = 0.0
    write_off: float = 0.0
    interconnect_bytes: float = 0.0


def _j(count: float, per: float | None) -> float:
    return 0.0 if per is None else count * per


def dynamic_energy(c: ActionCounts, a: ActionEnergies, *, linear: bool = False) -> EnergyBreakdown:
    """Energy of the counted actions, without static power (``linear``: the MACs are a linear layer's)."""
    compute = c.macs * a.for_op(linear)[0] + c.elementwise_ops * a.elementwise_j \
        + _j(c.neuron_updates, a.neuron_update_j) + _j(c.synaptic_updates, a.synaptic_update_j)
    if a.all_in:
        return EnergyBreakdown(compute_j=compute)
    return EnergyBreakdown(
        compute_j=compute,
        on_core_j=_j(c.read_on, a.on_core_read_j) + _j(c.write_on, a.on_core_write_j),
        off_core_j=_j(c.read_off, a.off_core_read_j) + _j(c.write_off, a.off_core_write_j),
        interconnect_j=_j(c.interconnect_bytes, a.interconnect_j))


def latency(c: ActionCounts, a: ActionEnergies, *, cores: int, style: str, inputs: float,
            linear: bool = False) -> float | None:
    """Seconds for the counted actions on ``cores`` cores, ``inputs`` being how many inputs pass
    through the unit (for time-stepped chips: one tick each); None if the profile gives no rate."""
    share = 1.0 if style == "monolithic" else cores / a.n_cores   # fraction of one chip's cores (may exceed 1)
    ops = 2 * c.macs + c.elementwise_ops + c.synaptic_updates
    peak = a.for_op(linear)[1]
    if a.synaptic_op_time_s is not None:
        t = (c.macs * a.synaptic_op_time_s + c.neuron_updates * (a.neuron_update_time_s or 0.0)) / max(cores, 1)
        t += c.elementwise_ops * (a.synaptic_op_time_s / 2) / max(cores, 1)
    elif peak is not None:
        t = (ops + c.neuron_updates) / (peak * share)
    elif a.tick_hz is not None:
        t = inputs / a.tick_hz
    else:
        return None
    if a.off_core_bandwidth is not None:
        t = max(t, (c.read_off + c.write_off) / a.off_core_bandwidth)
    return t


@dataclass(frozen=True)
class StackOverhead:
    """What a software stack adds to one inference (:func:`stack_overhead`), each term named."""

    stack: str
    step_time_s: float          # per timestep: barrier sync and management (+ host input per input core)
    inference_time_s: float     # per inference: host I/O
    time_s: float               # all of it over one inference's timesteps
    energy_j: float             # step_power over that time, plus the per-inference energy

    def to_dict(self) -> dict:
        return asdict(self)


def stack_overhead(hw: HardwareProfile, *, timesteps: int, stack: str | None = None, input_cores: int = 1,
                   scenario: str = "nominal") -> StackOverhead | None:
    """Per-inference time and energy of the software stack ``stack`` of ``hw`` (None: its first) around
    the neurocores for ``timesteps`` steps, with the host's input entering ``input_cores`` cores; None if
    the profile gives no stack."""
    st = hw.stack(stack)
    if st is None:
        return None
    step = (value(st.step_time, scenario) or 0.0) + input_cores * (value(st.step_time_per_input_core, scenario) or 0.0)
    once = value(st.inference_time, scenario) or 0.0
    time = timesteps * step + once
    energy = time * (value(st.step_power, scenario) or 0.0) + (value(st.inference_energy, scenario) or 0.0)
    return StackOverhead(st.name, step, once, time, energy)
