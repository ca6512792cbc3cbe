"""The training loop shared by FF and BP: batches, schedule, per-epoch evaluation, run recording."""
from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np
import torch

from ..config import RunConfig
from ..data import Dataset, split_train_val
from ..data.augment import augment_batch
from ..data.normalise import NONE, check_normalisation, standardise
from ..errors import ConfigError
from ..models import build_model
from .divergence import DivergenceGuard
from .parallel import Local
from .stop import StopRequested, StopSignals, never_stop

log = logging.getLogger(__name__)

TRAIN_EVAL_SIZE = 1000  # train accuracy per epoch is measured on this many (fixed) training images
ACTIVITY_SIZE = 1000    # activation sparsity (for the profiler) is measured on this many held-out images


class Recorder(Protocol):
    """Where a run's results go (the HDF5 RunWriter satisfies this)."""

    def commit_epoch(self, epoch: int, scalars: dict, per_unit: dict | None, weights: dict, *, best: bool,
                     state: dict | None = None, state_meta: dict | None = None) -> None: ...
    def heartbeat(self) -> None: ...


class Progress(Protocol):
    def start(self, label: str, total: int) -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def finish(self) -> None: ...


class _Silent:
    def start(self, label, total): pass
    def advance(self, n=1): pass
    def finish(self): pass


@dataclass
class Split:
    """One part of the data on the device: uint8 images (scaled per batch) and labels. ``batch`` is the one
    way a run's images reach its network (training, evaluation, eval/cam/export/simulate of a run file):
    scaled to [0, 1], then standardised as the run's ``normalise`` says (ffneuro.data.normalise)."""

    x: torch.Tensor
    y: torch.Tensor
    normalise: str = NONE

    @classmethod
    def of(cls, x: np.ndarray, y: np.ndarray, device: torch.device, normalise: str = NONE) -> Split:
        check_normalisation(normalise, x.shape[1] if x.ndim == 4 else None)
        return cls(torch.from_numpy(np.ascontiguousarray(x)).to(device), torch.from_numpy(y).to(device), normalise)

    def __len__(self) -> int:
        return len(self.y)

    def batch(self, idx, augment: Callable[[torch.Tensor], torch.Tensor] | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``idx`` and their labels; ``augment`` runs on the [0, 1] images, before standardisation
        (so a random crop's zero padding stays black, as torchvision's crop-then-normalise has it)."""
        x = self.x[idx].float().div_(255.0)
        if augment is not None:
            x = augment(x)
        return standardise(x, self.normalise), self.y[idx]


@dataclass
class Summary:
    """What a finished run reports: accuracies per readout on each split, timing, epochs."""

    epochs: int
    wall_time_s: float
    train_images: int
    val: dict[str, float] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    best_epoch: int = 0
    best_val: float = float("nan")


class Trainer:
    """Builds the model from a config and trains it, committing every epoch (and what a resume needs)."""

    def __init__(self, config: RunConfig, data: Dataset, *, stop: StopSignals | None = None,
                 parallel: Local | None = None):
        self.config = config
        self.parallel = parallel or Local()
        self.device = self.parallel.device(config.device)
        self.stop = stop
        torch.manual_seed(config.seed)
        x_tr, y_tr, x_val, y_val = split_train_val(data.x_train, data.y_train, config.val_size, config.train_limit,
                                                   name=data.name)
        if config.val_size is None and config.train_limit is not None:  # the automatic split followed the limit
            log.log(logging.WARNING if len(x_val) == 0 else logging.INFO, "using %d training / %d validation images%s",
                    len(x_tr), len(x_val), " (none left for validation)" if len(x_val) == 0 else "")
        if config.drop_last and config.epochs and len(x_tr) < config.batch_size:
            raise ConfigError(f"--drop-last skips every batch: {len(x_tr)} training images are fewer than the batch "
                              f"size {config.batch_size}; lower --batch-size or use --keep-last")
        self.train = Split.of(x_tr, y_tr, self.device, config.normalise)
        self.val = Split.of(x_val, y_val, self.device, config.normalise)
        self.test = Split.of(data.x_test, data.y_test, self.device, config.normalise)
        self.model = build_model(config, data.image_shape, data.num_classes).to(self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed)
        self.progress = RunProgress()
        self.parallel.prepare(self.model, config.batch_size)

    def check_stop(self, batch: int = 0) -> None:
        """Raise StopRequested at a safe point once a stop signal has arrived (in any process: processes
        agree every ``parallel.checks_every()`` batches, so they all stop at the same one)."""
        if self.stop is None or batch % self.parallel.checks_every():
            return
        if self.parallel.agree(self.stop.signum is not None):
            raise StopRequested(self.stop.signum or signal.SIGTERM)

    def unit_names(self) -> list[str]:
        return [c.name for c in self.model.costs()]

    def accounting(self) -> dict[str, list]:
        rows = [c.as_dict() for c in self.model.costs()]
        return {k: [r[k] for r in rows] for k in rows[0] if k != "name"}

    def readouts(self) -> list[str]:
        """The readouts ``config.readout`` asks for that the model has (FF always has goodness, so
        ``--readout linear`` must not pay its one-forward-per-class cost at every evaluation)."""
        wanted = [r for r in self.model.readouts() if self.config.readout in (r, "both")]
        return wanted or self.model.readouts()

    def evaluate(self, split: Split, readouts: list[str] | None = None, limit: int | None = None) -> dict[str, float]:
        """Accuracy of each readout (default: :meth:`readouts`) on (the first ``limit`` samples of) a split."""
        n = len(split) if limit is None else min(limit, len(split))
        readouts = readouts or self.readouts()
        if n == 0:
            return {r: float("nan") for r in readouts}
        # a pair objective's goodness readout runs every class at once: keep its batch the same size in rows
        bs = max(1, self.config.eval_batch_size // self.model.eval_rows_per_image(readouts))
        self.model.eval()
        slices = [slice(start, min(start + bs, n)) for start in range(0, n, bs)]
        correct = self.parallel.count_correct(self.model, split, slices, readouts, self.check_stop)
        return {r: c / n for r, c in correct.items()}

    # ----------------------------------------------------------------------------------- training

    def _train_epoch(self, epoch: int, progress: Progress, beat: Callable[[], None] = never_stop) -> tuple[dict, dict]:
        cfg, model = self.config, self.model
        lr = cfg.lr_at(epoch, cfg.lr)
        # every optimiser's lr follows the schedule from its own base lr (per-unit lrs, the linear readout's)
        model.start_epoch(epoch, lambda base: cfg.lr_at(epoch, base))
        model.train()
        order = torch.randperm(len(self.train), generator=self.generator, device=self.device)
        # drop_last: the short batch a DataLoader(drop_last=True) never yields is not trained on
        usable = len(order) - len(order) % cfg.batch_size if cfg.drop_last else len(order)
        batches = range(0, usable, cfg.batch_size)
        progress.start(f"epoch {epoch + 1}/{cfg.epochs}", len(batches))
        guard = DivergenceGuard(model.loss_names(), epoch + 1, self.progress.loss_reference, reduce=self.parallel.reduce)
        unit_sums, loss_sum = None, torch.zeros((), device=self.device)
        for b, start in enumerate(batches):
            self.check_stop(b)
            beat()
            if cfg.cooldown_per_step:   # the cool-down at this batch's fraction of the run
                at = epoch + b / len(batches)
                model.set_lrs(lambda base, at=at: cfg.lr_at(at, base))
            # augmentation: training batches only, never evaluation
            x, y = self.train.batch(order[start: start + cfg.batch_size],
                                    lambda x: augment_batch(x, cfg.augment, self.generator, cfg.crop_padding))
            step = self.parallel.train_batch(model, x, y, self.generator)
            if step.unit_stats is not None:
                unit_sums = step.unit_stats if unit_sums is None else [a + b for a, b in zip(unit_sums, step.unit_stats)]
            if step.train_loss is not None:
                loss_sum += step.train_loss
            guard.add(torch.stack(list(step.losses.values())), b)
            progress.advance()
        progress.finish()
        guard.check(len(batches) - 1)
        self.progress.loss_reference = guard.reference
        guard.check_weights(self.model, agree=self.parallel.agree)
        nb = len(batches)
        # one tensor of every per-process sum, so that the run-wide sums take a single collective
        table = torch.stack([loss_sum.float(), *(v.float() for s in unit_sums or [] for v in s.values())])
        table = self.parallel.reduce(table).tolist()
        scalars = {"lr": lr, "train_loss": table[0] / nb}
        per_unit = {}
        if unit_sums is not None:
            keys = ("loss", "goodness_pos", "goodness_neg", "disc_acc", "pair_acc")
            rows = np.array(table[1:]).reshape(len(unit_sums), len(keys))
            per_unit = {k: [float(v) / nb for v in rows[:, j]] for j, k in enumerate(keys)}
        return scalars, per_unit

    def run(self, recorder: Recorder | None = None, progress: Progress | None = None, *,
            final_test: bool = True) -> Summary:
        """Train from the next epoch (the first, or the one after a restored checkpoint) to ``config.epochs``,
        evaluating validation every ``eval_every`` epochs and committing each epoch to ``recorder``; then read
        the test set once (``final_test=False`` skips it, for a caller that reads the test set itself, and
        leaves ``Summary.test`` empty)."""
        cfg, progress, state = self.config, progress or _Silent(), self.progress
        beat = getattr(recorder, "heartbeat", None) or (lambda: None)
        summary = Summary(epochs=cfg.epochs, wall_time_s=state.wall_time_s, train_images=len(self.train),
                          val=dict(state.val), best_epoch=state.best_epoch, best_val=state.best_val)
        t0 = time.perf_counter() - state.wall_time_s
        for epoch in range(state.epochs_done, cfg.epochs):
            t_epoch = time.perf_counter()
            scalars, per_unit = self._train_epoch(epoch, progress, beat)
            train_time = time.perf_counter() - t_epoch
            improved = False
            if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
                val = self.evaluate(self.val)
                train_acc = self.evaluate(self.train, limit=TRAIN_EVAL_SIZE)
                scalars.update({f"val_acc_{r}": a for r, a in val.items()})
                scalars.update({f"train_acc_{r}": a for r, a in train_acc.items()})
                summary.val = val
                score = max(val.values())
                improved = not score <= summary.best_val  # NaN-safe: the first evaluation always counts
                if improved:
                    summary.best_val, summary.best_epoch = score, epoch + 1
            summary.wall_time_s = time.perf_counter() - t0
            scalars.update(epoch_train_time_s=train_time, wall_time_s=summary.wall_time_s,
                           images_per_s=len(self.train) / train_time)
            (log.info if self.parallel.is_main else log.debug)("epoch %d/%d  %s  (%.1f s)", epoch + 1, cfg.epochs,
                     "  ".join(f"val {r} {scalars[f'val_acc_{r}']:.4f}" for r in self.readouts()
                               if f"val_acc_{r}" in scalars) or "(not evaluated)", train_time)
            state.epochs_done, state.val, state.wall_time_s = epoch + 1, dict(summary.val), summary.wall_time_s
            state.best_val, state.best_epoch = summary.best_val, summary.best_epoch
            scalars.update(self.parallel.wire())
            # every process takes part in gathering the checkpoint; only the main one has a recorder
            weights, arrays, meta = self.parallel.gather_state(self.model, self.state_dict(), *self.checkpoint())
            if recorder is not None:
                recorder.commit_epoch(epoch + 1, scalars, per_unit or None, weights, best=improved,
                                      state=arrays, state_meta=meta)
        if final_test:
            summary.test = self.evaluate(self.test)
            log.info("test  %s", "  ".join(f"{r} {a:.4f}" for r, a in summary.test.items()))
        summary.wall_time_s = time.perf_counter() - t0
        return summary

    def final_groups(self, summary: Summary) -> dict[str, tuple[dict, dict]]:
        """What a finished run stores besides its epochs: the test result, the measured activity, a summary."""
        split, name = (self.val, "val") if len(self.val) else (self.test, "test")
        activity = self.activity(split)
        return {
            "test": ({f"acc_{r}": a for r, a in summary.test.items()},
                     {"weights": "final", "images": len(self.test)}),
            "activity": (activity.to_dict(), {"split": name, "images": min(ACTIVITY_SIZE, len(split)),
                                              "embedding": self.model.activity_embedding}),
            "summary": ({"best_epoch": summary.best_epoch, "best_val_acc": summary.best_val,
                         "wall_time_s": summary.wall_time_s}, {}),
        }

    def activity(self, split: Split):
        """Zero fraction of each unit's input and neurons on held-out images: the sparsity an
        event-driven target would exploit. Units see what they see in training (FF pairs: the true label
        embedded)."""
        from ..profiler.sparsity import measure_activity

        x, y = split.batch(slice(0, min(ACTIVITY_SIZE, len(split))))
        return measure_activity(self.model, x, y)

    # ---------------------------------------------------------------------- weights and checkpoints

    def state_dict(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self.model.state_dict().items()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})

    def checkpoint(self) -> tuple[dict, dict]:
        """What resuming after the last finished epoch needs besides the weights: every optimiser's state,
        the RNG states, and the run's progress, as (nested arrays, JSON-able metadata)."""
        arrays: dict = {"optimizers": {}, "rng": {"generator": self.generator.get_state().numpy(),
                                                  "torch": torch.get_rng_state().numpy()}}
        meta: dict = {"optimizers": {}, "progress": self.progress.to_dict()}
        if self.device.type == "cuda":
            arrays["rng"]["cuda"] = torch.cuda.get_rng_state(self.device).numpy()
        for name, opt in self.model.optimizers().items():
            arrays["optimizers"][name], meta["optimizers"][name] = optimizer_to_arrays(opt.state_dict())
        return arrays, meta

    def restore(self, weights: dict[str, np.ndarray], arrays: dict, meta: dict) -> None:
        """Continue from a checkpoint: weights, optimisers, RNGs and progress as they were after its epoch."""
        self.load_state_dict(weights)
        optimizers = self.model.optimizers()
        stored = set(meta.get("optimizers", {}))
        if stored != set(optimizers):
            raise ConfigError(f"the stored optimiser states ({', '.join(sorted(stored)) or 'none'}) do not match "
                              f"this network's ({', '.join(sorted(optimizers))})")
        for name, opt in optimizers.items():
            opt.load_state_dict(optimizer_from_arrays(arrays["optimizers"].get(name, {}), meta["optimizers"][name]))
        rng = arrays["rng"]
        self.generator.set_state(torch.from_numpy(np.asarray(rng["generator"])))
        torch.set_rng_state(torch.from_numpy(np.asarray(rng["torch"])))
        if self.device.type == "cuda" and "cuda" in rng:
            torch.cuda.set_rng_state(torch.from_numpy(np.asarray(rng["cuda"])), self.device)
        self.progress = RunProgress.from_dict(meta["progress"])


@dataclass
class RunProgress:
    """Where a run stands after its last finished epoch (saved with each epoch so a resume continues it)."""

    epochs_done: int = 0
    best_val: float = float("nan")
    best_epoch: int = 0
    val: dict[str, float] = field(default_factory=dict)
    wall_time_s: float = 0.0
    loss_reference: list[float] | None = None  # each loss's first-batch value (DivergenceGuard)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> RunProgress:
        return cls(**values)


def optimizer_to_arrays(state: dict) -> tuple[dict, dict]:
    """A torch optimiser ``state_dict`` as (tensors as numpy arrays by parameter index and key, the rest as JSON)."""
    arrays: dict = {}
    scalars: dict = {}
    for index, entries in state["state"].items():
        for key, value in entries.items():
            if torch.is_tensor(value):
                arrays.setdefault(str(index), {})[key] = value.detach().cpu().numpy()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return arrays, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_from_arrays(arrays: dict, meta: dict) -> dict:
    """Invert :func:`optimizer_to_arrays` (tensors come back on the CPU; ``load_state_dict`` moves them)."""
    state: dict = {}
    for index, entries in arrays.items():
        state.setdefault(int(index), {}).update({k: torch.from_numpy(np.asarray(v).copy()) for k, v in entries.items()})
    for index, entries in meta.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(entries)
    return {"state": state, "param_groups": meta["param_groups"]}
