"""The backprop baseline: the same block stack, end to end, with a linear head."""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

import torch
from torch import nn

from ..accounting import LinearSpec, net_spec, unit_cost
from ..config import RunConfig
from ..precision import autocast
from ..spec import NetSpec
from .ff_net import StepResult, WalkStep, block_stack, walk


class BPNet(nn.Module):
    """The FF network's blocks with the same hand-on (normalisation) between them, a linear head on the
    last one, one Adam for everything. Images enter without a label (BP does not need one)."""

    def __init__(self, config: RunConfig, image_shape: tuple[int, ...], num_classes: int):
        super().__init__()
        self.num_classes, self.precision = num_classes, config.precision
        self.blocks = nn.ModuleList(block_stack(config, image_shape, num_classes, algo="bp"))
        self.head = nn.Linear(math.prod(self.blocks[-1].out_shape), num_classes)
        self.base_lr = config.lr
        self.optimizer = torch.optim.Adam(self.parameters(), lr=config.lr)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(x.device, self.precision):
            h = x
            for block in self.blocks:
                h = block.hand_on(block(h))
            return self.head(h.flatten(1)).float()

    def walk(self, h: torch.Tensor, stop: int | None = None) -> Iterator[WalkStep]:
        """:func:`~ffneuro.models.ff_net.walk` through the blocks (activity measurement)."""
        return walk(self.blocks, h, stop)

    def unit_names(self) -> list[str]:
        return [f"layer{i + 1}" for i in range(len(self.blocks))]

    def readout_input(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def activity_input(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return x

    activity_embedding = "none"

    def start_epoch(self, epoch: int, schedule: Callable[[float], float]) -> None:
        self.set_lrs(schedule)

    def set_lrs(self, schedule: Callable[[float], float]) -> None:
        self.set_lr(schedule(self.base_lr))

    def set_lr(self, lr: float, _linear_lr: float | None = None) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def train_batch(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None,
                    rows: slice | None = None) -> StepResult:
        """One backprop step on the batch (on images ``rows`` of it: a data-parallel share)."""
        if rows is not None:
            x, y = x[rows], y[rows]
        loss = nn.functional.cross_entropy(self(x), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        loss = loss.detach()
        return StepResult({"network": loss}, loss)

    def loss_names(self) -> list[str]:
        return ["network"]

    @torch.no_grad()
    def predict(self, x: torch.Tensor, readout: str = "linear") -> torch.Tensor:
        return self(x).argmax(1)

    @torch.no_grad()
    def predict_all(self, x: torch.Tensor, readouts: Sequence[str]) -> dict[str, torch.Tensor]:
        """:meth:`predict` for each readout (the BP network has one)."""
        return {r: self.predict(x, r) for r in readouts}

    def readouts(self) -> list[str]:
        return ["linear"]

    def eval_rows_per_image(self, readouts: list[str]) -> int:
        return 1

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The one optimiser of the whole network."""
        return {"network": self.optimizer}

    def costs(self):
        return [unit_cost(s, self.precision) for s in self.layer_specs()]

    def layer_specs(self):
        """The blocks' specs, named ``layer1..`` and all trained."""
        return [replace(b.spec, name=f"layer{i + 1}", trainable=True) for i, b in enumerate(self.blocks)]

    def spec(self) -> NetSpec:
        """The network as a layer-spec graph: the block stack and the head."""
        return net_spec(self.layer_specs(), LinearSpec("head", self.head.in_features, self.head.out_features))
