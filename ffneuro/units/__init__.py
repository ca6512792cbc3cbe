"""Local-learning units: each trainable layer owns its block, goodness, loss, optimiser and accounting.

The layer inside a unit is a block (:mod:`ffneuro.blocks`, one file per ``--arch`` type)."""
from .ff_unit import FFUnit, LocalObjective, OptimizerSettings, UnitStats
from .optim import OPTIMIZERS

__all__ = ["OPTIMIZERS", "FFUnit", "LocalObjective", "OptimizerSettings", "UnitStats"]
