"""Fourier labels (Scodellaro et al.): one 2-D plane wave per class, spread over the whole image.

Mode (f, θ, φ) at pixel (r, c) of an H×W image is cos(2π f (c/W·cos θ + r/H·sin θ) + φ), f in cycles
per image. Every convolution position sees part of the wave, so every unit sees the label.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..errors import ConfigError
from .base import LabelScheme
from .registry import LABELS


def plane_wave(height: int, width: int, freq: float, angle_deg: float, phase: float = 0.0) -> torch.Tensor:
    """A cosine plane wave (H, W) in [-1, 1] with ``freq`` cycles per image along direction ``angle_deg``."""
    theta = math.radians(angle_deg)
    rows = torch.arange(height, dtype=torch.float64).view(-1, 1) / height
    cols = torch.arange(width, dtype=torch.float64).view(1, -1) / width
    return torch.cos(2 * math.pi * freq * (cols * math.cos(theta) + rows * math.sin(theta)) + phase).float()


class _FourierLabels(LabelScheme):
    def _build(self, modes: Sequence[tuple[float, float]], phase: float) -> None:
        _, h, w = self.image_shape
        pats = torch.stack([plane_wave(h, w, f, a, phase) for f, a in modes]).unsqueeze(1)
        self.modes = [(float(f), float(a)) for f, a in modes]
        self.register_buffer("patterns", pats, persistent=False)


@LABELS.register("fourier1")
class FourierSet1(_FourierLabels):
    """Set 1: orientations 0°, 45°, 90°, 135° × the given frequencies, taken frequency by frequency."""

    def __init__(self, num_classes, image_shape, strength, *, frequencies: Sequence[float] = (2.0, 4.0, 6.0), phase: float = 0.0):
        super().__init__(num_classes, image_shape, strength)
        modes = [(f, a) for f in frequencies for a in (0.0, 45.0, 90.0, 135.0)]
        if num_classes > len(modes):
            raise ConfigError(f"fourier1 with {len(frequencies)} frequencies has {len(modes)} modes, "
                              f"fewer than {num_classes} classes; give more frequencies")
        self._build(modes[:num_classes], phase)


@LABELS.register("fourier2")
class FourierSet2(_FourierLabels):
    """Set 2: one frequency, one orientation per class equally spaced in [0°, 180°)."""

    def __init__(self, num_classes, image_shape, strength, *, frequency: float = 4.0, phase: float = 0.0):
        super().__init__(num_classes, image_shape, strength)
        self._build([(frequency, 180.0 * k / num_classes) for k in range(num_classes)], phase)
