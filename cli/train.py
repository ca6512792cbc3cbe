"""``ffneuro train``: build a config, train FF or BP, record the run in HDF5 (or resume one)."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from ffneuro.distributed import DistContext
from ffneuro.distributed.launch import MODES, check_launch, launch_local, make_parallel
from ffneuro.errors import FFNeuroError
from ffneuro.run_groups import run_numbers
from ffneuro.store import read_run
from ffneuro.train import StopSignals
from ffneuro.train.runfile import TrainOutcome, TrainRequest, plan_run, train_request

from .options import data_dir_option, json_option, model_options
from .progress import BarProgress
from .util import echo_json


@click.command()
@model_options
@data_dir_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="run file to write (default: runs/<preset>-<algo>-s<seed>-<time>.h5)")
@click.option("--force", is_flag=True,
              help="replace an existing --out file, once the new run completes (until then it is NAME.new.h5)")
@click.option("--resume", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="continue an interrupted, crashed or failed run file from its last committed epoch")
@click.option("--parallel", "parallel_mode", type=click.Choice(MODES), default=None,
              help="with several processes (--nproc, or torchrun): data = every rank trains every unit on its "
                   "share of each batch; pipeline = each rank trains consecutive units and streams them on")
@click.option("--placement", default=None, metavar="time|macs|N1,N2,...",
              help="pipeline: how many consecutive units each rank trains, or balance them by each unit's "
                   "measured step time (time, the default) or by its training MACs (macs)")
@click.option("--nproc", type=click.IntRange(min=1), default=None,
              help="run N processes on this machine (torchrun --standalone --nproc-per-node N)")
@click.option("--nproc-over-cap", is_flag=True,
              help="with --nproc: start N processes even where N is more than this machine holds (one per CPU "
                   "core, or per GPU with CUDA)")
@click.option("--max-restarts", type=click.IntRange(min=0), default=0, show_default=True,
              help="with --nproc: restart the job this often after a worker dies (it resumes from the last epoch)")
@click.option("-q", "--quiet", is_flag=True, help="warnings and errors only; no progress bars (same as ffneuro -q)")
@json_option
@click.pass_context
def train(ctx, overrides, preset, data_dir, out, force, resume, parallel_mode, placement, nproc, nproc_over_cap,
          max_restarts, quiet, as_json):
    """Train an FF-CNN (or its BP twin) and store the run in one HDF5 file.

    Every epoch is committed whole (metrics, weights, optimiser and RNG state): Ctrl-C or SIGTERM stops
    after the current batch, and --resume continues exactly where the last committed epoch left off.
    The goodness readout tries every label: one forward pass per class per image.
    Every model flag defaults to the --preset's value (shown below for mnist-small); another --preset
    changes those defaults, and a flag given overrides them.

    Several processes: --nproc N --parallel data|pipeline on one machine, or torchrun's own launcher
    (also across machines): torchrun --nnodes M --nproc-per-node N --rdzv-backend c10d
    --rdzv-endpoint HOST:PORT -m ffneuro.cli train ... --parallel data. Rank 0 writes the run file; a
    restarted job (torchrun --max-restarts) continues --out from its last committed epoch, and exits 0
    when that run is already complete. --nproc checks the config, data, placement and --out before it
    starts any worker, and starts at most one process per CPU core (per GPU with CUDA) unless
    --nproc-over-cap.
    """
    obj = ctx.ensure_object(dict)
    if quiet:
        obj["quiet"] = True
        logging.getLogger().setLevel(logging.WARNING)
    dist = DistContext.from_env()
    given_preset = ctx.get_parameter_source("preset") != click.core.ParameterSource.DEFAULT
    if nproc is not None and dist is None:  # the launcher: checks everything, then the same command as N workers
        plan = plan_run(preset, overrides, given_preset=preset if given_preset else None, out=out, force=force,
                        resume=resume, data_dir=data_dir)
        check_launch(nproc, parallel_mode, placement, plan, data_dir=data_dir, over_cap=nproc_over_cap)
        ctx.exit(launch_local(nproc, sys.argv[1:], max_restarts))
    parallel = make_parallel(parallel_mode, placement, dist)
    if not parallel.is_main:  # one voice: rank 0 logs and shows progress
        logging.getLogger().setLevel(logging.WARNING)
        obj["quiet"] = True
    bar = BarProgress(not obj.get("quiet"))
    request = TrainRequest(preset, overrides, given_preset=preset if given_preset else None, out=out, force=force,
                           resume=resume, data_dir=data_dir, restart=dist.restart if dist is not None else None)
    with StopSignals() as stop:
        try:
            outcome = train_request(request, parallel=parallel, stop=stop, progress=bar)
            if parallel.is_main:
                _report(outcome, as_json)
        except FFNeuroError:
            if parallel.is_main:
                raise
            ctx.exit(1)   # rank 0 says why, once
        finally:
            if dist is not None:
                dist.close()


def _report(outcome: TrainOutcome, as_json: bool) -> None:
    """What the main process prints when the run ends."""
    summary, out = outcome.summary, outcome.plan.final
    if outcome.already_complete:
        _already_complete(outcome.plan.out, as_json)
    elif summary is None:
        click.echo(f"{outcome.plan.out} was complete; it now replaces {out}")
    elif as_json:
        echo_json({
            "run": str(out), "algo": outcome.config.algo, "dataset": outcome.dataset, "epochs": summary.epochs,
            "train_images": summary.train_images, "wall_time_s": round(summary.wall_time_s, 3),
            "best_epoch": summary.best_epoch, "val_acc": summary.val, "test_acc": summary.test,
            "config": outcome.config.to_dict(),
        })
    else:
        click.echo(f"{out}: test " + ", ".join(f"{r} {a:.4f}" for r, a in summary.test.items()))


def _already_complete(path: Path, as_json: bool) -> None:
    """What a restarted job prints when the run it was to finish is complete."""
    record = read_run(path)
    if as_json:
        numbers = run_numbers(record)
        echo_json({"run": str(path), "algo": record.config.get("algo"), "dataset": record.config.get("dataset"),
                   "epochs": record.epochs_done, "already_complete": True, "val_acc": numbers["val_acc"],
                   "test_acc": numbers["test_acc"], "config": record.config})
    else:
        click.echo(f"{path} is already complete ({record.epochs_done} epochs, same config): nothing to train")
