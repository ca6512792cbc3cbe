"""Option groups shared by several commands (the model and training flags of ``train``)."""
from __future__ import annotations

import functools
import math

import click

from ffneuro.accounting.ops import POOLS
from ffneuro.blocks import BLOCKS
from ffneuro.catalog import GOODNESS_PER_CLASS, LABEL_SCHEMES, LINEAR_LOSSES, LOSS_INFO, OPTIMIZER_NAMES
from ffneuro.config import ALGOS, AUGMENTS, DEVICES, LINEAR_INITS, NO_LABELS, READOUTS
from ffneuro.data.normalise import NORMALISATIONS
from ffneuro.precision import PRECISIONS
from ffneuro.presets import PRESETS, resolve_config


class FiniteFloat(click.FloatRange):
    """A float in range that is also finite: click's FloatRange lets ``inf`` (and ``nan``, whose comparisons
    are all false) through, and an infinite lr or a NaN θ would train NaN weights."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.min is None and self.max is None:
            self.name = "float"  # no range to show in --help

    def _describe_range(self) -> str:
        return "" if self.min is None and self.max is None else super()._describe_range()

    def convert(self, value, param, ctx):
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return super().convert(number, param, ctx)


class FloatList(click.ParamType):
    """A comma-separated list of positive floats (``1e-3,5e-4``) → a tuple."""

    name = "floats"

    def convert(self, value, param, ctx):
        if isinstance(value, (list, tuple)):
            return tuple(value)
        try:
            values = tuple(float(v) for v in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of numbers", param, ctx)
        if not all(math.isfinite(v) for v in values):
            self.fail(f"{value!r}: every learning rate must be a finite number", param, ctx)
        if not all(v > 0 for v in values):
            self.fail(f"{value!r}: every learning rate must be > 0", param, ctx)
        return values


class IntList(click.ParamType):
    """A comma-separated list of positive integers (``20,80,240``) → a tuple; ``none`` → an empty one."""

    name = "ints"

    def convert(self, value, param, ctx):
        if isinstance(value, (list, tuple)):
            return tuple(value)
        if str(value).strip().lower() == "none":
            return ()
        try:
            values = tuple(int(v) for v in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of integers", param, ctx)
        if not all(v >= 1 for v in values):
            self.fail(f"{value!r}: every value must be >= 1", param, ctx)
        return values


class LossParams(click.ParamType):
    """``name=value`` pairs separated by ``;`` (``alpha=8`` or ``weight=0.3;threshold=2``) → a dict."""

    name = "name=value[;...]"

    def convert(self, value, param, ctx):
        if isinstance(value, dict):
            return value
        out = {}
        for item in str(value).split(";"):
            key, sep, number = item.partition("=")
            try:
                if not sep or not key.strip():
                    raise ValueError
                out[key.strip()] = float(number)
            except ValueError:
                self.fail(f"{item!r} is not name=number (e.g. alpha=8; several: weight=0.3;threshold=2)", param, ctx)
        return out


class BlockOptions(click.ParamType):
    """``name=value`` pairs separated by ``;`` → a dict of block options: true/false, integers, numbers,
    comma-separated integers (a list), anything else a word (``norm=group;bias=false``, ``pad_first=true``)."""

    name = "name=value[;...]"

    @staticmethod
    def _value(text: str):
        t = text.strip()
        if t.lower() in ("true", "false"):
            return t.lower() == "true"
        for kind in (int, float):
            try:
                return kind(t)
            except ValueError:
                pass
        if "," in t:
            try:
                return [int(v) for v in t.split(",")]
            except ValueError:
                pass
        return t

    def convert(self, value, param, ctx):
        if isinstance(value, dict):
            return value
        out = {}
        for item in str(value).split(";"):
            key, sep, text = item.partition("=")
            if not sep or not key.strip() or not text.strip():
                self.fail(f"{item!r} is not name=value (e.g. pad_first=true; several: norm=group;bias=false)", param, ctx)
            out[key.strip()] = self._value(text)
        return out


# (flag, RunConfig field, click type, help). Every default is None so the preset's value stands.
MODEL_OPTIONS = [
    ("--dataset", "dataset", str, "mnist | fashion-mnist | cifar10 | cifar100 | synthetic | npz:PATH"),
    ("--algo", "algo", click.Choice(ALGOS), "ff: Forward-Forward units; bp: the same network with backprop"),
    ("--layers", "layers", click.IntRange(min=1), "number of conv units"),
    ("--filters", "filters", click.IntRange(min=1), "filters per conv unit"),
    ("--kernel", "kernel", click.IntRange(min=1), "conv kernel size (odd; 'same' padding)"),
    ("--pool", "pool", click.Choice(POOLS), "2× downsampling: 2×2 max/avg pooling, or a stride-2 conv"),
    ("--pool-every", "pool_every", click.IntRange(min=1), "downsample after every k-th unit (k=1: every unit)"),
    ("--pool-at", "pool_at", IntList(), "the units (1-based, comma-separated) that downsample, instead of --pool-every"),
    ("--arch", "arch", click.Choice(BLOCKS.names()),
     "block type of every unit (each is one file, ffneuro/blocks/NAME.py; docs/variants)"),
    ("--group-at", "group_at", IntList(),
     "cfse: the units (1-based, comma-separated) whose conv is grouped by class (default: every second; none: no unit)"),
    ("--block-options", "block_options", BlockOptions(),
     "options of the block type, over the preset's: e.g. pad_first=true (trifecta), norm=group;bias=false "
     "(residual); docs/variants/blocks.md"),
    ("--widths", "widths", IntList(), "filters (conv) or neurons (fc) of each layer, comma-separated (default: --filters)"),
    ("--labels", "labels", click.Choice([*sorted(LABEL_SCHEMES), NO_LABELS]),
     "how the label is written into the image (none: class-wise losses, no label in the image)"),
    ("--label-strength", "label_strength", FiniteFloat(0.0, 1.0), "K, the weight of the label pattern"),
    ("--goodness", "goodness", click.Choice(sorted(GOODNESS_PER_CLASS)),
     "sumsq: Σy² − #neurons (paper); meansq: mean y² − 1; classwise: mean y² of each class's channel group (CwComp)"),
    ("--loss", "loss", click.Choice(sorted(LOSS_INFO)),
     "bce: the paper's; symba: each image's positive vs its negative; cwc, pvn, cwg: CwComp's, on class-wise goodness"),
    ("--loss-params", "loss_params", LossParams(),
     "the loss's hyperparameters, e.g. alpha=8 (symba), weight=0.28;threshold=2 (cwg); see docs/variants"),
    ("--peer-norm", "peer_norm", FiniteFloat(min=0.0), "weight of Hinton's peer-normalisation penalty (0: off)"),
    ("--peer-momentum", "peer_momentum", FiniteFloat(0.0, 1.0, max_open=True),
     "momentum of the running mean activity that peer normalisation compares"),
    ("--theta", "theta", FiniteFloat(), "goodness threshold θ"),
    ("--train-first-layer/--freeze-first-layer", "train_first_layer", None, "the paper leaves layer 1 untrained"),
    ("--readout-from", "readout_from", click.IntRange(min=1), "first layer (1-based) feeding the readouts"),
    ("--readout", "readout", click.Choice(READOUTS),
     "goodness: one forward per class (C× inference cost); linear: one forward + a linear layer"),
    ("--epochs", "epochs", click.IntRange(min=0), "training epochs"),
    ("--batch-size", "batch_size", click.IntRange(min=1), "training batch size"),
    ("--lr", "lr", FiniteFloat(min=0.0, min_open=True), "learning rate of every unit (BP: of the network)"),
    ("--optimizer", "optimizer", click.Choice(sorted(OPTIMIZER_NAMES)), "the units' optimiser"),
    ("--momentum", "momentum", FiniteFloat(0.0, 1.0, max_open=True), "sgd momentum"),
    ("--weight-decay", "weight_decay", FiniteFloat(min=0.0), "the units' weight decay"),
    ("--unit-epochs", "unit_epochs", IntList(),
     "unit i learns only in its first k_i epochs, comma-separated, one per layer (CwComp's layer schedule)"),
    ("--linear-lr", "linear_lr", FiniteFloat(min=0.0, min_open=True), "learning rate of the linear readout"),
    ("--linear-optimizer", "linear_optimizer", click.Choice(sorted(OPTIMIZER_NAMES)),
     "the linear readout's optimiser (sgd takes --momentum)"),
    ("--linear-weight-decay", "linear_weight_decay", FiniteFloat(min=0.0), "the linear readout's weight decay"),
    ("--linear-init", "linear_init", click.Choice(LINEAR_INITS),
     "the linear readout's start: torch (default weights, a bias) or zero (no bias, zero weights; Hinton's code)"),
    ("--linear-loss", "linear_loss", click.Choice(LINEAR_LOSSES),
     "the linear readout's loss: ce (of its logits) or ce-of-softmax (of its softmax outputs; CwComp's code)"),
    ("--cooldown-start", "cooldown_start", FiniteFloat(0.0, 1.0), "fraction of epochs after which lr falls linearly to 0"),
    ("--cooldown-per-step/--cooldown-per-epoch", "cooldown_per_step", None,
     "lower the lr every batch (smooth; for short runs) or once per epoch"),
    ("--drop-last/--keep-last", "drop_last", None,
     "skip each epoch's last batch when it is shorter than --batch-size (as PyTorch's DataLoader drop_last)"),
    ("--seed", "seed", click.IntRange(0, 2**63 - 1), "random seed (runs are deterministic on CPU)"),
    ("--device", "device", click.Choice(DEVICES), "where to compute"),
    ("--precision", "precision", click.Choice(PRECISIONS), "bf16 autocast for conv/linear; fp32 weights"),
    ("--train-limit", "train_limit", click.IntRange(min=1), "use only the first N training images"),
    ("--val-size", "val_size", click.IntRange(min=0), "the last N training images form the validation split"),
    ("--eval-batch-size", "eval_batch_size", click.IntRange(min=1), "images per evaluation batch"),
    ("--eval-every", "eval_every", click.IntRange(min=1),
     "evaluate validation every k epochs and after the last (the goodness readout costs C forwards per image)"),
    ("--augment", "augment", click.Choice(AUGMENTS),
     "training-batch augmentation: crop (zero-pad, random crop), rotate (±15°, zero fill), flip (horizontal), "
     "joined by + (applied in that order)"),
    ("--crop-padding", "crop_padding", click.IntRange(0, 16), "pixels of zeros padded on every side before a random crop"),
    ("--normalise", "normalise", click.Choice(list(NORMALISATIONS)),
     "standardise the [0, 1] images: (x - mean) / std with MNIST's, 0.5's or ImageNet's statistics"),
    ("--unit-lrs", "unit_lrs", FloatList(), "FF: Adam lr of each unit, comma-separated, one per layer (e.g. 1e-3,5e-4)"),
]


DEFAULT_PRESET = "mnist-small"
# how a flag whose preset value is None reads in --help
_NONE_SHOWN = {"theta": "the goodness function's: #neurons for sumsq, 1 for meansq", "train_limit": "all images", "unit_lrs": "--lr for every unit",
               "val_size": "automatic, a fifth of the images in use, at most 10000", "group_at": "every second unit"}


def default_note(field: str, preset: str = DEFAULT_PRESET) -> str:
    """`` [default: VALUE (PRESET)]``: what a model flag is when not given (the preset's value), for its help."""
    config = resolve_config(preset, {})
    # a block option (e.g. group_at) lives in the config's block_options
    value = getattr(config, field) if hasattr(config, field) else (config.block_options or {}).get(field)
    if value is None:
        shown = _NONE_SHOWN.get(field, "none")
    elif isinstance(value, bool):  # an on/off pair: name the flag that is in effect
        flag = next(f for f, name, _, _ in MODEL_OPTIONS if name == field)
        shown = flag.split("/")[0 if value else 1]
    elif isinstance(value, tuple):
        shown = ",".join(f"{v:g}" for v in value)
    else:
        shown = f"{value:g}" if isinstance(value, float) else str(value)
    return f" [default: {shown} ({preset})]"


def model_options(fn=None, *, skip: tuple[str, ...] = ()):
    """Add ``--preset`` and every model/training flag; the command receives them as ``overrides``.
    ``skip``: fields a command defines itself (profile/compare take their own ``--precision``)."""
    if fn is None:
        return functools.partial(model_options, skip=skip)
    options = [o for o in MODEL_OPTIONS if o[1] not in skip]

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        overrides = {field: kwargs.pop(field) for _, field, _, _ in options}
        return fn(*args, overrides=overrides, **kwargs)

    for flag, field, kind, help_text in reversed(options):
        help_text += default_note(field)  # the default is None (the preset's value stands): show what that is
        if kind is None:  # a boolean on/off pair
            wrapper = click.option(flag, field, default=None, help=help_text)(wrapper)
        else:
            wrapper = click.option(flag, field, type=kind, default=None, help=help_text)(wrapper)
    return click.option("--preset", type=click.Choice(PRESETS.names()), default=DEFAULT_PRESET, show_default=True,
                        help=f"named setting: it gives every flag below its default (shown for {DEFAULT_PRESET}); "
                             "flags override it")(wrapper)


data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=str), default=None,
    help="root holding mnist/, fashion-mnist/, cifar-10-batches-py/, ... (default: $FFNEURO_DATA, then the user cache)")
json_option = click.option("--json", "as_json", is_flag=True, help="print a JSON result on stdout")


def estimate_options(fn):
    """``--precision`` (the estimate's), ``--timesteps``, and the activity options of profile and compare."""
    from ffneuro.profiler import ESTIMATE_PRECISIONS

    fn = click.option("--activity-from", default=None, metavar="TARGET",
                      help="a run: cost inference with the activity of its simulation on TARGET (default: the "
                           "profiled target's simulation when the run holds one, else its measured sparsity)")(fn)
    fn = click.option("--input-activity", type=float, default=None,
                      help="events per input element per timestep (default: dense analog input)")(fn)
    fn = click.option("--activity", default=None, metavar="RATE|NAME=RATE,...",
                      help="events per neuron per timestep of each layer's output: one number for every (spiking) "
                           "layer or per unit name, e.g. conv1=0.2,conv2=0.1 (NIR default 0.1; runs: measured)")(fn)
    fn = click.option("--timesteps", type=int, default=None,
                      help="timesteps per sample (NIR default 1; a run: its simulation's)")(fn)
    return click.option("--precision", "est_precision", type=click.Choice(ESTIMATE_PRECISIONS), default=None,
                        help="estimate every target at this precision (default: the run's or preset's; "
                             "fp32 for a NIR graph)")(fn)
