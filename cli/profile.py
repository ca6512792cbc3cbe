"""``ffneuro profile``: energy, latency, memory and locality of a network on one hardware target."""
from __future__ import annotations

import click

from ffneuro.profiler import format_report, load_profile

from .network import resolve_network, with_bp_run
from .options import estimate_options, json_option, model_options
from .util import echo_json, no_store_option, store_in_run


@click.command()
@click.argument("run_file", required=False, type=click.Path(dir_okay=False))
@click.option("--hw", "hw_name", required=True, help="a shipped profile name (ffneuro hw list) or a .toml path")
@click.option("--bp-run", type=click.Path(dir_okay=False), default=None,
              help="a BP run of the same network: its measured activity feeds the BP training estimate")
@click.option("--profile-batch", type=click.IntRange(min=1), default=None,
              help="batch size to cost (default: the run's or preset's)")
@estimate_options
@model_options(skip=("precision",))
@no_store_option
@json_option
@click.pass_context
def profile(ctx, run_file, hw_name, bp_run, profile_batch, est_precision, timesteps, activity, input_activity, activity_from, overrides, preset,
            store, as_json):
    """Estimate FF training, BP training and both inference readouts on a hardware target.

    With RUN_FILE, the stored network and its measured activation sparsity are used and the estimate
    is also written into the run file (group profile-<target>; not with --no-store, nor when the file is
    read-only or being trained: then a warning says so). Without it, --preset and the model
    flags describe the network (dense activity assumed). A BP RUN_FILE, or --bp-run beside an FF one,
    gives the BP estimate its measured activity. A NIR file (NET.nir, needs ffneuro[nir]) is profiled
    for inference at --timesteps and --activity.

    A run that holds a simulation (ffneuro simulate) is costed for inference with its measured activity
    per layer: the profiled target's, or --activity-from TARGET's. --activity (one rate, or
    NAME=RATE,... by unit name) and --input-activity override it; the network input is dense analog
    by default. Every unit's activity and its source are in the report.
    """
    net = with_bp_run(resolve_network(ctx, run_file, preset, overrides, timesteps=timesteps, activity=activity,
                                           input_activity=input_activity, activity_from=activity_from), bp_run)
    hw = load_profile(hw_name)
    report = net.profile(hw, precision=est_precision, batch=profile_batch)
    if as_json:
        echo_json({"network": net.label, **report.to_dict()})
    else:
        click.echo(net.describe())
        click.echo(format_report(report))
    if net.run is not None:  # after printing: a run that cannot take the result still shows it
        store_in_run(net.run, f"profile-{hw.name}", report.to_columns(), {"hw_origin": hw.origin}, store)
