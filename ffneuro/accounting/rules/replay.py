"""Pieces of the PyTorch memory replay (:mod:`ffneuro.accounting.memory`, scheme ``"pytorch"``) that the
block types of this package share: what one FF unit's step allocates and frees, tensor by tensor, fp32.

Each block spec's ``replay_ff_unit`` runs on a :class:`~ffneuro.accounting.memory._Timeline` where
``"in"`` (the unit's input rows) is live, and leaves its hand-on output live as ``"out"`` and its
goodness input as ``"y"`` (the caller frees ``"in"`` and ``"y"``). Measured against the CPU allocator in
tests/test_variant_memory.py (oneDNN at this CPU's channel block, see :func:`blocked`).
"""
from __future__ import annotations

from ..memory import INDEX_BYTES, _adam, _tensor_bytes, _Timeline
from ..objective import ObjectiveCost
from ..onednn import detect_onednn_block
from ..ops import nbytes


def f32(n: int) -> int:
    return nbytes(n, "fp32")


def blocked(c: int) -> int:
    """Channels rounded up to this CPU's oneDNN block (8, or 16 with AVX-512: :mod:`ffneuro.accounting.onednn`)."""
    block = detect_onednn_block()
    return -(-c // block) * block


def conv_forward(t: _Timeline, rows: int, s, backend: str, where: str) -> None:
    """A conv's output ``conv_out``; on the CPU oneDNN first computes it into a channel-blocked buffer."""
    _, ho, wo = s.neuron_shape
    if backend == "cpu":
        t.alloc("dnn_dst", f32(rows * blocked(s.filters) * ho * wo))
    t.alloc("conv_out", f32(rows * s.neurons))
    t.mark(where + "conv")
    t.free("dnn_dst")


def conv_weight_grad(t: _Timeline, rows: int, s, backend: str, where: str) -> None:
    """dW into ``grad:<name>``; on the CPU through blocked copies of the input and of dL/d(output)."""
    c, h, w = s.in_shape
    _, ho, wo = s.neuron_shape
    if backend == "cpu":
        t.alloc("dnn_src", f32(rows * blocked(c) * h * w))
        t.alloc("dnn_diff_dst", f32(rows * blocked(s.filters) * ho * wo))
        t.alloc("dnn_dw", f32(s.params))
        t.mark(where + "conv backward (oneDNN)")
        t.free("dnn_src", "dnn_diff_dst", "dnn_dw")


def conv_input_grad(t: _Timeline, rows: int, s, backend: str, where: str) -> None:
    """dL/dx into ``g_x``; on the CPU through blocked copies of dL/d(output) and of dL/dx."""
    c, h, w = s.in_shape
    _, ho, wo = s.neuron_shape
    if backend == "cpu":
        t.alloc("dnn_diff_dst", f32(rows * blocked(s.filters) * ho * wo))
        t.alloc("dnn_diff_src", f32(rows * blocked(c) * h * w))
        t.mark(where + "conv input gradient (oneDNN)")
        t.free("dnn_diff_dst")
    t.alloc("g_x", f32(rows * c * h * w))
    t.mark(where + "conv input gradient")
    t.free("dnn_diff_src")


def goodness_forward(t: _Timeline, rows: int, elems: int, where: str) -> None:
    """Goodness (per sample or per class group) squares its input into one temporary, then sums."""
    t.alloc("sq", f32(rows * elems))
    t.mark(where + "goodness")
    t.free("sq")


def goodness_backward(t: _Timeline, rows: int, positives: int, elems: int, objective: ObjectiveCost, where: str) -> None:
    """dL/dy as ``g_y`` (one tensor: the lean goodness backward). Peer normalisation's penalty first
    expands its batch-mean gradient over the positives and scatters it into a zero tensor of all rows,
    which the goodness gradient is then added to."""
    if objective.peer_norm:
        t.alloc("peer_expand", f32(positives * elems))
        t.alloc("peer_grad", f32(rows * elems))
        t.free("peer_expand")
    t.alloc("g_y", f32(rows * elems))
    t.mark(where + "goodness backward")
    t.free("peer_grad")


def max_pool(t: _Timeline, rows: int, out_elems: int, name: str = "p") -> None:
    """2×2 max pooling: the pooled map and its int64 indices (kept for the backward)."""
    t.alloc(name, f32(rows * out_elems))
    t.alloc(name + "_idx", rows * out_elems * INDEX_BYTES)


def batch_norm_backward(t: _Timeline, rows: int, elems: int, where: str) -> None:
    """The input gradient ``g_bn_in`` and one more temporary of the same size while it is computed."""
    t.alloc("g_bn_in", f32(rows * elems))
    t.alloc("bn_tmp", f32(rows * elems))
    t.mark(where + "batch norm backward")
    t.free("bn_tmp")


def update(t: _Timeline, s, master: str, backend: str, where: str) -> None:
    _adam(t, _tensor_bytes([s], master), where + "update", backend)


def rms_hand_on(t: _Timeline, rows: int, elems: int, where: str) -> None:
    """rms_normalize(y): the squares (freed), then the output ``out``."""
    t.alloc("norm_sq", f32(rows * elems))
    t.mark(where + "hand-on norm")
    t.free("norm_sq")
    t.alloc("out", f32(rows * elems))
    t.mark(where + "hand-on out")
