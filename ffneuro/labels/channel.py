"""Channel labels (the Trifecta's code, Dooms et al.): the label is a map of its own, one more input channel.

Class k owns a fixed H×W pattern drawn once from ``seed``: i.i.d. standard normal values, what the reference
code's label embedding (``nn.Embedding(classes, H*W)``) holds at its random start. A network draws them from
its run's seed (``run_seeded``), as the code draws its embedding anew with every seed: one draw shared by
every seed made a seed study of one draw (BENCHMARKS section 17, ``trifecta-mnist`` at 20k). Two schemes
differ only in the maps' scale:

* ``channel``: all patterns mapped together by one affine map onto [0, 1], the range of unstandardised
  images (and of export and simulate);
* ``channel-normal``: the N(0, 1) draws as they are, the scale of standardised images and of the
  reference's embedding. A first block that starts with batch norm undoes the common map in training
  (batch statistics), but its running statistics start at mean 0 and variance 1 and lag the data, so the
  scale still reaches the test early on (BENCHMARKS section 17: the Trifecta presets take this one).

The image itself is left as it is: the network's first unit sees C + 1 channels
(``ffneuro.catalog.LABEL_CHANNELS``). K is not used.

The patterns are a persistent buffer of the network, so every stored weight set carries them and a
restored run (eval, resume, cam, export, simulate) embeds the very patterns it was trained with.
"""
from __future__ import annotations

import torch

from ..errors import ConfigError
from .base import LabelScheme
from .registry import LABELS


def channel_draws(num_classes: int, height: int, width: int, seed: int) -> torch.Tensor:
    """(classes, 1, H, W) float64: the seeded N(0, 1) draws the patterns come from."""
    gen = torch.Generator().manual_seed(int(seed))
    return torch.randn(num_classes, 1, height, width, generator=gen, dtype=torch.float64)


def channel_patterns(num_classes: int, height: int, width: int, seed: int) -> torch.Tensor:
    """(classes, 1, H, W) in [0, 1]: the seeded N(0, 1) draws, all mapped by the same affine map onto [0, 1]."""
    draw = channel_draws(num_classes, height, width, seed)
    lo, hi = draw.min(), draw.max()
    return ((draw - lo) / (hi - lo)).float()


@LABELS.register("channel")
class ChannelLabels(LabelScheme):
    """Concatenates class k's fixed random map to the image as one more channel (the image is unchanged);
    its one extra channel is declared in :data:`ffneuro.catalog.LABEL_CHANNELS`."""

    pattern_values = "in [0, 1]"   # the maps' values, as describe() (an exported graph's metadata) states them
    run_seeded = True

    def __init__(self, num_classes, image_shape, strength, *, seed: int = 0):
        super().__init__(num_classes, image_shape, strength)
        _, h, w = self.image_shape
        if h * w < 2:
            raise ConfigError(f"channel labels need images of at least 2 pixels, got {h}x{w}")
        self.seed = int(seed)
        # persistent (unlike the other schemes' recomputable patterns): stored with every weight set
        self.register_buffer("patterns", self.make_patterns(num_classes, h, w, self.seed))

    @staticmethod
    def make_patterns(num_classes: int, height: int, width: int, seed: int) -> torch.Tensor:
        """The class maps (classes, 1, H, W): the seeded draws mapped onto [0, 1]."""
        return channel_patterns(num_classes, height, width, seed)

    def _with(self, x: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, maps.to(x.dtype)], dim=1)

    def embed(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The image with class ``labels[i]``'s map as its last channel: (N, C + 1, H, W)."""
        return self._with(x, self.patterns[labels])

    def embed_neutral(self, x: torch.Tensor) -> torch.Tensor:
        """The image with the mean of the class maps as its last channel: no class, the same statistics."""
        return self._with(x, self.patterns.mean(0, keepdim=True).expand(x.shape[0], -1, -1, -1))

    def describe(self) -> str:
        return ("the image (C channels) with one more channel appended: label_patterns[c] for class c, "
                f"{self.pattern_values} (one pass per class c for the goodness readout); the linear readout "
                "takes mean(label_patterns)")


@LABELS.register("channel-normal")
class ChannelNormalLabels(ChannelLabels):
    """:class:`ChannelLabels` with the maps left as their N(0, 1) draws (the reference embedding's scale),
    for standardised images."""

    pattern_values = "standard normal values"

    @staticmethod
    def make_patterns(num_classes: int, height: int, width: int, seed: int) -> torch.Tensor:
        """The class maps (classes, 1, H, W): the seeded N(0, 1) draws themselves."""
        return channel_draws(num_classes, height, width, seed).float()
