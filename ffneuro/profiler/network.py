"""What ``profile`` and ``compare`` estimate: a network from a stored run, a preset with overrides, or a NIR graph.

A run brings its config, input shape and the activation sparsity measured on data; :func:`with_bp_run`
adds the activity of the run's BP twin, refusing a BP run of another network (the one rule for "the
same network" is :meth:`~ffneuro.config.RunConfig.network_differences`).
"""
from __future__ import annotations

from collections.abc import Mapping as TMapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..config import RunConfig, stored_config
from ..data import dataset_shape
from ..errors import ConfigError, FFNeuroError
from ..presets import resolve_config
from ..spec import NetSpec
from ..spec.nir_io import read_nir
from ..store import RunRecord, read_run
from ..store.sizes import check_stored_network, stored_data_shape
from .activity import (
    ActivitySources,
    Simulation,
    deployed_sources,
    measured_sources,
    parse_activity,
    parse_input_activity,
    pick_simulation,
    simulation_from_group,
)
from .hardware import HardwareProfile, load_profile
from .report import ProfileReport, profile_config, profile_graph
from .static import WeightStats, weight_stats


@dataclass(frozen=True)
class Network:
    """A network's config and input shape, and (for runs) the activation sparsity measured on data:
    ``sparsity`` of the FF units, ``bp_sparsity`` of the BP twin's layers, the per-position synaptic ops
    (``measured``, ``bp_measured``), its stored simulations and weight counts. A NIR file gives a layer-spec
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

    def profile(self, hw: HardwareProfile | str, *, precision: str | None = None,
                batch: int | None = None) -> ProfileReport:
        """The estimate on ``hw`` at ``precision`` (default: the run's or preset's, fp32 for a NIR graph).
        A run is costed with its simulation on ``hw`` (or ``--activity-from``'s) where it holds one."""
        if self.graph is not None:
            return profile_graph(self.graph, hw, timesteps=self.timesteps or 1, activity=self.activity,
                                 input_activity=self.input_activity, precision=precision or "fp32", batch=batch or 1)
        hw = load_profile(hw) if isinstance(hw, str) else hw
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


def _zero_fractions(rec: RunRecord) -> list[float] | None:
    """The input zero fraction of each unit, measured on data after training (group ``activity``)."""
    values = rec.groups.get("activity", {}).get("input_zero_fraction")
    return None if values is None else [float(v) for v in values]


def _simulations(rec: RunRecord) -> dict[str, Simulation]:
    """The run's ``/simulation/TARGET`` groups (``ffneuro simulate``)."""
    group = rec.groups.get("simulation") or {}
    out = {}
    for target, values in group.items():
        if target == "attrs" or not isinstance(values, dict):
            continue
        out[target] = simulation_from_group(target, values, rec.group_attrs(f"simulation/{target}"))
    return out


def _weight_stats(rec: RunRecord) -> dict[str, WeightStats] | None:
    """Counts of the run's final stored weights by layer name (None without weights or /activity names)."""
    names = rec.groups.get("activity", {}).get("units")
    if not names:
        return None
    try:
        return weight_stats(rec.weights("final"), [names] if isinstance(names, str) else list(names))
    except (FFNeuroError, ValueError):
        return None


def network_from_preset(preset: str, overrides: TMapping[str, object]) -> Network:
    """The network ``preset`` with ``overrides`` builds, on its dataset's shape; activity dense (not measured)."""
    config = resolve_config(preset, dict(overrides))
    shape, classes = dataset_shape(config.dataset)
    return Network(config, shape, classes, None, None, f"preset {preset}")


def network_from_run(run_file: str | Path, *, timesteps: int | None = None, activity: str | None = None,
                     input_activity: float | None = None, activity_from: str | None = None) -> Network:
    """A stored run's network with the activity measured on it: an FF run's for the FF units; a BP run's
    for the BP twin (its FF units are then profiled dense); its simulations, and the activity options
    (``activity``: one number or ``NAME=V,...``; ``activity_from``: which stored simulation)."""
    parsed, input_activity = parse_activity(activity), parse_input_activity(input_activity)
    if timesteps is not None and timesteps < 1:
        raise ConfigError(f"--timesteps must be >= 1, got {timesteps}")
    rec = read_run(run_file)
    config = stored_config(rec)
    shape, classes, _ = stored_data_shape(rec, config)   # checked: one line naming the file
    check_stored_network(rec, config, shape, classes)   # a config the stored weights cannot be for: refused
    measured = _zero_fractions(rec)
    extra = dict(timesteps=timesteps, activity=parsed, input_activity=input_activity, activity_from=activity_from,
                 simulations=_simulations(rec), weights=_weight_stats(rec), algo=config.algo)
    sources = measured_sources(rec.groups.get("activity"))
    if config.algo == "bp":
        return Network(config, shape, classes, None, Path(run_file), str(run_file), bp_sparsity=measured,
                       bp_measured=sources, **extra)
    return Network(config, shape, classes, measured, Path(run_file), str(run_file), measured=sources, **extra)


def network_from_nir(path: str | Path, *, timesteps: int | None = None, activity: str | None = None,
                     input_activity: float | None = None) -> Network:
    """A NIR graph (inference only), run ``timesteps`` times per sample (default 1) with ``activity`` events
    per neuron per timestep (one number or ``NAME=V,...``; default: the profiler's default for a spiking
    graph) and ``input_activity`` for its input (default: dense analog)."""
    parsed, input_activity = parse_activity(activity), parse_input_activity(input_activity)
    if timesteps is not None and timesteps < 1:
        raise ConfigError(f"--timesteps must be >= 1, got {timesteps}")
    graph = read_nir(path)
    return Network(None, graph.input_shape, 0, None, None, str(path), graph=graph, timesteps=timesteps or 1,
                   activity=parsed, input_activity=input_activity)


def with_bp_run(net: Network, bp_run: str | Path | None) -> Network:
    """``net`` with the measured activity of ``bp_run``, a BP run of the same network, for the BP estimate."""
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
