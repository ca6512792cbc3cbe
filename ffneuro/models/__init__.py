"""Networks built from units: the FF network of any variant and its backprop twin."""
from __future__ import annotations

from ..config import RunConfig
from .bp_net import BPNet
from .ff_net import FFNet, StepResult, WalkStep, block_stack
from .readouts import LinearReadout


def build_model(config: RunConfig, image_shape, num_classes: int) -> FFNet | BPNet:
    config.check_shapes(image_shape, num_classes)  # a one-line ConfigError naming the unit, not a torch error or a hang
    cls = FFNet if config.algo == "ff" else BPNet
    return cls(config, tuple(image_shape), num_classes)


__all__ = ["BPNet", "FFNet", "LinearReadout", "StepResult", "WalkStep", "block_stack", "build_model"]
