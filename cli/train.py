"""``ffneuro train``: build a config, train FF or BP, record the run in HDF5 (or resume one)."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import click

from ffneuro.data import data_source
from ffneuro.errors import ConfigError
from ffneuro.presets import resolve_config
from ffneuro.train import StopSignals
from ffneuro.train.runfile import check_out_path, check_trainable, open_for_resume, resume_run, train_to_file

from .options import data_dir_option, json_option, model_options
from .progress import BarProgress
from .util import echo_json, load_data, load_run_data

log = logging.getLogger("ffneuro.cli")


def default_out(config) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{config.preset or config.dataset}-{config.algo}-s{config.seed}-{stamp}.h5"


check_out = check_out_path   # refuse an --out that cannot be written, before any data is loaded


@click.command()
@model_options
@data_dir_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="run file to write (default: runs/<preset>-<algo>-s<seed>-<time>.h5)")
@click.option("--force", is_flag=True,
              help="replace an existing --out file, once the new run completes (until then it is NAME.new.h5)")
@click.option("--resume", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="continue an interrupted, crashed or failed run file from its last committed epoch")
@click.option("-q", "--quiet", is_flag=True, help="warnings and errors only; no progress bars (same as ffneuro -q)")
@json_option
@click.pass_context
def train(ctx, overrides, preset, data_dir, out, force, resume, quiet, as_json):
    """Train an FF-CNN (or its BP twin) and store the run in one HDF5 file.

    Every epoch is committed whole (metrics, weights, optimiser and RNG state): Ctrl-C or SIGTERM stops
    after the current batch, and --resume continues exactly where the last committed epoch left off.
    The goodness readout tries every label: one forward pass per class per image.
    Every model flag defaults to the --preset's value (shown below for mnist-small); another --preset
    changes those defaults, and a flag given overrides them.
    """
    obj = ctx.ensure_object(dict)
    if quiet:
        obj["quiet"] = True
        logging.getLogger().setLevel(logging.WARNING)
    bar = BarProgress(not obj.get("quiet"))
    with StopSignals() as stop:
        if resume is not None:
            if out is not None or force:
                raise ConfigError("--resume continues the run in its own file; drop --out and --force")
            given_preset = ctx.get_parameter_source("preset") != click.core.ParameterSource.DEFAULT
            record, config = open_for_resume(resume, {**overrides, "preset": preset if given_preset else None})
            data = load_run_data(record, config, data_dir)
            stop.check()
            summary = resume_run(record, config, data, progress=bar, check_stop=stop.check,
                                 data_source=data_source(config.dataset, data_dir) if data_dir else None)
            out = resume.with_name(record.replaces) if record.pending else resume
            if summary is None:
                click.echo(f"{resume} was complete; it now replaces {resume.with_name(record.replaces)}")
                return
        else:
            config = resolve_config(preset, overrides)
            check_trainable(config)
            out = out or default_out(config)
            check_out(out, force)
            data = load_data(config.dataset, data_dir)
            stop.check()
            summary = train_to_file(config, data, out, force=force, progress=bar, check_stop=stop.check,
                                    data_source=data_source(config.dataset, data_dir))
    if as_json:
        echo_json({
            "run": str(out), "algo": config.algo, "dataset": data.name, "epochs": summary.epochs,
            "train_images": summary.train_images, "wall_time_s": round(summary.wall_time_s, 3),
            "best_epoch": summary.best_epoch, "val_acc": summary.val, "test_acc": summary.test,
            "config": config.to_dict(),
        })
    else:
        click.echo(f"{out}: test " + ", ".join(f"{r} {a:.4f}" for r, a in summary.test.items()))
