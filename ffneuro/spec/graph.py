"""A network as a layer-spec graph: a sequence of nodes, grouped into units, serialisable to JSON.

A *unit* is one weighted node (conv2d or linear) with the nodes that follow it up to the next
weighted one (activation or neuron, pooling, flatten, normalisation): what a neuromorphic core
holds together and what the profiler maps and costs as one piece. Nodes before the first weighted
node belong to the first unit.

FFNet and BPNet produce their spec (``ffneuro.accounting.net_spec``), a NIR file is read into one
(:mod:`ffneuro.spec.nir_io`), and accounting and profiling compute from it, not from torch modules.
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from ..errors import ConfigError
from .nodes import NODES, Conv2d, Linear, Neuron, Node, Pool2d, node_from_dict


@dataclass(frozen=True)
class Unit:
    """One weighted node and the elementwise nodes around it; ``trainable`` for training workloads."""

    name: str
    nodes: tuple[Node, ...]
    trainable: bool = True

    def __post_init__(self) -> None:
        nodes = tuple(self.nodes)
        weighted = [n for n in nodes if n.weighted]
        if len(weighted) != 1:
            raise ConfigError(f"unit {self.name}: needs exactly one conv2d or linear node, got {len(weighted)}")
        for a, b in pairwise(nodes):
            if a.out_shape != b.in_shape:
                raise ConfigError(f"unit {self.name}: {a.kind} hands on {a.out_shape} but {b.kind} takes {b.in_shape}")
        object.__setattr__(self, "nodes", nodes)

    @property
    def synapse(self) -> Conv2d | Linear:
        """The unit's weighted node: the synapses a core stores and the events it processes."""
        return next(n for n in self.nodes if n.weighted)

    @property
    def neuron(self) -> Neuron | None:
        return next((n for n in self.nodes if isinstance(n, Neuron)), None)

    @property
    def spiking(self) -> bool:
        """Whether the unit's output is spike events (a spiking neuron model)."""
        return self.neuron is not None and self.neuron.spiking

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self.nodes[0].in_shape

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.nodes[-1].out_shape

    @property
    def in_elems(self) -> int:
        return math.prod(self.in_shape)

    @property
    def out_elems(self) -> int:
        return math.prod(self.out_shape)

    @property
    def synapse_in_elems(self) -> int:
        """Elements the weighted node receives (after any leading pool or flatten)."""
        return self.synapse.in_elems

    @property
    def neurons(self) -> int:
        return self.synapse.neurons

    @property
    def fan_in(self) -> int:
        return self.synapse.fan_in

    @property
    def weights(self) -> int:
        return self.synapse.weights

    @property
    def params(self) -> int:
        return self.synapse.params

    @property
    def bias(self) -> bool:
        return self.synapse.bias

    @property
    def macs(self) -> int:
        return self.synapse.macs

    @property
    def synops(self) -> int:
        return self.synapse.synops

    @property
    def pools(self) -> tuple[Pool2d, ...]:
        return tuple(n for n in self.nodes if isinstance(n, Pool2d))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "trainable": self.trainable, "nodes": [n.to_dict() for n in self.nodes]}


@dataclass(frozen=True)
class NetSpec:
    """A sequential network: ``units`` in order, each feeding the next."""

    input_shape: tuple[int, ...]
    units: tuple[Unit, ...]
    name: str = ""

    def __post_init__(self) -> None:
        units = tuple(self.units)
        if not units:
            raise ConfigError("a network spec needs at least one conv2d or linear node")
        shape = tuple(int(s) for s in self.input_shape)
        for u in units:
            if u.in_shape != shape:
                raise ConfigError(f"unit {u.name} takes {u.in_shape} but receives {shape}")
            shape = u.out_shape
        names = [u.name for u in units]
        if len(set(names)) != len(names):
            raise ConfigError(f"unit names must be unique, got {names}")
        object.__setattr__(self, "input_shape", tuple(int(s) for s in self.input_shape))
        object.__setattr__(self, "units", units)

    @property
    def nodes(self) -> tuple[Node, ...]:
        return tuple(n for u in self.units for n in u.nodes)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.units[-1].out_shape

    def unit(self, name: str) -> Unit:
        for u in self.units:
            if u.name == name:
                return u
        raise KeyError(f"no unit {name!r}; units: {', '.join(u.name for u in self.units)}")

    @property
    def macs(self) -> int:
        return sum(u.macs for u in self.units)

    @property
    def synops(self) -> int:
        return sum(u.synops for u in self.units)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "ffneuro.spec", "schema_version": 1, "name": self.name,
                "input_shape": list(self.input_shape), "units": [u.to_dict() for u in self.units]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetSpec:
        if d.get("schema") != "ffneuro.spec" or d.get("schema_version") != 1:
            raise ConfigError("not an ffneuro.spec (version 1) document")
        units = tuple(Unit(u["name"], tuple(node_from_dict(n) for n in u["nodes"]), bool(u.get("trainable", True)))
                      for u in d["units"])
        return cls(tuple(d["input_shape"]), units, d.get("name", ""))

    @classmethod
    def from_json(cls, text: str) -> NetSpec:
        return cls.from_dict(json.loads(text))


def chain(input_shape: Sequence[int], layers: Sequence[tuple[str, dict[str, Any]]]) -> list[Node]:
    """Nodes built one after another, each taking the previous one's output shape:
    ``chain((1, 28, 28), [("conv2d", {"out_channels": 8, "kernel": 3}), ("activation", {})])``."""
    shape, out = tuple(input_shape), []
    for kind, kwargs in layers:
        node = NODES.get(kind)(in_shape=shape, **kwargs)
        out.append(node)
        shape = node.out_shape
    return out


def group_units(nodes: Sequence[Node], *, prefix: str = "layer", names: Sequence[str] | None = None,
                trainable: bool = True) -> tuple[Unit, ...]:
    """Split a node sequence into units, each starting at a weighted node (see the module doc)."""
    starts = [i for i, n in enumerate(nodes) if n.weighted]
    if not starts:
        raise ConfigError("the network has no conv2d or linear node, so nothing to cost")
    bounds = [0, *starts[1:], len(nodes)]
    if names is not None and len(names) != len(starts):
        raise ConfigError(f"{len(names)} unit names for {len(starts)} units")
    return tuple(Unit(names[i] if names else f"{prefix}{i + 1}", tuple(nodes[bounds[i]:bounds[i + 1]]), trainable)
                 for i in range(len(starts)))


def sequential(input_shape: Sequence[int], layers: Sequence[tuple[str, dict[str, Any]]], *, name: str = "",
               prefix: str = "layer") -> NetSpec:
    """A :class:`NetSpec` from ``(kind, kwargs)`` pairs (see :func:`chain`)."""
    return NetSpec(tuple(input_shape), group_units(chain(input_shape, layers), prefix=prefix), name)
