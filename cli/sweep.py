"""``ffneuro sweep``: train a grid of configs × seeds, one run file per point, resumable."""
from __future__ import annotations

import functools
import json
import logging
import os
from pathlib import Path

import click

from ffneuro.config import RunConfig
from ffneuro.data import data_source, same_split
from ffneuro.errors import ConfigError, Diverged, RunFileError
from ffneuro.presets import PRESETS, resolve_config
from ffneuro.store import read_run
from ffneuro.study import grid_points, point_name
from ffneuro.train import StopSignals
from ffneuro.train.runfile import check_trainable, open_for_resume, resume_run, train_to_file

from .options import MODEL_OPTIONS, data_dir_option, default_note, json_option
from .progress import BarProgress
from .train import check_out
from .util import echo_json, jsonable, load_data, one_line_errors

log = logging.getLogger("ffneuro.cli")

MANIFEST = "sweep.json"
# config keys that may differ between a stored run and the point without making it a different run
_IGNORED_ON_RESUME = ("device",)


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


def config_diff(stored: dict, wanted: dict) -> dict[str, tuple]:
    """Keys whose value differs between a stored run's config and a wanted one: key -> (stored, wanted).

    The stored config is read as this version's RunConfig first, so a run from before a key existed
    holds that key's default; keys in ``_IGNORED_ON_RESUME`` (the device) never count, nor does a
    ``val_size`` that resolves to the same split (:func:`ffneuro.data.same_split`).
    """
    try:
        stored = RunConfig.from_dict(dict(stored)).to_dict()
    except ConfigError:
        stored = dict(stored)
    keys = sorted((set(stored) | set(wanted)) - set(_IGNORED_ON_RESUME))
    diff = {k: (stored.get(k), wanted.get(k)) for k in keys if stored.get(k) != wanted.get(k)}
    if "val_size" in diff and same_split(stored, wanted):  # e.g. the old default 10000 vs automatic (None)
        del diff["val_size"]
    return diff


def _stored_plan(path: Path, config: dict) -> tuple[str, object]:
    """What to do with a point whose file exists: ("skip" | "diverged" | "resume" | "retrain", record or
    reason); raises if the file holds a complete run of another config."""
    try:
        rec = read_run(path)
    except RunFileError as exc:
        return "retrain", f"not a readable run ({exc})"
    diff = config_diff(rec.config, config)
    if rec.status == "complete" and not rec.pending:
        if diff:
            shown = ", ".join(f"{k} {a!r} vs {b!r}" for k, (a, b) in list(diff.items())[:4])
            raise RunFileError(f"{path} holds a complete run with another config ({shown}); "
                               "use another --out-dir or --force")
        return "skip", rec
    if diff:
        return "retrain", f"{rec.status} with another config"
    if rec.status == "failed" and rec.failure == "diverged":
        return "diverged", rec
    holder = rec.writer()
    if holder is not None:
        raise RunFileError(f"{path} is being trained by {holder.describe()}; "
                           "two sweeps cannot train one point at once")
    if rec.epochs_done and rec.state_epoch != rec.epochs_done:
        return "retrain", f"{rec.status}, without resume state"
    return "resume", rec


def _write_manifest(path: Path, manifest: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(jsonable(manifest), indent=2, allow_nan=False) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise RunFileError(f"cannot write {path}: {exc.strerror or exc}") from exc


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
    results, counts = train_points(plan, out_dir, data_dir, force=force, show_bar=show_bar,
                                   manifest=MANIFEST, head=head)
    if as_json:
        echo_json({"out_dir": str(out_dir), "manifest": str(out_dir / MANIFEST), **counts, "points": results})
    else:
        click.echo(f"{out_dir}: {counts_line(len(plan), counts)}")


def train_points(plan, out_dir: Path, data_dir, *, force: bool, show_bar: bool, manifest: str, head: dict):
    """Train every (point, config, path) of ``plan`` whose file is not a complete run of that config.

    Interrupted or crashed points resume from their last committed epoch; a point that diverged is kept
    as a result (``--force`` retrains it). Checks every file and loads the data before anything is
    written, keeps a manifest (``out_dir/manifest``: ``head`` plus each point's status) up to date, and
    stops cleanly on Ctrl-C or SIGTERM. Returns (results, counts).
    """
    names = [p[2].name for p in plan]
    if len(set(names)) != len(names):
        raise ConfigError("two grid points map to the same file name; make the values differ in letters/digits")
    for _, _, path in plan:
        check_out(path, force=True)  # a folder in the way, or no writable ancestor
    # what each point needs (a mismatched complete run stops here), and its data, before any folder or
    # file is written: a bad dataset fails fast
    decisions = [_stored_plan(path, config.to_dict()) if path.exists() and not force else ("train", None)
                 for _, config, path in plan]
    data_cache: dict[tuple, object] = {}
    for (_, config, _), (action, _) in zip(plan, decisions):
        key = (config.dataset, data_dir)
        if action in ("train", "retrain", "resume") and key not in data_cache:
            data_cache[key] = load_data(config.dataset, data_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunFileError(f"cannot create --out-dir {out_dir}: {exc.strerror or exc}") from exc

    entries = [{"point": point, "file": path.name, "status": "pending"} for point, _, path in plan]
    state = {**head, "points": entries}
    _write_manifest(out_dir / manifest, state)

    bar = BarProgress(show_bar)
    results = []
    counts = dict.fromkeys(("trained", "resumed", "skipped", "diverged"), 0)
    bar.start("sweep", len(plan))
    try:
        with StopSignals() as stop:
            for i, ((point, config, path), entry, (action, detail)) in enumerate(zip(plan, entries, decisions), 1):
                if action in ("skip", "diverged"):  # another sweep sharing the folder may have run it since
                    action, detail = _stored_plan(path, config.to_dict()) if path.exists() else ("train", None)
                if action == "skip":
                    log.info("[%d/%d] %s: skipped (complete)", i, len(plan), path.name)
                    counts["skipped"] += 1
                    entry["status"] = "skipped"
                elif action == "diverged":
                    log.warning("[%d/%d] %s: kept as diverged (%s); --force retrains it", i, len(plan), path.name,
                                detail.message)
                    counts["diverged"] += 1
                    entry["status"] = "diverged"
                else:
                    entry["status"] = "running"
                    _write_manifest(out_dir / manifest, state)
                    data = data_cache[(config.dataset, data_dir)]
                    source = data_source(config.dataset, data_dir)
                    try:
                        if action == "resume":
                            log.info("[%d/%d] %s: resuming after epoch %d (was %s)", i, len(plan), path.name,
                                     detail.epochs_done, detail.status)
                            record, resumed = open_for_resume(path, {"device": config.device})
                            summary = resume_run(record, resumed, data, check_stop=stop.check, data_source=source)
                        else:
                            if action == "retrain":
                                log.info("[%d/%d] %s: retraining (%s)", i, len(plan), path.name, detail)
                            # the sweep's bar is the only bar: a per-epoch bar would fight it on the terminal
                            summary = train_to_file(config, data, path, force=path.exists(), check_stop=stop.check,
                                                    data_source=source)
                    except Diverged as exc:
                        log.warning("[%d/%d] %s: %s", i, len(plan), path.name, exc)
                        counts["diverged"] += 1
                        entry["status"] = "diverged"
                    else:
                        counts["resumed" if action == "resume" else "trained"] += 1
                        entry["status"] = "resumed" if action == "resume" else "trained"
                        if summary is not None:
                            log.info("[%d/%d] %s: test %s", i, len(plan), path.name,
                                     ", ".join(f"{r} {a:.4f}" for r, a in summary.test.items()))
                results.append({"run": str(path), **entry})
                bar.advance()
    except BaseException as exc:
        for entry in entries:
            if entry["status"] == "running":
                entry["status"] = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        try:
            _write_manifest(out_dir / manifest, state)
        except RunFileError as err:
            log.warning("%s", err)
        raise
    finally:
        bar.finish()
    _write_manifest(out_dir / manifest, state)
    return results, counts


def counts_line(n_points: int, counts: dict[str, int]) -> str:
    """'12 points, 3 trained, 1 resumed, 8 skipped (complete)' (diverged only when there are some)."""
    parts = [f"{n_points} points", f"{counts['trained']} trained", f"{counts['resumed']} resumed",
             f"{counts['skipped']} skipped (complete)"]
    if counts["diverged"]:
        parts.append(f"{counts['diverged']} diverged (kept as failed runs)")
    return ", ".join(parts)
