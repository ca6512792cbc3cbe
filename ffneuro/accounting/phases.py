"""Per-unit, per-phase op and traffic counts of FF training, BP training and inference.

Every count is for one batch of ``batch`` samples (FF training handles ``batch`` positives and
``batch`` negatives); :meth:`NetworkCost.per_sample` divides by ``batch``. Weights are read once per
pass per batch and updated once per batch, so their per-sample share falls as the batch grows.

Traffic model: the bytes a fused implementation must move through memory, i.e. each kernel (conv +
bias + ReLU; pool + RMS norm; goodness + loss; the elementwise backward; the weight gradient; the
optimiser's update) reads its operands once and writes its results once. Activations and activation
gradients are at the run's ``precision``; weights, weight gradients and optimiser state (Adam's two
moments, SGD's momentum buffer or none: :mod:`.optimizer`) at ``master`` (fp32).
``crossing_read``/``crossing_written`` mark the part of that traffic that crosses a unit's boundary
(see docs/accounting.md): in FF only a unit's input and its handed-on output; in BP also every
activation stored for the backward pass and every error signal.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace

from ..spec import Activation, Add, NetSpec, Neuron, Pool2d, RMSNorm, Scale, Threshold, Unit
from ..spec.block import BlockSpec
from ..vector import FieldVector
from . import ops
from .objective import PAIRS, ObjectiveCost
from .ops import MASTER_PRECISION, nbytes
from .optimizer import ADAM, DEFAULT_OPTIMIZERS, OptimizerCost, Optimizers
from .specs import LinearSpec, head_spec, readout_spec

CATEGORIES = ("weights", "activations", "errors", "gradients", "optimizer")
WORKLOADS = ("ff_train", "bp_train", "infer_linear", "infer_goodness", "bp_infer", "infer")


@dataclass(frozen=True)
class Traffic(FieldVector):
    """Bytes by what they hold: ``weights``; ``activations``; ``errors`` (gradients of activations, the
    error signals of backprop); ``gradients`` (of the parameters); ``optimizer`` (the optimiser's state).
    ``+``, ``scaled`` and ``total`` (all bytes) come from :class:`~ffneuro.vector.FieldVector`."""

    weights: float = 0
    activations: float = 0
    errors: float = 0
    gradients: float = 0
    optimizer: float = 0

    @property
    def parameter_state(self) -> float:
        """Weights, their gradients and optimiser state: what stays with a unit between steps."""
        return self.weights + self.gradients + self.optimizer

    @property
    def activation_traffic(self) -> float:
        return self.activations + self.errors

    def to_dict(self) -> dict:
        return {**asdict(self), "total": self.total}


@dataclass(frozen=True)
class PhaseCost:
    """Ops and bytes of one phase of one unit (for one batch, or per sample after :meth:`scaled`)."""

    phase: str
    macs: float = 0
    elementwise_ops: float = 0
    bytes_read: Traffic = field(default_factory=Traffic)
    bytes_written: Traffic = field(default_factory=Traffic)
    crossing_read: float = 0       # of bytes_read: tensors from outside the unit
    crossing_written: float = 0    # of bytes_written: tensors that leave the unit
    sparse_macs: float = 0         # of macs: those gated by the unit's input activation (forward, dL/dW)

    @property
    def flops(self) -> float:
        """``2 * macs + elementwise_ops``."""
        return ops.flops(self.macs, self.elementwise_ops)

    def effective_macs(self, input_zero_fraction: float) -> float:
        """MACs left when those whose input activation is zero are skipped (NeuroBench's effective MACs)."""
        return self.macs - self.sparse_macs * input_zero_fraction

    def __add__(self, other: PhaseCost) -> PhaseCost:
        return PhaseCost(self.phase if self.phase == other.phase else "total",
                         self.macs + other.macs, self.elementwise_ops + other.elementwise_ops,
                         self.bytes_read + other.bytes_read, self.bytes_written + other.bytes_written,
                         self.crossing_read + other.crossing_read, self.crossing_written + other.crossing_written,
                         self.sparse_macs + other.sparse_macs)

    def scaled(self, factor: float) -> PhaseCost:
        return PhaseCost(self.phase, self.macs * factor, self.elementwise_ops * factor,
                         self.bytes_read.scaled(factor), self.bytes_written.scaled(factor),
                         self.crossing_read * factor, self.crossing_written * factor, self.sparse_macs * factor)

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["bytes_read"], d["bytes_written"] = self.bytes_read.to_dict(), self.bytes_written.to_dict()
        d["flops"] = self.flops
        return d


def _sum(phases: Sequence[PhaseCost], name: str = "total") -> PhaseCost:
    total = PhaseCost(name)
    for p in phases:
        total = total + p
    return replace(total, phase=name)


@dataclass(frozen=True)
class UnitPhases:
    """One unit's phases; ``spec`` is its block spec, a LinearSpec (readout/head) or a graph's Unit."""

    unit: str
    spec: BlockSpec | LinearSpec | Unit
    phases: tuple[PhaseCost, ...]

    @property
    def total(self) -> PhaseCost:
        return _sum(self.phases)

    def phase(self, name: str) -> PhaseCost:
        for p in self.phases:
            if p.phase == name:
                return p
        raise KeyError(f"{self.unit} has no phase {name!r}; phases: {', '.join(p.phase for p in self.phases)}")

    def scaled(self, factor: float) -> UnitPhases:
        return UnitPhases(self.unit, self.spec, tuple(p.scaled(factor) for p in self.phases))

    def to_dict(self) -> dict:
        return {"unit": self.unit, "phases": {p.phase: p.to_dict() for p in self.phases},
                "total": self.total.to_dict()}


@dataclass(frozen=True)
class NetworkCost:
    """All units of one workload. ``per`` is "batch" (counts for ``batch`` samples) or "sample"."""

    workload: str
    batch: int
    precision: str
    units: tuple[UnitPhases, ...]
    per: str = "batch"

    @property
    def total(self) -> PhaseCost:
        return _sum([u.total for u in self.units])

    @property
    def macs(self) -> float:
        return self.total.macs

    def unit(self, name: str) -> UnitPhases:
        for u in self.units:
            if u.unit == name:
                return u
        raise KeyError(f"no unit {name!r}; units: {', '.join(u.unit for u in self.units)}")

    def per_sample(self) -> NetworkCost:
        if self.per == "sample":
            return self
        return NetworkCost(self.workload, self.batch, self.precision,
                           tuple(u.scaled(1 / self.batch) for u in self.units), per="sample")

    def to_dict(self) -> dict:
        return {"workload": self.workload, "batch": self.batch, "precision": self.precision, "per": self.per,
                "units": [u.to_dict() for u in self.units], "total": self.total.to_dict()}


# --------------------------------------------------------------------------------------------------
# building blocks (all per batch)


def _act(n: float, precision: str) -> int:
    return nbytes(int(n), precision)


def _update(spec, master: str, optimizer: OptimizerCost = ADAM) -> PhaseCost:
    """The optimiser on every parameter once per batch: read w, g and its state; write w and its state
    (Adam: m, v; SGD: the momentum buffer, or no state without momentum)."""
    if not spec.trainable:
        return PhaseCost("update")
    p = nbytes(spec.params, master)
    state = optimizer.state_per_param * p
    return PhaseCost("update", elementwise_ops=optimizer.ops_per_param * spec.params,
                     bytes_read=Traffic(weights=p, gradients=p, optimizer=state),
                     bytes_written=Traffic(weights=p, optimizer=state))


def _conv_forward(name: str, s, rows: int, precision: str, master: str, extra_ops: int = 0) -> PhaseCost:
    """One block's forward: its weighted node (writes the neurons), then everything after it up to the
    hand-on output (the block's ``forward_ops``; conv: bias, ReLU, pool, RMS norm). A stride-2 conv's
    neurons are already the downsampled map: no pool ops, MACs per output position."""
    per_sample = s.forward_ops
    return PhaseCost(
        name, macs=rows * s.macs, elementwise_ops=rows * per_sample + extra_ops,
        bytes_read=Traffic(weights=nbytes(s.params, master), activations=_act(rows * (s.in_elems + s.neurons), precision)),
        bytes_written=Traffic(activations=_act(rows * (s.neurons + s.out_elems), precision)),
        crossing_read=_act(rows * s.in_elems, precision), crossing_written=_act(rows * s.out_elems, precision),
        sparse_macs=rows * s.macs)


def _linear_forward(name: str, s: LinearSpec, rows: int, precision: str, master: str, extra_ops: int = 0) -> PhaseCost:
    return PhaseCost(
        name, macs=rows * s.macs, elementwise_ops=rows * (s.out_features if s.bias else 0) + extra_ops,
        bytes_read=Traffic(weights=nbytes(s.params, master), activations=_act(rows * s.in_features, precision)),
        bytes_written=Traffic(activations=_act(rows * s.out_features, precision)),
        crossing_read=_act(rows * s.in_features, precision), sparse_macs=rows * s.macs)


def _ce_loss(s: LinearSpec, rows: int, precision: str, softmax_first: bool = False) -> PhaseCost:
    """Cross-entropy of the logits, or (``softmax_first``) of their softmax (``linear_loss=ce-of-softmax``)."""
    per_class = ops.CE_FWD[0] + (ops.SOFTMAX_FWD if softmax_first else 0)
    return PhaseCost("loss", elementwise_ops=rows * (per_class * s.out_features + ops.CE_FWD[1]),
                     bytes_read=Traffic(activations=_act(rows * s.out_features, precision)))


def _embed_ops(first, rows: int) -> int:
    return ops.LABEL_EMBED_OPS * rows * first.in_elems


# --------------------------------------------------------------------------------------------------
# workloads


def ff_training_costs(layers: Sequence, *, num_classes: int, batch: int, precision: str = "fp32",
                      linear_readout: bool = False, readout_from: int = 1, master: str = MASTER_PRECISION,
                      objective: ObjectiveCost = PAIRS, optimizers: Optimizers = DEFAULT_OPTIMIZERS) -> NetworkCost:
    """One FF training step (``FFNet.train_batch``) on ``batch`` images, per unit: with a pair objective
    ``forward_pos`` and ``forward_neg`` (label embedding charged to unit 1), else one ``forward`` of the
    unlabelled images; then ``goodness_loss``, ``backward`` (weight gradient only: inputs arrive
    detached; a block that trains parameters before its weighted node also computes that node's input
    gradient) and ``update``; frozen units have zero backward and update. A block that refreshes its
    batch-norm statistics after the update (``refresh_after_update``) runs ``forward_refresh`` on the rows.

    With ``linear_readout`` the step trains the readout (``readout``: forward, loss, backward of the
    weights only, since its features are detached, and update); a pair objective first runs every unit
    once more on the neutral embedding (``forward_neutral``), a class-wise one reuses the training rows.
    ``optimizers``: the units' and the readout's optimiser (their ``update``), the readout's bias and loss.
    """
    n, b, m = batch, precision, master
    rows = n * objective.rows_per_image
    units = []
    for i, s in enumerate(layers):
        if objective.pairs:
            emb = _embed_ops(s, n) if i == 0 else 0
            fwd = [_conv_forward("forward_pos", s, n, b, m, emb), _conv_forward("forward_neg", s, n, b, m, emb)]
        else:
            fwd = [_conv_forward("forward", s, n, b, m)]
        g = s.goodness_elems
        peer_fwd, peer_bwd = objective.peer_ops(g)
        goodness = PhaseCost(
            "goodness_loss", elementwise_ops=rows * objective.goodness_loss_ops(g) + n * peer_fwd,
            bytes_read=Traffic(activations=_act(rows * g, b)),
            bytes_written=Traffic(activations=nbytes(rows * objective.groups, "fp32")))
        if s.trainable:
            macs = rows * s.ff_backward_macs
            per_row = objective.goodness_backward_ops(g) + s.neuron_grad_ops + s.bias_grad_ops
            backward = PhaseCost(
                "backward", macs=macs, elementwise_ops=rows * per_row + n * peer_bwd,
                bytes_read=Traffic(activations=_act(rows * (s.neurons + s.in_elems), b)),
                bytes_written=Traffic(gradients=nbytes(s.params, m)), sparse_macs=macs)
        else:
            backward = PhaseCost("backward")
        phases = [*fwd, goodness, backward, _update(s, m, optimizers.units)]
        if s.trainable and getattr(s, "refresh_after_update", False):
            phases.append(_conv_forward("forward_refresh", s, rows, b, m))   # the step's rows once more
        if linear_readout and objective.pairs:
            phases.append(_conv_forward("forward_neutral", s, n, b, m, _embed_ops(s, n) if i == 0 else 0))
        units.append(UnitPhases(s.name, s, tuple(phases)))
    if linear_readout:
        r = readout_spec(layers, num_classes, readout_from, optimizers.readout_bias)
        softmax_first = optimizers.readout_softmax_first
        per_class = ops.CE_BWD[0] + (ops.SOFTMAX_BWD if softmax_first else 0)
        backward = PhaseCost(
            "backward", macs=n * r.macs,
            elementwise_ops=n * (per_class * r.out_features + ops.CE_BWD[1] + (r.out_features if r.bias else 0)),
            bytes_read=Traffic(activations=_act(n * r.in_features, b), errors=_act(n * r.out_features, b)),
            bytes_written=Traffic(gradients=nbytes(r.params, m)), sparse_macs=n * r.macs)
        units.append(UnitPhases(r.name, r, (_linear_forward("forward", r, n, b, m), _ce_loss(r, n, b, softmax_first),
                                            backward, _update(r, m, optimizers.readout))))
    return NetworkCost("ff_train", batch, precision, tuple(units))


def bp_training_costs(layers: Sequence[BlockSpec], *, num_classes: int, batch: int, precision: str = "fp32",
                      master: str = MASTER_PRECISION) -> NetworkCost:
    """One BP training step (``BPNet.train_batch``): per layer ``forward``, ``backward_input`` (norm,
    pool and ReLU backward, then dL/dx; layer 1 computes no dL/dx since the image needs none),
    ``backward_weight`` and ``update``; the ``head`` likewise with its cross-entropy ``loss``.

    Every activation stored for the backward pass (ReLU output, pooled map, hand-on output) is written
    and read back across the layer boundary, and every error signal crosses it.
    """
    n, b, m = batch, precision, master
    units = []
    for i, s in enumerate(layers):
        stored = s.bp_stored - s.out_elems   # what the backward reads besides the output (conv: y, and p when pooled)
        fwd = _conv_forward("forward", s, n, b, m)
        fwd = PhaseCost("forward", fwd.macs, fwd.elementwise_ops, fwd.bytes_read,
                        Traffic(activations=_act(n * (stored + s.out_elems), b)),
                        crossing_read=fwd.crossing_read, crossing_written=_act(n * (stored + s.out_elems), b),
                        sparse_macs=fwd.sparse_macs)
        # the image needs no gradient: layer 1 computes only the input gradients inside the block
        in_macs = s.bp_input_grad_macs(i == 0)
        first = in_macs == 0
        ew = s.bp_input_grad_ops(i == 0)
        back_in = PhaseCost(
            "backward_input", macs=n * in_macs, elementwise_ops=n * ew,
            bytes_read=Traffic(weights=0 if first else nbytes(s.params, m), activations=_act(n * stored, b),
                               errors=_act(n * s.out_elems, b)),
            bytes_written=Traffic(errors=_act(n * (s.neurons + (0 if first else s.in_elems)), b)),
            crossing_read=_act(n * (stored + s.out_elems), b),
            crossing_written=0 if first else _act(n * s.in_elems, b))
        back_w = PhaseCost(
            "backward_weight", macs=n * s.macs, elementwise_ops=n * s.bias_grad_ops,
            bytes_read=Traffic(activations=_act(n * s.in_elems, b), errors=_act(n * s.neurons, b)),
            bytes_written=Traffic(gradients=nbytes(s.params, m)),
            crossing_read=_act(n * s.in_elems, b), sparse_macs=n * s.macs)
        units.append(UnitPhases(s.name, s, (fwd, back_in, back_w, _update(s, m))))
    h = head_spec(layers, num_classes)
    fwd = _linear_forward("forward", h, n, b, m)
    loss = _ce_loss(h, n, b)
    back_in = PhaseCost(
        "backward_input", macs=n * h.macs, elementwise_ops=n * (ops.CE_BWD[0] * h.out_features + ops.CE_BWD[1]),
        bytes_read=Traffic(weights=nbytes(h.params, m), errors=_act(n * h.out_features, b)),
        bytes_written=Traffic(errors=_act(n * h.in_features, b)), crossing_written=_act(n * h.in_features, b))
    back_w = PhaseCost(
        "backward_weight", macs=n * h.macs, elementwise_ops=n * (h.out_features if h.bias else 0),
        bytes_read=Traffic(activations=_act(n * h.in_features, b), errors=_act(n * h.out_features, b)),
        bytes_written=Traffic(gradients=nbytes(h.params, m)), crossing_read=_act(n * h.in_features, b),
        sparse_macs=n * h.macs)
    units.append(UnitPhases(h.name, h, (fwd, loss, back_in, back_w, _update(h, m))))
    return NetworkCost("bp_train", batch, precision, tuple(units))


def inference_costs(layers: Sequence, *, readout: str, num_classes: int, batch: int = 1,
                    precision: str = "fp32", readout_from: int = 1, algo: str = "ff",
                    master: str = MASTER_PRECISION, objective: ObjectiveCost = PAIRS,
                    readout_bias: bool = True) -> NetworkCost:
    """Classifying ``batch`` images.

    ``readout="linear"``: one forward of every unit (FF pairs: on the neutral embedding) and the linear
    classifier (FF: the readout on layers ``readout_from``..L; BP, ``algo="bp"``: the head).
    ``readout="goodness"`` (FF only): with a pair objective one forward per candidate class
    (``num_classes`` passes, run as one batch of batch×classes rows, so weights are read once), else
    (class-wise goodness) one forward; the goodness of layers ``readout_from``..L summed, and an argmax.
    ``readout_bias`` False: the FF readout has no bias (``linear_init=zero``).
    """
    if readout not in ("linear", "goodness"):
        raise ValueError(f"unknown readout {readout!r}; valid: linear, goodness")
    if algo == "bp" and readout != "linear":
        raise ValueError("the BP network has only the linear readout")
    passes = num_classes if readout == "goodness" and objective.pairs else 1
    rows, b, m = batch * passes, precision, master
    embeds = algo == "ff" and objective.pairs
    units = []
    for i, s in enumerate(layers):
        emb = _embed_ops(s, rows) if (i == 0 and embeds) else 0
        phases = [_conv_forward("forward", s, rows, b, m, emb)]
        if readout == "goodness" and i >= readout_from - 1:
            last = i == len(layers) - 1
            g = s.goodness_elems   # +1 per goodness value: add it into the class score
            ew = rows * (ops.GOODNESS_FWD[0] * g + (ops.GOODNESS_FWD[1] + 1) * objective.groups)
            ew += batch * num_classes * ops.ARGMAX_OPS if last else 0
            phases.append(PhaseCost("goodness", elementwise_ops=ew, bytes_read=Traffic(activations=_act(rows * g, b))))
        units.append(UnitPhases(s.name, s, tuple(phases)))
    if readout == "linear":
        lin = head_spec(layers, num_classes) if algo == "bp" else \
            readout_spec(layers, num_classes, readout_from, readout_bias)
        units.append(UnitPhases(lin.name, lin, (_linear_forward("forward", lin, rows, b, m,
                                                                rows * num_classes * ops.ARGMAX_OPS),)))
    workload = "bp_infer" if algo == "bp" else f"infer_{readout}"
    return NetworkCost(workload, batch, precision, tuple(units))


# --------------------------------------------------------------------------------------------------
# layer-spec graphs (SNN or ANN inference, e.g. read from a NIR file)


# per element and timestep: NIR's integrator neuron I (v += r·x: a multiply and an add), a threshold's
# compare, a scale's multiply, an add node's add; the other neuron models are ops.NEURON_OPS
GRAPH_NEURON_OPS = {**ops.NEURON_OPS, "i": 2}
THRESHOLD_OPS = SCALE_OPS = ADD_OPS = 1


def update_ops(spec) -> int:
    """Elementwise ops per neuron per pass that belong to the neuron itself (bias, ReLU, or one timestep
    of its neuron model, ``ops.NEURON_OPS``; a threshold node's compare): what a neuromorphic core's
    neuron update replaces."""
    if not isinstance(spec, Unit):
        return spec.update_ops
    n = spec.neuron
    act = GRAPH_NEURON_OPS[n.model] if n is not None else \
        ops.RELU_OPS if any(isinstance(x, Activation) for x in spec.nodes) else \
        THRESHOLD_OPS if any(isinstance(x, Threshold) for x in spec.nodes) else 0
    return (ops.BIAS_OPS if spec.bias else 0) + act


def _node_ops(node, rows: int) -> int:
    """Elementwise ops of a non-weighted node for ``rows`` passes (a delay line only moves values)."""
    if isinstance(node, Activation):
        return rows * ops.RELU_OPS * node.in_elems
    if isinstance(node, Neuron):
        return rows * GRAPH_NEURON_OPS[node.model] * node.in_elems
    if isinstance(node, Pool2d):
        window = node.kernel[0] * node.kernel[1]
        per = {"max": window - 1, "sum": window - 1, "avg": window}[node.pool]
        return rows * per * node.out_elems
    if isinstance(node, RMSNorm):
        return rows * ops.rms_norm_fwd_ops(node.in_elems)
    if isinstance(node, Threshold):
        return rows * THRESHOLD_OPS * node.in_elems
    if isinstance(node, Scale):
        return rows * SCALE_OPS * node.in_elems
    if isinstance(node, Add):
        return rows * ADD_OPS * node.in_elems
    return 0


def graph_inference_costs(spec: NetSpec, *, timesteps: int = 1, batch: int = 1, precision: str = "fp32",
                          master: str = MASTER_PRECISION) -> NetworkCost:
    """Inference of a layer-spec graph on ``batch`` samples, ``timesteps`` passes each (an SNN runs every
    layer once per timestep; an ANN has one): per unit one ``forward`` phase with the MACs of every
    weighted node, recurrent ones included (a recurrent layer's synapses run every timestep, on the
    layer's previous output), each weighted node's bias adds and every other node's elementwise ops;
    weights read once per timestep and batch, and the unit's state (neuron state variables, delay
    buffers, outputs held for a recurrent read) read and written every timestep."""
    if timesteps < 1:
        raise ValueError(f"timesteps must be >= 1, got {timesteps}")
    rows, units = batch * timesteps, []
    for u in spec.units:
        ew = rows * sum(n.neurons for n in u.synapses if n.bias) + \
            sum(_node_ops(n, rows) for n in u.nodes if not n.weighted)
        held = {j for _, j in u.feedback}
        state = sum(n.state_updates for n in u.nodes) + sum(u.nodes[j].out_elems for j in held)
        acts_in, acts_out = rows * u.in_elems, rows * (u.out_elems + state)
        phase = PhaseCost(
            "forward", macs=rows * u.macs, elementwise_ops=ew,
            bytes_read=Traffic(weights=timesteps * nbytes(u.params, master),
                               activations=_act(acts_in + rows * state, precision)),
            bytes_written=Traffic(activations=_act(acts_out, precision)),
            crossing_read=_act(acts_in, precision), crossing_written=_act(rows * u.out_elems, precision),
            sparse_macs=rows * u.macs)
        units.append(UnitPhases(u.name, u, (phase,)))
    return NetworkCost("infer", batch, precision, tuple(units))
