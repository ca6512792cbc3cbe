"""Profile a network on a hardware target: FF training, BP training and both inference readouts.

:func:`profile_network` combines the accounting (ops and bytes per unit and phase), the locality
mapping (cores, what stays on a core) and the energy model (energy per action) into a
:class:`ProfileReport`, per unit and in total, per sample. ``ProfileReport.to_dict()`` is plain JSON.
"""
from __future__ import annotations

import math
from collections.abc import Mapping as TMapping
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace

from ..accounting import (
    ELEMENT_BITS,
    NetworkCost,
    UnitPhases,
    bp_memory,
    bp_training_costs,
    ff_memory,
    ff_training_costs,
    graph_inference_costs,
    head_spec,
    inference_costs,
    inference_peak_bytes,
    nbytes,
    readout_spec,
    update_ops,
)
from ..accounting.objective import PAIRS, ObjectiveCost, objective_cost
from ..accounting.optimizer import ADAM, DEFAULT_OPTIMIZERS, OptimizerCost, Optimizers, optimizers_of
from ..errors import NotModelled
from ..spec import Conv1d, Conv2d, NetSpec
from ..spec.block import BlockSpec
from .activity import (
    DEFAULT_ACTIVITY,
    INPUT,
    ActivitySources,
    InputActivity,
    Wiring,
    given_neurons,
    resolve,
)
from .energy import (
    ActionCounts,
    ActionEnergies,
    EnergyBreakdown,
    StackOverhead,
    action_energies,
    dynamic_energy,
    latency,
    stack_overhead,
)
from .hardware import PRECISION_BITS, HardwareProfile, load_profile
from .locality import ENCODER, Mapping, UnitMapping, classify, crossing_tensors, map_units, mapping_style
from .roofline import LayerWork, kernel_kind, layer_time
from .static import WeightStats, workload_static
from .uncertainty import SCENARIOS

PROFILED = ("ff_train", "bp_train", "infer_linear", "infer_goodness", "bp_infer")
ESTIMATE_PRECISIONS = ("fp32", "bf16", "int8")   # what --precision takes on profile and compare
TRAINING = ("ff_train", "bp_train")


@dataclass(frozen=True)
class UnitEstimate:
    """One unit in one workload; energies, latency, ops and bytes are per sample.

    ``macs`` are dense with padding counted (what a GPU runs); ``synops`` dense without padding (the
    real synapses); ``effective_synops`` those left when inputs that are zero are skipped (NeuroBench's
    effective count); ``effective_macs`` what the energy charged: ``effective_synops`` on an event-driven
    target, ``macs`` elsewhere. ``energy_range``/``latency_range`` are (low, high) from each input
    number's basis (:mod:`.uncertainty`)."""

    unit: str
    energy: EnergyBreakdown
    latency_s: float | None
    macs: float                    # dense, padding counted
    effective_macs: float          # what was charged
    elementwise_ops: float
    neuron_updates: float
    synaptic_updates: float
    bytes_on_core: float
    bytes_off_core: float
    bytes_interconnect: float
    cores: int
    limited_by: str
    weights_on_chip: bool | None
    fan_in_fits: bool | None
    input_zero_fraction: float
    crossing: tuple[str, ...]      # tensors that leave or enter the unit's core(s)
    synops: float = 0.0            # dense, padding taps left out
    effective_synops: float = 0.0  # without padding, zero inputs skipped
    energy_range: tuple[float, float] = (0.0, 0.0)
    latency_range: tuple[float, float] | None = None
    precision: str = ""            # the format its MACs execute in
    cores_by: TMapping[str, int] = field(default_factory=dict)
    activity: float = 1.0          # events per input element per pass: the share of its synaptic ops charged
    activity_source: str = ""      # given, measured: simulation TARGET, measured sparsity, default

    @property
    def energy_j(self) -> float:
        return self.energy.total_j

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["energy"], d["crossing"] = self.energy.to_dict(), list(self.crossing)
        d["energy_range"] = list(self.energy_range)
        d["latency_range"] = None if self.latency_range is None else list(self.latency_range)
        d["cores_by"] = dict(self.cores_by)
        return d


@dataclass(frozen=True)
class WorkloadEstimate:
    """One workload on one target. Totals are per sample; ``supported=False`` carries a ``reason``
    and no numbers. ``cores_needed`` is what the per-core limits need; ``cores_used`` what computes
    (more when idle cores are spread over the units)."""

    workload: str
    supported: bool
    reason: str = ""
    per_unit: tuple[UnitEstimate, ...] = ()
    energy: EnergyBreakdown | None = None
    latency_s: float | None = None
    peak_memory_bytes: int | None = None
    fits_on_chip: bool | None = None        # the peak working set fits the on-chip SRAM/cache
    cores_needed: int | None = None
    chips_needed: int | None = None
    weights_on_chip: bool | None = None
    macs: float = 0.0
    effective_macs: float = 0.0
    bytes_on_core: float = 0.0
    bytes_off_core: float = 0.0
    bytes_interconnect: float = 0.0
    notes: tuple[str, ...] = ()
    synops: float = 0.0
    effective_synops: float = 0.0
    energy_range: tuple[float, float] | None = None
    latency_range: tuple[float, float] | None = None
    cores_used: int | None = None
    precision: str = ""
    static_range: tuple[float, float] | None = None   # the static part of energy_range's low and high ends
    timesteps: int = 1                     # passes per sample (an SNN's timesteps)
    parameter_count: int | None = None     # of the layers the workload runs
    footprint_bytes: int | None = None     # NeuroBench's Footprint: parameters at the weight precision + buffers
    connection_sparsity: float | None = None   # NeuroBench's: share of zero conv/linear weights (stored weights)
    static_source: str = ""                # where the three come from: stored weights, or the specs
    overhead: StackOverhead | None = None  # the software stack's per-timestep and per-inference terms

    @property
    def energy_j(self) -> float | None:
        return None if self.energy is None else self.energy.total_j

    @property
    def off_core_share(self) -> float | None:
        moved = self.bytes_on_core + self.bytes_off_core
        return None if not self.supported or moved == 0 else self.bytes_off_core / moved

    def unit(self, name: str) -> UnitEstimate:
        return next(u for u in self.per_unit if u.unit == name)

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["per_unit"] = [u.to_dict() for u in self.per_unit]
        d["energy"] = None if self.energy is None else self.energy.to_dict()
        d["notes"] = list(self.notes)
        d["overhead"] = None if self.overhead is None else self.overhead.to_dict()
        for k in ("energy_range", "latency_range", "static_range"):
            d[k] = None if d[k] is None else list(d[k])
        d.update(energy_j=self.energy_j, off_core_share=self.off_core_share)
        return d


@dataclass(frozen=True)
class ProfileReport:
    target: str
    kind: str
    precision: str
    native_precision: str
    batch: int
    num_classes: int
    mapping_style: str
    sparsity: tuple[float, ...] | None
    actions: ActionEnergies
    workloads: TMapping[str, WorkloadEstimate] = field(default_factory=dict)
    unknown: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    bp_sparsity: tuple[float, ...] | None = None   # the BP twin's measured input zero fractions, if given

    def __getitem__(self, workload: str) -> WorkloadEstimate:
        return self.workloads[workload]

    @property
    def executed_precision(self) -> str:
        """What the MACs run in: one format, or 'conv tf32, linear fp32' when the op kinds differ."""
        a = self.actions
        if a.conv_precision == a.linear_precision:
            return a.conv_precision
        return f"conv {a.conv_precision}, linear {a.linear_precision}"

    def to_columns(self) -> dict:
        """A flat form for ``RunWriter.write_group`` (netCDF-style, like ``/accounting``): per workload a
        subgroup with a ``unit`` coordinate, one array per per-unit field and ``total_*`` scalars.
        Unknown numbers are NaN; booleans are 1.0/0.0 (NaN: unknown); unsupported workloads keep only
        ``supported = 0`` and their ``reason``."""
        def num(v) -> float:
            return float("nan") if v is None else float(v)

        out: dict = {"target": self.target, "kind": self.kind, "precision": self.precision,
                     "native_precision": self.native_precision, "executed_precision": self.executed_precision,
                     "batch": self.batch, "num_classes": self.num_classes, "mapping_style": self.mapping_style,
                     "sparsity": [num(v) for v in self.sparsity] if self.sparsity else [],
                     "bp_sparsity": [num(v) for v in self.bp_sparsity] if self.bp_sparsity else [],
                     "unknown": list(self.unknown) or "", "notes": list(self.notes) or ""}
        for name, w in self.workloads.items():
            g: dict = {"supported": float(w.supported), "reason": w.reason}
            if w.supported:
                g["unit"] = [u.unit for u in w.per_unit]
                for term in ("compute_j", "on_core_j", "off_core_j", "interconnect_j", "static_j", "overhead_j"):
                    g[term] = [getattr(u.energy, term) for u in w.per_unit]
                    g[f"total_{term}"] = getattr(w.energy, term)
                g["energy_j"] = [u.energy_j for u in w.per_unit]
                for f in ("latency_s", "macs", "effective_macs", "synops", "effective_synops", "elementwise_ops",
                          "neuron_updates", "synaptic_updates", "bytes_on_core", "bytes_off_core",
                          "bytes_interconnect", "cores", "weights_on_chip", "fan_in_fits", "input_zero_fraction",
                          "activity"):
                    g[f] = [num(getattr(u, f)) for u in w.per_unit]
                g["activity_source"] = [u.activity_source for u in w.per_unit]
                for f in ("timesteps", "parameter_count", "footprint_bytes", "connection_sparsity"):
                    g[f] = num(getattr(w, f))
                for f in ("energy_j", "latency_s", "peak_memory_bytes", "fits_on_chip", "cores_needed", "cores_used",
                          "chips_needed", "weights_on_chip", "macs", "effective_macs", "synops", "effective_synops",
                          "bytes_on_core", "bytes_off_core", "bytes_interconnect", "off_core_share"):
                    g[f"total_{f}"] = num(getattr(w, f))
                g["total_energy_low_j"], g["total_energy_high_j"] = w.energy_range
                lr = w.latency_range or (None, None)
                g["total_latency_low_s"], g["total_latency_high_s"] = num(lr[0]), num(lr[1])
                g["notes"] = list(w.notes) or ""
            out[name] = g
        return out

    def to_dict(self) -> dict:
        return {"target": self.target, "kind": self.kind, "precision": self.precision,
                "native_precision": self.native_precision, "executed_precision": self.executed_precision,
                "batch": self.batch, "num_classes": self.num_classes,
                "mapping_style": self.mapping_style,
                "sparsity": None if self.sparsity is None else list(self.sparsity),
                "bp_sparsity": None if self.bp_sparsity is None else list(self.bp_sparsity),
                "actions": self.actions.to_dict(), "unknown": list(self.unknown), "notes": list(self.notes),
                "workloads": {k: w.to_dict() for k, w in self.workloads.items()}}


# --------------------------------------------------------------------------------------------------


def _rows(phase, spec) -> float:
    return phase.macs / spec.macs if spec.macs else 0.0


def _is_linear(spec) -> bool:
    return not any(isinstance(n, Conv2d | Conv1d) for n in spec.synapses)


def _unit_working_bytes(spec, rows: float, precision: str) -> int:
    if _is_linear(spec):
        return nbytes(int(rows) * (spec.synapses[0].in_features + spec.neurons), precision)
    return nbytes(int(rows) * (spec.in_elems + spec.neurons + spec.out_elems), precision)


def _roofline_work(spec, counts: ActionCounts, rows: float, calls: int, bits: int) -> LayerWork:
    """What one unit does, for the per-layer roofline: its kernel kind (by its first weighted node), MACs,
    elementwise ops, the weights it streams once per call and the activations it reads and writes."""
    node = spec.synapses[0]
    if _is_linear(spec):
        kind = "linear"
    else:
        k = node.kernel if isinstance(node.kernel, tuple) else (node.kernel,)
        kind = kernel_kind("conv", groups=node.groups, in_channels=node.in_shape[0], kernel=k)
    per = bits / 8
    syn = spec.synapses
    weights = sum(n.weights for n in syn)
    if kind == "linear":
        elems = syn[0].in_features + syn[-1].neurons
    else:
        elems = math.prod(syn[0].in_shape) + math.prod(syn[-1].out_shape)
    return LayerWork(kind, counts.macs, counts.elementwise_ops, weights * per * max(calls, 1),
                     elems * per * rows, calls=max(calls, 1))


def _ranges(per_scenario: dict[str, float | None]) -> tuple[float, float] | None:
    lo, hi = per_scenario.get("low"), per_scenario.get("high")
    return None if lo is None or hi is None else (lo, hi)


@dataclass
class _UnitTally:
    """One unit's counts in one workload, before the static energy is shared out among the units:
    ``per_sample`` actions, and by scenario its dynamic ``energy`` and its ``latency`` per sample."""

    phases: UnitPhases
    mapping: UnitMapping
    per_sample: ActionCounts
    activity: InputActivity
    first: bool                    # the first conv unit (its input is the image)
    synops: float                  # per batch
    effective_synops: float        # per batch
    precision: str
    energy: dict[str, EnergyBreakdown]
    latency: dict[str, float | None]


def _tally(u: UnitPhases, m: UnitMapping, acts: TMapping[str, ActionEnergies], *, style: str, batch: int,
           activity: InputActivity, first: bool, params_local: bool, acts_local: bool,
           crossing_local: bool, compartments: int = 1) -> _UnitTally:
    """Count what unit ``u`` does in its phases (placed by :func:`classify`) and what that costs on each
    scenario's target; ``activity.share`` of the input-gated synaptic ops happen."""
    zero_fraction = 1.0 - activity.share   # below 0 where pooled spikes bring more events than elements
    spec, nominal = u.spec, acts["nominal"]
    linear = _is_linear(spec)
    ratio = spec.synops / spec.macs if spec.macs else 1.0     # real synapses per padded MAC
    counts = ActionCounts()
    inputs = synops = eff_synops = 0.0
    calls = 0
    for p in u.phases:
        place = classify(p, style=style, params_local=params_local, activations_local=acts_local,
                         crossing_local=crossing_local)
        p_syn, p_eff = p.macs * ratio, p.effective_macs(zero_fraction) * ratio
        synops, eff_synops = synops + p_syn, eff_synops + p_eff
        ew, nu, su = p.elementwise_ops, 0.0, 0.0
        if p.phase.startswith("forward"):
            r = _rows(p, spec)
            inputs += r
            calls += 1
            if nominal.neuron_update_j is not None:
                nu = r * spec.neurons * compartments     # a multi-compartment neuron updates each one
                ew = max(0.0, ew - r * spec.neurons * update_ops(spec))
        if p.phase == "update" and spec.trainable and nominal.synaptic_update_j is not None:
            su, ew = m.synapses, 0.0
        counts = counts + ActionCounts(
            macs=p_eff if nominal.event_driven else p.macs, dense_macs=p.macs, elementwise_ops=ew,
            neuron_updates=nu, synaptic_updates=su, read_on=place.read_on, write_on=place.write_on,
            read_off=place.read_off, write_off=place.write_off, interconnect_bytes=place.interconnect)
    per = counts.scaled(1 / batch)
    energies, lats = {}, {}
    for sc, a in acts.items():
        if a.roofline is not None and spec.synapses:   # MCU/GPU: the per-layer roofline sets the time
            bits = PRECISION_BITS[a.linear_precision if linear else a.conv_precision]
            t = layer_time(_roofline_work(spec, counts, inputs, calls, bits), a.roofline).cycles / a.roofline.clock_hz
        else:
            t = latency(counts, a, cores=m.cores, style=style, inputs=inputs, linear=linear)
        energies[sc], lats[sc] = dynamic_energy(per, a, linear=linear), (None if t is None else t / batch)
        if a.roofline is not None and a.running_w is not None and t is not None:
            energies[sc] = EnergyBreakdown(compute_j=a.running_w * t / batch)   # supply power × time
    return _UnitTally(phases=u, mapping=m, per_sample=per, activity=activity, first=first,
                      synops=synops, effective_synops=eff_synops,
                      precision=nominal.linear_precision if linear else nominal.conv_precision,
                      energy=energies, latency=lats)


def _encoder_estimate(m: UnitMapping, acts: TMapping[str, ActionEnergies], timesteps: int
                      ) -> tuple[UnitEstimate, dict[str, float], dict[str, float | None]]:
    """An on-chip input encoder (neurons, no synapses): every neuron updates every timestep, its cores
    sharing the neurons; per scenario its energy and latency per sample."""
    updates = m.neurons * timesteps
    per_core = math.ceil(m.neurons / max(m.cores, 1)) * timesteps
    energy = {sc: updates * (a.neuron_update_j or 0.0) for sc, a in acts.items()}
    lat = {sc: (None if a.neuron_update_time_s is None else per_core * a.neuron_update_time_s) for sc, a in acts.items()}
    ue = UnitEstimate(unit=ENCODER, energy=EnergyBreakdown(compute_j=energy["nominal"]), latency_s=lat["nominal"],
                      macs=0.0, effective_macs=0.0, elementwise_ops=0.0, neuron_updates=float(updates),
                      synaptic_updates=0.0, bytes_on_core=0.0, bytes_off_core=0.0, bytes_interconnect=0.0,
                      cores=m.cores, limited_by=m.limited_by, weights_on_chip=True, fan_in_fits=None,
                      input_zero_fraction=0.0, crossing=("input (written as bias)", "spikes out"),
                      energy_range=(energy["low"], energy["high"]), latency_range=_ranges(lat),
                      cores_by=dict(m.cores_by), activity_source="every neuron updates every timestep")
    return ue, energy, lat


def _estimate(cost: NetworkCost, hw: HardwareProfile, acts: TMapping[str, ActionEnergies], mapping: Mapping, *,
              activity: TMapping[str, InputActivity], peak: int | None, act_precision: str,
              concurrent: bool = False, timesteps: int = 1,
              overhead: TMapping[str, StackOverhead | None] | None = None, compartments: int = 1) -> WorkloadEstimate:
    """Per-unit and total estimate of one workload (``cost`` per batch) at the nominal values, with
    (low, high) ranges from the ``acts`` of each scenario. ``activity``: by unit name, what its input
    carries (:func:`.activity.resolve`); a unit not in it is dense. ``peak``: the workload's peak memory, None where it is not modelled. ``concurrent``: the units
    run at the same time (a many-core chip stepping every layer each timestep), so the slowest one sets
    the latency; otherwise they run one after another and their latencies add. A mapping with an
    :data:`~.locality.ENCODER` unit costs its neuron updates over ``timesteps``; ``overhead`` (by
    scenario) adds a software stack's time and energy per sample."""
    batch, style = cost.batch, mapping.style
    encoder = next((m for m in mapping.units if m.unit == ENCODER), None)
    enc = _encoder_estimate(encoder, acts, timesteps * compartments) if encoder is not None else None
    overhead = overhead or {}
    nominal = acts["nominal"]
    cap = mapping.on_chip_bytes
    fits = None if (style != "monolithic" or cap is None or peak is None) else peak <= cap
    notes = list(mapping.notes)
    if peak is None and style == "monolithic" and cap is not None:
        notes.append("peak memory not modelled: whether the working set fits on chip is unknown, so the tensors "
                     "that cross between units are charged off-core")
    tallies, conv_i = [], 0
    for u in cost.units:
        spec = u.spec
        is_conv = not _is_linear(spec)
        if style == "monolithic":
            rows = max((_rows(p, spec) for p in u.phases if p.phase.startswith("forward")), default=0.0)
            local = dict(params_local=mapping.weights_on_chip is not False,
                         acts_local=cap is None or _unit_working_bytes(spec, rows, act_precision) <= cap,
                         crossing_local=bool(fits))
        else:
            local = dict(params_local=True, acts_local=True, crossing_local=False)
        tallies.append(_tally(u, mapping.unit(u.unit), acts, style=style, batch=batch,
                              activity=activity.get(u.unit, _DENSE), first=is_conv and conv_i == 0,
                              compartments=compartments, **local))
        conv_i += is_conv
    # latency: units one after another, or (concurrent) all at once, the slowest setting the pace; static
    # power of every chip in use runs for that whole time and is shared among the units by their busy time
    latency_by: dict[str, float | None] = {}
    static_by: dict[str, float] = {}
    for sc, a in acts.items():
        ts = [t.latency[sc] for t in tallies] + ([enc[2][sc]] if enc is not None else [])
        latency_by[sc] = None if any(t is None for t in ts) else (max(ts, default=0.0) if concurrent else sum(ts))
        if latency_by[sc] is not None and overhead.get(sc) is not None:
            latency_by[sc] += overhead[sc].time_s
        static_by[sc] = 0.0 if (latency_by[sc] is None or a.static_w is None or a.all_in) else \
            a.static_w * latency_by[sc] * mapping.chips_needed
    energy_by = {sc: static_by[sc] + (overhead[sc].energy_j if overhead.get(sc) is not None else 0.0)
                 + (enc[1][sc] if enc is not None else 0.0) for sc in acts}
    units = []
    if enc is not None:   # its share of static power is left in the units' (it is small: neuron updates only)
        units.append(enc[0])
    for t in tallies:
        energies, lats, per, m = t.energy, t.latency, t.per_sample, t.mapping
        for sc in acts:
            busy = sum(other.latency[sc] for other in tallies) if static_by[sc] else 0.0
            if busy:
                energies[sc] = energies[sc] + EnergyBreakdown(static_j=static_by[sc] * lats[sc] / busy)
            energy_by[sc] += energies[sc].total_j - energies[sc].static_j
        units.append(UnitEstimate(
            unit=t.phases.unit, energy=energies["nominal"], latency_s=lats["nominal"], macs=per.dense_macs,
            effective_macs=per.macs, elementwise_ops=per.elementwise_ops, neuron_updates=per.neuron_updates,
            synaptic_updates=per.synaptic_updates, bytes_on_core=per.read_on + per.write_on,
            bytes_off_core=per.read_off + per.write_off, bytes_interconnect=per.interconnect_bytes,
            cores=m.cores, limited_by=m.limited_by, weights_on_chip=mapping.weights_on_chip,
            fan_in_fits=m.fan_in_fits, input_zero_fraction=max(0.0, 1.0 - t.activity.share),
            activity=t.activity.share, activity_source=t.activity.source,
            crossing=crossing_tensors(cost.workload, t.phases.spec, first=t.first),
            synops=t.synops / batch, effective_synops=t.effective_synops / batch,
            energy_range=(energies["low"].total_j, energies["high"].total_j), latency_range=_ranges(lats),
            precision=t.precision, cores_by=dict(m.cores_by)))
    if style == "monolithic" and fits is False and nominal.off_core_level not in ("off_chip", "on_chip"):
        notes.append(f"the working set ({peak / 2**20:.1f} MiB) exceeds on-chip memory ({cap / 2**20:.1f} MiB) and "
                     f"{hw.name} has no off-chip memory level: the workload does not fit the device")
    energy = EnergyBreakdown(overhead_j=overhead["nominal"].energy_j) if overhead.get("nominal") else EnergyBreakdown()
    for ue in units:
        energy = energy + ue.energy
    kinds = {("linear" if _is_linear(u.spec) else "conv"): ue.precision
             for u, ue in zip(cost.units, units[1:] if enc is not None else units, strict=True)}
    executed = next(iter(kinds.values())) if len(set(kinds.values())) == 1 else \
        ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
    return WorkloadEstimate(
        workload=cost.workload, supported=True, per_unit=tuple(units), energy=energy, latency_s=latency_by["nominal"],
        peak_memory_bytes=peak, fits_on_chip=fits, cores_needed=mapping.cores_needed,
        chips_needed=mapping.chips_needed, weights_on_chip=mapping.weights_on_chip,
        macs=sum(ue.macs for ue in units), effective_macs=sum(ue.effective_macs for ue in units),
        bytes_on_core=sum(ue.bytes_on_core for ue in units), bytes_off_core=sum(ue.bytes_off_core for ue in units),
        bytes_interconnect=sum(ue.bytes_interconnect for ue in units), notes=tuple(notes),
        synops=sum(ue.synops for ue in units), effective_synops=sum(ue.effective_synops for ue in units),
        energy_range=(energy_by["low"], energy_by["high"]), latency_range=_ranges(latency_by),
        cores_used=mapping.cores_used or mapping.cores_needed, precision=executed,
        static_range=(static_by["low"], static_by["high"]), overhead=overhead.get("nominal"))


_DENSE = InputActivity(1.0, "default: dense")


def _optimizer_words(optimizer: OptimizerCost) -> str:
    """The configured optimiser and the state it keeps, in words (for the on-chip learning note)."""
    if optimizer.name == "adam":
        return "the configured optimiser (Adam) keeps two moments per parameter"
    if optimizer.state_per_param:
        return "the configured optimiser (SGD with momentum) keeps a momentum buffer per parameter"
    return "the configured optimiser (SGD without momentum) keeps no state, but applies each weight's exact gradient"


def _learning_notes(hw: HardwareProfile, workload: str, style: str, optimizer: OptimizerCost = ADAM) -> list[str]:
    """What an on-chip learning estimate stands for when the chip cannot run the configured optimiser."""
    if not hw.on_chip_learning or hw.learning is None:
        return []
    rule = hw.learning
    out = [(f"{workload}: {_optimizer_words(optimizer)}; {hw.name}'s learning "
            f"engine cannot run it, so training is costed as its nearest supported rule: a {rule.rule.value} rule "
            f"({rule.rule.source}) that updates every stored synapse once per batch, storing the weight plus "
            f"{rule.synapse_state_bytes:g} B per synapse and {rule.neuron_state_bytes:g} B of traces per neuron")]
    if style == "shared":
        out.append(f"{workload}: conv kernels are shared per core, and each core's copy learns from its own outputs "
                   "only: the chip has no step that sums the copies' updates, so they drift apart (counted: one "
                   "update per stored copy)")
    return out


def _modelled_peak(model) -> int | str:
    """The peak bytes ``model()`` replays, or why it cannot (a block that does not model its memory)."""
    try:
        return model().peak_bytes
    except NotModelled as exc:
        return str(exc)


def profile_network(layers: Sequence[BlockSpec], hw: HardwareProfile | str, *, num_classes: int, batch: int,
                    precision: str = "fp32", sparsity: Sequence[float] | None = None,
                    bp_sparsity: Sequence[float] | None = None, readout_from: int = 1,
                    linear_readout: bool = True,
                    workloads: Sequence[str] = PROFILED, objective: ObjectiveCost = PAIRS,
                    activity: ActivitySources | None = None, bp_activity: ActivitySources | None = None,
                    weights: TMapping[str, WeightStats] | None = None,
                    bp_weights: TMapping[str, WeightStats] | None = None,
                    optimizers: Optimizers = DEFAULT_OPTIMIZERS) -> ProfileReport:
    """Estimate ``workloads`` of the FF network ``layers`` (and of its BP twin: the same shapes, every
    layer trained, a linear head) on ``hw``, per unit and in total, per sample.

    ``precision``: the format to estimate in (fp32, bf16 or int8; the run's by default in
    :func:`profile_config`), mapped to the target's native formats and to what each op executes in.
    ``sparsity``: each FF unit's input zero fraction (:func:`~ffneuro.profiler.sparsity.measure_sparsity`),
    used on event-driven targets for FF training and inference; ``bp_sparsity`` likewise for BP.
    ``activity``/``bp_activity``: everything else known about the activity (per-layer effective synaptic
    ops, simulated or given spike rates, the input's, timesteps; :mod:`.activity`); given and simulated
    rates and the timesteps cost the inference workloads only.
    ``weights``/``bp_weights``: per layer name the stored weights' counts (:mod:`.static`), for the
    parameter count, footprint and connection sparsity (from the specs where absent).
    ``linear_readout``: whether FF training also trains the linear readout (config ``readout`` linear/both).
    ``objective``: what the FF goodness and loss cost (default: the paper's, pairs of positives and negatives).
    ``optimizers``: the FF units' and linear readout's optimisers and the readout's bias (default: Adam, a
    bias; BP's twin is always Adam).
    """
    hw = load_profile(hw) if isinstance(hw, str) else hw
    layers = list(layers)
    for name, sp in (("sparsity", sparsity), ("bp_sparsity", bp_sparsity)):
        if sp is not None and (len(sp) != len(layers) or any(not 0.0 <= v <= 1.0 for v in sp)):
            raise ValueError(f"{name} needs one zero fraction in [0, 1] per unit ({len(layers)}), got {list(sp)}")
    unknown_workloads = set(workloads) - set(PROFILED)
    if unknown_workloads:
        raise ValueError(f"unknown workloads {sorted(unknown_workloads)}; valid: {', '.join(PROFILED)}")
    if precision not in ESTIMATE_PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(ESTIMATE_PRECISIONS)}")
    acts = {sc: action_energies(hw, precision, sc) for sc in SCENARIOS}
    nominal = acts["nominal"]
    native = nominal.native_precision
    act_prec = native if native in ELEMENT_BITS else precision
    native_w = native if native in ELEMENT_BITS else precision
    bp_layers = [replace(s, name=f"layer{i + 1}", trainable=True) for i, s in enumerate(layers)]
    ff_names, bp_names = [s.name for s in layers], [s.name for s in bp_layers]
    ff_sources = _with_sparsity(activity, ff_names, sparsity)
    bp_sources = _with_sparsity(bp_activity, bp_names, bp_sparsity)
    ff_wiring = _chain_wiring(layers) + [_readout_wiring(layers, readout_spec(layers, num_classes, readout_from,
                                                                                 optimizers.readout_bias),
                                                         readout_from)]
    bp_wiring = _chain_wiring(bp_layers) + [_readout_wiring(bp_layers, head_spec(bp_layers, num_classes),
                                                            len(bp_layers))]
    # a GPU/CPU runs this package's PyTorch code; anything else is assumed to run fused kernels
    scheme = "pytorch" if (hw.kind in ("gpu", "cpu") and act_prec in ("fp32", "bf16")) else "minimal"
    out: dict[str, WorkloadEstimate] = {}
    style = mapping_style(hw)
    notes = []
    for w in workloads:
        training = w in TRAINING
        if training and not hw.supports_training:
            out[w] = WorkloadEstimate(workload=w, supported=False, reason=f"{hw.name} does not support training: "
                                      f"{hw.training_note or 'supports_training = false'}")
            continue
        master = "fp32" if training else native_w   # training keeps an fp32 master copy
        if w == "ff_train":
            cost = ff_training_costs(layers, num_classes=num_classes, batch=batch, precision=act_prec,
                                     linear_readout=linear_readout, readout_from=readout_from, master=master,
                                     objective=objective, optimizers=optimizers)
            peak = _modelled_peak(lambda: ff_memory(layers, batch, act_prec, num_classes=num_classes,
                                                    linear_readout=linear_readout, readout_from=readout_from,
                                                    scheme=scheme, objective=objective, optimizers=optimizers))
            sources, wiring, stats = ff_sources, ff_wiring, weights
        elif w == "bp_train":
            cost = bp_training_costs(bp_layers, num_classes=num_classes, batch=batch, precision=act_prec, master=master)
            peak = _modelled_peak(lambda: bp_memory(bp_layers, batch, act_prec, num_classes=num_classes, scheme=scheme))
            sources, wiring, stats = bp_sources, bp_wiring, bp_weights
        elif w == "bp_infer":
            cost = inference_costs(bp_layers, readout="linear", num_classes=num_classes, batch=batch,
                                   precision=act_prec, algo="bp", master=master)
            peak = inference_peak_bytes(bp_layers, batch, act_prec, readout="linear", num_classes=num_classes,
                                        weight_precision=master, algo="bp")
            sources, wiring, stats = bp_sources, bp_wiring, bp_weights
        else:
            readout = w.removeprefix("infer_")
            cost = inference_costs(layers, readout=readout, num_classes=num_classes, batch=batch, precision=act_prec,
                                   readout_from=readout_from, master=master, objective=objective,
                                   readout_bias=optimizers.readout_bias)
            peak = inference_peak_bytes(layers, batch, act_prec, readout=readout, num_classes=num_classes,
                                        readout_from=readout_from, weight_precision=master, objective=objective,
                                        readout_bias=optimizers.readout_bias)
            sources, wiring, stats = ff_sources, ff_wiring, weights
        timesteps = 1 if training else sources.timesteps
        if timesteps > 1:   # an SNN runs every layer once per timestep
            cost = replace(cost, units=tuple(u.scaled(timesteps) for u in cost.units))
        mapping = map_units([u.spec for u in cost.units], hw, training=training, precision=act_prec,
                            weight_precision=native_w, work={u.unit: u.total.macs for u in cost.units})
        est = _estimate(cost, hw, acts, mapping, activity=resolve(wiring, sources, deployed=not training),
                        peak=None if isinstance(peak, str) else peak, act_precision=act_prec)
        est = replace(est, timesteps=timesteps, **workload_static(cost.units, stats, master))
        if isinstance(peak, str):
            est = replace(est, notes=est.notes + (f"peak memory not modelled: {peak}",))
        if training:
            units_optimizer = optimizers.units if w == "ff_train" else ADAM   # BP's twin is always Adam
            est = replace(est, notes=est.notes + tuple(_learning_notes(hw, w, style, units_optimizer)))
        if timesteps > 1:
            est = replace(est, notes=est.notes + (f"{timesteps} timesteps per sample (the simulation's): every layer "
                                                  "runs once per timestep",))
        out[w] = est
    notes += _precision_notes(hw, precision, nominal)
    if nominal.event_driven:
        notes.append("event-driven target: synaptic events are charged for real synapses only (no padding taps), "
                     "and forward and weight-gradient events with a zero input are skipped; each unit's activity "
                     "and its source are in the per-unit table (given and simulated activity cost inference, "
                     "training keeps the measured sparsity)")
    return ProfileReport(target=hw.label, kind=hw.kind, precision=precision, native_precision=native, batch=batch,
                         num_classes=num_classes, mapping_style=style, sparsity=_frozen(sparsity), actions=nominal,
                         workloads=out, unknown=nominal.unknown(), notes=tuple(notes),
                         bp_sparsity=_frozen(bp_sparsity))


def _with_sparsity(sources: ActivitySources | None, names: Sequence[str],
                   sparsity: Sequence[float] | None) -> ActivitySources:
    """``sources`` with the measured zero fractions of the ``sparsity`` list (one per block unit) added."""
    sources = sources or ActivitySources()
    if sparsity is None:
        return sources
    return replace(sources, zero_fractions={**_by_block(names, sparsity), **sources.zero_fractions})


def _fired(unit) -> int:
    """Outputs a unit's neurons fire per pass: before its first pooling node, else its output."""
    pools = unit.pools
    return math.prod(pools[0].in_shape) if pools else unit.out_elems


def _chain_wiring(layers: Sequence[BlockSpec]) -> list[Wiring]:
    return [Wiring(s.name, s.in_elems, (layers[i - 1].name,) if i else (INPUT,), _fired(s.unit()))
            for i, s in enumerate(layers)]


def _readout_wiring(layers: Sequence[BlockSpec], spec, readout_from: int) -> Wiring:
    """The readout or head: a linear layer on the hand-on outputs of layers ``readout_from``..L."""
    return Wiring(spec.name, spec.in_features, tuple(s.name for s in layers[readout_from - 1:]), spec.out_features)


def profile_graph(spec: NetSpec, hw: HardwareProfile | str, *, timesteps: int = 1,
                  activity: float | TMapping[str, float] | None = None, input_activity: float | None = None,
                  precision: str = "fp32", batch: int = 1, input_encoder: bool = False,
                  stack: str | None = None, input_cores: int = 1, compartments_per_neuron: int = 1,
                  delay_bits: TMapping[str, int] | None = None) -> ProfileReport:
    """Inference of a layer-spec graph (e.g. read from a NIR file) on ``hw``, per sample: one workload,
    ``infer``, with the same fields as :func:`profile_network`'s.

    Every layer runs once per timestep. ``activity``: events per neuron per timestep of each spiking
    layer's output (one number, or by unit name; a named non-spiking layer counts too; default
    :data:`DEFAULT_ACTIVITY`); a unit fed by such a layer receives its events (several per input element
    where a sum pool gathers them). ``input_activity``: the network input's events per element per
    timestep (default: dense analog input, charged as one event per element). Other inputs are dense.
    Event-driven targets charge real synapses × events; dense targets charge every MAC of every timestep.
    ``input_encoder``: the input is encoded on chip by a layer of neurons, one per input element, with
    cores of its own (many-core targets). ``stack``: the software stack whose per-timestep and
    per-inference costs are added (many-core targets whose profile gives ``[stacks]``; None: the first);
    ``input_cores``: cores the host injects input spikes into, for the stack's per-input-core time.
    ``compartments_per_neuron``: neuron slots each neuron takes on a many-core chip (NxTF builds a neuron
    with subtractive 'soft' reset from 2 compartments). ``delay_bits``: by unit name, the bits of the
    unit's synaptic delays (a network trained with delays, e.g. by SLAYER): the partitioner's dendritic
    accumulator limit then caps its neurons per core.
    """
    hw = load_profile(hw) if isinstance(hw, str) else hw
    if min(input_cores, timesteps, compartments_per_neuron) < 1:
        raise ValueError(f"timesteps, input_cores and compartments_per_neuron must be >= 1, got {timesteps}, "
                         f"{input_cores} and {compartments_per_neuron}")
    if precision not in ESTIMATE_PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(ESTIMATE_PRECISIONS)}")
    unknown = set(delay_bits or {}) - {u.name for u in spec.units}
    if unknown:
        raise ValueError(f"delay_bits names no unit of the network: {', '.join(sorted(unknown))}")
    values = list(activity.values()) if isinstance(activity, TMapping) else [activity, input_activity]
    if any(v is not None and not (math.isfinite(v) and v >= 0) for v in values):
        raise ValueError(f"activity must be a finite number >= 0 (events per neuron per timestep), got {activity}")
    acts = {sc: action_energies(hw, precision, sc) for sc in SCENARIOS}
    nominal = acts["nominal"]
    native = nominal.native_precision
    act_prec = native if native in ELEMENT_BITS else precision
    cost = graph_inference_costs(spec, timesteps=timesteps, batch=batch, precision=act_prec, master=act_prec)
    names = [u.name for u in spec.units]
    spiking = [u.name for u in spec.units if u.spiking]
    neurons = {n: (DEFAULT_ACTIVITY, "default") for n in spiking}
    neurons.update(given_neurons(activity, names, spiking))
    sources = ActivitySources(neurons=neurons, input=None if input_activity is None else (input_activity, "given"))
    wiring = []
    for u in spec.units:
        feeder = spec.feeder(u)
        wiring.append(Wiring(u.name, u.in_elems, (feeder.name if feeder is not None else INPUT,), _fired(u)))
    many_core = mapping_style(hw) != "monolithic"
    mapping = map_units(list(spec.units), hw, training=False, precision=act_prec, weight_precision=act_prec,
                        work={u.unit: u.total.macs for u in cost.units},
                        encoder_shape=spec.input_shape if (input_encoder and many_core) else None,
                        compartments_per_neuron=compartments_per_neuron, delay_bits=delay_bits)
    overhead = {sc: stack_overhead(hw, timesteps=timesteps, stack=stack, input_cores=input_cores, scenario=sc)
                for sc in SCENARIOS} if many_core else {}
    work = max(nbytes(batch * (u.in_elems + u.out_elems), act_prec) for u in spec.units)
    peak = sum(nbytes(u.params, act_prec) for u in spec.units) + work
    # a many-core chip steps every layer in each timestep (Loihi's barrier-synchronised timesteps, TrueNorth's
    # tick): the layers run concurrently and the slowest sets the pace; one device runs them in turn
    concurrent = mapping.style != "monolithic"
    est = _estimate(cost, hw, acts, mapping, activity=resolve(wiring, sources, deployed=True),
                    peak=peak, act_precision=act_prec, concurrent=concurrent, timesteps=timesteps,
                    overhead=overhead, compartments=compartments_per_neuron if many_core else 1)
    est = replace(est, timesteps=timesteps, **workload_static(cost.units, None, act_prec))
    notes = _precision_notes(hw, precision, nominal)
    if est.overhead is not None:
        o = est.overhead
        notes.append(f"software stack {o.stack}: {format_si(o.step_time_s, 's')} per timestep (barrier, management, "
                     f"host input into {input_cores} core(s)) and {format_si(o.inference_time_s, 's')} per inference "
                     f"(host I/O): {format_si(o.time_s, 's')} and {format_si(o.energy_j, 'J')} per sample")
    if input_encoder and many_core:
        notes.append(f"input encoded on chip: {math.prod(spec.input_shape):,} neurons, no synapses, updated every "
                     "timestep, on cores of their own")
    if concurrent:
        notes.append("layers run concurrently, every layer once per timestep: the slowest layer sets the latency "
                     "(time per sample at full throughput)")
    notes.append(f"{timesteps} timestep(s) per sample; "
                 + ("a unit after a spiking layer receives that layer's events (activity: events per neuron per "
                    "timestep; each unit's is in the per-unit table with its source); the network input is "
                    + ("given" if input_activity is not None else "dense analog (--input-activity for spikes)")
                    if spiking else "no spiking neurons: every input dense"))
    if nominal.event_driven:
        notes.append("event-driven target: synaptic events are charged for real synapses only (no padding taps), "
                     "one per input event and synapse")
    return ProfileReport(target=hw.label, kind=hw.kind, precision=precision, native_precision=native, batch=batch,
                         num_classes=0, mapping_style=mapping.style, sparsity=None, actions=nominal,
                         workloads={"infer": est}, unknown=nominal.unknown(), notes=tuple(notes))


def _by_block(names: Sequence[str], sparsity: Sequence[float] | None) -> dict[str, float]:
    """The measured sparsity list (one input zero fraction per block unit, in order, whatever the block
    type; readouts and heads are not in it) keyed by unit name."""
    return {} if sparsity is None else dict(zip(names, (float(v) for v in sparsity), strict=True))


def _frozen(sp):
    return None if sp is None else tuple(float(v) for v in sp)


def _precision_notes(hw: HardwareProfile, precision: str, a: ActionEnergies) -> list[str]:
    notes = []
    if a.roofline is not None:
        notes.append(f"latency: {hw.name}'s per-layer roofline for {a.native_precision} (max(compute, memory) + call "
                     f"overhead per layer, at {a.roofline.clock_hz / 1e6:g} MHz)"
                     + ("" if a.running_w is None else f"; energy = supply power {a.running_w * 1e3:.4g} mW x latency"))
    if a.all_in and not (a.roofline is not None and a.running_w is not None):
        notes.append(f"compute.{a.conv_precision} is all-in: memory, interconnect and static energy are inside the MAC "
                     "energy and are not added (their byte counts are still reported)")
    if a.native_precision != precision:
        notes.append(f"{precision} maps to {hw.name}'s native {a.native_precision}: activations are counted at "
                     f"{a.native_precision}")
    notes += list(a.executed_notes)
    return notes


def profile_config(config, image_shape: Sequence[int], num_classes: int, hw: HardwareProfile | str, *,
                   sparsity: Sequence[float] | None = None, bp_sparsity: Sequence[float] | None = None,
                   batch: int | None = None, workloads: Sequence[str] = PROFILED,
                   precision: str | None = None, activity: ActivitySources | None = None,
                   bp_activity: ActivitySources | None = None, weights: TMapping[str, WeightStats] | None = None,
                   bp_weights: TMapping[str, WeightStats] | None = None) -> ProfileReport:
    """:func:`profile_network` for the network a :class:`~ffneuro.config.RunConfig` builds (no model
    needed); ``precision`` overrides the run's (e.g. int8 to estimate a quantised deployment)."""
    # the same refusal as for training: one line naming the unit
    layers = config.check_shapes(image_shape, num_classes, algo="ff")
    return profile_network(layers, hw,
                           num_classes=num_classes,
                           batch=batch or config.batch_size, precision=precision or config.precision,
                           sparsity=sparsity, bp_sparsity=bp_sparsity,
                           readout_from=config.readout_from, linear_readout=config.readout in ("linear", "both"),
                           workloads=workloads,
                           objective=objective_cost(config, num_classes), activity=activity,
                           bp_activity=bp_activity, weights=weights, bp_weights=bp_weights,
                           optimizers=optimizers_of(config))


# --------------------------------------------------------------------------------------------------


def format_si(x: float | None, unit: str = "") -> str:
    """A number with an SI prefix (1.23 µJ); "?" for unknown."""
    if x is None:
        return "?"
    if x == 0:
        return f"0 {unit}".rstrip()
    x = float(f"{x:.3g}")  # round first, so 999.7 µs prints as 1 ms, not "1e+03 µs"
    exp = int(math.floor(math.log10(abs(x)) / 3)) * 3
    prefixes = {-15: "f", -12: "p", -9: "n", -6: "µ", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T"}
    exp = max(-15, min(12, exp))
    return f"{x / 10 ** exp:.3g} {prefixes[exp]}{unit}"
