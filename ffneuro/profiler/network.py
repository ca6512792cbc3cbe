"""What ``profile`` and ``compare`` estimate: a network from a stored run, a preset with overrides, or a NIR graph.

A run brings its config, input shape and the activation sparsity measured on data; :func:`with_bp_run`
adds the activity of the run's BP twin, refusing a BP run of another network (the one rule for "the
same network" is :meth:`~ffneuro.config.RunConfig.network_differences`).
"""
from __future__ import annotations

from collections.abc import Mapping as TMapping
from dataclasses import dataclass, replace
from pathlib import Path

from ..config import RunConfig, stored_config
from ..data import dataset_shape
from ..errors import ConfigError
from ..presets import resolve_config
from ..spec import NetSpec
from ..spec.nir_io import read_nir
from ..store import RunRecord, read_run
from ..store.sizes import check_stored_network
from .hardware import HardwareProfile
from .report import ProfileReport, profile_config, profile_graph


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

    def profile(self, hw: HardwareProfile | str, *, precision: str | None = None,
                batch: int | None = None) -> ProfileReport:
        """The estimate on ``hw`` at ``precision`` (default: the run's or preset's, fp32 for a NIR graph)."""
        if self.graph is not None:
            return profile_graph(self.graph, hw, timesteps=self.timesteps, activity=self.activity,
                                 precision=precision or "fp32", batch=batch or 1)
        return profile_config(self.config, self.image_shape, self.num_classes, hw, sparsity=self.sparsity,
                              bp_sparsity=self.bp_sparsity, batch=batch, precision=precision)


def _zero_fractions(rec: RunRecord) -> list[float] | None:
    """The input zero fraction of each unit, measured on data after training (group ``activity``)."""
    values = rec.groups.get("activity", {}).get("input_zero_fraction")
    return None if values is None else [float(v) for v in values]


def network_from_preset(preset: str, overrides: TMapping[str, object]) -> Network:
    """The network ``preset`` with ``overrides`` builds, on its dataset's shape; activity dense (not measured)."""
    config = resolve_config(preset, dict(overrides))
    shape, classes = dataset_shape(config.dataset)
    return Network(config, shape, classes, None, None, f"preset {preset}")


def network_from_run(run_file: str | Path) -> Network:
    """A stored run's network with the activity measured on it: an FF run's for the FF units; a BP run's
    for the BP twin (its FF units are then profiled dense)."""
    rec = read_run(run_file)
    config = stored_config(rec)
    data = rec.groups.get("data", {})
    if "image_shape" in data:
        shape, classes = tuple(int(v) for v in data["image_shape"]), int(data["num_classes"])
    else:
        shape, classes = dataset_shape(config.dataset)
    check_stored_network(rec, config, shape, classes)   # a config the stored weights cannot be for: refused
    measured = _zero_fractions(rec)
    if config.algo == "bp":
        return Network(config, shape, classes, None, Path(run_file), str(run_file), bp_sparsity=measured)
    return Network(config, shape, classes, measured, Path(run_file), str(run_file))


def network_from_nir(path: str | Path, *, timesteps: int | None = None, activity: float | None = None) -> Network:
    """A NIR graph (inference only), run ``timesteps`` times per sample (default 1) with ``activity`` spikes
    per neuron per timestep (default: :data:`~ffneuro.profiler.report.DEFAULT_ACTIVITY` for a spiking graph)."""
    if timesteps is not None and timesteps < 1:
        raise ConfigError(f"--timesteps must be >= 1, got {timesteps}")
    if activity is not None and not 0.0 <= activity <= 1.0:
        raise ConfigError(f"--activity must lie in [0, 1] (spikes per neuron per timestep), got {activity}")
    graph = read_nir(path)
    return Network(None, graph.input_shape, 0, None, None, str(path), graph=graph, timesteps=timesteps or 1,
                   activity=activity)


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
    return replace(net, bp_sparsity=measured, label=f"{net.label} + BP {bp_run}")
