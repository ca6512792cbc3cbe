"""An FF-CNN: a chain of independent FF units, a label scheme, and two readouts."""
from __future__ import annotations

import math
from dataclasses import replace

import torch
from torch import nn

from ..accounting import layer_pools, net_spec
from ..config import RunConfig
from ..goodness import GOODNESS
from ..labels import LabelScheme, build_labels, random_wrong_labels
from ..spec import NetSpec
from ..units import ConvBlock, FFUnit, UnitStats
from .readouts import LinearReadout


def conv_stack(config: RunConfig, image_shape: tuple[int, int, int]) -> list[ConvBlock]:
    """The layers shared by FF and BP: ``layers`` conv blocks, each fed the previous one's output;
    every ``pool_every``-th one downsamples with ``pool``, the others keep the map size."""
    blocks, shape = [], tuple(image_shape)
    for pool in layer_pools(config.layers, config.pool, config.pool_every):
        blocks.append(ConvBlock(shape, config.filters, config.kernel, pool))
        shape = blocks[-1].out_shape
    return blocks


class FFNet(nn.Module):
    """Units trained one after another on each batch; readouts see layers ``readout_from``..L."""

    def __init__(self, config: RunConfig, image_shape: tuple[int, int, int], num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.labels: LabelScheme = build_labels(config.labels, num_classes, image_shape, config.label_strength)
        goodness = GOODNESS.get(config.goodness)
        self.units = nn.ModuleList(
            FFUnit(f"unit{i + 1}", block, goodness, config.theta, lr=config.unit_lr(i), precision=config.precision, loss=config.loss,
                   trainable=config.train_first_layer or i > 0)
            for i, block in enumerate(conv_stack(config, image_shape))
        )
        self.readout_units = list(range(config.readout_from - 1, config.layers))
        self.linear = None
        if config.readout in ("linear", "both"):
            n_features = sum(math.prod(self.units[i].block.out_shape) for i in self.readout_units)
            self.linear = LinearReadout(n_features, num_classes, config.linear_lr)

    def set_lr(self, unit_lr: float | list[float], linear_lr: float) -> None:
        """``unit_lr``: one lr for every unit, or one per unit (``config.unit_lrs``, each scheduled)."""
        lrs = list(unit_lr) if isinstance(unit_lr, (list, tuple)) else [unit_lr] * len(self.units)
        for unit, lr in zip(self.units, lrs, strict=True):
            unit.set_lr(lr)
        if self.linear is not None:
            self.linear.set_lr(linear_lr)

    def train_batch(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None) -> tuple[list[UnitStats], torch.Tensor | None]:
        """One FF step: every unit updates on its own loss, then the linear readout on neutral features."""
        # positives and negatives stay one tensor of 2N rows (positives first) through every unit
        h = torch.cat([self.labels.embed(x, y),
                       self.labels.embed(x, random_wrong_labels(y, self.num_classes, generator))])
        stats = []
        for unit in self.units:
            h, s = unit.train_step(h, x.shape[0])
            stats.append(s)
        del h  # the last unit's output: nothing reads it, so free it before the readout runs
        linear_loss = None
        if self.linear is not None:
            with torch.no_grad():
                feats = self.features(self.labels.embed_neutral(x))
            linear_loss = self.linear.train_step(feats, y)
        return stats, linear_loss

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Flattened hand-on activations of the readout layers for already-embedded images."""
        # Write each readout unit's flattened output straight into one preallocated (N, features) tensor
        # (allocated with the hand-on output's dtype and device when the first readout unit is done),
        # so only the result and the current unit's tensors are alive, not a list plus its torch.cat.
        sizes = [math.prod(self.units[i].block.out_shape) for i in self.readout_units]
        out, col, h = None, 0, x
        for i, unit in enumerate(self.units[: self.readout_units[-1] + 1]):
            h = unit.hand_on(unit(h))
            if i in self.readout_units:
                if out is None:
                    out = h.new_empty((h.shape[0], sum(sizes)))
                n = sizes[i - self.readout_units[0]]
                out[:, col: col + n].copy_(h.flatten(1))
                col += n
        return out

    @torch.no_grad()
    def goodness_scores(self, x: torch.Tensor) -> torch.Tensor:
        """(N, classes): summed goodness of the readout layers with each candidate label embedded."""
        h = self.labels.embed_all(x)
        total = torch.zeros(h.shape[0], device=x.device)
        for i, unit in enumerate(self.units[: self.readout_units[-1] + 1]):
            y = unit(h)
            if i in self.readout_units:
                total += unit.goodness.fn(y.float())
            h = unit.hand_on(y)
        return total.view(x.shape[0], self.num_classes)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, readout: str) -> torch.Tensor:
        if readout == "goodness":
            return self.goodness_scores(x).argmax(1)
        if readout == "linear" and self.linear is not None:
            return self.linear(self.features(self.labels.embed_neutral(x))).argmax(1)
        raise ValueError(f"this network has no {readout!r} readout")

    def readouts(self) -> list[str]:
        return ["goodness"] + (["linear"] if self.linear is not None else [])

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Every optimiser by name (each trainable unit's, and the linear readout's): what a resume restores."""
        opts = {u.name: u.optimizer for u in self.units if u.optimizer is not None}
        if self.linear is not None:
            opts["linear"] = self.linear.optimizer
        return opts

    def costs(self):
        return [u.cost() for u in self.units]

    def layer_specs(self):
        """Each unit's conv block spec, named and flagged as the unit."""
        return [replace(u.block.spec, name=u.name, trainable=u.trainable) for u in self.units]

    def spec(self) -> NetSpec:
        """The FF units as a layer-spec graph (the linear readout reads several units, so it is not part of
        this sequential chain; the accounting adds it as ``readout_spec``)."""
        return net_spec(self.layer_specs())
