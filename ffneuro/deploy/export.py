"""Export a trained run as a NIR graph that a neuromorphic toolchain can run, and say what changed.

A trained FF (or BP) network holds parts no chip runs: batch norm, the per-sample RMS normalisation
between units, average pooling that norse and sinabs do not read, max pooling (no NIR node), the label
embedding and the readouts. :func:`deploy_network` rewrites them into plain conv/linear synapses, IF
neurons (ReLU in rate coding), SumPool2d and an Affine readout:

* batch norm (eval statistics) is an affine map per channel; it is folded into the next weighted node
  (exact for a linear node or a conv without padding; a conv's zero padding sees the shift only inside the
  map, so the border pixels are approximate; measured), unless the block pads its input before the batch
  norm (its spec's ``input_padding``: the trifecta's ``pad_first``): then the shift reaches the border in
  training too, and the fold into a zero-padded conv on the raw input is exact everywhere;
* RMS normalisation y / rms(y) becomes a fixed per-unit scale 1 / mean(rms) calibrated on training
  images and folded into the next weights (the per-sample rescaling is gone; measured);
* average pooling becomes SumPool2d and its 1/k² goes into the next weights;
* max pooling is refused (the ``*-deploy`` presets do without it);
* the linear readout is an Affine node (one Linear/Affine per readout unit when it reads several; NIR
  sums their outputs);
* a label written into the image (pair objectives) stays outside the graph: the graph's input is the
  embedded image (``minmax01(x + K·pattern)``, or with ``--labels channel`` the image with the pattern as
  one more channel), the patterns are in the graph's metadata.

:func:`graph_forward` evaluates a NIR graph in PyTorch (IF neurons as their rate, ReLU; or spiking for
``timesteps``) so the exported network's accuracy is measured on the file itself.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from ..spec import Activation, Add, BatchNorm, Conv2d, Flatten, Linear, NetSpec, Node, Pool2d, RMSNorm, Unit
from ..spec.nir_io import _nir, spec_to_graph, write_nir

PRECISIONS = ("fp32", "int8")
#: the deployable preset to train instead of a max-pooling network, by dataset
DEPLOYABLE_PRESETS = {"mnist": "mnist-fast-deploy", "fashion-mnist": "mnist-fast-deploy --dataset fashion-mnist",
                      "cifar10": "cifar10-fast-deploy", "cifar100": "cifar10-fast-deploy --dataset cifar100"}


@dataclass
class Deployed:
    """A deployable network: its spec, its weights (``spec_to_graph``'s keys), the graph's metadata, and
    one line per change from the trained network."""

    spec: NetSpec
    weights: dict[str, dict[str, np.ndarray]]
    metadata: dict[str, Any]
    changes: list[str] = field(default_factory=list)
    readout_key: str | None = None               # the graph's output is this readout's logits (None: last unit's neurons)
    #: unit -> (NIR key of the node goodness is read from, a, b): the goodness input is a · that node's output + b
    goodness_nodes: dict[str, tuple[str, torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    def graph(self):
        """The NIR graph (needs the nir package)."""
        return spec_to_graph(self.spec, self.weights, metadata=self.metadata)

    def write(self, path) -> None:
        write_nir(self.spec, path, self.weights, metadata=self.metadata)


# ------------------------------------------------------------------------------------------------------
# the affine map per channel that a removed node leaves on the signal: true = a · signal + b


@dataclass
class Pending:
    a: torch.Tensor      # broadcastable to the signal's per-sample shape: (C, 1, 1) on maps, (F,) flat
    b: torch.Tensor

    @classmethod
    def identity(cls, shape: tuple[int, ...]) -> Pending:
        s = (shape[0], 1, 1) if len(shape) == 3 else (shape[0],)
        return cls(torch.ones(s, dtype=torch.float64), torch.zeros(s, dtype=torch.float64))

    @property
    def is_identity(self) -> bool:
        return bool(torch.all(self.a == 1) and torch.all(self.b == 0))

    def flat(self, shape: tuple[int, ...]) -> Pending:
        return Pending(self.a.expand(*shape).reshape(-1).clone(), self.b.expand(*shape).reshape(-1).clone())


def fold_into(node: Node, module: nn.Module, p: Pending, border_shifted: bool = False) -> tuple[np.ndarray, np.ndarray, bool]:
    """``module``'s weight and bias with ``p`` (on its input) folded in, and whether the fold is only
    approximate (a shift under zero padding). ``border_shifted``: the trained network shifted its padded
    border too (padding before the batch norm), so the zero-padded conv with the folded bias is exact."""
    w = module.weight.detach().double().cpu()
    bias = module.bias.detach().double().cpu() if module.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    if isinstance(node, Linear):
        a, b = (p.a, p.b) if p.a.dim() == 1 and p.a.numel() == w.shape[1] else (p.flat(node.in_shape).a, p.flat(node.in_shape).b)
        a, b = a.expand(w.shape[1]), b.expand(w.shape[1])
        return (w * a[None, :]).numpy(), (bias + w @ b).numpy(), False
    g = node.groups
    cin_g, cout_g = w.shape[1], w.shape[0] // g
    idx = torch.arange(w.shape[0])[:, None] // cout_g * cin_g + torch.arange(cin_g)[None, :]   # (Cout, Cin/g)
    a = p.a.reshape(-1).expand(node.in_shape[0])[idx]
    b = p.b.reshape(-1).expand(node.in_shape[0])[idx]
    w2 = w * a[:, :, None, None]
    bias2 = bias + (w * b[:, :, None, None]).sum((1, 2, 3))
    approx = bool(torch.any(b != 0)) and any(node.padding) and not border_shifted
    return w2.numpy(), bias2.numpy(), approx


def _weighted_modules(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _norm_modules(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _run_node(node: Node, ins: list[torch.Tensor], module: nn.Module | None) -> torch.Tensor:
    """The float value of ``node`` (true coordinates) on a batch; RMS norm is handled by the caller."""
    x = ins[0]
    if isinstance(node, (Conv2d, Linear)):
        return module(x.flatten(1) if isinstance(node, Linear) else x)
    if isinstance(node, Activation):
        return torch.relu(x)
    if isinstance(node, Pool2d):
        if node.pool == "max":
            return F.max_pool2d(x, node.kernel, node.stride, node.padding)
        out = F.avg_pool2d(x, node.kernel, node.stride, node.padding)
        return out * (node.kernel[0] * node.kernel[1]) if node.pool == "sum" else out
    if isinstance(node, Flatten):
        return x.flatten(1)
    if isinstance(node, BatchNorm):
        return module(x)
    if isinstance(node, Add):
        return ins[0] + ins[1]
    raise ConfigError(f"cannot deploy a {node.kind} node")


def batch_norm_affine(bn: nn.Module, in_shape: tuple[int, ...], p: Pending) -> Pending:
    """The eval-mode batch norm ``bn`` on a signal of per-sample ``in_shape`` that carries ``p``: the composed
    map, s·p.a and s·p.b + t with s = γ/√(var+ε), t = β − mean·s per channel."""
    s = (bn.weight.detach().double() / (bn.running_var.double() + bn.eps).sqrt()).cpu()
    t = (bn.bias.detach().double() - bn.running_mean.double() * s).cpu()
    shape = (-1, 1, 1) if len(in_shape) == 3 else (-1,)
    s, t = s.reshape(shape), t.reshape(shape)
    return Pending(s * p.a, s * p.b + t)


def max_pool_refusal(config: Mapping[str, Any], where: str) -> str:
    """The one-line refusal of a max-pooling network, naming the deployable preset for its dataset."""
    deploy = DEPLOYABLE_PRESETS.get(str(config.get("dataset", "")), "mnist-fast-deploy (or cifar10-fast-deploy)")
    pool = "--pool none" if config.get("arch") in ("cfse", "trifecta") else "--pool avg or --pool stride"
    return (f"{where} max-pools, which NIR cannot hold and chips do not run; train a deployable network "
            f"instead: --preset {deploy} (or this network with {pool})")


def deploy_network(model: nn.Module, config: Mapping[str, Any], calibration: torch.Tensor,
                   precision: str = "fp32") -> Deployed:
    """The deployable form of a restored FF or BP ``model`` (``config``: its stored config dict);
    ``calibration``: (N, C, H, W) images in [0, 1] as the units see them (label embedded where the
    objective embeds one), for the fixed RMS scales. The model runs in float64 here and is put back
    in its own dtype after."""
    dtype = next(model.parameters()).dtype
    try:
        return _deploy(model, config, calibration, precision)
    finally:
        model.to(dtype)


def _deploy(model: nn.Module, config: Mapping[str, Any], calibration: torch.Tensor, precision: str) -> Deployed:
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    units = list(model.units) if hasattr(model, "units") else list(model.blocks)
    modules = [u.block if hasattr(u, "block") else u for u in units]
    names = [u.name for u in units] if hasattr(model, "units") else model.unit_names()
    for name, m in zip(names, modules):
        if any(isinstance(n, Pool2d) and n.pool == "max" for n in m.spec.nodes()):
            raise ConfigError(max_pool_refusal(config, f"unit {name}"))
    changes: list[str] = []
    weights: dict[str, dict[str, np.ndarray]] = {}
    out_units: list[Unit] = []
    pending = Pending.identity(tuple(calibration.shape[1:]))
    h = calibration.double()
    model = model.double().eval()
    outputs: dict[str, tuple[torch.Tensor, Pending]] = {}
    approx_units, exact_padded_units, scales = [], [], {}
    goodness_nodes: dict[str, tuple[str, torch.Tensor, torch.Tensor]] = {}
    with torch.no_grad():
        for name, module in zip(names, modules):
            spec_nodes = module.spec.nodes()
            wiring = module.spec.unit().wiring
            # zeros the block pads around its input before its batch norm (trifecta's pad_first; 0: none)
            input_padding = module.spec.input_padding
            shifted_borders: set[int] = set()   # batch norms whose shift reached the padded border
            wmods, bmods = iter(_weighted_modules(module)), iter(_norm_modules(module))
            several = sum(n.weighted for n in spec_nodes) > 1
            vals: dict[int, tuple[torch.Tensor, Pending]] = {-1: (h, pending)}
            kept: list[Node] = []
            kept_in: list[tuple[int, ...]] = []
            where: dict[int, int] = {-1: -1}     # spec node index -> index of the kept node whose output it is
            producer: dict[int, tuple[str, int]] = {}   # kept index of a weighted node -> (weights key, spec index)
            for i, (node, ins) in enumerate(zip(spec_nodes, wiring)):
                xs = [vals[j][0] for j in ins]
                ps = [vals[j][1] for j in ins]
                if node.weighted:
                    m = next(wmods)
                    key = f"{name}.{len(kept)}" if several else name   # spec_to_graph's key: the kept index
                    w, b, approx = fold_into(node, m, ps[0], border_shifted=ins[0] in shifted_borders)
                    if approx:
                        approx_units.append(name)
                    elif ins[0] in shifted_borders:
                        exact_padded_units.append(name)
                    y = _run_node(node, xs, m)
                    kept.append(_with_bias(node, True))
                    kept_in.append(tuple(where[j] for j in ins))
                    producer[len(kept) - 1] = (key, i)
                    weights[key] = {"weight": w, "bias": b}
                    where[i] = len(kept) - 1
                    vals[i] = (y, Pending.identity(node.out_shape))
                elif isinstance(node, BatchNorm):
                    bn = next(bmods)
                    p, x = ps[0], xs[0]
                    if input_padding and ins == (-1,) and len(node.in_shape) == 3:
                        # the block normalises its zero-padded input (its conv pads nothing): the graph's zeros
                        # around the unscaled signal are the true zeros when the incoming map has no shift
                        x = F.pad(x, (input_padding,) * 4)
                        if not torch.any(p.b != 0):
                            shifted_borders.add(i)
                    vals[i] = (_run_node(node, [x], bn), batch_norm_affine(bn, node.in_shape, p))
                    where[i] = where[ins[0]]
                elif isinstance(node, RMSNorm):
                    x = xs[0]
                    rms = x.flatten(1).pow(2).mean(1).add(1e-8).sqrt()
                    c = float(1.0 / rms.mean())
                    scales[f"{name}.{i}"] = c
                    p = ps[0]
                    vals[i] = (x * c, Pending(p.a * c, p.b * c))
                    where[i] = where[ins[0]]
                elif isinstance(node, Pool2d):
                    p = ps[0]
                    y = _run_node(node, xs, None)
                    if node.pool == "avg":
                        k2 = node.kernel[0] * node.kernel[1]
                        node = Pool2d(node.in_shape, "sum", node.kernel, node.stride, node.padding)
                        p = Pending(p.a / k2, p.b)
                    kept.append(node)
                    kept_in.append(tuple(where[j] for j in ins))
                    where[i] = len(kept) - 1
                    vals[i] = (y, p)
                elif isinstance(node, Activation):
                    p = ps[0]
                    if torch.any(p.b != 0) or torch.any(p.a <= 0):
                        raise ConfigError(f"unit {name}: a shift or a negative scale before a ReLU cannot be "
                                          "folded into the next weights")
                    kept.append(node)
                    kept_in.append(tuple(where[j] for j in ins))
                    where[i] = len(kept) - 1
                    vals[i] = (_run_node(node, xs, None), p)
                elif isinstance(node, Add):
                    (pa, pb), ks = ps, [where[j] for j in ins]
                    if not (torch.equal(pa.a, pb.a) and torch.equal(pa.b, pb.b)):
                        # rescale the weighted node that feeds one side so both carry the same scale
                        side = next((s for s, k in enumerate(ks) if k in producer and (ps[s].is_identity)), None)
                        other = ps[1 - side] if side is not None else None
                        if other is None or torch.any(other.b != 0):
                            raise ConfigError(f"unit {name}: the two inputs of its add carry different scales")
                        key = producer[ks[side]][0]
                        a = other.a.reshape(-1)
                        weights[key]["weight"] = weights[key]["weight"] / a.numpy().reshape(-1, *[1] * (weights[key]["weight"].ndim - 1))
                        weights[key]["bias"] = weights[key]["bias"] / a.numpy()
                        ps = [other, other]
                    kept.append(node)
                    kept_in.append(tuple(ks))
                    where[i] = len(kept) - 1
                    vals[i] = (_run_node(node, xs, None), ps[0])
                elif isinstance(node, Flatten):
                    p = ps[0]
                    kept.append(node)
                    kept_in.append(tuple(where[j] for j in ins))
                    where[i] = len(kept) - 1
                    vals[i] = (_run_node(node, xs, None), p.flat(node.in_shape))
                else:
                    raise ConfigError(f"unit {name}: cannot deploy a {node.kind} node")
            h, pending = vals[len(spec_nodes) - 1]
            gi = _goodness_index(module)
            ki = where[gi]
            gkey = (f"{name}.{ki}" if several else name) if kept[ki].weighted else f"{name}.{ki}.{kept[ki].kind}"
            goodness_nodes[name] = (gkey, vals[gi][1].a.float(), vals[gi][1].b.float())
            outputs[name] = (h, pending)
            local = tuple(tuple(j for j in ins) for ins in kept_in)
            unit = Unit(name, tuple(kept), inputs=local)
            out_units.append(unit)
    _changes_for(changes, modules, names, scales, approx_units, goodness_nodes, exact_padded_units)
    readout_key = _readout(model, names, outputs, out_units, weights, changes)
    if precision == "int8":
        _quantize(weights, changes)
    spec = NetSpec(tuple(calibration.shape[1:]), tuple(out_units), name=str(config.get("preset") or "ffneuro"))
    metadata = _metadata(model, config, precision, scales, readout_key)
    if precision == "int8":   # in the graph's metadata: nir 1.0.4 (sinabs) refuses metadata on a node
        metadata["int8_scales"] = {k: np.asarray(wb.pop("int8_scale"), dtype=np.float32) for k, wb in weights.items()}
    return Deployed(spec, weights, metadata, changes, readout_key, goodness_nodes)


def _goodness_index(module: nn.Module) -> int:
    """Index of the node goodness is measured on: the unit's output where the block hands on what it
    measures (cfse, trifecta), else its last ReLU (before pooling and RMS norm)."""
    nodes = module.spec.nodes()
    if tuple(module.spec.goodness_shape) == tuple(nodes[-1].out_shape) and not isinstance(nodes[-1], RMSNorm):
        return len(nodes) - 1
    return max(i for i, n in enumerate(nodes) if isinstance(n, Activation))


def _with_bias(node: Node, bias: bool) -> Node:
    if isinstance(node, Conv2d):
        return Conv2d(node.in_shape, node.out_channels, node.kernel, node.stride, node.padding, node.dilation,
                      node.groups, bias)
    return Linear(node.in_shape, node.out_features, bias)


def _changes_for(changes: list[str], modules, names, scales, approx_units, goodness_nodes,
                 exact_padded_units=()) -> None:
    kinds = {n.kind for m in modules for n in m.spec.nodes()}
    if "batch_norm" in kinds:
        changes.append("batch norm: folded (eval statistics) into the next conv/linear weights and biases"
                       + (f"; approximate at the zero-padded border pixels of {', '.join(sorted(set(approx_units)))}"
                          if approx_units else "")
                       + (f"; exact at the borders of {', '.join(sorted(set(exact_padded_units)))} (padded before "
                          "their batch norm)" if exact_padded_units else ""))
    if scales:
        changes.append("RMS normalisation: replaced by a fixed scale per unit (calibrated on training images: "
                       + ", ".join(f"{k} ×{v:.4g}" for k, v in scales.items()) + ") folded into the next weights")
    if any(isinstance(n, Pool2d) and n.pool == "avg" for m in modules for n in m.spec.nodes()):
        changes.append("average pooling: written as SumPool2d, its 1/k² folded into the next weights")
    changes.append("ReLU: written as IF neurons (threshold 1, r 1, reset to 0); their spike rate is the ReLU in "
                   "rate coding (spiking conversion error is not part of this export's accuracy)")


def _readout(model, names, outputs, out_units, weights, changes) -> str | None:
    """Append the linear readout (FF's or BP's head) as Affine/Linear nodes reading its units."""
    if getattr(model, "linear", None) is not None:
        lin, reads = model.linear.linear, [names[i] for i in model.readout_units]
    elif getattr(model, "head", None) is not None:
        lin, reads = model.head, [names[-1]]
    else:
        changes.append("readout: no linear readout in the run; the graph ends at the last unit's neurons "
                       "(goodness readout: see the metadata)")
        return None
    w = lin.weight.detach().double().cpu()
    bias = (lin.bias.detach().double().cpu() if lin.bias is not None   # a zero-started readout has none
            else torch.zeros(w.shape[0], dtype=torch.float64))
    col = 0
    keys = []
    for k, src in enumerate(reads):
        h, p = outputs[src]
        shape = tuple(h.shape[1:])
        n = math.prod(shape)
        chunk = w[:, col:col + n]
        col += n
        pf = p.flat(shape)
        last = k == len(reads) - 1
        key = "readout" if len(reads) == 1 else f"readout_{src}"
        b = (chunk @ pf.b) + (bias if last else 0)
        weights[key] = {"weight": (chunk * pf.a[None, :]).numpy(), "bias": b.numpy()}
        nodes = (Flatten(shape), Linear((n,), w.shape[0], bool(last or torch.any(b != 0))))
        out_units.append(Unit(key, nodes, source=src))
        keys.append(key)
    changes.append(f"linear readout: written as {'an Affine node' if len(keys) == 1 else 'one Linear/Affine node per unit it reads (NIR sums them)'}"
                   f" ({', '.join(keys)}), the scales of the units it reads folded in")
    return keys[-1]


def _quantize(weights: dict[str, dict[str, np.ndarray]], changes: list[str]) -> None:
    """Per-output-channel symmetric int8: weights on the int8 grid (as float values), scale kept."""
    worst = 0.0
    for wb in weights.values():
        w = wb["weight"]
        flat = w.reshape(w.shape[0], -1)
        scale = np.abs(flat).max(1) / 127.0
        scale[scale == 0] = 1.0
        q = np.clip(np.round(flat / scale[:, None]), -127, 127)
        wb["weight"] = (q * scale[:, None]).reshape(w.shape)
        wb["int8_scale"] = scale
        worst = max(worst, float(np.abs(wb["weight"] - w).max()))
    changes.append(f"int8: every weight rounded to per-output-channel symmetric int8 (scale = max|w|/127, in the "
                   f"graph's metadata int8_scales; largest change {worst:.3g}); biases kept in float (int32 accumulators)")


def _metadata(model, config: Mapping[str, Any], precision: str, scales: dict, readout_key: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"producer": "ffneuro export", "precision": precision,
                            "input": "images scaled to [0, 1]", "output": "readout logits" if readout_key else
                            "the last unit's neurons"}
    labels = getattr(model, "labels", None)
    if labels is not None:
        meta["input"] = labels.describe()   # how this scheme embeds (added to the image, or a channel of its own)
        meta["label_patterns"] = labels.patterns.detach().float().cpu().numpy()
        meta["label_strength"] = float(labels.strength)
    goodness = config.get("goodness")
    if goodness:
        meta["goodness"] = (f"{goodness} of the last ReLU (IF) of units {config.get('readout_from')}..L"
                            + ("; class-wise: channel group c (channels c*C/classes..) scores class c"
                               if goodness == "classwise" else "; sum over the readout units per class pass, "
                               "the largest wins"))
    return meta


# ------------------------------------------------------------------------------------------------------
# running a NIR graph in PyTorch


def _order(graph) -> tuple[list[str], dict[str, list[str]]]:
    preds: dict[str, list[str]] = {k: [] for k in graph.nodes}
    for s, d in graph.edges:
        preds[d].append(s)
    order, done = [], set()
    todo = list(graph.nodes)
    while todo:
        progressed = False
        for k in list(todo):
            if all(p in done for p in preds[k]):
                order.append(k)
                done.add(k)
                todo.remove(k)
                progressed = True
        if not progressed:
            raise ConfigError(f"the NIR graph is recurrent (through {', '.join(todo)}); it cannot be evaluated here")
    return order, preds


def _t(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def _pair(v) -> tuple[int, int]:
    a = np.atleast_1d(np.asarray(v)).astype(int).reshape(-1)
    return (int(a[0]), int(a[0])) if len(a) == 1 else (int(a[0]), int(a[1]))


IF_MODELS = ("nir", "sinabs")


def graph_forward(graph, x: torch.Tensor, *, timesteps: int | None = None, record: tuple[str, ...] = (),
                  if_model: str = "nir") -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Run ``graph`` on a batch ``x`` (N, *input shape): the Output node's value and the recorded nodes'.

    ``timesteps`` None: IF neurons give their rate, relu(r·v)/v_threshold (the ANN the graph encodes).
    Otherwise ``x`` is fed as a constant current for T steps and IF neurons integrate ``v += r·I``, spike
    when ``v > v_threshold`` and reset to ``v_reset``; the outputs are summed over the steps (spike counts
    for neurons, summed logits for the output). ``if_model="sinabs"``: sinabs's discretisation of IF
    (IAFSqueeze: ``v += I``, as many spikes as whole thresholds in ``v``, reset by subtraction, ``v``
    bounded below by ``−v_threshold``), so its outputs can be compared with sinabs's."""
    if if_model not in IF_MODELS:
        raise ConfigError(f"unknown IF model {if_model!r}; valid: {', '.join(IF_MODELS)}")
    order, preds = _order(graph)
    nodes = graph.nodes
    x = x.double()
    state: dict[str, torch.Tensor] = {}
    steps = 1 if timesteps is None else int(timesteps)
    total: torch.Tensor | None = None
    rec: dict[str, torch.Tensor] = {}
    for _ in range(steps):
        val: dict[str, torch.Tensor] = {}
        out = None
        for key in order:
            node = nodes[key]
            kind = type(node).__name__
            if kind == "Input":
                val[key] = x
                continue
            ins = [val[p] for p in preds[key]]
            v = ins[0] if len(ins) == 1 else torch.stack(ins).sum(0)
            if kind == "Conv2d":
                pad = node.padding if isinstance(node.padding, str) else _pair(node.padding)
                y = F.conv2d(v, _t(node.weight), _t(node.bias) if node.bias is not None else None,
                             _pair(node.stride), pad, _pair(node.dilation), int(node.groups))
            elif kind in ("Linear", "Affine"):
                y = F.linear(v, _t(node.weight), _t(node.bias) if kind == "Affine" else None)
            elif kind == "Flatten":
                y = v.flatten(1)
            elif kind in ("SumPool2d", "AvgPool2d"):
                k, s, p = _pair(node.kernel_size), _pair(node.stride), _pair(node.padding)
                y = F.avg_pool2d(v, k, s, p, divisor_override=1 if kind == "SumPool2d" else None)
            elif kind == "IF":
                r, th = _t(node.r), _t(node.v_threshold)
                if timesteps is None:
                    y = torch.relu(r * v) / th
                elif if_model == "sinabs":
                    mem = state.get(key, torch.zeros_like(v)) + v
                    spk = torch.relu(torch.div(mem, th, rounding_mode="trunc"))
                    state[key] = torch.maximum(mem - spk * th, -th)
                    y = spk
                else:
                    mem = state.get(key, torch.zeros_like(v)) + r * v
                    spk = (mem > th).to(v.dtype)
                    reset = _t(getattr(node, "v_reset", None) if getattr(node, "v_reset", None) is not None else 0)
                    state[key] = torch.where(spk > 0, reset.expand_as(mem), mem)
                    y = spk
            elif kind in ("Output", "Identity"):
                y = v
                if kind == "Output":
                    out = y
            else:
                raise ConfigError(f"NIR node {key}: {kind} cannot be evaluated here")
            val[key] = y
            if key in record:
                rec[key] = rec.get(key, 0) + y
        total = out if total is None else total + out
    return total, rec


def read_graph(path) -> Any:
    """The NIR graph in ``path`` (nir's reader, without its type check: it ignores a conv's groups)."""
    return _nir().read(str(path), type_check=False)


__all__ = ["DEPLOYABLE_PRESETS", "IF_MODELS", "PRECISIONS", "Deployed", "Pending", "batch_norm_affine", "deploy_network",
           "fold_into", "graph_forward", "read_graph"]
