"""The nodes of a layer-spec graph: plain, frozen, serialisable descriptions of what a layer computes.

In the spirit of NIR's node dataclasses: each node knows its input shape (per sample, no batch
dimension), infers its output shape, and counts what it costs from shapes alone. A node is a fact
about the network, not a torch module: accounting, memory and the hardware profiler compute from
nodes, the torch blocks are built from them (``ConvBlock``), and a NIR file is read into them.

Counting conventions (docs/accounting.md):

* ``macs``: dense multiply-accumulates with zero padding counted, as a dense (GPU/CPU) kernel runs
  them; equal to what ``torch.utils.flop_counter.FlopCounterMode`` counts (2 FLOPs per MAC).
* ``synops``: dense synaptic operations *without* padding: one per (output, weight) pair whose input
  lies inside the map. Padding never spikes, so an event-driven core never does these; NeuroBench's
  dense synaptic-operation count is this number.

A new node kind is a frozen dataclass registered with ``@NODES.register("kind")``; ``node_from_dict``
reads any registered kind back from ``to_dict``.

Every node may also carry a ``name`` (where it came from, e.g. its NIR key, so a simulator finds its
weights) and ``parameters`` (a neuron's tau, threshold, ...: a scalar where uniform, else an array).
Both are descriptive only: they take no part in equality, ``repr`` or costs, and ``to_dict`` writes the
scalars of ``parameters`` but leaves arrays out (``null``: read them from the NIR file).
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from ..errors import ConfigError
from ..registry import Registry

NODES: Registry[type] = Registry("spec node")

ACTIVATIONS = ("relu",)
NEURON_MODELS = ("if", "lif", "cubalif", "li", "cubali", "i")   # NIR's neuron nodes (LI/CubaLI/I do not spike)
SPIKING = ("if", "lif", "cubalif")
POOL_KINDS = ("max", "avg", "sum")


def _pair(v, what: str) -> tuple[int, int]:
    t = (int(v), int(v)) if isinstance(v, (int, float)) else tuple(int(x) for x in v)
    if len(t) != 2:
        raise ConfigError(f"{what} must be an int or a pair of ints, got {v!r}")
    return t


def _scalar(x: Any) -> bool | int | float | str | None:
    """A parameter as JSON writes it: a scalar as itself (a numpy scalar as a Python number), anything
    else (an array) as None."""
    if x is None or isinstance(x, (bool, str)):
        return x
    if isinstance(x, numbers.Integral):
        return int(x)
    if isinstance(x, numbers.Real):
        return float(x)
    return None


def _int(v, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or int(v) != v:
        raise ConfigError(f"{what} must be an int, got {v!r}")
    return int(v)


def _shape(v, what: str = "in_shape") -> tuple[int, ...]:
    t = tuple(int(x) for x in v)
    if not t or min(t) < 1:
        raise ConfigError(f"{what} must be positive ints, got {v!r}")
    return t


def _padding(v) -> tuple[int, int, int, int]:
    """Padding as (top, bottom, left, right): an int, a (rows, cols) pair, or the four sides."""
    t = (int(v),) * 4 if isinstance(v, (int, float)) else tuple(int(x) for x in v)
    if len(t) == 2:
        t = (t[0], t[0], t[1], t[1])
    if len(t) != 4 or min(t) < 0:
        raise ConfigError(f"padding must be an int >= 0, a (rows, cols) pair or (top, bottom, left, right), got {v!r}")
    return t


def out_size(n: int, kernel: int, stride: int, padding: int, dilation: int = 1, padding_end: int | None = None) -> int:
    """Output length of a conv or pool along one axis (floor mode, as torch); ``padding`` before the
    map and ``padding_end`` after it (default: the same)."""
    end = padding if padding_end is None else padding_end
    return (n + padding + end - dilation * (kernel - 1) - 1) // stride + 1


def valid_taps(n: int, kernel: int, stride: int, padding: int, dilation: int = 1,
               padding_end: int | None = None) -> int:
    """Σ over output positions of the kernel taps that land inside the input (not on padding).

    Along one axis; a 2-d conv's real synapses per (input channel, output channel) are the product of
    the two axes' counts, because a tap is inside the map iff it is inside along both axes.
    """
    total = 0
    for o in range(out_size(n, kernel, stride, padding, dilation, padding_end)):
        start = o * stride - padding
        total += sum(1 for k in range(kernel) if 0 <= start + k * dilation < n)
    return total


@dataclass(frozen=True)
class Node:
    """Base of every node: a per-sample input shape, an inferred output shape, and its costs."""

    kind: ClassVar[str] = ""
    weighted: ClassVar[bool] = False   # holds synapses (conv, linear): a unit of the profiler starts at one

    arity: ClassVar[int] = 1           # how many inputs it takes (each of in_shape)

    in_shape: tuple[int, ...]
    # descriptive only (see the module doc): not compared, not in repr, not costed
    name: str = field(default="", compare=False, repr=False, kw_only=True)
    parameters: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False, kw_only=True)

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_shape", _shape(self.in_shape))
        if not isinstance(self.parameters, Mapping):
            raise ConfigError(f"{self.kind}: parameters must be a mapping of names to values, got {self.parameters!r}")
        object.__setattr__(self, "parameters", dict(self.parameters))

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.in_shape

    @property
    def in_elems(self) -> int:
        return math.prod(self.in_shape)

    @property
    def out_elems(self) -> int:
        return math.prod(self.out_shape)

    # costs: zero unless the node has weights
    weights: ClassVar[int] = 0
    params: ClassVar[int] = 0
    macs: ClassVar[int] = 0
    synops: ClassVar[int] = 0

    # values held from one timestep to the next (neuron state, delay buffers): 0 for a stateless node
    @property
    def state_elems(self) -> int:
        return 0

    @property
    def state_updates(self) -> int:
        """State values read and written once per timestep (a delay line moves one value per element)."""
        return self.state_elems

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "name":
                if v:
                    d["name"] = v
            elif f.name == "parameters":
                if v:   # scalars kept; an array is null: it stays in the NIR file (read_nir_parameters)
                    d["parameters"] = {k: _scalar(x) for k, x in v.items()}
            else:
                d[f.name] = list(v) if isinstance(v, tuple) else (dict(v) if isinstance(v, dict) else v)
        d["out_shape"] = list(self.out_shape)
        return d


class _ConvCounts:
    """What a conv node (1-d or 2-d) counts from its ``fan_in``, ``out_channels`` and ``bias``."""

    @property
    def weights(self) -> int:
        return self.out_channels * self.fan_in

    @property
    def params(self) -> int:
        return self.weights + (self.out_channels if self.bias else 0)

    @property
    def neurons(self) -> int:
        return self.out_elems

    @property
    def macs(self) -> int:
        """Dense MACs of one forward on one sample, padding taps counted (one dot product per output)."""
        return self.out_elems * self.fan_in


@NODES.register("conv2d")
@dataclass(frozen=True)
class Conv2d(_ConvCounts, Node):
    """A 2-d convolution on a (C, H, W) input: ``out_channels`` filters of ``kernel`` (kh, kw),
    ``stride``, zero ``padding`` (top, bottom, left, right; an int or a (rows, cols) pair is symmetric,
    as torch; TensorFlow's 'same' may pad one side more), ``dilation`` and ``groups``."""

    kind: ClassVar[str] = "conv2d"
    weighted: ClassVar[bool] = True

    out_channels: int = 1
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    bias: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("kernel", "stride", "dilation"):
            object.__setattr__(self, name, _pair(getattr(self, name), name))
        object.__setattr__(self, "padding", _padding(self.padding))
        if len(self.in_shape) != 3:
            raise ConfigError(f"conv2d needs a (C, H, W) input, got {self.in_shape}")
        c = self.in_shape[0]
        if self.out_channels < 1 or self.groups < 1 or c % self.groups or self.out_channels % self.groups:
            raise ConfigError(f"conv2d: {c} input and {self.out_channels} output channels must both divide "
                              f"into {self.groups} groups")
        if min(self.kernel) < 1 or min(self.stride) < 1 or min(self.dilation) < 1:
            raise ConfigError(f"conv2d: kernel, stride and dilation must be >= 1, got "
                              f"{self.kernel}, {self.stride}, {self.dilation}")
        if min(self.out_shape[1:]) < 1:
            raise ConfigError(f"conv2d: a {self.kernel[0]}×{self.kernel[1]} kernel does not fit a "
                              f"{self.in_shape[1]}×{self.in_shape[2]} map padded by {self.padding}")

    def _axis(self, i: int) -> tuple[int, int, int, int, int, int]:
        return (self.in_shape[1 + i], self.kernel[i], self.stride[i], self.padding[2 * i], self.dilation[i],
                self.padding[2 * i + 1])

    @property
    def symmetric_padding(self) -> tuple[int, int] | None:
        """(rows, cols) when both sides of each axis are padded alike (what torch's Conv2d takes)."""
        t, b, left, r = self.padding
        return (t, left) if (t == b and left == r) else None

    @property
    def out_shape(self) -> tuple[int, int, int]:
        return (self.out_channels, out_size(*self._axis(0)), out_size(*self._axis(1)))

    @property
    def fan_in(self) -> int:
        """Weights per output neuron (input channels of its group × kernel taps)."""
        return self.in_shape[0] // self.groups * self.kernel[0] * self.kernel[1]

    @property
    def synops(self) -> int:
        """Dense synaptic operations without padding: (output, weight) pairs whose input is in the map."""
        per_channel_pair = valid_taps(*self._axis(0)) * valid_taps(*self._axis(1))
        return self.out_channels * (self.in_shape[0] // self.groups) * per_channel_pair


@NODES.register("conv1d")
@dataclass(frozen=True)
class Conv1d(_ConvCounts, Node):
    """A 1-d convolution on a (C, L) input (NIR's Conv1d): ``out_channels`` filters of ``kernel`` taps,
    ``stride``, zero ``padding`` (left, right; an int pads both alike), ``dilation`` and ``groups``. Its
    counts are those of the same convolution as a 2-d one on a (C, 1, L) map (:meth:`as_conv2d`)."""

    kind: ClassVar[str] = "conv1d"
    weighted: ClassVar[bool] = True

    out_channels: int = 1
    kernel: int = 1
    stride: int = 1
    padding: tuple[int, int] = (0, 0)
    dilation: int = 1
    groups: int = 1
    bias: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("kernel", "stride", "dilation", "out_channels", "groups"):
            object.__setattr__(self, name, _int(getattr(self, name), name))
        p = (int(self.padding),) * 2 if isinstance(self.padding, (int, float)) else tuple(int(x) for x in self.padding)
        if len(p) != 2 or min(p) < 0:
            raise ConfigError(f"conv1d: padding must be an int >= 0 or a (left, right) pair, got {self.padding!r}")
        object.__setattr__(self, "padding", p)
        if len(self.in_shape) != 2:
            raise ConfigError(f"conv1d needs a (C, L) input, got {self.in_shape}")
        c = self.in_shape[0]
        if self.out_channels < 1 or self.groups < 1 or c % self.groups or self.out_channels % self.groups:
            raise ConfigError(f"conv1d: {c} input and {self.out_channels} output channels must both divide "
                              f"into {self.groups} groups")
        if min(self.kernel, self.stride, self.dilation) < 1:
            raise ConfigError(f"conv1d: kernel, stride and dilation must be >= 1, got "
                              f"{self.kernel}, {self.stride}, {self.dilation}")
        if self.out_shape[1] < 1:
            raise ConfigError(f"conv1d: a kernel of {self.kernel} does not fit a length-{self.in_shape[1]} input "
                              f"padded by {self.padding}")

    def as_conv2d(self) -> Conv2d:
        """The same convolution on a (C, 1, L) map: what the core mapping tiles."""
        c, n = self.in_shape
        return Conv2d((c, 1, n), self.out_channels, (1, self.kernel), (1, self.stride), (0, 0, *self.padding),
                      (1, self.dilation), self.groups, self.bias)

    @property
    def out_shape(self) -> tuple[int, int]:
        return (self.out_channels, out_size(self.in_shape[1], self.kernel, self.stride, self.padding[0],
                                            self.dilation, self.padding[1]))

    @property
    def fan_in(self) -> int:
        return self.in_shape[0] // self.groups * self.kernel

    @property
    def synops(self) -> int:
        return self.out_channels * (self.in_shape[0] // self.groups) * valid_taps(
            self.in_shape[1], self.kernel, self.stride, self.padding[0], self.dilation, self.padding[1])


@NODES.register("linear")
@dataclass(frozen=True)
class Linear(Node):
    """A fully connected layer on a flat input (NIR's Linear and Affine)."""

    kind: ClassVar[str] = "linear"
    weighted: ClassVar[bool] = True

    out_features: int = 1
    bias: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.in_shape) != 1:
            raise ConfigError(f"linear needs a flat input, got {self.in_shape} (put a flatten node before it)")
        if self.out_features < 1:
            raise ConfigError(f"linear: out_features must be >= 1, got {self.out_features}")

    @property
    def in_features(self) -> int:
        return self.in_shape[0]

    @property
    def out_shape(self) -> tuple[int]:
        return (self.out_features,)

    @property
    def fan_in(self) -> int:
        return self.in_features

    @property
    def weights(self) -> int:
        return self.in_features * self.out_features

    @property
    def params(self) -> int:
        return self.weights + (self.out_features if self.bias else 0)

    @property
    def neurons(self) -> int:
        return self.out_features

    @property
    def macs(self) -> int:
        return self.weights

    @property
    def synops(self) -> int:
        return self.weights


@NODES.register("pool2d")
@dataclass(frozen=True)
class Pool2d(Node):
    """Max, average or sum pooling (NIR's AvgPool2d/SumPool2d) over ``kernel`` windows."""

    kind: ClassVar[str] = "pool2d"

    pool: str = "max"
    kernel: tuple[int, int] = (2, 2)
    stride: tuple[int, int] = (2, 2)
    padding: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("kernel", "stride", "padding"):
            object.__setattr__(self, name, _pair(getattr(self, name), name))
        if self.pool not in POOL_KINDS:
            raise ConfigError(f"unknown pool {self.pool!r}; valid: {', '.join(POOL_KINDS)}")
        if min(self.kernel) < 1 or min(self.stride) < 1 or min(self.padding) < 0:
            raise ConfigError(f"pool2d: kernel and stride must be >= 1 and padding >= 0, got "
                              f"{self.kernel}, {self.stride}, {self.padding}")
        if len(self.in_shape) != 3:
            raise ConfigError(f"pool2d needs a (C, H, W) input, got {self.in_shape}")
        if min(self.out_shape[1:]) < 1:
            raise ConfigError(f"cannot pool a {self.in_shape[1]}×{self.in_shape[2]} map with a "
                              f"{self.kernel[0]}×{self.kernel[1]} window")

    @property
    def out_shape(self) -> tuple[int, int, int]:
        c, h, w = self.in_shape
        return (c, out_size(h, self.kernel[0], self.stride[0], self.padding[0]),
                out_size(w, self.kernel[1], self.stride[1], self.padding[1]))


@NODES.register("flatten")
@dataclass(frozen=True)
class Flatten(Node):
    kind: ClassVar[str] = "flatten"

    @property
    def out_shape(self) -> tuple[int]:
        return (self.in_elems,)


@NODES.register("activation")
@dataclass(frozen=True)
class Activation(Node):
    """A stateless nonlinearity applied elementwise (ReLU)."""

    kind: ClassVar[str] = "activation"

    fn: str = "relu"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.fn not in ACTIVATIONS:
            raise ConfigError(f"unknown activation {self.fn!r}; valid: {', '.join(ACTIVATIONS)}")


@NODES.register("neuron")
@dataclass(frozen=True)
class Neuron(Node):
    """A stateful neuron per element (NIR's IF, LIF, CubaLIF, LI, CubaLI): updated every timestep;
    the spiking ones emit events, LI/CubaLI integrate without spiking (read-out layers)."""

    kind: ClassVar[str] = "neuron"

    model: str = "lif"
    state_vars: int = 1        # membrane voltage; +1 synaptic current for the Cuba models

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.model not in NEURON_MODELS:
            raise ConfigError(f"unknown neuron model {self.model!r}; valid: {', '.join(NEURON_MODELS)}")

    @property
    def spiking(self) -> bool:
        return self.model in SPIKING

    @property
    def state_elems(self) -> int:
        return self.state_vars * self.in_elems


@NODES.register("scale")
@dataclass(frozen=True)
class Scale(Node):
    """An elementwise multiply by a fixed factor per element (NIR's Scale): one op per element; its
    factors are parameters (one per element)."""

    kind: ClassVar[str] = "scale"

    @property
    def params(self) -> int:   # type: ignore[override]
        return self.in_elems


@NODES.register("threshold")
@dataclass(frozen=True)
class Threshold(Node):
    """A spike where the input exceeds a threshold (NIR's Threshold, a Heaviside step): spiking but
    stateless, one compare per element."""

    kind: ClassVar[str] = "threshold"
    spiking: ClassVar[bool] = True


@NODES.register("delay")
@dataclass(frozen=True)
class Delay(Node):
    """Its input ``steps`` timesteps later (NIR's Delay): a buffer of ``steps`` values per element, one
    value in and one out per element and timestep."""

    kind: ClassVar[str] = "delay"

    steps: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "steps", _int(self.steps, "delay steps"))
        if self.steps < 0:
            raise ConfigError(f"delay: steps must be >= 0, got {self.steps}")

    @property
    def state_elems(self) -> int:
        return self.steps * self.in_elems

    @property
    def state_updates(self) -> int:
        return self.in_elems if self.steps else 0


@NODES.register("rms_norm")
@dataclass(frozen=True)
class RMSNorm(Node):
    """y / sqrt(mean(y²)) per sample (ffneuro's hand-on normalisation between units)."""

    kind: ClassVar[str] = "rms_norm"


@NODES.register("group_norm")
@dataclass(frozen=True)
class GroupNorm(Node):
    """(x − mean) / sqrt(var + eps) per sample over each of ``groups`` equal channel groups, no γ or β
    (DeeperForward's hand-on normalisation; ``groups`` 1 is layer normalisation over (C, H, W)). Its
    statistics are the sample's own, alike in training and inference."""

    kind: ClassVar[str] = "group_norm"

    groups: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.groups < 1 or self.in_shape[0] % self.groups:
            raise ConfigError(f"group_norm: {self.in_shape[0]} channels do not split into {self.groups} equal groups")


@NODES.register("batch_norm")
@dataclass(frozen=True)
class BatchNorm(Node):
    """Batch normalisation per channel (features of a flat input): (x − mean) / sqrt(var + eps) · γ + β,
    with batch statistics in training and running ones in inference. ``params`` counts γ and β (the
    running mean and variance are state, not parameters)."""

    kind: ClassVar[str] = "batch_norm"

    affine: bool = True

    @property
    def channels(self) -> int:
        return self.in_shape[0]

    @property
    def params(self) -> int:   # type: ignore[override]
        return 2 * self.channels if self.affine else 0


@NODES.register("add")
@dataclass(frozen=True)
class Add(Node):
    """The elementwise sum of two inputs of one shape (a residual block's skip joining its main path);
    which nodes it adds is the unit's wiring (:class:`~ffneuro.spec.graph.Unit`)."""

    kind: ClassVar[str] = "add"
    arity: ClassVar[int] = 2


def node_from_dict(d: dict[str, Any]) -> Node:
    """A node from :meth:`Node.to_dict` output (``out_shape`` is recomputed and checked)."""
    d = dict(d)
    cls = NODES.get(d.pop("kind", ""))
    stored_out = d.pop("out_shape", None)
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ConfigError(f"{cls.kind}: unknown fields {sorted(unknown)}; valid: {', '.join(sorted(names))}")
    node = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
    if stored_out is not None and tuple(stored_out) != node.out_shape:
        raise ConfigError(f"{cls.kind}: stored out_shape {tuple(stored_out)} differs from the inferred {node.out_shape}")
    return node


__all__ = ["ACTIVATIONS", "NEURON_MODELS", "NODES", "POOL_KINDS", "SPIKING", "Activation", "Add", "BatchNorm", "Conv1d",
           "Conv2d", "Delay", "Flatten", "Linear", "Neuron", "Node", "Pool2d", "RMSNorm", "GroupNorm", "Scale", "Threshold",
           "node_from_dict", "out_size", "valid_taps"]
