"""Training: the loop shared by FF and BP, device choice and environment capture."""
from .device import environment, pick_device
from .stop import StopRequested, StopSignals
from .trainer import Recorder, Summary, Trainer

__all__ = ["Recorder", "StopRequested", "StopSignals", "Summary", "Trainer", "environment", "pick_device"]
