"""A trained FF (or BP) network seen as the chip sees it: a chain of weighted layers, each a linear op, a
ReLU, an optional 2×2 pool and the hand-on normalisation, plus the readouts; and the calibration of the
deployable replacements (a fixed per-layer scale for the per-sample RMS norm, activation scales for
threshold balancing and int8) on training data."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch.nn import functional as F

from ..blocks.conv import ConvModule
from ..blocks.fc import FCModule
from ..blocks.module import rms_normalize
from ..errors import ConfigError
from .neurons import balance_scale

SUPPORTED_BLOCKS = ("conv", "fc")


@dataclass
class SimLayer:
    """One unit as a chip runs it: ``kind`` conv or linear with ``weight``/``bias``, then ReLU neurons,
    then ``pool`` (none, stride: nothing more; max, avg: a 2×2 pool), then the hand-on norm."""

    name: str
    kind: str
    weight: torch.Tensor
    bias: torch.Tensor | None
    stride: int = 1
    padding: int = 0
    pool: str = "none"
    input_norm: bool = False     # fc unit 1: the flattened image is RMS-normalised first

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
            return F.conv2d(x, w, b, stride=self.stride, padding=self.padding)
        return F.linear(x.flatten(1), w, b)

    def pool_values(self, y: torch.Tensor) -> torch.Tensor:
        """The 2×2 max/avg pool of graded values (identity for none and stride)."""
        if self.pool == "max":
            return F.max_pool2d(y, 2)
        if self.pool == "avg":
            return F.avg_pool2d(y, 2)
        return y


@dataclass
class NetView:
    """The layers, how rows are prepared from images, and the readouts of one network."""

    layers: list[SimLayer]
    num_classes: int
    model: torch.nn.Module
    ff: bool
    pairs: bool
    readout_units: list[int]
    linear_weight: torch.Tensor | None
    linear_bias: torch.Tensor | None
    scorers: list = field(default_factory=list)   # FF units (their ``scores`` is the goodness)
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
            g = self.scorers[i].scores(y)
            total = g if total is None else total + g
        return total.reshape(n, self.num_classes)

    def logits(self, outs: list[torch.Tensor], weight: torch.Tensor | None = None) -> torch.Tensor:
        """The linear readout on the readout units' hand-on outputs."""
        feats = torch.cat([outs[i].flatten(1) for i in self.readout_units], 1)
        return F.linear(feats, self.linear_weight if weight is None else weight, self.linear_bias)


def _layer(name: str, block) -> SimLayer:
    if isinstance(block, ConvModule):
        conv = block.conv
        if conv.padding_mode != "zeros" or conv.dilation != (1, 1) or conv.groups != 1:
            raise ConfigError(f"{name}: simulate runs plain convolutions only")
        return SimLayer(name, "conv", conv.weight.detach().float().clone(),
                        None if conv.bias is None else conv.bias.detach().float().clone(),
                        stride=conv.stride[0], padding=conv.padding[0], pool=block.spec.pool)
    if isinstance(block, FCModule):
        lin = block.linear
        return SimLayer(name, "linear", lin.weight.detach().float().clone(),
                        None if lin.bias is None else lin.bias.detach().float().clone(),
                        input_norm=bool(block.spec.input_norm))
    kind = getattr(getattr(block, "spec", None), "kind", type(block).__name__)
    raise ConfigError(f"{name} is a {kind!r} block; simulate runs {' and '.join(SUPPORTED_BLOCKS)} blocks "
                      f"(ReLU units with a deployable hand-on) only")


def net_view(model: torch.nn.Module) -> NetView:
    """The FFNet or BPNet ``model`` (weights loaded) as a :class:`NetView`; other block types are refused."""
    model.eval()
    if hasattr(model, "units"):      # FFNet
        layers = [_layer(u.name, u.block) for u in model.units]
        linear = model.linear.linear if model.linear is not None else None
        return NetView(layers, model.num_classes, model, True, model.pairs, list(model.readout_units),
                       None if linear is None else linear.weight.detach().float().clone(),
                       None if linear is None else linear.bias.detach().float().clone(), list(model.units),
                       [math.prod(u.block.out_shape) for u in model.units])
    names = model.unit_names()
    layers = [_layer(n, b) for n, b in zip(names, model.blocks)]
    return NetView(layers, model.num_classes, model, False, False, [len(layers) - 1],
                   model.head.weight.detach().float().clone(), model.head.bias.detach().float().clone(),
                   out_sizes=[math.prod(b.out_shape) for b in model.blocks])


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
        rms = p.flatten(1).pow(2).mean(1).sqrt().mean()
        s = float(1.0 / rms) if rms > 0 else 1.0
        norm.append(s)
        h = p * s
    return Calibration(norm, lam, peak, input_scale, percentile, int(rows.shape[0]))


def hand_on_float(layer: SimLayer, y: torch.Tensor, scale: float | None) -> torch.Tensor:
    """Pool, then the norm: the per-sample RMS norm (``scale`` None, as trained) or the fixed scale."""
    p = layer.pool_values(y)
    return rms_normalize(p) if scale is None else p * scale


def norm_divisors(view: NetView, cal: Calibration, rows: torch.Tensor, neurons: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per unit and row, what its neurons are off by when the per-sample RMS norm before it is a fixed
    scale: c = s·rms(pool(y_prev)) of the unit before (for fc unit 1 with an input norm, input_scale·rms(x);
    1 for a unit whose input is the raw image). y_normed = y_fixed / c holds exactly for a bias-free unit
    (ReLU and the linear op are positively homogeneous), so the host that computes the goodness readout
    from the readout units' activity divides by c, read from the unit before's activity."""
    n = rows.shape[0]
    out = []
    for i, layer in enumerate(view.layers):
        if i == 0:
            if layer.input_norm:
                out.append(cal.input_scale * rows.flatten(1).pow(2).mean(1).sqrt().clamp_min(1e-12))
            else:
                out.append(torch.ones(n, dtype=rows.dtype, device=rows.device))
            continue
        prev = view.layers[i - 1].pool_values(neurons[i - 1])
        out.append((cal.norm_scale[i - 1] * prev.flatten(1).pow(2).mean(1).sqrt()).clamp_min(1e-12))
    return out
