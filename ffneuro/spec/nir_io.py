"""NIR files (the Neuromorphic Intermediate Representation) in and out of a layer-spec graph.

Needs the optional ``nir`` package (``pip install "ffneuro[nir]"``). Reading keeps shapes and layer
parameters, not weight values: the profiler costs from shapes. Feed-forward graphs are supported:
Input, Conv2d, Linear, Affine, Flatten, AvgPool2d, SumPool2d, IF, LIF, CubaLIF, LI, CubaLI,
Identity and Output, in a chain or with branches that merge again (a node with several inputs sums
them, as NIR defines it: read as an ``add`` node, e.g. a residual block's skip). Writing turns a
:class:`NetSpec` plus weights (e.g. a trained FFNet's) into a NIR graph, units of several weighted
nodes and their wiring included.
"""
from __future__ import annotations

import heapq
import os
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import ConfigError, FFNeuroError
from .graph import NetSpec, Unit
from .nodes import Activation, Add, Conv2d, Flatten, Linear, Neuron, Node, Pool2d

SUPPORTED = ("Input", "Conv2d", "Linear", "Affine", "Flatten", "AvgPool2d", "SumPool2d", "IF", "LIF", "CubaLIF",
             "LI", "CubaLI", "Identity", "Output")
NEURONS = {"IF": ("if", 1), "LIF": ("lif", 1), "CubaLIF": ("cubalif", 2), "LI": ("li", 1), "CubaLI": ("cubali", 2)}


def _nir():
    try:
        import nir
    except ImportError:
        raise FFNeuroError('NIR files need the nir package: pip install "ffneuro[nir]" (or pip install nir)') from None
    return nir


def _ints(v) -> tuple[int, ...]:
    a = np.atleast_1d(np.asarray(v)).astype(int)
    return tuple(int(x) for x in a.reshape(-1))


def _shape_of(types: Mapping[str, Any], key: str) -> tuple[int, ...] | None:
    v = types.get(key) if types else None
    return None if v is None else _ints(v)


def _same_padding(n: int, k: int, d: int) -> tuple[int, int]:
    """torch's padding='same' (stride 1): total d·(k−1), the extra one at the end."""
    total = d * (k - 1)
    return total // 2, total - total // 2


def _conv(node, shape: tuple[int, ...], name: str) -> Conv2d:
    w = np.asarray(node.weight)
    if w.ndim != 4:
        raise ConfigError(f"NIR node {name}: Conv2d weight must be (C_out, C_in/groups, kH, kW), got {w.shape}")
    stride, dilation = _ints(node.stride), _ints(node.dilation)
    stride = stride * 2 if len(stride) == 1 else stride
    dilation = dilation * 2 if len(dilation) == 1 else dilation
    kh, kw = w.shape[2], w.shape[3]
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
    bias = node.bias is not None and np.any(np.asarray(node.bias) != 0)
    if len(shape) != 3 or shape[0] != w.shape[1] * int(node.groups):
        raise ConfigError(f"NIR node {name}: Conv2d takes {w.shape[1] * int(node.groups)} channels but receives {shape}")
    return Conv2d(shape, int(w.shape[0]), (kh, kw), stride, pad, dilation, int(node.groups), bool(bias))


def _pool(node, shape: tuple[int, ...], name: str, kind: str) -> Pool2d:
    k, s, p = (_ints(node.kernel_size), _ints(node.stride), _ints(node.padding))
    k, s, p = (k * 2 if len(k) == 1 else k), (s * 2 if len(s) == 1 else s), (p * 2 if len(p) == 1 else p)
    if len(shape) != 3:
        raise ConfigError(f"NIR node {name}: {kind} pooling needs a (C, H, W) input, got {shape}")
    return Pool2d(shape, kind, k, s, p)


def _topological(graph, start: str) -> list[str]:
    """The nodes reachable from ``start`` with every node after all of its inputs (ties in the file's
    order); a cycle is refused as recurrence, which the feed-forward spec graph cannot hold."""
    succ: dict[str, list[str]] = {name: [] for name in graph.nodes}
    preds: dict[str, list[str]] = {name: [] for name in graph.nodes}
    for src, dst in graph.edges:
        succ.setdefault(src, []).append(dst)
        preds.setdefault(dst, []).append(src)
    seen, stack = {start}, [start]
    while stack:
        for nxt in succ[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    waiting = {k: sum(1 for p in preds[k] if p in seen) for k in seen}
    position = {k: i for i, k in enumerate(graph.nodes)}   # among ready nodes, the file's order (a writer's)
    order, ready = [], [(position[start], start)]
    while ready:
        _, key = heapq.heappop(ready)
        order.append(key)
        for nxt in succ[key]:
            waiting[nxt] -= 1
            if waiting[nxt] == 0:
                heapq.heappush(ready, (position[nxt], nxt))
    if len(order) != len(seen):
        loop = sorted(k for k in seen if k not in order)
        raise ConfigError(f"the NIR graph is recurrent (a cycle through {', '.join(loop)}); only feed-forward "
                          "graphs are supported")
    return order


def _spec_node(key: str, node, shape: tuple[int, ...]) -> tuple[Node | None, bool]:
    """The spec node of NIR node ``key`` on an input of ``shape`` (None: passes its input on), and
    whether it is weighted."""
    kind = type(node).__name__
    if kind in ("Output", "Identity"):
        return None, False
    if kind == "Conv2d":
        return _conv(node, shape, key), True
    if kind in ("Linear", "Affine"):
        w = np.asarray(node.weight)
        if len(shape) != 1:
            raise ConfigError(f"NIR node {key}: {kind} needs a flat input, got {shape} (add a Flatten node)")
        if w.ndim != 2 or w.shape[1] != shape[0]:
            raise ConfigError(f"NIR node {key}: {kind} weight {w.shape} does not take {shape[0]} inputs")
        bias = kind == "Affine" and np.any(np.asarray(node.bias) != 0)
        return Linear(shape, int(w.shape[0]), bool(bias)), True
    if kind == "Flatten":
        return Flatten(shape), False
    if kind in ("AvgPool2d", "SumPool2d"):
        return _pool(node, shape, key, "avg" if kind == "AvgPool2d" else "sum"), False
    model, state = NEURONS[kind]
    return Neuron(shape, model, state), False


def graph_to_spec(graph, *, name: str = "") -> NetSpec:
    """A feed-forward NIR graph as a :class:`NetSpec` (shapes and layer parameters; weights are not kept).

    A node with several inputs sums them (NIR's rule): an ``add`` node is put before it. Units start
    at weighted nodes that every path passes through; a branch and its merge (a skip) stay inside one
    unit, wired as they are."""
    nir = _nir()
    nodes = graph.nodes
    for key, node in nodes.items():
        kind = type(node).__name__
        if kind not in SUPPORTED:
            raise ConfigError(f"NIR node {key}: {kind} is not supported; supported: {', '.join(SUPPORTED)}")
    inputs = [k for k, n in nodes.items() if isinstance(n, nir.Input)]
    if len(inputs) != 1:
        raise ConfigError(f"the NIR graph needs exactly one Input node, found {len(inputs)}")
    input_shape = _shape_of(nodes[inputs[0]].input_type, "input")
    if input_shape is None:
        raise ConfigError(f"NIR Input node {inputs[0]} has no shape")
    order = _topological(graph, inputs[0])
    preds: dict[str, list[str]] = {k: [] for k in order}
    for src, dst in graph.edges:
        if dst in preds and src in preds:
            preds[dst].append(src)
    # each NIR node's output as an index into the flat spec node list (-1: the network's input)
    spec_nodes: list[Node] = []
    wiring: list[tuple[int, ...]] = []
    names: dict[int, str] = {}
    out_of: dict[str, int] = {inputs[0]: -1}

    def shape_at(i: int) -> tuple[int, ...]:
        return input_shape if i < 0 else spec_nodes[i].out_shape

    for key in order[1:]:
        sources = [out_of[p] for p in preds[key]]
        while len(sources) > 1:   # NIR sums a node's inputs: one add per extra input
            a, b = sources[0], sources[1]
            if shape_at(a) != shape_at(b):
                raise ConfigError(f"NIR node {key} sums inputs of shapes {shape_at(a)} and {shape_at(b)}")
            spec_nodes.append(Add(shape_at(a)))
            wiring.append((a, b))
            sources = [len(spec_nodes) - 1, *sources[2:]]
        src = sources[0]
        out, weighted = _spec_node(key, nodes[key], shape_at(src))
        if out is None:
            out_of[key] = src
            continue
        spec_nodes.append(out)
        wiring.append((src,))
        out_of[key] = len(spec_nodes) - 1
        if weighted:
            names[len(spec_nodes) - 1] = key
    return NetSpec(tuple(input_shape), _group(spec_nodes, wiring, names), name)


def _writer_prefix(key: str) -> str | None:
    """``P`` for a weighted node's key ``P.<i>``: how :func:`spec_to_graph` names the weighted nodes of a
    unit with several of them (None for any other key)."""
    head, _, tail = key.rpartition(".")
    return head if head and tail.isdigit() else None


def _group(nodes: list[Node], wiring: list[tuple[int, ...]], names: dict[int, str]) -> tuple[Unit, ...]:
    """Units of a flat node list: a new unit starts at a weighted node ``k`` when everything from node
    ``k`` on reads only node ``k - 1`` or later (so the unit has one input, and no skip crosses it). Runs
    of such units whose weighted nodes the writer named ``P.<i>`` are one unit ``P`` again."""
    if not any(n.weighted for n in nodes):
        raise ConfigError("the network has no conv2d or linear node, so nothing to cost")
    earliest = [min(ins) for ins in wiring]          # the earliest node each node reads
    starts = [0] + [k for k in range(1, len(nodes))
                    if nodes[k].weighted and min(earliest[k:]) >= k - 1 and any(n.weighted for n in nodes[:k])]
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


def read_nir(path: str | os.PathLike) -> NetSpec:
    """Read a ``.nir`` file (HDF5) into a :class:`NetSpec`; a bad or unsupported file is one ConfigError."""
    nir = _nir()
    try:
        with warnings.catch_warnings():  # its divide-by-zero warning would be a second line
            warnings.simplefilter("ignore", RuntimeWarning)
            graph = nir.read(str(path), type_check=False)   # shapes are checked as the spec is built (NIR ignores groups)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such NIR file") from None
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise ConfigError(f"{path}: not a readable NIR file ({type(e).__name__}: {e})") from None
    except ArithmeticError as e:  # the nir package infers shapes on reading: a stride of 0 divides by zero
        raise ConfigError(f"{path}: not a readable NIR file: a shape cannot be computed (a stride, kernel "
                          f"or dilation of 0?) ({type(e).__name__}: {e})") from None
    try:
        return graph_to_spec(graph, name=os.path.basename(str(path)))
    except ConfigError as e:  # what is wrong in the graph, and which file it is in
        raise ConfigError(f"{path}: {e}") from None


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
                "cubali": lambda: nir.CubaLI(tau_syn=one, tau_mem=one, r=one, v_leak=zero)}[node.model]()
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
        for i, (node, ins) in enumerate(zip(u.nodes, u.wiring)):
            sources = [k for j in ins for k in outs[j]]
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
            outs[i] = [key]
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


__all__ = ["SUPPORTED", "Unit", "graph_to_spec", "read_nir", "spec_to_graph", "write_nir"]
