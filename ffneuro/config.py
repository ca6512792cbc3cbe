"""The resolved configuration of a run: one validated dataclass, saved whole in every run file."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from .accounting.ops import POOLS
from .blocks import BLOCKS, layer_pools, layer_specs
from .catalog import GOODNESS_PER_CLASS, LABEL_SCHEMES, LINEAR_LOSSES, LOSS_INFO, OPTIMIZER_NAMES
from .data.normalise import NORMALISATIONS
from .errors import ConfigError, RunFileError
from .precision import PRECISIONS
from .spec import Conv2d
from .spec.block import ShapeError, kernel_reach_error

if TYPE_CHECKING:
    from .store import RunRecord

ALGOS = ("ff", "bp")
READOUTS = ("goodness", "linear", "both")
# how the FF linear readout starts: torch (PyTorch's default weights, a bias) | zero (no bias, weights at zero:
# Hinton's code's softmax classifier)
LINEAR_INITS = ("torch", "zero")
DEVICES = ("auto", "cpu", "cuda")
# training-batch augmentation (ffneuro.data.augment): crop, then rotate (±15°), then flip
AUGMENTS = ("none", "crop", "flip", "crop+flip", "rotate", "crop+rotate", "crop+rotate+flip")
NO_LABELS = "none"  # --labels none: the image carries no label (class-wise losses: each unit classifies itself)
# the fields that shape the network (its layers, their sizes and block wiring): two configs that agree on
# these build the same units, e.g. an FF run and its BP twin. A new field that changes a unit goes here.
NETWORK_KEYS = ("dataset", "layers", "filters", "kernel", "pool", "pool_every", "arch", "widths", "pool_at",
                "block_options")
# options that moved into block_options, by the block type that reads them (older run files hold them flat)
MOVED_TO_BLOCK_OPTIONS = ("group_at",)
# the real-valued fields: each must be a finite number (theta may also be None: the goodness's default)
FLOAT_FIELDS = ("label_strength", "theta", "lr", "cooldown_start", "linear_lr", "peer_norm", "peer_momentum",
                "momentum", "weight_decay", "linear_weight_decay")


def _is_finite(value) -> bool:
    """A real number (not a bool or a string) that is neither infinite nor NaN."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class RunConfig:
    """Everything that defines a run. Defaults are the paper's MNIST setting (see ``paper-mnist``)."""

    dataset: str = "mnist"
    algo: str = "ff"
    layers: int = 3
    filters: int = 128
    kernel: int = 7
    pool: str = "none"                 # 2× downsampling: none | max | avg (2×2 pool) | stride (stride-2 conv)
    labels: str = "fourier1"
    label_strength: float = 0.35       # K
    goodness: str = "sumsq"
    loss: str = "bce"                  # bce: the paper's; symba: pairwise positive-vs-negative
    theta: float | None = None         # None: the goodness function's default (sumsq: #neurons)
    train_first_layer: bool = False    # the paper leaves layer 1 as a fixed random conv
    readout_from: int = 2              # first layer (1-based) whose activity feeds both readouts
    readout: str = "both"
    epochs: int = 200
    batch_size: int = 50
    lr: float = 5e-5
    cooldown_start: float = 0.5        # fraction of epochs after which lr falls linearly to 0
    linear_lr: float = 1e-3            # Adam lr of the FF linear readout (BP uses lr for everything)
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    train_limit: int | None = None     # use only the first N training images
    val_size: int | None = None        # the last N training images are the validation split (None:
                                       # automatic, from the dataset and train_limit: data.split_sizes)
    eval_batch_size: int = 1000
    preset: str | None = None
    augment: str = "none"              # training batches only: none | crop | flip | crop+flip
    crop_padding: int = 4              # crop: zero pixels padded on every side before the random crop
    unit_lrs: tuple[float, ...] | None = None  # FF: Adam lr of each unit (None: lr for all); BP ignores it
    eval_every: int = 1                # evaluate validation every k epochs (and always after the last)
    pool_every: int = 1                # unit i (1-based) downsamples iff i % pool_every == 0 (and pool != none)
    arch: str = "conv"                 # block type of every unit: conv | fc | cfse | trifecta (ffneuro.units)
    widths: tuple[int, ...] | None = None   # filters (conv) or neurons (fc) of each layer (None: filters for all)
    loss_params: dict[str, float] | None = None  # the loss's hyperparameters (None: its defaults), e.g. {"alpha": 4}
    peer_norm: float = 0.0             # weight of Hinton's peer-normalisation penalty in every unit's loss (0: off)
    peer_momentum: float = 0.9         # momentum of the running mean activity peer normalisation compares
    optimizer: str = "adam"            # every unit's optimiser: adam | sgd (the linear readout: linear_optimizer)
    momentum: float = 0.9              # sgd momentum
    weight_decay: float = 0.0          # the units' optimisers' weight decay
    linear_optimizer: str = "adam"     # the FF linear readout's optimiser: adam | sgd (with ``momentum``)
    linear_weight_decay: float = 0.0   # the FF linear readout's weight decay (Hinton's code: sgd, 3e-3)
    linear_init: str = "torch"         # the FF linear readout's start: torch | zero (no bias, zero weights)
    linear_loss: str = "ce"            # the FF linear readout's loss: ce (of its logits) | ce-of-softmax (CwComp's)
    unit_epochs: tuple[int, ...] | None = None   # unit i learns only in its first unit_epochs[i] epochs (None: all)
    pool_at: tuple[int, ...] | None = None  # the units (1-based) that downsample with pool (None: every pool_every-th)
    cooldown_per_step: bool = False    # the cool-down lowers the lr every batch (else once per epoch)
    drop_last: bool = False            # skip each epoch's last batch when it is short (as a DataLoader's drop_last)
    # the block type's own options, as its file declares them (ffneuro/blocks/NAME.py, option_names) and checks
    # when the network is built, e.g. cfse's {"group_at": [2]}: the units whose conv is grouped by class
    block_options: dict[str, Any] | None = None
    # input standardisation after scaling to [0, 1]: none | mnist | half | imagenet | fashion-mnist | cifar10
    # (ffneuro.data.normalise, where each setting's mean/std and source are); run files written before this
    # field read as none
    normalise: str = "none"

    def __post_init__(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ConfigError(msg)

        need(self.algo in ALGOS, f"unknown algo {self.algo!r}; valid: {', '.join(ALGOS)}")
        need(self.readout in READOUTS, f"unknown readout {self.readout!r}; valid: {', '.join(READOUTS)}")
        need(self.linear_init in LINEAR_INITS,
             f"unknown linear init {self.linear_init!r}; valid: {', '.join(LINEAR_INITS)}")
        need(self.linear_loss in LINEAR_LOSSES,
             f"unknown linear loss {self.linear_loss!r}; valid: {', '.join(LINEAR_LOSSES)}")
        need(self.device in DEVICES, f"unknown device {self.device!r}; valid: {', '.join(DEVICES)}")
        need(self.precision in PRECISIONS, f"unknown precision {self.precision!r}; valid: {', '.join(PRECISIONS)}")
        need(self.pool in POOLS, f"unknown pool {self.pool!r}; valid: {', '.join(POOLS)}")
        # a ConfigError like every other bad value (the registry itself raises UnknownNameError)
        # the names the torch-backed registries hold, from their torch-free tables (ffneuro.catalog)
        for kind, name, valid in (("goodness", self.goodness, GOODNESS_PER_CLASS), ("FF loss", self.loss, LOSS_INFO),
                                  (BLOCKS.kind, self.arch, BLOCKS.names()),
                                  ("optimizer", self.optimizer, OPTIMIZER_NAMES),
                                  ("optimizer", self.linear_optimizer, OPTIMIZER_NAMES)):
            need(name in valid, f"unknown {kind} {name!r}; valid: {', '.join(sorted(valid))}")
        need(self.labels == NO_LABELS or self.labels in LABEL_SCHEMES,
             f"unknown label scheme {self.labels!r}; valid: {', '.join([*sorted(LABEL_SCHEMES), NO_LABELS])}")
        self._check_objective()
        need(self.normalise in NORMALISATIONS,
             f"unknown normalise {self.normalise!r}; valid: {', '.join(NORMALISATIONS)}")
        need(self.augment in AUGMENTS, f"unknown augment {self.augment!r}; valid: {', '.join(AUGMENTS)}")
        need(isinstance(self.crop_padding, int) and not isinstance(self.crop_padding, bool) and 0 <= self.crop_padding <= 16,
             f"crop-padding must be an integer in 0..16, got {self.crop_padding!r}")
        for name in FLOAT_FIELDS:  # first: NaN slips through every range check below (comparisons are false)
            value = getattr(self, name)
            need(value is None and name == "theta" or _is_finite(value),
                 f"{name} must be a finite number, got {value!r}")
        if self.unit_lrs is not None:
            try:  # stored runs hold a JSON list; keep a tuple so configs stay hashable and comparable
                self.unit_lrs = tuple(float(v) for v in self.unit_lrs)
            except (TypeError, ValueError):
                raise ConfigError(f"unit_lrs must be a list of numbers, got {self.unit_lrs!r}") from None
            need(all(math.isfinite(v) for v in self.unit_lrs), f"unit_lrs must be finite numbers, got {self.unit_lrs}")
            need(len(self.unit_lrs) == self.layers,
                 f"unit_lrs needs one lr per layer ({self.layers}), got {len(self.unit_lrs)}")
            need(all(v > 0 for v in self.unit_lrs), "learning rates must be > 0 (unit_lrs)")
        self.widths = self._int_tuple("widths", self.widths, 1)
        self.unit_epochs = self._int_tuple("unit_epochs", self.unit_epochs, 1)
        self.pool_at = self._unit_set("pool_at", self.pool_at)
        self._check_block_options()
        need(self.peer_norm >= 0, f"peer-norm must be >= 0, got {self.peer_norm}")
        need(0.0 <= self.peer_momentum < 1.0, f"peer-momentum must lie in [0, 1), got {self.peer_momentum}")
        need(0.0 <= self.momentum < 1.0, f"momentum must lie in [0, 1), got {self.momentum}")
        need(self.weight_decay >= 0, f"weight decay must be >= 0, got {self.weight_decay}")
        need(self.linear_weight_decay >= 0, f"linear weight decay must be >= 0, got {self.linear_weight_decay}")
        need(self.layers >= 1, f"layers must be >= 1, got {self.layers}")
        need(self.filters >= 1, f"filters must be >= 1, got {self.filters}")
        need(self.kernel >= 1 and self.kernel % 2 == 1, f"kernel must be a positive odd number, got {self.kernel}")
        need(0.0 <= self.label_strength <= 1.0, f"label strength K must lie in [0, 1], got {self.label_strength}")
        need(self.epochs >= 0, f"epochs must be >= 0, got {self.epochs}")
        need(self.batch_size >= 1, f"batch size must be >= 1, got {self.batch_size}")
        need(isinstance(self.drop_last, bool), f"drop_last is true or false, got {self.drop_last!r}")
        need(self.eval_batch_size >= 1, f"eval batch size must be >= 1, got {self.eval_batch_size}")
        need(self.eval_every >= 1, f"eval-every must be >= 1, got {self.eval_every}")
        need(self.pool_every >= 1, f"pool-every must be >= 1, got {self.pool_every}")
        need(self.lr > 0 and self.linear_lr > 0, "learning rates must be > 0")
        need(0.0 <= self.cooldown_start <= 1.0, f"cooldown start must lie in [0, 1], got {self.cooldown_start}")
        need(self.train_limit is None or self.train_limit >= 1, f"train limit must be >= 1, got {self.train_limit}")
        need(self.val_size is None or self.val_size >= 0, f"validation size must be >= 0, got {self.val_size}")
        need(1 <= self.readout_from <= self.layers,
             f"readout_from must lie in 1..{self.layers} (the number of layers), got {self.readout_from}")
        need(self.algo == "bp" or self.train_first_layer or self.layers >= 2,
             "a 1-layer FF network with an untrained first layer learns nothing; add --train-first-layer")

    def check_shapes(self, image_shape: Sequence[int], num_classes: int | None = None, *,
                     algo: str | None = None) -> list:
        """The block specs of this config on (C, H, W) images, or a one-line ConfigError naming the first
        block that cannot work there (a kernel that reaches past its input map from every position, a
        map too small to downsample) and a fix. The one check for training and profiling; ``algo`` names
        and flags the blocks as FF units or BP layers (default: the config's)."""
        algo = algo or self.algo
        try:
            specs, err = layer_specs(self, image_shape, algo=algo, num_classes=num_classes), None
        except ShapeError as exc:
            specs, err = [], exc
        # the first conv whose kernel only ever sees padding, up to the block that could not be built
        reach = next((e for s in specs for n in s.synapses if isinstance(n, Conv2d)
                      for e in [kernel_reach_error(s.name, n.in_shape, n.kernel[0])] if e is not None), None)
        if reach is None and err is not None and len(err.in_shape) == 3:
            reach = kernel_reach_error(err.block, err.in_shape, self.kernel)
        err = reach or err
        if err is None:
            return specs
        i = int(err.block.removeprefix("unit" if algo == "ff" else "layer"))
        if not any(p != "none" for p in layer_pools(self.layers, self.pool, self.pool_every, self.pool_at)[:i - 1]):
            raise ConfigError(str(err)) from None
        fewer = f"use at most {i - 1} layers, a larger --pool-every, or --pool none"
        fix = f"{err.fix}, or {fewer}" if err.fix.startswith("use --kernel") else fewer
        raise ConfigError(f"{err.problem}; {fix}") from None

    def _int_tuple(self, name: str, values, minimum: int) -> tuple[int, ...] | None:
        """A per-layer list of ints as a tuple (stored runs hold a JSON list): one per layer, each >= ``minimum``."""
        if values is None:
            return None
        try:
            out = tuple(int(v) for v in values)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a list of integers, got {values!r}") from None
        if len(out) != self.layers:
            raise ConfigError(f"{name} needs one value per layer ({self.layers}), got {len(out)}")
        if min(out) < minimum:
            raise ConfigError(f"every value of {name} must be >= {minimum}, got {list(out)}")
        return out

    def _unit_set(self, name: str, values, empty_ok: bool = False) -> tuple[int, ...] | None:
        """A set of unit numbers (1-based) as a sorted tuple; each must name a layer."""
        if values is None:
            return None
        try:
            out = tuple(sorted({int(v) for v in values}))
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a list of unit numbers, got {values!r}") from None
        if (not out and not empty_ok) or not all(1 <= v <= self.layers for v in out):
            raise ConfigError(f"{name.replace('_', '-')} lists units 1..{self.layers}, got {list(out)}")
        return out

    def _check_objective(self) -> None:
        """The goodness, the loss, its parameters and the labels must fit together: pair losses (bce,
        symba) take per-sample goodness and an image with a label in it; class losses (cwc, pvn, cwg)
        take class-wise goodness and an image without one."""
        loss, per_class = LOSS_INFO[self.loss], GOODNESS_PER_CLASS[self.goodness]
        if self.loss_params is not None:
            try:
                self.loss_params = {str(k): float(v) for k, v in dict(self.loss_params).items()}
            except (TypeError, ValueError):
                raise ConfigError(f"loss_params must map names to numbers, got {self.loss_params!r}") from None
            if not all(math.isfinite(v) for v in self.loss_params.values()):
                raise ConfigError(f"loss_params must be finite numbers, got {self.loss_params}")
        loss.resolve(self.loss_params)   # an unknown name lists the loss's parameters
        if loss.kind == "class":
            if not per_class:
                raise ConfigError(f"loss {self.loss!r} takes class-wise goodness; use --goodness classwise")
            if self.labels != NO_LABELS and self.algo == "ff":
                raise ConfigError(f"loss {self.loss!r} needs no label in the image (each unit classifies by itself); "
                                  "use --labels none")
        else:
            if per_class:
                raise ConfigError(f"goodness {self.goodness!r} is class-wise; use a class loss (cwc, pvn, cwg) "
                                  f"instead of {self.loss!r}")
            if self.labels == NO_LABELS and self.algo == "ff":
                raise ConfigError(f"loss {self.loss!r} compares an image with its true and a wrong label; "
                                  "--labels none leaves no label to compare")

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("unit_lrs", "widths", "unit_epochs", "pool_at"):
            if d[key] is not None:
                d[key] = list(d[key])  # JSON-safe: equal to its own json round trip
        if self.block_options is not None:
            d["block_options"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.block_options.items()}
        return d

    def _check_block_options(self) -> None:
        """A mapping of option names to JSON values (lists kept as tuples, so configs compare equal after
        a JSON round trip); which names and values a block takes, its file checks when it is built."""
        if self.block_options is None:
            return
        if not isinstance(self.block_options, dict) or not all(isinstance(k, str) for k in self.block_options):
            raise ConfigError(f"block_options must map option names to values, got {self.block_options!r}")
        self.block_options = {k: tuple(v) if isinstance(v, list | tuple) else v for k, v in self.block_options.items()}

    def network_differences(self, other: RunConfig) -> list[str]:
        """How ``other`` builds another network than this config ("filters 8 vs 4", one per differing
        :data:`NETWORK_KEYS` field); empty when both build the same units (however they train)."""
        return [f"{k} {getattr(self, k)!r} vs {getattr(other, k)!r}" for k in NETWORK_KEYS
                if getattr(self, k) != getattr(other, k)]

    def unit_lr(self, i: int) -> float:
        """The base Adam lr of unit ``i`` (0-based): ``unit_lrs[i]`` when given, else ``lr``."""
        return self.lr if self.unit_lrs is None else self.unit_lrs[i]

    @classmethod
    def from_dict(cls, values: dict) -> RunConfig:
        """Build from a stored or user dict; unknown keys are an error, not silently dropped. Block options
        stored flat by older versions (``group_at``) move into ``block_options``."""
        values = dict(values)
        for key in MOVED_TO_BLOCK_OPTIONS:
            if key in values:
                value = values.pop(key)
                if value is not None:
                    values["block_options"] = {**(values.get("block_options") or {}), key: value}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown config keys: {', '.join(unknown)}")
        return cls(**values)

    def lr_at(self, epoch: float, base: float) -> float:
        """Constant ``base`` until ``cooldown_start``·epochs, then linear down to 0 at the last epoch's end.
        ``epoch`` may be fractional (the batch's place in the run, with ``cooldown_per_step``)."""
        start = self.cooldown_start * self.epochs
        if epoch < start or self.epochs == 0:
            return base
        return base * max(0.0, (self.epochs - epoch) / max(self.epochs - start, 1e-9))


def stored_config(record: RunRecord, **overrides) -> RunConfig:
    """The RunConfig a run file was trained with (``overrides`` e.g. device), or a one-line RunFileError."""
    try:
        return RunConfig.from_dict({**record.config, **overrides})
    except (ConfigError, TypeError) as exc:
        raise RunFileError(f"{record.path}: stored config is not valid for this ffneuro: {exc}") from exc
