"""CwComp's CFSE block (``--arch cfse``): conv (channel-wise grouped on the blocks that downsample) → ReLU
→ (2×2 max pool) → batch norm, whose output is both measured and handed on (spec and cost rule:
:mod:`ffneuro.accounting.rules.cfse`)."""
from __future__ import annotations

import torch
from torch import nn

from ..accounting.rules.cfse import CFSESpec
from .blocks import BLOCKS, Block

BN_EPS = 1e-4   # CwComp's batch-norm epsilon (its Conv_Layer)


class CFSEBlock(Block):
    def __init__(self, spec: CFSESpec):
        super().__init__()
        self.spec = spec
        node = spec.conv
        self.conv = nn.Conv2d(node.in_shape[0], node.out_channels, node.kernel, padding=node.symmetric_padding,
                              groups=node.groups, bias=node.bias)
        self.norm = nn.BatchNorm2d(spec.filters, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv(x))
        if self.spec.pooled:
            y = nn.functional.max_pool2d(y, 2)
        return self.norm(y)

    def hand_on(self, y: torch.Tensor) -> torch.Tensor:
        return y.float()


BLOCKS.register("cfse")(CFSEBlock)
