"""The paper's studies as data: which configs each table or figure compares, at a named budget.

A :class:`Study` is a set of *arms* (linked overrides, e.g. BP needs its own lr and a linear readout)
times a *grid* (a Cartesian product) times *seeds*, applied on top of a :class:`Budget` (a preset plus
the limits that make it affordable). Studies share one run folder: a point's file is named after the
config values that differ from the budget's base (``labels=fourier2_seed=1.h5``), so a point two
studies have in common (the base config, say) is trained once. Nothing here touches files or torch.

Where the paper's numbers are known they are in :attr:`Study.paper`; the rest of the paper's tables
and figures could not be read on the development machines (only its abstract and figure captions),
which :attr:`Study.paper_note` says instead of inventing them.
"""
from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .config import RunConfig
from .errors import ConfigError
from .presets import resolve_config
from .registry import Registry
from .run_groups import point_name

_CONFIG_KEYS = frozenset(f.name for f in fields(RunConfig))
PAPER = "Scodellaro et al., Sci. Rep. 2025 (arXiv 2312.14924)"


def _check_keys(where: str, keys) -> None:
    unknown = sorted(set(keys) - _CONFIG_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown config keys {', '.join(unknown)}; valid: {', '.join(sorted(_CONFIG_KEYS))}")


@dataclass(frozen=True)
class Budget:
    """What every point of a study starts from: a preset and the overrides that size the runs.
    ``preset`` None: each study's own preset (:attr:`Study.preset`; the published-setting studies)."""

    name: str
    preset: str | None
    overrides: Mapping[str, Any]
    note: str
    grid_like: str | None = None   # use the studies' grids of this other budget

    def __post_init__(self) -> None:
        _check_keys(f"budget {self.name}", self.overrides)

    def base(self, preset: str | None = None) -> RunConfig:
        """The base config: this budget's preset (or ``preset``, the study's, when it has none) and overrides."""
        name = self.preset or preset
        if name is None:
            raise ConfigError(f"budget {self.name} takes each study's own preset; this study has none")
        return resolve_config(name, dict(self.overrides))


BUDGETS: Registry[Budget] = Registry("budget")


def _budget(b: Budget) -> Budget:
    BUDGETS.register(b.name)(b)
    return b


# The paper's own setting: paper-mnist, 200 epochs on the full training set (a GPU job: days on a CPU).
_budget(Budget("paper", "paper-mnist", {}, "paper-mnist as published: 50k training images, 200 epochs"))

# What a 2-core CPU affords for ~40 runs in about an hour: mnist-small (SymBa, lr 6e-3: the paper's
# BCE/lr 5e-5 learns nothing visible in 2 short epochs, BENCHMARKS.md section 2) with the paper's
# K = 0.35 (pinned: mnist-small itself moved to 0.1 after this budget's K study) on 15k training and
# 5k validation images (train_limit counts training images only: the first 15,000 train, the last 5,000
# validate), 2 epochs, validated once at the end. Absolute accuracies are far below the paper's; the
# studies compare configs at equal budget.
_budget(Budget("cpu", "mnist-small",
               dict(label_strength=0.35, train_limit=15000, val_size=5000, epochs=2, eval_every=2),
               "mnist-small with K = 0.35 on 15k training / 5k validation images, 2 epochs (about 2 min per FF run on 2 cores)"))

# CIFAR-10 at the paper's CIFAR setting as we read it (paper-cifar10: 200 epochs; a GPU job).
_budget(Budget("cifar10-paper", "paper-cifar10", {}, "paper-cifar10 as defined in ffneuro/presets.py: 200 epochs"))

# Our own CIFAR-10 preset cut to what 2 cores afford in about 20 minutes per run: 64 filters instead of
# 256, 25k training / 5k validation images, 3 epochs, validated once at the end.
_budget(Budget("cifar10-cpu", "ffneuro-cifar10",
               dict(filters=64, train_limit=25000, val_size=5000, epochs=3, eval_every=3),
               "ffneuro-cifar10 with 64 filters on 25k training / 5k validation images, 3 epochs"))

# Seconds per run on the built-in synthetic data, with the CPU grids: checks that a study runs end to end.
_budget(Budget("smoke", "smoke", dict(epochs=1, train_limit=300, val_size=100),
               "the smoke preset on 300 synthetic training images, 1 epoch: a plumbing check, not a result",
               grid_like="cpu"))


@dataclass(frozen=True)
class PaperValue:
    """One number the paper reports: ``point`` (config values) → accuracy, and where it is printed."""

    point: Mapping[str, Any]
    readout: str
    split: str          # "test" | "val"
    mean: float
    sd: float | None
    source: str


@dataclass(frozen=True)
class Study:
    """One of the paper's comparisons. ``grids`` maps a budget name to its grid (smaller on a CPU)."""

    name: str
    title: str
    question: str
    grids: Mapping[str, Mapping[str, tuple]]
    arms: tuple[Mapping[str, Any], ...] = ({},)
    seeds: tuple[int, ...] = (0, 1, 2)
    paper: tuple[PaperValue, ...] = ()
    paper_note: str = ""
    by: tuple[str, ...] = field(default=())   # keys the table groups by (default: every arm/grid key)
    plot_x: str | None = None                 # the key on a plot's x axis (default: the last group key)
    preset: str | None = None                 # the study's own setting, for budgets without a preset

    def __post_init__(self) -> None:
        if not self.arms or not self.seeds:
            raise ConfigError(f"study {self.name}: needs at least one arm and one seed")
        for budget, grid in self.grids.items():
            BUDGETS.get(budget)
            _check_keys(f"study {self.name} ({budget})", grid)
            if any(len(v) == 0 or len(set(map(repr, v))) != len(v) for v in grid.values()):
                raise ConfigError(f"study {self.name} ({budget}): a grid list is empty or repeats a value")
        for arm in self.arms:
            _check_keys(f"study {self.name} arm", arm)

    def budgets(self) -> list[str]:
        """Every budget this study can run at (its own grids, and budgets borrowing one of them)."""
        return [b for b in BUDGETS.names() if b in self.grids or BUDGETS.get(b).grid_like in self.grids]

    def group_keys(self, budget: str) -> list[str]:
        """The config keys a table of this study groups by."""
        if self.by:
            return list(self.by)
        keys = [k for arm in self.arms for k in arm] + list(self._grid(budget))
        return list(dict.fromkeys(keys))

    def _grid(self, budget: str) -> Mapping[str, tuple]:
        if budget in self.grids:
            return self.grids[budget]
        like = BUDGETS.get(budget).grid_like
        if like in self.grids:
            return self.grids[like]
        raise ConfigError(f"study {self.name} has no grid for budget {budget!r}; valid: {', '.join(self.budgets())}")

    def points(self, budget: str, seeds: tuple[int, ...] | None = None) -> list[tuple[str, RunConfig]]:
        """(file stem, resolved config) of every arm × grid value × seed, seeds innermost."""
        b = BUDGETS.get(budget)
        grid = self._grid(budget)
        base = self.base(budget).to_dict()
        preset = b.preset or self.preset
        # a folder shared by the published-setting studies holds several presets: their names tell them apart
        prefix = "" if b.preset else f"{preset}_"
        out = []
        for arm in self.arms:
            for combo in itertools.product(*grid.values()):
                for seed in seeds or self.seeds:
                    overrides = {**b.overrides, **arm, **dict(zip(grid, combo)), "seed": seed}
                    config = resolve_config(preset, overrides)
                    out.append((prefix + run_stem(config.to_dict(), base), config))
        return out

    def base(self, budget: str) -> RunConfig:
        """The base config of this study at ``budget``: what a point's file name says the differences from."""
        return BUDGETS.get(budget).base(self.preset)


def base_diff(config: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
    """The values of ``config`` that differ from ``base``, in config order; the seed and the preset name
    never count (the seed is named separately, the preset is not a value)."""
    return {k: v for k, v in config.items() if k not in ("seed", "preset") and v != base.get(k)}


def run_stem(config: Mapping[str, Any], base: Mapping[str, Any]) -> str:
    """File stem for a config in a shared study folder: the values that differ from ``base``, by key, then the seed."""
    diff = base_diff(config, base)
    point = {k.replace("_", "-"): diff[k] for k in sorted(diff)}
    point["seed"] = config["seed"]
    return point_name(point)


STUDIES: Registry[Study] = Registry("study")


def _study(s: Study) -> Study:
    STUDIES.register(s.name)(s)
    return s


_NOT_READ = ("The paper's values for this comparison were not readable here (only its abstract and "
             "figure captions were reachable); compare the paper's own table or figure.")

# ``readout`` is compared within each run: both readouts are evaluated on the same trained network.
_study(Study(
    "readout", "Table 1: linear classifier vs goodness readout",
    "Which readout classifies better from the same FF-trained units?",
    grids={"paper": {}, "cpu": {}},
    paper=(PaperValue({"filters": 128}, "goodness", "test", 0.9916, 0.0002,
                      "Sci. Rep. Fig. 3 caption: 99.16 ± 0.02% on the test data, goodness readout"),),
    paper_note="Only the goodness readout's 99.16 ± 0.02% (test, paper-mnist) is quoted. " + _NOT_READ,
))

_study(Study(
    "labelset", "Table 2: Fourier label set 1 vs set 2",
    "Does the choice of Fourier label patterns change accuracy?",
    grids={"paper": {"labels": ("fourier1", "fourier2")}, "cpu": {"labels": ("fourier1", "fourier2")}},
    paper=(PaperValue({"labels": "fourier1"}, "goodness", "test", 0.9916, 0.0002,
                      "Sci. Rep. Fig. 3 caption (set 1, K = 35%)"),),
    paper_note="Set 1 is the one behind the 99.16% headline. " + _NOT_READ,
))

_study(Study(
    "pooling", "Table 3: pooling between units vs none",
    "Does 2×2 pooling after each unit help or hurt FF training?",
    grids={"paper": {"pool": ("none", "max")}, "cpu": {"pool": ("none", "max")}},
    paper=(PaperValue({"pool": "none"}, "goodness", "test", 0.9916, 0.0002,
                      "Sci. Rep. Fig. 3 (the headline network has no pooling in its Fig. 2 schematic)"),),
    paper_note=_NOT_READ,
))

_study(Study(
    "hyper", "Fig. 4: filters × kernel × batch size",
    "How do width, kernel size and batch size move accuracy?",
    grids={"paper": {"filters": (32, 64, 128), "kernel": (3, 5, 7), "batch_size": (25, 50, 100)},
           "cpu": {"filters": (16, 32), "kernel": (3, 5, 7), "batch_size": (50, 100)}},
    seeds=(0,),
    plot_x="kernel",
    paper_note="Our grid (the paper's exact values were not readable). " + _NOT_READ,
))

_study(Study(
    "strength", "Fig. 5: label strength K",
    "How strongly must the label pattern be superimposed?",
    grids={"paper": {"label_strength": (0.1, 0.2, 0.35, 0.5, 0.7)},
           "cpu": {"label_strength": (0.1, 0.2, 0.35, 0.5, 0.7)}},
    seeds=(0, 1),
    paper=(PaperValue({"label_strength": 0.35}, "goodness", "test", 0.9916, 0.0002,
                      "Sci. Rep. Fig. 3 caption: K = 35%"),),
    paper_note="K = 0.35 is the paper's chosen value. " + _NOT_READ,
))

# The paper's shortcut check: on natural images, Fourier labels let units solve the task from the label
# pattern alone; morphological labels are meant to prevent that.
_study(Study(
    "shortcut", "CIFAR-10: Fourier vs morphological labels (shortcut check)",
    "Do morphology-based labels train where Fourier labels take a shortcut, under the same budget?",
    grids={"cifar10-paper": {"labels": ("fourier1", "morph")}, "cifar10-cpu": {"labels": ("fourier1", "morph")}},
    seeds=(0,),
    paper_note=("The paper reports that morphology-based labels prevent shortcut solutions on CIFAR-10 "
                "(abstract); its accuracies were not readable here."),
))

# BP gets the paper's BP lr (1e-3, Fig. 3 caption) and its only readout, the linear head.
_study(Study(
    "width", "Fig. 3A: FF vs BP by number of filters",
    "How far is FF from backprop on the same network, as it gets wider?",
    grids={"paper": {"filters": (16, 32, 64, 128)}, "cpu": {"filters": (8, 16, 32, 64)}},
    arms=({"algo": "ff"}, {"algo": "bp", "readout": "linear", "lr": 1e-3}),
    seeds=(0,),
    paper=(PaperValue({"algo": "ff", "filters": 128}, "goodness", "test", 0.9916, 0.0002,
                      "Sci. Rep. Fig. 3 caption: 128 filters, 200 epochs"),),
    paper_note=("The paper plots validation accuracy by width for FF and BP and calls the best FF "
                "'comparable' to BP; the per-width values are in the figure only. " + _NOT_READ),
    by=("algo", "filters"),
))


# ------------------------------------------------------------------------------------------------------
# The FF variants' published settings (docs/variants/*.md): each study trains its preset and prints the
# number its paper reports beside ours. Budget "published" is the preset as published (GPU jobs);
# "cpu20k" is what 2 CPU cores afford: 20k training and 10k validation images, 1 and 2 epochs.

_budget(Budget("published", None, {}, "each study's preset as published (epochs, widths and all: GPU jobs)"))
_budget(Budget("cpu20k", None, dict(train_limit=20000, val_size=10000),
               "each study's preset on the first 20k training images (validation: the last 10k), 1 and 2 epochs"))

_CPU20K = {"epochs": (1, 2)}


def _published(name: str, title: str, question: str, paper: tuple[PaperValue, ...], note: str,
               cpu20k: Mapping[str, tuple] | None = None) -> Study:
    return _study(Study(name, title, question, grids={"published": {}, "cpu20k": dict(cpu20k or _CPU20K)},
                        seeds=(0,), paper=paper, paper_note=note, preset=name, by=("epochs",)))


_published(
    "hinton-fc-mnist", "Hinton (2022) §3.3: fully connected FF on MNIST",
    "Does the fully connected FF network of the FF paper reach its published accuracy here?",
    (PaperValue({}, "goodness", "test", 1 - 0.0136, None,
                "Hinton 2022 §3.3: 1.36% test error, 4×2000 ReLUs, 60 epochs (as quoted by the loeweX reimplementation)"),),
    "Only the goodness readout's 1.36% test error was read; the softmax readout's and any spread over seeds "
    "were not.")

_CWCOMP_NOTE = ("The abstract's test errors (0.58% MNIST, 7.69% F-MNIST, 21.89% CIFAR-10) do not say which of "
                "the two predictors (goodness 'Avg' or softmax 'Sf') they are, nor the epoch; the reference "
                "code keeps the epoch with the lowest test error. Tables per predictor were not read.")
_published(
    "cwcomp-mnist", "CwComp (AAAI 2024) on MNIST", "Does CwComp's CFSE network reach its published MNIST error?",
    (PaperValue({}, "best predictor", "test", 1 - 0.0058, None, "Papachristodoulou et al. 2024, abstract: 0.58%"),),
    _CWCOMP_NOTE)
_published(
    "cwcomp-fashion-mnist", "CwComp (AAAI 2024) on Fashion-MNIST", "Does CwComp reach its published F-MNIST error?",
    (PaperValue({}, "best predictor", "test", 1 - 0.0769, None, "Papachristodoulou et al. 2024, abstract: 7.69%"),),
    _CWCOMP_NOTE)
_published(
    "cwcomp-cifar10", "CwComp (AAAI 2024) on CIFAR-10", "Does CwComp reach its published CIFAR-10 error?",
    (PaperValue({}, "best predictor", "test", 1 - 0.2189, None, "Papachristodoulou et al. 2024, abstract: 21.89%"),),
    _CWCOMP_NOTE)
# the Trifecta's "small" network is ~270M MACs per 32×32 forward pass: its CPU rows use a quarter of the widths
_TRIFECTA_CPU = {"epochs": (1, 2), "widths": ((32, 32, 64, 64, 64, 128),)}
_published(
    "trifecta-mnist", "The Trifecta (layer-wise, no OLU) on MNIST", "How far does the Trifecta get without its "
    "overlapping local updates?", (), "The paper's MNIST accuracy was not read here (only its abstract's CIFAR-10 "
    "figure). Our runs have no overlapping local updates (docs/variants/trifecta.md).", _TRIFECTA_CPU)
_published(
    "trifecta-fashion-mnist", "The Trifecta (layer-wise, no OLU) on Fashion-MNIST", "How far does the Trifecta get "
    "without its overlapping local updates?", (), "The paper's F-MNIST accuracy was not read here. Our runs have no "
    "overlapping local updates.", _TRIFECTA_CPU)
_published(
    "trifecta-cifar10", "The Trifecta on CIFAR-10", "How far does the Trifecta get without its overlapping local "
    "updates?", (PaperValue({}, "goodness", "test", 0.84, None, "Dooms et al. 2023, abstract: 'around 84%'"),),
    "The 84% is with overlapping local updates (gradients across two blocks), which ffneuro's units forbid; "
    "ours are the layer-wise ablation. The paper's layer-wise number was not read.", _TRIFECTA_CPU)

# DeeperForward (Sun et al., ICLR 2025): the numbers its reference code's README tables for the 17-layer ResNet
# (mean ± sd; the paper reports them over 5 runs, as its reviews quote). The README does not say which epoch
# or readout they are: its main.py prints the test accuracy of the goodness readout after every epoch, summed
# over the layers SIP chose on the validation split.
_DEEPERFORWARD_NOTE = ("The README's table of the 17-layer ResNet (mean ± sd). Our presets differ from the code "
                       "in the skips (in-unit, two convs per loss) and the optimiser (docs/variants/deeperforward.md); "
                       "the epoch of the reported number was not read.")
_DF_SOURCE = "DeeperForward (Sun et al., ICLR 2025), reference code README, Main Results: ResNet, 17 layers"
# the ResNet is 1.26 GMAC per 32×32 forward pass: its CPU rows use a fifth of the widths (a 25th of the MACs)
_DEEPERFORWARD_CPU = {"epochs": (1, 2), "widths": ((20, 20, 40, 40, 80, 80, 160, 160),)}
_published(
    "deeperforward-mnist", "DeeperForward (ICLR 2025) on MNIST", "Does the residual mean-goodness network reach "
    "DeeperForward's published MNIST accuracy?",
    (PaperValue({}, "goodness", "test", 0.9963, 0.0004, _DF_SOURCE + ": 99.63 ± 0.04%"),), _DEEPERFORWARD_NOTE,
    _DEEPERFORWARD_CPU)
_published(
    "deeperforward-fashion-mnist", "DeeperForward (ICLR 2025) on Fashion-MNIST", "Does the residual mean-goodness "
    "network reach DeeperForward's published F-MNIST accuracy?",
    (PaperValue({}, "goodness", "test", 0.9313, 0.0013, _DF_SOURCE + ": 93.13 ± 0.13%"),), _DEEPERFORWARD_NOTE,
    _DEEPERFORWARD_CPU)
_published(
    "deeperforward-cifar10", "DeeperForward (ICLR 2025) on CIFAR-10", "Does the residual mean-goodness network reach "
    "DeeperForward's published CIFAR-10 accuracy?",
    (PaperValue({}, "goodness", "test", 0.8622, 0.0017, _DF_SOURCE + ": 86.22 ± 0.17%"),), _DEEPERFORWARD_NOTE,
    _DEEPERFORWARD_CPU)
