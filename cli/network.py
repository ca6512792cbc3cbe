"""Where `profile` and `compare` get a network from: a stored run, or a preset plus model flags."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from ffneuro.config import RunConfig
from ffneuro.data import dataset_shape
from ffneuro.errors import ConfigError
from ffneuro.presets import resolve_config
from ffneuro.store import read_run

from .util import stored_config


@dataclass(frozen=True)
class Network:
    """A network's config and input shape, and (for runs) the activation sparsity measured on data."""

    config: RunConfig
    image_shape: tuple[int, int, int]
    num_classes: int
    sparsity: list[float] | None
    run: Path | None
    label: str


def resolve_network(ctx: click.Context, run_file: str | None, preset: str, overrides: dict) -> Network:
    """A RUN_FILE wins; model flags may not be combined with one (the run fixes the network)."""
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
    activity = rec.groups.get("activity", {})
    sparsity = activity.get("input_zero_fraction")
    if config.algo != "ff":
        sparsity = None  # a BP run's activity is not the FF network's; both are then profiled dense
    return Network(config, shape, classes, None if sparsity is None else [float(v) for v in sparsity],
                   Path(run_file), str(run_file))
