"""A network of local-learning units: how labels enter, a chain of units, and the readouts.

Two kinds of objective, set by the loss (``ffneuro.goodness.LOSSES``):

* **pair** (bce, symba): every image is embedded with its true label (positive) and a uniformly random
  wrong one (negative); the units compare the two. The goodness readout embeds every candidate label
  and sums the readout units' goodness: one forward per class.
* **class** (cwc, pvn, cwg; CwComp): the image carries no label and no negative image is made; each unit
  scores every class with its class-wise goodness. The goodness readout is one forward.

Every pass through the units (features, goodness scores, maps, activity) is :meth:`FFNet.walk`.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch
from torch import nn

from ..accounting import net_spec
from ..blocks import layer_specs
from ..blocks.module import BlockModule
from ..config import RunConfig
from ..errors import ConfigError
from ..goodness import GOODNESS, LOSSES
from ..labels import LabelScheme, build_labels, random_wrong_labels
from ..spec import NetSpec
from ..units import FFUnit, LocalObjective, OptimizerSettings, UnitStats
from .readouts import LinearReadout


def block_stack(config: RunConfig, image_shape: tuple[int, ...], num_classes: int | None = None,
                algo: str | None = None) -> list[BlockModule]:
    """The layers shared by FF and BP, built from the config's block specs (``config.arch``): each fed
    the previous one's hand-on output."""
    return [s.build() for s in layer_specs(config, image_shape, algo=algo, num_classes=num_classes)]



@dataclass
class StepResult:
    """What one training step reports: every loss by name (what the divergence guard watches, in
    :meth:`loss_names` order), the classifier's loss (FF: the linear readout's, BP: the network's; None
    without one) and, for FF, each unit's statistics."""

    losses: dict[str, torch.Tensor]
    train_loss: torch.Tensor | None
    unit_stats: list[UnitStats] | None = None


@dataclass
class WalkStep:
    """One unit of a pass: its index, the unit, its input, what goodness is measured on, its hand-on output."""

    index: int
    unit: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    out: torch.Tensor


def walk(modules, h: torch.Tensor, stop: int | None = None, start: int = 0) -> Iterator[WalkStep]:
    """The one pass through a chain of units or blocks (anything with ``forward`` and ``hand_on``),
    ``start..stop-1`` (default all) for what module ``start`` receives: each one's input, what it measures
    goodness on, its hand-on output. A step's input and neurons are released before the next unit runs
    (only the hand-on output lives on). Call under ``no_grad``."""
    stop = len(modules) if stop is None else stop
    for i in range(start, stop):
        module = modules[i]
        y = module(h)
        out = module.hand_on(y)
        step = WalkStep(i, module, h, y, out)
        yield step
        # the caller's loop variable keeps the step until the next one arrives: drop its big tensors now
        step.x = step.y = None
        del y
        h = out


@contextmanager
def evaluating(module: nn.Module):
    """``module`` in eval mode inside the block (batch norm on its running statistics), as it was after."""
    was = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was)


class FFNet(nn.Module):
    """Units trained one after another on each batch; readouts see layers ``readout_from``..L."""

    def __init__(self, config: RunConfig, image_shape: tuple[int, ...], num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        goodness, loss = GOODNESS.get(config.goodness), LOSSES.get(config.loss)
        self.pairs = loss.kind == "pair"
        self.labels: LabelScheme | None = (build_labels(config.labels, num_classes, image_shape, config.label_strength,
                                                        run_seed=config.seed) if self.pairs else None)
        specs = layer_specs(config, image_shape, algo="ff", num_classes=num_classes)
        if goodness.per_class:
            for s in specs:
                if s.goodness_shape[0] % num_classes:
                    raise ConfigError(f"{s.name}: class-wise goodness splits its {s.goodness_shape[0]} channels into "
                                      f"{num_classes} class groups; make every width a multiple of {num_classes}")
        objective = LocalObjective(goodness, config.loss, config.theta, config.loss_params,
                                   num_classes if goodness.per_class else None, config.peer_norm, config.peer_momentum)
        self.units = nn.ModuleList(
            FFUnit(s.name, s.build(), objective,
                   OptimizerSettings(config.optimizer, config.unit_lr(i), config.momentum, config.weight_decay),
                   trainable=s.trainable, precision=config.precision)
            for i, s in enumerate(specs)
        )
        self.base_lrs = [config.unit_lr(i) for i in range(config.layers)]
        self.linear_lr = config.linear_lr
        self.unit_epochs = config.unit_epochs
        self.readout_units = list(range(config.readout_from - 1, config.layers))
        # cfse's bn_refresh=chain: after each step one training-mode pass through units 1..this (0: none)
        chained = [i for i, s in enumerate(specs) if s.refresh_chained]
        self.refresh_through = chained[-1] + 1 if chained else 0
        self.linear = None
        if config.readout in ("linear", "both"):
            n_features = sum(math.prod(self.units[i].block.out_shape) for i in self.readout_units)
            self.linear = LinearReadout(n_features, num_classes, config.linear_lr, config.linear_optimizer,
                                        config.momentum, config.linear_weight_decay, config.linear_init,
                                        config.linear_loss)

    # ------------------------------------------------------------------------------------ inputs

    def input_rows(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None,
                   rows: slice | None = None) -> tuple[torch.Tensor, int, torch.Tensor | None]:
        """The rows one training step runs through the units: (rows, positives, row labels).

        Pair objective: the true-label embeddings, then the wrong-label ones (2N rows, N positives, no
        labels needed by the units). Class objective: the images themselves, all positive, with labels.
        ``rows``: only those images (a data-parallel share, or none for a pipeline stage that receives its
        input), after drawing the whole batch's negative labels, so the generator advances as in one
        process; an image's embedding does not depend on the others, so the shares add up to the batch."""
        wrong = random_wrong_labels(y, self.num_classes, generator) if self.pairs else None
        if rows is not None:
            x, y = x[rows], y[rows]
            wrong = wrong[rows] if wrong is not None else None
        _, n, labels = self.row_layout(y)
        if self.pairs:
            return torch.cat([self.labels.embed(x, y), self.labels.embed(x, wrong)]), n, labels
        return x, n, labels

    def row_layout(self, y: torch.Tensor) -> tuple[int, int, torch.Tensor | None]:
        """What :meth:`input_rows` gives for images labelled ``y``, without the rows themselves: (number of
        rows, positives, row labels)."""
        n = len(y)
        return (2 * n, n, None) if self.pairs else (n, n, y)

    def readout_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the linear readout (and its CAM) sees: the neutral embedding, or the image itself."""
        return self.labels.embed_neutral(x) if self.pairs else x

    def activity_input(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """What the units see in training, for measuring activity: the true-label embedding (the neutral
        one without ``labels``), or the image itself when no label enters the image."""
        if not self.pairs:
            return x
        return self.labels.embed(x, labels) if labels is not None else self.labels.embed_neutral(x)

    @property
    def activity_embedding(self) -> str:
        """How :meth:`activity_input` embeds labels (recorded with the measured activity)."""
        return "positive" if self.pairs else "none"

    # --------------------------------------------------------------------------------- the walk

    def walk(self, h: torch.Tensor, stop: int | None = None, start: int = 0) -> Iterator[WalkStep]:
        """:func:`walk` through the units ``start..stop-1`` for already-prepared input ``h`` (:meth:`readout_input`
        etc., or what unit ``start`` receives)."""
        return walk(self.units, h, stop, start)

    # --------------------------------------------------------------------------------- training

    def start_epoch(self, epoch: int, schedule: Callable[[float], float]) -> None:
        """Set every optimiser's lr to ``schedule(base lr)`` and stop the units whose --unit-epochs are over."""
        self.set_lrs(schedule)
        for i, unit in enumerate(self.units):
            unit.active = self.unit_epochs is None or epoch < self.unit_epochs[i]

    def set_lrs(self, schedule: Callable[[float], float]) -> None:
        """Every optimiser's lr: ``schedule`` of its own base lr (the unit's, or the linear readout's)."""
        for i, unit in enumerate(self.units):
            unit.set_lr(schedule(self.base_lrs[i]))
        if self.linear is not None:
            self.linear.set_lr(schedule(self.linear_lr))

    def set_lr(self, unit_lr: float | list[float], linear_lr: float) -> None:
        """``unit_lr``: one lr for every unit, or one per unit."""
        lrs = list(unit_lr) if isinstance(unit_lr, (list, tuple)) else [unit_lr] * len(self.units)
        for unit, lr in zip(self.units, lrs, strict=True):
            unit.set_lr(lr)
        if self.linear is not None:
            self.linear.set_lr(linear_lr)

    def train_batch(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None,
                    rows: slice | None = None) -> StepResult:
        """One step: every unit updates on its own loss, then the linear readout on detached features.
        Without a label in the image (class objective) those are the readout units' hand-on outputs of this
        very step (training-mode batch norm, the units before their update): no extra forward. With one,
        a single neutral pass through the readout units after the update (eval mode, ``no_grad``).
        ``rows``: train on those images of the batch only (a data-parallel share), after drawing the whole
        batch's negative labels, so that the shares together are the one-process step."""
        # pair objective: positives and negatives stay one tensor of 2N rows (positives first) through every unit
        h, n, labels = self.input_rows(x, y, generator, rows)
        rows_in = h if self.refresh_through else None   # what the refresh pass runs on
        if rows is not None:
            x, y = x[rows], y[rows]
        collect = self.linear is not None and not self.pairs   # unlabelled rows: the readout reuses them
        stats, kept = [], []
        for i, unit in enumerate(self.units):
            h, s = unit.train_step(h, n, labels)
            stats.append(s)
            if collect and i in self.readout_units:
                kept.append(h)
        del h  # the last unit's output: nothing reads it (unless kept), so free it before the readout runs
        losses = {unit.name: s.loss for unit, s in zip(self.units, stats)}
        linear_loss = None
        if self.linear is not None:
            if collect:
                feats = kept[0].flatten(1) if len(kept) == 1 else torch.cat([k.flatten(1) for k in kept], 1)
                del kept
            else:
                with torch.no_grad(), evaluating(self):
                    feats = self.features(self.readout_input(x))
            linear_loss = self.linear.train_step(feats, y)
            losses["linear readout"] = linear_loss
            del feats
        if rows_in is not None:
            self.refresh(rows_in)
        return StepResult(losses, linear_loss, stats)

    @torch.no_grad()
    def refresh(self, h: torch.Tensor) -> None:
        """One pass of the step's rows through units 1..``refresh_through`` after all of them have updated, in
        the mode the step ran in (training: batch norm's running statistics take a step toward the new weights
        and what the updated units before hand on). CwComp's code gets it from the ``predict`` call its
        training loop makes on every batch; cfse's ``bn_refresh=chain`` asks for it."""
        for _ in self.walk(h, self.refresh_through):
            pass

    def loss_names(self) -> list[str]:
        return [u.name for u in self.units] + (["linear readout"] if self.linear is not None else [])

    # ------------------------------------------------------------------------------- readouts

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Flattened hand-on activations of the readout layers for prepared input (:meth:`readout_input`)."""
        return self._readout_pass(x, scores=False, features=True)[1]

    @torch.no_grad()
    def goodness_scores(self, x: torch.Tensor) -> torch.Tensor:
        """(N, classes): summed goodness of the readout layers for each class. Pair objective: with each
        candidate label embedded (one forward per class); class objective: the class-wise goodness of one
        forward of the image."""
        h = self.labels.embed_all(x) if self.pairs else x
        return self._readout_pass(h, scores=True, features=False)[0].view(x.shape[0], self.num_classes)

    def _readout_pass(self, h: torch.Tensor, *, scores: bool, features: bool
                      ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """One walk up to the last readout unit: the summed goodness scores of the readout units and/or
        their flattened hand-on outputs, written straight into one preallocated (N, features) tensor (so
        only the result and the current unit's tensors are alive, not a list plus its torch.cat)."""
        sizes = [math.prod(self.units[i].block.out_shape) for i in self.readout_units]
        total = out = None
        col = 0
        for step in self.walk(h, self.readout_units[-1] + 1):
            if step.index not in self.readout_units:
                continue
            if scores:
                g = step.unit.scores(step.y)
                total = g if total is None else total + g
            if features:
                if out is None:
                    out = step.out.new_empty((step.out.shape[0], sum(sizes)))
                k = sizes[step.index - self.readout_units[0]]
                out[:, col: col + k].copy_(step.out.flatten(1))
                col += k
        return total, out

    @torch.no_grad()
    def predict(self, x: torch.Tensor, readout: str) -> torch.Tensor:
        if readout == "goodness":
            return self.goodness_scores(x).argmax(1)
        if readout == "linear" and self.linear is not None:
            return self.linear(self.features(self.readout_input(x))).argmax(1)
        raise ValueError(f"this network has no {readout!r} readout")

    @torch.no_grad()
    def predict_all(self, x: torch.Tensor, readouts: Sequence[str]) -> dict[str, torch.Tensor]:
        """:meth:`predict` for several readouts. Where no label enters the image, the goodness readout and
        the linear one read the same forward, so one walk serves both (evaluation's cost halves)."""
        if self.pairs or self.linear is None or set(readouts) != {"goodness", "linear"}:
            return {r: self.predict(x, r) for r in readouts}
        total, feats = self._readout_pass(x, scores=True, features=True)
        return {"goodness": total.view(x.shape[0], self.num_classes).argmax(1),
                "linear": self.linear(feats).argmax(1)}

    def readouts(self) -> list[str]:
        return ["goodness"] + (["linear"] if self.linear is not None else [])

    def eval_rows_per_image(self, readouts: list[str]) -> int:
        """Rows one evaluated image costs at once: the pair objective's goodness readout runs every class."""
        return self.num_classes if self.pairs and "goodness" in readouts else 1

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Every optimiser by name (each trainable unit's, and the linear readout's): what a resume restores."""
        opts = {u.name: u.optimizer for u in self.units if u.optimizer is not None}
        if self.linear is not None:
            opts["linear"] = self.linear.optimizer
        return opts

    # ----------------------------------------------------------------------------- accounting

    def costs(self):
        return [u.cost() for u in self.units]

    def layer_specs(self):
        """Each unit's block spec, named and flagged as the unit."""
        return [replace(u.block.spec, name=u.name, trainable=u.trainable) for u in self.units]

    def spec(self) -> NetSpec:
        """The FF units as a layer-spec graph (the linear readout reads several units, so it is not part of
        this sequential chain; the accounting adds it as ``readout_spec``)."""
        return net_spec(self.layer_specs())
