"""CwComp's CFSE block (Papachristodoulou et al., AAAI 2024): conv → ReLU → (2×2 max pool) → batch norm.

In a CFSE network the blocks alternate: a standard conv extracts features, then a *channel-wise grouped*
conv (one group per class, so class k's output channels see only class k's input channels) separates
them (CwComp then pools). Here every second block (2nd, 4th, ...) is grouped unless --group-at names
others; which blocks pool is set as for any network (--pool, --pool-every, --pool-at; CwComp's: every
second). Goodness (class-wise,
one value per class-owned channel group) is measured on the batch-normalised output, which is also
what the block hands on.

Option ``bn_refresh``: one more training-mode forward after the update, so that batch norm's running
statistics (what evaluation normalises with) take one more step toward those of the new weights.
CwComp's code gets this from its training loop, which calls the model's predict on every batch after all
layers' updates while the model is in training mode. ``"chain"`` does exactly that: after every unit of
the step has updated, one training-mode pass through the units, each fed the previous unit's refreshed
output (the network runs it: ``refresh_chained``). ``true``: each unit refreshes right after its own
update on its own training input, the previous unit's output *before* that unit's update (an
approximation that lets a unit refresh alone, e.g. in a pipeline stage). ``false``: no refresh.
"""
from __future__ import annotations

from collections.abc import Sequence
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
from .module import BlockModule, max_pool2x2

CFSE_POOLS = ("none", "max")
BN_EPS = 1e-4   # CwComp's batch-norm epsilon (its Conv_Layer)


@register_block
@dataclass(frozen=True)
class CFSEBlock(ConvLike, BlockSpec):
    """One CFSE conv block: ``filters`` outputs, ``groups`` channel groups, 'same' padding, stride 1."""

    kind: ClassVar[str] = "cfse"
    pools: ClassVar[tuple[str, ...]] = CFSE_POOLS
    option_names: ClassVar[tuple[str, ...]] = ("group_at", "bn_refresh")

    name: str
    in_shape: tuple[int, int, int]
    filters: int
    kernel: int
    pool: str = "none"
    groups: int = 1
    trainable: bool = True
    bias: bool = True
    bn_refresh: bool | str = False   # False, True (each unit on its own input) or "chain" (the code's pass)

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_shape", self._checked_in_shape())
        _ = self.conv  # builds the conv node, which checks the channels against the groups (ConfigError)

    @property
    def conv(self) -> Conv2d:
        return Conv2d(self.in_shape, self.filters, self.kernel, 1, self.kernel // 2, groups=self.groups, bias=self.bias)

    def nodes(self) -> tuple[Node, ...]:
        conv = self.conv
        out: list[Node] = [conv, Activation(conv.out_shape, "relu")]
        if self.pooled:
            out.append(Pool2d(conv.out_shape, self.pool, 2, 2))
        out.append(BatchNorm(out[-1].out_shape))
        return tuple(out)

    @property
    def refresh_after_update(self) -> bool:
        """A trainable unit runs one more forward per step either way (its own, or its part of the chain pass)."""
        return self.bn_refresh is not False and self.trainable

    @property
    def refresh_chained(self) -> bool:
        return self.bn_refresh == "chain"

    @property
    def goodness_shape(self) -> tuple[int, int, int]:
        """Goodness is measured on the batch-normalised output."""
        return self.out_shape

    @property
    def update_ops(self) -> int:
        return (ops.BIAS_OPS if self.bias else 0) + ops.RELU_OPS

    # ---- cost rule (per sample)

    @property
    def forward_ops(self) -> int:
        return ((ops.BIAS_OPS if self.bias else 0) + ops.RELU_OPS) * self.neurons \
            + ops.pool_fwd_ops(self.pool, self.out_elems) + ops.batch_norm_fwd_ops(self.out_elems)

    @property
    def neuron_grad_ops(self) -> int:
        """Batch norm, pool and ReLU backward."""
        return ops.batch_norm_bwd_ops(self.out_elems) + ops.pool_bwd_ops(self.pool, self.neurons, self.out_elems) \
            + ops.RELU_OPS * self.neurons

    @property
    def bias_grad_ops(self) -> int:
        return self.neurons if self.bias else 0

    def bp_input_grad_ops(self, first: bool) -> int:
        return self.neuron_grad_ops

    @property
    def bp_stored(self) -> int:
        """The ReLU output, the pooled map (batch norm's input) when pooled, and the normalised output."""
        return self.neurons + (self.out_elems if self.pooled else 0) + self.out_elems

    def _replay_pool_relu(self, t: r.Timeline, rows: int, save: bool, where: str, prefix: str = "") -> None:
        """The 2×2 max pool of ``conv_out`` then the ReLU (``max_pool2x2``), then the quarter-size ReLU output
        ``<prefix>relu``. Kept for the backward (``save``): a channels-last copy of the conv output, the pooled
        map and indices in that layout, their NCHW copies; the conv output and the indices stay. Otherwise
        the pooled map and one temporary of its size (two maxima of strided quarters)."""
        if save:
            t.alloc("pool_in_cl", r.f32(rows * self.neurons))
            t.alloc("pool_cl", r.f32(rows * self.out_elems))
            t.alloc("pool_cl_idx", rows * self.out_elems * r.INDEX_BYTES)
            t.mark(where + "max pool (channels-last)")
            t.free("pool_in_cl")
            t.alloc(prefix + "p_idx", rows * self.out_elems * r.INDEX_BYTES)
            t.alloc(prefix + "p", r.f32(rows * self.out_elems))
            t.mark(where + "pool")
            t.free("pool_cl", "pool_cl_idx")
            t.rename("conv_out", prefix + "conv")   # the pool's saved input
        else:
            t.alloc(prefix + "p", r.f32(rows * self.out_elems))
            t.alloc("pool_tmp", r.f32(rows * self.out_elems))
            t.mark(where + "pool")
            t.free("pool_tmp", "conv_out")
        t.alloc(prefix + "relu", r.f32(rows * self.out_elems))
        t.mark(where + "relu")
        t.free(prefix + "p")

    def _replay_relu(self, t: r.Timeline, rows: int, where: str, prefix: str = "") -> None:
        """Conv output → ReLU ``<prefix>relu`` (saved input of the pool, or of batch norm), with the pool if any."""
        if self.pooled:
            self._replay_pool_relu(t, rows, self.trainable, where, prefix)
            return
        t.alloc(prefix + "relu", r.f32(rows * self.neurons))
        t.mark(where + "relu")
        t.free("conv_out")

    def _replay_relu_pool_backward(self, t: r.Timeline, rows: int, where: str, prefix: str = "") -> None:
        """From batch norm's input gradient ``g_bn_in`` to the conv output's ``g_conv``: the ReLU backward on
        the pooled map, then the pool backward (a zero-filled conv-sized gradient); frees what they saved."""
        if self.pooled:
            t.alloc("g_p", r.f32(rows * self.out_elems))
            t.mark(where + "relu backward")
            t.free("g_bn_in", prefix + "relu")
            t.alloc("g_conv", r.f32(rows * self.neurons))
            t.mark(where + "pool backward")
            t.free("g_p", prefix + "p_idx", prefix + "conv")
        else:
            t.alloc("g_conv", r.f32(rows * self.neurons))
            t.mark(where + "relu backward")
            t.free("g_bn_in", prefix + "relu")

    def replay_ff_unit(self, t: r.Timeline, step: r.ReplayStep, where: str) -> None:
        """One FF step of this unit in the PyTorch memory replay (see :mod:`.replay`): conv, pool, ReLU,
        batch norm (its output is goodness input and hand-on output), then the backward through all of
        them to dW, and Adam."""
        step.fp32_only(self.kind)
        rows = step.rows
        r.conv_step(t, "forward", self.conv, rows, step, "conv_out", r.f32(rows * self.neurons), where + "conv")
        self._replay_relu(t, rows, where)
        t.alloc("y", r.f32(rows * self.out_elems))   # batch norm's output
        t.mark(where + "batch norm")
        if not self.trainable:   # nothing saved: the ReLU output goes once batch norm has run
            t.free("relu")
        r.goodness_forward(t, rows, self.out_elems, where)
        if self.trainable:
            t.free(f"grad:{self.name}")
            r.goodness_backward(t, step, self.out_elems, where)
            r.batch_norm_backward(t, rows, self.out_elems, where)
            t.free("g_y")
            self._replay_relu_pool_backward(t, rows, where)
            r.conv_step(t, "weight", self.conv, rows, step, f"grad:{self.name}", r.nbytes(self.params, step.master),
                        where + "conv backward")
            t.free("g_conv")
            r.update(t, self, step, where)
        t.live["out"] = t.live.pop("y")   # the hand-on output is batch norm's output itself

    def replay_forward(self, t: r.Timeline, rows: int, step: r.ReplayStep, where: str) -> None:
        """One pass without gradients (the readout's neutral features): leaves the hand-on output ``n_out``."""
        step.fp32_only(self.kind)
        r.conv_step(t, "forward", self.conv, rows, step, "conv_out", r.f32(rows * self.neurons), where + "conv")
        if self.pooled:
            self._replay_pool_relu(t, rows, False, where, "n_")
        else:
            t.alloc("n_relu", r.f32(rows * self.neurons))
            t.mark(where + "relu")
            t.free("conv_out")
        t.alloc("n_out", r.f32(rows * self.out_elems))
        t.mark(where + "batch norm")
        t.free("n_relu")

    def replay_bp_forward(self, t: r.Timeline, n: int, layer: int, step: r.ReplayStep, where: str) -> None:
        """BP forward: saves the conv output and the pool's indices (when pooled), the ReLU output, and the
        batch-norm output ``h_<layer>``."""
        step.fp32_only(self.kind)
        r.conv_step(t, "forward", self.conv, n, step, "conv_out", r.f32(n * self.neurons), where + "conv")
        self._replay_relu(t, n, where, f"l{layer}_")
        t.alloc(f"h_{layer}", r.f32(n * self.out_elems))
        t.mark(where + "batch norm")

    def replay_bp_backward(self, t: r.Timeline, n: int, layer: int, step: r.ReplayStep, where: str) -> None:
        """BP backward from ``g``: batch norm, ReLU and pool backward, then dL/dx (not for layer 1) and dW."""
        step.fp32_only(self.kind)
        r.batch_norm_backward(t, n, self.out_elems, where)
        t.free("g")
        self._replay_relu_pool_backward(t, n, where, f"l{layer}_")
        if layer > 1:
            r.conv_step(t, "input", self.conv, n, step, "g_x", r.f32(n * self.in_elems), where + "conv input gradient")
        r.conv_step(t, "weight", self.conv, n, step, f"grad:{self.name}", r.nbytes(self.params, step.master),
                    where + "conv backward")
        t.free("g_conv")
        if layer > 1:
            t.live["g"] = t.live.pop("g_x")

    @classmethod
    def stack(cls, image_shape: Sequence[int], widths: Sequence[int], plan: StackPlan) -> list[CFSEBlock]:
        """CFSE blocks: those in ``group_at`` (1-based; default every second one, 2nd, 4th, ...) are grouped
        into ``num_classes`` channel groups."""
        num_classes, group_at = plan.num_classes, plan.options.get("group_at")
        bn_refresh = plan.options.get("bn_refresh", False)
        if not (isinstance(bn_refresh, bool) or bn_refresh == "chain"):   # a bool, not 1 or 0
            raise ConfigError(f"bn_refresh must be true, false or chain, got {bn_refresh!r}")
        if group_at is not None:
            try:
                group_at = {int(v) for v in group_at}
            except (TypeError, ValueError):
                raise ConfigError(f"group-at must be a list of unit numbers, got {group_at!r}") from None
            if not all(1 <= v <= len(widths) for v in group_at):
                raise ConfigError(f"group-at lists units 1..{len(widths)}, got {sorted(group_at)}")
        if num_classes is None:
            raise ConfigError("a cfse network needs the number of classes (its grouped convs have one group per class)")
        specs, shape = [], tuple(image_shape)
        for i, (width, pool) in enumerate(zip(widths, plan.pools, strict=True)):
            grouped = (i + 1 in group_at) if group_at is not None else i % 2 == 1
            groups = num_classes if grouped else 1
            if groups > 1 and (shape[0] % groups or width % groups):
                raise ConfigError(f"{plan.prefix}{i + 1}'s grouped conv gives each of the {groups} classes an equal share of "
                                  f"its {shape[0]} input and {width} output channels; make the widths multiples of {groups}")
            specs.append(cls(f"{plan.prefix}{i + 1}", shape, width, plan.kernel, pool, groups, trainable=plan.trainable[i],
                             bn_refresh=bn_refresh))
            shape = specs[-1].out_shape
        return specs

    # ---- the torch module

    def build(self) -> CFSEModule:
        return CFSEModule(self)


class CFSEModule(BlockModule):
    def __init__(self, spec: CFSEBlock):
        super().__init__(spec)
        node = spec.conv
        self.conv = nn.Conv2d(node.in_shape[0], node.out_channels, node.kernel, padding=node.symmetric_padding,
                              groups=node.groups, bias=node.bias)
        self.norm = nn.BatchNorm2d(spec.filters, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # max pooling before the ReLU: the same values and gradient as ReLU then pool (ReLU is monotone, and
        # a window whose maximum is not positive passes no gradient either way), with the ReLU a quarter the size
        y = torch.relu(max_pool2x2(self.conv(x)) if self.spec.pooled else self.conv(x))
        return self.norm(y)

    def hand_on(self, y: torch.Tensor) -> torch.Tensor:
        return y.float()

    def after_update(self, x: torch.Tensor) -> None:
        """``bn_refresh`` true: one more training-mode forward of ``x`` through the updated conv, so batch
        norm's running statistics move toward the new weights ("chain": the network's pass does it)."""
        if self.spec.bn_refresh is True and self.training:
            self(x)
