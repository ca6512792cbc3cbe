"""The Trifecta's block (Dooms, Tsang & Oramas 2023, github.com/tdooms/trifecta): batch norm → conv (no
bias) → ReLU → (2×2 max pool).

The block normalises its *input* with batch norm (the Trifecta's replacement for FF's length
normalisation) and measures goodness on its pooled output, which it hands on unchanged: the next block's
batch norm removes its scale. Training the batch norm's γ and β through the conv makes each unit's
backward compute the conv's input gradient too (counted: the batch norm's parameters sit upstream of the conv).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..accounting import ops
from ..accounting import replay as r
from ..spec import Activation, BatchNorm, Conv2d, Node, Pool2d
from ..spec.block import BlockSpec
from . import register_block
from .conv_like import ConvLike
from .module import BlockModule

TRIFECTA_POOLS = ("none", "max")


@register_block
@dataclass(frozen=True)
class TrifectaBlock(ConvLike, BlockSpec):
    """One Trifecta block: batch norm of the input, ``filters`` convs of ``kernel``, ReLU, optional 2×2 max pool."""

    kind: ClassVar[str] = "trifecta"
    pools: ClassVar[tuple[str, ...]] = TRIFECTA_POOLS
    bias: ClassVar[bool] = False                   # the conv has no bias (batch norm's β is the shift)

    name: str
    in_shape: tuple[int, int, int]
    filters: int
    kernel: int
    pool: str = "none"
    trainable: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_shape", self._checked_in_shape())

    @property
    def conv(self) -> Conv2d:
        return Conv2d(self.in_shape, self.filters, self.kernel, 1, self.kernel // 2, bias=False)

    def nodes(self) -> tuple[Node, ...]:
        conv = self.conv
        out: list[Node] = [BatchNorm(self.in_shape), conv, Activation(conv.out_shape, "relu")]
        if self.pooled:
            out.append(Pool2d(conv.out_shape, self.pool, 2, 2))
        return tuple(out)

    @property
    def goodness_shape(self) -> tuple[int, int, int]:
        """Goodness is measured on the (pooled) output."""
        return self.out_shape

    @property
    def update_ops(self) -> int:
        return ops.RELU_OPS

    # ---- cost rule (per sample)

    @property
    def forward_ops(self) -> int:
        return ops.batch_norm_fwd_ops(self.in_elems) + ops.RELU_OPS * self.neurons + ops.pool_fwd_ops(self.pool, self.out_elems)

    @property
    def neuron_grad_ops(self) -> int:
        """Pool and ReLU backward, then (after the conv's input gradient) the input batch norm's backward."""
        return ops.pool_bwd_ops(self.pool, self.neurons, self.out_elems) + ops.RELU_OPS * self.neurons \
            + ops.batch_norm_bwd_ops(self.in_elems)

    bias_grad_ops: ClassVar[int] = 0

    def bp_input_grad_ops(self, first: bool) -> int:
        return self.neuron_grad_ops

    @property
    def bp_stored(self) -> int:
        """The normalised input (the conv's), the ReLU output and the pooled output when pooled."""
        return self.in_elems + self.neurons + (self.out_elems if self.pooled else 0)

    def replay_ff_unit(self, t: r.Timeline, step: r.ReplayStep, where: str) -> None:
        """One FF step of this unit in the PyTorch memory replay (see :mod:`.replay`): batch norm of the
        input, conv, ReLU, pool (the goodness input, handed on as it is), then the backward through the
        conv's input and weight gradients to the batch norm's γ and β, and Adam."""
        step.fp32_only(self.kind)
        rows = step.rows
        t.alloc("bn_x", r.f32(rows * self.in_elems))   # saved by the conv
        t.mark(where + "batch norm")
        r.conv_forward(t, rows, self, step, where)
        t.alloc("relu", r.f32(rows * self.neurons))
        t.mark(where + "relu")
        t.free("conv_out")
        if not self.trainable:
            t.free("bn_x")
        if self.pooled:
            r.max_pool(t, rows, self.out_elems)
            t.live["y"] = t.live.pop("p")
            if not self.trainable:
                t.free("relu", "p_idx")
        else:
            t.live["y"] = t.live.pop("relu")
        r.goodness_forward(t, rows, self.out_elems, where)
        if self.trainable:
            t.free(f"grad:{self.name}")
            r.goodness_backward(t, step, self.out_elems, where)
            if self.pooled:
                t.alloc("g_relu", r.f32(rows * self.neurons))
                t.mark(where + "pool backward")
                t.free("g_y", "p_idx")
            t.alloc("g_conv", r.f32(rows * self.neurons))
            t.mark(where + "relu backward")
            t.free("g_relu", "g_y", "relu")
            r.conv_input_grad(t, rows, self, step, where)
            r.conv_weight_grad(t, rows, self, step, where)
            t.alloc(f"grad:{self.name}", r.nbytes(self.params, step.master))
            t.mark(where + "conv backward")
            t.free("g_conv", "g_x", "bn_x")
            r.update(t, self, step, where)
        t.live["out"] = t.live.pop("y")   # handed on as it is

    def replay_forward(self, t: r.Timeline, rows: int, step: r.ReplayStep, where: str) -> None:
        """One pass without gradients (the readout's neutral features): leaves the hand-on output ``n_out``."""
        step.fp32_only(self.kind)
        t.alloc("n_bn", r.f32(rows * self.in_elems))
        r.conv_forward(t, rows, self, step, where)
        t.alloc("n_relu", r.f32(rows * self.neurons))
        t.mark(where + "relu")
        t.free("conv_out", "n_bn")
        if self.pooled:
            r.max_pool(t, rows, self.out_elems, "n_out")
            t.mark(where + "pool")
            t.free("n_out_idx", "n_relu")
        else:
            t.live["n_out"] = t.live.pop("n_relu")

    def replay_bp_forward(self, t: r.Timeline, n: int, layer: int, step: r.ReplayStep, where: str) -> None:
        """BP forward: saves the normalised input (the conv's), the ReLU output and the pool's indices; the
        output ``h_<layer>`` is the pooled map (or the ReLU output)."""
        step.fp32_only(self.kind)
        t.alloc(f"bn_{layer}", r.f32(n * self.in_elems))
        t.mark(where + "batch norm")
        r.conv_forward(t, n, self, step, where)
        t.alloc(f"relu_{layer}", r.f32(n * self.neurons))
        t.mark(where + "relu")
        t.free("conv_out")
        if self.pooled:
            r.max_pool(t, n, self.out_elems, f"h_{layer}")
            t.live[f"idx_{layer}"] = t.live.pop(f"h_{layer}_idx")
        else:
            t.live[f"h_{layer}"] = 0   # the ReLU output itself (counted as relu_<layer>)

    def replay_bp_backward(self, t: r.Timeline, n: int, layer: int, step: r.ReplayStep, where: str) -> None:
        """BP backward from ``g``: pool and ReLU backward, the conv's input and weight gradients, then the
        input batch norm's backward (dL/dx as ``g``, not for layer 1)."""
        step.fp32_only(self.kind)
        if self.pooled:
            t.alloc("g_relu", r.f32(n * self.neurons))
            t.mark(where + "pool backward")
            t.free("g", f"idx_{layer}")
        t.alloc("g_conv", r.f32(n * self.neurons))
        t.mark(where + "relu backward")
        t.free("g_relu", "g", f"relu_{layer}", f"h_{layer}")
        r.conv_input_grad(t, n, self, step, where)
        r.conv_weight_grad(t, n, self, step, where)
        t.alloc(f"grad:{self.name}", r.nbytes(self.params, step.master))
        t.mark(where + "conv backward")
        t.free("g_conv", f"bn_{layer}")
        if layer > 1:
            r.batch_norm_backward(t, n, self.in_elems, where)
            t.live["g"] = t.live.pop("g_bn_in")
        t.free("g_x")

    # ---- the torch module

    def build(self) -> TrifectaModule:
        return TrifectaModule(self)


class TrifectaModule(BlockModule):
    def __init__(self, spec: TrifectaBlock):
        super().__init__(spec)
        node = spec.conv
        self.norm = nn.BatchNorm2d(spec.in_shape[0])
        self.conv = nn.Conv2d(node.in_shape[0], node.out_channels, node.kernel, padding=node.symmetric_padding,
                              bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv(self.norm(x)))
        if self.spec.pooled:
            y = nn.functional.max_pool2d(y, 2)
        return y

    def hand_on(self, y: torch.Tensor) -> torch.Tensor:
        return y.float()
