"""Training into a run file, and resuming one: the steps ``ffneuro train``, ``sweep`` and ``study`` share.

A run is created (or reopened) under its lock, every epoch is committed with its resume state, and
the run ends as complete, interrupted (a stop signal), or failed (divergence or an error), keeping
its last committed epoch whatever happens.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..config import RunConfig
from ..data import Dataset, same_split
from ..data.loading import checked_load, dataset_shape, load_data, load_from_source
from ..data.loading import data_source as source_of  # (train_to_file's parameter is called data_source)
from ..errors import ConfigError, Diverged, FFNeuroError, RunFileError
from ..models.weights import weights_mismatch
from ..presets import resolve_config
from ..store import RunRecord, RunWriter, holder_of, read_run
from ..store.sizes import check_stored_network
from .device import environment
from .memory_guard import check_restore_memory, check_run_memory
from .parallel import Local
from .stop import StopSignals
from .trainer import Progress, Summary, Trainer

log = logging.getLogger(__name__)

#: Config keys a resume may change: where it computes and how big its evaluation batches are.
RESUME_MAY_CHANGE = ("device", "eval_batch_size")

#: Config keys that may differ between a stored run and the wanted config without making it another run
IGNORED_ON_RESUME = ("device",)


def config_diff(stored: dict, wanted: dict) -> dict[str, tuple]:
    """Keys whose value differs between a stored run's config and a wanted one: key -> (stored, wanted).

    The stored config is read as this version's RunConfig first, so a run from before a key existed
    holds that key's default; keys in ``IGNORED_ON_RESUME`` (the device) never count, nor does a
    ``val_size`` that resolves to the same split (:func:`ffneuro.data.same_split`).
    """
    try:
        stored = RunConfig.from_dict(dict(stored)).to_dict()
    except ConfigError:
        stored = dict(stored)
    keys = sorted((set(stored) | set(wanted)) - set(IGNORED_ON_RESUME))
    diff = {k: (stored.get(k), wanted.get(k)) for k in keys if stored.get(k) != wanted.get(k)}
    if "val_size" in diff and same_split(stored, wanted):  # e.g. the old default 10000 vs automatic (None)
        del diff["val_size"]
    return diff


def check_trainable(config: RunConfig) -> None:
    """Refuse what a valid config can still not train: a BP network has no goodness readout."""
    if config.algo == "bp" and config.readout == "goodness":
        raise ConfigError("--readout goodness needs --algo ff: a BP network has only the linear readout")


def check_out_path(out: Path, force: bool) -> None:
    """Refuse a run file path that cannot be written, before any data is loaded (so bad paths fail fast):
    a folder, an existing file without ``force``, or no writable folder to create it in."""
    if out.is_dir():
        raise RunFileError(f"{out} is a directory; give a file name for --out")
    if out.exists() and not force:
        holder = holder_of(out)
        if holder is not None:  # a live run: say who writes it, as --force and --resume do
            raise RunFileError(f"{out} is being written by {holder.describe()}; wait for it to finish or stop it")
        raise RunFileError(f"{out} exists; pass --force to overwrite")
    # the nearest existing ancestor must be a writable directory (missing folders are created later)
    ancestor = out.parent
    while not ancestor.exists() and ancestor.parent != ancestor:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise RunFileError(f"cannot create run file {out}: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise RunFileError(f"cannot create run file {out}: directory {ancestor} is not writable")


def data_info(data: Dataset, trainer: Trainer, source: str | None) -> dict:
    """The /data group: what was trained on, and where it came from (so eval and cam can find it again)."""
    info = {"name": data.name, "image_shape": list(data.image_shape), "num_classes": data.num_classes,
            "train_images": len(trainer.train), "val_images": len(trainer.val), "test_images": len(trainer.test)}
    if source:
        info["source"] = source
    return info


def train_to_file(config: RunConfig, data: Dataset, out: Path, *, force: bool = False, progress: Progress | None = None,
                  stop: StopSignals | None = None, data_source: str | None = None,
                  parallel: Local | None = None) -> Summary:
    """Train ``config`` on ``data`` into the run file ``out`` (with ``force``, beside an existing one until
    it completes). Raises what ended the run after recording it in the file. With several processes
    (``parallel``), every one calls this and only the main one writes."""
    check_trainable(config)
    check_run_memory(config, data)  # before anything is allocated: refuse a run that cannot fit
    parallel = parallel or Local()
    trainer = Trainer(config, data, stop=stop, parallel=parallel)

    def create() -> RunWriter:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunFileError(f"cannot create run file {out}: {exc.strerror or exc}") from exc
        return RunWriter(out, config=config.to_dict(), environment=_environment(trainer),
                         unit_names=trainer.unit_names(), accounting=trainer.accounting(), force=force)

    writer = on_main(parallel, create)
    if parallel.is_main:
        log.info("training %s (%s, %d units) on %d %s images -> %s", config.algo.upper(), config.preset or "custom",
                 config.layers, len(trainer.train), data.name, writer.path)
    return _train_and_finish(trainer, writer, progress, data_info(data, trainer, data_source))


def _environment(trainer: Trainer) -> dict:
    env = environment(trainer.device)
    env["processes"] = trainer.parallel.world  # each computing with env["torch_threads"] threads (rank 0's)
    if trainer.parallel.world > 1:
        env["parallel"] = trainer.parallel.describe()
    return env


def on_main(parallel: Local, fn: Callable[[], object]) -> object | None:
    """``fn()`` on the main process (the others get None); a failure there stops every process, each with
    the main one's one-line reason, instead of leaving the others waiting for it."""
    if parallel.world == 1:
        return fn()
    result, error = None, None
    if parallel.is_main:
        try:
            result = fn()
        except FFNeuroError as exc:
            error = exc
    reason = parallel.share(None if error is None else str(error))
    if error is not None:
        raise error
    if reason is not None:
        raise RunFileError(f"rank 0 stopped: {reason}")
    return result


def interrupted_run(out: Path, force: bool, config: RunConfig) -> Path | None:
    """The unfinished run file at ``out`` (or its pending ``--force`` replacement) of this same config, which a
    restarted job continues instead of starting over; None when there is none."""
    from ..store.schema import pending_path

    path = pending_path(out) if force else out
    if not path.exists():
        return None
    try:
        record = read_run(path)
    except RunFileError:
        return None
    if (record.status == "complete" and not record.cut_short) or config_diff(record.config, config.to_dict()):
        return None
    return path


def completed_run(out: Path, config: RunConfig) -> bool:
    """Whether ``out`` holds a complete run (not a pending replacement) of this same config."""
    if not out.exists():
        return False
    try:
        record = read_run(out)
    except RunFileError:
        return False
    return record.status == "complete" and not record.pending and not config_diff(record.config, config.to_dict())


def load_plan_data(plan: RunPlan, data_dir: str | os.PathLike | None) -> Dataset:
    """The dataset a plan trains on: from the run's recorded source when it resumes without ``data_dir``,
    else from ``data_dir`` or the usual search."""
    return load_from(plan.config["dataset"], plan.source, data_dir)


def resume_conflicts(stored: dict, wanted: dict) -> dict[str, tuple]:
    """Flags given with ``--resume`` whose value differs from the run's (key → (stored, given))."""
    return {k: (stored.get(k), v) for k, v in wanted.items()
            if v is not None and k not in RESUME_MAY_CHANGE and stored.get(k) != v}


def open_for_resume(path: Path, overrides: dict | None = None) -> tuple[RunRecord, RunConfig]:
    """The run at ``path`` and the config to continue it with; a one-line error when it cannot resume."""
    record = read_run(path)
    if record.status == "complete" and not record.cut_short:
        raise RunFileError(f"{path} is complete ({record.epochs_done} epochs); nothing to resume")
    try:
        stored = RunConfig.from_dict(record.config).to_dict()
    except (ConfigError, TypeError) as exc:
        raise RunFileError(f"{path}: stored config is not valid for this ffneuro: {exc}") from exc
    given = {k: (list(v) if isinstance(v, tuple) else v) for k, v in (overrides or {}).items()}
    conflicts = resume_conflicts(stored, given)
    if conflicts:
        shown = ", ".join(f"{k} {b!r} (the run has {a!r})" for k, (a, b) in conflicts.items())
        raise ConfigError(f"--resume continues {path} with its own config; these flags conflict: {shown}")
    config = RunConfig.from_dict({**stored, **{k: v for k, v in given.items() if v is not None}})
    if record.epochs_done and record.state_epoch != record.epochs_done:
        raise RunFileError(f"{path}: its resume state is for epoch {record.state_epoch or 'none'} but "
                           f"{record.epochs_done} epochs are committed (written by an older ffneuro?)")
    return record, config


def resume_run(record: RunRecord | None, config: RunConfig, data: Dataset, *, progress: Progress | None = None,
               stop: StopSignals | None = None, data_source: str | None = None,
               parallel: Local | None = None) -> Summary | None:
    """Continue the run of ``record`` after its last committed epoch, in its own file. Returns None when
    the run was already complete and only its replacement of another file was left to do. With several
    processes, only the main one reads the record (the others pass None) and shares the checkpoint."""
    parallel = parallel or Local()
    finished = on_main(parallel, lambda: record.status == "complete")   # a pending run whose rename was cut short
    if parallel.share(finished):
        if parallel.is_main:
            with RunWriter.open(record.path) as writer:
                writer.complete_replacement()
        return None
    writer = on_main(parallel, lambda: RunWriter.open(record.path))
    try:
        check_run_memory(config, data)
        trainer = Trainer(config, data, stop=stop, parallel=parallel)
        checkpoint = None
        if parallel.is_main and record.epochs_done:
            checkpoint = (record.weights("final"), *record.state())
        checkpoint = parallel.share(checkpoint)
        if checkpoint is not None:
            try:
                trainer.restore(*checkpoint)
            except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:  # a damaged or crafted state
                where = record.path if record is not None else "the run file"
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise RunFileError(f"{where}: its resume state does not fit the network of its config: "
                                   f"{type(exc).__name__}: {reason[:200]}") from None
        if writer is not None:
            writer.write_group("data", data_info(data, trainer, data_source or stored_data_source(record)))
            with writer.transaction() as f:
                f.attrs.update(status="running", message="", resumed=int(f.attrs.get("resumed", 0)) + 1)
            log.info("resuming %s after epoch %d of %d", record.path, record.epochs_done, config.epochs)
    except BaseException:
        if writer is not None:
            writer.close()
        raise
    return _train_and_finish(trainer, writer, progress)


def _train_and_finish(trainer: Trainer, writer: RunWriter | None, progress: Progress | None,
                      data: dict | None = None) -> Summary:
    """Run ``trainer`` into ``writer`` and end the run file with what happened; always closes the writer.
    Processes other than the main one have no writer and only train."""
    where = writer.path if writer is not None else None
    try:
        if data is not None and writer is not None:
            writer.write_group("data", data)
        summary = trainer.run(writer, progress)
        groups = trainer.final_groups(summary)
        if trainer.parallel.world > 1:
            groups["parallel"] = (trainer.parallel.describe(), {})
    except KeyboardInterrupt as exc:  # a stop signal (StopRequested), or a second Ctrl-C
        _finish(writer, "interrupted", str(exc) or "stopped by the user")
        if writer is not None:
            log.warning("%s: interrupted after %d committed epoch(s); continue with: ffneuro train --resume %s%s",
                        where, trainer.progress.epochs_done, where,
                        f" ({writer.target} is unchanged until it completes)" if writer.pending else "")
        raise
    except Diverged as exc:
        kept = trainer.progress.epochs_done
        message = f"{exc}; {where} keeps {kept} committed epoch(s)" if where else str(exc)
        _finish(writer, "failed", message, failure="diverged")
        raise Diverged(message) from None
    except BaseException as exc:
        # a failed write (a full disk) will fail again here: its own error already says everything
        _finish(writer, "failed", f"{type(exc).__name__}: {exc}", quiet=isinstance(exc, RunFileError))
        raise
    if writer is not None:
        writer.finish("complete", groups=groups)
    return summary


def _finish(writer: RunWriter | None, status: str, message: str, failure: str = "", quiet: bool = False) -> None:
    """Mark the run ended without letting a failure to do so hide the error that ended it."""
    if writer is None:
        return
    try:
        writer.finish(status, message, failure=failure)
    except Exception as exc:  # noqa: BLE001  (the original exception is re-raised by the caller)
        (log.debug if quiet else log.warning)("could not mark %s as %s: %s", writer.path, status, exc)
        writer.close()


def stored_data_source(record: RunRecord) -> str | None:
    """Where a run's data came from, if it recorded that and the place still exists."""
    source = record.groups.get("data", {}).get("source")
    if isinstance(source, str) and source and os.path.exists(source):
        return source
    return None


def load_run_data(record: RunRecord, config: RunConfig, data_dir: str | os.PathLike | None) -> Dataset:
    """A stored run's dataset: from ``data_dir`` when given, else from where the run recorded it came from
    (if that still exists), else the usual search ($FFNEURO_DATA, the cache)."""
    return load_from(config.dataset, stored_data_source(record) if data_dir is None else None, data_dir)


def load_from(dataset: str, source: str | None, data_dir: str | os.PathLike | None) -> Dataset:
    """``dataset`` from ``source`` (where a run recorded its data came from) when given, else from
    ``data_dir`` or the usual search."""
    if source is not None:
        return checked_load(dataset, lambda: load_from_source(dataset, source))
    return load_data(dataset, data_dir)


def stored_data_shape(record: RunRecord, config: RunConfig) -> tuple[tuple[int, ...], int, dict[str, int]]:
    """The image shape, class count and split sizes (train/val/test images, where recorded) a run was
    trained on, from its /data group (else the dataset's shape, no sizes); a one-line RunFileError for
    values that are not counts."""
    data = record.groups.get("data", {})
    try:
        if "image_shape" in data:
            shape = tuple(int(v) for v in data["image_shape"])
            classes = int(data["num_classes"])
        else:
            shape, classes = dataset_shape(config.dataset)
        sizes = {k: int(data[k]) for k in ("train_images", "val_images", "test_images") if k in data}
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise RunFileError(f"{record.path}: /data does not describe the images (image_shape, num_classes, "
                           f"split sizes): {type(exc).__name__}: {exc}") from None
    if not shape or min(shape) < 1 or classes < 1 or min(sizes.values(), default=0) < 0:
        raise RunFileError(f"{record.path}: /data holds image_shape {list(shape)} and num_classes {classes}; "
                           "not a network's input")
    return shape, classes, sizes


def check_restore(record: RunRecord, config: RunConfig, weights: str | None = None, *,
                  samples: int | None = None) -> None:
    """Before a stored run's network is built: refuse a config whose network the file's weights cannot be for
    (:func:`~ffneuro.store.sizes.check_stored_network`, which also refuses impossible shapes), then one that
    does not fit the free memory for evaluation (or a CAM pass over ``samples`` images): the memory guard
    (:func:`~ffneuro.train.memory_guard.check_restore_memory`). Nothing is allocated for the network here."""
    shape, classes, sizes = stored_data_shape(record, config)
    check_stored_network(record, config, shape, classes, weights)
    held_out = max(sizes.get("val_images", 0), sizes.get("test_images", 0)) or 1 << 62  # unknown: no cap
    check_restore_memory(config, shape, classes, eval_images=held_out, train_images=sizes.get("train_images", 0),
                         where=str(record.path), samples=samples)


def restore_run(record: RunRecord, config: RunConfig, weights: str, data_dir: str | os.PathLike | None, *,
                samples: int | None = None) -> Trainer:
    """A Trainer for ``config`` on its dataset with the run's ``weights`` (final|best) loaded: what
    ``eval`` and ``cam`` (``samples`` images at once) work on. The network's size and memory are checked
    first (:func:`check_restore`): nothing is loaded or built for a network that cannot be the run's or fit."""
    check_restore(record, config, weights, samples=samples)
    state = record.weights(weights)
    trainer = Trainer(config, load_run_data(record, config, data_dir))
    unfit = f"{record.path}: the stored {weights} weights do not fit the network of its config"
    mismatch = weights_mismatch({k: tuple(v.shape) for k, v in trainer.model.state_dict().items()}, state)
    if mismatch:
        raise RunFileError(f"{unfit}: {mismatch}")
    try:
        trainer.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RunFileError(f"{unfit}: {reason}") from exc
    return trainer


@dataclass(frozen=True)
class RunPlan:
    """What one ``train`` command does: train ``config`` into ``out`` (or resume ``out``), which ends as
    ``final`` (a pending ``--force`` replacement ends as the file it replaces); ``source``: where the data
    was found when the run was made, for a resume without ``--data-dir``."""

    config: dict
    out: Path
    final: Path
    resume: bool
    source: str | None = None
    done: bool = False          # a restarted job whose run is already complete: nothing left to train


def default_out(config: RunConfig) -> Path:
    """runs/<preset or dataset>-<algo>-s<seed>-<time>.h5"""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{config.preset or config.dataset}-{config.algo}-s{config.seed}-{stamp}.h5"


def plan_run(preset: str | None, overrides: dict, *, given_preset: str | None = None, out: Path | None = None,
             force: bool = False, resume: Path | None = None, data_dir: str | os.PathLike | None = None,
             restart: int | None = None) -> RunPlan:
    """Decide what a ``train`` command trains and where, refusing what cannot work before any data loads.

    ``resume``: continue that run file (``given_preset``, the preset named on the command line, and the
    overrides must agree with its stored config). ``restart``: the torchrun attempt number, when a restarted
    job should continue the unfinished run it left at ``out``."""
    if resume is not None:
        if out is not None or force:
            raise ConfigError("--resume continues the run in its own file; drop --out and --force")
        record, config = open_for_resume(resume, {**overrides, "preset": given_preset})
        final = record.destination  # a --force run's STEM.h5, told by its name, never by a stored path
        source = None if data_dir else stored_data_source(record)
        return RunPlan(config.to_dict(), resume, final, True, source)
    config = resolve_config(preset, overrides)
    check_trainable(config)
    if out is None and restart is not None:
        log.warning("no --out: a restarted job would start a new run file instead of resuming this one")
    out = out or default_out(config)
    if restart:  # torchrun restarted the job: continue what the last attempt wrote
        found = interrupted_run(out, force, config)
        if found is not None:
            log.warning("restart %d: continuing %s from its last committed epoch", restart, found)
            return RunPlan(config.to_dict(), found, out, True)
        if completed_run(out, config):  # the last attempt died after its final commit
            log.warning("restart %d: %s is already complete with this config; nothing left to train", restart, out)
            return RunPlan(config.to_dict(), out, out, False, done=True)
    check_out_path(out, force)
    return RunPlan(config.to_dict(), out, out, False)


@dataclass(frozen=True)
class TrainRequest:
    """What one ``train`` command asks for: a ``preset`` with ``overrides`` (``given_preset``: the preset
    named on the command line, checked against a resumed run's), written to ``out`` (default: a
    timestamped file) or replacing it with ``force``, or ``resume``-ing a run file; ``data_dir`` where
    the data lies; ``restart`` the torchrun attempt number of a restarted job."""

    preset: str | None
    overrides: dict
    given_preset: str | None = None
    out: Path | None = None
    force: bool = False
    resume: Path | None = None
    data_dir: str | os.PathLike | None = None
    restart: int | None = None


@dataclass(frozen=True)
class TrainOutcome:
    """How one ``train`` command ended: the ``plan`` it carried out (the run ends as ``plan.final``), its
    ``config``, the ``dataset`` name and the training ``summary``; None when a resumed run was already
    complete and only its replacement of ``plan.final`` was left to do."""

    plan: RunPlan
    config: RunConfig
    dataset: str
    summary: Summary | None
    already_complete: bool = False   # a restarted job found its run complete with the same config


def train_request(request: TrainRequest, *, parallel: Local | None = None, stop: StopSignals | None = None,
                  progress: Progress | None = None) -> TrainOutcome:
    """Carry out one ``train`` command in one process of the job (all of it without torchrun): the main
    process plans what to train and where (the others would race it for a timestamped ``out``), every
    process loads the data, then trains into the run file or resumes it."""
    parallel = parallel or Local()
    r = request
    plan = parallel.share(on_main(parallel, lambda: plan_run(
        r.preset, r.overrides, given_preset=r.given_preset, out=r.out, force=r.force, resume=r.resume,
        data_dir=r.data_dir, restart=r.restart)))
    config = RunConfig.from_dict(plan.config)
    if plan.done:  # a restarted job whose last attempt finished the run: nothing to do, and not an error
        return TrainOutcome(plan, config, config.dataset, None, already_complete=True)
    data = load_plan_data(plan, r.data_dir)
    if stop is not None:
        stop.check()
    if plan.resume:
        record = read_run(plan.out) if parallel.is_main else None
        summary = resume_run(record, config, data, progress=progress, stop=stop, parallel=parallel,
                             data_source=source_of(config.dataset, r.data_dir) if r.data_dir else None)
    else:
        summary = train_to_file(config, data, plan.out, force=r.force, progress=progress, stop=stop,
                                parallel=parallel, data_source=source_of(config.dataset, r.data_dir))
    return TrainOutcome(plan, config, data.name, summary)
