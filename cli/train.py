"""``ffneuro train``: build a config, train FF or BP, record the run in HDF5."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import click

from ffneuro.errors import ConfigError, RunFileError
from ffneuro.presets import resolve_config
from ffneuro.store import RunWriter
from ffneuro.train import Trainer, environment
from ffneuro.train.memory_guard import check_run_memory

from .options import data_dir_option, json_option, model_options
from .progress import BarProgress
from .util import echo_json, load_data

log = logging.getLogger("ffneuro.cli")


def default_out(config) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{config.preset or config.dataset}-{config.algo}-s{config.seed}-{stamp}.h5"


def check_out(out: Path, force: bool) -> None:
    """Refuse an --out that cannot be written, before any data is loaded (so bad paths fail fast)."""
    if out.is_dir():
        raise RunFileError(f"{out} is a directory; give a file name for --out")
    if out.exists() and not force:
        raise RunFileError(f"{out} exists; pass --force to overwrite")
    # the nearest existing ancestor must be a writable directory (missing folders are created later)
    ancestor = out.parent
    while not ancestor.exists() and ancestor.parent != ancestor:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise RunFileError(f"cannot create run file {out}: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise RunFileError(f"cannot create run file {out}: directory {ancestor} is not writable")


def check_trainable(config) -> None:
    """Refuse what a valid config can still not train: a BP network has no goodness readout."""
    if config.algo == "bp" and config.readout == "goodness":
        raise ConfigError("--readout goodness needs --algo ff: a BP network has only the linear readout")


def _finish(writer: RunWriter, status: str, message: str = "") -> None:
    """Mark the run ended without letting a failure to do so hide the error that ended it."""
    try:
        writer.finish(status, message)
    except Exception as exc:  # noqa: BLE001  (the original exception is re-raised by the caller)
        log.warning("could not mark %s as %s: %s", writer.path, status, exc)


def train_to_file(config, data, out: Path, *, force: bool = False, progress=None):
    """Train ``config`` on the loaded ``data`` and record it in the run file ``out``: the same steps as
    ``ffneuro train`` (data group, per-epoch metrics and weights, summary group, status). Returns the
    trainer's Summary. On any exception the file is marked failed (interrupted for Ctrl-C) and the
    exception is re-raised. ``out`` must have passed :func:`check_out`.
    """
    check_trainable(config)
    check_run_memory(config, data)  # before anything is allocated: refuse a run that cannot fit
    trainer = Trainer(config, data)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunFileError(f"cannot create run file {out}: {exc.strerror or exc}") from exc
    writer = RunWriter(out, config=config.to_dict(), environment=environment(trainer.device),
                       unit_names=trainer.unit_names(), accounting=trainer.accounting(), force=force)
    log.info("training %s (%s, %d units) on %d %s images -> %s", config.algo.upper(), config.preset or "custom",
             config.layers, len(trainer.train), data.name, out)
    try:
        writer.write_group("data", {"name": data.name, "image_shape": list(data.image_shape),
                                    "num_classes": data.num_classes, "train_images": len(trainer.train),
                                    "val_images": len(trainer.val), "test_images": len(trainer.test)})
        summary = trainer.run(writer, progress)
        writer.write_group("summary", {"best_epoch": summary.best_epoch, "best_val_acc": summary.best_val,
                                       "wall_time_s": summary.wall_time_s})
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (cli.main.Terminated)
        _finish(writer, "interrupted", str(exc) or "stopped by the user")
        log.warning("%s: interrupted; the epochs finished so far are kept", out)
        raise
    except BaseException as exc:
        _finish(writer, "failed", f"{type(exc).__name__}: {exc}")
        raise
    writer.finish("complete")
    return summary


@click.command()
@model_options
@data_dir_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="run file to write (default: runs/<preset>-<algo>-s<seed>-<time>.h5)")
@click.option("--force", is_flag=True, help="overwrite an existing --out file")
@click.option("-q", "--quiet", is_flag=True, help="warnings and errors only; no progress bars (same as ffneuro -q)")
@json_option
@click.pass_context
def train(ctx, overrides, preset, data_dir, out, force, quiet, as_json):
    """Train an FF-CNN (or its BP twin) and store the run in one HDF5 file.

    The goodness readout tries every label: one forward pass per class per image.
    """
    obj = ctx.ensure_object(dict)
    if quiet:
        obj["quiet"] = True
        logging.getLogger().setLevel(logging.WARNING)
    config = resolve_config(preset, overrides)
    check_trainable(config)
    out = out or default_out(config)
    check_out(out, force)
    data = load_data(config.dataset, data_dir)
    summary = train_to_file(config, data, out, force=force, progress=BarProgress(not obj.get("quiet")))
    if as_json:
        echo_json({
            "run": str(out), "algo": config.algo, "dataset": data.name, "epochs": summary.epochs,
            "train_images": summary.train_images, "wall_time_s": round(summary.wall_time_s, 3),
            "best_epoch": summary.best_epoch, "val_acc": summary.val, "test_acc": summary.test,
            "config": config.to_dict(),
        })
    else:
        click.echo(f"{out}: test " + ", ".join(f"{r} {a:.4f}" for r, a in summary.test.items()))
