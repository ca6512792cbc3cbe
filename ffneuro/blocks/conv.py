"""The conv block (``--arch conv``, the paper's): 'same' conv → ReLU → (2×2 pool) → RMS norm.

Goodness is measured on the ReLU output, before pooling; the pooled, RMS-normalised map is handed on.
``pool`` is none, max or avg (a 2×2 pool after the ReLU) or stride (the conv itself has stride 2, so
its neurons are the downsampled map and no pooled tensor exists). The BP twin is made of the same blocks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..accounting import ops
from ..accounting import replay as r
from ..accounting.onednn import forward_copies, input_grad_copies, weight_grad_copies
from ..accounting.ops import BIAS_OPS, RELU_OPS
from ..spec import Activation, Conv2d, Node, Pool2d, RMSNorm
from ..spec.block import BlockSpec
from . import register_block
from .conv_like import ConvLike
from .module import PooledRMSModule


@register_block
@dataclass(frozen=True)
class ConvBlock(ConvLike, BlockSpec):
    """One conv block: ``filters`` outputs of a ``kernel``×``kernel`` 'same' conv on a (C, H, W) input."""

    kind: ClassVar[str] = "conv"

    name: str
    in_shape: tuple[int, int, int]
    filters: int
    kernel: int
    pool: str = "none"
    trainable: bool = True
    bias: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_shape", self._checked_in_shape())

    @property
    def conv(self) -> Conv2d:
        """The block's convolution as a spec node: 'same' padding k // 2, stride 1 or 2."""
        return Conv2d(self.in_shape, self.filters, self.kernel, self.stride, self.kernel // 2, bias=self.bias)

    def nodes(self) -> tuple[Node, ...]:
        """conv2d → ReLU → (2×2 pool) → RMS norm."""
        conv = self.conv
        out = [conv, Activation(conv.out_shape, "relu")]
        if self.pooled:
            out.append(Pool2d(conv.out_shape, self.pool, 2, 2))
        out.append(RMSNorm(out[-1].out_shape))
        return tuple(out)

    @property
    def goodness_shape(self) -> tuple[int, int, int]:
        """Goodness is measured on the ReLU output, before pooling."""
        return self.neuron_shape

    # ---- the cost rule (elementwise ops per sample; the MACs are the conv node's)

    @property
    def update_ops(self) -> int:
        """Bias and ReLU per neuron: what a neuromorphic neuron update replaces."""
        return (BIAS_OPS if self.bias else 0) + RELU_OPS

    @property
    def forward_ops(self) -> int:
        """Bias and ReLU per neuron, the pool, and the RMS norm of the hand-on output."""
        return ((BIAS_OPS if self.bias else 0) + RELU_OPS) * self.neurons \
            + ops.pool_fwd_ops(self.pool, self.out_elems) + ops.rms_norm_fwd_ops(self.out_elems)

    @property
    def neuron_grad_ops(self) -> int:
        """ReLU backward: goodness is measured on the ReLU output itself."""
        return RELU_OPS * self.neurons

    @property
    def bias_grad_ops(self) -> int:
        return self.neurons if self.bias else 0

    def bp_input_grad_ops(self, first: bool) -> int:
        """RMS norm, pool and ReLU backward (the conv's dL/dx is MACs only)."""
        return ops.rms_norm_bwd_ops(self.out_elems) + ops.pool_bwd_ops(self.pool, self.neurons, self.out_elems) \
            + RELU_OPS * self.neurons

    @property
    def bp_stored(self) -> int:
        """BP keeps the ReLU output, the pooled map when pooled (the norm's backward needs it) and the output."""
        return self.neurons + (self.out_elems if self.pooled else 0) + self.out_elems

    # ---- the PyTorch memory replay (fp32 and bf16 autocast; oneDNN's copies on the CPU)

    def _copies(self, fn, rows: int, step: r.ReplayStep):
        return fn(self.conv, rows, step.onednn_block) if step.onednn_block else None

    def _hand_on(self, t: r.Timeline, rows: int, act: str, prefix: str) -> None:
        """pool_out(y) → .float() → rms_normalize: leaves ``out`` (fp32) alive, frees the temporaries.
        Only max/avg pooling makes a pooled tensor (a stride-2 conv's pool_out is the identity)."""
        p = rows * self.out_elems
        if self.pooled:
            t.alloc(f"{prefix}pooled", r.nbytes(p, act))
            if self.pool == "max":
                t.alloc(f"{prefix}pool_idx", p * r.INDEX_BYTES)  # max_pool2d_with_indices, even under no_grad
                t.mark(f"{prefix}pool")
                t.free(f"{prefix}pool_idx")
        if act != "fp32":
            t.alloc(f"{prefix}pooled32", r.f32(p))
        t.alloc(f"{prefix}norm_sq", r.f32(p))
        t.mark(f"{prefix}hand-on norm")
        t.free(f"{prefix}norm_sq")
        t.alloc(f"{prefix}out", r.f32(p))
        t.mark(f"{prefix}hand-on out")
        t.free(f"{prefix}pooled", f"{prefix}pooled32")

    def replay_ff_unit(self, t: r.Timeline, step: r.ReplayStep, where: str) -> None:
        """conv → ReLU → goodness, then goodness and ReLU backward, dW (no dL/dx), Adam, hand-on."""
        act, rows, u = step.precision, step.rows, where
        a = rows * self.neurons
        if act != "fp32":                                # autocast copies of input and weights
            t.alloc("x16", r.nbytes(rows * self.in_elems, act))
            t.alloc("w16", r.nbytes(self.params, act))
        r.conv_pass(t, "conv_out", r.nbytes(a, act), u + "conv", self._copies(forward_copies, rows, step))
        if act != "fp32" and not self.trainable:
            t.free("x16", "w16")
        t.alloc("y", r.nbytes(a, act))                   # ReLU output (saved for ReLU backward)
        t.mark(u + "relu")
        t.free("conv_out")
        if act != "fp32":
            t.alloc("y32", r.f32(a))                     # y.float() in ff_logits (saved by goodness; no copy in fp32)
        t.alloc("sq", r.f32(a))                          # y.pow(2) before the sum
        t.mark(u + "goodness")
        t.free("sq")
        if self.trainable:
            t.free(f"grad:{self.name}")                  # zero_grad(set_to_none=True)
            t.alloc("g_y", r.f32(a))                     # goodness backward: y * (2·grad/count), one tensor
            t.mark(u + "goodness backward")
            t.free("y32")
            if act != "fp32":
                t.alloc("g_y16", r.nbytes(a, act))       # ToCopyBackward to bf16
                t.free("g_y")
            t.alloc("g_conv", r.nbytes(a, act))          # ReLU backward
            t.mark(u + "relu backward")
            t.free("g_y", "g_y16")
            # conv weight and bias gradient (dL/dx not asked for)
            r.conv_pass(t, f"grad:{self.name}", r.nbytes(self.params, step.master), u + "conv backward",
                        self._copies(weight_grad_copies, rows, step))
            t.free("g_conv", "x16", "w16")
            r.update(t, self, step, u)
        else:
            t.free("y32")
        self._hand_on(t, rows, act, "")

    def replay_forward(self, t: r.Timeline, rows: int, step: r.ReplayStep, where: str) -> None:
        act = step.precision
        if act != "fp32":
            t.alloc("n_x16", r.nbytes(rows * self.in_elems, act))
        r.conv_pass(t, "n_conv_out", r.nbytes(rows * self.neurons, act), where + "conv",
                    self._copies(forward_copies, rows, step))
        t.alloc("n_y", r.nbytes(rows * self.neurons, act))
        t.mark(where + "relu")
        t.free("n_conv_out", "n_x16")
        self._hand_on(t, rows, act, "n_")
        t.free("n_y")

    def replay_infer(self, t: r.Timeline, rows: int, step: r.ReplayStep, where: str, *, bp: bool) -> None:
        """A ``predict`` pass (fp32, no_grad): leaves ``out`` and, for FF (goodness is measured on them),
        the neurons ``y_new`` (BP's ``rms_normalize(pool_out(block(h)))`` drops them after pooling)."""
        r.conv_pass(t, "conv_out", r.f32(rows * self.neurons), where + "conv", self._copies(forward_copies, rows, step))
        t.alloc("y_new", r.f32(rows * self.neurons))
        t.mark(where + "relu")
        t.free("conv_out")
        if not bp:
            self._hand_on(t, rows, "fp32", "")
            return
        p = r.f32(rows * self.out_elems)
        if self.pooled:
            t.alloc("pooled", p)
            if self.pool == "max":
                t.alloc("pool_idx", rows * self.out_elems * r.INDEX_BYTES)
                t.mark(where + "pool")
                t.free("pool_idx")
            t.free("y_new")
        t.alloc("norm_sq", p)
        t.mark(where + "norm")
        t.free("norm_sq")
        t.alloc("out", p)
        t.mark(where + "norm out")
        t.free("pooled", "y_new")

    def replay_bp_forward(self, t: r.Timeline, n: int, layer: int, step: r.ReplayStep, where: str) -> None:
        act, k, bf = step.precision, layer, step.precision != "fp32"
        a, p = n * self.neurons, n * self.out_elems
        if bf:
            t.alloc(f"x16_{k}", r.nbytes(n * self.in_elems, act))
            t.alloc(f"w16_{k}", r.nbytes(self.params, act))
        r.conv_pass(t, "conv_out", r.nbytes(a, act), where + "conv", self._copies(forward_copies, n, step))
        t.alloc(f"y_{k}", r.nbytes(a, act))
        t.mark(where + "relu")
        t.free("conv_out")
        if self.pooled:
            t.alloc(f"p_{k}", r.nbytes(p, act))
            if self.pool == "max":
                t.alloc(f"idx_{k}", p * r.INDEX_BYTES)
            t.mark(where + "pool")
        if bf:
            t.alloc(f"p32_{k}", r.f32(p))                # autocast runs pow in fp32 (saved by pow)
        t.alloc("sq", r.f32(p))
        t.mark(where + "norm")
        t.free("sq")
        t.alloc(f"rms_{k}", r.f32(n))
        t.alloc(f"h_{k}", r.f32(p))                      # bf16 / fp32 rms promotes to fp32
        t.mark(where + "norm out")
        if bf and k > 1:
            t.free(f"h_{k - 1}")                         # only its bf16 copy (x16) is saved

    def replay_bp_backward(self, t: r.Timeline, n: int, layer: int, step: r.ReplayStep, where: str) -> None:
        act, k, bf = step.precision, layer, step.precision != "fp32"
        a, p = n * self.neurons, n * self.out_elems
        t.alloc("div_bwd", 4 * r.f32(p))                 # grad/rms, (p/rms)/rms, -grad, their product
        t.mark(where + "norm (div)")
        t.free("div_bwd", "g")
        t.alloc("g_p", r.f32(p))
        t.alloc("pow_bwd", 4 * r.f32(p))                 # mean backward's expand + pow backward's three
        t.mark(where + "norm (pow)")
        t.free("pow_bwd", f"rms_{k}", f"p32_{k}")
        if bf:
            t.alloc("g_p16", r.nbytes(p, act))
            t.free("g_p")
        if self.pooled:
            t.alloc("g_y", r.nbytes(a, act))
            t.mark(where + "pool")
            t.free("g_p", "g_p16", f"p_{k}", f"idx_{k}")
        t.alloc("g_conv", r.nbytes(a, act))
        t.mark(where + "relu")
        t.free("g_y", "g_p", "g_p16", f"y_{k}")
        if k > 1:                                        # dL/dx first, then dW (one convolution_backward)
            r.conv_pass(t, "g", r.nbytes(n * self.in_elems, act), where + "conv input gradient",
                        self._copies(input_grad_copies, n, step))
        r.conv_pass(t, f"grad:{self.name}", r.nbytes(self.params, step.master), where + "conv",
                    self._copies(weight_grad_copies, n, step))
        t.free("g_conv", f"x16_{k}", f"w16_{k}", f"h_{k - 1}")
        if bf and k > 1:
            t.alloc("g32", r.f32(n * self.in_elems))     # ToCopyBackward back to the fp32 h
            t.free("g")
            t.rename("g32", "g")

    # ---- the torch module

    def build(self) -> ConvModule:
        return ConvModule(self)


class ConvModule(PooledRMSModule):
    """'Same'-padded conv and ReLU; the 2×2 pool and RMS norm come in :meth:`hand_on`, after goodness."""

    def __init__(self, spec: ConvBlock):
        super().__init__(spec)
        node = spec.conv
        self.conv = nn.Conv2d(node.in_shape[0], node.out_channels, node.kernel, stride=node.stride,
                              padding=node.symmetric_padding, bias=node.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Activations of this layer's neurons (before pooling): what goodness is measured on."""
        return torch.relu(self.conv(x))
