"""The layer both FF units and the BP baseline are made of: conv → ReLU (→ pool)."""
from __future__ import annotations

import torch
from torch import nn

from ..accounting.specs import LayerSpec


def rms_normalize(y: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """y / sqrt(mean(y²)) per sample, no mean subtraction: hides a layer's goodness from the next."""
    rms = y.flatten(1).pow(2).mean(1).add(eps).sqrt()
    return y / rms.view(-1, *([1] * (y.dim() - 1)))


class ConvBlock(nn.Module):
    """'Same'-padded conv and ReLU, built from its :class:`~ffneuro.accounting.LayerSpec` (the one
    description of the layer: shapes, stride and padding come from ``spec.conv``). ``pool`` max/avg: a
    2×2 pool applied by :meth:`pool_out` after goodness; ``stride``: the conv itself has stride 2, so
    its neurons are the downsampled map."""

    def __init__(self, in_shape: tuple[int, int, int], filters: int, kernel: int, pool: str = "none"):
        super().__init__()
        self.spec = LayerSpec("block", in_shape, filters, kernel, pool)   # validates (ConfigError)
        node = self.spec.conv
        self.conv = nn.Conv2d(node.in_shape[0], node.out_channels, node.kernel, stride=node.stride,
                              padding=node.symmetric_padding, bias=node.bias)

    @property
    def in_shape(self) -> tuple[int, int, int]:
        return self.spec.in_shape

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

    @property
    def neuron_shape(self) -> tuple[int, int, int]:
        """Shape of the conv output (what goodness is measured on): (H - 1) // stride + 1 per side."""
        return self.spec.neuron_shape

    @property
    def out_shape(self) -> tuple[int, int, int]:
        """Shape handed to the next layer (after pooling)."""
        return self.spec.out_shape

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
