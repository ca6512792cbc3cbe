"""The depthwise-separable conv block (``--arch dwsep``, MobileNet's): depthwise 'same' k×k conv → ReLU →
pointwise 1×1 conv → ReLU → (2×2 pool) → RMS norm.

The depthwise conv has one k×k filter per input channel (``groups`` = channels, with bias; ``multiplier``
filters per channel in the block that reads the image, see below); the pointwise conv mixes its maps into
``filters`` outputs. Goodness is measured on the pointwise
ReLU output, before pooling; the pooled, RMS-normalised map is handed on, as in the conv block.
``pool`` is none, max or avg (a 2×2 pool after the last ReLU) or stride (the depthwise conv has
stride 2, so both maps are already downsampled and no pooled tensor exists).

The block that reads the image makes ``filters // C`` depthwise maps per image channel (MobileNet's depth
multiplier; MobileNet itself starts with a full conv): on a 1-channel image a depthwise conv would be a
single 3×3 filter, and the whole unit a one-map bottleneck that hardly learns (measured on the synthetic
set, 1×12×12: BP after one epoch and FF's linear readout after three at chance; with the multiplier 0.90
and 1.0).

Both ReLUs run in place on their conv's output (a conv's backward needs its input, not its output),
so a forward holds one tensor per conv.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..accounting import ops
from ..accounting import replay as r
from ..accounting.ops import BIAS_OPS, RELU_OPS
from ..errors import ConfigError
from ..spec import Activation, Conv2d, Node, Pool2d, RMSNorm
from ..spec.block import BlockSpec, StackPlan
from . import register_block
from .conv_like import ConvLike
from .module import PooledRMSModule


@register_block
@dataclass(frozen=True)
class DWSepBlock(ConvLike, BlockSpec):
    """One depthwise-separable block: a ``kernel``×``kernel`` depthwise conv of the (C, H, W) input, then
    ``filters`` pointwise (1×1) convs."""

    kind: ClassVar[str] = "dwsep"

    name: str
    in_shape: tuple[int, int, int]
    filters: int
    kernel: int
    pool: str = "none"
    trainable: bool = True
    bias: bool = True
    multiplier: int = 1                # depthwise maps per input channel (MobileNet's depth multiplier)

    def __post_init__(self) -> None:
        if self.multiplier < 1:
            raise ConfigError(f"{self.name}: need a depth multiplier >= 1, got {self.multiplier}")
        object.__setattr__(self, "in_shape", self._checked_in_shape())

    @classmethod
    def _stack_extra(cls, i: int, shape: tuple[int, ...], width: int, plan: StackPlan) -> dict:
        """The block that reads the image makes ``width // C`` depthwise maps per image channel."""
        return {"multiplier": max(1, width // shape[0]) if i == 0 else 1}

    @property
    def depthwise(self) -> Conv2d:
        """``multiplier`` ``kernel``×``kernel`` filters per input channel, 'same' padding, stride 1 or 2."""
        c = self.in_shape[0]
        return Conv2d(self.in_shape, c * self.multiplier, self.kernel, self.stride, self.kernel // 2, groups=c,
                      bias=self.bias)

    @property
    def pointwise(self) -> Conv2d:
        """``filters`` 1×1 convs over the depthwise map's channels."""
        return Conv2d(self.depthwise.out_shape, self.filters, 1, 1, 0, bias=self.bias)

    def nodes(self) -> tuple[Node, ...]:
        """depthwise conv → ReLU → pointwise conv → ReLU → (2×2 pool) → RMS norm."""
        dw, pw = self.depthwise, self.pointwise
        out: list[Node] = [dw, Activation(dw.out_shape, "relu"), pw, Activation(pw.out_shape, "relu")]
        if self.pooled:
            out.append(Pool2d(pw.out_shape, self.pool, 2, 2))
        out.append(RMSNorm(out[-1].out_shape))
        return tuple(out)

    @property
    def goodness_shape(self) -> tuple[int, int, int]:
        """Goodness is measured on the pointwise ReLU output, before pooling."""
        return self.pointwise.out_shape

    @property
    def dw_neurons(self) -> int:
        return self.depthwise.neurons

    @property
    def pw_neurons(self) -> int:
        return self.pointwise.neurons

    # ---- the cost rule (elementwise ops per sample; the MACs are the two conv nodes')

    @property
    def update_ops(self) -> int:
        """Bias and ReLU per neuron (of both convs): what a neuromorphic neuron update replaces."""
        return (BIAS_OPS if self.bias else 0) + RELU_OPS

    @property
    def forward_ops(self) -> int:
        """Bias and ReLU per neuron of both convs, the pool, and the RMS norm of the hand-on output."""
        return ((BIAS_OPS if self.bias else 0) + RELU_OPS) * self.neurons \
            + ops.pool_fwd_ops(self.pool, self.out_elems) + ops.rms_norm_fwd_ops(self.out_elems)

    @property
    def neuron_grad_ops(self) -> int:
        """Both ReLUs' backward: the pointwise one on the goodness gradient, the depthwise one after the
        pointwise conv's input gradient (MACs)."""
        return RELU_OPS * self.neurons

    @property
    def bias_grad_ops(self) -> int:
        return self.neurons if self.bias else 0

    def bp_input_grad_ops(self, first: bool) -> int:
        """RMS norm, pool and both ReLUs' backward (the convs' input gradients are MACs only)."""
        return ops.rms_norm_bwd_ops(self.out_elems) + ops.pool_bwd_ops(self.pool, self.pw_neurons, self.out_elems) \
            + RELU_OPS * self.neurons

    @property
    def bp_stored(self) -> int:
        """BP keeps both ReLU outputs (the depthwise one is the pointwise conv's input), the pooled map when
        pooled and the output."""
        return self.neurons + (self.out_elems if self.pooled else 0) + self.out_elems


    # ---- the PyTorch memory replay (fp32; oneDNN's copies on the CPU)

    def replay_ff_unit(self, t: r.Timeline, step: r.ReplayStep, where: str) -> None:
        """Depthwise conv, pointwise conv (ReLUs in place), goodness; then goodness and ReLU backward, the
        pointwise conv's input and weight gradients, the depthwise ReLU's backward and its conv's weight
        gradient (no dL/dx: the input arrives detached), Adam, hand-on."""
        step.fp32_only(self.kind)
        rows, u, dw, pw = step.rows, where, self.depthwise, self.pointwise
        a, y = r.f32(rows * self.dw_neurons), r.f32(rows * self.pw_neurons)
        r.conv_step(t, "forward", dw, rows, step, "dw_out", a, u + "depthwise conv")
        r.conv_step(t, "forward", pw, rows, step, "y", y, u + "pointwise conv")
        if not self.trainable:
            t.free("dw_out")                              # no graph keeps it
        r.goodness_forward(t, rows, self.pw_neurons, u)
        if self.trainable:
            t.free(f"grad:{self.name}")                   # zero_grad(set_to_none=True)
            r.goodness_backward(t, step, self.pw_neurons, u)
            t.alloc("g_pw", y)                            # pointwise ReLU backward
            t.mark(u + "relu backward")
            t.free("g_y")
            r.conv_step(t, "input", pw, rows, step, "g_a", a, u + "pointwise conv input gradient")
            r.conv_step(t, "weight", pw, rows, step, f"grad:{self.name}", r.f32(pw.params), u + "pointwise conv")
            t.free("g_pw")
            t.alloc("g_dw", a)                            # depthwise ReLU backward
            t.mark(u + "depthwise relu backward")
            t.free("g_a", "dw_out")
            r.conv_step(t, "weight", dw, rows, step, f"grad:{self.name}", r.f32(dw.params), u + "depthwise conv")
            t.free("g_dw")
            r.optimizer_step(t, r.conv_param_tensors((dw, pw)), u + "update", step.backend, step.optimizer)
        r.pooled_rms_hand_on(t, rows, self.out_elems, self.pool, "", u)

    def replay_forward(self, t: r.Timeline, rows: int, step: r.ReplayStep, where: str) -> None:
        """One pass without gradients (the readout's neutral features): leaves the hand-on output ``n_out``."""
        step.fp32_only(self.kind)
        r.conv_step(t, "forward", self.depthwise, rows, step, "n_dw", r.f32(rows * self.dw_neurons), where + "depthwise conv")
        r.conv_step(t, "forward", self.pointwise, rows, step, "n_y", r.f32(rows * self.pw_neurons), where + "pointwise conv")
        t.free("n_dw")
        r.pooled_rms_hand_on(t, rows, self.out_elems, self.pool, "n_", where)
        t.free("n_y")

    def replay_infer(self, t: r.Timeline, rows: int, step: r.ReplayStep, where: str, *, bp: bool) -> None:
        """A ``predict`` pass (fp32, no_grad): leaves ``out`` and, for FF (goodness is measured on them), the
        neurons ``y_new``."""
        step.fp32_only(self.kind)
        r.conv_step(t, "forward", self.depthwise, rows, step, "dw_out", r.f32(rows * self.dw_neurons), where + "depthwise conv")
        r.conv_step(t, "forward", self.pointwise, rows, step, "y_new", r.f32(rows * self.pw_neurons), where + "pointwise conv")
        t.free("dw_out")
        r.pooled_rms_hand_on(t, rows, self.out_elems, self.pool, "", where)
        if bp:
            t.free("y_new")

    def replay_bp_forward(self, t: r.Timeline, n: int, layer: int, step: r.ReplayStep, where: str) -> None:
        """BP forward: saves both ReLU outputs ``a_<k>`` and ``y_<k>``, the pooled map and indices, the rms,
        and leaves ``h_<k>``."""
        step.fp32_only(self.kind)
        k = layer
        r.conv_step(t, "forward", self.depthwise, n, step, f"a_{k}", r.f32(n * self.dw_neurons), where + "depthwise conv")
        r.conv_step(t, "forward", self.pointwise, n, step, f"y_{k}", r.f32(n * self.pw_neurons), where + "pointwise conv")
        r.bp_pooled_rms_norm(t, n, self.out_elems, self.pool, k, where)

    def replay_bp_backward(self, t: r.Timeline, n: int, layer: int, step: r.ReplayStep, where: str) -> None:
        """BP backward from ``g``: norm, pool and ReLU backward, the pointwise conv's dL/dx and dW, the
        depthwise ReLU's backward, then its conv's dL/dx (not for layer 1) as ``g`` and dW."""
        step.fp32_only(self.kind)
        k, dw, pw = layer, self.depthwise, self.pointwise
        a, y = r.f32(n * self.dw_neurons), r.f32(n * self.pw_neurons)
        r.bp_pooled_rms_norm_backward(t, n, self.out_elems, self.pw_neurons, self.pool, k, where)
        t.alloc("g_pw", y)
        t.mark(where + "relu")
        t.free("g_y", f"y_{k}")
        r.conv_step(t, "input", pw, n, step, "g_a", a, where + "pointwise conv input gradient")
        r.conv_step(t, "weight", pw, n, step, f"grad:{self.name}", r.f32(pw.params), where + "pointwise conv")
        t.free("g_pw")
        t.alloc("g_dw", a)
        t.mark(where + "depthwise relu")
        t.free("g_a", f"a_{k}")
        if k > 1:
            r.conv_step(t, "input", dw, n, step, "g", r.f32(n * self.in_elems), where + "depthwise conv input gradient")
        r.conv_step(t, "weight", dw, n, step, f"grad:{self.name}", r.f32(dw.params), where + "depthwise conv")
        t.free("g_dw", f"h_{k - 1}")

    # ---- the torch module

    def build(self) -> DWSepModule:
        return DWSepModule(self)


class DWSepModule(PooledRMSModule):
    """Depthwise conv, ReLU, pointwise conv, ReLU (both in place); the 2×2 pool and RMS norm come in
    :meth:`hand_on`, after goodness."""

    def __init__(self, spec: DWSepBlock):
        super().__init__(spec)
        dw, pw = spec.depthwise, spec.pointwise
        self.depthwise = nn.Conv2d(dw.in_shape[0], dw.out_channels, dw.kernel, stride=dw.stride,
                                   padding=dw.symmetric_padding, groups=dw.groups, bias=dw.bias)
        self.pointwise = nn.Conv2d(pw.in_shape[0], pw.out_channels, 1, bias=pw.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The pointwise ReLU output (before pooling): what goodness is measured on."""
        return torch.relu_(self.pointwise(torch.relu_(self.depthwise(x))))
