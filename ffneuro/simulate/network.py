"""A trained FF (or BP) network seen as the chip sees it: a chain of weighted layers, each a linear op, a
ReLU, an optional 2×2 pool and the hand-on normalisation, plus the readouts; and the calibration of the
deployable replacements (a fixed per-layer scale for the per-sample RMS norm, activation scales for
threshold balancing and int8) on training data.

Batch norm (cfse: after the ReLU and pool; trifecta: on the unit's input) is folded into the weights that
read its output, with ``ffneuro export``'s own arithmetic (:func:`~ffneuro.deploy.export.fold_into`), so
the simulated network is the one export writes: exact into a linear layer, an unpadded conv or a block that
pads its input before the norm (the trifecta's ``pad_first``), approximate at the border pixels of a
zero-padded conv otherwise (its shift reaches only the inside of the map). A depthwise-
separable unit is two layers of neurons. A residual unit's skip add is not a chain and is refused."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from ..blocks.conv import ConvModule
from ..blocks.fc import FCModule
from ..blocks.module import rms_normalize
from ..deploy.export import Pending, batch_norm_affine, fold_into
from ..errors import ConfigError
from ..spec import Activation, BatchNorm, Conv2d, Linear, Pool2d, RMSNorm
from .neurons import balance_scale

SUPPORTED_BLOCKS = ("conv", "fc", "cfse", "trifecta", "dwsep")
NORMS = ("rms", "none")
TAPS = ("neurons", "out", "")


@dataclass
class SimLayer:
    """One layer of neurons as a chip runs it: ``kind`` conv or linear with ``weight``/``bias`` (batch norm
    folded in), then ReLU neurons, then ``pool`` (none, stride: nothing more; max, avg: a 2×2 pool), then
    the hand-on ``norm`` (rms: the per-sample RMS norm, deployed as a fixed scale; none). ``tap``: what the
    unit's goodness is measured on (neurons: the ReLU output; out: the pooled map, through ``out_affine``
    when a batch norm follows the pool; empty: not a unit's last layer). ``out_affine`` (a, b per channel):
    the unit hands on a·pooled + b, already folded into whatever reads it (next layer, linear readout)."""

    name: str
    kind: str
    weight: torch.Tensor
    bias: torch.Tensor | None
    stride: int = 1
    padding: int | tuple[int, int] = 0
    pool: str = "none"
    input_norm: bool = False     # fc unit 1: the flattened image is RMS-normalised first
    groups: int = 1
    norm: str = "rms"
    tap: str = "neurons"
    out_affine: tuple[torch.Tensor, torch.Tensor] | None = None
    approx_border: bool = False  # a batch norm's shift folded under zero padding: border pixels approximate

    def __post_init__(self) -> None:
        if self.norm not in NORMS or self.tap not in TAPS:
            raise ValueError(f"{self.name}: norm {self.norm!r} (valid: {NORMS}), tap {self.tap!r} (valid: {TAPS})")

    @property
    def fan_in(self) -> int:
        """Input lines of one neuron: C·k·k for a conv (before padding), in_features for a linear layer."""
        return int(math.prod(self.weight.shape[1:]))

    def op(self, x: torch.Tensor, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None,
           use_bias: bool = True) -> torch.Tensor:
        """The layer's linear op on ``x`` (with other weights/bias when given)."""
        w = self.weight if weight is None else weight
        b = (self.bias if bias is None else bias) if use_bias else None
        if self.kind == "conv":
            return F.conv2d(x, w, b, stride=self.stride, padding=self.padding, groups=self.groups)
        return F.linear(x.flatten(1), w, b)

    def pool_values(self, y: torch.Tensor) -> torch.Tensor:
        """The 2×2 max/avg pool of graded values (identity for none and stride)."""
        if self.pool == "max":
            return F.max_pool2d(y, 2)
        if self.pool == "avg":
            return F.avg_pool2d(y, 2)
        return y

    def goodness_input(self, neurons: torch.Tensor) -> torch.Tensor:
        """What the unit's goodness is measured on, from its neurons' activations: the neurons, or the
        pooled map (through ``out_affine``: a cfse unit's batch norm)."""
        if self.tap != "out":
            return neurons
        p = self.pool_values(neurons)
        if self.out_affine is not None:
            a, b = self.out_affine
            p = p * a.to(p.dtype) + b.to(p.dtype)
        return p


@dataclass
class NetView:
    """The layers, how rows are prepared from images, and the readouts of one network."""

    layers: list[SimLayer]
    num_classes: int
    model: torch.nn.Module
    ff: bool
    pairs: bool
    readout_units: list[int]     # indices of the layers the readouts read (each readout unit's last layer)
    linear_weight: torch.Tensor | None
    linear_bias: torch.Tensor | None
    scorers: list = field(default_factory=list)   # per layer: its FF unit (``scores`` is the goodness), or None
    out_sizes: list[int] = field(default_factory=list)   # hand-on elements per row, per layer

    def readouts(self) -> list[str]:
        return (["goodness"] if self.ff else []) + (["linear"] if self.linear_weight is not None else [])

    def rows(self, x: torch.Tensor, readout: str) -> torch.Tensor:
        """The rows a readout runs through the layers: every candidate label embedded (pair goodness),
        the neutral embedding (linear), or the image itself."""
        if not self.ff:
            return x
        if readout == "goodness":
            return self.model.labels.embed_all(x) if self.pairs else x
        return self.model.readout_input(x)

    def calibration_rows(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """What the units see in training (the true-label embedding), for calibrating scales."""
        return self.model.activity_input(x, y) if self.ff else x

    def goodness(self, neurons: list[torch.Tensor], n: int, divisors: list[torch.Tensor] | None = None) -> torch.Tensor:
        """(n, classes) summed goodness of the readout units from their neurons' activations, each unit's
        first divided per row by ``divisors[i]`` when given (see :func:`norm_divisors`)."""
        total = None
        for i in self.readout_units:
            y = neurons[i]
            if divisors is not None:
                y = y / divisors[i].view(-1, *([1] * (y.dim() - 1)))
            g = self.scorers[i].scores(self.layers[i].goodness_input(y))
            total = g if total is None else total + g
        return total.reshape(n, self.num_classes)

    def logits(self, outs: list[torch.Tensor], weight: torch.Tensor | None = None) -> torch.Tensor:
        """The linear readout on the readout units' hand-on outputs."""
        feats = torch.cat([outs[i].flatten(1) for i in self.readout_units], 1)
        return F.linear(feats, self.linear_weight if weight is None else weight, self.linear_bias)


def _layer(name: str, block) -> SimLayer:
    conv = block.conv
    if conv.padding_mode != "zeros" or conv.dilation != (1, 1) or conv.groups != 1:
        raise ConfigError(f"{name}: simulate runs plain convolutions only")
    return SimLayer(name, "conv", conv.weight.detach().float().clone(),
                    None if conv.bias is None else conv.bias.detach().float().clone(),
                    stride=conv.stride[0], padding=conv.padding[0], pool=block.spec.pool)


def _refusal(name: str, kind: str) -> ConfigError:
    if kind == "residual":
        return ConfigError(f"{name} is a 'residual' block: its skip add is not a chain of layers, which simulate runs; "
                           "export it (ffneuro export RUN.h5 --format nir --out NET.nir) and run ffneuro simulate "
                           "NET.nir --hw TARGET --dt 1 --input IMAGES.npz for its activity (float weights, no accuracy)")
    return ConfigError(f"{name} is a {kind!r} block; simulate runs {', '.join(SUPPORTED_BLOCKS)} blocks "
                       f"(ReLU units with a deployable hand-on) only")


def _block_layers(name: str, block: nn.Module, pending: Pending) -> tuple[list[SimLayer], Pending]:
    """The layers of one block read from its spec's nodes (weighted node, ReLU, pool, norms), each batch norm
    folded into the weights after it with export's arithmetic; ``pending``: the affine map a batch norm at
    the end of the block before left on this block's input. Returns the layers and the map this block
    leaves on its own output (the identity, or its trailing batch norm)."""
    spec = block.spec
    kind = spec.kind
    nodes = spec.nodes()
    wiring = spec.unit().wiring
    if any(tuple(ins) != (i - 1,) for i, ins in enumerate(wiring)):
        raise _refusal(name, kind)
    weighted = [m for m in block.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    norms = [m for m in block.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if sum(n.weighted for n in nodes) != len(weighted) or sum(isinstance(n, BatchNorm) for n in nodes) != len(norms):
        raise ConfigError(f"{name}: its {kind} module's convs and norms do not match its spec; simulate cannot read it")
    wi, bi = iter(weighted), iter(norms)
    several = len(weighted) > 1
    layers: list[SimLayer] = []
    # zeros the block pads around its input before its batch norm (the trifecta's pad_first): that norm's
    # shift then reaches the border taps in training too, so its fold into the zero-padded conv is exact
    pads_first = spec.input_padding > 0
    shifted = False
    relu = True   # whether the last layer has its ReLU (none yet: nothing to attach to)
    for node in nodes:
        if isinstance(node, (Conv2d, Linear)):
            if not relu:
                raise ConfigError(f"{name}: two weighted nodes without a ReLU between; simulate runs ReLU layers only")
            module = next(wi)
            w, b, approx = fold_into(node, module, pending, border_shifted=shifted)
            lname = f"{name}.{len(layers) + 1}" if several else name
            if isinstance(node, Conv2d):
                sym = node.symmetric_padding
                if sym is None or node.dilation != (1, 1) or node.stride[0] != node.stride[1] or \
                        getattr(module, "padding_mode", "zeros") != "zeros":
                    raise ConfigError(f"{name}: simulate runs convolutions with symmetric zero padding and equal "
                                      "strides only")
                layers.append(SimLayer(lname, "conv", torch.from_numpy(w).float(), torch.from_numpy(b).float(),
                                       stride=node.stride[0], padding=sym,
                                       groups=node.groups, norm="none", tap="", approx_border=approx))
            else:
                layers.append(SimLayer(lname, "linear", torch.from_numpy(w).float(), torch.from_numpy(b).float(),
                                       norm="none", tap="", approx_border=approx))
            pending, shifted, relu = Pending.identity(node.out_shape), False, False
        elif isinstance(node, Activation) and node.fn == "relu" and layers and not relu and pending.is_identity:
            relu = True
        elif isinstance(node, Pool2d) and layers and relu and layers[-1].pool == "none" and pending.is_identity \
                and node.pool in ("max", "avg") and node.kernel == (2, 2) and node.stride == (2, 2) \
                and node.padding == (0, 0):
            layers[-1].pool = node.pool
        elif isinstance(node, BatchNorm):
            shifted = pads_first and not layers and not bool(torch.any(pending.b != 0))
            pending = batch_norm_affine(next(bi), node.in_shape, pending)
        elif isinstance(node, RMSNorm) and layers and relu and pending.is_identity:
            layers[-1].norm = "rms"
        else:
            what = getattr(node, "kind", type(node).__name__)
            if what == "add":
                raise _refusal(name, kind)
            raise ConfigError(f"{name}: simulate cannot run a {kind} block's {what} node here (it runs weighted "
                              "nodes, each followed by a ReLU, then 2×2 pooling, batch norm or RMS norm)")
    if not layers or not relu:
        raise ConfigError(f"{name}: a {kind} block that does not end in ReLU neurons; simulate runs ReLU units only")
    last = layers[-1]
    last.name = name
    # goodness: on the block's output when the block measures what it hands on (cfse, trifecta), else on its
    # last ReLU (conv, dwsep: before pooling and the RMS norm)
    measures_out = tuple(spec.goodness_shape) == tuple(nodes[-1].out_shape) and not isinstance(nodes[-1], RMSNorm)
    last.tap = "out" if measures_out else "neurons"
    if not pending.is_identity:
        last.out_affine = (pending.a.float(), pending.b.float())
    return layers, pending


def _units(named_blocks) -> tuple[list[SimLayer], list[int], list[Pending]]:
    """Every block's layers, the index of each block's last layer, and the map each block leaves on its output."""
    layers, last, outs = [], [], []
    pending = None
    for name, block in named_blocks:
        if isinstance(block, ConvModule):
            if pending is not None and not pending.is_identity:
                raise ConfigError(f"{name}: a conv block after a batch norm; simulate folds batch norm into "
                                  "cfse and trifecta blocks only")
            layers.append(_layer(name, block))
            pending = Pending.identity(block.out_shape)
        elif isinstance(block, FCModule):
            lin = block.linear
            if pending is not None and not pending.is_identity:
                raise ConfigError(f"{name}: an fc block after a batch norm; simulate folds batch norm into "
                                  "cfse and trifecta blocks only")
            layers.append(SimLayer(name, "linear", lin.weight.detach().float().clone(),
                                   None if lin.bias is None else lin.bias.detach().float().clone(),
                                   input_norm=bool(block.spec.input_norm)))
            pending = Pending.identity(block.out_shape)
        else:
            kind = getattr(getattr(block, "spec", None), "kind", type(block).__name__)
            if kind not in SUPPORTED_BLOCKS:
                raise _refusal(name, kind)
            if pending is None:
                pending = Pending.identity(tuple(block.in_shape))
            new, pending = _block_layers(name, block, pending)
            layers.extend(new)
        last.append(len(layers) - 1)
        outs.append(pending)
    return layers, last, outs


def _readout(weight: torch.Tensor, bias: torch.Tensor | None, outs: list[Pending], shapes: list[tuple[int, ...]]
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """The linear readout with the maps its units leave on their outputs (a cfse unit's batch norm) folded in,
    by export's fold of a linear node; a readout without a bias (``--linear-init zero``) gets a zero one."""
    if bias is None:
        bias = weight.new_zeros(weight.shape[0])
    if all(p.is_identity for p in outs):
        return weight.detach().float().clone(), bias.detach().float().clone()
    a = torch.cat([p.flat(s).a for p, s in zip(outs, shapes)])
    b = torch.cat([p.flat(s).b for p, s in zip(outs, shapes)])
    lin = nn.Linear(weight.shape[1], weight.shape[0])
    lin.weight.data, lin.bias.data = weight.detach(), bias.detach()
    w, b2, _ = fold_into(Linear((weight.shape[1],), weight.shape[0]), lin, Pending(a, b))
    return torch.from_numpy(w).float(), torch.from_numpy(b2).float()


def net_view(model: torch.nn.Module) -> NetView:
    """The FFNet or BPNet ``model`` (weights loaded) as a :class:`NetView`; other block types are refused."""
    model.eval()
    if hasattr(model, "units"):      # FFNet
        units = list(model.units)
        layers, last, outs = _units((u.name, u.block) for u in units)
        scorers = [None] * len(layers)
        for u, i in zip(units, last):
            scorers[i] = u
        reads = [last[i] for i in model.readout_units]
        weight = bias = None
        if model.linear is not None:
            weight, bias = _readout(model.linear.linear.weight, model.linear.linear.bias,
                                    [outs[i] for i in model.readout_units],
                                    [tuple(units[i].block.out_shape) for i in model.readout_units])
        return NetView(layers, model.num_classes, model, True, model.pairs, reads, weight, bias, scorers,
                       _out_sizes(layers, last, [u.block for u in units]))
    names = model.unit_names()
    layers, last, outs = _units(zip(names, model.blocks))
    weight, bias = _readout(model.head.weight, model.head.bias, outs[-1:], [tuple(model.blocks[-1].out_shape)])
    return NetView(layers, model.num_classes, model, False, False, [last[-1]], weight, bias,
                   out_sizes=_out_sizes(layers, last, list(model.blocks)))


def _out_sizes(layers: list[SimLayer], last: list[int], blocks: list) -> list[int]:
    """Hand-on elements per row of each layer: a block's output for its last layer (0 inside a block:
    nothing reads those layers' outputs but the next layer)."""
    sizes = [0] * len(layers)
    for i, block in zip(last, blocks):
        sizes[i] = math.prod(block.out_shape)
    return sizes


@dataclass
class Calibration:
    """Per layer, from training data through the network with the deployable norm: ``norm_scale`` (the
    fixed scale replacing y / rms(y), 1 / the mean RMS of the pooled map), ``lam`` (the activation scale λ of
    the neurons at the chosen percentile), ``peak`` (the largest neuron activation); ``input_scale``: the
    fixed scale of fc unit 1's input norm (1 when it has none)."""

    norm_scale: list[float]
    lam: list[float]
    peak: list[float]
    input_scale: float
    percentile: float
    images: int


@torch.no_grad()
def calibrate(view: NetView, rows: torch.Tensor, percentile: float = 99.9) -> Calibration:
    """Measure the fixed norm scales and activation scales layer by layer on ``rows`` (training images as
    the units saw them); each layer's statistics are taken with the earlier layers already fixed."""
    h = rows
    input_scale = 1.0
    norm, lam, peak = [], [], []
    for i, layer in enumerate(view.layers):
        if i == 0 and layer.input_norm:
            rms = h.flatten(1).pow(2).mean(1).sqrt().mean()
            input_scale = float(1.0 / rms) if rms > 0 else 1.0
            h = h * input_scale
        y = torch.relu(layer.op(h))
        lam.append(balance_scale(y, percentile))
        peak.append(float(y.max()) if y.numel() else 0.0)
        p = layer.pool_values(y)
        s = 1.0
        if layer.norm == "rms":
            rms = p.flatten(1).pow(2).mean(1).sqrt().mean()
            s = float(1.0 / rms) if rms > 0 else 1.0
        norm.append(s)
        h = p * s
    return Calibration(norm, lam, peak, input_scale, percentile, int(rows.shape[0]))


def hand_on_float(layer: SimLayer, y: torch.Tensor, scale: float | None) -> torch.Tensor:
    """Pool, then the norm: the per-sample RMS norm (``scale`` None, as trained) or the fixed scale (a layer
    without an RMS norm hands on the pooled map as it is)."""
    p = layer.pool_values(y)
    if layer.norm != "rms":
        return p
    return rms_normalize(p) if scale is None else p * scale


def norm_divisors(view: NetView, cal: Calibration, rows: torch.Tensor, neurons: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per layer and row, what its neurons are off by when the per-sample RMS norm before it is a fixed
    scale: c = s·rms(pool(y_prev)) when the layer before hands on through an RMS norm (for fc unit 1 with an
    input norm, input_scale·rms(x)), the layer before's own c when it hands on without a norm (the next
    layer inside a unit), 1 for a layer whose input is the raw image. y_normed = y_fixed / c holds exactly
    for bias-free layers (ReLU and the linear op are positively homogeneous), so the host that computes
    the goodness readout from the readout units' activity divides by c, read from the unit before's activity."""
    n = rows.shape[0]
    out = []
    for i, layer in enumerate(view.layers):
        if i == 0:
            if layer.input_norm:
                out.append(cal.input_scale * rows.flatten(1).pow(2).mean(1).sqrt().clamp_min(1e-12))
            else:
                out.append(torch.ones(n, dtype=rows.dtype, device=rows.device))
            continue
        before = view.layers[i - 1]
        if before.norm != "rms":
            out.append(out[-1])
            continue
        prev = before.pool_values(neurons[i - 1])
        out.append((cal.norm_scale[i - 1] * prev.flatten(1).pow(2).mean(1).sqrt()).clamp_min(1e-12))
    return out
