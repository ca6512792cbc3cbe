"""Analytic op and memory accounting from layer shapes: pure functions, no tensors.

MACs are multiply-accumulates of conv/linear layers (1 MAC = 2 FLOPs); every other arithmetic op is
counted separately as ``elementwise_ops``; ``flops = 2 * macs + elementwise_ops``. Counts are per
batch unless the name or :meth:`NetworkCost.per_sample` says otherwise. The model (what is counted,
what is assumed) is documented in ``docs/accounting.md``; the profiler turns these counts into
energy, latency and locality for a hardware target.

* :mod:`.specs`: :class:`LinearSpec` (readouts, heads) and the layer-spec graph of a block stack; the
  blocks themselves (:class:`~ffneuro.spec.block.BlockSpec`) live in :mod:`ffneuro.blocks`
* :mod:`.replay`: the public toolkit a block's PyTorch memory replay is written with
* :mod:`.phases`: per-unit, per-phase ops and bytes of FF training, BP training and inference
* :mod:`.memory`: resident state, per-unit activations and the peak of a training step or a ``predict``
* :mod:`.optimizer`: what the units' and the readout's optimisers (Adam, SGD) keep and cost per parameter
* :mod:`.onednn`: the channel-blocked copies oneDNN makes around a conv on an x86 CPU
* :mod:`.unit_cost`: the per-unit summary recorded in the run file (``UnitCost``)
"""
from __future__ import annotations

from .memory import (
    SCHEMES,
    MemoryCost,
    bp_memory,
    bp_peak_training_bytes,
    ff_memory,
    ff_peak_training_bytes,
    inference_memory,
    inference_peak_bytes,
)
from .ops import (
    BYTES_PER_ELEMENT,
    ELEMENT_BITS,
    MASTER_PRECISION,
    conv2d_macs,
    flops,
    linear_macs,
    nbytes,
)
from .optimizer import DEFAULT_OPTIMIZERS, OptimizerCost, Optimizers, optimizers_of
from .phases import (
    CATEGORIES,
    WORKLOADS,
    NetworkCost,
    PhaseCost,
    Traffic,
    UnitPhases,
    bp_training_costs,
    ff_training_costs,
    graph_inference_costs,
    inference_costs,
    update_ops,
)
from .specs import LinearSpec, head_spec, net_spec, readout_spec
from .unit_cost import UnitCost, unit_cost

__all__ = [
    "BYTES_PER_ELEMENT", "CATEGORIES", "DEFAULT_OPTIMIZERS", "ELEMENT_BITS", "MASTER_PRECISION", "SCHEMES", "WORKLOADS",
    "LinearSpec", "MemoryCost", "NetworkCost", "OptimizerCost", "Optimizers", "PhaseCost", "Traffic", "UnitCost", "UnitPhases",
    "bp_memory", "bp_peak_training_bytes", "bp_training_costs", "conv2d_macs",
    "ff_memory", "ff_peak_training_bytes", "ff_training_costs", "flops", "head_spec",
    "graph_inference_costs", "inference_costs", "inference_memory", "inference_peak_bytes", "update_ops",
    "linear_macs", "nbytes", "net_spec", "optimizers_of", "readout_spec", "unit_cost",
]
