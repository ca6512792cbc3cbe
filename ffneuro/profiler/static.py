"""NeuroBench's static metrics of a network: parameter count, footprint and connection sparsity.

From a run's stored weights (``/weights/final``: the model's state dict, numpy only) when there are any,
else from the specs (parameter count and footprint without buffers; connection sparsity unknown).
NeuroBench's ``Footprint`` is the bytes of every parameter and buffer; here the parameters are counted at
the precision the workload stores them in (the target's deployed weight format for inference, the fp32
master copy for training) and the buffers (batch-norm running statistics, FF peer-norm means) as stored.
``ConnectionSparsity`` is the share of exactly-zero weights of the conv and linear layers.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..accounting import nbytes

# the persistent buffers of ffneuro's modules (torch's batch norm; FFUnit's peer normalisation): a state-dict
# entry ending in one of these is a buffer, every other entry a parameter (tests/test_neurobench_parity.py
# checks this against torch's named_buffers for every block type)
BUFFERS = ("running_mean", "running_var", "num_batches_tracked", "peer_running")

# state-dict prefixes of the layers: FFNet units.<i>. and its linear readout, BPNet blocks.<i>. and its head
_UNIT = re.compile(r"^(units|blocks)\.(\d+)\.")
_READOUT = {"linear.": "readout", "head.": "head"}


@dataclass(frozen=True)
class WeightStats:
    """One layer's stored tensors: parameters, conv/linear weights and how many of them are zero, and
    buffer bytes."""

    params: int = 0
    weights: int = 0
    zero_weights: int = 0
    buffer_bytes: int = 0

    def __add__(self, other: WeightStats) -> WeightStats:
        return WeightStats(self.params + other.params, self.weights + other.weights,
                           self.zero_weights + other.zero_weights, self.buffer_bytes + other.buffer_bytes)


def weight_stats(state: Mapping[str, np.ndarray], names: Sequence[str]) -> dict[str, WeightStats]:
    """Per layer name (``names[i]`` for unit or block ``i``; ``readout``, ``head``) the counts of a stored
    FFNet or BPNet state dict. An entry that belongs to no layer raises ``ValueError``."""
    out: dict[str, WeightStats] = {}
    for key, value in state.items():
        arr = np.asarray(value)
        m = _UNIT.match(key)
        if m and int(m.group(2)) < len(names):
            layer = names[int(m.group(2))]
        else:
            layer = next((v for k, v in _READOUT.items() if key.startswith(k)), None)
        if layer is None:
            raise ValueError(f"stored tensor {key!r} belongs to no layer")
        leaf = key.rsplit(".", 1)[-1]
        if leaf in BUFFERS:
            s = WeightStats(buffer_bytes=int(arr.nbytes))
        elif leaf == "weight" and arr.ndim >= 2:   # conv and linear weights (batch norm's weight is 1-D)
            s = WeightStats(params=arr.size, weights=arr.size, zero_weights=int(arr.size - np.count_nonzero(arr)))
        else:
            s = WeightStats(params=arr.size)
        out[layer] = out.get(layer, WeightStats()) + s
    return out


def workload_static(units: Sequence, stats: Mapping[str, WeightStats] | None, precision: str) -> dict:
    """``parameter_count``, ``footprint_bytes`` (parameters at ``precision`` plus buffers),
    ``connection_sparsity`` and ``static_source`` of the costed ``units`` (``UnitPhases``): from ``stats``
    where it covers every unit, else from the specs (no buffers, sparsity unknown)."""
    if stats and all(u.unit in stats for u in units):
        total = WeightStats()
        for u in units:
            total = total + stats[u.unit]
        return {"parameter_count": total.params, "footprint_bytes": nbytes(total.params, precision) + total.buffer_bytes,
                "connection_sparsity": total.zero_weights / total.weights if total.weights else None,
                "static_source": "stored weights"}
    params = sum(int(u.spec.params) for u in units)
    return {"parameter_count": params, "footprint_bytes": nbytes(params, precision), "connection_sparsity": None,
            "static_source": "specs (no stored weights: buffers and zero weights unknown)"}
