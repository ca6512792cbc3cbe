"""The layer both FF units and the BP baseline are made of: conv → ReLU (→ pool)."""
from __future__ import annotations

import torch
from torch import nn

from ..accounting.ops import POOLS, block_shapes
from ..errors import ConfigError


def rms_normalize(y: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """y / sqrt(mean(y²)) per sample, no mean subtraction: hides a layer's goodness from the next."""
    rms = y.flatten(1).pow(2).mean(1).add(eps).sqrt()
    return y / rms.view(-1, *([1] * (y.dim() - 1)))


class ConvBlock(nn.Module):
    """'Same'-padded conv and ReLU. ``pool`` max/avg: a 2×2 pool applied by :meth:`pool_out` after
    goodness; ``stride``: the conv itself has stride 2, so its neurons are the downsampled map."""

    def __init__(self, in_shape: tuple[int, int, int], filters: int, kernel: int, pool: str = "none"):
        super().__init__()
        if pool not in POOLS:
            raise ConfigError(f"unknown pool {pool!r}; valid: {', '.join(POOLS)}")
        if kernel < 1 or kernel % 2 == 0:
            raise ConfigError(f"kernel must be a positive odd number for 'same' padding, got {kernel}")
        c, h, w = in_shape
        if pool != "none" and (h < 2 or w < 2):
            raise ConfigError(f"cannot {'downsample' if pool == 'stride' else 'pool'} a {h}×{w} map; "
                              "use fewer downsampling layers (or a larger --pool-every)")
        self.in_shape = (c, h, w)
        self.filters, self.kernel, self.pool = filters, kernel, pool
        self.stride = 2 if pool == "stride" else 1
        self.conv = nn.Conv2d(c, filters, kernel, stride=self.stride, padding=kernel // 2)

    @property
    def neuron_shape(self) -> tuple[int, int, int]:
        """Shape of the conv output (what goodness is measured on): (H - 1) // stride + 1 per side."""
        return block_shapes(self.in_shape, self.filters, self.pool)[0]

    @property
    def out_shape(self) -> tuple[int, int, int]:
        """Shape handed to the next layer (after pooling)."""
        return block_shapes(self.in_shape, self.filters, self.pool)[1]

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
