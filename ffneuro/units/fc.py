"""The fully connected block (``--arch fc``, Hinton 2022): linear → ReLU, handing on the RMS-normalised
ReLU output; the first block RMS-normalises the flattened image first (spec and cost rule:
:mod:`ffneuro.accounting.rules.fc`)."""
from __future__ import annotations

import torch
from torch import nn

from ..accounting.rules.fc import DenseSpec
from .blocks import BLOCKS, Block, rms_normalize


class FCBlock(Block):
    """``width`` ReLU neurons fully connected to the (flattened) input."""

    def __init__(self, spec: DenseSpec):
        super().__init__()
        self.spec = spec
        self.linear = nn.Linear(spec.in_elems, spec.width, bias=spec.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)
        if self.spec.input_norm:
            h = rms_normalize(h)
        return torch.relu(self.linear(h))

    def hand_on(self, y: torch.Tensor) -> torch.Tensor:
        return rms_normalize(y.float())


BLOCKS.register("fc")(FCBlock)
