"""A network as a layer-spec graph: a sequence of nodes, grouped into units, serialisable to JSON.

A *unit* is what learns as one piece: one or more weighted nodes (conv2d, conv1d or linear) with the
nodes around them (activation or neuron, pooling, flatten, normalisation, a residual add), in order,
wired as a chain unless it says otherwise. A unit may be recurrent: a node that reads a node at or after
its own position reads that node's output of the previous timestep (e.g. an RNN's recurrent synapses
reading the layer's spikes of the last step), so its synapses run every timestep like the others. The
profiler maps every weighted node of a unit onto cores of its own and costs the unit as one piece.
:func:`group_units` splits a chain into units of one weighted node each (nodes before the first
weighted node belong to the first unit); a graph read from a NIR file keeps a skip or a recurrent loop
inside one unit (:mod:`ffneuro.spec.nir_io`).

FFNet and BPNet produce their spec (``ffneuro.accounting.net_spec``), a NIR file is read into one
(:mod:`ffneuro.spec.nir_io`), and accounting and profiling compute from it, not from torch modules.
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .nodes import NODES, Conv1d, Conv2d, Linear, Neuron, Node, Pool2d, Threshold, node_from_dict

INPUT_ENCODINGS = ("analog", "spikes")   # what the network's input carries (NetSpec.input_encoding)


@dataclass(frozen=True)
class Unit:
    """One or more weighted nodes and the elementwise nodes around them; ``trainable`` for training
    workloads. Nodes run in order; ``inputs`` wires them where that is not a plain chain: one tuple per
    node of the indices of the nodes it reads (``-1``: the unit's input), e.g. a residual block's skip
    into an :class:`~.nodes.Add`. Empty ``inputs`` means each node reads the one before it.

    An index ``j >= i`` in node ``i``'s inputs (the node itself or a later one) reads node ``j``'s output
    of the *previous* timestep (zeros at the first): a recurrent connection. A simulator keeps those
    outputs from one timestep to the next; their weighted nodes are the unit's :attr:`recurrent` ones."""

    name: str
    nodes: tuple[Node, ...]
    trainable: bool = True
    source: str = ""     # the unit whose output this one takes ("" the previous unit, "input" the network's input)
    inputs: tuple[tuple[int, ...], ...] = ()

    def __post_init__(self) -> None:
        nodes = tuple(self.nodes)
        if not any(n.weighted for n in nodes):
            raise ConfigError(f"unit {self.name}: needs at least one conv2d, conv1d or linear node")
        wiring = tuple(tuple(int(i) for i in ins) for ins in self.inputs) if self.inputs else \
            tuple((i - 1,) for i in range(len(nodes)))
        if len(wiring) != len(nodes):
            raise ConfigError(f"unit {self.name}: {len(wiring)} input lists for {len(nodes)} nodes")
        readers = [i for i, ins in enumerate(wiring) if -1 in ins]
        if not readers:
            raise ConfigError(f"unit {self.name}: no node reads the unit's input (-1)")
        unit_in = nodes[readers[0]].in_shape
        for i, (node, ins) in enumerate(zip(nodes, wiring)):
            if len(ins) != node.arity:
                raise ConfigError(f"unit {self.name}: node {i} ({node.kind}) takes {node.arity} input(s), wired to {len(ins)}")
            for j in ins:
                if not -1 <= j < len(nodes):
                    raise ConfigError(f"unit {self.name}: node {i} ({node.kind}) reads node {j}, which the unit "
                                      f"does not have (it has {len(nodes)})")
                got = nodes[j].out_shape if j >= 0 else unit_in
                if got != node.in_shape:
                    what = (f"{nodes[j].kind} (node {j}) hands on" + (" (previous timestep)" if j >= i else "")) \
                        if j >= 0 else "the unit's input is"
                    raise ConfigError(f"unit {self.name}: {what} {got} but {node.kind} (node {i}) takes {node.in_shape}")
        object.__setattr__(self, "nodes", nodes)
        chained = wiring == tuple((i - 1,) for i in range(len(nodes)))
        object.__setattr__(self, "inputs", () if chained else wiring)

    @property
    def wiring(self) -> tuple[tuple[int, ...], ...]:
        """Each node's inputs (indices; -1 the unit's input), the chain spelled out where ``inputs`` is empty."""
        return self.inputs or tuple((i - 1,) for i in range(len(self.nodes)))

    @property
    def feedback(self) -> tuple[tuple[int, int], ...]:
        """The recurrent connections as (reader, node read at the previous timestep) index pairs."""
        return tuple((i, j) for i, ins in enumerate(self.wiring) for j in ins if j >= i)

    @property
    def recurrent(self) -> tuple[Node, ...]:
        """The weighted nodes that read a previous timestep's output (an RNN's recurrent synapses): they
        add into the neurons the other weighted nodes drive, every timestep."""
        return tuple(self.nodes[i] for i, j in self.feedback if self.nodes[i].weighted)

    def upstream(self, i: int) -> set[int]:
        """Indices of every node whose output of the same timestep node ``i`` depends on (not ``i`` itself;
        recurrent reads of the previous timestep are not followed)."""
        seen: set[int] = set()
        todo = [j for j in self.wiring[i] if 0 <= j < i]
        while todo:
            j = todo.pop()
            if j not in seen:
                seen.add(j)
                todo += [k for k in self.wiring[j] if 0 <= k < j]
        return seen

    @property
    def synapses(self) -> tuple[Conv2d | Conv1d | Linear, ...]:
        """The unit's weighted nodes, in order: the synapses its cores store and the events they process."""
        return tuple(n for n in self.nodes if n.weighted)

    def _after_first_weighted(self) -> tuple[Node, ...]:
        first = next(i for i, n in enumerate(self.nodes) if n.weighted)
        return self.nodes[first:]

    @property
    def neuron(self) -> Neuron | None:
        """The unit's neuron layer: the first neuron after its first weighted node (one before it, e.g.
        a graph whose input drives neurons directly, only where there is none after)."""
        return next((n for n in self._after_first_weighted() if isinstance(n, Neuron)), None) or \
            next((n for n in self.nodes if isinstance(n, Neuron)), None)

    @property
    def spiking(self) -> bool:
        """Whether the unit's output is spike events (a spiking neuron model, or a threshold node)."""
        return (self.neuron is not None and self.neuron.spiking) or \
            any(isinstance(n, Threshold) for n in self._after_first_weighted())

    @property
    def in_shape(self) -> tuple[int, ...]:
        """The shape the unit reads: that of its nodes wired to the unit's input."""
        return next(n.in_shape for n, ins in zip(self.nodes, self.wiring) if -1 in ins)

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
    def neurons(self) -> int:
        """Outputs of every weighted node (a block with two convs has both maps' neurons), except the
        recurrent ones, which add into neurons the others already drive."""
        rec = {i for i, _ in self.feedback}
        return sum(n.neurons for i, n in enumerate(self.nodes) if n.weighted and i not in rec)

    @property
    def state_elems(self) -> int:
        """Values the unit holds from one timestep to the next: neuron state, delay buffers, and the
        outputs its recurrent connections read at the next timestep."""
        held = {j for _, j in self.feedback}
        return sum(n.state_elems for n in self.nodes) + sum(self.nodes[j].out_elems for j in held)

    @property
    def recurrent_macs(self) -> int:
        """Of :attr:`macs`: those of the recurrent synapses (driven by the unit's own previous output)."""
        return sum(n.macs for n in self.recurrent)

    @property
    def recurrent_synops(self) -> int:
        return sum(n.synops for n in self.recurrent)

    @property
    def weights(self) -> int:
        return sum(n.weights for n in self.synapses)

    @property
    def params(self) -> int:
        """Weights, biases and the affine parameters of batch norms."""
        return sum(n.params for n in self.nodes)

    @property
    def bias(self) -> bool:
        return any(n.bias for n in self.synapses)

    @property
    def macs(self) -> int:
        return sum(n.macs for n in self.synapses)

    @property
    def synops(self) -> int:
        return sum(n.synops for n in self.synapses)

    @property
    def pools(self) -> tuple[Pool2d, ...]:
        return tuple(n for n in self.nodes if isinstance(n, Pool2d))

    def to_dict(self) -> dict[str, Any]:
        d = {"name": self.name, "trainable": self.trainable, "nodes": [n.to_dict() for n in self.nodes]}
        if self.source:
            d["source"] = self.source
        if self.inputs:
            d["inputs"] = [list(ins) for ins in self.inputs]
        return d


@dataclass(frozen=True)
class NetSpec:
    """A network: ``units`` in order, each fed by the one before it or, where a unit names its
    ``source``, by that earlier unit (branches and skip connections; their merge is not costed).

    ``input_encoding`` says what the network's input carries: ``"analog"`` values (images, currents: a
    dense input, the default) or ``"spikes"`` (events, e.g. a DVS stream), so the profiler charges the
    first layer's input as it arrives."""

    input_shape: tuple[int, ...]
    units: tuple[Unit, ...]
    name: str = ""
    input_encoding: str = "analog"

    def __post_init__(self) -> None:
        units = tuple(self.units)
        if not units:
            raise ConfigError("a network spec needs at least one conv2d or linear node")
        if self.input_encoding not in INPUT_ENCODINGS:
            raise ConfigError(f"unknown input encoding {self.input_encoding!r}; valid: {', '.join(INPUT_ENCODINGS)}")
        shape = tuple(int(s) for s in self.input_shape)
        outputs = {"input": shape}
        for u in units:
            if u.source and u.source not in outputs:
                raise ConfigError(f"unit {u.name}: source {u.source!r} is not an earlier unit")
            got = outputs[u.source] if u.source else shape
            if u.in_shape != got:
                raise ConfigError(f"unit {u.name} takes {u.in_shape} but receives {got}")
            shape = outputs[u.name] = u.out_shape
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

    def feeder(self, unit: Unit) -> Unit | None:
        """The unit whose output ``unit`` takes (None: the network's input)."""
        if unit.source == "input":
            return None
        if unit.source:
            return self.unit(unit.source)
        i = self.units.index(unit)
        return self.units[i - 1] if i else None

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
                "input_shape": list(self.input_shape), "input_encoding": self.input_encoding,
                "units": [u.to_dict() for u in self.units]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetSpec:
        if d.get("schema") != "ffneuro.spec" or d.get("schema_version") != 1:
            raise ConfigError("not an ffneuro.spec (version 1) document")
        units = tuple(Unit(u["name"], tuple(node_from_dict(n) for n in u["nodes"]), bool(u.get("trainable", True)),
                           u.get("source", ""), tuple(tuple(i) for i in u.get("inputs", ()))) for u in d["units"])
        return cls(tuple(d["input_shape"]), units, d.get("name", ""), d.get("input_encoding", "analog"))

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
