"""The block interface: the layer inside a unit, built from its block spec.

A block is an ``nn.Module`` with known shapes (from its spec, :mod:`ffneuro.accounting.specs`):
``forward(x)`` returns what the unit's goodness is measured on, ``hand_on(y)`` turns that into the next
unit's input (pooling, normalisation; never detaching: a unit detaches, a BP network does not). A new
layer type is one file here (its block, registered in :data:`BLOCKS` under its ``--arch`` name) plus
its spec and cost rule (one file in :mod:`ffneuro.accounting.rules`).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..registry import Registry


def rms_normalize(y: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """y / sqrt(mean(y²)) per sample, no mean subtraction: hides a layer's goodness from the next."""
    rms = y.flatten(1).pow(2).mean(1).add(eps).sqrt()
    return y / rms.view(-1, *([1] * (y.dim() - 1)))


class Block(nn.Module):
    """Base of every block: its spec and the shapes read off it."""

    spec: object   # the block spec (LayerSpec, DenseSpec, ...): the one description of the layer

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self.spec.in_shape

    @property
    def neuron_shape(self) -> tuple[int, ...]:
        """The weighted node's outputs."""
        return self.spec.neuron_shape

    @property
    def goodness_shape(self) -> tuple[int, ...]:
        """What :meth:`forward` returns, per sample: what goodness is measured on."""
        return self.spec.goodness_shape

    @property
    def out_shape(self) -> tuple[int, ...]:
        """What :meth:`hand_on` returns, per sample."""
        return self.spec.out_shape

    def hand_on(self, y: torch.Tensor) -> torch.Tensor:   # pragma: no cover - every block defines it
        raise NotImplementedError


#: block type name (``--arch``) -> a function building the torch block from its spec
BLOCKS: Registry[Callable[[object], Block]] = Registry("block type (--arch)")


def build_block(spec) -> Block:
    """The torch block of ``spec`` (its type is ``spec.kind``)."""
    return BLOCKS.get(spec.kind)(spec)
