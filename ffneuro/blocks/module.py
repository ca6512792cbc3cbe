"""The torch side every block module shares: its spec's shapes, and the RMS normalisation between units."""
from __future__ import annotations

import torch
from torch import nn

from ..spec.block import BlockSpec


def rms_normalize(y: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """y / sqrt(mean(y²)) per sample, no mean subtraction: hides a layer's goodness from the next."""
    rms = y.flatten(1).pow(2).mean(1).add(eps).sqrt()
    return y / rms.view(-1, *([1] * (y.dim() - 1)))


class _MaxPool2x2(torch.autograd.Function):
    """2×2 max pooling (stride 2, floor) equal to ``max_pool2d(y, 2)`` in values and gradient, faster on
    the CPU: the forward runs torch's channels-last kernel (vectorised over channels; the NCHW kernel is
    not), the backward the ordinary NCHW one with the same indices (both keep the first maximum of a
    window)."""

    @staticmethod
    def forward(ctx, y: torch.Tensor) -> torch.Tensor:
        out, idx = torch.ops.aten.max_pool2d_with_indices(y.contiguous(memory_format=torch.channels_last), [2, 2], [2, 2])
        ctx.save_for_backward(y, idx.contiguous())
        return out.contiguous()

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:
        y, idx = ctx.saved_tensors
        return torch.ops.aten.max_pool2d_with_indices_backward(g.contiguous(), y, [2, 2], [2, 2], [0, 0], [1, 1],
                                                               False, idx)


def _max_of_quarters(y: torch.Tensor) -> torch.Tensor:
    """2×2 max pooling without indices (nothing to backpropagate): the maximum of the window's four strided
    quarters, the same values as ``max_pool2d`` (NaN included)."""
    h, w = y.shape[-2] // 2 * 2, y.shape[-1] // 2 * 2   # floor mode: an odd last row/column is dropped
    top = torch.maximum(y[..., 0:h:2, 0:w:2], y[..., 0:h:2, 1:w:2])
    return torch.maximum(top, torch.maximum(y[..., 1:h:2, 0:w:2], y[..., 1:h:2, 1:w:2]), out=top)


def max_pool2x2(y: torch.Tensor) -> torch.Tensor:
    """2×2 max pooling of a contiguous (N, C, H, W) tensor on the CPU: through :class:`_MaxPool2x2` when
    a gradient is to flow back, else without indices (:func:`_max_of_quarters`); elsewhere (CUDA, other
    layouts) torch's own ``max_pool2d``."""
    if y.device.type != "cpu" or y.dim() != 4 or not y.is_contiguous():
        return nn.functional.max_pool2d(y, 2)
    if torch.is_grad_enabled() and y.requires_grad:
        return _MaxPool2x2.apply(y)
    return _max_of_quarters(y)


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

    def after_update(self, x: torch.Tensor) -> None:
        """Called by an FF unit right after its optimiser step, with the input it learned on (under
        ``no_grad``): a block that keeps state following its weights (batch-norm running statistics)
        may refresh it here. Nothing by default."""


class PooledRMSModule(BlockModule):
    """A block that hands on its last ReLU output 2×2-pooled (max or avg; none for stride) and RMS-normalised
    in fp32, as the paper's conv block does: goodness is measured before the pool."""

    def pool_out(self, y: torch.Tensor) -> torch.Tensor:
        return pool_out(y, self.spec.pool)

    def hand_on(self, y: torch.Tensor) -> torch.Tensor:
        """Pooled, RMS-normalised (in fp32) activations: what the next unit receives."""
        return rms_normalize(self.pool_out(y).float())
