"""The Trifecta's block (Dooms, Tsang & Oramas 2023, github.com/tdooms/trifecta): batch norm → conv (no
bias) → ReLU → (2×2 max pool).

The block normalises its *input* with batch norm (the Trifecta's replacement for FF's length
normalisation) and measures goodness on its pooled output, which it hands on unchanged: the next block's
batch norm removes its scale. Training the batch norm's γ and β through the conv makes each unit's
backward compute the conv's input gradient too (counted: the batch norm's parameters sit upstream of the conv).

Option ``pad_first`` (``block_options={"pad_first": True}``; the ``*-fast-deploy`` presets) pads the input
with zeros *before* the batch norm and runs the conv unpadded: pad → batch norm → conv (padding 0) → ReLU.
The Trifecta's order (the default) normalises first and pads the normalised map with zeros, so the batch
norm's shift β − γ·μ/σ never reaches the border taps; folded into a conv with zero padding (``ffneuro
export``) the shift is then wrong at the border pixels. Padding first, the batch norm's affine map covers the
padded border too, and the fold is exact everywhere. Same MACs and parameters; the batch norm's statistics,
its element counts and the tensors it saves are those of the padded map.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..accounting import ops
from ..accounting import replay as r
from ..errors import ConfigError
from ..spec import Activation, BatchNorm, Conv2d, Node, Pool2d
from ..spec.block import BlockSpec, StackPlan
from . import register_block
from .conv_like import ConvLike
from .module import BlockModule

TRIFECTA_POOLS = ("none", "max")


@register_block
@dataclass(frozen=True)
class TrifectaBlock(ConvLike, BlockSpec):
    """One Trifecta block: batch norm of the input, ``filters`` convs of ``kernel``, ReLU, optional 2×2 max pool;
    ``pad_first``: the input is zero-padded before the batch norm and the conv runs unpadded."""

    kind: ClassVar[str] = "trifecta"
    pools: ClassVar[tuple[str, ...]] = TRIFECTA_POOLS
    bias: ClassVar[bool] = False                   # the conv has no bias (batch norm's β is the shift)
    option_names: ClassVar[tuple[str, ...]] = ("pad_first",)

    name: str
    in_shape: tuple[int, int, int]
    filters: int
    kernel: int
    pool: str = "none"
    trainable: bool = True
    pad_first: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_shape", self._checked_in_shape())
        if not isinstance(self.pad_first, bool):
            raise ConfigError(f"{self.name}: pad_first is true or false, got {self.pad_first!r}")

    @classmethod
    def _stack_extra(cls, i: int, shape: tuple[int, ...], width: int, plan: StackPlan) -> dict:
        """Every block of the stack takes the network's ``pad_first`` option (default false)."""
        pad_first = plan.options.get("pad_first", False)
        if not isinstance(pad_first, bool):
            raise ConfigError(f"the trifecta option pad_first is true or false, got {pad_first!r}")
        return {"pad_first": pad_first}

    @property
    def conv(self) -> Conv2d:
        """The conv as the deployed network runs it: on the unpadded input, zero padding of ``kernel // 2``
        (with ``pad_first`` the module pads before the batch norm and runs this conv unpadded: same MACs)."""
        return Conv2d(self.in_shape, self.filters, self.kernel, 1, self.kernel // 2, bias=False)

    @property
    def input_padding(self) -> int:
        """Zeros padded on each side of the input before the batch norm (``pad_first``); 0: the conv pads."""
        return self.kernel // 2 if self.pad_first else 0

    @property
    def norm_shape(self) -> tuple[int, int, int]:
        """The map the batch norm normalises (and the conv reads): the input, padded when ``pad_first``."""
        c, h, w = self.in_shape
        p = self.input_padding
        return (c, h + 2 * p, w + 2 * p)

    @property
    def norm_elems(self) -> int:
        c, h, w = self.norm_shape
        return c * h * w

    def nodes(self) -> tuple[Node, ...]:
        """Batch norm, conv, ReLU, pool. With ``pad_first`` the batch norm runs on the zero-padded input (its
        shift reaches the border taps): the graph's batch norm → zero-padded conv is then what it is folded
        into (``ffneuro export``: exact), with the same MACs and parameters as the module's unpadded conv."""
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
        """Batch norm of its (padded, with ``pad_first``) input, ReLU, pool; padding is a copy, no op."""
        return ops.batch_norm_fwd_ops(self.norm_elems) + ops.RELU_OPS * self.neurons \
            + ops.pool_fwd_ops(self.pool, self.out_elems)

    @property
    def neuron_grad_ops(self) -> int:
        """Pool and ReLU backward, then (after the conv's input gradient) the input batch norm's backward."""
        return ops.pool_bwd_ops(self.pool, self.neurons, self.out_elems) + ops.RELU_OPS * self.neurons \
            + ops.batch_norm_bwd_ops(self.norm_elems)

    bias_grad_ops: ClassVar[int] = 0

    def bp_input_grad_ops(self, first: bool) -> int:
        return self.neuron_grad_ops

    @property
    def bp_stored(self) -> int:
        """The normalised input (the conv's), the ReLU output and the pooled output when pooled; with
        ``pad_first`` also the padded input (the batch norm's, saved for its backward)."""
        padded = self.norm_elems if self.pad_first else 0
        return padded + self.norm_elems + self.neurons + (self.out_elems if self.pooled else 0)

    @property
    def _replay_conv(self) -> TrifectaBlock | _PaddedConv:
        """The conv as the replay helpers read it: its input is the batch norm's output (padded with ``pad_first``)."""
        return _PaddedConv(self.norm_shape, self.neuron_shape, self.filters, self.neurons, self.params) \
            if self.pad_first else self

    def _replay_norm(self, t: r.Timeline, rows: int, pad: str, out: str, where: str, saved: bool) -> None:
        """The batch norm's output ``out`` (the conv's input); with ``pad_first`` the padded input ``pad``
        first, kept for the batch norm's backward when ``saved``, else gone once the batch norm has run."""
        if self.pad_first:
            t.alloc(pad, r.f32(rows * self.norm_elems))
        t.alloc(out, r.f32(rows * self.norm_elems))
        t.mark(where + "batch norm")
        if not saved:
            t.free(pad)

    def replay_ff_unit(self, t: r.Timeline, step: r.ReplayStep, where: str) -> None:
        """One FF step of this unit in the PyTorch memory replay (see :mod:`.replay`): (padding,) batch norm
        of the input, conv, ReLU, pool (the goodness input, handed on as it is), then the backward through
        the conv's input and weight gradients to the batch norm's γ and β, and Adam."""
        step.fp32_only(self.kind)
        rows, conv = step.rows, self._replay_conv
        self._replay_norm(t, rows, "pad_x", "bn_x", where, self.trainable)   # bn_x: saved by the conv
        r.conv_forward(t, rows, conv, step, where)
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
            r.conv_input_grad(t, rows, conv, step, where)
            r.conv_weight_grad(t, rows, conv, step, where)
            t.alloc(f"grad:{self.name}", r.nbytes(self.params, step.master))
            t.mark(where + "conv backward")
            t.free("g_conv", "g_x", "bn_x", "pad_x")
            r.update(t, self, step, where)
        t.live["out"] = t.live.pop("y")   # handed on as it is

    def replay_forward(self, t: r.Timeline, rows: int, step: r.ReplayStep, where: str) -> None:
        """One pass without gradients (the readout's neutral features): leaves the hand-on output ``n_out``."""
        step.fp32_only(self.kind)
        self._replay_norm(t, rows, "n_pad", "n_bn", where, False)
        r.conv_forward(t, rows, self._replay_conv, step, where)
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
        """BP forward: saves the (padded) input with ``pad_first``, the normalised input (the conv's), the
        ReLU output and the pool's indices; the output ``h_<layer>`` is the pooled map (or the ReLU output)."""
        step.fp32_only(self.kind)
        self._replay_norm(t, n, f"pad_{layer}", f"bn_{layer}", where, True)
        r.conv_forward(t, n, self._replay_conv, step, where)
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
        input batch norm's backward and, with ``pad_first``, the padding's (dL/dx as ``g``, not for layer 1)."""
        step.fp32_only(self.kind)
        conv = self._replay_conv
        if self.pooled:
            t.alloc("g_relu", r.f32(n * self.neurons))
            t.mark(where + "pool backward")
            t.free("g", f"idx_{layer}")
        t.alloc("g_conv", r.f32(n * self.neurons))
        t.mark(where + "relu backward")
        t.free("g_relu", "g", f"relu_{layer}")
        r.conv_input_grad(t, n, conv, step, where)
        r.conv_weight_grad(t, n, conv, step, where)
        t.alloc(f"grad:{self.name}", r.nbytes(self.params, step.master))
        t.mark(where + "conv backward")
        t.free("g_conv", f"bn_{layer}")
        if layer > 1:
            r.batch_norm_backward(t, n, self.norm_elems, where)
            t.free("g_x", f"pad_{layer}")
            if self.pad_first:   # the padding's backward: the inner part of the padded map's gradient
                t.alloc("g", r.f32(n * self.in_elems))
                t.mark(where + "padding backward")
                t.free("g_bn_in")
            else:
                t.live["g"] = t.live.pop("g_bn_in")
        t.free("g_x", f"pad_{layer}")

    # ---- the torch module

    def build(self) -> TrifectaModule:
        return TrifectaModule(self)


class TrifectaModule(BlockModule):
    def __init__(self, spec: TrifectaBlock):
        super().__init__(spec)
        node = spec.conv
        self.pad = spec.input_padding
        self.norm = nn.BatchNorm2d(spec.in_shape[0])
        self.conv = nn.Conv2d(node.in_shape[0], node.out_channels, node.kernel,
                              padding=0 if self.pad else node.symmetric_padding, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # pad_first: zeros around the input, normalised with it (the conv then pads nothing); no name holds
        # the padded map, so without autograd it goes as soon as the batch norm has read it
        y = torch.relu(self.conv(self.norm(nn.functional.pad(x, (self.pad,) * 4) if self.pad else x)))
        if self.spec.pooled:
            y = nn.functional.max_pool2d(y, 2)
        return y

    def hand_on(self, y: torch.Tensor) -> torch.Tensor:
        return y.float()


@dataclass(frozen=True)
class _PaddedConv:
    """What the replay's conv helpers read of a ``pad_first`` block: its conv's input is the padded map."""

    in_shape: tuple[int, int, int]
    neuron_shape: tuple[int, ...]
    filters: int
    neurons: int
    params: int
