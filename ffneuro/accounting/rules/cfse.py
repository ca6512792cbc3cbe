"""CwComp's CFSE block (Papachristodoulou et al., AAAI 2024): conv → ReLU → (2×2 max pool) → batch norm.

In a CFSE network the blocks alternate: a standard conv extracts features, then a *channel-wise grouped*
conv (one group per class, so class k's output channels see only class k's input channels) separates
them and pools. Here the blocks that downsample are the grouped ones. Goodness (class-wise, one value
per class-owned channel group) is measured on the batch-normalised output, which is also what the
block hands on.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from ...errors import ConfigError
from ...spec import Activation, BatchNorm, Conv2d, Node, Pool2d, Unit
from .. import ops
from ..specs import BLOCK_SPECS

CFSE_POOLS = ("none", "max")


@BLOCK_SPECS.register("cfse")
@dataclass(frozen=True)
class CFSESpec:
    """One CFSE conv block: ``filters`` outputs, ``groups`` channel groups, 'same' padding, stride 1."""

    kind: ClassVar[str] = "cfse"
    trains_before_synapse: ClassVar[bool] = False

    name: str
    in_shape: tuple[int, int, int]
    filters: int
    kernel: int
    pool: str = "none"
    groups: int = 1
    trainable: bool = True
    bias: bool = True

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.in_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ConfigError(f"{self.name}: in_shape must be three positive ints (C, H, W), got {self.in_shape}")
        if self.pool not in CFSE_POOLS:
            raise ConfigError(f"a cfse block pools with {' or '.join(CFSE_POOLS)}, got {self.pool!r}")
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ConfigError(f"kernel must be a positive odd number for 'same' padding, got {self.kernel}")
        if self.pool != "none" and min(shape[1:]) < 2:
            raise ConfigError(f"cannot pool a {shape[1]}×{shape[2]} map; use fewer downsampling layers")
        object.__setattr__(self, "in_shape", shape)
        self.conv  # validates channels against groups (ConfigError)

    @property
    def pooled(self) -> bool:
        return self.pool != "none"

    @property
    def conv(self) -> Conv2d:
        return Conv2d(self.in_shape, self.filters, self.kernel, 1, self.kernel // 2, groups=self.groups, bias=self.bias)

    @property
    def synapse(self) -> Conv2d:
        return self.conv

    def nodes(self) -> tuple[Node, ...]:
        conv = self.conv
        out: list[Node] = [conv, Activation(conv.out_shape, "relu")]
        if self.pooled:
            out.append(Pool2d(conv.out_shape, self.pool, 2, 2))
        out.append(BatchNorm(out[-1].out_shape))
        return tuple(out)

    def unit(self) -> Unit:
        return Unit(self.name, self.nodes(), self.trainable)

    @property
    def neuron_shape(self) -> tuple[int, int, int]:
        return self.conv.out_shape

    @property
    def out_shape(self) -> tuple[int, int, int]:
        return self.nodes()[-1].out_shape

    goodness_shape = out_shape   # measured on the batch-normalised output

    @property
    def in_elems(self) -> int:
        return math.prod(self.in_shape)

    @property
    def neurons(self) -> int:
        return math.prod(self.neuron_shape)

    @property
    def out_elems(self) -> int:
        return math.prod(self.out_shape)

    goodness_elems = out_elems

    @property
    def fan_in(self) -> int:
        return self.conv.fan_in

    @property
    def weights(self) -> int:
        return self.conv.weights

    @property
    def params(self) -> int:
        return self.conv.params + 2 * self.filters   # batch norm's γ and β

    @property
    def macs(self) -> int:
        return self.conv.macs

    @property
    def synops(self) -> int:
        return self.conv.synops

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

    @classmethod
    def stack(cls, image_shape: Sequence[int], widths: Sequence[int], *, kernel: int, pools: Sequence[str],
              prefix: str, trainable: Sequence[bool], num_classes: int | None = None) -> list["CFSESpec"]:
        """CFSE blocks: those that downsample are grouped into ``num_classes`` channel groups."""
        if num_classes is None:
            raise ConfigError("a cfse network needs the number of classes (its grouped convs have one group per class)")
        specs, shape = [], tuple(image_shape)
        for i, (width, pool) in enumerate(zip(widths, pools, strict=True)):
            groups = num_classes if pool != "none" else 1
            specs.append(cls(f"{prefix}{i + 1}", shape, width, kernel, pool, groups, trainable=trainable[i]))
            shape = specs[-1].out_shape
        return specs
