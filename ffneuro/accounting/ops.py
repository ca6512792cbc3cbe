"""Primitive counts: MACs of conv/linear, elementwise-op counts of everything else, element sizes.

Two kinds of arithmetic are kept apart everywhere in ffneuro:

* ``macs``: multiply-accumulates of convolutions and linear layers (forward, input gradient,
  weight gradient). These are exact: they are what ``torch.utils.flop_counter.FlopCounterMode``
  counts, at 2 FLOPs per MAC.
* ``elementwise_ops``: every other arithmetic operation (bias add, ReLU, pooling, RMS norm, goodness,
  losses, their backward passes, the optimiser's update), counted as one op per add, multiply, compare,
  divide, square root or exponential. These are a model of the arithmetic, not of any kernel: the
  constants below say what is counted.

``flops = 2 * macs + elementwise_ops`` (see :func:`flops`).
"""
from __future__ import annotations

import math

# bits per element of every format a run or a hardware profile can name (ffneuro.profiler.hardware
# has the same table for the hardware side; this one keeps the accounting free of profiler imports)
ELEMENT_BITS = {"fp64": 64, "fp32": 32, "tf32": 32, "bf16": 16, "fp16": 16, "fp8": 8,
                "int32": 32, "int16": 16, "int8": 8, "int4": 4, "binary": 1}
# whole-byte formats (kept for the per-unit UnitCost and for callers that index by name)
BYTES_PER_ELEMENT = {p: b // 8 for p, b in ELEMENT_BITS.items() if b % 8 == 0}
# weights, their gradients and Adam's two moments stay fp32 under bf16 autocast (torch keeps an fp32
# master copy), so these default to fp32 whatever the activation precision
MASTER_PRECISION = "fp32"
INDEX_BYTES = 8  # torch's max-pool indices are int64

POOLS = ("none", "max", "avg", "stride")  # stride: the conv itself downsamples (stride 2), no pool op

# ---- elementwise-op constants (ops per element unless said otherwise)
BIAS_OPS = 1               # one add per output neuron
RELU_OPS = 1               # one compare/select per neuron (forward), one mask-multiply (backward)
MAXPOOL_OPS = 3            # 3 compares per 2x2 window (per pooled output)
AVGPOOL_OPS = 4            # 3 adds + 1 scale per 2x2 window (per pooled output)
RMS_NORM_FWD = (3, 3)      # per element: square, accumulate, divide; per sample: mean, +eps, sqrt
RMS_NORM_BWD = (5, 4)      # g/r, g*p, accumulate, p*c, subtract per element; 4 scalar ops per sample
BATCH_NORM_FWD = 6         # per element in training: accumulate x and x² for the statistics, then subtract the
                           # mean, multiply by 1/σ, scale by γ and shift by β (per-channel work not counted)
BATCH_NORM_BWD = 7         # per element: γ's and β's gradient sums (3), then dx = γ/σ·(g − mean g − x̂·mean(g·x̂)) (4)
GOODNESS_FWD = (2, 2)      # square and accumulate per neuron; per sample: mean scale, -theta
GOODNESS_BWD = (1, 2)      # dL/dy = (2 dL/dg) * y: one multiply per neuron; 2 scalar ops per sample
FF_LOSS_FWD = 4            # per logit: softplus (exp, log1p, add) and its share of the mean
FF_LOSS_BWD = 3            # per logit: sigmoid (exp, add, divide)
CE_FWD = (5, 2)            # per class: max, subtract, exp, accumulate, subtract; per sample: log, pick
CE_BWD = (1, 1)            # per class: exp(log-softmax); per sample: subtract the one-hot
SOFTMAX_FWD = 5            # per class: max, subtract, exp, accumulate, divide (a softmax before the cross-entropy)
SOFTMAX_BWD = 4            # per class: dz = p·(g − Σ p·g): multiply, accumulate, subtract, multiply
PEER_NORM_FWD = 1          # per neuron of a positive row: accumulate its batch mean (the per-neuron blend and
                           # penalty, a few ops per neuron per batch, are not counted)
PEER_NORM_BWD = 1          # per neuron of a positive row: add the penalty's share to dL/dy
ARGMAX_OPS = 1             # one compare per candidate class
LABEL_EMBED_OPS = 6        # per pixel: scale pattern, add, min, max, subtract, divide (min-max to [0,1])
# one timestep of a stateful neuron (NIR models), per neuron: LIF = decay (multiply), add input,
# compare with the threshold, reset (select); IF without the decay; Cuba models also decay and add a
# synaptic current; LI/CubaLI integrate without the compare and reset
NEURON_OPS = {"if": 3, "lif": 4, "cubalif": 6, "li": 2, "cubali": 4}
ADAM_OPS = 13              # per parameter: lerp m (3), v = b2 v + (1-b2) g² (4), sqrt/bias-corr/+eps (3),
                           # addcdiv into the parameter (3); per-tensor scalar work not counted
SGD_OPS = 2                # per parameter: p -= lr·g (multiply, add)
MOMENTUM_OPS = 2           # per parameter: buf = momentum·buf + g (multiply, add)
WEIGHT_DECAY_OPS = 2       # per parameter: g + wd·p (multiply, add), either optimiser


def conv2d_macs(c_in: int, c_out: int, kernel: int, h_out: int, w_out: int) -> int:
    """MACs of one conv forward for one sample (zero padding counted, as dense hardware does)."""
    return c_out * h_out * w_out * c_in * kernel * kernel


def linear_macs(in_features: int, out_features: int) -> int:
    return in_features * out_features


def flops(macs: float, elementwise_ops: float) -> float:
    """FLOPs as ffneuro defines them: 2 per MAC plus 1 per elementwise op."""
    return 2 * macs + elementwise_ops


def element_bits(precision: str) -> int:
    if precision not in ELEMENT_BITS:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(ELEMENT_BITS)}")
    return ELEMENT_BITS[precision]


def nbytes(elements: int, precision: str) -> int:
    """Bytes to hold ``elements`` values in ``precision`` (sub-byte formats packed, rounded up)."""
    return math.ceil(elements * element_bits(precision) / 8)


def pool_fwd_ops(pool: str, pooled: int) -> int:
    """A stride-2 conv downsamples inside the conv (its MACs are in ``conv2d_macs``): no pool ops."""
    return {"none": 0, "stride": 0, "max": MAXPOOL_OPS * pooled, "avg": AVGPOOL_OPS * pooled}[pool]


def pool_bwd_ops(pool: str, neurons: int, pooled: int) -> int:
    """Max: route each pooled gradient to its argmax; avg: spread each one over its window."""
    return {"none": 0, "stride": 0, "max": pooled, "avg": neurons}[pool]


def rms_norm_fwd_ops(elements: int) -> int:
    return RMS_NORM_FWD[0] * elements + RMS_NORM_FWD[1]


def rms_norm_bwd_ops(elements: int) -> int:
    return RMS_NORM_BWD[0] * elements + RMS_NORM_BWD[1]


def batch_norm_fwd_ops(elements: int) -> int:
    return BATCH_NORM_FWD * elements


def batch_norm_bwd_ops(elements: int) -> int:
    return BATCH_NORM_BWD * elements
