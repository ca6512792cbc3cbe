"""Layer-spec graphs: plain, serialisable descriptions of a network that accounting and the profiler
compute from (see :mod:`.nodes` and :mod:`.graph`; NIR import/export in :mod:`.nir_io`, optional)."""
from .graph import NetSpec, Unit, chain, group_units, sequential
from .nodes import (
    NEURON_MODELS,
    NODES,
    POOL_KINDS,
    SPIKING,
    Activation,
    Add,
    BatchNorm,
    Conv2d,
    Flatten,
    Linear,
    Neuron,
    Node,
    Pool2d,
    RMSNorm,
    node_from_dict,
    out_size,
    valid_taps,
)

__all__ = ["NEURON_MODELS", "NODES", "POOL_KINDS", "SPIKING", "Activation", "Add", "BatchNorm", "Conv2d", "Flatten", "Linear", "NetSpec",
           "Neuron", "Node", "Pool2d", "RMSNorm", "Unit", "chain", "group_units", "node_from_dict", "out_size",
           "sequential", "valid_taps"]
