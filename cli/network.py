"""Where `profile` and `compare` get a network from: which of RUN_FILE, a NIR file or --preset and the model
flags the command line gives (the networks themselves: :mod:`ffneuro.profiler.network`), and how it is described."""
from __future__ import annotations

import click

from ffneuro.blocks import layer_widths
from ffneuro.catalog import label_channels
from ffneuro.errors import ConfigError
from ffneuro.profiler.network import Network, network_from_nir, network_from_preset, network_from_run


def resolve_network(ctx: click.Context, run_file: str | None, preset: str, overrides: dict, *,
                    timesteps: int | None = None, activity: str | None = None, input_activity: float | None = None,
                    activity_from: str | None = None) -> Network:
    """A RUN_FILE (or a NIR file) wins; model flags may not be combined with one (it fixes the network).
    The activity options apply to a NIR graph or a run (``activity_from``: a run only), not to a preset."""
    is_nir = run_file is not None and str(run_file).endswith(".nir")
    if run_file is None and any(v is not None for v in (timesteps, activity, input_activity, activity_from)):
        raise ConfigError("--timesteps and the activity options apply to a NIR graph (NET.nir) or a run, not to a preset")
    given = [k for k, v in overrides.items() if v is not None]
    preset_given = ctx.get_parameter_source("preset") is click.core.ParameterSource.COMMANDLINE
    if is_nir:
        if given or preset_given:
            raise ConfigError(f"a NIR file fixes the network: drop {', '.join(['--preset', *given]) if given else '--preset'}")
        if activity_from is not None:
            raise ConfigError("--activity-from picks a run's stored simulation; a NIR graph has none")
        return network_from_nir(run_file, timesteps=timesteps, activity=activity, input_activity=input_activity)
    if run_file is None:
        return network_from_preset(preset, overrides)
    if given or preset_given:
        raise ConfigError("give either a RUN_FILE or --preset/model flags, not both "
                          f"(got {', '.join(['preset', *given]) if given else 'preset'})")
    return network_from_run(run_file, timesteps=timesteps, activity=activity, input_activity=input_activity,
                            activity_from=activity_from)


def _given_text(activity) -> str:
    return f"{activity:g}" if not isinstance(activity, dict) else ",".join(f"{k}={v:g}" for k, v in activity.items())


def sparsity_note(net: Network) -> str:
    """Where the activity the estimate uses comes from: measured or not, simulations, given values."""
    given = "" if net.activity is None else f", given activity {_given_text(net.activity)}"
    given += "" if net.input_activity is None else f", input activity {net.input_activity:g}"
    if net.graph is not None:
        return f"{net.timesteps or 1} timestep(s){given or ', default activity'}"

    def state(sp):
        return "measured" if sp else "dense (not measured)"
    per_position = any(m is not None and m.synops for m in (net.measured, net.bp_measured))
    sims = f", simulations: {', '.join(sorted(net.simulations))}" if net.simulations else ""
    return f"sparsity FF {state(net.sparsity)}, BP {state(net.bp_sparsity)}" \
        + (" (per-position synaptic ops)" if per_position else "") + sims + given


def describe(net: Network) -> str:
    """One line: what is profiled."""
    shape = "×".join(map(str, net.image_shape))
    if net.graph is not None:
        return f"{net.label}: NIR graph, {len(net.graph.units)} units, input {shape}, {sparsity_note(net)}"
    c = net.config
    widths = layer_widths(c)
    filters = f"× {widths[0]}" if len(set(widths)) == 1 else "of " + "/".join(map(str, widths))
    extra = label_channels(c.labels, c.algo)   # --labels channel: the label's own channel
    shape += f" + {extra} label channel" if extra else ""
    return (f"{net.label}: {c.layers} {c.arch} units {filters} filters {c.kernel}×{c.kernel}, input {shape}, "
            f"{sparsity_note(net)}")
