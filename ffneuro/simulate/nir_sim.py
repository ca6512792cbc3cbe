"""Run a NIR graph with its own neuron dynamics, as NIR defines them, and measure each node's activity.

NIR's neurons are continuous-time; here they are stepped with forward Euler at ``dt`` (default 1e-4 s,
the step snntorch's exporter assumes when it writes tau = dt / (1 - beta)):

* LIF:     v += dt/tau · ((v_leak - v) + r·I); a spike when v > v_threshold, then v = v_reset
* CubaLIF: I_syn += dt/tau_syn · (-I_syn + w_in·I); v += dt/tau_mem · ((v_leak - v) + r·I_syn); as LIF
* IF:      v += dt · r·I; a spike when v > v_threshold, then v = v_reset
* LI:      v += dt/tau · ((v_leak - v) + r·I), output v (no spikes)
* I:       v += dt · r·I, output v

Weighted and stateless nodes (Affine, Linear, Conv1d/2d, Flatten, SumPool2d, AvgPool2d, Scale,
Threshold, Delay) act on each timestep's tensor. A node fed by several edges receives their sum; an edge
that closes a cycle (recurrence) delivers the previous timestep's output. Without ``input``, the graph is
fed Poisson spikes (each input element spikes with probability ``input_rate`` per timestep) or, with
``analog``, uniform values in [0, 1) that stay constant over the T timesteps.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F

from ..errors import ConfigError, DataError
from ..profiler.hardware import HardwareProfile

DEFAULT_DT = 1e-4
SPIKING = ("LIF", "CubaLIF", "IF", "Threshold")


def _t(value, dtype=torch.float32) -> torch.Tensor:
    return torch.as_tensor(np.asarray(value), dtype=dtype)


def _pair(v) -> tuple[int, ...]:
    a = np.atleast_1d(np.asarray(v)).astype(int).tolist()
    return tuple(a)


def _padding(v, ndim: int):
    if isinstance(v, str):
        return v
    p = _pair(v)
    return p[0] if len(p) == 1 else tuple(p[:ndim])


class _Node:
    """One NIR node stepped in time: ``step(x)`` returns its output for this timestep."""

    def __init__(self, name: str, node, dt: float):
        self.name, self.node, self.dt = name, node, dt
        self.kind = type(node).__name__
        self.state: dict[str, torch.Tensor] = {}
        self.queue: list[torch.Tensor] = []

    def reset(self) -> None:
        self.state, self.queue = {}, []

    def _v(self, key: str, like: torch.Tensor) -> torch.Tensor:
        if key not in self.state or self.state[key].shape != like.shape:
            self.state[key] = torch.zeros_like(like)
        return self.state[key]

    def step(self, x: torch.Tensor) -> torch.Tensor:   # noqa: C901 (one branch per NIR node type)
        n, k, dt = self.node, self.kind, self.dt
        if k in ("Input", "Output", "Identity"):
            return x
        if k == "Affine":
            return F.linear(x, _t(n.weight), _t(n.bias))
        if k == "Linear":
            return F.linear(x, _t(n.weight))
        if k in ("Conv2d", "Conv1d"):
            nd = 2 if k == "Conv2d" else 1
            conv = F.conv2d if nd == 2 else F.conv1d
            bias = getattr(n, "bias", None)
            b = None if bias is None or np.ndim(bias) == 0 and float(bias) == 0 else _t(bias).reshape(-1)
            if b is not None and b.numel() == 1 and _t(n.weight).shape[0] != 1:
                b = b.expand(_t(n.weight).shape[0]).clone()
            return conv(x, _t(n.weight), b, stride=_pair(n.stride), padding=_padding(n.padding, nd),
                        dilation=_pair(n.dilation), groups=int(n.groups))
        if k == "Flatten":
            start = int(getattr(n, "start_dim", 1))
            end = int(getattr(n, "end_dim", -1))
            start = start + 1 if start >= 0 else start      # NIR counts dimensions without the batch
            end = end + 1 if end >= 0 else end
            return x.flatten(max(start, 1), end)
        if k in ("SumPool2d", "AvgPool2d"):
            kernel, stride = _pair(n.kernel_size), _pair(n.stride)
            out = F.avg_pool2d(x, kernel, stride, _padding(n.padding, 2))
            return out * float(np.prod(kernel)) if k == "SumPool2d" else out
        if k == "Scale":
            return x * _t(n.scale)
        if k == "Threshold":
            return (x > _t(n.threshold)).to(x.dtype)
        if k == "Delay":
            steps = int(np.max(np.round(np.asarray(n.delay) / dt)))
            self.queue.append(x)
            return self.queue.pop(0) if len(self.queue) > steps else torch.zeros_like(x)
        if k in ("LIF", "LI"):
            v = self._v("v", x)
            v = v + dt / _t(n.tau) * ((_t(n.v_leak) - v) + _t(n.r) * x)
            return self._fire(v) if k == "LIF" else self._keep(v)
        if k == "CubaLIF":
            i = self._v("i", x)
            w_in = _t(getattr(n, "w_in", 1.0))
            i = i + dt / _t(n.tau_syn) * (-i + w_in * x)
            self.state["i"] = i
            v = self._v("v", x)
            v = v + dt / _t(n.tau_mem) * ((_t(n.v_leak) - v) + _t(n.r) * i)
            return self._fire(v)
        if k in ("IF", "I"):
            v = self._v("v", x) + dt * _t(n.r) * x
            return self._fire(v) if k == "IF" else self._keep(v)
        raise ConfigError(f"node {self.name!r}: simulate cannot run a NIR {k} node")

    def _keep(self, v: torch.Tensor) -> torch.Tensor:
        self.state["v"] = v
        return v

    def _fire(self, v: torch.Tensor) -> torch.Tensor:
        spikes = (v > _t(self.node.v_threshold)).to(v.dtype)
        reset = getattr(self.node, "v_reset", None)
        reset = torch.zeros_like(v) if reset is None else _t(reset).expand_as(v)
        self.state["v"] = torch.where(spikes > 0, reset, v)
        return spikes


def _order(nodes: dict, edges: list[tuple[str, str]]) -> tuple[list[str], set[tuple[str, str]]]:
    """Nodes in an order where every edge but the cycle-closing (recurrent) ones goes forward, and those edges."""
    succ: dict[str, list[str]] = {k: [] for k in nodes}
    for a, b in edges:
        succ[a].append(b)
    starts = [k for k in nodes if type(nodes[k]).__name__ == "Input"] or list(nodes)[:1]
    order, state, back = [], {}, set()

    def visit(u: str) -> None:
        state[u] = 1
        for w in succ[u]:
            if state.get(w) == 1:
                back.add((u, w))
            elif w not in state:
                visit(w)
        state[u] = 2
        order.append(u)

    for s in starts + list(nodes):
        if s not in state:
            visit(s)
    return order[::-1], back


@dataclass
class NIRSimulation:
    """Per node (in execution order, the input first): its NIR type, events (nonzero outputs) per element
    per timestep, and elements; the output node's per-sample spike counts (or summed values)."""

    target: str
    timesteps: int
    samples: int
    input_kind: str
    layer_names: list[str]
    kinds: list[str]
    activity: list[float]
    neurons: list[int]
    output_counts: np.ndarray
    dt: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"target": self.target, "timesteps": self.timesteps, "samples": self.samples, "dt": self.dt,
                "input": self.input_kind,
                "layers": [{"name": n, "type": k, "activity": a, "neurons": m}
                           for n, k, a, m in zip(self.layer_names, self.kinds, self.activity, self.neurons)],
                "output_counts": self.output_counts.tolist(), "notes": self.notes}


@torch.no_grad()
def run_graph(graph, inputs: torch.Tensor, dt: float = DEFAULT_DT) -> tuple[dict[str, list[torch.Tensor]], list[str]]:
    """``inputs`` (samples, T, *shape) through ``graph`` (a ``nir.NIRGraph``): every node's output at every
    timestep, and the execution order."""
    nodes = dict(graph.nodes)
    edges = [tuple(e) for e in graph.edges]
    for a, b in edges:
        if a not in nodes or b not in nodes:
            raise ConfigError(f"edge {a} -> {b} names a node the graph does not have")
        if type(nodes[a]).__name__ == "NIRGraph" or type(nodes[b]).__name__ == "NIRGraph":
            raise ConfigError("nested NIR graphs are not simulated; flatten the graph first")
    order, back = _order(nodes, edges)
    preds: dict[str, list[str]] = {k: [] for k in nodes}
    for a, b in edges:
        preds[b].append(a)
    runners = {k: _Node(k, nodes[k], dt) for k in nodes}
    outs: dict[str, list[torch.Tensor]] = {k: [] for k in nodes}
    prev: dict[str, torch.Tensor] = {}
    inputs_names = [k for k in order if runners[k].kind == "Input"]
    if len(inputs_names) != 1:
        raise ConfigError(f"the graph has {len(inputs_names)} Input nodes; simulate feeds exactly one")
    for t in range(inputs.shape[1]):
        cur: dict[str, torch.Tensor] = {}
        for k in order:
            if runners[k].kind == "Input":
                x = inputs[:, t]
            else:
                parts = [prev.get(a) if (a, k) in back else cur.get(a) for a in preds[k]]
                parts = [p for p in parts if p is not None]
                if not parts:
                    continue      # only recurrent inputs, at the first timestep: nothing arrives yet
                x = parts[0] if len(parts) == 1 else sum(parts[1:], parts[0])
            cur[k] = runners[k].step(x)
            outs[k].append(cur[k])
        prev = cur
    return outs, order


def default_input(shape: tuple[int, ...], samples: int, timesteps: int, rate: float, analog: bool,
                  seed: int) -> torch.Tensor:
    """Poisson spikes (probability ``rate`` per element per timestep) or constant uniform values in [0, 1)."""
    g = torch.Generator().manual_seed(seed)
    if analog:
        x = torch.rand((samples, 1, *shape), generator=g)
        return x.expand(samples, timesteps, *shape).contiguous()
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"--input-rate must lie in [0, 1], got {rate}")
    return (torch.rand((samples, timesteps, *shape), generator=g) < rate).float()


def _input_shape(graph) -> tuple[int, ...]:
    for node in graph.nodes.values():
        if type(node).__name__ == "Input":
            shape = node.input_type.get("input") if isinstance(node.input_type, dict) else None
            if shape is None:
                shape = next(iter(node.input_type.values()))
            return tuple(int(s) for s in np.asarray(shape).reshape(-1))
    raise ConfigError("the graph has no Input node")


def simulate_graph(graph, hw: HardwareProfile | None, *, timesteps: int = 32, samples: int = 8,
                   inputs: torch.Tensor | None = None, input_rate: float = 0.1, analog: bool = False,
                   seed: int = 0, dt: float = DEFAULT_DT) -> NIRSimulation:
    """Run ``graph`` on ``inputs`` (samples, T, *shape) or the default input, and measure activity per node."""
    if timesteps < 1:
        raise ConfigError(f"timesteps must be >= 1, got {timesteps}")
    if not dt > 0:
        raise ConfigError(f"dt must be > 0, got {dt}")
    shape = _input_shape(graph)
    if inputs is None:
        inputs = default_input(shape, samples, timesteps, input_rate, analog, seed)
        kind = f"uniform analog values in [0, 1), seed {seed}" if analog else \
            f"Poisson spikes at {input_rate:g} per element per timestep, seed {seed}"
    else:
        if tuple(inputs.shape[2:]) != shape:
            # a flat input for a flat graph input, or the reverse, is fine when the sizes agree
            if int(np.prod(inputs.shape[2:])) != int(np.prod(shape)):
                raise DataError(f"input arrays are {tuple(inputs.shape[2:])} per timestep; the graph takes {shape}")
            inputs = inputs.reshape(*inputs.shape[:2], *shape)
        kind = "given"
    outs, order = run_graph(graph, inputs.float(), dt)
    names, kinds, activity, neurons = [], [], [], []
    for k in order:
        if not outs[k]:
            continue
        stacked = torch.stack(outs[k], 1)          # (samples, T', ...)
        per = int(np.prod(stacked.shape[2:]))
        names.append("input" if type(graph.nodes[k]).__name__ == "Input" else k)
        kinds.append(type(graph.nodes[k]).__name__)
        activity.append(float(torch.count_nonzero(stacked)) / max(1, stacked.numel()))
        neurons.append(per)
    out_name = next((k for k in order if type(graph.nodes[k]).__name__ == "Output"), order[-1])
    counts = torch.stack(outs[out_name], 1).sum(1).flatten(1).numpy() if outs[out_name] else np.zeros((0,))
    notes = [f"forward Euler at dt = {dt:g} s; activity: nonzero outputs per element per timestep"]
    if hw is not None:
        notes.append(f"{hw.name}: NIR graphs run with their own dynamics and float weights; "
                     "the target's formats apply to run files only")
    return NIRSimulation(hw.name if hw is not None else "", int(inputs.shape[1]), int(inputs.shape[0]), kind,
                         names, kinds, activity, neurons, counts, dt, notes)


def simulate_nir_file(path: str | os.PathLike, hw: HardwareProfile | None, *, timesteps: int = 32, samples: int = 8,
                      input_npz: str | os.PathLike | None = None, input_rate: float = 0.1, analog: bool = False,
                      seed: int = 0, dt: float = DEFAULT_DT) -> NIRSimulation:
    """Read ``path`` with ``nir.read`` and :func:`simulate_graph` it; ``input_npz``: array ``input`` of shape
    (samples, T, *input shape), of which the first ``samples`` are used."""
    try:
        import nir
    except ImportError:
        raise ConfigError("simulating a NIR graph needs the nir package: pip install 'ffneuro[nir]'") from None
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    try:
        graph = nir.read(str(path))
    except Exception as exc:     # h5py/nir raise many kinds for a bad file
        raise DataError(f"{path}: not a readable NIR file ({type(exc).__name__}: {exc})") from None
    inputs = None
    if input_npz is not None:
        try:
            with np.load(input_npz) as z:
                if "input" not in z:
                    raise DataError(f"{input_npz}: no array named 'input' (have: {', '.join(z.files)})")
                arr = np.asarray(z["input"], dtype=np.float32)
        except (OSError, ValueError) as exc:
            raise DataError(f"{input_npz}: not a readable npz file ({exc})") from None
        if arr.ndim < 3:
            raise DataError(f"{input_npz}: 'input' must be (samples, T, *input shape), got shape {arr.shape}")
        inputs = torch.from_numpy(arr[:samples])
    return simulate_graph(graph, hw, timesteps=timesteps, samples=samples, inputs=inputs, input_rate=input_rate,
                          analog=analog, seed=seed, dt=dt)
