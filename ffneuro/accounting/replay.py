"""The public toolkit for writing a block's PyTorch memory replay (scheme ``"pytorch"`` of :mod:`.memory`).

A replay walks one step tensor by tensor on a :class:`Timeline`: ``alloc`` what PyTorch allocates,
``free`` what it releases, ``mark`` after each operation so the peak is seen. :mod:`.memory` runs the
parts every network shares (resident parameters and optimiser state, the label embedding, the
readouts) and calls each block's ``replay_*`` methods (:class:`~ffneuro.spec.block.BlockSpec`) for its
own layer, with a :class:`ReplayStep` saying how the step runs. The helpers below are the pieces the
shipped blocks share; each was measured against the CPU allocator (tests/test_variant_memory.py and
the block contract test).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .objective import PAIRS, ObjectiveCost
from .onednn import ConvCopies, conv_copies, detect_onednn_block
from .ops import INDEX_BYTES, nbytes
from .optimizer import ADAM, OptimizerCost

__all__ = ["INDEX_BYTES", "ReplayStep", "Timeline", "adam", "batch_norm_backward", "blocked", "conv_forward", "conv_input_grad", "conv_pass",
           "conv_param_tensors", "conv_step", "conv_weight_grad", "f32", "goodness_backward", "goodness_forward", "max_pool", "nbytes",
           "optimizer_step", "bp_pooled_rms_norm", "bp_pooled_rms_norm_backward", "param_tensor_bytes", "pooled_rms_hand_on",
           "rms_hand_on", "update"]


class Timeline:
    """Live tensors by name; :meth:`mark` records the total when it is a new maximum."""

    def __init__(self) -> None:
        self.live: dict[str, int] = {}
        self.peak, self.peak_at = 0, ""

    def alloc(self, name: str, size: int) -> None:
        """``size`` more bytes under ``name`` (added to what the name already holds)."""
        if size:
            self.live[name] = self.live.get(name, 0) + int(size)

    def free(self, *names: str) -> None:
        """Release ``names`` (names not live are ignored)."""
        for name in names:
            self.live.pop(name, None)

    def rename(self, old: str, new: str) -> None:
        """The tensor ``old`` lives on as ``new`` (a hand-on output becoming the next unit's input)."""
        self.live[new] = self.live.pop(old)

    @property
    def total(self) -> int:
        return sum(self.live.values())

    def mark(self, where: str) -> None:
        total = self.total
        if total > self.peak:
            self.peak, self.peak_at = total, where


@dataclass(frozen=True)
class ReplayStep:
    """How a replayed step runs: ``rows`` through each unit (FF: positives and negatives, or the images of
    a class-wise objective), ``positives`` of them; activations at ``precision``; parameters, their
    gradients and optimiser state at ``master``; ``backend`` cuda or cpu, where ``onednn_block`` is the
    channel block of oneDNN's copies (None: no copies, as on CUDA); ``optimizer``: the units' optimiser
    (its step's temporaries, :func:`update`)."""

    rows: int
    positives: int
    precision: str = "fp32"
    master: str = "fp32"
    backend: str = "cuda"
    onednn_block: int | None = None
    objective: ObjectiveCost = PAIRS
    threads: int = 1                 # the CPU threads a conv runs on (small 1×1 convs skip oneDNN on one)
    optimizer: OptimizerCost = ADAM

    def fp32_only(self, kind: str) -> None:
        """Refuse, as not modelled, a precision other than fp32 for a block replayed in fp32 only."""
        if self.precision != "fp32":
            from ..errors import NotModelled
            raise NotModelled(f"the PyTorch replay of {kind} blocks is modelled for fp32 only")


def f32(n: int) -> int:
    return nbytes(n, "fp32")


def param_tensor_bytes(specs: Sequence, master: str) -> list[int]:
    """Bytes of each parameter tensor of ``specs``, node by node: a weighted node's weights, then its bias;
    a batch norm's γ, then β."""
    sizes = []
    for s in specs:
        for node in s.nodes():
            if node.weighted:
                sizes += [node.weights, node.params - node.weights]
            elif node.params:
                sizes += [node.params // 2, node.params // 2]
    return [nbytes(n, master) for n in sizes if n]


def adam(t: Timeline, tensors: Sequence[int], where: str, backend: str) -> None:
    """Adam's transient (no weight decay): on CUDA the foreach path's ``_foreach_sqrt(exp_avg_sqs)``, one
    tensor per parameter; on CPU the single-tensor path's ``exp_avg_sq.sqrt() / c``, two tensors the size
    of one parameter at a time, so the largest tensor sets it."""
    optimizer_step(t, tensors, where, backend, ADAM)


def optimizer_step(t: Timeline, tensors: Sequence[int], where: str, backend: str,
                   optimizer: OptimizerCost = ADAM) -> None:
    """One ``optimizer.step()`` on parameter tensors of ``tensors`` bytes: its temporaries
    (:meth:`.OptimizerCost.transient_bytes`; SGD without weight decay makes none)."""
    t.alloc("optim_tmp", optimizer.transient_bytes(tensors, backend))
    t.mark(where)
    t.free("optim_tmp")


def update(t: Timeline, s, step: ReplayStep, where: str) -> None:
    """The units' optimiser (``step.optimizer``) on the block ``s``'s own parameters."""
    optimizer_step(t, param_tensor_bytes([s], step.master), where + "update", step.backend, step.optimizer)


def conv_pass(t: Timeline, result: str, size: int, where: str, copies: ConvCopies | None) -> None:
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


def blocked(c: int) -> int:
    """Channels rounded up to this CPU's oneDNN block (8, or 16 with AVX-512: :mod:`.onednn`)."""
    block = detect_onednn_block()
    return -(-c // block) * block


# The three conv helpers below are the lean replay of a stride-1 'same' conv that the fc, cfse and trifecta
# blocks were measured with (only the blocked output and gradient copies); the conv block itself replays
# oneDNN's full copies through :func:`conv_pass` and :mod:`.onednn`.

def conv_forward(t: Timeline, rows: int, s, step: ReplayStep, where: str) -> None:
    """The block ``s``'s conv output ``conv_out``; on the CPU oneDNN first computes it into a blocked buffer."""
    _, ho, wo = s.neuron_shape
    if step.backend == "cpu":
        t.alloc("dnn_dst", f32(rows * blocked(s.filters) * ho * wo))
    t.alloc("conv_out", f32(rows * s.neurons))
    t.mark(where + "conv")
    t.free("dnn_dst")


def conv_weight_grad(t: Timeline, rows: int, s, step: ReplayStep, where: str) -> None:
    """dW into ``grad:<name>``; on the CPU through blocked copies of the input and of dL/d(output)."""
    c, h, w = s.in_shape
    _, ho, wo = s.neuron_shape
    if step.backend == "cpu":
        t.alloc("dnn_src", f32(rows * blocked(c) * h * w))
        t.alloc("dnn_diff_dst", f32(rows * blocked(s.filters) * ho * wo))
        t.alloc("dnn_dw", f32(s.params))
        t.mark(where + "conv backward (oneDNN)")
        t.free("dnn_src", "dnn_diff_dst", "dnn_dw")


def conv_input_grad(t: Timeline, rows: int, s, step: ReplayStep, where: str) -> None:
    """dL/dx into ``g_x``; on the CPU through blocked copies of dL/d(output) and of dL/dx."""
    c, h, w = s.in_shape
    _, ho, wo = s.neuron_shape
    if step.backend == "cpu":
        t.alloc("dnn_diff_dst", f32(rows * blocked(s.filters) * ho * wo))
        t.alloc("dnn_diff_src", f32(rows * blocked(c) * h * w))
        t.mark(where + "conv input gradient (oneDNN)")
        t.free("dnn_diff_dst")
    t.alloc("g_x", f32(rows * c * h * w))
    t.mark(where + "conv input gradient")
    t.free("dnn_diff_src")


def conv_step(t: Timeline, kind: str, conv, rows: int, step: ReplayStep, result: str, size: int, where: str) -> None:
    """One pass of the conv node ``conv`` (``kind`` forward, weight or input gradient) writing ``result``
    (``size`` bytes), with the CPU's buffers for any conv (:func:`.onednn.conv_copies`)."""
    copies = None if step.onednn_block is None else conv_copies(kind, conv, rows, step.onednn_block, step.threads)
    conv_pass(t, result, size, where, copies)


def conv_param_tensors(convs) -> list[int]:
    """fp32 bytes of each parameter tensor of the conv nodes ``convs`` (weight, then bias), for Adam."""
    return [f32(n) for c in convs for n in (c.weights, c.out_channels if c.bias else 0) if n]


def pooled_rms_hand_on(t: Timeline, rows: int, elems: int, pool: str, prefix: str, where: str) -> None:
    """``rms_normalize(pool_out(y).float())`` in fp32: the pooled map (and max pooling's indices, even
    under no_grad), the squares, then ``<prefix>out``; frees the temporaries."""
    p = f32(rows * elems)
    if pool in ("max", "avg"):
        t.alloc(f"{prefix}pooled", p)
        if pool == "max":
            t.alloc(f"{prefix}pool_idx", rows * elems * INDEX_BYTES)
        t.mark(where + "pool")
        t.free(f"{prefix}pool_idx")
    t.alloc(f"{prefix}norm_sq", p)
    t.mark(where + "hand-on norm")
    t.free(f"{prefix}norm_sq")
    t.alloc(f"{prefix}out", p)
    t.mark(where + "hand-on out")
    t.free(f"{prefix}pooled")


def bp_pooled_rms_norm(t: Timeline, n: int, elems: int, pool: str, k: int, where: str) -> None:
    """BP forward's pool and RMS norm: saves the pooled map (and indices) ``p_<k>``, the rms ``rms_<k>``,
    and leaves the output ``h_<k>``."""
    p = f32(n * elems)
    if pool in ("max", "avg"):
        t.alloc(f"p_{k}", p)
        if pool == "max":
            t.alloc(f"idx_{k}", n * elems * INDEX_BYTES)
        t.mark(where + "pool")
    t.alloc("sq", p)
    t.mark(where + "norm")
    t.free("sq")
    t.alloc(f"rms_{k}", f32(n))
    t.alloc(f"h_{k}", p)
    t.mark(where + "norm out")


def bp_pooled_rms_norm_backward(t: Timeline, n: int, elems: int, neurons: int, pool: str, k: int, where: str) -> None:
    """BP backward from ``g`` through the RMS norm and the pool: leaves ``g_y`` (dL/d the pool's input)."""
    p = f32(n * elems)
    t.free(f"h_{k}")
    t.alloc("div_bwd", 4 * p)                 # grad/rms, (p/rms)/rms, -grad, their product
    t.mark(where + "norm (div)")
    t.free("div_bwd", "g")
    t.alloc("g_p", p)
    t.alloc("pow_bwd", 4 * p)                 # mean backward's expand + pow backward's three
    t.mark(where + "norm (pow)")
    t.free("pow_bwd", f"rms_{k}")
    if pool in ("max", "avg"):
        t.alloc("g_y", f32(n * neurons))
        t.mark(where + "pool")
        t.free("g_p", f"p_{k}", f"idx_{k}")
    else:
        t.rename("g_p", "g_y")


def goodness_forward(t: Timeline, rows: int, elems: int, where: str) -> None:
    """Goodness (per sample or per class group) squares its input into one temporary, then sums."""
    t.alloc("sq", f32(rows * elems))
    t.mark(where + "goodness")
    t.free("sq")


def goodness_backward(t: Timeline, step: ReplayStep, elems: int, where: str) -> None:
    """dL/dy as ``g_y`` (one tensor: the lean goodness backward). Peer normalisation's penalty first
    expands its batch-mean gradient over the positives and scatters it into a zero tensor of all rows,
    which the goodness gradient is then added to."""
    if step.objective.peer_norm:
        t.alloc("peer_expand", f32(step.positives * elems))
        t.alloc("peer_grad", f32(step.rows * elems))
        t.free("peer_expand")
    t.alloc("g_y", f32(step.rows * elems))
    t.mark(where + "goodness backward")
    t.free("peer_grad")


def max_pool(t: Timeline, rows: int, out_elems: int, name: str = "p") -> None:
    """2×2 max pooling: the pooled map and its int64 indices (kept for the backward)."""
    t.alloc(name, f32(rows * out_elems))
    t.alloc(name + "_idx", rows * out_elems * INDEX_BYTES)


def batch_norm_backward(t: Timeline, rows: int, elems: int, where: str) -> None:
    """The input gradient ``g_bn_in`` and one more temporary of the same size while it is computed."""
    t.alloc("g_bn_in", f32(rows * elems))
    t.alloc("bn_tmp", f32(rows * elems))
    t.mark(where + "batch norm backward")
    t.free("bn_tmp")


def rms_hand_on(t: Timeline, rows: int, elems: int, where: str) -> None:
    """rms_normalize(y): the squares (freed), then the output ``out``."""
    t.alloc("norm_sq", f32(rows * elems))
    t.mark(where + "hand-on norm")
    t.free("norm_sq")
    t.alloc("out", f32(rows * elems))
    t.mark(where + "hand-on out")
