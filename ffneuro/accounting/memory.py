"""Training memory: what is resident, what each unit holds, and the peak of one training step.

Two schemes:

``"pytorch"`` (default) replays, tensor by tensor, what this package's FFNet/BPNet ``train_batch``
allocate and free under autograd, so the peak can be compared with
``torch.cuda.max_memory_allocated``. It counts the tensors autograd saves (conv: its input and
weight; ReLU: its output; max-pool: its input and int64 indices; the RMS norm: its input, the rms and
the squared input's base; FF's goodness: its input, which is the ReLU output itself in fp32), the
forward temporaries (the conv output until ReLU has run, the squared activations of goodness and
norm), the backward temporaries of the elementwise ops (FF's goodness backward makes one full-size
tensor, the gradient itself; BP's norm makes four in its ``div`` backward and four in its ``mean`` /
``pow`` backward), FF's one ``torch.cat`` of the embedded positive and negative images (the 2N rows
then travel through every unit without another copy), the bf16 copies autocast makes, and Adam's
foreach temporary (one tensor the size of the optimiser's parameters). ``backend="cpu"`` adds the
channel-blocked copies oneDNN makes around every conv pass (:mod:`.onednn`; what the CPU allocator
tests see), with the channel block (8 on AVX2, 16 on AVX-512) as ``onednn_block``, and
takes CPU Adam's single-tensor path (two temporaries the size of its largest parameter tensor);
the default ``"cuda"`` leaves out cuDNN workspaces, and neither counts allocator rounding (see
docs/accounting.md).

``"minimal"`` keeps only what the algorithm must hold with fused kernels: FF, the largest unit's
input (positives and negatives), its neurons (saved for the backward) and its output; BP, every
stored activation of every layer plus the gradient in flight at the largest layer.

Both add the resident state: all parameters, their gradients and the optimisers' state (fp32: Adam's
two moments, SGD's momentum buffer or nothing; FF's units and linear readout each with the run's own,
:class:`~.optimizer.Optimizers`), and the input batch. BP's network is always Adam.

This module replays what every network shares (resident state, the label embedding, the readouts,
the BP head); each block replays its own layer (``BlockSpec.replay_*``, written with :mod:`.replay`).
A block without a replay raises :class:`~ffneuro.errors.NotModelled`: its memory is not modelled,
never estimated with another block's replay.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from ..spec.block import BlockSpec
from .objective import PAIRS, ObjectiveCost
from .onednn import check_block, detect_onednn_block
from .ops import MASTER_PRECISION, nbytes
from .optimizer import ADAM, DEFAULT_OPTIMIZERS, OptimizerCost, Optimizers
from .replay import ReplayStep, Timeline, f32, optimizer_step, param_tensor_bytes
from .specs import LinearSpec, head_spec, readout_spec

SCHEMES = ("pytorch", "minimal")
BACKENDS = ("cuda", "cpu")
LABEL_BYTES = 8  # int64 class labels


@dataclass(frozen=True)
class MemoryCost:
    """Training memory of one step, in bytes (``pytorch`` scheme: fp32 or bf16 only).

    ``peak_bytes`` is everything live at the step's peak (resident state included);
    ``working_bytes = peak_bytes - resident_bytes`` is the rise above the steady state between steps,
    i.e. what ``max_memory_allocated() - memory_allocated()`` measures around a step after warm-up.
    ``activation_bytes`` is, per unit, what it holds for its backward pass (FF: its input and its
    neurons for positives and negatives; BP: its saved input, ReLU output, pooled map and indices, rms).
    """

    algo: str
    scheme: str
    batch: int
    precision: str
    param_bytes: int
    grad_bytes: int
    optimizer_bytes: int
    input_bytes: int
    activation_bytes: tuple[int, ...]
    units: tuple[str, ...]
    peak_bytes: int
    peak_at: str

    @property
    def resident_bytes(self) -> int:
        return self.param_bytes + self.grad_bytes + self.optimizer_bytes + self.input_bytes

    @property
    def working_bytes(self) -> int:
        return self.peak_bytes - self.resident_bytes

    def to_dict(self) -> dict:
        d = asdict(self)
        d["activation_bytes"] = list(self.activation_bytes)
        d["units"] = list(self.units)
        d.update(resident_bytes=self.resident_bytes, working_bytes=self.working_bytes)
        return d


def _check(scheme: str, precision: str, backend: str = "cuda") -> None:
    if scheme not in SCHEMES:
        raise ValueError(f"unknown memory scheme {scheme!r}; valid: {', '.join(SCHEMES)}")
    if scheme == "pytorch" and precision not in ("fp32", "bf16"):
        raise ValueError(f"training memory is modelled for fp32 and bf16, got {precision!r}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if backend == "cpu" and precision != "fp32":
        raise ValueError("the CPU (oneDNN) replay is modelled for fp32 only")


def _block(backend: str, onednn_block: int | None) -> int | None:
    """The oneDNN channel block the CPU replay uses (None on CUDA): as given, else this CPU's."""
    if backend != "cpu":
        if onednn_block is not None:
            raise ValueError("onednn_block applies to backend='cpu' only")
        return None
    return detect_onednn_block() if onednn_block is None else check_block(onednn_block)


def _resident(t: Timeline, specs: Sequence[BlockSpec | LinearSpec], batch: int, image_elems: int,
              master: str, optimizer: OptimizerCost = ADAM,
              readout: LinearSpec | None = None, readout_optimizer: OptimizerCost = ADAM) -> tuple[int, int, int, int]:
    """Parameters, gradients and optimiser state of ``specs`` (``readout``, one of them, has its own optimiser)
    and the input batch."""
    params = sum(nbytes(s.params, master) for s in specs)
    trained = [s for s in specs if s.trainable]
    grads = sum(nbytes(s.params, master) for s in trained)
    optim = sum(nbytes(s.params, master) * (readout_optimizer if s is readout else optimizer).state_per_param
                for s in trained)
    inputs = nbytes(batch * image_elems, "fp32") + batch * LABEL_BYTES
    t.alloc("params", params)
    t.alloc("optimizer", optim)
    for s in trained:
        t.alloc(f"grad:{s.name}", nbytes(s.params, master))
    t.alloc("batch", inputs)
    return params, grads, optim, inputs


def _embed(t: Timeline, rows: int, image_elems: int, name: str) -> None:
    """LabelScheme.embed: gather + scale + add, then min-max: about two image-sized temporaries."""
    size = nbytes(rows * image_elems, "fp32")
    t.alloc("embed_tmp", 2 * size)
    t.alloc(name, size)
    t.mark(f"embed {name}")
    t.free("embed_tmp")


def _readout_step(t: Timeline, readout: LinearSpec, batch: int, master: str, backend: str,
                  optimizer: OptimizerCost = ADAM) -> None:
    """The linear readout's own step on its gathered features: logits, backward, its optimiser."""
    t.alloc("logits", 3 * f32(batch * readout.out_features))
    t.free(f"grad:{readout.name}")
    t.alloc(f"grad:{readout.name}", nbytes(readout.params, master))
    t.mark("readout: backward")
    optimizer_step(t, param_tensor_bytes([readout], master), "readout: update", backend, optimizer)


# --------------------------------------------------------------------------------------------------
# FF


def ff_memory(layers: Sequence[BlockSpec], batch: int, precision: str = "fp32", *, num_classes: int = 10,
              linear_readout: bool = False, readout_from: int = 1, scheme: str = "pytorch",
              master: str = MASTER_PRECISION, backend: str = "cuda", onednn_block: int | None = None,
              objective: ObjectiveCost = PAIRS, threads: int = 1,
              optimizers: Optimizers = DEFAULT_OPTIMIZERS) -> MemoryCost:
    """Memory of one ``FFNet.train_batch``: units run one at a time on one tensor of ``batch``
    positives and ``batch`` negatives (a class-wise ``objective``: on the ``batch`` images themselves);
    all units' parameters and optimiser states stay resident. ``backend="cpu"`` adds the blocked copies
    oneDNN makes around every conv (fp32 only), with channels rounded up to ``onednn_block`` (8 or 16;
    default: this CPU's, see :func:`.onednn.detect_onednn_block`); ``"cuda"`` leaves out cuDNN's
    workspace. ``threads``: the CPU threads convs run on (a few small convs skip oneDNN on one thread).
    ``optimizers``: the units' and the readout's optimiser and the readout's bias (default: Adam, a bias).
    Each block replays its own step (``replay_ff_unit``); one without a replay raises
    :class:`~ffneuro.errors.NotModelled`."""
    _check(scheme, precision, backend)
    block = _block(backend, onednn_block)
    act, rows = precision, batch * objective.rows_per_image
    specs: list = list(layers)
    readout = readout_spec(layers, num_classes, readout_from, optimizers.readout_bias) if linear_readout else None
    if readout is not None:
        specs.append(readout)
    t = Timeline()
    image = layers[0].in_elems
    params, grads, optim, inputs = _resident(t, specs, batch, image, master, optimizers.units, readout,
                                             optimizers.readout)
    held = tuple(nbytes(rows * s.in_elems, "fp32" if scheme == "pytorch" else act) + nbytes(rows * s.neurons, act)
                 for s in layers)
    names = tuple(s.name for s in specs)
    if scheme == "minimal":
        work = max(nbytes(rows * (s.in_elems + s.neurons + s.out_elems), act) for s in layers)
        k = max(range(len(layers)), key=lambda i: layers[i].in_elems + layers[i].neurons + layers[i].out_elems)
        if readout is not None:
            work = max(work, nbytes(batch * (readout.in_features + readout.out_features), act))
        return MemoryCost("ff", scheme, batch, precision, params, grads, optim, inputs, held, names,
                          t.total + work, layers[k].name)

    step = ReplayStep(rows, batch, act, master, backend, block, objective, threads, optimizers.units)
    if objective.pairs:
        _embed(t, batch, image, "h_pos")
        _embed(t, batch, image, "h_neg")
        t.alloc("in", f32(rows * image))                 # torch.cat: the 2N rows every unit works on
        t.mark("embed cat")
        t.free("h_pos", "h_neg")
    # a class-wise objective runs the batch itself through unit 1 (no "in" of its own); its linear readout
    # reuses the readout units' training outputs, which stay alive to the end of the step ("kept")
    keep = linear_readout and not objective.pairs
    for i, s in enumerate(layers):
        u = f"{s.name}: "
        s.replay_ff_unit(t, step, u)
        t.mark(u + "hand-on")
        t.free("in", "y")
        t.rename("out", "in")
        if keep and i >= readout_from - 1:
            t.rename("in", f"kept{i}")
    t.free("in")                                         # train_batch drops the last unit's output
    if readout is not None and keep:
        kept = [k for k in t.live if k.startswith("kept")]
        if len(kept) > 1:                                # torch.cat of the flattened outputs
            t.alloc("features", f32(batch * readout.in_features))
            t.mark("readout: features")
            t.free(*kept)
        _readout_step(t, readout, batch, master, backend, optimizers.readout)
    elif readout is not None:
        # features(embed_neutral(x)) under no_grad, then the readout's own step
        t.alloc("neutral", f32(batch * image))
        t.mark("readout: embed")
        cur = "neutral"
        for i, s in enumerate(layers):
            s.replay_forward(t, batch, step, f"readout/{s.name}: ")
            t.free("n_y", cur)
            cur = f"neutral{i}"
            t.rename("n_out", cur)
            if i == readout_from - 1:
                # the preallocated (N, features) output, made once the first readout unit is done;
                # each readout unit's output is copied into its slice (no further allocation)
                t.alloc("features", f32(batch * readout.in_features))
                t.mark("readout: features")
        t.free(cur)
        _readout_step(t, readout, batch, master, backend, optimizers.readout)
    return MemoryCost("ff", scheme, batch, precision, params, grads, optim, inputs, held, names, t.peak, t.peak_at)


def ff_peak_training_bytes(layers: Sequence[BlockSpec], batch: int, precision: str = "fp32", **kw) -> int:
    """Peak bytes of one FF training step (see :func:`ff_memory` for the options)."""
    return ff_memory(layers, batch, precision, **kw).peak_bytes


# --------------------------------------------------------------------------------------------------
# BP


def bp_memory(layers: Sequence[BlockSpec], batch: int, precision: str = "fp32", *, num_classes: int = 10,
              scheme: str = "pytorch", master: str = MASTER_PRECISION, backend: str = "cuda",
              onednn_block: int | None = None, threads: int = 1) -> MemoryCost:
    """Memory of one ``BPNet.train_batch``: the forward stores every layer's activations (each block's
    ``replay_bp_forward``), the head's logits, then every layer's backward from the top
    (``replay_bp_backward``) and one Adam step over every parameter. ``backend`` and ``onednn_block``
    as for :func:`ff_memory`."""
    _check(scheme, precision, backend)
    block = _block(backend, onednn_block)
    act, n = precision, batch
    head = head_spec(layers, num_classes)
    specs = [*layers, head]
    t = Timeline()
    image = layers[0].in_elems
    params, grads, optim, inputs = _resident(t, specs, batch, image, master)
    names = tuple(s.name for s in specs)
    if scheme == "minimal":
        stored = [nbytes(n * s.bp_stored, act) + f32(n) for s in layers]
        in_flight = max(nbytes(n * (s.neurons + s.in_elems), act) for s in layers)
        held = tuple(nbytes(n * s.in_elems, act) + st - nbytes(n * s.out_elems, act) for s, st in zip(layers, stored))
        return MemoryCost("bp", scheme, batch, precision, params, grads, optim, inputs, held, names,
                          t.total + sum(stored) + in_flight, "backward")

    step = ReplayStep(n, n, act, master, backend, block, threads=threads)
    bf = act != "fp32"
    held = []
    for k, s in enumerate(layers, 1):
        before = t.total
        s.replay_bp_forward(t, n, k, step, f"{s.name}: ")
        held.append(t.total - before)
    L = len(layers)
    if bf:                                               # autocast copies of the head's input and weights
        t.alloc("hL16", nbytes(n * head.in_features, act))
        t.alloc("wH16", nbytes(head.params, act))
        t.free(f"h_{L}")
    t.alloc("logits", 3 * f32(n * head.out_features))  # logits, log-softmax (saved), loss terms
    t.mark("head")
    for s in specs:
        if s.trainable:
            t.free(f"grad:{s.name}")                     # zero_grad(set_to_none=True)
    t.alloc("g", nbytes(n * head.in_features, act))
    t.alloc(f"grad:{head.name}", nbytes(head.params, master))
    t.mark("head backward")
    # autograd drops the head's saved input after its backward; each layer's output h_k goes once the layer
    # after it is done (below): no block's backward sees its own output
    t.free("logits", "hL16", "wH16", f"h_{L}")
    for k in reversed(range(1, L + 1)):
        s = layers[k - 1]
        s.replay_bp_backward(t, n, k, step, f"{s.name} backward: ")
        t.free(f"h_{k - 1}")
    optimizer_step(t, param_tensor_bytes(specs, master), "update", backend, ADAM)
    return MemoryCost("bp", scheme, batch, precision, params, grads, optim, inputs, tuple(held), names,
                      t.peak, t.peak_at)


def bp_peak_training_bytes(layers: Sequence[BlockSpec], batch: int, precision: str = "fp32", **kw) -> int:
    """Peak bytes of one BP training step (see :func:`bp_memory` for the options)."""
    return bp_memory(layers, batch, precision, **kw).peak_bytes


# --------------------------------------------------------------------------------------------------
# inference


def inference_peak_bytes(layers: Sequence[BlockSpec], batch: int, precision: str = "fp32", *, readout: str,
                         num_classes: int = 10, readout_from: int = 1, algo: str = "ff",
                         weight_precision: str = MASTER_PRECISION, objective: ObjectiveCost = PAIRS,
                         readout_bias: bool = True) -> int:
    """Peak bytes of classifying ``batch`` images (``"minimal"`` scheme): every parameter, the input
    batch, and the largest unit's input, neurons and output for all rows at once (the goodness readout
    of a pair objective runs batch×classes rows); with the linear readout also its gathered features
    (``readout_bias`` False: an FF readout without a bias)."""
    rows = batch * (num_classes if readout == "goodness" and objective.pairs else 1)
    lin = None
    if readout == "linear":
        lin = head_spec(layers, num_classes) if algo == "bp" else \
            readout_spec(layers, num_classes, readout_from, readout_bias)
    params = sum(nbytes(s.params, weight_precision) for s in [*layers, *([lin] if lin else [])])
    work = max(nbytes(rows * (s.in_elems + s.neurons + s.out_elems), precision) for s in layers)
    if lin is not None:
        work = max(work, nbytes(rows * (lin.in_features + lin.out_features), precision))
    return params + nbytes(batch * layers[0].in_elems, "fp32") + work


def inference_memory(layers: Sequence[BlockSpec], batch: int, *, readout: str, num_classes: int = 10,
                     readout_from: int = 1, algo: str = "ff", linear_readout: bool | None = None,
                     master: str = MASTER_PRECISION, backend: str = "cuda",
                     onednn_block: int | None = None, threads: int = 1, readout_bias: bool = True) -> MemoryCost:
    """Memory of one ``predict`` call on ``batch`` images (fp32, under ``no_grad``): the ``"pytorch"``
    replay of what this package's readouts allocate and free, as :func:`ff_memory` does for training,
    with each block's ``replay_infer`` (a block without one raises :class:`~ffneuro.errors.NotModelled`).

    FF goodness (``FFNet.goodness_scores``): every image with every label, batch × classes rows; only a
    unit's hand-on output lives through the next unit's forward (``FFNet.walk``), and each readout
    unit's goodness squares its neurons once. FF linear (``features``): the neutrally embedded batch stays
    alive through the whole pass, beside the preallocated features. BP (``BPNet.forward``): each block's
    forward and hand-on. Resident: every parameter (an FF net's linear readout when ``linear_readout``,
    by default when ``readout`` is linear, without a bias when not ``readout_bias``; BP's head) and the fp32
    input batch."""
    _check("pytorch", "fp32", backend)
    block = _block(backend, onednn_block)
    if readout not in ("goodness", "linear"):
        raise ValueError(f"unknown readout {readout!r}; valid: goodness, linear")
    if algo not in ("ff", "bp"):
        raise ValueError(f"unknown algo {algo!r}; valid: ff, bp")
    if algo == "bp" and readout != "linear":
        raise ValueError("a BP network has only the linear readout")
    if algo == "bp":
        extra = [head_spec(layers, num_classes)]
    else:
        with_linear = readout == "linear" if linear_readout is None else linear_readout
        extra = [readout_spec(layers, num_classes, readout_from, readout_bias)] \
            if with_linear or readout == "linear" else []
    t = Timeline()
    params = sum(nbytes(s.params, master) for s in [*layers, *extra])
    t.alloc("params", params)
    image = layers[0].in_elems
    inputs = f32(batch * image) + batch * LABEL_BYTES
    t.alloc("batch", inputs)
    names = tuple(s.name for s in [*layers, *extra])
    step = ReplayStep(batch, batch, "fp32", master, backend, block, threads=threads)

    if algo == "ff" and readout == "goodness":
        rows = batch * num_classes
        t.alloc("labels", rows * LABEL_BYTES)
        t.alloc("repeated", f32(rows * image))          # x.repeat_interleave(classes)
        _embed(t, rows, image, "h")
        t.free("repeated", "labels")
        for i, s in enumerate(layers):
            u = f"{s.name}: "
            s.replay_infer(t, rows, step, u, bp=False)   # FFNet.walk hands on first (for the last unit too)
            if i >= readout_from - 1:
                t.alloc("sq", f32(rows * s.goodness_elems))   # then goodness: y.pow(2) before the sum
                t.mark(u + "goodness")
                t.free("sq")
            t.free("h", "y_new")                         # FFNet.walk drops the input and neurons before the next unit
            t.rename("out", "h")
    elif algo == "ff":
        lin = extra[0]
        _embed(t, batch, image, "neutral")
        cur = "neutral"                                  # features' argument: alive through the whole pass
        for i, s in enumerate(layers):
            s.replay_infer(t, batch, step, f"{s.name}: ", bp=False)
            t.free("y_new")
            if cur != "neutral":
                t.free(cur)
            cur = f"h{i}"
            t.rename("out", cur)
            if i == readout_from - 1:
                t.alloc("features", f32(batch * lin.in_features))
                t.mark("features")
        t.alloc("logits", f32(batch * lin.out_features))
        t.mark("readout")
    else:
        cur = "batch"
        for i, s in enumerate(layers):
            s.replay_infer(t, batch, step, f"{s.name}: ", bp=True)
            if cur != "batch":
                t.free(cur)
            cur = f"h{i}"
            t.rename("out", cur)
        t.alloc("logits", f32(batch * num_classes))
        t.mark("head")
    return MemoryCost(algo, "pytorch", batch, "fp32", params, 0, 0, inputs, (), names, t.peak, t.peak_at)
