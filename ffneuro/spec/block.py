"""The block interface: what a block type (``--arch``) is to the rest of ffneuro.

A block is the layer inside one learning unit, described once by a frozen dataclass that subclasses
:class:`BlockSpec`. From that one description come its layer-spec graph nodes (any number of weighted
nodes, wired as a chain or with a skip), its counts, its cost rule, its memory replay and its torch
module. Accounting, the memory model, the profiler, the memory guard and the spec graph use a block
only through this class; the block types themselves live in :mod:`ffneuro.blocks`, one file each.

What a block must say is abstract here, so a block that forgets a cost cannot be registered. What it
may leave out (its PyTorch memory replays) raises :class:`~ffneuro.errors.NotModelled`, which the
memory guard and the profiler report as "not modelled"; no block is ever costed by another's rule.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import ConfigError, NotModelled
from .graph import Unit
from .nodes import Conv2d, Linear, Node

if TYPE_CHECKING:   # the replay's types; importing them here would make the spec layer depend on accounting
    from torch import nn

    from ..accounting.replay import ReplayStep, Timeline


@dataclass(frozen=True)
class StackPlan:
    """How a network's blocks are laid out, beside their widths: what :meth:`BlockSpec.stack` reads.

    ``pools`` is each block's downsampling (none, max, avg or stride); ``trainable`` each block's flag;
    ``options`` the block type's own options (validated by the block, e.g. cfse's ``group_at``)."""

    kernel: int
    pools: tuple[str, ...]
    prefix: str
    trainable: tuple[bool, ...]
    num_classes: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


class BlockSpec(ABC):
    """Base of every block type: a frozen dataclass with at least ``name``, ``in_shape`` and ``trainable``.

    Shapes are per sample. ``neurons`` counts the outputs of every weighted node; ``goodness_shape`` is
    what goodness is measured on; ``out_shape`` what the block hands on to the next unit.
    """

    kind: ClassVar[str]                              # its --arch name
    option_names: ClassVar[tuple[str, ...]] = ()     # the block options its stack reads (StackPlan.options)

    name: str
    in_shape: tuple[int, ...]
    trainable: bool

    # ---- what it is: nodes, wiring, where goodness is measured, how a network of them is stacked

    @abstractmethod
    def nodes(self) -> tuple[Node, ...]:
        """The block as layer-spec graph nodes, in the order they run."""

    def wiring(self) -> tuple[tuple[int, ...], ...]:
        """Each node's inputs where the nodes are not a chain (see :class:`~ffneuro.spec.graph.Unit`)."""
        return ()

    @property
    @abstractmethod
    def goodness_shape(self) -> tuple[int, ...]:
        """What goodness is measured on, per sample."""

    @classmethod
    @abstractmethod
    def stack(cls, image_shape: Sequence[int], widths: Sequence[int], plan: StackPlan) -> list[BlockSpec]:
        """Blocks fed one by another: block i has ``widths[i]`` channels or neurons."""

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        """Refuse options this block type does not take (one line naming the valid ones)."""
        unknown = sorted(set(options) - set(cls.option_names))
        if unknown:
            valid = ", ".join(cls.option_names) or "none"
            raise ConfigError(f"block type {cls.kind!r} takes no option {', '.join(unknown)}; valid: {valid}")

    # ---- the cost rule: elementwise ops per sample (the MACs come from the weighted nodes)

    @property
    @abstractmethod
    def forward_ops(self) -> int:
        """Everything but the MACs of one forward, hand-on included."""

    @property
    @abstractmethod
    def neuron_grad_ops(self) -> int:
        """FF: dL/d(goodness input) → dL/d(each weighted node's output), elementwise part."""

    @property
    @abstractmethod
    def bias_grad_ops(self) -> int:
        """Bias gradients."""

    @abstractmethod
    def bp_input_grad_ops(self, first: bool) -> int:
        """BP: dL/d(hand-on output) → dL/d(weighted outputs) and, unless ``first``, on to dL/d(input)."""

    @property
    @abstractmethod
    def bp_stored(self) -> int:
        """Elements BP keeps for the backward pass, per sample."""

    @property
    @abstractmethod
    def update_ops(self) -> int:
        """Elementwise ops per neuron per pass that a neuromorphic neuron update replaces."""

    @property
    def refresh_after_update(self) -> bool:
        """True where the unit runs its block once more on the step's rows after each update (a training-mode
        forward that refreshes batch-norm statistics, cfse's ``bn_refresh``): the accounting charges it."""
        return False

    @property
    def refresh_chained(self) -> bool:
        """True where that refresh is the network's one training-mode pass through the units after all of
        them have updated (cfse's ``bn_refresh=chain``, CwComp's predict call), not the unit's own forward."""
        return False

    # ---- the torch module

    @abstractmethod
    def build(self) -> nn.Module:
        """The torch module of this block: ``forward(x)`` returns what goodness is measured on,
        ``hand_on(y)`` what the next unit receives (never detaching: a unit detaches, BP does not)."""

    # ---- the PyTorch memory replay (optional: what is not replayed is "not modelled")

    def replay_ff_unit(self, t: Timeline, step: ReplayStep, where: str) -> None:
        """One FF step of this unit on ``t``, where ``"in"`` (its input rows) is live: leaves its hand-on
        output live as ``"out"`` and its goodness input as ``"y"`` (the caller frees ``"in"``, ``"y"``)."""
        raise NotModelled(f"{self.kind} blocks have no memory replay of an FF step")

    def replay_forward(self, t: Timeline, rows: int, step: ReplayStep, where: str) -> None:
        """One pass without gradients (the readout's neutral features): leaves the hand-on output ``n_out``."""
        raise NotModelled(f"{self.kind} blocks have no memory replay of a forward pass")

    def replay_infer(self, t: Timeline, rows: int, step: ReplayStep, where: str, *, bp: bool) -> None:
        """A ``predict`` pass (fp32, no_grad): leaves ``out`` and, for FF (``bp`` false), the neurons
        goodness is measured on as ``y_new``."""
        raise NotModelled(f"{self.kind} blocks have no memory replay of a prediction pass")

    def replay_bp_forward(self, t: Timeline, n: int, layer: int, step: ReplayStep, where: str) -> None:
        """BP forward of layer ``layer`` (1-based): saves what its backward needs, leaves ``h_<layer>``."""
        raise NotModelled(f"{self.kind} blocks have no memory replay of a BP step")

    def replay_bp_backward(self, t: Timeline, n: int, layer: int, step: ReplayStep, where: str) -> None:
        """BP backward from ``g`` (dL/d h_<layer>): frees what the forward saved, leaves dL/dx as ``g``
        (not for layer 1) and this layer's gradient ``grad:<name>``."""
        raise NotModelled(f"{self.kind} blocks have no memory replay of a BP step")

    # ---- derived from the nodes, alike for every block (the counts are its unit's: one model of a unit)

    def unit(self) -> Unit:
        """The block's validated unit, built once per (immutable) spec: every count below reads it, and the
        memory guard's batch-size search asks for them many times."""
        cached = self.__dict__.get("_unit")
        if cached is None:
            cached = Unit(self.name, self.nodes(), self.trainable, inputs=self.wiring())
            object.__setattr__(self, "_unit", cached)     # frozen dataclass: a cache, not a field
        return cached

    @property
    def synapses(self) -> tuple[Conv2d | Linear, ...]:
        """The weighted nodes, in order."""
        return self.unit().synapses

    @property
    def neuron_shape(self) -> tuple[int, ...]:
        """The last weighted node's outputs (before any pooling)."""
        return self.synapses[-1].out_shape

    @property
    def goodness_elems(self) -> int:
        return math.prod(self.goodness_shape)

    @property
    def input_padding(self) -> int:
        """Zeros the block pads around its input before anything else runs (0: none). Export needs it: a
        normalisation on the padded map folds into the next conv exactly (the trifecta's ``pad_first``)."""
        return 0

    @property
    def fan_in(self) -> int:
        """The largest fan-in of its weighted nodes."""
        return max(n.fan_in for n in self.synapses)

    # out_shape, in_elems, out_elems, neurons (outputs of every weighted node), weights, params (with batch
    # norms' γ and β), bias, macs (dense, padding counted) and synops (NeuroBench's dense count): the unit's
    out_shape = property(lambda self: self.unit().out_shape)
    in_elems = property(lambda self: math.prod(self.in_shape))
    out_elems = property(lambda self: self.unit().out_elems)
    neurons = property(lambda self: self.unit().neurons)
    weights = property(lambda self: self.unit().weights)
    params = property(lambda self: self.unit().params)
    bias = property(lambda self: self.unit().bias)
    macs = property(lambda self: self.unit().macs)
    synops = property(lambda self: self.unit().synops)

    def _input_grad_macs(self) -> int:
        """MACs of the input gradients autograd needs inside the block when its own input needs none: of
        every weighted node with a parameterised node upstream of it."""
        unit = self.unit()
        return sum(n.macs for i, n in enumerate(unit.nodes)
                   if n.weighted and any(unit.nodes[j].params for j in unit.upstream(i)))

    @property
    def ff_backward_macs(self) -> int:
        """MACs of an FF step's backward, per row: every weight gradient, and the input gradients the
        block's own parameters need (its input arrives detached)."""
        return self.macs + self._input_grad_macs()

    def bp_input_grad_macs(self, first: bool) -> int:
        """MACs of BP's input gradients, per sample: every weighted node's, except that the first
        layer's input (the image) needs none, so there only those inside the block are computed."""
        return self._input_grad_macs() if first else self.macs


def conv_in_shape(name: str, in_shape: Sequence[int], kernel: int) -> tuple[int, int, int]:
    """``in_shape`` as three positive ints (C, H, W), for a conv block whose ``kernel`` must suit 'same'
    padding (odd)."""
    shape = tuple(int(s) for s in in_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ConfigError(f"{name}: in_shape must be three positive ints (C, H, W), got {in_shape}")
    if kernel < 1 or kernel % 2 == 0:
        raise ConfigError(f"kernel must be a positive odd number for 'same' padding, got {kernel}")
    return shape


class ShapeError(ConfigError):
    """A block that cannot work on its input map: ``problem``; ``fix``, what to change. ``block`` names the
    block and ``in_shape`` is its input, so that a network's check can say more
    (:meth:`~ffneuro.config.RunConfig.check_shapes`)."""

    def __init__(self, block: str, in_shape: Sequence[int], problem: str, fix: str):
        super().__init__(f"{problem}; {fix}")
        self.block, self.in_shape, self.problem, self.fix = block, tuple(in_shape), problem, fix


def kernel_reach_error(name: str, in_shape: Sequence[int], kernel: int) -> ShapeError | None:
    """A kernel that reaches past its input map from every position (its outer weights would only ever
    multiply zero padding), as an error; None when it fits."""
    h, w = in_shape[-2:]
    if kernel <= 2 * min(h, w) - 1:
        return None
    return ShapeError(name, in_shape, f"{name}: its {h}×{w} input map is too small for a {kernel}×{kernel} kernel "
                      "(the outer weights would only ever see zero padding)", f"use --kernel {2 * min(h, w) - 1} or less")


def check_conv_input(name: str, in_shape: Sequence[int], kernel: int, pool: str) -> None:
    """Refuse downsampling a map smaller than 2×2."""
    _, h, w = in_shape
    if pool != "none" and min(h, w) < 2:
        verb = "downsample" if pool == "stride" else "pool"
        raise ShapeError(name, in_shape, f"{name} cannot {verb} its {h}×{w} input map", "use fewer downsampling layers")
