"""The linear layers of a network (the FF readout, the BP head) and the layer-spec graph of a block stack.

Block specs themselves (conv, fc, cfse, ...) are :class:`~ffneuro.spec.block.BlockSpec` subclasses in
:mod:`ffneuro.blocks`; everything here works on any of them through that interface.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..spec import Flatten, Linear, NetSpec, Node, Unit
from .ops import BIAS_OPS


@dataclass(frozen=True)
class LinearSpec:
    """A fully connected layer: the FF linear readout or the BP head."""

    name: str
    in_features: int
    out_features: int
    bias: bool = True
    trainable: bool = True

    @property
    def linear(self) -> Linear:
        return Linear((self.in_features,), self.out_features, self.bias)

    @property
    def synapses(self) -> tuple[Linear]:
        return (self.linear,)

    def nodes(self) -> tuple[Node, ...]:
        return (self.linear,)

    def unit(self) -> Unit:
        return Unit(self.name, self.nodes(), self.trainable)

    # the counts are its linear node's
    neurons = property(lambda self: self.linear.neurons)
    fan_in = property(lambda self: self.linear.fan_in)
    weights = property(lambda self: self.linear.weights)
    params = property(lambda self: self.linear.params)
    macs = property(lambda self: self.linear.macs)
    synops = property(lambda self: self.linear.synops)

    @property
    def update_ops(self) -> int:
        return BIAS_OPS if self.bias else 0


def readout_spec(layers: Sequence, num_classes: int, readout_from: int = 1, bias: bool = True) -> LinearSpec:
    """The FF linear readout: a classifier on the hand-on outputs of layers ``readout_from``..L (1-based);
    ``bias`` False for a readout without one (``linear_init=zero``)."""
    if not 1 <= readout_from <= len(layers):
        raise ValueError(f"readout_from must lie in 1..{len(layers)}, got {readout_from}")
    return LinearSpec("readout", sum(s.out_elems for s in layers[readout_from - 1:]), num_classes, bias)


def head_spec(layers: Sequence, num_classes: int) -> LinearSpec:
    """The BP head: a linear layer on the last block's hand-on output."""
    return LinearSpec("head", layers[-1].out_elems, num_classes)


def net_spec(layers: Sequence, head: LinearSpec | None = None, *, name: str = "") -> NetSpec:
    """The layer-spec graph of a block stack and an optional linear head (flattened input)."""
    units = [s.unit() for s in layers]
    if head is not None:
        pre = (Flatten(layers[-1].out_shape),) if len(layers[-1].out_shape) > 1 else ()
        units.append(Unit(head.name, (*pre, head.linear), head.trainable))
    return NetSpec(layers[0].in_shape, tuple(units), name)
