"""``ffneuro sweep``: train a grid of configs × seeds, one run file per point, resumable."""
from __future__ import annotations

import functools
import logging
from pathlib import Path

import click

from ffneuro.errors import RunFileError
from ffneuro.presets import PRESETS, resolve_config
from ffneuro.run_groups import grid_points, point_name
from ffneuro.train.runfile import check_trainable
from ffneuro.train.sweep import train_points

from .options import MODEL_OPTIONS, data_dir_option, default_note, json_option
from .progress import BarProgress
from .util import echo_json, one_line_errors

log = logging.getLogger("ffneuro.cli")

MANIFEST = "sweep.json"


# ------------------------------------------------------------------------------------------ grid options


class ListOf(click.ParamType):
    """A comma-separated list, each element converted by ``inner`` (so bad elements fail like the flag would)."""

    def __init__(self, inner):
        self.inner = click.types.convert_type(inner)
        self.name = f"{self.inner.name} list"

    def get_metavar(self, param, ctx=None):  # click 8.2+ passes ctx
        return "V1,V2,..."

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        items = [s.strip() for s in str(value).split(",")]
        if any(not s for s in items):
            self.fail(f"{value!r} has an empty value; give a comma-separated list like 1,2,3", param, ctx)
        out = [self.inner.convert(s, param, ctx) for s in items]
        if len({repr(v) for v in out}) != len(out):
            self.fail(f"{value!r} repeats a value", param, ctx)
        return out


# (flag name without dashes, RunConfig field) of every sweepable option; --seed is --seeds
GRID_OPTIONS = []
for _flag, _field, _kind, _help in MODEL_OPTIONS:
    if _field == "seed":
        continue
    _name = _flag.split("/")[0].removeprefix("--")
    GRID_OPTIONS.append((_name, _field, click.BOOL if _kind is None else _kind, _help))


def grid_options(fn):
    """Add ``--preset`` and a list-valued option per model flag; the command receives ``grid`` (flag name -> values)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        grid = {}
        for name, field, _, _ in GRID_OPTIONS:
            values = kwargs.pop(field)
            if values is not None:
                grid[name] = values
        return fn(*args, grid=grid, **kwargs)

    for name, field, kind, help_text in reversed(GRID_OPTIONS):
        wrapper = click.option(f"--{name}", field, type=ListOf(kind), default=None,
                               help=f"{help_text} (comma-separated values){default_note(field)}")(wrapper)
    return click.option("--preset", type=click.Choice(PRESETS.names()), default="mnist-small", show_default=True,
                        help="named setting; grid values override it")(wrapper)


# ------------------------------------------------------------------------------------------------- sweep


def folder_options(out_dir_help: str):
    """The options of a command that trains many points into one folder: --out-dir, --data-dir,
    --force, -q and --json (shared by ``sweep`` and ``study run``)."""
    def decorate(fn):
        for option in reversed((
            click.option("--out-dir", type=click.Path(path_type=Path), required=True, help=out_dir_help),
            data_dir_option,
            click.option("--force", is_flag=True, help="retrain every point, even complete ones"),
            click.option("-q", "--quiet", is_flag=True,
                         help="warnings and errors only; no progress bar (same as ffneuro -q)"),
            json_option,
        )):
            fn = option(fn)
        return fn
    return decorate


def start_folder_run(ctx: click.Context, quiet: bool, out_dir: Path) -> bool:
    """Apply -q and check --out-dir; returns whether to show a progress bar."""
    obj = ctx.ensure_object(dict)
    if quiet:
        obj["quiet"] = True
        logging.getLogger().setLevel(logging.WARNING)
    if out_dir.exists() and not out_dir.is_dir():
        raise RunFileError(f"--out-dir {out_dir} exists and is not a directory")
    return not obj.get("quiet")


@click.command()
@grid_options
@click.option("--seeds", type=ListOf(click.IntRange(0, 2**63 - 1)), default="0", show_default=True,
              help="comma-separated seeds; every grid point is trained once per seed")
@folder_options("folder for the run files (one per point) and sweep.json; created if missing")
@click.pass_context
@one_line_errors
def sweep(ctx, grid, preset, seeds, out_dir, data_dir, force, quiet, as_json):
    """Train every combination of the grid values × seeds into OUT_DIR, one run file per point.

    Each model flag takes a comma-separated list, e.g. --filters 32,64 --kernel 3,5 --labels
    fourier1,fourier2. Files are named from the flags with more than one value and the seed
    (filters=32_kernel=3_seed=0.h5). Rerunning resumes: complete runs are skipped, interrupted ones
    continue from their last committed epoch, diverged ones are kept (--force retrains everything).
    """
    show_bar = start_folder_run(ctx, quiet, out_dir)
    points = grid_points(grid, seeds)
    shown = [k for k, v in grid.items() if len(v) > 1] + ["seed"]
    fields = {name: field for name, field, _, _ in GRID_OPTIONS}
    plan = []  # (point, config, file)
    for point in points:
        overrides = {fields[k]: v for k, v in point.items() if k != "seed"}
        overrides["seed"] = point["seed"]
        config = resolve_config(preset, overrides)
        check_trainable(config)
        plan.append((point, config, out_dir / f"{point_name(point, shown)}.h5"))
    head = {"preset": preset, "grid": grid, "seeds": list(seeds), "data_dir": data_dir}
    results, counts = train_points(plan, out_dir, data_dir, force=force, progress=BarProgress(show_bar),
                                   manifest=MANIFEST, head=head)
    if as_json:
        echo_json({"out_dir": str(out_dir), "manifest": str(out_dir / MANIFEST), **counts, "points": results})
    else:
        click.echo(f"{out_dir}: {counts_line(len(plan), counts)}")


def counts_line(n_points: int, counts: dict[str, int]) -> str:
    """'12 points, 3 trained, 1 resumed, 8 skipped (complete)' (diverged only when there are some)."""
    parts = [f"{n_points} points", f"{counts['trained']} trained", f"{counts['resumed']} resumed",
             f"{counts['skipped']} skipped (complete)"]
    if counts["diverged"]:
        parts.append(f"{counts['diverged']} diverged (kept as failed runs)")
    return ", ".join(parts)
