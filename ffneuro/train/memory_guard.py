"""The memory guard: before training, the memory model's estimate for a config against what is free.

A batch size that does not fit would otherwise grow until the kernel's OOM killer stops the process
(and, on a shared machine, others with it). :func:`check_memory` estimates the peak of a run from the
analytic memory model (``ffneuro.accounting``: one training step, one evaluation batch, the end-of-run
activity pass, and the dataset when it is copied to a GPU) and refuses, with one line, a config whose
estimate plus the margins (:data:`MARGIN`, :data:`MARGIN_BYTES`) exceeds the free memory, naming the
largest batch size that fits.

Free memory: on CPU the smaller of ``MemAvailable`` (/proc/meminfo) and the process's cgroup limit
minus its usage (less reclaimable page cache); on CUDA ``torch.cuda.mem_get_info``. Where neither can
be read, nothing is refused. ``FFNEURO_MEMORY_GUARD=off`` turns the refusal into a logged warning,
for the cases the estimate of free memory is wrong (memory the kernel does not report as available,
such as a ZFS cache, or a platform the model was not measured on).
"""
from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..accounting import bp_memory, ff_memory, inference_memory, inference_peak_bytes
from ..accounting.objective import objective_cost
from ..accounting.optimizer import optimizers_of
from ..config import RunConfig
from ..data import Dataset, split_sizes
from ..errors import ConfigError, NotModelled
from .device import pick_device
from .trainer import ACTIVITY_SIZE, TRAIN_EVAL_SIZE

log = logging.getLogger(__name__)

# What real runs add to the model's tensors (BENCHMARKS.md section 4b): measured on CPU, from where the
# guard runs to the process's peak RSS, 78-329 MB more than the estimate over eleven runs (estimates of
# 3 MB to 3.1 GB, whose tensor peaks the model matches): about 65 MB of modules torch imports when the
# first optimiser is built, then what glibc keeps of freed tensors, oneDNN's per-thread buffers and
# code pages. Need = estimate × (1 + MARGIN) + MARGIN_BYTES covered every run (peak RSS growth at most
# 0.94 of it). On CUDA (caching-allocator rounding, cuDNN workspaces) the same margin is used, unmeasured.
MARGIN = 0.15
MARGIN_BYTES = 256 * 2**20
_UNLIMITED = 1 << 60       # cgroup v1 writes "no limit" as a huge page-rounded number
_GUARD_ENV = "FFNEURO_MEMORY_GUARD"


@dataclass(frozen=True)
class MemoryNeed:
    """Estimated peak bytes of a run's phases; each phase includes the model's resident state."""

    train_step: int   # one training step at the effective batch size
    evaluation: int   # one evaluation batch (or the activity pass, whichever is larger)
    data: int         # images and labels copied to the device (0 on CPU: they are already in RAM)

    @property
    def peak(self) -> int:
        return self.data + max(self.train_step, self.evaluation)


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


class _Model:
    """The memory model of one config on one device, as functions of the batch sizes."""

    def __init__(self, config: RunConfig, image_shape: Sequence[int], num_classes: int, *, train_images: int,
                 val_images: int, test_images: int, device: torch.device):
        self.config, self.classes = config, num_classes
        self.specs = config.check_shapes(tuple(image_shape), num_classes)
        self.backend = "cuda" if device.type == "cuda" else "cpu"
        self.threads = torch.get_num_threads()
        # oneDNN's copies are modelled for fp32; bf16 on CPU is estimated with the autocast replay
        self.train_backend = self.backend if config.precision == "fp32" else "cuda"
        self.ff = config.algo == "ff"
        self.objective = objective_cost(config, num_classes)
        self.optimizers = optimizers_of(config)
        self.linear = config.readout in ("linear", "both")
        self.train_images = train_images
        # the largest evaluated split: validation and test in full, train accuracy on its first images
        self.eval_images = max(val_images, test_images, min(TRAIN_EVAL_SIZE, train_images))
        held_out = val_images or test_images
        self.activity_images = min(ACTIVITY_SIZE, held_out)
        image = math.prod(image_shape)
        self.data = 0 if device.type == "cpu" else (train_images + val_images + test_images) * (image + 8)
        # what Trainer.readouts() evaluates: FF always has goodness, linear only when asked for
        self.readouts = {"goodness": ["goodness"], "linear": ["linear"], "both": ["goodness", "linear"]}[
            config.readout] if self.ff else ["linear"]
        self._resident = self.train(1)  # params, gradients, Adam: present during evaluation too

    def train(self, batch: int):
        """MemoryCost of one training step (the last batch of an epoch is never larger than ``batch``)."""
        c, b = self.config, max(1, min(batch, self.train_images))
        if self.ff:
            return ff_memory(self.specs, b, c.precision, num_classes=self.classes, linear_readout=self.linear,
                             readout_from=c.readout_from, backend=self.train_backend, threads=self.threads,
                             objective=self.objective, optimizers=self.optimizers)
        return bp_memory(self.specs, b, c.precision, num_classes=self.classes, backend=self.train_backend,
                         threads=self.threads)

    def train_bytes(self, batch: int) -> int:
        return self.train(batch).peak_bytes

    def _predict(self, images: int, readout: str) -> int:
        peak = None
        if self.objective.pairs:
            try:
                peak = inference_memory(self.specs, max(1, images), readout=readout, num_classes=self.classes,
                                        readout_from=self.config.readout_from, algo=self.config.algo,
                                        linear_readout=self.linear, backend=self.backend,
                                        threads=self.threads, readout_bias=self.optimizers.readout_bias).peak_bytes
            except NotModelled:
                pass
        if peak is None:  # no tensor-by-tensor replay of this readout: the shape-only count, doubled for temporaries
            peak = 2 * inference_peak_bytes(self.specs, max(1, images), readout=readout, num_classes=self.classes,
                                            readout_from=self.config.readout_from, algo=self.config.algo,
                                            objective=self.objective,
                                            readout_bias=self.optimizers.readout_bias)
        return peak + self._resident.grad_bytes + self._resident.optimizer_bytes

    def eval_bytes(self, eval_batch_size: int) -> int:
        """One evaluation batch as ``Trainer.evaluate`` runs it (FF: eval_batch_size // classes images,
        each with every label for the goodness readout), or the activity pass if that is larger."""
        images = max(1, eval_batch_size // self.classes) if self.ff else eval_batch_size
        images = min(images, self.eval_images)
        peak = max(self._predict(images, r) for r in self.readouts)
        # the activity pass: one no_grad forward of up to ACTIVITY_SIZE images through every unit,
        # replayed as the linear readout's pass over as many images (which adds the small features)
        return max(peak, self._predict(self.activity_images, "linear")) if self.activity_images else peak

    def need(self, batch_size: int, eval_batch_size: int) -> MemoryNeed:
        return MemoryNeed(self.train_bytes(batch_size), self.eval_bytes(eval_batch_size), self.data)


def estimate_memory(config: RunConfig, image_shape: Sequence[int], num_classes: int, *, train_images: int,
                    val_images: int, test_images: int, device: torch.device) -> MemoryNeed:
    """The memory model's estimate of a run's peak (without the margins)."""
    model = _Model(config, image_shape, num_classes, train_images=train_images, val_images=val_images,
                   test_images=test_images, device=device)
    return model.need(config.batch_size, config.eval_batch_size)


def _largest(fits: Callable[[int], bool], hi: int) -> int:
    """The largest n in [1, hi] with ``fits(n)`` (``fits`` monotone: true up to some n), or 0."""
    lo = 0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


# --------------------------------------------------------------------------------------------------
# free memory


def parse_meminfo(text: str) -> int | None:
    """``MemAvailable`` in bytes from /proc/meminfo text (None when absent: kernels before 3.14)."""
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            value, *unit = line.split(":", 1)[1].split()
            return int(value) * (1024 if unit and unit[0].lower() == "kb" else 1)
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _stat(text: str | None, *keys: str) -> int:
    """The first of ``keys`` found in a cgroup memory.stat text (0 if none)."""
    values = dict(line.split()[:2] for line in (text or "").splitlines() if len(line.split()) >= 2)
    return next((int(values[k]) for k in keys if k in values), 0)


def cgroup_free_bytes(proc_cgroup: str, root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Room left under the memory limits of this process's cgroup and its ancestors: the smallest
    limit minus usage, usage less its inactive (reclaimable) file cache. cgroup v2 (``memory.max``,
    ``memory.current``) or v1 (``memory.limit_in_bytes``, ``memory.usage_in_bytes`` under
    ``memory/``); ``proc_cgroup`` is the text of /proc/self/cgroup. None when no limit is set or
    readable (absent files mean no limit)."""
    v1 = v2 = None
    for line in proc_cgroup.splitlines():
        hid, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if hid == "0" and controllers == "":
            v2 = path
        elif "memory" in controllers.split(","):
            v1 = path
    if v1 is not None:
        base, files = root / "memory", ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
        path = v1
    elif v2 is not None:
        base, files = root, ("memory.max", "memory.current", "inactive_file")
        path = v2
    else:
        return None
    limit_file, usage_file, inactive = files
    rooms = []
    parts = [p for p in path.strip("/").split("/") if p]
    # the cgroup's own folder and its ancestors up to the mount (inside a container the mount's root
    # is the container's own cgroup, so the path may not exist below it: then only the root is read)
    for depth in range(len(parts), -1, -1):
        folder = base.joinpath(*parts[:depth])
        limit_text = _read(folder / limit_file)
        if limit_text is None or limit_text.strip() in ("", "max"):
            continue
        limit = int(limit_text.strip())
        usage_text = _read(folder / usage_file)
        if limit >= _UNLIMITED or usage_text is None:
            continue
        usage = int(usage_text.strip()) - _stat(_read(folder / "memory.stat"), inactive, "inactive_file")
        rooms.append(max(0, limit - max(0, usage)))
    return min(rooms) if rooms else None


def available_memory(device: torch.device) -> tuple[int | None, str]:
    """Free bytes for this run on ``device`` and what they are ("RAM" or "GPU memory"); None if unknown."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free), "GPU memory"
    if device.type != "cpu":
        return None, "memory"
    found = [v for v in (parse_meminfo(_read(Path("/proc/meminfo")) or ""),
                         cgroup_free_bytes(_read(Path("/proc/self/cgroup")) or "")) if v is not None]
    return (min(found) if found else None), "RAM"


# --------------------------------------------------------------------------------------------------
# the check


def check_memory(config: RunConfig, image_shape: Sequence[int], num_classes: int, *, train_images: int,
                 val_images: int, test_images: int, device: torch.device,
                 available: int | None = None) -> MemoryNeed:
    """Refuse a run whose estimated peak (plus the margins) exceeds the free memory on ``device``
    (``available`` bytes if given, else measured): a :class:`ConfigError` with the estimate, what is
    free, and the largest ``--batch-size`` / ``--eval-batch-size`` that fits. Returns the estimate."""
    model = _Model(config, image_shape, num_classes, train_images=train_images, val_images=val_images,
                   test_images=test_images, device=device)
    need = model.need(config.batch_size, config.eval_batch_size)
    what = "GPU memory" if device.type == "cuda" else "RAM"
    if available is None:
        available, what = available_memory(device)
    if available is None:
        return need
    with_margin = lambda peak: int((model.data + peak) * (1 + MARGIN)) + MARGIN_BYTES
    fits = lambda peak: with_margin(peak) <= available
    if fits(max(need.train_step, need.evaluation)):
        return need
    problems = []
    if not fits(need.train_step):
        best = _largest(lambda b: fits(model.train_bytes(b)), min(config.batch_size, train_images) - 1)
        problems.append(f"the largest --batch-size that fits is {best}" if best
                        else f"even --batch-size 1 needs {_gb(with_margin(model.train_bytes(1)))}")
    if not fits(need.evaluation):
        step = num_classes if model.ff else 1  # FF evaluates eval_batch_size // classes images at a time
        most = min(config.eval_batch_size // step, model.eval_images)
        best = step * _largest(lambda k: fits(model.eval_bytes(k * step)), most - 1)
        problems.append(f"the largest --eval-batch-size that fits is {best}" if best
                        else f"even --eval-batch-size {step} needs {_gb(with_margin(model.eval_bytes(step)))}")
    message = (f"this run needs about {_gb(with_margin(max(need.train_step, need.evaluation)))} (memory model "
               f"estimate {_gb(need.peak)}, plus {MARGIN:.0%} and {MARGIN_BYTES // 2**20} MiB for the allocator "
               f"and runtime) but {_gb(available)} of {what} is free; " + "; ".join(problems))
    if os.environ.get(_GUARD_ENV, "").lower() in ("off", "0", "no", "false"):
        log.warning("%s (%s=off: training anyway)", message, _GUARD_ENV)
        return need
    raise ConfigError(message + f" (or set {_GUARD_ENV}=off to train anyway)")


def check_run_memory(config: RunConfig, data: Dataset) -> MemoryNeed | None:
    """:func:`check_memory` for training ``config`` on the loaded ``data``, with the splits and the device
    the Trainer will use (a bad validation size or device fails here with the Trainer's own error)."""
    train_images, val_images = split_sizes(len(data.y_train), config.val_size, config.train_limit, name=data.name)
    try:
        return check_memory(config, data.image_shape, data.num_classes, train_images=train_images,
                            val_images=val_images, test_images=len(data.x_test), device=pick_device(config.device))
    except NotModelled as exc:   # a block that does not model its memory: train unchecked, and say why
        log.warning("memory guard: not checked: %s", exc)
        return None


def check_restore_memory(config: RunConfig, image_shape: Sequence[int], num_classes: int, *, eval_images: int,
                         where: str, train_images: int = 0, samples: int | None = None,
                         available: int | None = None) -> MemoryNeed | None:
    """The memory guard for a stored run's network rebuilt to be evaluated (``eval``: batches of
    ``config.eval_batch_size`` over up to ``eval_images`` images) or, with ``samples``, run once on that many
    images with every label (``cam``): a one-line ConfigError naming ``where`` (the run file) when the
    estimate plus the margins exceeds the free memory, with the largest ``--eval-batch-size`` (or
    ``--samples``) that fits (``train_images``: the training split, which a GPU holds too). The estimate counts the network's resident state as training does, plus the
    stored weights read beside it. A block that does not model its memory: not checked (one logged line)."""
    device = pick_device(config.device)
    try:
        model = _Model(config, image_shape, num_classes, train_images=train_images, val_images=eval_images,
                       test_images=eval_images, device=device)
        model.activity_images = 0   # no activity pass: only the evaluation batches (or the CAM pass)
        stored = model._resident.param_bytes   # the weights read from the file, beside the network's own
        if samples is None:   # eval: batches of eval_batch_size rows (FF: // classes images, each with every label)
            step, option, wanted = (num_classes if model.ff else 1), "--eval-batch-size", config.eval_batch_size
            most = min(config.eval_batch_size // step, model.eval_images)
        else:                 # cam: the samples at once, each with every label (FF)
            step, option, wanted, most = 1, "--samples", samples, samples
            model.eval_images = max(model.eval_images, samples)
        rows = num_classes if model.ff else 1

        def need_at(images: int) -> int:
            return model.eval_bytes(images * rows) + stored

        peak = need_at(max(1, most))
    except NotModelled as exc:
        log.warning("memory guard: not checked: %s", exc)
        return None
    need = MemoryNeed(0, peak, model.data)
    what = "GPU memory" if device.type == "cuda" else "RAM"
    if available is None:
        available, what = available_memory(device)
    if available is None:
        return need
    with_margin = lambda p: int((model.data + p) * (1 + MARGIN)) + MARGIN_BYTES
    fits = lambda k: with_margin(need_at(k)) <= available
    if with_margin(peak) <= available:
        return need
    best = _largest(fits, max(1, most) - 1)
    hint = (f"the largest {option} that fits is {best * step}" if best
            else f"even {option} {step} needs {_gb(with_margin(need_at(1)))}")
    message = (f"{where}: its network needs about {_gb(with_margin(peak))} here (memory model estimate "
               f"{_gb(model.data + peak)} at {option} {wanted}, plus {MARGIN:.0%} and {MARGIN_BYTES // 2**20} MiB) "
               f"but {_gb(available)} of {what} is free; {hint}")
    if os.environ.get(_GUARD_ENV, "").lower() in ("off", "0", "no", "false"):
        log.warning("%s (%s=off: running anyway)", message, _GUARD_ENV)
        return need
    raise ConfigError(message + f" (or set {_GUARD_ENV}=off to run anyway)")
