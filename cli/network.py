"""Where `profile` and `compare` get a network from: a stored run, or a preset plus model flags."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import click

from ffneuro.config import RunConfig
from ffneuro.data import dataset_shape
from ffneuro.errors import ConfigError
from ffneuro.presets import resolve_config
from ffneuro.profiler import ProfileReport, profile_config, profile_graph
from ffneuro.spec import NetSpec
from ffneuro.spec.nir_io import read_nir
from ffneuro.store import read_run

from .util import stored_config


@dataclass(frozen=True)
class Network:
    """A network's config and input shape, and (for runs) the activation sparsity measured on data:
    ``sparsity`` of the FF units, ``bp_sparsity`` of the BP twin's layers. A NIR file gives a layer-spec
    ``graph`` instead of a config (inference only, ``timesteps`` passes at ``activity``)."""

    config: RunConfig | None
    image_shape: tuple[int, ...]
    num_classes: int
    sparsity: list[float] | None
    run: Path | None
    label: str
    bp_sparsity: list[float] | None = None
    graph: NetSpec | None = None
    timesteps: int = 1
    activity: float | None = None

    def sparsity_note(self) -> str:
        if self.graph is not None:
            return f"{self.timesteps} timestep(s), activity " + \
                (f"{self.activity:g}" if self.activity is not None else "default") + " spikes per neuron per timestep"

        def state(sp):
            return "measured" if sp else "dense (not measured)"
        return f"sparsity FF {state(self.sparsity)}, BP {state(self.bp_sparsity)}"

    def describe(self) -> str:
        """One line: what is profiled."""
        shape = "×".join(map(str, self.image_shape))
        if self.graph is not None:
            return f"{self.label}: NIR graph, {len(self.graph.units)} units, input {shape}, {self.sparsity_note()}"
        c = self.config
        return (f"{self.label}: {c.layers} units × {c.filters} filters {c.kernel}×{c.kernel}, input {shape}, "
                f"{self.sparsity_note()}")

    def profile(self, hw, *, precision: str | None = None, batch: int | None = None) -> ProfileReport:
        """The estimate on ``hw`` at ``precision`` (default: the run's or preset's, fp32 for a NIR graph)."""
        if self.graph is not None:
            return profile_graph(self.graph, hw, timesteps=self.timesteps, activity=self.activity,
                                 precision=precision or "fp32", batch=batch or 1)
        return profile_config(self.config, self.image_shape, self.num_classes, hw, sparsity=self.sparsity,
                              bp_sparsity=self.bp_sparsity, batch=batch, precision=precision)


def _zero_fractions(rec) -> list[float] | None:
    values = rec.groups.get("activity", {}).get("input_zero_fraction")
    return None if values is None else [float(v) for v in values]


def resolve_network(ctx: click.Context, run_file: str | None, preset: str, overrides: dict, *,
                    timesteps: int | None = None, activity: float | None = None) -> Network:
    """A RUN_FILE (or a NIR file) wins; model flags may not be combined with one (it fixes the network).
    ``timesteps``/``activity`` apply to a NIR graph only."""
    is_nir = run_file is not None and str(run_file).endswith(".nir")
    if (timesteps is not None or activity is not None) and not is_nir:
        raise ConfigError("--timesteps and --activity apply to a NIR graph (NET.nir), not to a preset or a run")
    if is_nir:
        given = [k for k, v in overrides.items() if v is not None]
        if given or ctx.get_parameter_source("preset") is click.core.ParameterSource.COMMANDLINE:
            raise ConfigError(f"a NIR file fixes the network: drop {', '.join(['--preset', *given]) if given else '--preset'}")
        if timesteps is not None and timesteps < 1:
            raise ConfigError(f"--timesteps must be >= 1, got {timesteps}")
        if activity is not None and not 0.0 <= activity <= 1.0:
            raise ConfigError(f"--activity must lie in [0, 1] (spikes per neuron per timestep), got {activity}")
        graph = read_nir(run_file)
        return Network(None, graph.input_shape, 0, None, None, str(run_file), graph=graph,
                       timesteps=timesteps or 1, activity=activity)
    if run_file is None:
        config = resolve_config(preset, overrides)
        shape, classes = dataset_shape(config.dataset)
        return Network(config, shape, classes, None, None, f"preset {preset}")
    given = [k for k, v in overrides.items() if v is not None]
    if given or ctx.get_parameter_source("preset") is click.core.ParameterSource.COMMANDLINE:
        raise ConfigError("give either a RUN_FILE or --preset/model flags, not both "
                          f"(got {', '.join(['preset', *given]) if given else 'preset'})")
    rec = read_run(run_file)
    config = stored_config(rec)
    data = rec.groups.get("data", {})
    if "image_shape" in data:
        shape, classes = tuple(int(v) for v in data["image_shape"]), int(data["num_classes"])
    else:
        shape, classes = dataset_shape(config.dataset)
    measured = _zero_fractions(rec)
    if config.algo == "bp":  # a BP run's activity is the BP twin's; the FF units are then profiled dense
        return Network(config, shape, classes, None, Path(run_file), str(run_file), bp_sparsity=measured)
    return Network(config, shape, classes, measured, Path(run_file), str(run_file))


def with_bp_run(net: Network, bp_run: str | None) -> Network:
    """``net`` with the measured activity of ``bp_run``, a BP run of the same conv stack, for the BP estimate."""
    if bp_run is None:
        return net
    if net.graph is not None:
        raise ConfigError("--bp-run pairs an FF run with its BP twin; a NIR graph has none")
    rec = read_run(bp_run)
    config = stored_config(rec)
    if config.algo != "bp":
        raise ConfigError(f"--bp-run {bp_run} is an {config.algo.upper()} run; give a BP run (ffneuro train --algo bp)")
    differ = config.network_differences(net.config)
    if differ:
        raise ConfigError(f"--bp-run {bp_run} is another network ({', '.join(differ)})")
    measured = _zero_fractions(rec)
    if measured is None:
        raise ConfigError(f"--bp-run {bp_run} holds no measured activity (group activity); retrain it")
    return replace(net, bp_sparsity=measured, label=f"{net.label} + BP {bp_run}")
