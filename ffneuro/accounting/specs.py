"""Shapes of a network, without torch: what every count in ffneuro.accounting is computed from.

:func:`layer_specs` builds them from a :class:`~ffneuro.config.RunConfig` (so a preset can be
profiled without building or training a model); :func:`specs_from_model` reads them off a built
FFNet or BPNet.

A *block spec* describes one unit's layer: its shapes, its nodes in the layer-spec graph, and its
**cost rule**, the elementwise op counts of its forward and backward passes (MACs come from its
weighted node). Every block type registers its spec class in :data:`BLOCK_SPECS` under the name
``--arch`` takes; the class's :meth:`stack` builds a network's specs from per-layer widths. The conv
block (:class:`LayerSpec`) is defined here; the others live in :mod:`ffneuro.accounting.rules`, one
file each. What a block spec provides (the counts derived alike from its nodes and weighted node come
from :class:`SynapseCounts`):

* ``name``, ``in_shape``, ``trainable``; ``nodes()``/``unit()``; ``synapse`` (the weighted node);
* ``neuron_shape`` (the weighted node's outputs), ``goodness_shape`` (what goodness is measured on),
  ``out_shape`` (what it hands on), and their element counts ``neurons``, ``goodness_elems``,
  ``out_elems``, ``in_elems``; ``params``, ``weights``, ``macs``, ``synops``, ``fan_in``, ``bias``;
* per sample: ``forward_ops`` (everything but the MACs of one forward, hand-on included),
  ``neuron_grad_ops`` (dL/d goodness input → dL/d synapse output), ``bias_grad_ops``,
  ``bp_input_grad_ops(first)`` (BP: dL/d hand-on output → dL/d synapse output, and for a non-first
  block on to dL/d its input, elementwise part) and ``bp_stored`` (elements BP keeps for the backward);
  ``update_ops`` (elementwise ops per neuron per pass that a neuromorphic neuron update replaces);
  ``trains_before_synapse`` (parameters before the weighted node learn, so even an FF unit computes
  that node's input gradient).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from ..errors import ConfigError
from ..registry import Registry
from ..spec import (
    Activation,
    Conv2d,
    Flatten,
    Linear,
    NetSpec,
    Node,
    Pool2d,
    RMSNorm,
    Unit,
)
from . import ops
from .ops import BIAS_OPS, POOLS, RELU_OPS

#: block type name (``--arch``) -> block spec class (with a ``stack`` classmethod)
BLOCK_SPECS: Registry[type] = Registry("block type (--arch)")


def conv_in_shape(name: str, in_shape: Sequence[int], kernel: int) -> tuple[int, int, int]:
    """``in_shape`` as three positive ints (C, H, W), for a conv block whose ``kernel`` must suit 'same'
    padding (odd)."""
    shape = tuple(int(s) for s in in_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ConfigError(f"{name}: in_shape must be three positive ints (C, H, W), got {in_shape}")
    if kernel < 1 or kernel % 2 == 0:
        raise ConfigError(f"kernel must be a positive odd number for 'same' padding, got {kernel}")
    return shape


class SynapseCounts:
    """What every block spec derives alike: its unit, shapes from its node chain (``nodes()``) and
    weights and operations from its weighted node (``synapse``), and (for conv-like blocks, unless a
    spec says otherwise) how a network's blocks chain. A block spec adds its nodes, its
    ``goodness_shape`` (what goodness is measured on), ``params``, ``update_ops`` and its cost rule."""

    @classmethod
    def stack(cls, image_shape: Sequence[int], widths: Sequence[int], *, kernel: int, pools: Sequence[str],
              prefix: str, trainable: Sequence[bool], num_classes: int | None = None,
              group_at: Sequence[int] | None = None) -> list:
        """Blocks fed one by another: block i has ``widths[i]`` filters and downsamples with ``pools[i]``."""
        specs, shape = [], tuple(image_shape)
        for i, (width, pool) in enumerate(zip(widths, pools, strict=True)):
            specs.append(cls(f"{prefix}{i + 1}", shape, width, kernel, pool, trainable=trainable[i]))
            shape = specs[-1].out_shape
        return specs

    def unit(self) -> Unit:
        return Unit(self.name, self.nodes(), self.trainable)

    @property
    def neuron_shape(self) -> tuple[int, ...]:
        """The weighted node's outputs (before any pooling): the unit's neurons."""
        return self.synapse.out_shape

    @property
    def out_shape(self) -> tuple[int, ...]:
        """What the block hands on: the last node's output."""
        return self.nodes()[-1].out_shape

    @property
    def in_elems(self) -> int:
        return math.prod(self.in_shape)

    @property
    def neurons(self) -> int:
        return math.prod(self.neuron_shape)

    @property
    def out_elems(self) -> int:
        """Values handed on per sample (fewer than :attr:`neurons` when pooled)."""
        return math.prod(self.out_shape)

    @property
    def goodness_elems(self) -> int:
        return math.prod(self.goodness_shape)

    @property
    def fan_in(self) -> int:
        return self.synapse.fan_in

    @property
    def weights(self) -> int:
        return self.synapse.weights

    @property
    def macs(self) -> int:
        """Dense MACs of one forward for one sample (zero padding counted; one per output position)."""
        return self.synapse.macs

    @property
    def synops(self) -> int:
        """Dense synaptic operations of one forward without the padding taps (NeuroBench's count)."""
        return self.synapse.synops


@dataclass(frozen=True)
class LayerSpec(SynapseCounts):
    """One conv block ('same'-padded conv → ReLU → optional 2×2 pool → RMS norm), the unit FF units and
    the BP twin are made of: the one description of it (``ConvBlock`` builds its torch layer from this,
    the run file's per-unit summary and every count are computed from it).

    ``in_shape`` is (C, H, W). ``pool`` is none, max or avg (a 2×2 pool after the ReLU) or stride (the
    conv itself has stride 2, so no pooled tensor exists). The layer's neurons are its conv outputs
    (``neuron_shape``, before any pooling: what goodness is measured on); ``out_shape`` is what it hands on.
    :meth:`nodes` is the block as layer-spec graph nodes.
    """

    kind: ClassVar[str] = "conv"
    trains_before_synapse: ClassVar[bool] = False   # no parameters before the conv: FF needs no dL/dx

    name: str
    in_shape: tuple[int, int, int]
    filters: int
    kernel: int
    pool: str = "none"
    trainable: bool = True
    bias: bool = True

    def __post_init__(self) -> None:
        shape = conv_in_shape(self.name, self.in_shape, self.kernel)
        if self.filters < 1:
            raise ConfigError(f"{self.name}: need filters >= 1, got {self.filters}")
        if self.pool not in POOLS:
            raise ConfigError(f"unknown pool {self.pool!r}; valid: {', '.join(POOLS)}")
        if self.pool != "none" and min(shape[1:]) < 2:
            verb = "downsample" if self.pool == "stride" else "pool"
            raise ConfigError(f"cannot {verb} a {shape[1]}×{shape[2]} map; "
                              "use fewer downsampling layers (or a larger --pool-every)")
        object.__setattr__(self, "in_shape", shape)

    @property
    def stride(self) -> int:
        """The conv's stride: 2 when it downsamples (``pool="stride"``), else 1."""
        return 2 if self.pool == "stride" else 1

    @property
    def pooled(self) -> bool:
        """Whether a separate 2×2-pooled tensor follows the neurons (max or avg pooling)."""
        return self.pool in ("max", "avg")

    @property
    def conv(self) -> Conv2d:
        """The block's convolution as a spec node: 'same' padding k // 2, stride 1 or 2."""
        return Conv2d(self.in_shape, self.filters, self.kernel, self.stride, self.kernel // 2, bias=self.bias)

    synapse = conv   # the weighted node, as every unit spec names it

    def nodes(self) -> tuple[Node, ...]:
        """conv2d → ReLU → (2×2 pool) → RMS norm, as layer-spec graph nodes."""
        conv = self.conv
        out = [conv, Activation(conv.out_shape, "relu")]
        if self.pooled:
            out.append(Pool2d(conv.out_shape, self.pool, 2, 2))
        out.append(RMSNorm(out[-1].out_shape))
        return tuple(out)

    @property
    def params(self) -> int:
        return self.conv.params

    @property
    def update_ops(self) -> int:
        """Elementwise ops per neuron per pass that a neuromorphic neuron update replaces (bias, ReLU)."""
        return (BIAS_OPS if self.bias else 0) + RELU_OPS

    # ---- the cost rule (elementwise ops per sample; the MACs are the conv node's)

    @property
    def goodness_shape(self) -> tuple[int, int, int]:
        """Goodness is measured on the ReLU output, before pooling."""
        return self.neuron_shape

    @property
    def forward_ops(self) -> int:
        """Bias and ReLU per neuron, the pool, and the RMS norm of the hand-on output."""
        return ((BIAS_OPS if self.bias else 0) + RELU_OPS) * self.neurons \
            + ops.pool_fwd_ops(self.pool, self.out_elems) + ops.rms_norm_fwd_ops(self.out_elems)

    @property
    def neuron_grad_ops(self) -> int:
        """ReLU backward: goodness is measured on the ReLU output itself."""
        return RELU_OPS * self.neurons

    @property
    def bias_grad_ops(self) -> int:
        return self.neurons if self.bias else 0

    def bp_input_grad_ops(self, first: bool) -> int:
        """RMS norm, pool and ReLU backward (the conv's dL/dx is MACs only)."""
        return ops.rms_norm_bwd_ops(self.out_elems) + ops.pool_bwd_ops(self.pool, self.neurons, self.out_elems) \
            + RELU_OPS * self.neurons

    @property
    def bp_stored(self) -> int:
        """BP keeps the ReLU output, the pooled map when pooled (the norm's backward needs it) and the output."""
        return self.neurons + (self.out_elems if self.pooled else 0) + self.out_elems


BLOCK_SPECS.register("conv")(LayerSpec)


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

    synapse = linear

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


def layer_pools(layers: int, pool: str = "none", pool_every: int = 1, pool_at=None) -> list[str]:
    """Per-layer pool: unit i (1-based) downsamples with ``pool`` iff i is in ``pool_at`` (when given),
    else iff i % ``pool_every`` == 0; the others get "none"."""
    if pool_every < 1:
        raise ValueError(f"pool_every must be >= 1, got {pool_every}")
    if pool_at is not None:
        return [pool if i + 1 in set(pool_at) else "none" for i in range(layers)]
    return [pool if (i + 1) % pool_every == 0 else "none" for i in range(layers)]


def conv_stack_specs(image_shape: Sequence[int], layers: int, filters: int, kernel: int, pool: str = "none",
                     *, prefix: str = "unit", trainable: Sequence[bool] | bool = True,
                     pool_every: int = 1) -> list[LayerSpec]:
    """``layers`` blocks, each fed the previous one's output, as ``models.conv_stack`` builds them;
    every ``pool_every``-th one downsamples with ``pool`` (see :func:`layer_pools`)."""
    flags = [trainable] * layers if isinstance(trainable, bool) else list(trainable)
    if len(flags) != layers:
        raise ValueError(f"trainable has {len(flags)} flags for {layers} layers")
    return LayerSpec.stack(image_shape, [filters] * layers, kernel=kernel, pools=layer_pools(layers, pool, pool_every),
                           prefix=prefix, trainable=flags)


def layer_widths(config) -> tuple[int, ...]:
    """Each layer's width (filters or neurons): ``config.widths`` when given, else ``filters`` for all."""
    widths = getattr(config, "widths", None)
    return tuple(widths) if widths else (config.filters,) * config.layers


def layer_specs(config, image_shape: Sequence[int], *, algo: str | None = None,
                num_classes: int | None = None) -> list:
    """The block stack a :class:`~ffneuro.config.RunConfig` builds, named and flagged as the model does:
    FF units ``unit1..`` (unit 1 frozen unless ``train_first_layer``), BP layers ``layer1..`` (all trained).
    The block type is ``config.arch`` (default conv); ``num_classes`` is needed by block types whose shape
    depends on it (cfse's class-owned channel groups)."""
    algo = algo or config.algo
    if algo not in ("ff", "bp"):
        raise ValueError(f"unknown algo {algo!r}; valid: ff, bp")
    pool_every = getattr(config, "pool_every", 1)  # configs from before pool_every downsampled every unit
    rule = BLOCK_SPECS.get(getattr(config, "arch", "conv"))
    flags = [algo == "bp" or config.train_first_layer or i > 0 for i in range(config.layers)]
    return rule.stack(image_shape, layer_widths(config), kernel=config.kernel,
                      pools=layer_pools(config.layers, config.pool, pool_every, getattr(config, "pool_at", None)),
                      prefix="unit" if algo == "ff" else "layer", trainable=flags, num_classes=num_classes,
                      group_at=getattr(config, "group_at", None))


def readout_spec(layers: Sequence, num_classes: int, readout_from: int = 1) -> LinearSpec:
    """The FF linear readout: a classifier on the hand-on outputs of layers ``readout_from``..L (1-based)."""
    if not 1 <= readout_from <= len(layers):
        raise ValueError(f"readout_from must lie in 1..{len(layers)}, got {readout_from}")
    return LinearSpec("readout", sum(s.out_elems for s in layers[readout_from - 1:]), num_classes)


def head_spec(layers: Sequence, num_classes: int) -> LinearSpec:
    """The BP head: a linear layer on the last block's hand-on output."""
    return LinearSpec("head", layers[-1].out_elems, num_classes)


def specs_from_model(model) -> list:
    """The LayerSpecs of a built FFNet (its units) or BPNet (its blocks)."""
    if hasattr(model, "layer_specs"):
        return list(model.layer_specs())
    raise TypeError(f"expected an FFNet or BPNet, got {type(model).__name__}")


def net_spec(layers: Sequence, head: LinearSpec | None = None, *, name: str = "") -> NetSpec:
    """The layer-spec graph of a block stack and an optional linear head (flattened input)."""
    units = [s.unit() for s in layers]
    if head is not None:
        pre = (Flatten(layers[-1].out_shape),) if len(layers[-1].out_shape) > 1 else ()
        units.append(Unit(head.name, (*pre, head.linear), head.trainable))
    return NetSpec(layers[0].in_shape, tuple(units), name)
