"""Local-learning units: each trainable layer owns its parameters, optimiser, loss and accounting."""
from ..accounting.ops import POOLS
from .block import ConvBlock, rms_normalize
from .ff_unit import FFUnit, UnitStats

__all__ = ["POOLS", "ConvBlock", "FFUnit", "UnitStats", "rms_normalize"]
