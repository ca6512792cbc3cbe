"""One-hot corner labels (Hinton's FF): the first pixels of the top row hold the one-hot label.

The baseline the paper argues against: only convolution positions near the corner see the label.
"""
from __future__ import annotations

import torch

from ..errors import ConfigError
from .base import LabelScheme
from .registry import LABELS


@LABELS.register("onehot")
class OneHotCorner(LabelScheme):
    """Overwrites pixels [0, 0:C] of every channel with the one-hot label; K is not used."""

    def __init__(self, num_classes, image_shape, strength):
        super().__init__(num_classes, image_shape, strength)
        if num_classes > image_shape[2]:
            raise ConfigError(f"onehot labels need image width >= {num_classes}, got {image_shape[2]}")
        self.register_buffer("patterns", torch.eye(num_classes), persistent=False)

    def _write(self, x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        out[:, :, 0, : self.num_classes] = codes.to(x.dtype).unsqueeze(1)
        return out

    def embed(self, x, labels):
        return self._write(x, self.patterns[labels])

    def describe(self) -> str:
        return ("the image with pixels [0, 0:classes] of every channel overwritten by the one-hot label c (one pass "
                "per class c for the goodness readout); the linear readout takes 1/classes in each of them")

    def embed_neutral(self, x):
        codes = torch.full((x.shape[0], self.num_classes), 1.0 / self.num_classes, device=x.device)
        return self._write(x, codes)
