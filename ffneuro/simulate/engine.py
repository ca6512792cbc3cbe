"""Run a :class:`~ffneuro.simulate.network.NetView` with a target's numerics on a batch of rows.

Four ways, chosen by :class:`~ffneuro.simulate.targets.TargetNumerics`:

* ``float``: one dense pass, operands rounded to the format each op executes in (GPUs), the per-sample
  RMS norm kept; also the float reference with the deployable fixed norm.
* ``int8``: one dense pass in integers (MCUs): int8 weights per channel, int8 activations per layer
  (scale from the calibrated maximum; larger values clip to 127 and are counted), int32 biases.
* ``if``: T timesteps of integrate-and-fire neurons on normalised weights (threshold balancing); the input
  image is rate-coded by integrate-and-fire encoders (rate = pixel value); a 2×2 max-pooled neuron spikes
  when its window's largest spike count grows; a neuron's activation is read back as λ·count/T.
* ``sigma_delta``: T timesteps of graded spikes: each neuron's activation, quantised on its layer's scale,
  is sent as changes of at least one quantum; layers add up what they receive (Loihi 2's SDNN).

Within a timestep a spike reaches the next layer in the same timestep (no per-layer delay), as norse and
snntorch run a sequential network.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from .network import Calibration, NetView, SimLayer, hand_on_float
from .neurons import if_step, normalised_layer, sigma_delta_step, spike_max_pool
from .quant import quantize, quantize_symmetric, round_format, symmetric_scale, ternarize
from .targets import TargetNumerics

#: a graded message is sent when the change is at least one quantum (compared with this much slack)
_QUANTUM_SLACK = 1e-4


@dataclass
class Trace:
    """What one batch of rows did: per layer the neurons' activations as read back (``neurons``), the
    hand-on outputs (``outs``), events of the neurons and of the hand-on map (sums over rows and
    timesteps), saturated/clipped neuron values, and the input's events; ``steps`` timesteps."""

    neurons: list[torch.Tensor]
    outs: list[torch.Tensor]
    events: list[float]
    out_events: list[float]
    saturated: list[int]
    input_events: float
    steps: int
    input_saturated: int = 0


@dataclass
class Deployment:
    """The weights a target holds for each layer and for the linear readout, after normalisation and
    quantisation; ``fan_in_exceeded`` per layer (TrueNorth)."""

    weights: list[torch.Tensor]
    biases: list[torch.Tensor | None]
    readout_weight: torch.Tensor | None
    fan_in_exceeded: list[bool]


def _store(w: torch.Tensor, numerics: TargetNumerics, per_channel: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``w`` as the target stores it, and the quantum of each output row (for the bias)."""
    if numerics.weights == "ternary":
        t = ternarize(w, numerics.weight_bits - 1)
        mags = t.abs().flatten(1).amax(1)
        quantum = mags[mags > 0].min() if bool((mags > 0).any()) else torch.tensor(1.0)
        return t, quantum.expand(w.shape[0]).clone()
    pc = numerics.per_channel if per_channel is None else per_channel
    scale = symmetric_scale(w, numerics.weight_bits, pc)
    q = quantize_symmetric(w, numerics.weight_bits, pc)
    return q, scale.flatten().expand(w.shape[0]).clone()


def _round_bias(b: torch.Tensor | None, quantum: torch.Tensor) -> torch.Tensor | None:
    return None if b is None else torch.round(b / quantum) * quantum


def deploy(view: NetView, cal: Calibration, numerics: TargetNumerics) -> Deployment:
    """Normalise (spiking targets: threshold balancing with the fixed norm folded in) and quantise every
    layer's weights as ``numerics`` says."""
    weights, biases, exceeded = [], [], []
    lam_in = cal.input_scale
    for i, layer in enumerate(view.layers):
        exceeded.append(numerics.fan_in_limit is not None and layer.fan_in > numerics.fan_in_limit)
        if numerics.timed:
            w, b = normalised_layer(layer.weight, layer.bias, lam_in, cal.lam[i])
            w, quantum = _store(w, numerics)
            biases.append(_round_bias(b, quantum.view(-1)))
            weights.append(w)
            lam_in = cal.norm_scale[i] * cal.lam[i]
        elif numerics.weights == "int":
            weights.append(quantize_symmetric(layer.weight, numerics.weight_bits, numerics.per_channel))
            biases.append(layer.bias)   # rounded to int32 at run time (its scale depends on the input's)
        else:
            weights.append(round_format(layer.weight, numerics.conv_format if layer.kind == "conv"
                                        else numerics.linear_format))
            biases.append(layer.bias)
    readout = None
    if view.linear_weight is not None:
        w = view.linear_weight
        if numerics.timed:   # the readout reads rates r = out / (s·λ) of each readout unit
            factors = torch.cat([torch.full((view.out_sizes[i],),
                                            cal.norm_scale[i] * cal.lam[i]) for i in view.readout_units])
            readout, _ = _store(w * factors, numerics)
        elif numerics.weights == "int":
            readout = quantize_symmetric(w, numerics.weight_bits, True)
        else:
            readout = round_format(w, numerics.linear_format)
    return Deployment(weights, biases, readout, exceeded)


def _nonzero(t: torch.Tensor) -> float:
    return float(torch.count_nonzero(t))


# ------------------------------------------------------------------------------------------- dense passes

@torch.no_grad()
def run_float(view: NetView, dep: Deployment, cal: Calibration, rows: torch.Tensor, numerics: TargetNumerics,
              fixed_norm: bool) -> Trace:
    """One dense pass in floats; ``fixed_norm``: the calibrated per-layer scale instead of the per-sample norm."""
    h = rows
    neurons, outs, ev, oev, sat = [], [], [], [], []
    for i, layer in enumerate(view.layers):
        if i == 0 and layer.input_norm:
            h = h.flatten(1) * cal.input_scale if fixed_norm else _rms(h.flatten(1))
        fmt = numerics.conv_format if layer.kind == "conv" else numerics.linear_format
        y = torch.relu(layer.op(round_format(h, fmt), dep.weights[i], dep.biases[i]))
        out = hand_on_float(layer, y, cal.norm_scale[i] if fixed_norm else None)
        neurons.append(y)
        outs.append(out)
        ev.append(_nonzero(y))
        oev.append(_nonzero(out))
        sat.append(int((~torch.isfinite(y)).sum()))
        h = out
    return Trace(neurons, outs, ev, oev, sat, _nonzero(rows), 1)


def _rms(h: torch.Tensor) -> torch.Tensor:
    from ..blocks.module import rms_normalize

    return rms_normalize(h)


@torch.no_grad()
def run_int8(view: NetView, dep: Deployment, cal: Calibration, rows: torch.Tensor, numerics: TargetNumerics) -> Trace:
    """One dense pass in integers: activations as codes 0..2^(b-1)-1 of one scale per layer."""
    levels = 2 ** (numerics.activation_bits - 1) - 1
    in_scale = cal.input_scale / levels
    h, in_clipped = quantize(rows.flatten(1) * cal.input_scale if view.layers[0].input_norm else rows, in_scale, 0,
                             levels)
    neurons, outs, ev, oev, sat = [], [], [], [], []
    for i, layer in enumerate(view.layers):
        w = dep.weights[i]
        w_scale = symmetric_scale(layer.weight, numerics.weight_bits, numerics.per_channel).flatten()
        bias = _round_bias(layer.bias, w_scale.expand(w.shape[0]) * in_scale)   # int32 at the accumulator's scale
        a_scale = (cal.peak[i] or 1.0) / levels
        y, clipped = quantize(torch.relu(layer.op(h, w, bias)), a_scale, 0, levels)
        p = layer.pool_values(y)
        if layer.pool == "avg":
            p, _ = quantize(p, a_scale, 0, levels)
        out = p * cal.norm_scale[i]
        neurons.append(y)
        outs.append(out)
        ev.append(_nonzero(y))
        oev.append(_nonzero(out))
        sat.append(clipped)
        h, in_scale = out, a_scale * cal.norm_scale[i]
    return Trace(neurons, outs, ev, oev, sat, _nonzero(rows), 1, in_clipped)


# ------------------------------------------------------------------------------------------- timed passes

def _pool_spikes(layer: SimLayer, spikes: torch.Tensor, before: torch.Tensor | None, after: torch.Tensor) -> torch.Tensor:
    if layer.pool == "max":
        return spike_max_pool(before, after)
    if layer.pool == "avg":
        return F.avg_pool2d(spikes, 2)
    return spikes


@torch.no_grad()
def run_if(view: NetView, dep: Deployment, cal: Calibration, rows: torch.Tensor, timesteps: int) -> Trace:
    """``timesteps`` steps of rate-coded integrate-and-fire neurons (threshold 1, reset by subtraction)."""
    x = rows.flatten(1) if view.layers[0].kind == "linear" else rows
    v_in = torch.zeros_like(x)
    v = [None] * len(view.layers)
    counts = [None] * len(view.layers)
    out_counts = [None] * len(view.layers)
    in_events = 0.0
    for _ in range(timesteps):
        v_in, s = if_step(v_in, x)
        in_events += float(s.sum())
        inp = s
        for i, layer in enumerate(view.layers):
            cur = layer.op(inp, dep.weights[i], dep.biases[i])
            if v[i] is None:
                v[i], counts[i] = torch.zeros_like(cur), torch.zeros_like(cur)
            v[i], spikes = if_step(v[i], cur)
            before = counts[i].clone() if layer.pool == "max" else None
            counts[i] += spikes
            o = _pool_spikes(layer, spikes, before, counts[i])
            out_counts[i] = o if out_counts[i] is None else out_counts[i] + o
            inp = o
    neurons = [cal.lam[i] * counts[i] / timesteps for i in range(len(view.layers))]
    outs = [out_counts[i] / timesteps for i in range(len(view.layers))]   # rates: the readout weights carry s·λ
    return Trace(neurons, outs, [float(c.sum()) for c in counts], [float(o.sum()) for o in out_counts],
                 [int((c >= timesteps).sum()) for c in counts], in_events, timesteps, int((x > 1).sum()))


@torch.no_grad()
def run_sigma_delta(view: NetView, dep: Deployment, cal: Calibration, rows: torch.Tensor, timesteps: int,
                    bits: int) -> Trace:
    """``timesteps`` steps of sigma-delta neurons with activations quantised to ``bits`` (unsigned, per layer,
    in units of λ); every message is a change of at least one quantum."""
    levels = 2 ** bits - 1
    quantum = 1.0 / levels
    thr = quantum * (1 - _QUANTUM_SLACK)
    x = rows.flatten(1) if view.layers[0].kind == "linear" else rows
    xq, in_clipped = quantize(x, quantum, 0, levels)
    n = len(view.layers)
    in_sent = torch.zeros_like(xq)
    sent, sent_out = [None] * n, [None] * n
    ev, oev, sat = [0.0] * n, [0.0] * n, [0] * n
    in_events = 0.0
    for _ in range(timesteps):
        in_sent, msg = sigma_delta_step(in_sent, xq, thr)
        in_events += _nonzero(msg)
        inp = in_sent
        for i, layer in enumerate(view.layers):
            a, clipped = quantize(torch.relu(layer.op(inp, dep.weights[i], dep.biases[i])), quantum, 0, levels)
            sat[i] = clipped
            if sent[i] is None:
                sent[i] = torch.zeros_like(a)
            sent[i], m = sigma_delta_step(sent[i], a, thr)
            ev[i] += _nonzero(m)
            if layer.pool in ("max", "avg"):
                p = layer.pool_values(sent[i])
                if sent_out[i] is None:
                    sent_out[i] = torch.zeros_like(p)
                sent_out[i], m2 = sigma_delta_step(sent_out[i], p, thr)
                oev[i] += _nonzero(m2)
                inp = sent_out[i]
            else:
                oev[i] += _nonzero(m)
                inp = sent[i]
    neurons = [cal.lam[i] * sent[i] for i in range(n)]
    outs = [sent_out[i] if view.layers[i].pool in ("max", "avg") else sent[i] for i in range(n)]
    return Trace(neurons, outs, ev, oev, sat, in_events, timesteps, in_clipped)


def run(view: NetView, dep: Deployment, cal: Calibration, rows: torch.Tensor, numerics: TargetNumerics,
        timesteps: int) -> Trace:
    """``rows`` through the network as ``numerics`` runs it."""
    if numerics.neuron == "if":
        return run_if(view, dep, cal, rows, timesteps)
    if numerics.neuron == "sigma_delta":
        return run_sigma_delta(view, dep, cal, rows, timesteps, numerics.activation_bits)
    if numerics.weights == "int":
        return run_int8(view, dep, cal, rows, numerics)
    return run_float(view, dep, cal, rows, numerics, fixed_norm=numerics.fixed_norm)


def readout_logits(view: NetView, dep: Deployment, trace: Trace, numerics: TargetNumerics) -> torch.Tensor:
    """The linear readout as the target computes it: its weights on the readout units' hand-on outputs
    (for spiking targets, on their rates: the readout layer's accumulated input over T, divided by T)."""
    if numerics.weights == "float" and not numerics.timed:
        outs = [round_format(o, numerics.linear_format) for o in trace.outs]
        return view.logits(outs, dep.readout_weight)
    return view.logits(trace.outs, dep.readout_weight)
