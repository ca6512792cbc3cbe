"""``ffneuro train``: build a config, train FF or BP, record the run in HDF5."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import click

from ffneuro.data import load_dataset
from ffneuro.errors import RunFileError
from ffneuro.presets import resolve_config
from ffneuro.store import RunWriter
from ffneuro.train import Trainer, environment

from .options import data_dir_option, json_option, model_options
from .progress import BarProgress

log = logging.getLogger("ffneuro.cli")


def default_out(config) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{config.preset or config.dataset}-{config.algo}-s{config.seed}-{stamp}.h5"


@click.command()
@model_options
@data_dir_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="run file to write (default: runs/<preset>-<algo>-s<seed>-<time>.h5)")
@click.option("--force", is_flag=True, help="overwrite an existing --out file")
@json_option
@click.pass_context
def train(ctx, overrides, preset, data_dir, out, force, as_json):
    """Train an FF-CNN (or its BP twin) and store the run in one HDF5 file.

    The goodness readout tries every label: one forward pass per class per image.
    """
    config = resolve_config(preset, overrides)
    out = out or default_out(config)
    if out.exists() and not force:
        raise RunFileError(f"{out} exists; pass --force to overwrite")
    if out.parent != Path("") and not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
    data = load_dataset(config.dataset, data_dir)
    trainer = Trainer(config, data)
    writer = RunWriter(out, config=config.to_dict(), environment=environment(trainer.device),
                       unit_names=trainer.unit_names(), accounting=trainer.accounting(), force=force)
    writer.write_group("data", {"name": data.name, "image_shape": list(data.image_shape),
                                "num_classes": data.num_classes, "train_images": len(trainer.train),
                                "val_images": len(trainer.val), "test_images": len(trainer.test)})
    log.info("training %s (%s, %d units) on %d %s images -> %s", config.algo.upper(), config.preset or "custom",
             config.layers, len(trainer.train), data.name, out)
    try:
        summary = trainer.run(writer, BarProgress(not ctx.obj["quiet"]))
    except KeyboardInterrupt:
        writer.finish("interrupted", "stopped by the user")
        raise
    except Exception as exc:
        writer.finish("failed", f"{type(exc).__name__}: {exc}")
        raise
    writer.write_group("summary", {"best_epoch": summary.best_epoch, "best_val_acc": summary.best_val,
                                   "wall_time_s": summary.wall_time_s})
    writer.finish("complete")
    if as_json:
        click.echo(json.dumps({
            "run": str(out), "algo": config.algo, "dataset": data.name, "epochs": summary.epochs,
            "train_images": summary.train_images, "wall_time_s": round(summary.wall_time_s, 3),
            "best_epoch": summary.best_epoch, "val_acc": summary.val, "test_acc": summary.test,
            "config": config.to_dict(),
        }, indent=2))
    else:
        click.echo(f"{out}: test " + ", ".join(f"{r} {a:.4f}" for r, a in summary.test.items()))
