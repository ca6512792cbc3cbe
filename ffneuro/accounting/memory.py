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

Both add the resident state: all parameters, their gradients and Adam's two moments (fp32), and the
input batch.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from .objective import PAIRS, ObjectiveCost
from .onednn import (
    ConvCopies,
    check_block,
    detect_onednn_block,
    forward_copies,
    input_grad_copies,
    weight_grad_copies,
)
from .ops import INDEX_BYTES, MASTER_PRECISION, nbytes
from .specs import LayerSpec, LinearSpec, head_spec, readout_spec

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

    @property
    def peak_training_bytes(self) -> int:
        return self.peak_bytes

    def to_dict(self) -> dict:
        d = asdict(self)
        d["activation_bytes"] = list(self.activation_bytes)
        d["units"] = list(self.units)
        d.update(resident_bytes=self.resident_bytes, working_bytes=self.working_bytes)
        return d


class _Timeline:
    """Live tensors by name; ``mark`` records the total when it is a new maximum."""

    def __init__(self) -> None:
        self.live: dict[str, int] = {}
        self.peak, self.peak_at = 0, ""

    def alloc(self, name: str, size: int) -> None:
        if size:
            self.live[name] = self.live.get(name, 0) + int(size)

    def free(self, *names: str) -> None:
        for name in names:
            self.live.pop(name, None)

    def mark(self, where: str) -> None:
        total = sum(self.live.values())
        if total > self.peak:
            self.peak, self.peak_at = total, where


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


def _conv(t: _Timeline, result: str, size: int, where: str, copies: ConvCopies | None) -> None:
    """One conv pass writing ``result`` (``size`` bytes). On the CPU (``copies`` given) oneDNN first
    runs on its blocked copies, then writes the plain result beside the copies' tail (see
    :mod:`.onednn`); without copies (CUDA) only the result is allocated."""
    if copies is not None:
        t.alloc("dnn_src", copies.src)
        t.alloc("dnn_weights", copies.weights)
        t.alloc("dnn_dst", copies.dst)
        t.mark(where + " (oneDNN)")
        t.free("dnn_src", "dnn_weights", "dnn_dst")
        t.alloc("dnn_tail", copies.tail)
    t.alloc(result, size)
    t.mark(where)
    t.free("dnn_tail")


def _resident(t: _Timeline, specs: Sequence[LayerSpec | LinearSpec], batch: int, image_elems: int,
              master: str) -> tuple[int, int, int, int]:
    params = sum(nbytes(s.params, master) for s in specs)
    trained = [s for s in specs if s.trainable]
    grads = sum(nbytes(s.params, master) for s in trained)
    optim = 2 * grads
    inputs = nbytes(batch * image_elems, "fp32") + batch * LABEL_BYTES
    t.alloc("params", params)
    t.alloc("optimizer", optim)
    for s in trained:
        t.alloc(f"grad:{s.name}", nbytes(s.params, master))
    t.alloc("batch", inputs)
    return params, grads, optim, inputs


def _tensor_bytes(specs: Sequence[LayerSpec | LinearSpec], master: str) -> list[int]:
    """Bytes of each parameter tensor (weight, then bias when present) of ``specs``."""
    return [nbytes(n, master) for s in specs for n in (s.weights, s.params - s.weights) if n]


def _adam(t: _Timeline, tensors: Sequence[int], where: str, backend: str) -> None:
    """Adam's transient: on CUDA the foreach path's ``_foreach_sqrt(exp_avg_sqs)``, one tensor per
    parameter; on CPU the single-tensor path's ``exp_avg_sq.sqrt() / c``, two tensors the size of one
    parameter at a time, so the largest tensor sets it."""
    t.alloc("adam_tmp", sum(tensors) if backend == "cuda" else 2 * max(tensors))
    t.mark(where)
    t.free("adam_tmp")


def _hand_on(t: _Timeline, s: LayerSpec, rows: int, act: str, prefix: str) -> None:
    """pool_out(y) → .float() → rms_normalize: leaves ``out`` (fp32) alive, frees the temporaries.
    Only max/avg pooling makes a pooled tensor (a stride-2 conv's pool_out is the identity)."""
    f32 = lambda n: nbytes(n, "fp32")
    p = rows * s.out_elems
    if s.pooled:
        t.alloc(f"{prefix}pooled", nbytes(p, act))
        if s.pool == "max":
            t.alloc(f"{prefix}pool_idx", p * INDEX_BYTES)  # max_pool2d_with_indices, even under no_grad
            t.mark(f"{prefix}pool")
            t.free(f"{prefix}pool_idx")
    if act != "fp32":
        t.alloc(f"{prefix}pooled32", f32(p))
    t.alloc(f"{prefix}norm_sq", f32(p))
    t.mark(f"{prefix}hand-on norm")
    t.free(f"{prefix}norm_sq")
    t.alloc(f"{prefix}out", f32(p))
    t.mark(f"{prefix}hand-on out")
    t.free(f"{prefix}pooled", f"{prefix}pooled32")


def _embed(t: _Timeline, rows: int, image_elems: int, name: str) -> None:
    """LabelScheme.embed: gather + scale + add, then min-max: about two image-sized temporaries."""
    size = nbytes(rows * image_elems, "fp32")
    t.alloc("embed_tmp", 2 * size)
    t.alloc(name, size)
    t.mark(f"embed {name}")
    t.free("embed_tmp")


# --------------------------------------------------------------------------------------------------
# FF


def ff_memory(layers: Sequence, batch: int, precision: str = "fp32", *, num_classes: int = 10,
              linear_readout: bool = False, readout_from: int = 1, goodness: str = "sumsq",
              scheme: str = "pytorch", master: str = MASTER_PRECISION, backend: str = "cuda",
              onednn_block: int | None = None, objective: ObjectiveCost = PAIRS) -> MemoryCost:
    """Memory of one ``FFNet.train_batch``: units run one at a time on one tensor of ``batch``
    positives and ``batch`` negatives (a class-wise ``objective``: on the ``batch`` images themselves);
    all units' parameters and optimiser states stay resident. ``goodness`` no longer changes the
    PyTorch replay: every goodness function's backward makes a single full-size tensor.
    ``backend="cpu"`` adds the blocked copies oneDNN makes around every conv (fp32 only), with channels
    rounded up to ``onednn_block`` (8 or 16; default: this CPU's, see :func:`.onednn.detect_onednn_block`);
    ``"cuda"`` leaves out cuDNN's workspace. Block types other than the conv block replay their own
    step (their spec's ``replay_ff_unit``, :mod:`ffneuro.accounting.rules`)."""
    _check(scheme, precision, backend)
    block = _block(backend, onednn_block)
    act, rows = precision, batch * objective.rows_per_image
    custom = [s for s in layers if hasattr(s, "replay_ff_unit")]
    if custom and scheme == "pytorch" and precision != "fp32":
        raise ValueError(f"the PyTorch replay of {custom[0].kind} blocks is modelled for fp32 only")
    specs: list = list(layers)
    readout = readout_spec(layers, num_classes, readout_from) if linear_readout else None
    if readout is not None:
        specs.append(readout)
    t = _Timeline()
    image = layers[0].in_elems
    params, grads, optim, inputs = _resident(t, specs, batch, image, master)
    held = tuple(nbytes(rows * s.in_elems, "fp32" if scheme == "pytorch" else act) + nbytes(rows * s.neurons, act)
                 for s in layers)
    names = tuple(s.name for s in specs)
    if scheme == "minimal":
        work = max(nbytes(rows * (s.in_elems + s.neurons + s.out_elems), act) for s in layers)
        k = max(range(len(layers)), key=lambda i: layers[i].in_elems + layers[i].neurons + layers[i].out_elems)
        if readout is not None:
            work = max(work, nbytes(batch * (readout.in_features + readout.out_features), act))
        return MemoryCost("ff", scheme, batch, precision, params, grads, optim, inputs, held, names,
                          sum(t.live.values()) + work, layers[k].name)

    f32 = lambda n: nbytes(n, "fp32")
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
        if hasattr(s, "replay_ff_unit"):
            s.replay_ff_unit(t, rows, batch, backend, master, objective, u)
            t.mark(u + "hand-on")
            t.free("in", "y")
            t.live["in"] = t.live.pop("out")
            if keep and i >= readout_from - 1:
                t.live[f"kept{i}"] = t.live.pop("in")
            continue
        x_in, a, p_params = rows * s.in_elems, rows * s.neurons, nbytes(s.params, master)
        if act != "fp32":                                # autocast copies of input and weights
            t.alloc("x16", nbytes(x_in, act))
            t.alloc("w16", nbytes(s.params, act))
        _conv(t, "conv_out", nbytes(a, act), u + "conv", forward_copies(s, rows, block) if block else None)
        if act != "fp32" and not s.trainable:
            t.free("x16", "w16")
        t.alloc("y", nbytes(a, act))                     # ReLU output (saved for ReLU backward)
        t.mark(u + "relu")
        t.free("conv_out")
        if act != "fp32":
            t.alloc("y32", f32(a))                       # y.float() in ff_logits (saved by goodness; no copy in fp32)
        t.alloc("sq", f32(a))                            # y.pow(2) before the sum
        t.mark(u + "goodness")
        t.free("sq")
        if s.trainable:
            t.free(f"grad:{s.name}")                     # zero_grad(set_to_none=True)
            t.alloc("g_y", f32(a))                       # goodness backward: y * (2·grad/count), one tensor
            t.mark(u + "goodness backward")
            t.free("y32")
            if act != "fp32":
                t.alloc("g_y16", nbytes(a, act))         # ToCopyBackward to bf16
                t.free("g_y")
            t.alloc("g_conv", nbytes(a, act))            # ReLU backward
            t.mark(u + "relu backward")
            t.free("g_y", "g_y16")
            # conv weight and bias gradient (dL/dx not asked for)
            _conv(t, f"grad:{s.name}", p_params, u + "conv backward",
                  weight_grad_copies(s, rows, block) if block else None)
            t.free("g_conv", "x16", "w16")
            _adam(t, _tensor_bytes([s], master), u + "update", backend)
        else:
            t.free("y32")
        _hand_on(t, s, rows, act, "")
        t.mark(u + "hand-on")
        t.free("in", "y")
        t.live["in"] = t.live.pop("out")
        if keep and i >= readout_from - 1:
            t.live[f"kept{i}"] = t.live.pop("in")
    t.free("in")                                         # train_batch drops the last unit's output
    if readout is not None and keep:
        kept = [k for k in t.live if k.startswith("kept")]
        if len(kept) > 1:                                # torch.cat of the flattened outputs
            t.alloc("features", f32(batch * readout.in_features))
            t.mark("readout: features")
            t.free(*kept)
        t.alloc("logits", 3 * f32(batch * readout.out_features))
        t.free(f"grad:{readout.name}")
        t.alloc(f"grad:{readout.name}", nbytes(readout.params, master))
        t.mark("readout: backward")
        _adam(t, _tensor_bytes([readout], master), "readout: update", backend)
    elif readout is not None:
        # features(embed_neutral(x)) under no_grad, then the readout's own step
        t.alloc("neutral", f32(batch * image))
        t.mark("readout: embed")
        cur = "neutral"
        for i, s in enumerate(layers):
            u = f"readout/{s.name}: "
            if hasattr(s, "replay_forward"):
                s.replay_forward(t, batch, backend, u)
            else:
                if act != "fp32":
                    t.alloc("n_x16", nbytes(batch * s.in_elems, act))
                _conv(t, "n_conv_out", nbytes(batch * s.neurons, act), u + "conv",
                      forward_copies(s, batch, block) if block else None)
                t.alloc("n_y", nbytes(batch * s.neurons, act))
                t.mark(u + "relu")
                t.free("n_conv_out", "n_x16")
                _hand_on(t, s, batch, act, "n_")
            t.free("n_y", cur)
            cur = f"neutral{i}"
            t.live[cur] = t.live.pop("n_out")
            if i == readout_from - 1:
                # the preallocated (N, features) output, made once the first readout unit is done;
                # each readout unit's output is copied into its slice (no further allocation)
                t.alloc("features", f32(batch * readout.in_features))
                t.mark("readout: features")
        t.free(cur)
        t.alloc("logits", 3 * f32(batch * readout.out_features))
        t.free(f"grad:{readout.name}")
        t.alloc(f"grad:{readout.name}", nbytes(readout.params, master))
        t.mark("readout: backward")
        _adam(t, _tensor_bytes([readout], master), "readout: update", backend)
    return MemoryCost("ff", scheme, batch, precision, params, grads, optim, inputs, held, names, t.peak, t.peak_at)


def ff_peak_training_bytes(layers: Sequence[LayerSpec], batch: int, precision: str = "fp32", **kw) -> int:
    """Peak bytes of one FF training step (see :func:`ff_memory` for the options)."""
    return ff_memory(layers, batch, precision, **kw).peak_bytes


# --------------------------------------------------------------------------------------------------
# BP


def bp_memory(layers: Sequence[LayerSpec], batch: int, precision: str = "fp32", *, num_classes: int = 10,
              scheme: str = "pytorch", master: str = MASTER_PRECISION, backend: str = "cuda",
              onednn_block: int | None = None) -> MemoryCost:
    """Memory of one ``BPNet.train_batch``: the forward stores every layer's activations, the backward
    walks back through all of them; one Adam holds every parameter. ``backend`` and ``onednn_block``
    as for :func:`ff_memory`."""
    _check(scheme, precision, backend)
    block = _block(backend, onednn_block)
    act, n = precision, batch
    head = head_spec(layers, num_classes)
    specs = [*layers, head]
    t = _Timeline()
    image = layers[0].in_elems
    params, grads, optim, inputs = _resident(t, specs, batch, image, master)
    f32 = lambda k: nbytes(k, "fp32")
    names = tuple(s.name for s in specs)
    if scheme == "minimal":
        stored = [nbytes(n * (s.neurons + (s.out_elems if s.pooled else 0) + s.out_elems), act) + f32(n)
                  for s in layers]
        in_flight = max(nbytes(n * (s.neurons + s.in_elems), act) for s in layers)
        held = tuple(nbytes(n * s.in_elems, act) + st - nbytes(n * s.out_elems, act) for s, st in zip(layers, stored))
        return MemoryCost("bp", scheme, batch, precision, params, grads, optim, inputs, held, names,
                          sum(t.live.values()) + sum(stored) + in_flight, "backward")

    if any(hasattr(s, "replay_bp_forward") for s in layers):
        return _bp_memory_by_block(t, layers, head, specs, batch, precision, params, grads, optim, inputs, names,
                                   master, backend)
    held = []
    bf = act != "fp32"
    # ---- forward (everything below stays saved for the backward unless freed)
    for i, s in enumerate(layers):
        u, k = f"{s.name}: ", i + 1
        a, p = n * s.neurons, n * s.out_elems
        before = sum(t.live.values())
        if bf:
            t.alloc(f"x16_{k}", nbytes(n * s.in_elems, act))
            t.alloc(f"w16_{k}", nbytes(s.params, act))
        _conv(t, "conv_out", nbytes(a, act), u + "conv", forward_copies(s, n, block) if block else None)
        t.alloc(f"y_{k}", nbytes(a, act))
        t.mark(u + "relu")
        t.free("conv_out")
        if s.pooled:
            t.alloc(f"p_{k}", nbytes(p, act))
            if s.pool == "max":
                t.alloc(f"idx_{k}", p * INDEX_BYTES)
            t.mark(u + "pool")
        if bf:
            t.alloc(f"p32_{k}", f32(p))                 # autocast runs pow in fp32 (saved by pow)
        t.alloc("sq", f32(p))
        t.mark(u + "norm")
        t.free("sq")
        t.alloc(f"rms_{k}", f32(n))
        t.alloc(f"h_{k}", f32(p))                        # bf16 / fp32 rms promotes to fp32
        t.mark(u + "norm out")
        if bf and k > 1:
            t.free(f"h_{k - 1}")                         # only its bf16 copy (x16) is saved
        held.append(sum(t.live.values()) - before)
    L = len(layers)
    if bf:
        t.alloc("hL16", nbytes(n * head.in_features, act))
        t.alloc("wH16", nbytes(head.params, act))
        t.free(f"h_{L}")
    t.alloc("logits", 3 * f32(n * head.out_features))  # logits, log-softmax (saved), loss terms
    t.mark("head")
    # ---- backward
    for s in specs:
        if s.trainable:
            t.free(f"grad:{s.name}")                     # zero_grad(set_to_none=True)
    t.alloc("g", nbytes(n * head.in_features, act))
    t.alloc(f"grad:{head.name}", nbytes(head.params, master))
    t.mark("head backward")
    t.free("logits", f"h_{L}", "hL16", "wH16")
    for i in reversed(range(L)):
        s, k = layers[i], i + 1
        u = f"{s.name} backward: "
        a, p = n * s.neurons, n * s.out_elems
        t.alloc("div_bwd", 4 * f32(p))                   # grad/rms, (p/rms)/rms, -grad, their product
        t.mark(u + "norm (div)")
        t.free("div_bwd", "g")
        t.alloc("g_p", f32(p))
        t.alloc("pow_bwd", 4 * f32(p))                   # mean backward's expand + pow backward's three
        t.mark(u + "norm (pow)")
        t.free("pow_bwd", f"rms_{k}", f"p32_{k}")
        if bf:
            t.alloc("g_p16", nbytes(p, act))
            t.free("g_p")
        if s.pooled:
            t.alloc("g_y", nbytes(a, act))
            t.mark(u + "pool")
            t.free("g_p", "g_p16", f"p_{k}", f"idx_{k}")
        t.alloc("g_conv", nbytes(a, act))
        t.mark(u + "relu")
        t.free("g_y", "g_p", "g_p16", f"y_{k}")
        if k > 1:                                        # dL/dx first, then dW (one convolution_backward)
            _conv(t, "g", nbytes(n * s.in_elems, act), u + "conv input gradient",
                  input_grad_copies(s, n, block) if block else None)
        _conv(t, f"grad:{s.name}", nbytes(s.params, master), u + "conv",
              weight_grad_copies(s, n, block) if block else None)
        t.free("g_conv", f"x16_{k}", f"w16_{k}", f"h_{k - 1}")
        if bf and k > 1:
            t.alloc("g32", f32(n * s.in_elems))          # ToCopyBackward back to the fp32 h
            t.free("g")
            t.live["g"] = t.live.pop("g32")
    _adam(t, _tensor_bytes(specs, master), "update", backend)
    return MemoryCost("bp", scheme, batch, precision, params, grads, optim, inputs, tuple(held), names,
                      t.peak, t.peak_at)


def _bp_memory_by_block(t: _Timeline, layers, head, specs, n: int, precision: str, params, grads, optim, inputs,
                        names, master: str, backend: str) -> MemoryCost:
    """bp_memory for block types that replay their own BP forward and backward (``replay_bp_forward`` /
    ``replay_bp_backward``, fp32): the forward saves each layer's tensors, the head's logits, then every
    layer's backward from the top, and one Adam step."""
    if precision != "fp32":
        raise ValueError(f"the PyTorch replay of {layers[0].kind} blocks is modelled for fp32 only")
    f32 = lambda k: nbytes(k, "fp32")
    held = []
    for k, s in enumerate(layers, 1):
        before = sum(t.live.values())
        s.replay_bp_forward(t, n, k, backend, f"{s.name}: ")
        held.append(sum(t.live.values()) - before)
    t.alloc("logits", 3 * f32(n * head.out_features))
    t.mark("head")
    for s in specs:
        if s.trainable:
            t.free(f"grad:{s.name}")                     # zero_grad(set_to_none=True)
    t.alloc("g", f32(n * head.in_features))
    t.alloc(f"grad:{head.name}", nbytes(head.params, master))
    t.mark("head backward")
    t.free("logits")
    for k in reversed(range(1, len(layers) + 1)):
        s = layers[k - 1]
        s.replay_bp_backward(t, n, k, backend, master, f"{s.name} backward: ")
        t.free(f"h_{k - 1}")
    _adam(t, _tensor_bytes(specs, master), "update", backend)
    return MemoryCost("bp", "pytorch", n, precision, params, grads, optim, inputs, tuple(held), names,
                      t.peak, t.peak_at)


def bp_peak_training_bytes(layers: Sequence[LayerSpec], batch: int, precision: str = "fp32", **kw) -> int:
    """Peak bytes of one BP training step (see :func:`bp_memory` for the options)."""
    return bp_memory(layers, batch, precision, **kw).peak_bytes


# --------------------------------------------------------------------------------------------------
# inference


def inference_peak_bytes(layers: Sequence[LayerSpec], batch: int, precision: str = "fp32", *, readout: str,
                         num_classes: int = 10, readout_from: int = 1, algo: str = "ff",
                         weight_precision: str = MASTER_PRECISION, objective: ObjectiveCost = PAIRS) -> int:
    """Peak bytes of classifying ``batch`` images (``"minimal"`` scheme): every parameter, the input
    batch, and the largest unit's input, neurons and output for all rows at once (the goodness readout
    of a pair objective runs batch×classes rows); with the linear readout also its gathered features."""
    rows = batch * (num_classes if readout == "goodness" and objective.pairs else 1)
    lin = None
    if readout == "linear":
        lin = head_spec(layers, num_classes) if algo == "bp" else readout_spec(layers, num_classes, readout_from)
    params = sum(nbytes(s.params, weight_precision) for s in [*layers, *([lin] if lin else [])])
    work = max(nbytes(rows * (s.in_elems + s.neurons + s.out_elems), precision) for s in layers)
    if lin is not None:
        work = max(work, nbytes(rows * (lin.in_features + lin.out_features), precision))
    return params + nbytes(batch * layers[0].in_elems, "fp32") + work


def inference_memory(layers: Sequence[LayerSpec], batch: int, *, readout: str, num_classes: int = 10,
                     readout_from: int = 1, algo: str = "ff", linear_readout: bool | None = None,
                     master: str = MASTER_PRECISION, backend: str = "cuda",
                     onednn_block: int | None = None) -> MemoryCost:
    """Memory of one ``predict`` call on ``batch`` images (fp32, under ``no_grad``): the ``"pytorch"``
    replay of what this package's readouts allocate and free, as :func:`ff_memory` does for training.

    FF goodness (``FFNet.goodness_scores``): every image with every label, batch × classes rows; only a
    unit's hand-on output lives through the next unit's forward (``FFNet.walk``), and each readout
    unit's goodness squares its neurons once. FF linear (``features``): the neutrally embedded batch stays
    alive through the whole pass, beside the preallocated features. BP (``BPNet.forward``): conv,
    ReLU, pool and norm per block. Resident: every parameter (an FF net's linear readout when
    ``linear_readout``, by default when ``readout`` is linear; BP's head) and the fp32 input batch."""
    _check("pytorch", "fp32", backend)
    block = _block(backend, onednn_block)
    if readout not in ("goodness", "linear"):
        raise ValueError(f"unknown readout {readout!r}; valid: goodness, linear")
    if algo not in ("ff", "bp"):
        raise ValueError(f"unknown algo {algo!r}; valid: ff, bp")
    if algo == "bp" and readout != "linear":
        raise ValueError("a BP network has only the linear readout")
    f32 = lambda n: nbytes(n, "fp32")
    if algo == "bp":
        extra = [head_spec(layers, num_classes)]
    else:
        with_linear = readout == "linear" if linear_readout is None else linear_readout
        extra = [readout_spec(layers, num_classes, readout_from)] if with_linear or readout == "linear" else []
    t = _Timeline()
    params = sum(nbytes(s.params, master) for s in [*layers, *extra])
    t.alloc("params", params)
    image = layers[0].in_elems
    inputs = f32(batch * image) + batch * LABEL_BYTES
    t.alloc("batch", inputs)
    names = tuple(s.name for s in [*layers, *extra])
    copies = lambda s, rows: forward_copies(s, rows, block) if block else None

    def forward(s: LayerSpec, rows: int, u: str) -> None:
        """conv → ReLU: leaves ``y_new`` alive, the conv output freed."""
        _conv(t, "conv_out", f32(rows * s.neurons), u + "conv", copies(s, rows))
        t.alloc("y_new", f32(rows * s.neurons))
        t.mark(u + "relu")
        t.free("conv_out")

    if algo == "ff" and readout == "goodness":
        rows = batch * num_classes
        t.alloc("labels", rows * LABEL_BYTES)
        t.alloc("repeated", f32(rows * image))          # x.repeat_interleave(classes)
        _embed(t, rows, image, "h")
        t.free("repeated", "labels")
        for i, s in enumerate(layers):
            u = f"{s.name}: "
            forward(s, rows, u)
            _hand_on(t, s, rows, "fp32", "")             # FFNet.walk hands on first (for the last unit too)
            if i >= readout_from - 1:
                t.alloc("sq", f32(rows * s.neurons))     # then goodness: y.pow(2) before the sum
                t.mark(u + "goodness")
                t.free("sq")
            t.free("h", "y_new")                         # FFNet.walk drops the input and neurons before the next unit
            t.live["h"] = t.live.pop("out")
        peak_at = t.peak_at
    elif algo == "ff":
        lin = extra[0]
        _embed(t, batch, image, "neutral")
        cur = "neutral"                                  # features' argument: alive through the whole pass
        for i, s in enumerate(layers):
            u = f"{s.name}: "
            forward(s, batch, u)
            _hand_on(t, s, batch, "fp32", "")
            t.free("y_new")
            if cur != "neutral":
                t.free(cur)
            cur = f"h{i}"
            t.live[cur] = t.live.pop("out")
            if i == readout_from - 1:
                t.alloc("features", f32(batch * lin.in_features))
                t.mark("features")
        t.alloc("logits", f32(batch * lin.out_features))
        t.mark("readout")
        peak_at = t.peak_at
    else:
        cur = "batch"
        for i, s in enumerate(layers):
            u = f"{s.name}: "
            forward(s, batch, u)
            p = f32(batch * s.out_elems)
            if s.pooled:                                 # rms_normalize(pool_out(block(h))): y dies after pooling
                t.alloc("pooled", p)
                if s.pool == "max":
                    t.alloc("pool_idx", batch * s.out_elems * INDEX_BYTES)
                    t.mark(u + "pool")
                    t.free("pool_idx")
                t.free("y_new")
            t.alloc("norm_sq", p)
            t.mark(u + "norm")
            t.free("norm_sq")
            t.alloc("out", p)
            t.mark(u + "norm out")
            t.free("pooled", "y_new")
            if cur != "batch":
                t.free(cur)
            cur = f"h{i}"
            t.live[cur] = t.live.pop("out")
        t.alloc("logits", f32(batch * num_classes))
        t.mark("head")
        peak_at = t.peak_at
    return MemoryCost(algo, "pytorch", batch, "fp32", params, 0, 0, inputs, (), names, t.peak, peak_at)
