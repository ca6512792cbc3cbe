"""The residual block (``--arch residual``; ResNet's basic block without batch norm), one learning unit:
conv k×k → ReLU → conv k×k, plus the skip, → add → ReLU → (2×2 pool) → RMS norm.

The skip is the identity when the block keeps its channels and does not downsample by stride, else a
1×1 projection conv (no bias: the main path's second conv already has one) with the first conv's
stride. Goodness is measured on the ReLU output after the add, before pooling; the pooled,
RMS-normalised map is handed on. ``pool`` is none, max or avg (a 2×2 pool after the last ReLU) or
stride (the first conv and the projection have stride 2). This is the building block of ResNet-8 and
of DeeperForward-class FF networks.

Its options (the run config's ``block_options``, set by presets): ``norm`` is the hand-on normalisation, ``rms`` (the default, ffneuro's),
``group`` (group norm with one group per class and no γ, β: DeeperForward's, Sun et al. ICLR 2025, which
hands each class's channels on with their own mean and scale removed) or ``layer`` (group norm with one
group: layer norm over (C, H, W), as the DeeperForward paper's text names it); ``bias`` false drops the
convs' biases (DeeperForward's convs have none).

The first ReLU and the add and ReLU after it run in place (a conv's backward needs its input, not its
output): the main path holds one tensor per conv.
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
from ..spec import Activation, Add, Conv2d, GroupNorm, Node, Pool2d, RMSNorm
from ..spec.block import BlockSpec, StackPlan
from . import register_block
from .conv_like import ConvLike
from .module import PooledRMSModule

ADD_OPS = 1   # one add per element where the skip joins the main path (and where BP's two input gradients meet)
NORMS = ("rms", "group", "layer")   # the hand-on normalisation (``norm`` option)
GROUP_NORM_FWD = (5, 4)   # per element: square, accumulate x and x², subtract the mean, multiply by 1/σ;
                          # per group: mean, variance, +eps, 1/sqrt
GROUP_NORM_BWD = (7, 3)   # per element: accumulate g and g·x̂ (3), dx = (g − mean g − x̂·mean(g·x̂))/σ (4); per group 3
GROUP_NORM_EPS = 1e-5     # torch's F.group_norm default, which DeeperForward's code uses


@register_block
@dataclass(frozen=True)
class ResidualBlock(ConvLike, BlockSpec):
    """One residual block of ``filters`` channels, ``kernel``×``kernel`` 'same' convs, on a (C, H, W) input."""

    kind: ClassVar[str] = "residual"
    option_names: ClassVar[tuple[str, ...]] = ("norm", "bias")

    name: str
    in_shape: tuple[int, int, int]
    filters: int
    kernel: int
    pool: str = "none"
    trainable: bool = True
    bias: bool = True
    norm: str = "rms"
    norm_groups: int = 1   # group norm's groups (``norm`` group: the classes; layer: 1)

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_shape", self._checked_in_shape())
        if self.norm not in NORMS:
            raise ConfigError(f"unknown norm {self.norm!r} for a residual block; valid: {', '.join(NORMS)}")
        if self.norm != "rms" and (self.norm_groups < 1 or self.filters % self.norm_groups):
            raise ConfigError(f"{self.name}: group norm splits its {self.filters} channels into {self.norm_groups} "
                              f"equal groups (one per class); make the width a multiple of {self.norm_groups}")

    @classmethod
    def _stack_extra(cls, i: int, shape: tuple[int, ...], width: int, plan: StackPlan) -> dict:
        """The block options: ``norm`` (rms, group or layer) and ``bias`` (true or false)."""
        norm, bias = plan.options.get("norm", "rms"), plan.options.get("bias", True)
        if norm not in NORMS:
            raise ConfigError(f"block option norm must be one of {', '.join(NORMS)}; got {norm!r}")
        if not isinstance(bias, bool):
            raise ConfigError(f"block option bias must be true or false; got {bias!r}")
        groups = 1
        if norm == "group":
            if plan.num_classes is None:
                raise ConfigError("norm group needs the number of classes (one group per class)")
            groups = plan.num_classes
        return {"bias": bias, "norm": norm, "norm_groups": groups}

    @property
    def grouped_norm(self) -> bool:
        """Whether the hand-on is normalised by group norm (``norm`` group or layer) rather than RMS."""
        return self.norm != "rms"

    @property
    def projected(self) -> bool:
        """Whether the skip is a 1×1 projection conv (channels change or the block downsamples by stride)."""
        return self.in_shape[0] != self.filters or self.stride != 1

    @property
    def conv1(self) -> Conv2d:
        return Conv2d(self.in_shape, self.filters, self.kernel, self.stride, self.kernel // 2, bias=self.bias)

    @property
    def conv2(self) -> Conv2d:
        return Conv2d(self.conv1.out_shape, self.filters, self.kernel, 1, self.kernel // 2, bias=self.bias)

    @property
    def projection(self) -> Conv2d | None:
        """The skip's 1×1 conv (None: an identity skip)."""
        return Conv2d(self.in_shape, self.filters, 1, self.stride, 0, bias=False) if self.projected else None

    def nodes(self) -> tuple[Node, ...]:
        """conv1 → ReLU → conv2, (projection of the input), add, ReLU, (2×2 pool), RMS norm."""
        c1, c2, proj = self.conv1, self.conv2, self.projection
        out: list[Node] = [c1, Activation(c1.out_shape, "relu"), c2]
        if proj is not None:
            out.append(proj)
        out += [Add(c2.out_shape), Activation(c2.out_shape, "relu")]
        if self.pooled:
            out.append(Pool2d(c2.out_shape, self.pool, 2, 2))
        shape = out[-1].out_shape
        out.append(GroupNorm(shape, self.norm_groups) if self.grouped_norm else RMSNorm(shape))
        return tuple(out)

    def wiring(self) -> tuple[tuple[int, ...], ...]:
        """conv2 reads conv1's ReLU; the add reads conv2 and the projection (or the unit's input); the rest is a chain."""
        ins: list[tuple[int, ...]] = [(-1,), (0,), (1,)]
        if self.projected:
            ins += [(-1,), (2, 3)]
        else:
            ins += [(2, -1)]
        for _ in range(len(self.nodes()) - len(ins)):
            ins.append((len(ins) - 1,))
        return tuple(ins)

    @property
    def goodness_shape(self) -> tuple[int, int, int]:
        """Goodness is measured on the ReLU output after the add, before pooling."""
        return self.conv2.out_shape

    @property
    def map_elems(self) -> int:
        """Elements of the block's output map before pooling (conv2's, the add's, the last ReLU's)."""
        return self.conv2.neurons

    @property
    def biased_neurons(self) -> int:
        """Outputs of the convs with a bias (the projection has none)."""
        return (self.conv1.neurons + self.conv2.neurons) if self.bias else 0

    # ---- the cost rule (elementwise ops per sample; the MACs are the convs')

    @property
    def update_ops(self) -> int:
        """Bias and ReLU per neuron: what a neuromorphic neuron update replaces (the skip's add and the
        projection's bias-free outputs are counted alike)."""
        return (BIAS_OPS if self.bias else 0) + RELU_OPS

    def _norm_fwd_ops(self) -> int:
        if not self.grouped_norm:
            return ops.rms_norm_fwd_ops(self.out_elems)
        return GROUP_NORM_FWD[0] * self.out_elems + GROUP_NORM_FWD[1] * self.norm_groups

    def _norm_bwd_ops(self) -> int:
        if not self.grouped_norm:
            return ops.rms_norm_bwd_ops(self.out_elems)
        return GROUP_NORM_BWD[0] * self.out_elems + GROUP_NORM_BWD[1] * self.norm_groups

    @property
    def forward_ops(self) -> int:
        """Biases, conv1's ReLU, the add and the ReLU after it, the pool, and the norm of the hand-on output."""
        return BIAS_OPS * self.biased_neurons + RELU_OPS * self.conv1.neurons \
            + (ADD_OPS + RELU_OPS) * self.map_elems \
            + ops.pool_fwd_ops(self.pool, self.out_elems) + self._norm_fwd_ops()

    @property
    def neuron_grad_ops(self) -> int:
        """The last ReLU's backward (the add passes its gradient to both branches as it is), then conv1's
        ReLU's after conv2's input gradient (MACs)."""
        return RELU_OPS * (self.map_elems + self.conv1.neurons)

    @property
    def bias_grad_ops(self) -> int:
        return self.biased_neurons

    def bp_input_grad_ops(self, first: bool) -> int:
        """The norm, pool and both ReLUs' backward and, unless ``first``, the sum of the main path's and the
        skip's input gradients."""
        return self._norm_bwd_ops() + ops.pool_bwd_ops(self.pool, self.map_elems, self.out_elems) \
            + RELU_OPS * (self.map_elems + self.conv1.neurons) + (0 if first else ADD_OPS * self.in_elems)

    @property
    def bp_stored(self) -> int:
        """BP keeps conv1's ReLU output (conv2's input), the last ReLU's output, the pooled map when pooled
        and the output."""
        return self.conv1.neurons + self.map_elems + (self.out_elems if self.pooled else 0) + self.out_elems


    # ---- the PyTorch memory replay (fp32; oneDNN's copies on the CPU)

    @property
    def convs(self) -> tuple[Conv2d, ...]:
        return tuple(c for c in (self.conv1, self.conv2, self.projection) if c is not None)

    def _forward(self, t: r.Timeline, rows: int, step: r.ReplayStep, where: str, c1: str, y: str, saved: bool) -> None:
        """conv1 (ReLU in place) into ``c1`` (freed once conv2 has run unless autograd has ``saved`` it), conv2
        into ``y``, the projection's output added into it in place and freed, the last ReLU in place: ``y`` is
        the goodness input."""
        a = r.f32(rows * self.map_elems)
        r.conv_step(t, "forward", self.conv1, rows, step, c1, r.f32(rows * self.conv1.neurons), where + "conv1")
        r.conv_step(t, "forward", self.conv2, rows, step, y, a, where + "conv2")
        if not saved:
            t.free(c1)
        if self.projected:
            r.conv_step(t, "forward", self.projection, rows, step, "skip", a, where + "projection")
            t.free("skip")

    def _replay_pool(self, t: r.Timeline, rows: int, pooled: str, idx: str, where: str) -> None:
        """The 2×2 pool (max pooling's int64 indices too, even under no_grad); nothing for none or stride."""
        if self.pooled:
            t.alloc(pooled, r.f32(rows * self.out_elems))
            if self.pool == "max":
                t.alloc(idx, rows * self.out_elems * r.INDEX_BYTES)
            t.mark(where + "pool")

    def _replay_hand_on(self, t: r.Timeline, rows: int, prefix: str, where: str) -> None:
        """The hand-on without gradients (pool, then the norm) into ``<prefix>out``; frees the temporaries."""
        if not self.grouped_norm:
            r.pooled_rms_hand_on(t, rows, self.out_elems, self.pool, prefix, where)
            return
        self._replay_pool(t, rows, f"{prefix}pooled", f"{prefix}pool_idx", where)
        t.free(f"{prefix}pool_idx")
        t.alloc(f"{prefix}out", r.f32(rows * self.out_elems))
        t.alloc(f"{prefix}gn_stats", r.f32(2 * rows * self.norm_groups))
        t.mark(where + "hand-on group norm")
        t.free(f"{prefix}gn_stats", f"{prefix}pooled")

    def _replay_bp_group_norm_backward(self, t: r.Timeline, n: int, k: int, where: str) -> None:
        """BP backward from ``g`` through the group norm and the pool: leaves ``g_y`` (dL/d the pool's input)."""
        t.alloc("g_p", r.f32(n * self.out_elems))
        t.mark(where + "group norm backward")
        t.free("g", f"gn_{k}")
        if self.pooled:
            t.alloc("g_y", r.f32(n * self.map_elems))
            t.mark(where + "pool")
            t.free("g_p", f"p_{k}", f"idx_{k}")
        else:
            t.rename("g_p", "g_y")

    def replay_ff_unit(self, t: r.Timeline, step: r.ReplayStep, where: str) -> None:
        """Forward, goodness; then goodness and ReLU backward, the projection's weight gradient (autograd runs
        it first), conv2's input and weight gradients, conv1's ReLU backward and weight gradient (no dL/dx:
        the input arrives detached), Adam, hand-on."""
        step.fp32_only(self.kind)
        rows, u = step.rows, where
        a1, a = r.f32(rows * self.conv1.neurons), r.f32(rows * self.map_elems)
        self._forward(t, rows, step, u, "c1", "y", saved=self.trainable)
        r.goodness_forward(t, rows, self.map_elems, u)
        if self.trainable:
            t.free(f"grad:{self.name}")                   # zero_grad(set_to_none=True)
            r.goodness_backward(t, step, self.map_elems, u)
            t.alloc("g_z", a)                             # the last ReLU's backward; the add hands it to both branches
            t.mark(u + "relu backward")
            t.free("g_y")
            if self.projected:
                r.conv_step(t, "weight", self.projection, rows, step, f"grad:{self.name}",
                          r.f32(self.projection.params), u + "projection")
            r.conv_step(t, "input", self.conv2, rows, step, "g_a", a1, u + "conv2 input gradient")
            r.conv_step(t, "weight", self.conv2, rows, step, f"grad:{self.name}", r.f32(self.conv2.params), u + "conv2")
            t.free("g_z")
            t.alloc("g_c1", a1)                           # conv1's ReLU backward
            t.mark(u + "conv1 relu backward")
            t.free("g_a", "c1")
            r.conv_step(t, "weight", self.conv1, rows, step, f"grad:{self.name}", r.f32(self.conv1.params), u + "conv1")
            t.free("g_c1")
            r.optimizer_step(t, r.conv_param_tensors(self.convs), u + "update", step.backend, step.optimizer)
        self._replay_hand_on(t, rows, "", u)

    def replay_forward(self, t: r.Timeline, rows: int, step: r.ReplayStep, where: str) -> None:
        """One pass without gradients (the readout's neutral features): leaves the hand-on output ``n_out``."""
        step.fp32_only(self.kind)
        self._forward(t, rows, step, where, "n_c1", "n_y", saved=False)
        self._replay_hand_on(t, rows, "n_", where)
        t.free("n_y")

    def replay_infer(self, t: r.Timeline, rows: int, step: r.ReplayStep, where: str, *, bp: bool) -> None:
        """A ``predict`` pass (fp32, no_grad): leaves ``out`` and, for FF (goodness is measured on them), the
        neurons ``y_new``."""
        step.fp32_only(self.kind)
        self._forward(t, rows, step, where, "c1", "y_new", saved=False)
        self._replay_hand_on(t, rows, "", where)
        if bp:
            t.free("y_new")

    def replay_bp_forward(self, t: r.Timeline, n: int, layer: int, step: r.ReplayStep, where: str) -> None:
        """BP forward: saves conv1's ReLU output ``a_<k>`` and the last ReLU's ``y_<k>``, the pooled map and
        indices, the rms, and leaves ``h_<k>``."""
        step.fp32_only(self.kind)
        self._forward(t, n, step, where, f"a_{layer}", f"y_{layer}", saved=True)
        if not self.grouped_norm:
            r.bp_pooled_rms_norm(t, n, self.out_elems, self.pool, layer, where)
            return
        self._replay_pool(t, n, f"p_{layer}", f"idx_{layer}", where)
        t.alloc(f"h_{layer}", r.f32(n * self.out_elems))
        t.alloc(f"gn_{layer}", r.f32(2 * n * self.norm_groups))   # the mean and 1/σ per group, saved
        t.mark(where + "group norm")

    def replay_bp_backward(self, t: r.Timeline, n: int, layer: int, step: r.ReplayStep, where: str) -> None:
        """BP backward from ``g``: norm, pool and ReLU backward; the projection's dL/dx and dW (autograd runs it
        first), conv2's dL/dx and dW, conv1's ReLU backward, dL/dx and dW. dL/dx (not for layer 1) is the skip's
        gradient (the ReLU gradient itself for an identity skip) with conv1's added into it in place: ``g``."""
        step.fp32_only(self.kind)
        k = layer
        a1, a, x = r.f32(n * self.conv1.neurons), r.f32(n * self.map_elems), r.f32(n * self.in_elems)
        if self.grouped_norm:
            self._replay_bp_group_norm_backward(t, n, k, where)
        else:
            r.bp_pooled_rms_norm_backward(t, n, self.out_elems, self.map_elems, self.pool, k, where)
        t.alloc("g_z", a)
        t.mark(where + "relu")
        t.free("g_y", f"y_{k}")
        if self.projected:
            if k > 1:
                r.conv_step(t, "input", self.projection, n, step, "g_skip", x, where + "projection input gradient")
            r.conv_step(t, "weight", self.projection, n, step, f"grad:{self.name}", r.f32(self.projection.params),
                      where + "projection")
        r.conv_step(t, "input", self.conv2, n, step, "g_a", a1, where + "conv2 input gradient")
        r.conv_step(t, "weight", self.conv2, n, step, f"grad:{self.name}", r.f32(self.conv2.params), where + "conv2")
        if self.projected or k == 1:
            t.free("g_z")
        else:
            t.rename("g_z", "g_skip")                     # the identity skip's gradient is the ReLU gradient itself
        t.alloc("g_c1", a1)
        t.mark(where + "conv1 relu")
        t.free("g_a", f"a_{k}")
        if k > 1:
            r.conv_step(t, "input", self.conv1, n, step, "g_main", x, where + "conv1 input gradient")
        r.conv_step(t, "weight", self.conv1, n, step, f"grad:{self.name}", r.f32(self.conv1.params), where + "conv1")
        t.free("g_c1", "g_main", f"h_{k - 1}")            # conv1's dL/dx is added into the skip's in place
        if k > 1:
            t.rename("g_skip", "g")

    # ---- the torch module

    def build(self) -> ResidualModule:
        return ResidualModule(self)


class ResidualModule(PooledRMSModule):
    """conv1, ReLU, conv2, plus the skip, ReLU; the 2×2 pool and the norm (RMS or group) come in :meth:`hand_on`."""

    def __init__(self, spec: ResidualBlock):
        super().__init__(spec)
        c1, c2, proj = spec.conv1, spec.conv2, spec.projection
        self.conv1 = nn.Conv2d(c1.in_shape[0], c1.out_channels, c1.kernel, stride=c1.stride,
                               padding=c1.symmetric_padding, bias=c1.bias)
        self.conv2 = nn.Conv2d(c2.in_shape[0], c2.out_channels, c2.kernel, padding=c2.symmetric_padding, bias=c2.bias)
        self.projection = None if proj is None else nn.Conv2d(proj.in_shape[0], proj.out_channels, 1,
                                                              stride=proj.stride, bias=False)

    def hand_on(self, y: torch.Tensor) -> torch.Tensor:
        """Pooled, then normalised in fp32 (RMS, or group norm without γ and β): what the next unit receives."""
        if not self.spec.grouped_norm:
            return super().hand_on(y)
        return group_normalize(self.pool_out(y).float(), self.spec.norm_groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The ReLU output after the add (before pooling): what goodness is measured on."""
        out = self.conv2(torch.relu_(self.conv1(x)))
        out += x if self.projection is None else self.projection(x)
        return torch.relu_(out)


def group_normalize(y: torch.Tensor, groups: int) -> torch.Tensor:
    """(y − mean) / sqrt(var + eps) per sample over each of ``groups`` equal channel groups (biased variance,
    no γ or β): each class's channels reach the next unit with their level and scale removed, so the
    next unit cannot read this one's goodness off them."""
    return nn.functional.group_norm(y, groups, eps=GROUP_NORM_EPS)
