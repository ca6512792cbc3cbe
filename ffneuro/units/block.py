"""The conv block (``--arch conv``, the paper's): 'same' conv → ReLU (→ 2×2 pool) → RMS norm, shared
with the BP twin."""
from __future__ import annotations

import torch
from torch import nn

from ..accounting.specs import LayerSpec
from .blocks import BLOCKS, Block, rms_normalize


class ConvBlock(Block):
    """'Same'-padded conv and ReLU, built from its :class:`~ffneuro.accounting.LayerSpec` (the one
    description of the layer: shapes, stride and padding come from ``spec.conv``). ``pool`` max/avg: a
    2×2 pool applied by :meth:`pool_out` after goodness; ``stride``: the conv itself has stride 2, so
    its neurons are the downsampled map."""

    def __init__(self, in_shape: tuple[int, int, int], filters: int, kernel: int, pool: str = "none", *,
                 spec: LayerSpec | None = None):
        super().__init__()
        self.spec = spec or LayerSpec("block", in_shape, filters, kernel, pool)   # validates (ConfigError)
        node = self.spec.conv
        self.conv = nn.Conv2d(node.in_shape[0], node.out_channels, node.kernel, stride=node.stride,
                              padding=node.symmetric_padding, bias=node.bias)

    @classmethod
    def from_spec(cls, spec: LayerSpec) -> ConvBlock:
        return cls(spec.in_shape, spec.filters, spec.kernel, spec.pool, spec=spec)

    @property
    def filters(self) -> int:
        return self.spec.filters

    @property
    def kernel(self) -> int:
        return self.spec.kernel

    @property
    def pool(self) -> str:
        return self.spec.pool

    @property
    def stride(self) -> int:
        return self.spec.stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Activations of this layer's neurons (before pooling): what goodness is measured on."""
        return torch.relu(self.conv(x))

    def pool_out(self, y: torch.Tensor) -> torch.Tensor:
        """2×2 max/avg pooling; the identity for none and stride (the conv has already downsampled)."""
        if self.pool == "max":
            return nn.functional.max_pool2d(y, 2)
        if self.pool == "avg":
            return nn.functional.avg_pool2d(y, 2)
        return y

    def hand_on(self, y: torch.Tensor) -> torch.Tensor:
        """Pooled, RMS-normalised (in fp32) activations: what the next layer receives."""
        return rms_normalize(self.pool_out(y).float())


BLOCKS.register("conv")(ConvBlock.from_spec)
