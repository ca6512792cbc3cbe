"""Mapping units onto a target's cores, and where each byte of a workload's traffic lives.

The rule comes from the profile's ``[mapping]`` (docs/hw-profiles.md says which chip does what, and why):

* ``"shared"`` (Loihi, Loihi 2, SpiNNaker 2): a conv kernel is stored once per core (times
  ``kernel_copies``) for the output channels the core hosts; input axons point at it.
* ``"unrolled"`` (TrueNorth): every neuron stores its own real synapses (padding taps are not synapses).
* ``"monolithic"`` (GPU, CPU, MCU, reference: no ``[mapping]``): the device is one unit of compute;
  locality is whether the working set fits on-chip SRAM/cache.

On a many-core target a unit's outputs are cut into tiles of ``g`` output channels × ``P`` output
positions, one tile per core, and a tile must fit every per-core limit: neurons (g·P), synapse
memory (the kernel slice: g · fan-in · bytes per synapse · copies when shared, g · P · real fan-in
when unrolled), all of a core's SRAM (synapses plus neuron state), and input axons (the tile's
receptive field: one axon per input position with population axons, one per input element
otherwise). The unit takes the fewest cores over all tilings. For each limit alone the same search
gives a lower bound; the largest bound is reported as the *binding* limit (``limited_by``), and all
bounds are kept (``cores_by``). With ``spread = "idle_cores"`` the cores of the chips in use that no
unit needs are shared out among the units in proportion to their MACs (SpiNNaker 2's PEs).

A profile with a ``[partitioner]`` follows its toolchain instead (:func:`lava_cores`): Lava (Loihi 2)
cuts a conv layer along its output width into power-of-two column slices and a dense layer into
power-of-two neuron groups, each within the compiler's neurons and synapse-memory words per core.
An on-chip *input encoder* (a layer of neurons, one per input element, with no synapses, such as
lava-dl PilotNet's input LIF layer) gets cores too (``encoder_shape`` of :func:`map_units`).

Traffic of each phase (from :mod:`ffneuro.accounting`) is split three ways: the tensors that cross a
unit's boundary (FF: only its input and its handed-on output; BP: also every stored activation and
every error signal); the parameter state (weights, weight gradients, optimiser or learning state);
and the unit's own activations. Crossing tensors leave the core (off-core memory, plus the
interconnect on a many-core target); the rest stays on the core when it fits there (see :func:`classify`).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from collections.abc import Mapping as TMapping
from dataclasses import asdict, dataclass, field

from ..accounting import PhaseCost, nbytes
from ..accounting.ops import element_bits
from ..spec import Conv1d, Conv2d
from ..vector import FieldVector
from .hardware import HardwareProfile

STYLES = ("shared", "unrolled", "monolithic")
LIMITS = ("neurons", "synapse_bytes", "synapses", "sram_bytes", "axons")


def mapping_style(hw: HardwareProfile) -> str:
    """The profile's ``mapping.conv_weights`` rule, or ``"monolithic"`` for a device without ``[mapping]``."""
    return "monolithic" if hw.mapping is None else hw.mapping.conv_weights.value


@dataclass(frozen=True)
class UnitMapping:
    """Where one unit goes. ``cores`` is 1 on a monolithic device (the device itself)."""

    unit: str
    neurons: int
    synapses: int              # synapses the cores store, every copy counted (what on-chip learning updates)
    state_bytes: int           # everything the unit's cores hold (synapses, learning state, neuron state)
    cores: int                 # cores the unit computes on (after spreading onto idle cores)
    limited_by: str            # the binding per-core limit ("monolithic" on a monolithic device)
    fan_in: int
    fan_in_fits: bool | None   # one neuron's inputs fit one core's axons and memory (None: no limit given)
    cores_by: dict = field(default_factory=dict)   # lower bound on cores from each limit alone
    channels_per_core: int = 0
    positions_per_core: int = 0
    cores_needed: int = 0      # what the limits need, before spreading (``cores`` when nothing is spread)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Mapping:
    """A whole network on one target for one workload."""

    style: str
    units: tuple[UnitMapping, ...]
    cores_needed: int
    chips_needed: int
    weights_on_chip: bool | None   # every unit's state fits the chips in use (None: capacity unknown)
    on_chip_bytes: float | None    # on-chip SRAM/cache of one chip, if known
    cores_used: int = 0            # cores computing, with idle cores spread over the units
    notes: tuple[str, ...] = ()

    def unit(self, name: str) -> UnitMapping:
        return next(u for u in self.units if u.unit == name)

    def to_dict(self) -> dict:
        return {"style": self.style, "units": [u.to_dict() for u in self.units], "cores_needed": self.cores_needed,
                "cores_used": self.cores_used, "chips_needed": self.chips_needed,
                "weights_on_chip": self.weights_on_chip, "on_chip_bytes": self.on_chip_bytes, "notes": list(self.notes)}


# --------------------------------------------------------------------------------------------------
# per-unit geometry


@dataclass(frozen=True)
class _Geometry:
    """What the tiling needs to know of a unit's weighted node."""

    channels: int                 # output channels (conv) or output neurons (linear)
    positions: int                # output positions per channel (1 for linear)
    fan_in: int                   # weights per output neuron
    real_fan_in: float            # synapses per output neuron without padding taps (average)
    axons: Callable[[int, int], int]   # input axons a tile of (g channels, P positions) needs


def _geometry(node, population: bool) -> _Geometry:
    if isinstance(node, Conv1d):    # tiled as the same conv on a (C, 1, L) map
        node = node.as_conv2d()
    if isinstance(node, Conv2d):
        c_in, h_in, w_in = node.in_shape
        c_out, h_out, w_out = node.out_shape
        (kh, kw), (sh, sw), (dh, dw) = node.kernel, node.stride, node.dilation
        per_group_out = c_out // node.groups

        def axons(g: int, p: int) -> int:
            rows, cols = (math.ceil(p / w_out), w_out) if p >= w_out else (1, p)
            inputs = min(h_in, (rows - 1) * sh + (kh - 1) * dh + 1) * min(w_in, (cols - 1) * sw + (kw - 1) * dw + 1)
            if population:
                return inputs
            return inputs * min(c_in, math.ceil(g / per_group_out) * (c_in // node.groups))

        return _Geometry(c_out, h_out * w_out, node.fan_in, node.synops / node.neurons, axons)
    return _Geometry(node.out_features, 1, node.in_features, node.in_features,
                     lambda g, p: node.in_features)   # a dense input: every neuron sees every input


def _max_positions(ok: Callable[[int], bool], positions: int) -> int:
    """The largest P in 1..positions with ok(P) (ok is monotone: true up to some P); 0 if none."""
    if not ok(1):
        return 0
    lo, hi = 1, positions
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid - 1)
    return lo


def _tile(geo: _Geometry, needs: Callable[[int, int], dict], limits: TMapping[str, float]) -> tuple[int, int, int] | None:
    """Fewest cores (and the tile g × P) such that every tile fits ``limits``; None if no tile does."""
    checked = dict(limits)

    def fits(g: int, p: int) -> bool:
        need = needs(g, p)
        return all(need[k] <= v for k, v in checked.items() if k in need)

    best = None
    for g in sorted({math.ceil(geo.channels / k) for k in range(1, geo.channels + 1)}):
        p = _max_positions(lambda p, g=g: fits(g, p), geo.positions)
        if p == 0:
            continue
        cores = math.ceil(geo.channels / g) * math.ceil(geo.positions / p)
        if best is None or cores < best[0] or (cores == best[0] and g > best[1]):
            best = (cores, g, p)
    return best


def parameter_state_bytes(spec, *, training: bool, weight_precision: str, master: str = "fp32",
                          learning_synapse_bytes: float | None = None) -> int:
    """Weights at ``weight_precision``; when training also what the learning keeps per parameter: the
    chip rule's ``learning_synapse_bytes``, or (software training) the fp32 gradient and Adam's two moments."""
    w = nbytes(spec.params, weight_precision)
    if training and spec.trainable:
        w += math.ceil(spec.params * learning_synapse_bytes) if learning_synapse_bytes is not None \
            else 3 * nbytes(spec.params, master)
    return w


def delay_neurons_cap(hw: HardwareProfile, delay_bits: int) -> float | None:
    """Compartments a core may hold for a layer whose synapses carry delays of ``delay_bits`` bits: the
    partitioner's ``dendritic_accumulator_slots`` / 2**bits (Loihi: 8,192 slots, so 6 delay bits leave
    128); None where the profile gives no such limit or the layer has no delays."""
    part = hw.partitioner
    slots = part.get("dendritic_accumulator_slots") if part is not None else None
    if slots is None or delay_bits <= 0:
        return None
    return slots / (1 << delay_bits)


def _many_core(spec, hw: HardwareProfile, *, training: bool, precision: str, wprec: str,
               compartments: int = 1, delay_bits: int = 0) -> tuple[UnitMapping, list[str]]:
    """One unit on a ``shared`` or ``unrolled`` target (see the module doc): each of its weighted nodes
    gets cores of its own (a depthwise and a pointwise conv, a residual block's two convs), and the
    unit's mapping adds them up. ``delay_bits``: the unit's synapses carry delays of that many bits
    (:func:`delay_neurons_cap` then caps its neurons per core)."""
    cap = delay_neurons_cap(hw, delay_bits)
    parts = [_map_node(spec, node, hw, training=training, precision=precision, wprec=wprec, compartments=compartments,
                       neurons_cap=cap)
             for node in spec.synapses]
    if len(parts) == 1:
        return parts[0]
    maps = [m for m, _ in parts]
    limits = {m.limited_by for m in maps}
    cores_by = {k: sum(m.cores_by.get(k, 0) for m in maps) for k in maps[0].cores_by}
    fits = [m.fan_in_fits for m in maps]
    return UnitMapping(spec.name, spec.neurons, sum(m.synapses for m in maps), sum(m.state_bytes for m in maps),
                       sum(m.cores for m in maps), "+".join(sorted(limits)) if len(limits) > 1 else limits.pop(),
                       max(m.fan_in for m in maps), None if None in fits else all(fits), cores_by,
                       max(m.channels_per_core for m in maps), max(m.positions_per_core for m in maps),
                       sum(m.cores_needed for m in maps)), [n for _, ns in parts for n in ns]


def _map_node(spec, node, hw: HardwareProfile, *, training: bool, precision: str,
              wprec: str, compartments: int = 1, neurons_cap: float | None = None) -> tuple[UnitMapping, list[str]]:
    """One weighted node of the unit ``spec`` onto its own cores; each neuron takes ``compartments`` of a
    core's neuron slots, of which a core offers at most ``neurons_cap`` where given (below [cores]'s)."""
    rule, limits = hw.mapping, (hw.cores.limits() if hw.cores is not None else {})
    if neurons_cap is not None:
        limits = {**limits, "neurons": min(neurons_cap, limits.get("neurons", math.inf))}
    shared = rule.shared
    geo = _geometry(node, rule.population_axons)
    on_chip_rule = training and spec.trainable and hw.on_chip_learning and hw.learning is not None
    per_synapse = element_bits(wprec) / 8
    per_neuron = nbytes(2 if training else 1, precision)       # positive and negative pass when training
    if on_chip_rule:
        per_synapse += hw.learning.synapse_state_bytes
        per_neuron += hw.learning.neuron_state_bytes
    elif training and spec.trainable:
        per_synapse += 3 * 4                                    # fp32 gradient and Adam's two moments
    copies = rule.copies if (shared and isinstance(node, (Conv2d, Conv1d))) else 1   # a dense layer: one weight per synapse

    def needs(g: int, p: int) -> dict:
        syn = copies * g * geo.fan_in if shared else g * p * geo.real_fan_in
        return {"neurons": g * p * compartments, "synapses": syn, "synapse_bytes": syn * per_synapse,
                "sram_bytes": syn * per_synapse + g * p * per_neuron, "axons": geo.axons(g, p)}

    given = {k: v for k, v in limits.items() if k in LIMITS}
    cores_by = {}
    for limit, cap in given.items():
        t = _tile(geo, needs, {limit: cap})
        cores_by[limit] = t[0] if t else math.inf
    best = _tile(geo, needs, given)
    notes = []
    one = needs(1, 1)
    fan_in_fits = None if not given else all(one[k] <= v for k, v in given.items())
    if best is None:   # one neuron's inputs exceed a core: the chip would have to split its fan-in
        whole = needs(geo.channels, geo.positions)
        best = (max(1, *(math.ceil(whole[k] / v) for k, v in given.items())), 1, 1)
        notes.append(f"{spec.name}: one neuron's inputs ({geo.fan_in}) exceed a core's "
                     f"{', '.join(k for k in given if one[k] > given[k])}: the fan-in must be split over several "
                     "cores, so the core count is a lower bound")
        cores_by = {k: (v if math.isfinite(v) else best[0]) for k, v in cores_by.items()}
    cores, g, p = best
    # binding: the limits without which fewer cores would do (two limits can bind together, e.g. synapse
    # memory caps the channels per core and the neuron count then caps the positions); if none does alone,
    # the one with the largest bound
    binding = []
    for limit in given:
        t = _tile(geo, needs, {k: v for k, v in given.items() if k != limit})
        if t is not None and t[0] < cores:
            binding.append(limit)
    if not binding and cores_by:
        binding = [max(cores_by, key=lambda k: (cores_by[k], -LIMITS.index(k)))]
    limited_by = "+".join(binding) or "none"
    tiles_per_channel_group = math.ceil(geo.positions / p)
    synapses = (copies * geo.fan_in * geo.channels * tiles_per_channel_group) if shared \
        else round(geo.real_fan_in * geo.channels * geo.positions)
    state = math.ceil(synapses * per_synapse + geo.channels * geo.positions * per_neuron)
    return UnitMapping(spec.name, node.neurons, synapses, state, cores, limited_by, geo.fan_in, fan_in_fits,
                       {k: int(v) for k, v in cores_by.items()}, g, p, cores), notes


ENCODER = "input encoder"


def _pow2_floor(x: float) -> int:
    """The largest power of two <= x (0 if x < 1)."""
    return 0 if x < 1 else 1 << (int(x).bit_length() - 1)


def lava_cores(columns: int, column_neurons: int, *, neurons_cap: float, words_cap: float | None = None,
               core_words: float = 0.0, column_words: float = 0.0) -> tuple[int, int, str]:
    """Cores Lava's partitioner gives a layer of ``columns`` output columns of ``column_neurons`` each
    (a dense layer: columns = neurons, one neuron each): the widest power-of-two slice of columns whose
    neurons stay within ``neurons_cap`` and whose synapse words (``core_words`` per core, a conv's kernel,
    plus ``column_words`` per column, a dense neuron's fan-in) within ``words_cap``. Returns (cores,
    columns per core, the binding limit). A column too big for one core is cut further (a lower bound)."""
    def fits(w: int) -> tuple[bool, bool]:
        words_ok = words_cap is None or core_words + w * column_words <= words_cap
        return w * column_neurons <= neurons_cap, words_ok

    n_ok, w_ok = fits(1)
    if not (n_ok and w_ok):   # one column exceeds a core: split it (not a slice the compiler is known to make)
        parts = max(math.ceil(column_neurons / neurons_cap),
                    1 if words_cap is None else math.ceil((core_words + column_words) / words_cap))
        return columns * parts, 1, "neurons" if not n_ok else "synapse_words"
    w, limit = 1, "none"
    while w < columns:
        n_ok, w_ok = fits(2 * w)
        if not (n_ok and w_ok):
            limit = "neurons" if not n_ok else "synapse_words"
            break
        w *= 2
    return math.ceil(columns / w), w, limit


def _lava_node(spec, node, hw: HardwareProfile, compartments: int = 1) -> UnitMapping:
    """One weighted node on Loihi 2 as Lava partitions it (:func:`lava_cores`)."""
    part = hw.partitioner
    cap = part.get("neurons_per_core") or (hw.cores.limits().get("neurons") or math.inf)
    words = part.get("synapse_words_per_core")
    if isinstance(node, Conv1d):
        node = node.as_conv2d()
    if isinstance(node, Conv2d):
        c_out, h_out, w_out = node.out_shape
        kernel = c_out * node.fan_in               # weights one core holds (the whole kernel, shared)
        cores, w, limit = lava_cores(w_out, c_out * h_out * compartments, neurons_cap=cap, words_cap=words,
                                     core_words=kernel / ((part.get("conv_synapses_per_1000_words") or 1000) / 1000))
        synapses, fan_in, per_core = kernel * cores, node.fan_in, (c_out, w * h_out)
    else:
        n, fan_in = node.out_features, node.in_features
        cores, w, limit = lava_cores(n, compartments, neurons_cap=cap, words_cap=words,
                                     column_words=fan_in / ((part.get("dense_synapses_per_1000_words") or 1000) / 1000))
        synapses, per_core = n * fan_in, (w, 1)
    return UnitMapping(spec.name, node.neurons, synapses, synapses + node.neurons, cores, limit, fan_in, None,
                       {limit: cores} if limit != "none" else {}, per_core[0], per_core[1], cores)


def encoder_mapping(shape: Sequence[int], hw: HardwareProfile, compartments: int = 1) -> UnitMapping:
    """Cores of an on-chip input encoder over an input of ``shape`` (C, H, W) or (N,): one neuron per
    element (of ``compartments`` slots each), no synapses; cut into column slices like a conv layer under
    Lava, else by neurons per core."""
    neurons = math.prod(shape)
    part = hw.partitioner
    cap = (part.get("neurons_per_core") if part is not None else None) or \
        ((hw.cores.limits().get("neurons") if hw.cores is not None else None) or math.inf)
    if part is not None and part.rule.value == "lava" and len(shape) == 3:
        c, h, w = shape
        cores, cols, limit = lava_cores(w, c * h * compartments, neurons_cap=cap)
        per_core = (c, cols * h)
    else:
        cores = 1 if math.isinf(cap) else math.ceil(neurons * compartments / cap)
        limit, per_core = "neurons", (1, math.ceil(neurons / cores))
    return UnitMapping(ENCODER, neurons, 0, 0, cores, limit, 0, None, {"neurons": cores}, per_core[0],
                       per_core[1], cores)


def _spread(units: list[UnitMapping], work: TMapping[str, float], idle: int) -> list[UnitMapping]:
    """Share ``idle`` cores among the units in proportion to their ``work`` (largest remainder), each
    unit at most one core per neuron."""
    total = sum(work.get(u.unit, 0.0) for u in units)
    if idle <= 0 or total <= 0:
        return units
    share = {u.unit: idle * work.get(u.unit, 0.0) / total for u in units}
    extra = {n: math.floor(v) for n, v in share.items()}
    for n in sorted(share, key=lambda n: share[n] - extra[n], reverse=True)[: idle - sum(extra.values())]:
        extra[n] += 1
    out = []
    for u in units:
        cores = min(u.neurons, u.cores + extra[u.unit])
        out.append(UnitMapping(**{**asdict(u), "cores": max(u.cores, cores)}))
    return out


def map_units(specs: Sequence, hw: HardwareProfile, *, training: bool, precision: str,
              weight_precision: str | None = None, work: TMapping[str, float] | None = None,
              encoder_shape: Sequence[int] | None = None, compartments_per_neuron: int = 1,
              delay_bits: TMapping[str, int] | None = None) -> Mapping:
    """Map unit specs (anything with ``name``, ``synapses``, ``neurons``, ``params``, ``trainable``) onto
    ``hw``. ``precision`` is the activation format on the device; weights are stored at
    ``weight_precision`` (default: ``precision``). ``work`` (MACs per unit) shares idle cores out where
    the profile spreads layers. ``encoder_shape``: the input is encoded on chip by a layer of neurons of
    that shape (:data:`ENCODER`, first in the mapping; many-core targets only). ``compartments_per_neuron``:
    neuron slots one neuron takes on a many-core target (NxTF's subtractive 'soft' reset uses 2).
    ``delay_bits``: by unit name, the bits of its synaptic delays (a SLAYER layer trained with delays); the
    partitioner's dendritic accumulator then caps its compartments per core (:func:`delay_neurons_cap`)."""
    style = mapping_style(hw)
    wprec = weight_precision or precision
    on_chip = hw.on_chip_sram_bytes
    learning = hw.learning.synapse_state_bytes \
        if (training and hw.on_chip_learning and hw.learning is not None) else None
    if style == "monolithic":
        units = []
        for s in specs:
            state = parameter_state_bytes(s, training=training, weight_precision=wprec,
                                          learning_synapse_bytes=learning) + nbytes(s.neurons * (2 if training else 1), precision)
            units.append(UnitMapping(s.name, s.neurons, s.weights, state, 1, "monolithic",
                                     max(n.fan_in for n in s.synapses), None,
                                     {}, 0, 0, 1))
        resident = sum(parameter_state_bytes(s, training=training, weight_precision=wprec) for s in specs)
        return Mapping(style, tuple(units), 1, 1, None if on_chip is None else resident <= on_chip, on_chip, 1)
    units, notes = [], []
    if encoder_shape is not None:
        units.append(encoder_mapping(encoder_shape, hw, compartments_per_neuron))
    lava = hw.partitioner is not None and hw.partitioner.rule.value == "lava"
    for s in specs:
        if lava and not training:
            parts = [_lava_node(s, node, hw, compartments_per_neuron) for node in s.synapses]
            m = parts[0] if len(parts) == 1 else UnitMapping(
                s.name, s.neurons, sum(p.synapses for p in parts), sum(p.state_bytes for p in parts),
                sum(p.cores for p in parts), "+".join(sorted({p.limited_by for p in parts})),
                max(p.fan_in for p in parts), None, {}, 0, 0, sum(p.cores for p in parts))
            units.append(m)
            continue
        m, n = _many_core(s, hw, training=training, precision=precision, wprec=wprec,
                          compartments=compartments_per_neuron, delay_bits=(delay_bits or {}).get(s.name, 0))
        units.append(m)
        notes += n
    cores_needed = sum(u.cores for u in units)
    chips = math.ceil(cores_needed / hw.n_cores)
    if hw.mapping.spreads and work:
        units = _spread(units, work, chips * hw.n_cores - cores_needed)
    return Mapping(style, tuple(units), cores_needed, chips, cores_needed <= hw.n_cores, on_chip,
                   sum(u.cores for u in units), tuple(notes))


@dataclass(frozen=True)
class Placement(FieldVector):
    """Bytes of one phase by where they go: ``*_on`` stay on the unit's core(s), ``*_off`` leave it;
    ``interconnect`` is what travels core to core (the crossing tensors a unit sends). ``+`` and
    ``scaled`` come from :class:`~ffneuro.vector.FieldVector`."""

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
    if not any(isinstance(n, (Conv2d, Conv1d)) for n in spec.synapses):
        out = ("features in", "class scores out")
        return out + (("error signal to the layer below", "features stored for the weight gradient")
                      if workload == "bp_train" else ())
    if workload == "bp_train":
        pooled = any(n.kind == "pool2d" for n in spec.nodes())
        stored = "stored activations (ReLU output" + (", pooled map" if pooled else "") + ")"
        return ("input", "output", stored, "stored input", "error signal from above") + \
            (() if first else ("error signal to the layer below",))
    return ("input", "output")
