"""Profile a network on a hardware target: FF training, BP training and both inference readouts.

:func:`profile_network` combines the accounting (ops and bytes per unit and phase), the locality
mapping (cores, what stays on a core) and the energy model (energy per action) into a
:class:`ProfileReport`, per unit and in total, per sample. ``ProfileReport.to_dict()`` is plain JSON.
"""
from __future__ import annotations

import math
from collections.abc import Mapping as TMapping
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

from ..accounting import (
    ELEMENT_BITS,
    LayerSpec,
    LinearSpec,
    NetworkCost,
    bp_memory,
    bp_training_costs,
    ff_memory,
    ff_training_costs,
    inference_costs,
    inference_peak_bytes,
    layer_specs,
    nbytes,
)
from ..accounting import ops as acc_ops
from .energy import (
    ActionCounts,
    ActionEnergies,
    EnergyBreakdown,
    action_energies,
    dynamic_energy,
    latency,
)
from .hardware import HardwareProfile, load_profile
from .locality import Mapping, classify, crossing_tensors, map_units

PROFILED = ("ff_train", "bp_train", "infer_linear", "infer_goodness")
TRAINING = ("ff_train", "bp_train")


@dataclass(frozen=True)
class UnitEstimate:
    """One unit in one workload; energies, latency, ops and bytes are per sample."""

    unit: str
    energy: EnergyBreakdown
    latency_s: float | None
    macs: float                    # dense
    effective_macs: float          # what was charged: input-gated MACs skipped on event-driven targets
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

    @property
    def energy_j(self) -> float:
        return self.energy.total_j

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["energy"], d["crossing"] = self.energy.to_dict(), list(self.crossing)
        return d


@dataclass(frozen=True)
class WorkloadEstimate:
    """One workload on one target. Totals are per sample; ``supported=False`` carries a ``reason``
    and no numbers."""

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

    def to_columns(self) -> dict:
        """A flat form for ``RunWriter.write_group`` (netCDF-style, like ``/accounting``): per workload a
        subgroup with a ``unit`` coordinate, one array per per-unit field and ``total_*`` scalars.
        Unknown numbers are NaN; booleans are 1.0/0.0 (NaN: unknown); unsupported workloads keep only
        ``supported = 0`` and their ``reason``."""
        def num(v) -> float:
            return float("nan") if v is None else float(v)

        out: dict = {"target": self.target, "kind": self.kind, "precision": self.precision,
                     "native_precision": self.native_precision, "batch": self.batch,
                     "num_classes": self.num_classes, "mapping_style": self.mapping_style,
                     "sparsity": [num(v) for v in self.sparsity] if self.sparsity else [],
                     "bp_sparsity": [num(v) for v in self.bp_sparsity] if self.bp_sparsity else [],
                     "unknown": list(self.unknown) or "", "notes": list(self.notes) or ""}
        for name, w in self.workloads.items():
            g: dict = {"supported": float(w.supported), "reason": w.reason}
            if w.supported:
                g["unit"] = [u.unit for u in w.per_unit]
                for term in ("compute_j", "on_core_j", "off_core_j", "interconnect_j", "static_j"):
                    g[term] = [getattr(u.energy, term) for u in w.per_unit]
                    g[f"total_{term}"] = getattr(w.energy, term)
                g["energy_j"] = [u.energy_j for u in w.per_unit]
                for f in ("latency_s", "macs", "effective_macs", "elementwise_ops", "neuron_updates",
                          "synaptic_updates", "bytes_on_core", "bytes_off_core", "bytes_interconnect", "cores",
                          "weights_on_chip", "fan_in_fits", "input_zero_fraction"):
                    g[f] = [num(getattr(u, f)) for u in w.per_unit]
                for f in ("energy_j", "latency_s", "peak_memory_bytes", "fits_on_chip", "cores_needed",
                          "chips_needed", "weights_on_chip", "macs", "effective_macs", "bytes_on_core",
                          "bytes_off_core", "bytes_interconnect", "off_core_share"):
                    g[f"total_{f}"] = num(getattr(w, f))
                g["notes"] = list(w.notes) or ""
            out[name] = g
        return out

    def to_dict(self) -> dict:
        return {"target": self.target, "kind": self.kind, "precision": self.precision,
                "native_precision": self.native_precision, "batch": self.batch, "num_classes": self.num_classes,
                "mapping_style": self.mapping_style,
                "sparsity": None if self.sparsity is None else list(self.sparsity),
                "bp_sparsity": None if self.bp_sparsity is None else list(self.bp_sparsity),
                "actions": self.actions.to_dict(), "unknown": list(self.unknown), "notes": list(self.notes),
                "workloads": {k: w.to_dict() for k, w in self.workloads.items()}}


# --------------------------------------------------------------------------------------------------


def _rows(phase, spec) -> float:
    return phase.macs / spec.macs if spec.macs else 0.0


def _unit_working_bytes(spec, rows: float, precision: str) -> int:
    if isinstance(spec, LinearSpec):
        return nbytes(int(rows) * (spec.in_features + spec.out_features), precision)
    return nbytes(int(rows) * (spec.in_elems + spec.neurons + spec.out_elems), precision)


def _estimate(cost: NetworkCost, hw: HardwareProfile, acts: ActionEnergies, mapping: Mapping, *,
              sparsity: Sequence[float] | None, peak: int, act_precision: str) -> WorkloadEstimate:
    """Per-unit and total estimate of one workload (``cost`` per batch)."""
    batch, style = cost.batch, mapping.style
    cap = mapping.on_chip_bytes
    fits = None if (style != "monolithic" or cap is None) else peak <= cap
    notes = []
    units, conv_i = [], 0
    for u in cost.units:
        spec, m = u.spec, mapping.unit(u.unit)
        is_conv = isinstance(spec, LayerSpec)
        s = (sparsity[conv_i] if (sparsity is not None and is_conv) else 0.0)
        first = is_conv and conv_i == 0
        conv_i += is_conv
        rows = max((_rows(p, spec) for p in u.phases if p.phase.startswith("forward")), default=0.0)
        if style == "monolithic":
            params_local = mapping.weights_on_chip is not False
            acts_local = cap is None or _unit_working_bytes(spec, rows, act_precision) <= cap
            crossing_local = bool(fits)
        else:
            params_local = acts_local = True
            crossing_local = False
        counts = ActionCounts()
        inputs = 0.0
        for p in u.phases:
            place = classify(p, style=style, params_local=params_local, activations_local=acts_local,
                             crossing_local=crossing_local)
            macs = p.effective_macs(s) if acts.event_driven else p.macs
            ew, nu, su = p.elementwise_ops, 0.0, 0.0
            if p.phase.startswith("forward"):
                r = _rows(p, spec)
                inputs += r
                if acts.neuron_update_j is not None:
                    nu = r * spec.neurons
                    per_neuron = (acc_ops.BIAS_OPS if spec.bias else 0) + (acc_ops.RELU_OPS if is_conv else 0)
                    ew -= r * spec.neurons * per_neuron
            if p.phase == "update" and spec.trainable and acts.synaptic_update_j is not None:
                su, ew = m.synapses, 0.0
            counts = counts + ActionCounts(macs, p.macs, ew, nu, su, place.read_on, place.write_on,
                                           place.read_off, place.write_off, place.interconnect)
        t = latency(counts, acts, cores=m.cores, style=style, inputs=inputs)
        per = counts.scaled(1 / batch)
        energy = dynamic_energy(per, acts)
        if t is not None and acts.static_w is not None and not acts.all_in:
            energy = energy + EnergyBreakdown(static_j=acts.static_w * t / batch * mapping.chips_needed)
        units.append(UnitEstimate(
            u.unit, energy, None if t is None else t / batch, per.dense_macs, per.macs, per.elementwise_ops,
            per.neuron_updates, per.synaptic_updates, per.read_on + per.write_on, per.read_off + per.write_off,
            per.interconnect_bytes, m.cores, m.limited_by, mapping.weights_on_chip, m.fan_in_fits, s,
            crossing_tensors(cost.workload, spec, first=first)))
        if m.fan_in_fits is False:
            notes.append(f"{u.unit}: a neuron's fan-in ({m.fan_in}) exceeds a core's input axons; it must be "
                         "split over several neurons/cores, so its core count is a lower bound")
    if style == "monolithic" and fits is False and acts.off_core_level not in ("off_chip", "on_chip"):
        notes.append(f"the working set ({peak / 2**20:.1f} MiB) exceeds on-chip memory ({cap / 2**20:.1f} MiB) and "
                     f"{hw.name} has no off-chip memory level: the workload does not fit the device")
    if style == "neurons" and cost.workload in TRAINING:
        notes.append("conv weights are unrolled per neuron: training on chip updates each copy separately "
                     "(weight sharing is not native), which the estimate does not correct for")
    energy = EnergyBreakdown()
    for ue in units:
        energy = energy + ue.energy
    lat = None if any(ue.latency_s is None for ue in units) else sum(ue.latency_s for ue in units)
    return WorkloadEstimate(
        cost.workload, True, "", tuple(units), energy, lat, peak, fits, mapping.cores_needed, mapping.chips_needed,
        mapping.weights_on_chip, sum(ue.macs for ue in units), sum(ue.effective_macs for ue in units),
        sum(ue.bytes_on_core for ue in units), sum(ue.bytes_off_core for ue in units),
        sum(ue.bytes_interconnect for ue in units), tuple(notes))


def profile_network(layers: Sequence[LayerSpec], hw: HardwareProfile | str, *, num_classes: int, batch: int,
                    precision: str = "fp32", sparsity: Sequence[float] | None = None,
                    bp_sparsity: Sequence[float] | None = None, readout_from: int = 1,
                    linear_readout: bool = True, goodness: str = "sumsq",
                    workloads: Sequence[str] = PROFILED) -> ProfileReport:
    """Estimate ``workloads`` of the FF network ``layers`` (and of its BP twin: the same shapes, every
    layer trained, a linear head) on ``hw``, per unit and in total, per sample.

    ``sparsity``: each FF unit's input zero fraction (:func:`~ffneuro.profiler.sparsity.measure_sparsity`),
    used on event-driven targets for FF training and inference; ``bp_sparsity`` likewise for BP.
    ``linear_readout``: whether FF training also trains the linear readout (config ``readout`` linear/both).
    """
    hw = load_profile(hw) if isinstance(hw, str) else hw
    layers = list(layers)
    for name, sp in (("sparsity", sparsity), ("bp_sparsity", bp_sparsity)):
        if sp is not None and (len(sp) != len(layers) or any(not 0.0 <= v <= 1.0 for v in sp)):
            raise ValueError(f"{name} needs one zero fraction in [0, 1] per unit ({len(layers)}), got {list(sp)}")
    unknown_workloads = set(workloads) - set(PROFILED)
    if unknown_workloads:
        raise ValueError(f"unknown workloads {sorted(unknown_workloads)}; valid: {', '.join(PROFILED)}")
    acts = action_energies(hw, precision)
    native = acts.native_precision
    act_prec = native if native in ELEMENT_BITS else precision
    native_w = native if native in ELEMENT_BITS else precision
    bp_layers = [LayerSpec(f"layer{i + 1}", s.in_shape, s.filters, s.kernel, s.pool, trainable=True, bias=s.bias)
                 for i, s in enumerate(layers)]
    # a GPU/CPU runs this package's PyTorch code; anything else is assumed to run fused kernels
    scheme = "pytorch" if (hw.kind in ("gpu", "cpu") and act_prec in ("fp32", "bf16")) else "minimal"
    out: dict[str, WorkloadEstimate] = {}
    style = None
    for w in workloads:
        training = w in TRAINING
        if training and not hw.supports_training:
            out[w] = WorkloadEstimate(w, False, f"{hw.name} does not support training: "
                                      f"{hw.training_note or 'supports_training = false'}")
            continue
        master = "fp32" if training else native_w   # training keeps an fp32 master copy
        if w == "ff_train":
            cost = ff_training_costs(layers, num_classes=num_classes, batch=batch, precision=act_prec,
                                     linear_readout=linear_readout, readout_from=readout_from, master=master)
            peak = ff_memory(layers, batch, act_prec, num_classes=num_classes, linear_readout=linear_readout,
                             readout_from=readout_from, goodness=goodness, scheme=scheme).peak_bytes
            sp = sparsity
        elif w == "bp_train":
            cost = bp_training_costs(bp_layers, num_classes=num_classes, batch=batch, precision=act_prec, master=master)
            peak = bp_memory(bp_layers, batch, act_prec, num_classes=num_classes, scheme=scheme).peak_bytes
            sp = bp_sparsity
        else:
            readout = w.removeprefix("infer_")
            cost = inference_costs(layers, readout=readout, num_classes=num_classes, batch=batch, precision=act_prec,
                                   readout_from=readout_from, master=master)
            peak = inference_peak_bytes(layers, batch, act_prec, readout=readout, num_classes=num_classes,
                                        readout_from=readout_from, weight_precision=master)
            sp = sparsity
        mapping = map_units([u.spec for u in cost.units], hw, training=training, precision=act_prec,
                            weight_precision=native_w)
        style = mapping.style
        out[w] = _estimate(cost, hw, acts, mapping, sparsity=sp, peak=peak, act_precision=act_prec)
    notes = []
    if acts.all_in:
        notes.append(f"compute.{native} is all-in: memory, interconnect and static energy are inside the MAC "
                     "energy and are not added (their byte counts are still reported)")
    if native != precision:
        notes.append(f"the run's {precision} maps to {hw.name}'s native {native}: activations are counted at {native}")
    if acts.event_driven:
        given = {"FF": sparsity is not None, "BP": bp_sparsity is not None}
        notes.append("event-driven target: forward and weight-gradient MACs with a zero input are skipped ("
                     + "; ".join(f"{k}: {'measured input sparsity' if v else 'none given, dense'}"
                                 for k, v in given.items()) + ")")

    def frozen(sp):
        return None if sp is None else tuple(float(v) for v in sp)

    return ProfileReport(hw.name, hw.kind, precision, native, batch, num_classes, style or "", frozen(sparsity),
                         acts, out, acts.unknown(), tuple(notes), frozen(bp_sparsity))


def profile_config(config, image_shape: Sequence[int], num_classes: int, hw: HardwareProfile | str, *,
                   sparsity: Sequence[float] | None = None, bp_sparsity: Sequence[float] | None = None,
                   batch: int | None = None, workloads: Sequence[str] = PROFILED) -> ProfileReport:
    """:func:`profile_network` for the network a :class:`~ffneuro.config.RunConfig` builds (no model needed)."""
    config.check_shapes(image_shape)  # the same refusal as for training: a one-line ConfigError naming the unit
    return profile_network(layer_specs(config, image_shape, algo="ff"), hw, num_classes=num_classes,
                           batch=batch or config.batch_size, precision=config.precision, sparsity=sparsity,
                           bp_sparsity=bp_sparsity,
                           readout_from=config.readout_from, linear_readout=config.readout in ("linear", "both"),
                           goodness=config.goodness, workloads=workloads)


# --------------------------------------------------------------------------------------------------


def format_si(x: float | None, unit: str = "") -> str:
    """A number with an SI prefix (1.23 µJ); "?" for unknown."""
    if x is None:
        return "?"
    if x == 0:
        return f"0{unit}"
    x = float(f"{x:.3g}")  # round first, so 999.7 µs prints as 1 ms, not "1e+03 µs"
    exp = int(math.floor(math.log10(abs(x)) / 3)) * 3
    prefixes = {-15: "f", -12: "p", -9: "n", -6: "µ", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T"}
    exp = max(-15, min(12, exp))
    return f"{x / 10 ** exp:.3g} {prefixes[exp]}{unit}"


def format_report(report: ProfileReport) -> str:
    """A plain-text table per workload: energy by term, latency, cores and on/off-core bytes per unit."""
    lines = [f"{report.target} ({report.kind}), {report.precision} → {report.native_precision}, batch {report.batch}; "
             "per sample"]
    for note in report.notes:
        lines.append(f"  note: {note}")
    if report.unknown:
        lines.append(f"  not in the profile (counted as 0): {', '.join(report.unknown)}")
    head = f"    {'unit':10s} {'energy':>10s} {'compute':>10s} {'on-core':>10s} {'off-core':>10s} {'intercon.':>10s} " \
           f"{'static':>10s} {'latency':>10s} {'cores':>6s} {'off-core B':>11s}"
    for w, est in report.workloads.items():
        lines.append(f"  {w}:")
        if not est.supported:
            lines.append(f"    not estimated: {est.reason}")
            continue
        lines.append(head)
        for u in [*est.per_unit, None]:
            name, e, lat, cores, off = ("total", est.energy, est.latency_s, est.cores_needed, est.bytes_off_core) if u is None \
                else (u.unit, u.energy, u.latency_s, u.cores, u.bytes_off_core)
            lines.append(f"    {name:10s} {format_si(e.total_j, 'J'):>10s} {format_si(e.compute_j, 'J'):>10s} {format_si(e.on_core_j, 'J'):>10s} "
                         f"{format_si(e.off_core_j, 'J'):>10s} {format_si(e.interconnect_j, 'J'):>10s} {format_si(e.static_j, 'J'):>10s} "
                         f"{format_si(lat, 's'):>10s} {cores:>6d} {format_si(off, 'B'):>11s}")
        share = est.off_core_share
        lines.append(f"    peak memory {format_si(est.peak_memory_bytes, 'B')}, fits on chip: {est.fits_on_chip}, "
                     f"weights on chip: {est.weights_on_chip}, off-core share of bytes: "
                     f"{'?' if share is None else f'{share:.1%}'}, chips: {est.chips_needed}")
        for note in est.notes:
            lines.append(f"    note: {note}")
    return "\n".join(lines)
