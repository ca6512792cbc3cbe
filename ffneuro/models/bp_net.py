"""The backprop baseline: the same conv stack, end to end, with a linear head."""
from __future__ import annotations

import math
from dataclasses import replace

import torch
from torch import nn

from ..accounting import LinearSpec, net_spec, unit_cost
from ..config import RunConfig
from ..precision import autocast
from ..spec import NetSpec
from ..units import rms_normalize
from .ff_net import conv_stack


class BPNet(nn.Module):
    """Conv blocks with the same RMS normalisation between them, a linear head on the last one,
    one Adam for everything. Images enter without a label (BP does not need one)."""

    def __init__(self, config: RunConfig, image_shape: tuple[int, int, int], num_classes: int):
        super().__init__()
        self.num_classes, self.precision = num_classes, config.precision
        self.blocks = nn.ModuleList(conv_stack(config, image_shape))
        self.head = nn.Linear(math.prod(self.blocks[-1].out_shape), num_classes)
        self.optimizer = torch.optim.Adam(self.parameters(), lr=config.lr)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(x.device, self.precision):
            h = x
            for block in self.blocks:
                h = rms_normalize(block.pool_out(block(h)))
            return self.head(h.flatten(1)).float()

    def set_lr(self, lr: float, _linear_lr: float | None = None) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def train_batch(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        loss = nn.functional.cross_entropy(self(x), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    @torch.no_grad()
    def predict(self, x: torch.Tensor, readout: str = "linear") -> torch.Tensor:
        return self(x).argmax(1)

    def readouts(self) -> list[str]:
        return ["linear"]

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The one optimiser of the whole network."""
        return {"network": self.optimizer}

    def costs(self):
        return [unit_cost(s, self.precision) for s in self.layer_specs()]

    def layer_specs(self):
        """The conv blocks' specs, named ``layer1..`` and all trained."""
        return [replace(b.spec, name=f"layer{i + 1}") for i, b in enumerate(self.blocks)]

    def spec(self) -> NetSpec:
        """The network as a layer-spec graph: the conv stack and the head."""
        return net_spec(self.layer_specs(), LinearSpec("head", self.head.in_features, self.head.out_features))
