"""Side-by-side fidelity runs: a published-setting preset against its authors' reference code on the same
images (issue 19, item 1). Both sides train on the first N training images of the preset's dataset (MNIST,
Fashion-MNIST or CIFAR-10) and read the full test set after every epoch; one 2-epoch run gives
the epoch-1 and epoch-2 points (the presets keep their lr constant over 2 epochs, as the reference codes do).

    # ffneuro side (any RunConfig field may be overridden with --set, to change one difference at a time)
    python benchmarks/fidelity.py run hinton-fc-mnist --side ffneuro --seeds 0,1,2 --data-dir ../shared/datasets
    python benchmarks/fidelity.py run hinton-fc-mnist --side ffneuro --set linear_lr=0.01 --label "readout lr"
    # reference side: REF is an unmodified checkout of the authors' repository (never part of ffneuro)
    python benchmarks/fidelity.py run hinton-fc-mnist --side reference --reference /tmp/fid/loewe --seeds 0,1,2
    python benchmarks/fidelity.py run trifecta-mnist --side reference --reference /tmp/fid/trifecta --set olu=false
    python benchmarks/fidelity.py run cwcomp-fashion-mnist --side reference --reference /tmp/fid/cwcomp \
        --train-limit 5000 --data-dir /tmp/data/fashion-mnist   # the code's FMNIST setting, same images
    python benchmarks/fidelity.py table hinton-fc-mnist            # markdown: mean and spread per epoch

The reference code is imported from REF and run as its authors wrote it; this script only hands it the
data (the same uint8 arrays ffneuro reads, from --data-dir), cuts the training set and the epochs, moves
it to the CPU (the CwComp code calls ``.cuda()`` everywhere: those calls become no-ops) and reads the
test accuracies it prints. Results go to benchmarks/results/fidelity-<preset>.json, one entry per
(side, label, seed), replaced when rerun.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import re
import runpy
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = {"hinton-fc-mnist": "loewe", "cwcomp-mnist": "cwcomp", "cwcomp-fashion-mnist": "cwcomp",
            "cwcomp-cifar10": "cwcomp", "trifecta-mnist": "trifecta", "trifecta-fashion-mnist": "trifecta",
            "trifecta-cifar10": "trifecta"}   # preset -> which reference runner
TEST_LIMIT: int | None = None   # --test-limit: both sides read only the first N test images (None: all 10,000)


def results_path(preset: str) -> Path:
    return Path(os.environ.get("FIDELITY_RESULTS", RESULTS)) / f"fidelity-{preset}.json"


def machine() -> str:
    import torch
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"


def torch_threads() -> int:
    import torch
    return torch.get_num_threads()


def today() -> str:
    """The UTC date the results files record."""
    return datetime.now(UTC).strftime("%Y-%m-%d")


def invocation() -> str:
    """This script's command line as the results files record it."""
    return " ".join(["python", "benchmarks/fidelity.py", *sys.argv[1:]])


def preset_dataset(preset: str) -> str:
    """The dataset a preset trains on (ffneuro's name: "mnist", "fashion-mnist"): both sides read it."""
    from ffneuro.presets import resolve_config
    return resolve_config(preset, {}).dataset


def images(dataset: str, data_dir: str | None):
    """``dataset`` as ffneuro reads it (uint8 images); with ``TEST_LIMIT`` only the first test images (the same
    on both sides)."""
    from dataclasses import replace

    from ffneuro.data import load_dataset
    data = load_dataset(dataset, data_dir, download=False)
    if TEST_LIMIT is not None:
        data = replace(data, x_test=data.x_test[:TEST_LIMIT], y_test=data.y_test[:TEST_LIMIT])
    return data


# ------------------------------------------------------------------------------------------------ ffneuro


class _TestEveryEpoch:
    """A Recorder that reads the test set after every epoch (the trainer itself reads it only at the end)."""

    def __init__(self, trainer, on_epoch, recalibrate: int = 0) -> None:
        self.trainer, self.epochs, self.on_epoch, self.recalibrate = trainer, [], on_epoch, recalibrate

    def commit_epoch(self, epoch, scalars, per_unit, weights, *, best, state=None, state_meta=None) -> None:
        test = self.trainer.evaluate(self.trainer.test)
        entry = {"epoch": epoch, "test": test, "train_s": scalars["epoch_train_time_s"]}
        if per_unit:   # each unit's training-step statistics over the epoch (training-mode batch norm)
            entry["per_unit"] = {k: [round(v, 4) for v in vs] for k, vs in per_unit.items()}
        if self.recalibrate:
            last = getattr(self.trainer, "last_batch_labels", None)
            if last is not None:   # the classes of the epoch's last (smallest) batch: its statistics go in last
                entry["last_batch_classes"] = np.bincount(last, minlength=10).tolist()
            entry["test_bn_recalibrated"] = recalibrated_test(self.trainer, self.recalibrate)
            print(f"epoch {epoch} (batch norm recalibrated on {self.recalibrate} batches): "
                  + "  ".join(f"{k} {v:.4f}" for k, v in entry["test_bn_recalibrated"].items()), flush=True)
        self.epochs.append(entry)
        self.on_epoch(self.epochs)
        print(f"epoch {epoch}: " + "  ".join(f"{k} {v:.4f}" for k, v in test.items()), flush=True)

    def heartbeat(self) -> None:
        pass


def recalibrated_test(trainer, batches: int) -> dict[str, float]:
    """The test accuracy with every batch norm's running statistics recomputed for the current weights: the
    exact mean over the first ``batches`` training batches run through the whole chain in training mode
    (no update), as training feeds them (the run's augmentation; with a label in the input, the positive and
    negative rows), drawn from a generator of its own. The statistics the run keeps are put back afterwards,
    so training goes on unchanged. Tells a fall of the test accuracy that comes from statistics lagging the
    weights (or still holding their start, mean 0 and variance 1, after few steps) from one of the weights."""
    import torch

    from ffneuro.data.augment import augment_batch

    model, cfg = trainer.model, trainer.config
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    kept = [(m.momentum, m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None   # cumulative average
    model.train()
    own = torch.Generator(device=trainer.generator.device).manual_seed(0)   # the run's own draws stay untouched
    with torch.no_grad():
        for b in range(batches):
            x, y = trainer.train.batch(torch.arange(b * cfg.batch_size, min((b + 1) * cfg.batch_size, len(trainer.train))),
                                       lambda x: augment_batch(x, cfg.augment, own, cfg.crop_padding))
            # what the units see in training: with a label in the input (pair objective), the 2N embedded rows
            for _ in model.walk(model.input_rows(x, y, own)[0] if model.pairs else x):
                pass
    out = trainer.evaluate(trainer.test)
    for m, (momentum, mean, var, count) in zip(norms, kept):
        m.momentum = momentum
        m.running_mean.copy_(mean)
        m.running_var.copy_(var)
        m.num_batches_tracked.copy_(count)
    return out


# The known differences between the fc block / readout and loeweX's code (and CwComp's softmax predictor) that no
# RunConfig field covers, as patches a probe run may apply one at a time (--patch NAME, ffneuro side, the presets
# PATCH_PRESETS names).


def _patch_st_relu() -> None:
    """The fc block's ReLU passes the gradient through unchanged, also where its input is negative (the
    reference code's ReLU_full_grad). Now the fc block's option ``relu_grad=pass``, which the preset sets;
    kept so that the rows measured with it repeat as they ran."""
    import torch

    from ffneuro.blocks import fc
    from ffneuro.blocks.module import rms_normalize

    class StraightThroughReLU(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clamp(min=0)

        @staticmethod
        def backward(ctx, grad):
            return grad.clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)
        if self.spec.input_norm:
            h = rms_normalize(h)
        return StraightThroughReLU.apply(self.linear(h))
    fc.FCModule.forward = forward


def _patch_normal_init() -> None:
    """The fc block's weights drawn from N(0, 1/out_features) and its biases zero, as the reference code does."""
    import math

    import torch

    from ffneuro.blocks import fc
    plain = fc.FCModule.__init__

    def init(self, spec) -> None:
        plain(self, spec)
        torch.nn.init.normal_(self.linear.weight, 0.0, 1.0 / math.sqrt(self.linear.weight.shape[0]))
        if self.linear.bias is not None:
            torch.nn.init.zeros_(self.linear.bias)
    fc.FCModule.__init__ = init


def _patch_readout_zero_nobias() -> None:
    """The linear readout without a bias and started at zero, as the reference code's classifier."""
    from torch import nn

    from ffneuro.models import readouts
    from ffneuro.units.optim import OPTIMIZERS

    def init(self, in_features, num_classes, lr, optimizer="adam", momentum=0.9, weight_decay=0.0) -> None:
        nn.Module.__init__(self)
        self.linear = nn.Linear(in_features, num_classes, bias=False)
        nn.init.zeros_(self.linear.weight)
        self.optimizer = OPTIMIZERS.get(optimizer)(self.parameters(), lr=lr, momentum=momentum,
                                                   weight_decay=weight_decay)
    readouts.LinearReadout.__init__ = init


def _patch_readout_before_step() -> None:
    """The linear readout trained on features from the units' weights before the batch's FF step, as the
    reference code does (its layers and its classifier take one SGD step on one summed loss, so the
    classifier's neutral-label features come from the same forward, before any update); ffneuro's
    training step reads them after the units' update."""
    import torch

    from ffneuro.models import ff_net
    plain = ff_net.FFNet.train_batch

    def train_batch(self, x, y, generator=None, rows=None):
        if self.linear is None or not self.pairs:
            return plain(self, x, y, generator, rows)
        with torch.no_grad(), ff_net.evaluating(self):
            before = self.features(self.readout_input(x if rows is None else x[rows]))
        self.features = lambda _x: before   # what the step's own neutral pass would read, now the old features
        try:
            return plain(self, x, y, generator, rows)
        finally:
            del self.features
    ff_net.FFNet.train_batch = train_batch


def _patch_softmax_readout() -> None:
    """The linear readout's loss as CwComp's softmax predictor computes it: cross-entropy applied to the
    softmax *outputs* (a softmax of probabilities; its code's ``Softmax_CF``, src/Layer_fc.py), where
    ffneuro's applied it to the logits. Its optimiser (SGD, lr 0.01, no momentum) is set with --set. Now the
    readout's option ``linear_loss=ce-of-softmax``, which the cwcomp presets set with that optimiser (the same
    training: tests/test_readout_loss.py); kept so that the rows measured with it repeat as they ran: it now
    sets that option on every readout, whatever the run's config says."""
    from ffneuro.models import readouts
    plain = readouts.LinearReadout.train_step

    def train_step(self, features, labels):
        self.loss = "ce-of-softmax"
        return plain(self, features, labels)
    readouts.LinearReadout.train_step = train_step


def _patch_label_seed() -> None:
    """The label maps drawn from the run's seed, as the Trifecta's code draws its embedding anew with each
    seed; the presets drew the same maps (seed 0) in every run, so their seeds shared one draw. Now what the
    channel label schemes do themselves (``run_seeded``); kept so that the rows measured with it repeat as
    they ran."""
    from ffneuro.labels.channel import ChannelLabels
    from ffneuro.models import ff_net
    plain_init = ff_net.FFNet.__init__

    def init(self, config, image_shape, num_classes) -> None:
        plain_init(self, config, image_shape, num_classes)
        if not isinstance(self.labels, ChannelLabels):
            raise ValueError(f"--patch label-seed needs channel labels, not {config.labels!r}")
        _, h, w = self.labels.image_shape
        self.labels.seed = int(config.seed)
        self.labels.patterns.copy_(self.labels.make_patterns(num_classes, h, w, self.labels.seed))
    ff_net.FFNet.__init__ = init


PATCHES = {"st-relu": _patch_st_relu, "normal-init": _patch_normal_init,
           "readout-zero-nobias": _patch_readout_zero_nobias, "readout-before-step": _patch_readout_before_step,
           "softmax-readout": _patch_softmax_readout,
           "label-seed": _patch_label_seed}
PATCH_PRESETS = {**dict.fromkeys(PATCHES, ("hinton-fc-mnist",)),   # where each applies
                 "softmax-readout": ("cwcomp-mnist", "cwcomp-fashion-mnist", "cwcomp-cifar10"),
                 "label-seed": ("trifecta-mnist", "trifecta-fashion-mnist", "trifecta-cifar10")}


def run_ffneuro(preset: str, seed: int, epochs: int, train_limit: int, data_dir: str | None,
                overrides: dict, on_epoch, recalibrate: int = 0) -> list[dict]:
    """The preset on the first ``train_limit`` images of its dataset (no validation split), test read after
    each epoch."""
    from ffneuro.presets import resolve_config
    from ffneuro.train import trainer as trainer_mod
    from ffneuro.train.trainer import Trainer
    trainer_mod.TRAIN_EVAL_SIZE = 0   # the trainer's train-accuracy read (not reported here) would cost an epoch's test read
    cfg = resolve_config(preset, {"epochs": epochs, "train_limit": train_limit, "val_size": 0, "seed": seed,
                                  **overrides})
    trainer = Trainer(cfg, images(cfg.dataset, data_dir))
    rec = _TestEveryEpoch(trainer, on_epoch, recalibrate)
    if recalibrate:   # keep each step's labels: the diagnostic reports the last batch's classes
        step = trainer.parallel.train_batch

        def train_batch(model, x, y, generator):
            trainer.last_batch_labels = y.cpu().numpy()
            return step(model, x, y, generator)
        trainer.parallel.train_batch = train_batch
    trainer.run(rec, final_test=False)   # the recorder read the test set after the last epoch already
    return rec.epochs


# ---------------------------------------------------------------------------------------------- reference


def _as_pil_layout(image: np.ndarray) -> np.ndarray:
    """A CxHxW uint8 image of ffneuro's as ``np.array`` gives a torchvision dataset's PIL image: HxW for grey,
    HxWx3 for colour."""
    return image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)


class _ImageList:
    """(image, label) pairs as torchvision's MNIST gives them, from ffneuro's uint8 arrays: an HxW uint8
    array (HxWx3 for colour, as ``np.array`` of CIFAR10's PIL image; CwComp turns it into a tensor itself) or,
    with ``as_tensor``, ToTensor's CxHxW float in [0, 1]."""

    def __init__(self, x: np.ndarray, y: np.ndarray, as_tensor: bool) -> None:
        self.x, self.y, self.as_tensor = x, y, as_tensor

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        import torch
        if self.as_tensor:
            return torch.from_numpy(self.x[i].astype(np.float32) / 255.0), int(self.y[i])
        return _as_pil_layout(self.x[i]), int(self.y[i])


def _torchvision_without_ops() -> None:
    """Import torchvision (the reference codes use its datasets and transforms) where its compiled ops
    cannot load: PyPI's torchvision is built for CUDA torch, and its fake-kernel registrations for nms and
    roi ops then fail on the CPU torch. Those ops are never used here, so a failed registration is skipped."""
    import torch
    import torch.library
    original = torch.library.register_fake

    def register_fake(op, *args, **kwargs):
        if args and callable(args[0]):
            return original(op, *args, **kwargs)
        inner = original(op, *args, **kwargs)

        def decorate(fn):
            try:
                return inner(fn)
            except RuntimeError:
                return fn
        return decorate
    torch.library.register_fake = register_fake
    try:
        import torchvision  # noqa: F401
    finally:
        torch.library.register_fake = original


def run_loewe(ref: Path, seed: int, epochs: int, train_limit: int, data_dir: str | None, overrides: dict,
              on_epoch, dataset: str = "mnist") -> list[dict]:
    """loeweX/Forward-Forward (Hinton's MATLAB code in PyTorch): its config.yaml with the preset's network
    (4 x 2000) unless overridden, on the CPU; its per-epoch validation pass is pointed at the test set
    (``val_idx`` 1), and its only readout is the softmax on neutral-label activities ("linear"). MNIST only."""
    _mnist_only(dataset, "loeweX/Forward-Forward")
    import torch
    from omegaconf import OmegaConf
    _torchvision_without_ops()
    sys.path.insert(0, str(ref))
    import main as ref_main  # noqa: E402  (their main.py)
    from src import utils as ref_utils  # noqa: E402
    data = images(dataset, data_dir)   # MNIST: refused above otherwise
    opt = OmegaConf.load(ref / "config.yaml")
    settings = {"seed": seed, "device": "cpu", "training.epochs": epochs, "training.val_idx": 1,
                "training.final_test": False, "model.hidden_dim": 2000, "model.num_layers": 4, **overrides}
    for key, value in settings.items():
        OmegaConf.update(opt, key, value)
    parts = {"train": _ImageList(data.x_train[:train_limit], data.y_train[:train_limit], True),
             "val": _ImageList(data.x_test, data.y_test, True)}
    ref_utils.get_MNIST_partition = lambda opt, partition: parts[partition]   # data path and subset
    epochs_out: list[dict] = []
    t_train = [time.perf_counter()]
    original_print = ref_utils.print_results

    def capture(partition, iteration_time, scalar_outputs, epoch=None):
        original_print(partition, iteration_time, scalar_outputs, epoch)
        if partition == "train":
            t_train.append(iteration_time)
        elif partition == "val":
            epochs_out.append({"epoch": epoch + 1, "test": {"linear": float(scalar_outputs["classification_accuracy"])},
                               "train_s": t_train[-1]})
            on_epoch(epochs_out)
    ref_utils.print_results = capture
    ref_main.utils.print_results = capture
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    ref_utils.parse_args(opt)
    model, optimizer = ref_utils.get_model_and_optimizer(opt)
    ref_main.train(opt, model, optimizer)
    return epochs_out


def _mnist_only(dataset: str, code: str) -> None:
    """Refuse a dataset other than MNIST for a runner that hands its code MNIST only."""
    if dataset != "mnist":
        raise ValueError(f"the {code} runner feeds its code MNIST only, not {dataset!r}")


# ffneuro's dataset -> (the CwComp code's --dataset value, the torchvision class its configure.py calls for it,
# the dataset class that wraps it; src/configure.py, ``configure``). Its Datasets.py standardises "MNIST" with
# (0.1307, 0.3081), any other one-channel set with (0.5, 0.5) (X_MNIST) and CIFAR-10 with ImageNet's channel
# statistics (X_CIFAR); Models.py picks the layer schedule and the input shape by the same string.
CWCOMP_DATASETS = {"mnist": ("MNIST", "MNIST", "X_MNIST"), "fashion-mnist": ("FMNIST", "FashionMNIST", "X_MNIST"),
                   "cifar10": ("CIFAR", "CIFAR10", "X_CIFAR")}


def run_cwcomp(ref: Path, seed: int, epochs: int, train_limit: int, data_dir: str | None, overrides: dict,
               on_epoch, dataset: str = "mnist") -> list[dict]:
    """andreaspapac/CwComp: its main_train.py with its defaults for the preset's dataset (MNIST, FMNIST, CIFAR:
    CFSE, CwC_CE loss, ILT Acc, Avg and Sf predictors, batch 128), on the CPU; the same uint8 images reach
    it through the torchvision class its configure.py calls for that dataset. The epoch's printed test
    errors are read back ("Avg" is the goodness readout, "Sf" the softmax one, here "linear"). Its test error
    is the mean of the per-batch errors (78 batches of 128 and one of 16), as printed."""
    if dataset not in CWCOMP_DATASETS:
        raise ValueError(f"the CwComp runner feeds {', '.join(CWCOMP_DATASETS)}, not {dataset!r}")
    flag, loader, wrapper = CWCOMP_DATASETS[dataset]
    import torch
    from torch import nn
    src = ref / "src"
    sys.path.insert(0, str(src))
    torch.Tensor.cuda = lambda self, *a, **k: self          # CPU only: .cuda() is a no-op
    nn.Module.cuda = lambda self, *a, **k: self
    torch.cuda.current_device = lambda: -1
    _torchvision_without_ops()
    import configure as ref_configure  # noqa: E402  (their configure.py)

    def parse(text: str) -> list[dict]:
        avg = [float(v) for v in re.findall(r"Avg Pred - Test Error = ([0-9.eE+-]+)", text)]
        sf = [float(v) for v in re.findall(r"Sf Pred -- Test Error = ([0-9.eE+-]+)", text)]
        return [{"epoch": i + 1, "test": {"goodness": 1 - a, "linear": 1 - s}, "train_s": None}
                for i, (a, s) in enumerate(zip(avg, sf))]
    data = images(dataset, data_dir)
    sets = {True: _ImageList(data.x_train[:train_limit], data.y_train[:train_limit], False),
            False: _ImageList(data.x_test, data.y_test, False)}
    setattr(ref_configure, loader, lambda path, train, download: sets[train])   # data path and subset
    full_x = getattr(ref_configure, wrapper)

    class Subset(full_x):   # their X_MNIST and X_CIFAR walk 60,000 / 50,000 images; stop at the subset's end
        def __init__(self, data_samples, number_samples=60000, **kw):
            super().__init__(data_samples, number_samples=min(number_samples, len(data_samples)), **kw)
    setattr(ref_configure, wrapper, Subset)
    args = ["main_train.py", "--dataset", flag, "--seed", str(seed), "--n_epochs", str(epochs), "--save", "False"]
    for key, value in overrides.items():
        args += [f"--{key}", str(value)]
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    out = io.StringIO()

    class Tee(io.TextIOBase):
        def write(self, s):
            out.write(s)
            n = sys.__stdout__.write(s)
            sys.__stdout__.flush()   # a stopped run still leaves its finished epochs in the log
            if "Sf Pred -- Test Error" in s:
                on_epoch(parse(out.getvalue()))
            return n

        def flush(self):
            sys.__stdout__.flush()
    argv, cwd = sys.argv, os.getcwd()
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"cwcomp-run-{os.getpid()}"
    (work / "TrRes").mkdir(parents=True, exist_ok=True)   # its loss logs, written after the last epoch
    try:
        sys.argv = args
        os.chdir(work)   # it writes its training logs to the working folder's TrRes/
        with contextlib.redirect_stdout(Tee()):
            runpy.run_path(str(src / "main_train.py"), run_name="__main__")
    finally:
        sys.argv = argv
        os.chdir(cwd)
    return parse(out.getvalue())


class _PILImages:
    """(transform(image), label) pairs as torchvision's datasets give them (a PIL "L" image, "RGB" for colour,
    through the dataset's transform), from ffneuro's uint8 arrays."""

    def __init__(self, x: np.ndarray, y: np.ndarray, transform) -> None:
        self.x, self.y, self.transform = x, y, transform

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        from PIL import Image
        return self.transform(Image.fromarray(_as_pil_layout(self.x[i]))), int(self.y[i])


# ffneuro's dataset -> (the Trifecta code's Config.dataset, the torchvision class its Data reads it with; main.py)
TRIFECTA_DATASETS = {"mnist": ("mnist", "MNIST"), "fashion-mnist": ("f_mnist", "FashionMNIST"),
                     "cifar10": ("cifar10", "CIFAR10")}


def _trifecta_main(ref: Path):
    """The Trifecta code's ``main.py`` from the checkout ``ref``, imported for the CPU: ``.cuda()`` (its negative
    labels call it) a no-op, torchvision imported first without its compiled ops."""
    import torch
    torch.Tensor.cuda = lambda self, *a, **k: self
    _torchvision_without_ops()
    sys.path.insert(0, str(ref))
    import main as ref_main  # noqa: E402  (their main.py)
    return ref_main


def run_trifecta(ref: Path, seed: int, epochs: int, train_limit: int, data_dir: str | None, overrides: dict,
                 on_epoch, dataset: str = "mnist") -> list[dict]:
    """tdooms/trifecta: its main.py's ``Model`` and ``Data`` with the ``Config`` its ``__main__`` runs
    (model "small", the preset's dataset under the code's name: OLU, learned label channel, SymBa α 4, batch norm, Adam 1e-3, batch
    512, crops and rotations, inputs standardised), fields overridable with --set (``olu=false``: its
    layer-wise ablation); ``rotations=false`` (this runner's key) drops its random rotations. Its own ``run`` asks for a GPU in 16-bit mixed precision and validates every 5th
    epoch; here the same Lightning ``Trainer`` runs on the CPU in fp32 and validates (on the test set, as
    its code does) after every epoch; ``Config.test`` is set, which only keeps the data loading in this
    process (no worker processes). The accuracy read is its ``val/accuracy`` (last block's goodness). The code
    picks its standardisation, input channels (image + label) and crop size by its dataset name."""
    if dataset not in TRIFECTA_DATASETS:
        raise ValueError(f"the Trifecta runner feeds {', '.join(TRIFECTA_DATASETS)}, not {dataset!r}")
    name, loader = TRIFECTA_DATASETS[dataset]
    import torch
    ref_main = _trifecta_main(ref)
    import lightning  # noqa: E402  (after torchvision, which _trifecta_main imported: torchmetrics imports it)
    warnings.filterwarnings("ignore", message=".*no logger configured.*")   # one per metric its code logs
    data = images(dataset, data_dir)
    sets = {True: (data.x_train[:train_limit], data.y_train[:train_limit]), False: (data.x_test, data.y_test)}
    setattr(ref_main, loader, lambda root, train, transform: _PILImages(*sets[train], transform))   # path, subset
    config = ref_main.Config(model="small", dataset=name, epochs=epochs, test=True)
    fields = dict(overrides)
    rotations = fields.pop("rotations", True)   # this runner's own key, not a Config field
    if not isinstance(rotations, bool):
        sys.exit(f"Error: rotations is true or false, got {rotations!r}")
    for key, value in fields.items():
        if not hasattr(config, key):
            sys.exit(f"Error: the Trifecta's Config has no field {key!r}")
        setattr(config, key, value)
    data_module = ref_main.Data(config)
    if not rotations:
        drop_rotations(data_module)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    lightning.seed_everything(seed, verbose=False)
    epochs_out: list[dict] = []

    class Read(lightning.Callback):
        def on_train_epoch_start(self, trainer, module) -> None:
            self.t0 = time.perf_counter()

        def on_validation_start(self, trainer, module) -> None:
            self.train_s = time.perf_counter() - self.t0

        def on_validation_end(self, trainer, module) -> None:
            metrics = trainer.callback_metrics
            epochs_out.append({"epoch": trainer.current_epoch + 1,
                               "test": {"goodness": float(metrics["val/accuracy"])}, "train_s": self.train_s,
                               "per_block": [float(metrics[f"val/accuracy_{i}"]) for i in range(6)
                                             if f"val/accuracy_{i}" in metrics]})
            print(f"epoch {trainer.current_epoch + 1}: goodness {epochs_out[-1]['test']['goodness']:.4f}", flush=True)
            on_epoch(epochs_out)
    model = ref_main.Model(config)
    trainer = lightning.Trainer(accelerator="cpu", devices=1, max_epochs=epochs, check_val_every_n_epoch=1,
                                precision="32-true", num_sanity_val_steps=0, enable_checkpointing=False,
                                logger=False, enable_progress_bar=False, enable_model_summary=False,
                                callbacks=[Read()])
    trainer.fit(model, data_module)
    return epochs_out


def drop_rotations(data_module) -> None:
    """The Trifecta code's training transform without its ``RandomRotation`` (``--set rotations=false``): the
    one augmentation the presets do not have. Only the harness's copy of the transform list changes, before
    the code's ``setup`` builds its datasets with it; its crops and standardisation stay."""
    from torchvision.transforms import RandomRotation
    compose = data_module.train_transform
    kept = [t for t in compose.transforms if not isinstance(t, RandomRotation)]
    if len(kept) == len(compose.transforms):
        sys.exit("Error: the Trifecta code's training transform has no RandomRotation to drop")
    compose.transforms = kept


def rotation_agreement(x: np.ndarray, degrees: float = 15.0, seed: int = 0) -> dict:
    """ffneuro's rotation (``ffneuro.data.augment.rotate``, what ``--augment rotate`` runs) against the Trifecta
    code's (torchvision's ``rotate`` of the PIL image, nearest neighbour, as its ``RandomRotation(15)`` calls
    it) on uint8 images ``x`` (N, C, H, W) at the same angles, uniform in ±``degrees``: how many pixels come
    out different. The same count with every angle mirrored is the control: it shows what a real difference
    in the rotation looks like."""
    import torch
    _torchvision_without_ops()
    import torchvision.transforms.functional as tvf
    from PIL import Image

    from ffneuro.data.augment import rotate
    angles = (torch.rand(len(x), generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1) * degrees
    nearest = tvf.InterpolationMode.NEAREST
    theirs = np.stack([np.asarray(tvf.rotate(Image.fromarray(_as_pil_layout(img)), float(a), interpolation=nearest))
                       for img, a in zip(x, angles)])
    theirs = theirs.reshape(len(x), *x.shape[2:], -1).transpose(0, 3, 1, 2)   # back to (N, C, H, W)
    out: dict = {"images": int(len(x)), "pixels": int(theirs.size), "degrees": degrees, "seed": seed}
    for name, sign in (("", 1.0), ("mirrored_", -1.0)):
        ours = rotate(torch.from_numpy(x).float() / 255, torch.deg2rad(sign * angles))
        differ = (ours * 255).round().to(torch.uint8).numpy() != theirs
        per_image = differ.reshape(len(x), -1).sum(1)
        out |= {f"{name}pixels_differing": int(differ.sum()), f"{name}images_differing": int((per_image > 0).sum()),
                f"{name}most_in_one_image": int(per_image.max(initial=0))}
    return out


def trifecta_step_agreement(ref: Path, steps: int = 5, batch: int = 64, seed: int = 0,
                            widths: tuple[int, ...] | None = None) -> dict:
    """The Trifecta code's layer-wise training step against ``trifecta-mnist``'s units, both started from the
    same weights and label maps and fed the same random batches, labels and wrong labels: how far each
    block's conv weights part after every step, and the last block's goodness per label (eval mode) after the
    last. It tests the step itself (block, loss, optimiser, batch norm), apart from data order and seed noise.
    ``widths``: the preset's, unless a smaller stand-in of the code is given (the tests)."""
    import torch

    from ffneuro.models.ff_net import FFNet
    from ffneuro.presets import resolve_config
    ref_main = _trifecta_main(ref)
    torch.manual_seed(seed)
    code = ref_main.Model(ref_main.Config(model="small", dataset="mnist", olu=False, learned=False, test=True)).net
    net = FFNet(resolve_config("trifecta-mnist", {"readout": "goodness", **({"widths": widths} if widths else {})}),
                (1, 28, 28), 10)
    with torch.no_grad():
        for layer, unit in zip(code.layers, net.units, strict=True):
            unit.block.norm.load_state_dict(layer.inner[0].state_dict())
            unit.block.conv.weight.copy_(layer.inner[1].weight)
        net.labels.patterns.copy_(code.embedding.weight.view(net.labels.patterns.shape))
    code.train()
    net.train()
    draw = torch.Generator().manual_seed(seed + 1)
    per_step = []
    for step in range(steps):
        x = torch.randn(batch, 1, 28, 28, generator=draw)
        y = torch.randint(0, 10, (batch,), generator=draw)
        wrong = (y + torch.randint(1, 10, (batch,), generator=draw)) % 10
        code(torch.cat([x, x]), torch.cat([y, wrong]), step)
        h = torch.cat([net.labels.embed(x, y), net.labels.embed(x, wrong)])
        for unit in net.units:
            h, _ = unit.train_step(h, batch)
        with torch.no_grad():
            apart = [(layer.inner[1].weight - unit.block.conv.weight).abs() for layer, unit in zip(code.layers, net.units)]
        per_step.append({"max_abs": [float(d.max()) for d in apart],
                         "share_over_1e-4": [float((d > 1e-4).float().mean()) for d in apart]})
    code.eval()
    net.eval()
    x = torch.randn(200, 1, 28, 28, generator=draw)
    with torch.no_grad():
        theirs = torch.stack([code(x, torch.full((200,), k), None)[-1] for k in range(10)])
        ours = torch.stack([[s.unit.scores(s.y) for s in net.walk(net.labels.embed(x, torch.full((200,), k)))][-1]
                            for k in range(10)])
    return {"steps": steps, "batch": batch, "seed": seed, "lr": net.base_lrs[0], "per_step": per_step,
            "eval_goodness_max_abs": float((theirs - ours).abs().max()),
            "eval_goodness_scale": float(theirs.abs().max()),
            "eval_predictions_agree": float((theirs.argmax(0) == ours.argmax(0)).float().mean())}


REFERENCE_RUNNERS = {"loewe": run_loewe, "cwcomp": run_cwcomp, "trifecta": run_trifecta}


def bn_probe(preset: str, seed: int, train_limit: int, test_limit: int, data_dir: str | None, standardise: bool,
             refresh_batches: int = 10) -> dict:
    """One epoch of the preset, then its test accuracy (first ``test_limit`` images) twice: as trained, and
    after ``refresh_batches`` training batches more have run through the finished units with batch norm in
    training mode (as CwComp's code does in its predict calls), so that the running statistics follow the
    weights the test sees. ``standardise``: inputs standardised as the preset does (cwcomp-mnist: (x - 0.1307) /
    0.3081, as CwComp's code feeds MNIST). The preset is trained without its own ``bn_refresh`` and input
    standardisation (the two fixes this probe found, now options), so the probe still measures them from the
    preset as it was."""
    import torch

    from ffneuro.presets import resolve_config
    from ffneuro.train import trainer as trainer_mod
    normalise = resolve_config(preset, {}).normalise if standardise else "none"
    cfg = resolve_config(preset, {"epochs": 2, "train_limit": train_limit, "val_size": 0, "seed": seed,
                                  "normalise": normalise, "block_options": {}})
    tr = trainer_mod.Trainer(cfg, images(cfg.dataset, data_dir))
    tr._train_epoch(0, trainer_mod._Silent())
    out = {"as trained": tr.evaluate(tr.test, limit=test_limit)}
    tr.model.train()
    with torch.no_grad():
        for b in range(refresh_batches):
            x, _ = tr.train.batch(torch.arange(b * cfg.batch_size, (b + 1) * cfg.batch_size))
            for unit in tr.model.units:
                x = unit.hand_on(unit(x))
    out["batch-norm statistics refreshed"] = tr.evaluate(tr.test, limit=test_limit)
    return out


def epochs_from_log(text: str) -> list[dict]:
    """The finished epochs of a run that was stopped before it saved, from its log: this script's own
    "epoch N: readout acc ..." lines (ffneuro side), loeweX's "Epoch k val ... classification_accuracy"
    lines, or CwComp's "Avg Pred - Test Error" / "Sf Pred -- Test Error" lines."""
    found = re.findall(r"^epoch (\d+): (.*)$", text, re.M)
    if found:
        return [{"epoch": int(n), "test": {k: float(v) for k, v in re.findall(r"(\w+) ([0-9.]+)", rest)},
                 "train_s": None} for n, rest in found]
    loewe = re.findall(r"^Epoch (\d+) \tval .*?classification_accuracy: ([0-9.]+)", text, re.M)
    if loewe:
        return [{"epoch": int(n) + 1, "test": {"linear": float(v)}, "train_s": None} for n, v in loewe]
    avg = [float(v) for v in re.findall(r"Avg Pred - Test Error = ([0-9.eE+-]+)", text)]
    sf = [float(v) for v in re.findall(r"Sf Pred -- Test Error = ([0-9.eE+-]+)", text)]
    return [{"epoch": i + 1, "test": {"goodness": 1 - a, "linear": 1 - s}, "train_s": None}
            for i, (a, s) in enumerate(zip(avg, sf))]


# -------------------------------------------------------------------------------------------------- store


def parse_value(text: str):
    """A --set value: JSON (numbers, lists, true/false) where it parses, else the string itself."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return tuple(value) if isinstance(value, list) else value


def save(preset: str, entry: dict) -> None:
    path = results_path(preset)
    doc = json.loads(path.read_text()) if path.exists() else {"preset": preset, "runs": []}
    key = (entry["side"], entry["label"], entry["seed"], entry["train_images"])
    doc["runs"] = [r for r in doc["runs"] if (r["side"], r["label"], r["seed"], r["train_images"]) != key] + [entry]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")


def _reads(doc: dict, images: int | None = None) -> dict[tuple, dict[int, dict[int, float]]]:
    """Every test read of a results file (``images``: only the runs on that many training images): (side, label,
    readout, train images) -> epoch -> seed -> accuracy. A diagnostic's recalibrated reads are their own
    readout ("goodness, batch norm recalibrated")."""
    groups: dict[tuple, dict[int, dict[int, float]]] = {}
    for r in doc["runs"]:
        if images is not None and r["train_images"] != images:
            continue
        for e in r["epochs"]:
            reads = {**e["test"], **{f"{k}, batch norm recalibrated": v for k, v in e.get("test_bn_recalibrated", {}).items()}}
            for readout, acc in reads.items():
                groups.setdefault((r["side"], r["label"], readout, r["train_images"]), {}).setdefault(
                    e["epoch"], {})[r["seed"]] = acc
    return groups


def _cell(accs: list[float], sd: bool) -> str:
    """Mean (min–max) in percent; with ``sd`` also the sample standard deviation (n − 1) in points."""
    if not accs:
        return "–"
    if len(accs) == 1:
        return f"{100 * accs[0]:.2f}%"
    spread = f"{100 * min(accs):.2f}–{100 * max(accs):.2f}"
    if sd:
        spread += f", sd {100 * np.std(accs, ddof=1):.2f}"
    return f"{100 * np.mean(accs):.2f}% ({spread})"


def _ordered(groups: dict) -> list:
    """Reference rows first, then by setting, training images and readout; a setting run at several budgets
    names its images (``as published, 20,000 images``) so that no two rows read alike."""
    budgets: dict[tuple, set] = {}
    for side, label, _, n in groups:
        budgets.setdefault((side, label), set()).add(n)
    rows = sorted(groups.items(), key=lambda kv: (kv[0][0] != "reference", kv[0][1], kv[0][3], kv[0][2]))
    return [((side, f"{label}, {n:,} images" if len(budgets[side, label]) > 1 else label, readout, n), reads)
            for (side, label, readout, n), reads in rows]


def table(preset: str, sd: bool = False, images: int | None = None) -> str:
    """Markdown: one row per (side, label, epoch, readout): mean test accuracy, min–max over seeds (and with
    ``sd`` their standard deviation), seeds; ``images``: only the runs on that many training images."""
    groups = _reads(json.loads(results_path(preset).read_text()), images)
    lines = ["| side | setting | readout | epoch 1 | epoch 2 | seeds |", "|---|---|---|---|---|---|"]
    for (side, label, readout, _), by_epoch in _ordered(groups):
        cells = [_cell(list(by_epoch.get(ep, {}).values()), sd) for ep in (1, 2)]
        n = max(len(v) for v in by_epoch.values())
        lines.append(f"| {side} | {label} | {readout} | {cells[0]} | {cells[1]} | {n} |")
    return "\n".join(lines)


def seeds_table(preset: str, label: str | None = None, images: int | None = None) -> str:
    """Markdown: every seed's reads, one row per (side, label, readout, seed); ``label``: only that setting;
    ``images``: only the runs on that many training images."""
    groups = _reads(json.loads(results_path(preset).read_text()), images)
    if label is not None:
        groups = {k: v for k, v in groups.items() if k[1] == label}
    lines = ["| side | setting | readout | seed | epoch 1 | epoch 2 |", "|---|---|---|---|---|---|"]
    for (side, setting, readout, _), by_epoch in _ordered(groups):
        for seed in sorted({s for reads in by_epoch.values() for s in reads}):
            cells = [f"{100 * by_epoch[ep][seed]:.2f}%" if seed in by_epoch.get(ep, {}) else "–" for ep in (1, 2)]
            lines.append(f"| {side} | {setting} | {readout} | {seed} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def compare(preset: str, label: str = "as published", other_label: str | None = None,
            images: int | None = None) -> str:
    """Markdown: the reference code's seeds (setting ``label``) against the preset's (``other_label``, default
    the same) per readout and epoch: n, mean and standard deviation a side, Welch's t-test of the means and
    the Brown–Forsythe test (Levene's, centred on the median) of the spreads, both two-sided, where each
    side has at least 3 seeds (with 2 the median-centred deviations are equal and the test degenerates).
    Seeds that finished an epoch count at that epoch. ``images``: the runs on that many training images,
    needed where both settings were run at more than one budget."""
    from scipy import stats
    groups = _reads(json.loads(results_path(preset).read_text()), images)
    other_label = label if other_label is None else other_label
    ref = {(k[2], k[3]): v for k, v in groups.items() if k[0] == "reference" and k[1] == label}
    ours = {(k[2], k[3]): v for k, v in groups.items() if k[0] == "ffneuro" and k[1] == other_label}
    if not ref or not ours:
        raise ValueError(f"no reference runs labelled {label!r} or no ffneuro runs labelled {other_label!r}")
    shared = sorted({n for _, n in ref} & {n for _, n in ours})
    if len(shared) > 1:
        raise ValueError(f"both settings ran on {' and '.join(f'{n:,}' for n in shared)} training images: "
                         "choose one with --train-limit")
    lines = ["| readout | epoch | reference: n, mean, sd | ffneuro: n, mean, sd | difference | "
             "Welch's t-test p | Brown–Forsythe p |", "|---|---|---|---|---|---|---|"]
    for key in sorted(set(ref) & set(ours)):
        for ep in sorted(set(ref[key]) & set(ours[key])):
            a, b = list(ref[key][ep].values()), list(ours[key][ep].values())
            side = [f"{len(v)}, {100 * np.mean(v):.2f}%, {100 * np.std(v, ddof=1):.2f}" if len(v) > 1
                    else f"1, {100 * v[0]:.2f}%, –" for v in (a, b)]
            if min(len(a), len(b)) >= 3:
                with warnings.catch_warnings():   # equal samples give nan; reported as such
                    warnings.simplefilter("ignore", RuntimeWarning)
                    t_p = stats.ttest_ind(a, b, equal_var=False).pvalue
                    bf_p = stats.levene(a, b, center="median").pvalue
                tests = f"{t_p:.3f} | {bf_p:.3f}"
            else:
                tests = "– | –"
            lines.append(f"| {key[0]} | {ep} | {side[0]} | {side[1]} | {100 * (np.mean(b) - np.mean(a)):+.2f} | {tests} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run")
    run.add_argument("preset", choices=sorted(VARIANTS))
    run.add_argument("--side", choices=["ffneuro", "reference"], required=True)
    run.add_argument("--reference", type=Path, help="checkout of the authors' repository (reference side)")
    run.add_argument("--seeds", default="0")
    run.add_argument("--epochs", type=int, default=2)
    run.add_argument("--train-limit", type=int, default=20000)
    run.add_argument("--data-dir")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="ffneuro: a RunConfig field; reference: a config key (loewe), flag (cwcomp) or Config "
                          "field (trifecta; also rotations=false: without its random rotations)")
    run.add_argument("--label", default="as published")
    run.add_argument("--test-limit", type=int, help="read only the first N test images (both sides; default all)")
    run.add_argument("--patch", action="append", default=[], choices=sorted(PATCHES),
                     help="ffneuro side: apply one of the reference code's differences no RunConfig field "
                          "covers (hinton-fc-mnist: st-relu, normal-init, readout-zero-nobias, readout-before-step; "
                          "the cwcomp presets: softmax-readout)")
    run.add_argument("--recalibrate", type=int, default=0, metavar="BATCHES",
                     help="ffneuro side: after each epoch also read the test set with batch-norm statistics "
                          "recomputed for the current weights over this many training batches (a diagnostic)")
    log = sub.add_parser("from-log", help="record the finished epochs of a stopped run from its log")
    log.add_argument("preset", choices=sorted(VARIANTS))
    log.add_argument("log", type=Path)
    log.add_argument("--side", choices=["ffneuro", "reference"], required=True)
    log.add_argument("--seed", type=int, required=True)
    log.add_argument("--train-limit", type=int, default=20000)
    log.add_argument("--epochs", type=int, default=2, help="the epochs the stopped run had planned")
    log.add_argument("--label", default="as published")
    log.add_argument("--command", required=True, help="the command that made the log")
    probe = sub.add_parser("bn-probe", help="a preset's accuracy before/after refreshing its batch-norm statistics")
    probe.add_argument("preset", choices=sorted(VARIANTS))
    probe.add_argument("--seed", type=int, default=0)
    probe.add_argument("--train-limit", type=int, default=5000)
    probe.add_argument("--test-limit", type=int, default=2000)
    probe.add_argument("--standardise", action="store_true")
    probe.add_argument("--data-dir")
    tab = sub.add_parser("table")
    tab.add_argument("preset", choices=sorted(VARIANTS))
    tab.add_argument("--sd", action="store_true", help="also each cell's standard deviation over seeds")
    tab.add_argument("--seeds", action="store_true", help="every seed's reads instead of the summary")
    tab.add_argument("--label", help="with --seeds: only this setting")
    tab.add_argument("--train-limit", type=int, help="only the runs on this many training images")
    rot = sub.add_parser("rotation", help="ffneuro's random rotation against torchvision's on the same angles")
    rot.add_argument("preset", choices=sorted(VARIANTS))
    rot.add_argument("--images", type=int, default=10000, help="the first N training images")
    rot.add_argument("--seed", type=int, default=0)
    rot.add_argument("--data-dir")
    stp = sub.add_parser("step", help="trifecta-mnist's training step against the Trifecta code's, same weights and batches")
    stp.add_argument("--reference", type=Path, required=True, help="a checkout of tdooms/trifecta")
    stp.add_argument("--steps", type=int, default=5)
    stp.add_argument("--batch", type=int, default=64)
    stp.add_argument("--seed", type=int, default=0)
    cmp = sub.add_parser("compare", help="reference against preset over seeds: Welch's t-test, Brown-Forsythe")
    cmp.add_argument("preset", choices=sorted(VARIANTS))
    cmp.add_argument("--label", default="as published", help="the reference side's setting")
    cmp.add_argument("--ffneuro-label", help="the preset side's setting (default: --label)")
    cmp.add_argument("--train-limit", type=int, help="only the runs on this many training images")
    args = ap.parse_args()
    if args.cmd == "table":
        print(seeds_table(args.preset, args.label, args.train_limit) if args.seeds
              else table(args.preset, args.sd, args.train_limit))
        return
    if args.cmd == "compare":
        try:
            print(compare(args.preset, args.label, args.ffneuro_label, args.train_limit))
        except ValueError as err:
            sys.exit(f"Error: {err}")
        return
    if args.cmd == "rotation":
        if args.images < 1:
            sys.exit("Error: --images must be >= 1")
        x = images(preset_dataset(args.preset), args.data_dir).x_train[:args.images]
        entry = rotation_agreement(x, seed=args.seed)   # ffneuro's datasets are (N, C, H, W) uint8
        entry |= {"preset": args.preset, "machine": machine(), "date": today(),
                  "command": invocation()}
        print(json.dumps(entry), flush=True)
        path = results_path(args.preset).with_name(f"fidelity-{args.preset}-rotation.json")
        path.write_text(json.dumps(entry, indent=1) + "\n")
        return
    if args.cmd == "step":
        if args.steps < 1 or args.batch < 1:
            sys.exit("Error: --steps and --batch must be >= 1")
        entry = trifecta_step_agreement(args.reference.resolve(), args.steps, args.batch, args.seed)
        entry |= {"preset": "trifecta-mnist", "machine": machine(), "threads": torch_threads(), "date": today(),
                  "command": invocation()}
        print(json.dumps(entry), flush=True)
        results_path("trifecta-mnist").with_name("fidelity-trifecta-mnist-step.json").write_text(
            json.dumps(entry, indent=1) + "\n")
        return
    if args.cmd == "bn-probe":
        result = bn_probe(args.preset, args.seed, args.train_limit, args.test_limit, args.data_dir, args.standardise)
        entry = {"preset": args.preset, "seed": args.seed, "train_images": args.train_limit,
                 "test_images": args.test_limit, "standardised_inputs": args.standardise, "test": result,
                 "machine": machine(), "date": today(),
                 "command": invocation()}
        print(json.dumps(entry), flush=True)
        path = results_path(args.preset).with_name(f"fidelity-{args.preset}-bn-probe.json")
        runs = json.loads(path.read_text()) if path.exists() else []
        path.write_text(json.dumps([r for r in runs if r["standardised_inputs"] != args.standardise] + [entry],
                                   indent=1) + "\n")
        return
    if args.cmd == "from-log":
        epochs = epochs_from_log(args.log.read_text(errors="replace"))
        if not epochs:
            sys.exit(f"Error: no finished epoch in {args.log}")
        save(args.preset, {"side": args.side, "label": args.label, "seed": args.seed, "train_images": args.train_limit,
                           "epochs_planned": args.epochs, "overrides": {}, "epochs": epochs, "wall_s": None,
                           "machine": machine(), "threads": None, "date": today(),
                           "command": args.command, "stopped": True})
        return
    overrides = dict((k, parse_value(v)) for k, v in (s.split("=", 1) for s in args.set))
    global TEST_LIMIT
    TEST_LIMIT = args.test_limit
    if args.side == "reference" and args.reference is None:
        ap.error("--side reference needs --reference PATH (a checkout of the authors' code)")
    # read now: the CwComp runner replaces sys.argv with the reference code's own while it runs
    command = invocation()
    for name in args.patch:
        if args.side != "ffneuro" or args.preset not in PATCH_PRESETS[name]:
            ap.error(f"--patch {name} applies to the ffneuro side of {' and '.join(PATCH_PRESETS[name])} only")
    for name in args.patch:
        PATCHES[name]()
    for seed in (int(s) for s in args.seeds.split(",")):
        t0 = time.perf_counter()

        def record(epochs: list[dict], seed: int = seed, t0: float = t0) -> None:
            """Save the run so far: after every epoch, so a run stopped early keeps what it finished."""
            save(args.preset, {
                "side": args.side, "label": args.label, "seed": seed, "train_images": args.train_limit,
                **({"test_images": args.test_limit} if args.test_limit else {}), "epochs_planned": args.epochs,
                "overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()},
                **({"patches": args.patch} if args.patch else {}),
                "epochs": epochs, "wall_s": round(time.perf_counter() - t0, 1), "machine": machine(),
                "threads": torch_threads(), "date": today(), "command": command})

        if args.side == "ffneuro":
            record(run_ffneuro(args.preset, seed, args.epochs, args.train_limit, args.data_dir, overrides, record,
                               args.recalibrate))
        else:
            runner = REFERENCE_RUNNERS[VARIANTS[args.preset]]
            record(runner(args.reference.resolve(), seed, args.epochs, args.train_limit, args.data_dir, overrides,
                          record, dataset=preset_dataset(args.preset)))


if __name__ == "__main__":
    main()
