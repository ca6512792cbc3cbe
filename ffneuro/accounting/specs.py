"""Shapes of a network, without torch: what every count in ffneuro.accounting is computed from.

:func:`layer_specs` builds them from a :class:`~ffneuro.config.RunConfig` (so a preset can be
profiled without building or training a model); :func:`specs_from_model` reads them off a built
FFNet or BPNet.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .ops import POOLS, block_shapes, conv2d_macs, linear_macs


@dataclass(frozen=True)
class LayerSpec:
    """One conv block ('same'-padded conv → ReLU → optional 2×2 pool), as ConvBlock builds it.

    ``in_shape`` is (C, H, W). ``pool`` is none, max or avg (a 2×2 pool after the ReLU) or stride (the
    conv itself has stride 2, so no pooled tensor exists). The layer's neurons are its conv outputs
    (``neuron_shape``, before any pooling: what goodness is measured on); ``out_shape`` is what it hands on.
    """

    name: str
    in_shape: tuple[int, int, int]
    filters: int
    kernel: int
    pool: str = "none"
    trainable: bool = True
    bias: bool = True

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.in_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"{self.name}: in_shape must be three positive ints (C, H, W), got {self.in_shape}")
        if self.filters < 1 or self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(f"{self.name}: need filters >= 1 and an odd kernel, got {self.filters}, {self.kernel}")
        if self.pool not in POOLS:
            raise ValueError(f"{self.name}: unknown pool {self.pool!r}; valid: {', '.join(POOLS)}")
        if self.pool != "none" and min(shape[1:]) < 2:
            verb = "downsample" if self.pool == "stride" else "pool"
            raise ValueError(f"{self.name}: cannot {verb} a {shape[1]}×{shape[2]} map")
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
    def neuron_shape(self) -> tuple[int, int, int]:
        """Conv output shape: 'same' size at stride 1, (H - 1) // 2 + 1 at stride 2 (padding k // 2)."""
        return block_shapes(self.in_shape, self.filters, self.pool)[0]

    @property
    def out_shape(self) -> tuple[int, int, int]:
        return block_shapes(self.in_shape, self.filters, self.pool)[1]

    @property
    def in_elems(self) -> int:
        return math.prod(self.in_shape)

    @property
    def neurons(self) -> int:
        """Conv outputs per sample (pre-pool): the unit's neurons."""
        return math.prod(self.neuron_shape)

    @property
    def out_elems(self) -> int:
        """Values handed on per sample (post-pool; equal to :attr:`neurons` unless pooled)."""
        return math.prod(self.out_shape)

    @property
    def fan_in(self) -> int:
        return self.in_shape[0] * self.kernel * self.kernel

    @property
    def weights(self) -> int:
        return self.filters * self.fan_in

    @property
    def params(self) -> int:
        return self.weights + (self.filters if self.bias else 0)

    @property
    def macs(self) -> int:
        """Dense MACs of one forward for one sample (zero padding counted; one per output position)."""
        _, h, w = self.neuron_shape
        return conv2d_macs(self.in_shape[0], self.filters, self.kernel, h, w)

    @property
    def connections(self) -> int:
        """Synapses if the conv is unrolled (every neuron stores its own fan-in, padding included):
        what a neuromorphic core without weight sharing has to hold. Equals :attr:`macs`."""
        return self.macs


@dataclass(frozen=True)
class LinearSpec:
    """A fully connected layer: the FF linear readout or the BP head."""

    name: str
    in_features: int
    out_features: int
    bias: bool = True
    trainable: bool = True

    @property
    def neurons(self) -> int:
        return self.out_features

    @property
    def weights(self) -> int:
        return self.in_features * self.out_features

    @property
    def params(self) -> int:
        return self.weights + (self.out_features if self.bias else 0)

    @property
    def macs(self) -> int:
        return linear_macs(self.in_features, self.out_features)

    @property
    def connections(self) -> int:
        return self.macs


def layer_pools(layers: int, pool: str = "none", pool_every: int = 1) -> list[str]:
    """Per-layer pool: unit i (1-based) downsamples with ``pool`` iff i % ``pool_every`` == 0, else "none"."""
    if pool_every < 1:
        raise ValueError(f"pool_every must be >= 1, got {pool_every}")
    return [pool if (i + 1) % pool_every == 0 else "none" for i in range(layers)]


def conv_stack_specs(image_shape: Sequence[int], layers: int, filters: int, kernel: int, pool: str = "none",
                     *, prefix: str = "unit", trainable: Sequence[bool] | bool = True,
                     pool_every: int = 1) -> list[LayerSpec]:
    """``layers`` blocks, each fed the previous one's output, as ``models.conv_stack`` builds them;
    every ``pool_every``-th one downsamples with ``pool`` (see :func:`layer_pools`)."""
    flags = [trainable] * layers if isinstance(trainable, bool) else list(trainable)
    if len(flags) != layers:
        raise ValueError(f"trainable has {len(flags)} flags for {layers} layers")
    specs, shape = [], tuple(image_shape)
    for i, p in enumerate(layer_pools(layers, pool, pool_every)):
        specs.append(LayerSpec(f"{prefix}{i + 1}", shape, filters, kernel, p, trainable=flags[i]))
        shape = specs[-1].out_shape
    return specs


def layer_specs(config, image_shape: Sequence[int], *, algo: str | None = None) -> list[LayerSpec]:
    """The conv stack a :class:`~ffneuro.config.RunConfig` builds, named and flagged as the model does:
    FF units ``unit1..`` (unit 1 frozen unless ``train_first_layer``), BP layers ``layer1..`` (all trained)."""
    algo = algo or config.algo
    pool_every = getattr(config, "pool_every", 1)  # configs from before pool_every downsampled every unit
    if algo == "ff":
        flags = [config.train_first_layer or i > 0 for i in range(config.layers)]
        return conv_stack_specs(image_shape, config.layers, config.filters, config.kernel, config.pool,
                                prefix="unit", trainable=flags, pool_every=pool_every)
    if algo == "bp":
        return conv_stack_specs(image_shape, config.layers, config.filters, config.kernel, config.pool,
                                prefix="layer", trainable=True, pool_every=pool_every)
    raise ValueError(f"unknown algo {algo!r}; valid: ff, bp")


def readout_spec(layers: Sequence[LayerSpec], num_classes: int, readout_from: int = 1) -> LinearSpec:
    """The FF linear readout: a classifier on the hand-on outputs of layers ``readout_from``..L (1-based)."""
    if not 1 <= readout_from <= len(layers):
        raise ValueError(f"readout_from must lie in 1..{len(layers)}, got {readout_from}")
    return LinearSpec("readout", sum(s.out_elems for s in layers[readout_from - 1:]), num_classes)


def head_spec(layers: Sequence[LayerSpec], num_classes: int) -> LinearSpec:
    """The BP head: a linear layer on the last block's hand-on output."""
    return LinearSpec("head", layers[-1].out_elems, num_classes)


def specs_from_model(model) -> list[LayerSpec]:
    """The LayerSpecs of a built FFNet (its units) or BPNet (its blocks)."""
    if hasattr(model, "units"):
        return [LayerSpec(u.name, u.block.in_shape, u.block.filters, u.block.kernel, u.block.pool,
                          trainable=u.trainable, bias=u.block.conv.bias is not None) for u in model.units]
    if hasattr(model, "blocks"):
        return [LayerSpec(f"layer{i + 1}", b.in_shape, b.filters, b.kernel, b.pool, trainable=True,
                          bias=b.conv.bias is not None) for i, b in enumerate(model.blocks)]
    raise TypeError(f"expected an FFNet or BPNet, got {type(model).__name__}")
