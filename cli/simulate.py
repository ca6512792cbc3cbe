"""``ffneuro simulate``: run a stored network (or a NIR graph) with a hardware target's numerics."""
from __future__ import annotations

from pathlib import Path

import click

from ffneuro.errors import ConfigError
from ffneuro.profiler.hardware import load_profile

from .options import data_dir_option, json_option
from .util import echo_json, one_line_errors, table

READOUTS = ("goodness", "linear", "both")


@click.command("simulate")
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("--hw", "target", required=True, help="a shipped profile (ffneuro hw list) or a profile's TOML path, optionally NAME@CLOCK (e.g. cortex-m7@140MHz)")
@click.option("--timesteps", type=int, default=32, show_default=True,
              help="timesteps per sample on spiking targets (dense targets run one pass)")
@click.option("--samples", type=int, default=200, show_default=True, help="the first N test images (or npz inputs)")
@click.option("--readout", type=click.Choice(READOUTS), default="both", show_default=True,
              help="both: every readout the run has (a label-in-image goodness readout costs one pass per class)")
@click.option("--percentile", type=float, default=99.9, show_default=True,
              help="threshold balancing: each layer's activation scale is this percentile of its training activations (100: the maximum)")
@click.option("--calib-images", type=int, default=256, show_default=True,
              help="training images that calibrate the activation scales and the fixed norm scales")
@click.option("--weights", type=click.Choice(["final", "best"]), default="final", show_default=True)
@click.option("--input", "input_npz", type=click.Path(dir_okay=False),
              help="NIR graphs: an npz whose array 'input' is (samples, T, *input_shape); default: Poisson spikes")
@click.option("--input-rate", type=float, default=0.1, show_default=True,
              help="NIR graphs without --input: Poisson spikes with this probability per input per timestep")
@click.option("--analog", is_flag=True, help="NIR graphs without --input: uniform values in [0, 1) instead of spikes")
@click.option("--seed", type=int, default=0, show_default=True, help="NIR graphs: the default input's random seed")
@click.option("--dt", type=float, default=1e-4, show_default=True,
              help="NIR graphs: the Euler step in seconds (snntorch's exporter writes tau = dt / (1 - beta) with 1e-4)")
@click.option("--no-store", "store", flag_value=False, default=True,
              help="print only; do not write /simulation/<target> into the run file")
@data_dir_option
@json_option
@one_line_errors
def simulate(source, target, timesteps, samples, readout, percentile, calib_images, weights, input_npz, input_rate,
             analog, seed, dt, store, data_dir, as_json):
    """Run a stored network or a NIR graph with a hardware target's numerics.

    SOURCE (a run file, or a .nir graph) runs as the --hw target runs it: its weight and activation formats
    and its neurons. Prints accuracy as deployed beside the float accuracy, and per-layer activity (events per neuron
    per timestep) and saturation. A run file keeps the result in group /simulation/<target>."""
    if timesteps < 1:
        raise ConfigError(f"--timesteps must be >= 1, got {timesteps}")
    if samples < 1:
        raise ConfigError(f"--samples must be >= 1, got {samples}")
    if calib_images < 1:
        raise ConfigError(f"--calib-images must be >= 1, got {calib_images}")
    hw = load_profile(target)
    if Path(source).suffix.lower() == ".nir":
        _nir(source, hw, timesteps, samples, input_npz, input_rate, analog, seed, dt, as_json)
        return
    if input_npz is not None:
        raise ConfigError("--input is for NIR graphs; a run file simulates its own test images")
    from ffneuro.simulate import simulate_run_file, store_simulation

    result = simulate_run_file(source, hw, timesteps=timesteps, samples=samples, percentile=percentile,
                               calib_images=calib_images, weights=weights,
                               readouts=None if readout == "both" else [readout], data_dir=data_dir)
    stored = False
    if store:
        import logging

        from ffneuro.errors import RunFileError
        try:
            store_simulation(source, result)
            stored = True
        except RunFileError as exc:
            logging.getLogger("ffneuro.cli").warning("warning: not stored in the run file (%s)", exc)
    if as_json:
        echo_json({"run": str(source), "stored": stored, **result.to_dict()})
        return
    n = result.numerics
    how = {"if": "integrate-and-fire neurons", "sigma_delta": "sigma-delta neurons (graded spikes)",
           "relu": "dense ReLU pass"}[n.neuron]
    fmt = {"int": f"int{n.weight_bits} weights per {'channel' if n.per_channel else 'layer'}",
           "ternary": "ternary synapses", "float": f"conv {n.conv_format}, linear {n.linear_format}"}[n.weights]
    click.echo(f"{source} on {result.target}: {how}, {fmt}; "
               f"{result.timesteps} timestep(s), {result.samples} test images")
    rows = [["readout", "float", "fixed norm", "deployed"]]
    for r in result.readouts:
        fixed = result.fixed_norm_acc.get(r)
        rows.append([r, f"{result.float_acc[r]:.4f}", "-" if fixed is None else f"{fixed:.4f}",
                     f"{result.deployed_acc[r]:.4f}"])
    click.echo(table(rows))
    click.echo("")
    rows = [["layer", "activity", "out activity", "saturated", "fan-in"]]
    for name, a, o, s, e, f, x in zip(result.layer_names, result.activity, result.out_activity, result.saturated,
                                      result.elements, result.fan_in, result.fan_in_exceeded):
        rows.append([name, f"{a:.4f}", f"{o:.4f}", f"{s} ({s / e:.2%})" if e else str(s),
                     (f"{f}" + (" > limit" if x else "")) if f else "-"])
    click.echo(table(rows))
    click.echo("activity: events per neuron per timestep (dense targets: fraction of nonzero values); "
               "out activity: of the map a unit hands on (after pooling)")
    for note in result.notes:
        click.echo(f"note: {note}")
    click.echo(f"stored in {source} (group simulation/{result.target})" if stored else "not stored")


def _nir(source, hw, timesteps, samples, input_npz, input_rate, analog, seed, dt, as_json) -> None:
    from ffneuro.simulate.nir_sim import simulate_nir_file

    result = simulate_nir_file(source, hw, timesteps=timesteps, samples=samples, input_npz=input_npz,
                               input_rate=input_rate, analog=analog, seed=seed, dt=dt)
    if as_json:
        echo_json({"graph": str(source), **result.to_dict()})
        return
    click.echo(f"{source} on {result.target}: {result.timesteps} timesteps, {result.samples} samples, "
               f"input: {result.input_kind}")
    rows = [["node", "type", "activity", "neurons"]]
    for name, kind, a, n in zip(result.layer_names, result.kinds, result.activity, result.neurons):
        rows.append([name, kind, f"{a:.4f}", str(n)])
    click.echo(table(rows))
    click.echo("activity: events (nonzero outputs) per neuron per timestep")
    for note in result.notes:
        click.echo(f"note: {note}")
