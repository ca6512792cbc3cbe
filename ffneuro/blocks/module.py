"""The torch side every block module shares: its spec's shapes, and the RMS normalisation between units."""
from __future__ import annotations

import torch
from torch import nn

from ..spec.block import BlockSpec


def rms_normalize(y: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """y / sqrt(mean(y²)) per sample, no mean subtraction: hides a layer's goodness from the next."""
    rms = y.flatten(1).pow(2).mean(1).add(eps).sqrt()
    return y / rms.view(-1, *([1] * (y.dim() - 1)))


def pool_out(y: torch.Tensor, pool: str) -> torch.Tensor:
    """2×2 max or average pooling; the identity for none and stride (the conv has already downsampled)."""
    if pool == "max":
        return nn.functional.max_pool2d(y, 2)
    if pool == "avg":
        return nn.functional.avg_pool2d(y, 2)
    return y


class BlockModule(nn.Module):
    """Base of every block's module: ``forward(x)`` returns what goodness is measured on, ``hand_on(y)``
    what the next unit receives (pooling, normalisation; never detaching: a unit detaches, BP does not)."""

    def __init__(self, spec: BlockSpec):
        super().__init__()
        self.spec = spec

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self.spec.in_shape

    @property
    def neuron_shape(self) -> tuple[int, ...]:
        return self.spec.neuron_shape

    @property
    def goodness_shape(self) -> tuple[int, ...]:
        return self.spec.goodness_shape

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.spec.out_shape

    def hand_on(self, y: torch.Tensor) -> torch.Tensor:
        return y.float()


class PooledRMSModule(BlockModule):
    """A block that hands on its last ReLU output 2×2-pooled (max or avg; none for stride) and RMS-normalised
    in fp32, as the paper's conv block does: goodness is measured before the pool."""

    def pool_out(self, y: torch.Tensor) -> torch.Tensor:
        return pool_out(y, self.spec.pool)

    def hand_on(self, y: torch.Tensor) -> torch.Tensor:
        """Pooled, RMS-normalised (in fp32) activations: what the next unit receives."""
        return rms_normalize(self.pool_out(y).float())
