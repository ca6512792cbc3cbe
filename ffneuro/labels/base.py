"""The label-scheme interface: how a class label is written into an image."""
from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ..errors import ConfigError


def minmax01(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Rescale each sample to [0, 1] over all its pixels and channels."""
    flat = x.flatten(1)
    lo, hi = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)   # 4× faster than min/max (no indices)
    return (flat - lo).div_((hi - lo).clamp_min_(eps)).view_as(x)


class LabelScheme(nn.Module):
    """Embeds labels into images (N, C, H, W) with values in [0, 1].

    Subclasses build ``patterns`` (classes, 1 or C, H, W) and may override :meth:`embed` when a label
    is not additive. The neutral embedding (used by the linear readout) carries no class information.
    """

    patterns: torch.Tensor
    #: input channels the scheme adds to the image (0: the label is written into the image's own channels);
    #: set when the scheme registers, from its torch-free declaration :data:`ffneuro.catalog.LABEL_CHANNELS`
    extra_channels: int = 0
    #: True where the patterns are a random draw that belongs to the run: the network draws them from the
    #: run's seed (``build_labels(..., run_seed=)``), so a study over seeds also varies them
    run_seeded: ClassVar[bool] = False

    def __init__(self, num_classes: int, image_shape: tuple[int, int, int], strength: float):
        super().__init__()
        if num_classes < 2:
            raise ConfigError(f"a label scheme needs at least 2 classes, got {num_classes}")
        if not 0.0 <= strength <= 1.0:
            raise ConfigError(f"label strength K must lie in [0, 1], got {strength}")
        self.num_classes = num_classes
        self.image_shape = tuple(image_shape)
        self.strength = float(strength)

    def embed(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """x + K·pattern[label], min-max normalised to [0, 1]."""
        return minmax01(x + self.strength * self.patterns[labels].to(x.dtype))

    def embed_neutral(self, x: torch.Tensor) -> torch.Tensor:
        """x + K·mean(pattern): the same input statistics as a labelled image, no class."""
        return minmax01(x + self.strength * self.patterns.mean(0, keepdim=True).to(x.dtype))

    def describe(self) -> str:
        """What a network with this scheme takes as input, in a line (an exported graph's metadata)."""
        return ("label embedded image: minmax01(x + K * label_patterns[c]) per sample (one pass per class c "
                "for the goodness readout); the linear readout takes the neutral embedding "
                "minmax01(x + K * mean(label_patterns))")

    def embed_all(self, x: torch.Tensor) -> torch.Tensor:
        """Every candidate label for every sample, sample-major: row i·C + c is sample i with label c."""
        n, c = x.shape[0], self.num_classes
        labels = torch.arange(c, device=x.device).repeat(n)
        return self.embed(x.repeat_interleave(c, dim=0), labels)


def random_wrong_labels(labels: torch.Tensor, num_classes: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A uniformly random label different from the true one, for every sample (FF negatives)."""
    shift = torch.randint(1, num_classes, labels.shape, generator=generator, device=labels.device)
    return (labels + shift) % num_classes
