"""Training on several processes with torch.distributed (launched by torchrun): data-parallel units,
layer-pipelined units, and what crosses the wire."""
from .context import DistContext
from .placement import auto_placement, parse_placement

__all__ = ["DistContext", "auto_placement", "parse_placement"]
