"""Where `profile` and `compare` get a network from: which of RUN_FILE, a NIR file or --preset and the model
flags the command line gives (the networks themselves: :mod:`ffneuro.profiler.network`), and how it is described."""
from __future__ import annotations

import click

from ffneuro.errors import ConfigError
from ffneuro.profiler.network import Network, network_from_nir, network_from_preset, network_from_run


def resolve_network(ctx: click.Context, run_file: str | None, preset: str, overrides: dict, *,
                    timesteps: int | None = None, activity: float | None = None) -> Network:
    """A RUN_FILE (or a NIR file) wins; model flags may not be combined with one (it fixes the network).
    ``timesteps``/``activity`` apply to a NIR graph only."""
    is_nir = run_file is not None and str(run_file).endswith(".nir")
    if (timesteps is not None or activity is not None) and not is_nir:
        raise ConfigError("--timesteps and --activity apply to a NIR graph (NET.nir), not to a preset or a run")
    given = [k for k, v in overrides.items() if v is not None]
    preset_given = ctx.get_parameter_source("preset") is click.core.ParameterSource.COMMANDLINE
    if is_nir:
        if given or preset_given:
            raise ConfigError(f"a NIR file fixes the network: drop {', '.join(['--preset', *given]) if given else '--preset'}")
        return network_from_nir(run_file, timesteps=timesteps, activity=activity)
    if run_file is None:
        return network_from_preset(preset, overrides)
    if given or preset_given:
        raise ConfigError("give either a RUN_FILE or --preset/model flags, not both "
                          f"(got {', '.join(['preset', *given]) if given else 'preset'})")
    return network_from_run(run_file)


def sparsity_note(net: Network) -> str:
    """Whether the activity the estimate uses was measured, or (NIR) the timesteps and activity."""
    if net.graph is not None:
        return f"{net.timesteps} timestep(s), activity " + \
            (f"{net.activity:g}" if net.activity is not None else "default") + " spikes per neuron per timestep"

    def state(sp):
        return "measured" if sp else "dense (not measured)"
    return f"sparsity FF {state(net.sparsity)}, BP {state(net.bp_sparsity)}"


def describe(net: Network) -> str:
    """One line: what is profiled."""
    shape = "×".join(map(str, net.image_shape))
    if net.graph is not None:
        return f"{net.label}: NIR graph, {len(net.graph.units)} units, input {shape}, {sparsity_note(net)}"
    c = net.config
    return (f"{net.label}: {c.layers} units × {c.filters} filters {c.kernel}×{c.kernel}, input {shape}, "
            f"{sparsity_note(net)}")
