"""Whether a stored parameter set fits a network, said in one line (torch's own message spans many)."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

SHOWN = 3  # names listed per kind of mismatch; the rest are counted


def _shape(shape) -> str:
    return "×".join(map(str, shape)) or "scalar"


def _first(items: list[str]) -> str:
    return ", ".join(items[:SHOWN]) + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def weights_mismatch(network: Mapping[str, tuple[int, ...]], stored: Mapping[str, np.ndarray]) -> str:
    """``""`` when ``stored`` holds exactly the ``network``'s tensors (name → shape) with their shapes; otherwise
    one line counting what is missing, unexpected or of another shape, naming the first few of each."""
    missing = [k for k in network if k not in stored]
    unexpected = [k for k in stored if k not in network]
    reshaped = [f"{k} (file {_shape(np.shape(stored[k]))}, network {_shape(network[k])})"
                for k in network if k in stored and tuple(np.shape(stored[k])) != tuple(network[k])]
    parts = [f"{len(items)} {kind}: {_first(items)}"
             for kind, items in (("missing", missing), ("unexpected", unexpected), ("of another shape", reshaped))
             if items]
    return "; ".join(parts)
