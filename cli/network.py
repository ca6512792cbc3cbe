"""Where `profile` and `compare` get a network from: a stored run, or a preset plus model flags."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import click

from ffneuro.config import RunConfig
from ffneuro.data import dataset_shape
from ffneuro.errors import ConfigError, FFNeuroError
from ffneuro.presets import resolve_config
from ffneuro.profiler import ProfileReport, profile_config, profile_graph
from ffneuro.profiler.activity import (
    ActivitySources,
    Simulation,
    deployed_sources,
    measured_sources,
    parse_activity,
    parse_input_activity,
    pick_simulation,
    simulation_from_group,
)
from ffneuro.profiler.static import WeightStats, weight_stats
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
    timesteps: int | None = None
    activity: float | dict[str, float] | None = None      # --activity, parsed
    input_activity: float | None = None
    activity_from: str | None = None
    measured: ActivitySources | None = None               # the run's /activity (of its own algo)
    bp_measured: ActivitySources | None = None            # a BP run's, for the BP twin
    simulations: dict[str, Simulation] = field(default_factory=dict)
    weights: dict[str, WeightStats] | None = None         # the stored weights' counts, by layer name
    algo: str = "ff"

    def sparsity_note(self) -> str:
        given = "" if self.activity is None else f", given activity {_given_text(self.activity)}"
        given += "" if self.input_activity is None else f", input activity {self.input_activity:g}"
        if self.graph is not None:
            return f"{self.timesteps or 1} timestep(s){given or ', default activity'}"

        def state(sp):
            return "measured" if sp else "dense (not measured)"
        per_position = any(m is not None and m.synops for m in (self.measured, self.bp_measured))
        sims = f", simulations: {', '.join(sorted(self.simulations))}" if self.simulations else ""
        return f"sparsity FF {state(self.sparsity)}, BP {state(self.bp_sparsity)}" \
            + (" (per-position synaptic ops)" if per_position else "") + sims + given

    def describe(self) -> str:
        """One line: what is profiled."""
        shape = "×".join(map(str, self.image_shape))
        if self.graph is not None:
            return f"{self.label}: NIR graph, {len(self.graph.units)} units, input {shape}, {self.sparsity_note()}"
        c = self.config
        return (f"{self.label}: {c.layers} units × {c.filters} filters {c.kernel}×{c.kernel}, input {shape}, "
                f"{self.sparsity_note()}")

    def profile(self, hw, *, precision: str | None = None, batch: int | None = None) -> ProfileReport:
        """The estimate on ``hw`` at ``precision`` (default: the run's or preset's, fp32 for a NIR graph).
        A run is costed with its simulation on ``hw`` (or ``--activity-from``'s) where it holds one."""
        if self.graph is not None:
            return profile_graph(self.graph, hw, timesteps=self.timesteps or 1, activity=self.activity,
                                 input_activity=self.input_activity, precision=precision or "fp32", batch=batch or 1)
        sim = pick_simulation(self.simulations, hw.name, self.activity_from)
        names = [f"{'layer' if self.algo == 'bp' else 'unit'}{i + 1}" for i in range(self.config.layers)]
        measured = self.bp_measured if self.algo == "bp" else self.measured
        own = deployed_sources(measured or ActivitySources(), names, simulation=sim, given=self.activity,
                               input_activity=self.input_activity, timesteps=self.timesteps)
        ff, bp = (own, self.bp_measured) if self.algo != "bp" else (None, own)
        weights = {"weights": self.weights} if self.algo != "bp" else {"bp_weights": self.weights}
        return profile_config(self.config, self.image_shape, self.num_classes, hw, sparsity=self.sparsity,
                              bp_sparsity=self.bp_sparsity, batch=batch, precision=precision,
                              activity=ff, bp_activity=bp, **weights)


def _given_text(activity) -> str:
    return f"{activity:g}" if not isinstance(activity, dict) else ",".join(f"{k}={v:g}" for k, v in activity.items())


def _zero_fractions(rec) -> list[float] | None:
    values = rec.groups.get("activity", {}).get("input_zero_fraction")
    return None if values is None else [float(v) for v in values]


def _simulations(rec) -> dict[str, Simulation]:
    """The run's ``/simulation/TARGET`` groups (``ffneuro simulate``)."""
    group = rec.groups.get("simulation") or {}
    out = {}
    for target, values in group.items():
        if target == "attrs" or not isinstance(values, dict):
            continue
        out[target] = simulation_from_group(target, values, rec.group_attrs(f"simulation/{target}"))
    return out


def _weight_stats(rec) -> dict[str, WeightStats] | None:
    """Counts of the run's final stored weights by layer name (None without weights or /activity names)."""
    names = rec.groups.get("activity", {}).get("units")
    if not names:
        return None
    try:
        return weight_stats(rec.weights("final"), [names] if isinstance(names, str) else list(names))
    except (FFNeuroError, ValueError):
        return None


def resolve_network(ctx: click.Context, run_file: str | None, preset: str, overrides: dict, *,
                    timesteps: int | None = None, activity: str | None = None, input_activity: float | None = None,
                    activity_from: str | None = None) -> Network:
    """A RUN_FILE (or a NIR file) wins; model flags may not be combined with one (it fixes the network).
    The activity options apply to a NIR graph or a run (``activity_from``: a run only), not to a preset."""
    is_nir = run_file is not None and str(run_file).endswith(".nir")
    parsed, input_activity = parse_activity(activity), parse_input_activity(input_activity)
    if timesteps is not None and timesteps < 1:
        raise ConfigError(f"--timesteps must be >= 1, got {timesteps}")
    if run_file is None and any(v is not None for v in (timesteps, activity, input_activity, activity_from)):
        raise ConfigError("--timesteps and the activity options apply to a NIR graph (NET.nir) or a run, not to a preset")
    if is_nir:
        given = [k for k, v in overrides.items() if v is not None]
        if given or ctx.get_parameter_source("preset") is click.core.ParameterSource.COMMANDLINE:
            raise ConfigError(f"a NIR file fixes the network: drop {', '.join(['--preset', *given]) if given else '--preset'}")
        if activity_from is not None:
            raise ConfigError("--activity-from picks a run's stored simulation; a NIR graph has none")
        graph = read_nir(run_file)
        return Network(None, graph.input_shape, 0, None, None, str(run_file), graph=graph,
                       timesteps=timesteps or 1, activity=parsed, input_activity=input_activity)
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
    extra = dict(timesteps=timesteps, activity=parsed, input_activity=input_activity, activity_from=activity_from,
                 simulations=_simulations(rec), weights=_weight_stats(rec), algo=config.algo)
    sources = measured_sources(rec.groups.get("activity"))
    if config.algo == "bp":  # a BP run's activity is the BP twin's; the FF units are then profiled dense
        return Network(config, shape, classes, None, Path(run_file), str(run_file), bp_sparsity=measured,
                       bp_measured=sources, **extra)
    return Network(config, shape, classes, measured, Path(run_file), str(run_file), measured=sources, **extra)


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
    return replace(net, bp_sparsity=measured, bp_measured=measured_sources(rec.groups.get("activity")),
                   label=f"{net.label} + BP {bp_run}")
