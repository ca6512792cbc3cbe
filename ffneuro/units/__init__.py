"""Local-learning units: each trainable layer owns its block, goodness, loss, optimiser and accounting.

Block types (``--arch``), one file each, registered in :data:`BLOCKS`: ``conv`` (:mod:`.block`), ``fc``
(:mod:`.fc`), ``cfse`` (:mod:`.cfse`), ``trifecta`` (:mod:`.trifecta`).
"""
from ..accounting.ops import POOLS
from . import cfse, fc, trifecta  # noqa: F401  (registers the block types)
from .block import ConvBlock
from .blocks import BLOCKS, Block, build_block, rms_normalize
from .cfse import CFSEBlock
from .fc import FCBlock
from .ff_unit import FFUnit, UnitStats
from .optim import OPTIMIZERS
from .trifecta import TrifectaBlock

__all__ = ["BLOCKS", "OPTIMIZERS", "POOLS", "Block", "CFSEBlock", "ConvBlock", "FCBlock", "FFUnit", "TrifectaBlock",
           "UnitStats", "build_block", "rms_normalize"]
