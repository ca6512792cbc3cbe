"""Block types beyond the conv block, one file each: a block spec (shapes, layer-spec graph nodes) and its
cost rule, registered in :data:`ffneuro.accounting.specs.BLOCK_SPECS` under its ``--arch`` name.

* :mod:`.fc`: Hinton's fully connected FF layer (``fc``)
* :mod:`.cfse`: CwComp's conv / channel-wise grouped conv with batch norm (``cfse``)
* :mod:`.trifecta`: the Trifecta's batch-norm-first conv block (``trifecta``)
"""
from . import cfse, fc, trifecta  # noqa: F401  (registers the block types)
from .cfse import CFSESpec
from .fc import DenseSpec
from .trifecta import TrifectaSpec

__all__ = ["CFSESpec", "DenseSpec", "TrifectaSpec"]
