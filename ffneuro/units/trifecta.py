"""The Trifecta's block (``--arch trifecta``): batch norm of the input → conv without bias → ReLU → (2×2
max pool); the pooled output is measured and handed on as it is (spec and cost rule:
:mod:`ffneuro.accounting.rules.trifecta`)."""
from __future__ import annotations

import torch
from torch import nn

from ..accounting.rules.trifecta import TrifectaSpec
from .blocks import BLOCKS, Block


class TrifectaBlock(Block):
    def __init__(self, spec: TrifectaSpec):
        super().__init__()
        self.spec = spec
        node = spec.conv
        self.norm = nn.BatchNorm2d(spec.in_shape[0])
        self.conv = nn.Conv2d(node.in_shape[0], node.out_channels, node.kernel, padding=node.symmetric_padding,
                              bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv(self.norm(x)))
        if self.spec.pooled:
            y = nn.functional.max_pool2d(y, 2)
        return y

    def hand_on(self, y: torch.Tensor) -> torch.Tensor:
        return y.float()


BLOCKS.register("trifecta")(TrifectaBlock)
