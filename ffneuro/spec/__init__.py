"""Layer-spec graphs: plain, serialisable descriptions of a network that accounting and the profiler
compute from (see :mod:`.nodes` and :mod:`.graph`; NIR import/export in :mod:`.nir_io`, optional)."""
from .graph import INPUT_ENCODINGS, NetSpec, Unit, chain, group_units, sequential
from .nodes import (
    NEURON_MODELS,
    NODES,
    POOL_KINDS,
    SPIKING,
    Activation,
    Add,
    BatchNorm,
    Conv1d,
    Conv2d,
    Delay,
    Flatten,
    GroupNorm,
    Linear,
    Neuron,
    Node,
    Pool2d,
    RMSNorm,
    Scale,
    Threshold,
    node_from_dict,
    out_size,
    valid_taps,
)

__all__ = ["INPUT_ENCODINGS", "NEURON_MODELS", "NODES", "POOL_KINDS", "SPIKING", "Activation", "Add", "BatchNorm",
           "Conv1d", "Conv2d", "Delay", "Flatten", "GroupNorm", "Linear", "NetSpec", "Neuron", "Node", "Pool2d", "RMSNorm", "Scale",
           "Threshold", "Unit", "chain", "group_units", "node_from_dict", "out_size", "sequential", "valid_taps"]
