"""NIR files (the Neuromorphic Intermediate Representation) in and out of a layer-spec graph.

Needs the optional ``nir`` package (``pip install "ffneuro[nir]"``). Reading keeps shapes, layer
parameters and neuron parameters, not weight values: the profiler costs from shapes, and
:func:`read_nir` never loads a weight array (its shape is read from the HDF5 file); a simulator gets
the arrays from :func:`read_nir_parameters`. Supported: Input, Conv1d, Conv2d, Linear, Affine, Scale,
Flatten, AvgPool2d, SumPool2d, IF, LIF, CubaLIF, LI, CubaLI, I, Threshold, Delay, Identity, Output and
nested graphs (inlined, their nodes keyed ``graph.node``, as snntorch's recurrent layers are written),
in a chain, with branches that merge again (a node with several inputs sums them, as NIR defines it:
read as an ``add`` node, e.g. a residual block's skip) and with recurrence (a cycle through a neuron
or a delay, e.g. snntorch's ``RLeaky``/``RSynaptic``: the recurrent synapses read the layer's output of
the previous timestep, see :class:`~ffneuro.spec.graph.Unit`). Writing turns a :class:`NetSpec` plus
weights (e.g. a trained FFNet's) into a NIR graph, units of several weighted nodes and their wiring
included.
"""
from __future__ import annotations

import dataclasses
import heapq
import math
import os
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import ConfigError, FFNeuroError
from .graph import INPUT_ENCODINGS, NetSpec, Unit
from .nir_shapes import read_nir_shapes
from .nodes import (
    Activation,
    Add,
    Conv1d,
    Conv2d,
    Delay,
    Flatten,
    Linear,
    Neuron,
    Node,
    Pool2d,
    Scale,
    Threshold,
)

SUPPORTED = ("Input", "Conv1d", "Conv2d", "Linear", "Affine", "Scale", "Flatten", "AvgPool2d", "SumPool2d", "IF",
             "LIF", "CubaLIF", "LI", "CubaLI", "I", "Threshold", "Delay", "Identity", "Output", "NIRGraph")
NEURONS = {"IF": ("if", 1), "LIF": ("lif", 1), "CubaLIF": ("cubalif", 2), "LI": ("li", 1), "CubaLI": ("cubali", 2),
           "I": ("i", 1)}
WEIGHTED = ("Conv1d", "Conv2d", "Linear", "Affine")
STATEFUL = (*NEURONS, "Delay")      # what can carry a recurrence from one timestep to the next
_PASS = "pass"                      # a node that hands its (summed) input on: Identity, Output, a nested Input
_NOT_PARAMETERS = ("input_type", "output_type", "metadata")


def _nir():
    try:
        import nir
    except ImportError:
        raise FFNeuroError('NIR files need the nir package: pip install "ffneuro[nir]" (or pip install nir)') from None
    return nir


def _kind(node) -> str:
    return type(node).__name__


def _ints(v) -> tuple[int, ...]:
    a = np.atleast_1d(np.asarray(v)).astype(int)
    return tuple(int(x) for x in a.reshape(-1))


def _shape_of(types: Mapping[str, Any], key: str) -> tuple[int, ...] | None:
    v = types.get(key) if types else None
    if v is None:
        return None
    t = _ints(v)
    return t or None


def _same_padding(n: int, k: int, d: int) -> tuple[int, int]:
    """torch's padding='same' (stride 1): total d·(k−1), the extra one at the end."""
    total = d * (k - 1)
    return total // 2, total - total // 2


def _has_bias(node) -> bool:
    b = getattr(node, "bias", None)
    return b is not None and bool(np.any(np.asarray(b) != 0))


def _conv(node, shape: tuple[int, ...], name: str) -> Conv2d:
    w = tuple(np.shape(node.weight))
    if len(w) != 4:
        raise ConfigError(f"NIR node {name}: Conv2d weight must be (C_out, C_in/groups, kH, kW), got {w}")
    stride, dilation = _ints(node.stride), _ints(node.dilation)
    stride = stride * 2 if len(stride) == 1 else stride
    dilation = dilation * 2 if len(dilation) == 1 else dilation
    kh, kw = w[2], w[3]
    if len(shape) != 3 or shape[0] != w[1] * int(node.groups):
        raise ConfigError(f"NIR node {name}: Conv2d takes {w[1] * int(node.groups)} channels but receives {shape}")
    if isinstance(node.padding, str):
        if node.padding == "valid":
            pad = (0, 0, 0, 0)
        else:
            if stride != (1, 1):
                raise ConfigError(f"NIR node {name}: padding 'same' needs stride 1, got {stride}")
            pad = (*_same_padding(shape[1], kh, dilation[0]), *_same_padding(shape[2], kw, dilation[1]))
    else:
        p = _ints(node.padding)
        pad = p * 4 if len(p) == 1 else p
    return Conv2d(shape, int(w[0]), (kh, kw), stride, pad, dilation, int(node.groups), _has_bias(node), name=name)


def _conv1d(node, shape: tuple[int, ...], name: str) -> Conv1d:
    w = tuple(np.shape(node.weight))
    if len(w) != 3:
        raise ConfigError(f"NIR node {name}: Conv1d weight must be (C_out, C_in/groups, K), got {w}")
    groups = int(np.asarray(node.groups).reshape(-1)[0])
    if len(shape) != 2 or shape[0] != w[1] * groups:
        raise ConfigError(f"NIR node {name}: Conv1d takes {w[1] * groups} channels but receives {shape}")
    stride, dilation = _ints(node.stride)[0], _ints(node.dilation)[0]
    if isinstance(node.padding, str):
        if node.padding == "valid":
            pad = (0, 0)
        else:
            if stride != 1:
                raise ConfigError(f"NIR node {name}: padding 'same' needs stride 1, got {stride}")
            pad = _same_padding(shape[1], w[2], dilation)
    else:
        p = _ints(node.padding)
        pad = p * 2 if len(p) == 1 else p
    return Conv1d(shape, int(w[0]), int(w[2]), stride, pad, dilation, groups, _has_bias(node), name=name)


def _pool(node, shape: tuple[int, ...], name: str, kind: str) -> Pool2d:
    k, s, p = (_ints(node.kernel_size), _ints(node.stride), _ints(node.padding))
    k, s, p = (k * 2 if len(k) == 1 else k), (s * 2 if len(s) == 1 else s), (p * 2 if len(p) == 1 else p)
    if len(shape) != 3:
        raise ConfigError(f"NIR node {name}: {kind} pooling needs a (C, H, W) input, got {shape}")
    return Pool2d(shape, kind, k, s, p, name=name)


def _compact(value) -> float | np.ndarray | None:
    """A parameter as a scalar where every element is equal (keeps the spec small), else its array."""
    a = np.asarray(value, dtype=np.float64)
    if a.size == 0:
        return None
    first = a.reshape(-1)[0]
    return float(first) if bool(np.all(a == first)) else a


def _parameters(node, key: str, shape: tuple[int, ...]) -> dict[str, Any]:
    """The fields of an elementwise NIR node (a neuron's tau, r, v_threshold, ...; a scale, threshold or
    delay), each a scalar where uniform, else an array of one value per element of ``shape``."""
    out: dict[str, Any] = {}
    n = math.prod(shape)
    fields = dataclasses.fields(node) if dataclasses.is_dataclass(node) else ()
    for f in fields:
        if f.name in _NOT_PARAMETERS or getattr(node, f.name) is None:
            continue
        size = np.size(getattr(node, f.name))
        if size not in (0, 1, n):
            raise ConfigError(f"NIR node {key}: {_kind(node)} has {size} values of {f.name} for an input of "
                              f"{shape} ({n} elements)")
        v = _compact(getattr(node, f.name))
        if v is None:
            continue
        if isinstance(v, np.ndarray):
            v = v.reshape(shape)
        out[f.name] = v
    return out


def _flatten(graph, prefix: str = "") -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The nodes and edges of ``graph`` with nested graphs inlined: a nested node is keyed
    ``graph.node``, an edge into (out of) a nested graph goes to its Input (comes from its Output)."""
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    entry: dict[str, list[str]] = {}
    exits: dict[str, list[str]] = {}
    for key, node in graph.nodes.items():
        full = prefix + str(key)
        if _kind(node) == "NIRGraph":
            inner, inner_edges = _flatten(node, full + ".")
            nodes.update(inner)
            edges += inner_edges
            entry[full] = [f"{full}.{k}" for k, n in node.nodes.items() if _kind(n) == "Input"]
            exits[full] = [f"{full}.{k}" for k, n in node.nodes.items() if _kind(n) == "Output"]
        else:
            nodes[full] = node
    for src, dst in graph.edges:
        for a in exits.get(prefix + str(src), [prefix + str(src)]):
            for b in entry.get(prefix + str(dst), [prefix + str(dst)]):
                edges.append((a, b))
    return nodes, edges


def _sccs(keys: list[str], succ: Mapping[str, list[str]]) -> list[set[str]]:
    """Strongly connected components of the subgraph on ``keys`` (by mutual reachability: NIR graphs are small)."""
    inside = set(keys)
    reach = {}
    for k in keys:
        seen, todo = set(), [k]
        while todo:
            for nxt in succ[todo.pop()]:
                if nxt in inside and nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        reach[k] = seen
    out, placed = [], set()
    for k in keys:
        if k not in placed:
            comp = {k} | {m for m in reach[k] if k in reach[m]}
            placed |= comp
            out.append(comp)
    return out


def _topological(nodes: Mapping[str, Any], edges: list[tuple[str, str]], start: str,
                 passes: set[str]) -> tuple[list[str], set[tuple[str, str]]]:
    """The nodes reachable from ``start``, each after all of its inputs (ties in the file's order), and
    the recurrent edges: where a cycle leaves no node ready, one node of it runs first on the previous
    timestep's outputs of its inputs in the cycle (a weighted node where the cycle has one: an RNN's
    recurrent synapses reading the layer's last spikes). A cycle with no neuron or delay on it is an
    algebraic loop, refused as recurrent."""
    succ: dict[str, list[str]] = {name: [] for name in nodes}
    preds: dict[str, list[str]] = {name: [] for name in nodes}
    for src, dst in edges:
        for end in (src, dst):
            if end not in nodes:
                raise ConfigError(f"NIR edge {src} -> {dst} names {end}, which is not a node of the graph")
        succ[src].append(dst)
        preds[dst].append(src)
    seen, stack = {start}, [start]
    while stack:
        for nxt in succ[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    waiting = {k: sum(1 for p in preds[k] if p in seen) for k in seen}
    position = {k: i for i, k in enumerate(nodes)}   # among ready nodes, the file's order (a writer's)
    order: list[str] = []
    done: set[str] = set()
    delayed: set[tuple[str, str]] = set()
    ready = [(position[start], start)]
    while len(order) < len(seen):
        if not ready:
            key = _break_cycle(nodes, preds, succ, seen, done, position, passes)
            delayed |= {(p, key) for p in preds[key] if p in seen and p not in done}
            waiting[key] = 0
            ready.append((position[key], key))
        _, key = heapq.heappop(ready)
        order.append(key)
        done.add(key)
        for nxt in succ[key]:
            if nxt in seen and nxt not in done and (key, nxt) not in delayed:
                waiting[nxt] -= 1
                if waiting[nxt] == 0:
                    heapq.heappush(ready, (position[nxt], nxt))
    return order, delayed


def _break_cycle(nodes, preds, succ, seen, done, position, passes) -> str:
    """The node that runs first in the earliest cycle all of whose outside inputs are computed."""
    rest = sorted((k for k in seen if k not in done), key=position.__getitem__)
    for comp in _sccs(rest, succ):
        if any(p in seen and p not in done and p not in comp for k in comp for p in preds[k]):
            continue   # waits on another cycle first
        loop = sorted(comp, key=position.__getitem__)
        if not any(_kind(nodes[k]) in STATEFUL for k in loop):
            raise ConfigError(f"NIR node {loop[0]}: recurrent loop {' -> '.join([*loop, loop[0]])} has no neuron or "
                              "delay on it to hold its state from one timestep to the next (an algebraic loop); "
                              "only recurrence through a neuron or a delay is supported")
        own = [k for k in loop if k not in passes]

        def fresh(k):   # no input computed yet: it sits inside the loop, not at its entry
            return not any(p in done for p in preds[k])
        for pick in ([k for k in own if _kind(nodes[k]) in WEIGHTED and fresh(k)],
                     [k for k in own if _kind(nodes[k]) == "Delay"],
                     [k for k in own if fresh(k)], own):
            if pick:
                return pick[0]
    raise ConfigError("the NIR graph's recurrence could not be ordered")   # unreachable: some cycle is first


def _declared_input(node) -> tuple[int, ...] | None:
    return _shape_of(getattr(node, "input_type", None) or {}, "input")


def _spec_node(key: str, node, shape: tuple[int, ...]) -> tuple[Node | None, bool]:
    """The spec node of NIR node ``key`` on an input of ``shape`` (None: passes its input on), and
    whether it is weighted."""
    kind = _kind(node)
    if kind in ("Output", "Identity", "Input"):
        return None, False
    if kind == "Conv2d":
        return _conv(node, shape, key), True
    if kind == "Conv1d":
        return _conv1d(node, shape, key), True
    if kind in ("Linear", "Affine"):
        w = tuple(np.shape(node.weight))
        if len(shape) != 1:
            raise ConfigError(f"NIR node {key}: {kind} needs a flat input, got {shape} (add a Flatten node)")
        if len(w) != 2 or w[1] != shape[0]:
            raise ConfigError(f"NIR node {key}: {kind} weight {w} does not take {shape[0]} inputs")
        return Linear(shape, int(w[0]), kind == "Affine" and _has_bias(node), name=key), True
    if kind == "Flatten":
        return Flatten(shape, name=key), False
    if kind in ("AvgPool2d", "SumPool2d"):
        return _pool(node, shape, key, "avg" if kind == "AvgPool2d" else "sum"), False
    params = _parameters(node, key, shape)
    if kind == "Scale":
        return Scale(shape, name=key, parameters=params), False
    if kind == "Threshold":
        return Threshold(shape, name=key, parameters=params), False
    if kind == "Delay":
        d = params.get("delay", 0.0)
        steps = math.ceil(float(np.max(d)))
        if not np.all(np.isfinite(d)) or float(np.min(d)) < 0:
            raise ConfigError(f"NIR node {key}: Delay needs finite delays >= 0 (in timesteps), got {d}")
        return Delay(shape, steps, name=key, parameters=params), False
    model, state = NEURONS[kind]
    return Neuron(shape, model, state, name=key, parameters=params), False


def _input_encoding(node, given: str | None) -> str:
    if given is not None:
        if given not in INPUT_ENCODINGS:
            raise ConfigError(f"unknown input encoding {given!r}; valid: {', '.join(INPUT_ENCODINGS)}")
        return given
    v = (getattr(node, "metadata", None) or {}).get("input_encoding")
    v = v.decode() if isinstance(v, bytes) else v
    return v if v in INPUT_ENCODINGS else "analog"


def graph_to_spec(graph, *, name: str = "", input_encoding: str | None = None) -> NetSpec:
    """A NIR graph as a :class:`NetSpec` (shapes, layer and neuron parameters; weights are not kept).

    A node with several inputs sums them (NIR's rule): an ``add`` node is put before it. Units start
    at weighted nodes that every path passes through; a branch and its merge (a skip) and a recurrent
    loop stay inside one unit, wired as they are. ``input_encoding`` ("analog" or "spikes") says what
    the network's input carries; by default the Input node's ``metadata["input_encoding"]``, else
    analog (values, e.g. a camera frame or a current: NIR itself does not say)."""
    nodes, edges = _flatten(graph)
    for key, node in nodes.items():
        kind = _kind(node)
        if kind not in SUPPORTED:
            raise ConfigError(f"NIR node {key}: {kind} is not supported; supported: {', '.join(SUPPORTED)}")
    inputs = [str(k) for k, n in graph.nodes.items() if _kind(n) == "Input"]
    if len(inputs) != 1:
        raise ConfigError(f"the NIR graph needs exactly one Input node, found {len(inputs)}")
    start = inputs[0]
    input_shape = _shape_of(nodes[start].input_type, "input")
    if input_shape is None:
        raise ConfigError(f"NIR Input node {start} has no shape")
    passes = {k for k, n in nodes.items() if _kind(n) in ("Identity", "Output", "Input") and k != start}
    order, delayed = _topological(nodes, edges, start, passes)
    preds: dict[str, list[str]] = {k: [] for k in order}
    for src, dst in edges:
        if dst in preds and src in preds:
            preds[dst].append(src)
    # each NIR node's output as an index into the flat spec node list (-1: the network's input); a
    # recurrent input is its source's key until every node is placed
    spec_nodes: list[Node] = []
    wiring: list[list[int | str]] = []
    names: dict[int, str] = {}
    out_of: dict[str, int] = {start: -1}

    def shape_at(i: int | str) -> tuple[int, ...] | None:
        return None if isinstance(i, str) else input_shape if i < 0 else spec_nodes[i].out_shape

    for key in order[1:]:
        node = nodes[key]
        # an add is commutative: current inputs in spec order (the file's edge order is arbitrary), then
        # the recurrent ones
        sources: list[int | str] = [*sorted(out_of[p] for p in preds[key] if (p, key) not in delayed),
                                    *(p for p in preds[key] if (p, key) in delayed)]
        shape = next((s for s in map(shape_at, sources) if s is not None), None) or _declared_input(node)
        if shape is None:
            raise ConfigError(f"NIR node {key}: its recurrent input has no known shape (give the node an input type)")
        while len(sources) > 1:   # NIR sums a node's inputs: one add per extra input
            a, b = sources[0], sources[1]
            sa, sb = shape_at(a), shape_at(b)
            if sa is not None and sb is not None and sa != sb:
                raise ConfigError(f"NIR node {key} sums inputs of shapes {sa} and {sb}")
            spec_nodes.append(Add(shape))
            wiring.append([a, b])
            sources = [len(spec_nodes) - 1, *sources[2:]]
        src = sources[0]
        out, weighted = _spec_node(key, node, shape)
        if out is None:
            if isinstance(src, str):
                raise ConfigError(f"NIR node {key}: a recurrent input straight into a {_kind(node)} node "
                                  "(nothing computes it)")
            out_of[key] = src
            continue
        spec_nodes.append(out)
        wiring.append([src])
        out_of[key] = len(spec_nodes) - 1
        if weighted:
            names[len(spec_nodes) - 1] = key
    resolved: list[tuple[int, ...]] = []
    for i, ins in enumerate(wiring):
        row = []
        for j in ins:
            if isinstance(j, str):   # a recurrent input: the previous timestep's output of a node at or after i
                k = out_of[j]
                if k < i or shape_at(k) != spec_nodes[i].in_shape:
                    raise ConfigError(f"NIR node {spec_nodes[i].name or j}: its recurrent input from {j} "
                                      + (f"has shape {shape_at(k)} but it takes {spec_nodes[i].in_shape}"
                                         if k >= i else "is computed before it in the same timestep"))
                row.append(k)
            else:
                row.append(j)
        resolved.append(tuple(row))
    encoding = _input_encoding(nodes[start], input_encoding)
    return NetSpec(tuple(input_shape), _group(spec_nodes, resolved, names), name, encoding)


def _writer_prefix(key: str) -> str | None:
    """``P`` for a weighted node's key ``P.<i>``: how :func:`spec_to_graph` names the weighted nodes of a
    unit with several of them (None for any other key)."""
    head, _, tail = key.rpartition(".")
    return head if head and tail.isdigit() else None


def _group(nodes: list[Node], wiring: list[tuple[int, ...]], names: dict[int, str]) -> tuple[Unit, ...]:
    """Units of a flat node list: a new unit starts at a weighted node ``k`` that reads node ``k - 1``
    when everything from node ``k`` on reads only node ``k - 1`` or later and no node before ``k`` reads
    a later one (a recurrent input), so the unit has one input and no skip or recurrence crosses it.
    Runs of such units whose weighted nodes the writer named ``P.<i>`` are one unit ``P`` again."""
    if not any(n.weighted for n in nodes):
        raise ConfigError("the network has no conv1d, conv2d or linear node, so nothing to cost")
    earliest = [min(ins) for ins in wiring]          # the earliest node each node reads
    latest = [max(ins) for ins in wiring]            # the latest (a recurrent read reads at or after itself)
    reach = list(np.maximum.accumulate(latest)) if latest else []
    starts = [0] + [k for k in range(1, len(nodes))
                    if nodes[k].weighted and tuple(wiring[k]) == (k - 1,) and min(earliest[k:]) >= k - 1
                    and reach[k - 1] < k and any(n.weighted for n in nodes[:k])]
    bounds = [*starts, len(nodes)]
    segments = []    # (first node, end, name, writer's prefix shared by all its weighted nodes)
    for a, b in zip(bounds, bounds[1:]):
        keys = [names[k] for k in range(a, b) if k in names]
        prefixes = {_writer_prefix(k) for k in keys}
        shared = prefixes.pop() if len(prefixes) == 1 else None
        segments.append([a, b, keys[0] if keys else "", shared])
    merged = [segments[0]]
    for seg in segments[1:]:
        last = merged[-1]
        if seg[3] is not None and seg[3] == last[3]:
            last[1] = seg[1]
        else:
            merged.append(seg)
    named = [seg[3] or seg[2] for seg in merged]
    if len(set(named)) != len(named):     # a foreign graph whose keys only look like the writer's
        merged, named = segments, [seg[2] for seg in segments]
    units = []
    for (a, b, _, _), name in zip(merged, named):
        local = tuple(tuple(j - a if j >= a else -1 for j in wiring[k]) for k in range(a, b))
        units.append(Unit(name or f"layer{len(units) + 1}", tuple(nodes[a:b]), inputs=local))
    return tuple(units)


def _h5_dict(group, weights: bool) -> dict[str, Any]:
    """An HDF5 group of a NIR file as the nested dict ``nir`` builds nodes from (as ``nir.read`` does),
    except that without ``weights`` a node's weight is a zero-strided stand-in of its shape: the
    values are never read from the file."""
    import h5py

    out: dict[str, Any] = {}
    for key, item in group.items():
        if isinstance(item, h5py.Group):
            out[key] = _h5_dict(item, weights)
        elif key == "weight" and not weights and "type" in group:
            out[key] = np.broadcast_to(np.zeros((), dtype=item.dtype), item.shape)
        else:
            v = item[()]
            out[key] = v.decode("utf8") if isinstance(v, bytes) else v
    return out


def _read_graph(path: str | os.PathLike, *, weights: bool):
    """The NIR graph in ``path``, read without NIR's type check (it ignores groups); one ConfigError for
    a missing, unreadable or malformed file."""
    nir = _nir()
    try:
        with warnings.catch_warnings():  # its divide-by-zero warning would be a second line
            warnings.simplefilter("ignore", RuntimeWarning)
            if weights or not hasattr(nir, "dict2NIRNode"):
                return nir.read(str(path), type_check=False)
            import h5py
            with h5py.File(str(path), "r") as f:
                d = _h5_dict(f["node"], weights)
            d["type_check"] = False
            return nir.dict2NIRNode(d)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such NIR file") from None
    except (OSError, KeyError, ValueError, TypeError, AssertionError, RecursionError) as e:
        raise ConfigError(f"{path}: not a readable NIR file ({type(e).__name__}: {e})") from None
    except ArithmeticError as e:  # the nir package infers shapes on reading: a stride of 0 divides by zero
        raise ConfigError(f"{path}: not a readable NIR file: a shape cannot be computed (a stride, kernel "
                          f"or dilation of 0?) ({type(e).__name__}: {e})") from None


def read_nir(path: str | os.PathLike, *, input_encoding: str | None = None) -> NetSpec:
    """Read a ``.nir`` file (HDF5) into a :class:`NetSpec`, weights as shapes only (never loaded); a bad
    or unsupported file is one ConfigError. ``input_encoding``: see :func:`graph_to_spec`."""
    graph = read_nir_shapes(path)
    try:
        return graph_to_spec(graph, name=os.path.basename(str(path)), input_encoding=input_encoding)
    except ConfigError as e:  # what is wrong in the graph, and which file it is in
        raise ConfigError(f"{path}: {e}") from None


def read_nir_parameters(path: str | os.PathLike, *, weights: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """Every node's parameter arrays by NIR key (nested graphs' nodes as ``graph.node``, the key a spec
    node keeps as its ``name``): a neuron's tau, r, v_leak, v_threshold, v_reset, ...; a scale's
    factors, a threshold's thresholds, a delay's delays; with ``weights`` also each weighted node's
    ``weight`` and ``bias``. What a simulator needs beside the spec, whose JSON keeps scalars only."""
    nodes, _ = _flatten(_read_graph(path, weights=weights))
    out: dict[str, dict[str, np.ndarray]] = {}
    for key, node in nodes.items():
        kind = _kind(node)
        if kind in ("Input", "Output", "Identity", "Flatten", "AvgPool2d", "SumPool2d"):
            continue
        if kind in WEIGHTED:
            if weights:
                out[key] = {k: np.asarray(v) for k in ("weight", "bias") if (v := getattr(node, k, None)) is not None}
            continue
        out[key] = {f.name: np.asarray(getattr(node, f.name)) for f in dataclasses.fields(node)
                    if f.name not in _NOT_PARAMETERS and getattr(node, f.name) is not None}
    return out


# --------------------------------------------------------------------------------------------------
# export


def _node_to_nir(nir, node: Node, weights: Mapping[str, np.ndarray]):
    if isinstance(node, Conv2d):
        t, b, left, r = node.padding
        if (t, left) != (b, r):
            raise ConfigError("NIR Conv2d takes symmetric padding only")
        w = weights.get("weight", np.zeros((node.out_channels, node.in_shape[0] // node.groups, *node.kernel)))
        # no weights given: a bias of ones marks that the layer has one (reading keeps a nonzero bias)
        bias = weights.get("bias", np.full(node.out_channels, 1.0 if node.bias else 0.0))
        return nir.Conv2d(input_shape=node.in_shape[1:], weight=np.asarray(w, dtype=np.float32), stride=node.stride,
                          padding=(t, left), dilation=node.dilation, groups=node.groups,
                          bias=np.asarray(bias, dtype=np.float32))
    if isinstance(node, Linear):
        w = np.asarray(weights.get("weight", np.zeros((node.out_features, node.in_features))), dtype=np.float32)
        if node.bias:
            return nir.Affine(weight=w, bias=np.asarray(weights.get("bias", np.ones(node.out_features)), dtype=np.float32))
        return nir.Linear(weight=w)
    if isinstance(node, Flatten):
        return nir.Flatten(input_type={"input": np.array(node.in_shape)}, start_dim=0)
    if isinstance(node, Pool2d):
        cls = {"avg": nir.AvgPool2d, "sum": nir.SumPool2d}.get(node.pool)
        if cls is None:
            raise ConfigError("NIR has no max pooling node")
        return cls(kernel_size=np.array(node.kernel), stride=np.array(node.stride), padding=np.array(node.padding))
    if isinstance(node, Neuron):   # shapes only: unit time constants and thresholds (the spec keeps no dynamics)
        one, zero = np.ones(node.in_shape, dtype=np.float32), np.zeros(node.in_shape, dtype=np.float32)
        return {"if": lambda: nir.IF(r=one, v_threshold=one),
                "lif": lambda: nir.LIF(tau=one, r=one, v_leak=zero, v_threshold=one),
                "cubalif": lambda: nir.CubaLIF(tau_syn=one, tau_mem=one, r=one, v_leak=zero, v_threshold=one),
                "li": lambda: nir.LI(tau=one, r=one, v_leak=zero),
                "cubali": lambda: nir.CubaLI(tau_syn=one, tau_mem=one, r=one, v_leak=zero),
                "i": lambda: nir.I(r=one)}[node.model]()
    raise ConfigError(f"cannot export a {node.kind} node to NIR")


def spec_to_graph(spec: NetSpec, weights: Mapping[str, Mapping[str, np.ndarray]] | None = None,
                  neuron: Mapping[str, Any] | None = None, metadata: Mapping[str, Any] | None = None):
    """A NIR graph from ``spec``; ``weights[unit]`` holds the ``weight``/``bias`` arrays of a unit's one
    weighted node, ``weights["unit.i"]`` those of node ``i`` of a unit with several.

    ReLU activations become IF neurons (``neuron`` gives their threshold, default 1: rate-coded
    conversion of a ReLU network); RMS normalisation is left out (NIR has no such node; with IF
    neurons a per-layer scale goes into the threshold); an ``add`` node is its inputs' edges meeting at
    the next node, which NIR sums. A unit with a ``source`` reads that unit's output; the Output node
    sums every unit no later unit reads (e.g. a readout split over several units). ``metadata`` is the
    graph's (nodes get none: nir 1.0.4's node classes take no metadata)."""
    nir = _nir()
    weights = weights or {}
    th = float((neuron or {}).get("v_threshold", 1.0))
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array(spec.input_shape)})}
    edges: list[tuple[str, str]] = []
    last: list[str] = ["input"]          # what feeds the next unit: the NIR nodes whose outputs it sums
    unit_out: dict[str, list[str]] = {"input": last}
    read: set[str] = set()

    for k, u in enumerate(spec.units):
        several = len(u.synapses) > 1
        if u.source:
            last = unit_out[u.source]
            read.add(u.source)
        elif k:
            read.add(spec.units[k - 1].name)
        outs: dict[int, list[str]] = {-1: last}
        feedback: list[tuple[int, str]] = []   # (node read at the previous timestep, the node reading it)
        for i, (node, ins) in enumerate(zip(u.nodes, u.wiring)):
            sources = [k for j in ins if j < i for k in outs[j]]
            if isinstance(node, Add) or node.kind == "rms_norm":
                outs[i] = sources
                continue
            key = (f"{u.name}.{i}" if several else u.name) if node.weighted else f"{u.name}.{i}.{node.kind}"
            if isinstance(node, Activation):
                nodes[key] = nir.IF(r=np.ones(node.in_shape, dtype=np.float32),
                                    v_threshold=np.full(node.in_shape, th, dtype=np.float32))
            else:
                nodes[key] = _node_to_nir(nir, node, weights.get(key, {}) if node.weighted else {})
            edges += [(src, key) for src in sources]
            feedback += [(j, key) for j in ins if j >= i]
            outs[i] = [key]
        edges += [(src, key) for j, key in feedback for src in outs[j]]   # a recurrent edge closes a cycle
        last = unit_out[u.name] = outs[len(u.nodes) - 1]
    sinks = [src for u in spec.units if u.name not in read for src in unit_out[u.name]]
    nodes["output"] = nir.Output(output_type={"output": np.array(spec.output_shape)})
    edges += [(src, "output") for src in sinks]
    # NIR's own type inference ignores a conv's groups, so the shapes are the spec's (checked there)
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(metadata or {}), type_check=False)


#: what a reader before nir 1.0.6 (sinabs 3.1 pins nir <= 1.0.4) rejects: IF/LIF's v_reset, added in 1.0.6;
#: a zero reset is what every version assumes when it is absent
_NEW_ZERO_FIELDS = {b"IF": ("v_reset",), b"LIF": ("v_reset",), b"CubaLIF": ("v_reset",)}


def _strip_new_fields(path: str) -> None:
    """Drop attributes that older NIR readers do not take where they hold their default (zero v_reset)."""
    import h5py

    with h5py.File(path, "r+") as f:
        def visit(group) -> None:
            for key in list(group.keys()):
                item = group[key]
                if isinstance(item, h5py.Group):
                    kind = item["type"][()] if "type" in item and isinstance(item["type"], h5py.Dataset) else None
                    for name in _NEW_ZERO_FIELDS.get(kind, ()):
                        if name in item and not np.any(item[name][()]):
                            del item[name]
                    visit(item)
        visit(f["node"])


def write_nir(spec: NetSpec, path: str | os.PathLike, weights: Mapping[str, Mapping[str, np.ndarray]] | None = None,
              metadata: Mapping[str, Any] | None = None) -> None:
    """Write ``spec`` (and ``weights``) as a NIR file that nir 1.0.4 to 1.0.8 readers load (a zero
    ``v_reset``, which readers before 1.0.6 refuse, is left out: it is every version's default)."""
    _nir().write(str(path), spec_to_graph(spec, weights, metadata=metadata))
    _strip_new_fields(str(path))


__all__ = ["SUPPORTED", "Unit", "graph_to_spec", "read_nir", "read_nir_parameters", "spec_to_graph", "write_nir"]
