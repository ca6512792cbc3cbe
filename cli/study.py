"""``ffneuro study``: the paper's comparisons (Tables 1–3, Figs. 3A/4/5) as named, resumable sweeps."""
from __future__ import annotations

from pathlib import Path

import click

from ffneuro.errors import ConfigError, RunFileError
from ffneuro.run_groups import group_runs
from ffneuro.store.folder import read_each, run_candidates
from ffneuro.studies import BUDGETS, STUDIES, Study, base_diff
from ffneuro.train.runfile import check_trainable, config_diff
from ffneuro.train.sweep import train_points

from .progress import BarProgress
from .sweep import ListOf, counts_line, folder_options, start_folder_run
from .table import format_groups, group_threads
from .util import echo_json, one_line_errors
from .util import table as text_table

budget_option = click.option("--budget", type=click.Choice(BUDGETS.names()), default="cpu", show_default=True,
                             help="what each point starts from and how long it trains (ffneuro study list describes each)")


def _studies(names: str, budget: str) -> list[Study]:
    """``all`` (every study that runs at ``budget``) or comma-separated names (an unknown one lists the valid names)."""
    if names == "all":
        return [STUDIES.get(n) for n in STUDIES.names() if budget in STUDIES.get(n).budgets()]
    return [STUDIES.get(n.strip()) for n in names.split(",")]


def _diff(s: Study, budget: str, config) -> dict:
    """The config values that differ from the study's base at ``budget`` (what names the point)."""
    return base_diff(config.to_dict(), s.base(budget).to_dict())


@click.group()
def study():
    """The paper's studies: list them, run them (resumable, sharing one folder) and tabulate them."""


@study.command("list")
def list_cmd():
    """Every study, what it compares, and its number of runs per budget."""
    rows = [["study", "paper", "runs per budget"]]
    for name in STUDIES.names():
        s = STUDIES.get(name)
        rows.append([name, s.title, ", ".join(f"{b} {len(s.points(b))}" for b in s.budgets())])
    click.echo(text_table(rows))
    click.echo("\nbudgets:")
    for name in BUDGETS.names():
        click.echo(f"  {name}: {BUDGETS.get(name).note}")


@study.command("show")
@click.argument("name")
@budget_option
@one_line_errors
def show(name, budget):
    """A study's question, its points (the values that differ from the budget's base) and the paper's numbers."""
    s = STUDIES.get(name)
    b = BUDGETS.get(budget)
    points = s.points(budget)
    click.echo(f"{s.name}: {s.title}\n  {s.question}")
    click.echo(f"budget {budget}: {b.note} (preset {b.preset or s.preset}"
               + "".join(f", {k}={v}" for k, v in b.overrides.items()) + ")")
    click.echo(f"{len(points)} runs, seeds {','.join(map(str, s.seeds))}:")
    seen = set()
    for _stem, config in points:
        diff = _diff(s, budget, config)
        key = tuple(sorted(diff.items()))
        if key not in seen:
            seen.add(key)
            click.echo("  " + (", ".join(f"{k}={v}" for k, v in diff.items()) or "(the base config)"))
    click.echo("paper:")
    for p in s.paper:
        click.echo(f"  {dict(p.point)} {p.readout} {p.split}: {p.mean:.4f}"
                   + (f" ± {p.sd:.4f}" if p.sd is not None else "") + f" ({p.source})")
    if s.paper_note:
        click.echo(f"  {s.paper_note}")


@study.command("run")
@click.argument("names")
@budget_option
@click.option("--seeds", type=ListOf(click.IntRange(0, 2**63 - 1)), default=None,
              help="comma-separated seeds instead of the study's own")
@folder_options("folder shared by all studies of this budget (one run file per point, study-<name>.json)")
@click.pass_context
@one_line_errors
def run(ctx, names, budget, out_dir, seeds, data_dir, force, quiet, as_json):
    """Train the points of NAMES (comma-separated, or 'all') that OUT_DIR does not already hold complete.

    Points are named by the values that differ from the budget's base, so studies sharing a point
    (the base config is in most) train it once. Rerunning resumes.
    """
    show_bar = start_folder_run(ctx, quiet, out_dir)
    plans = []  # every study's points first, so a bad name or budget fails before anything trains
    for s in _studies(names, budget):
        plan = []
        for stem, config in s.points(budget, tuple(seeds) if seeds else None):
            check_trainable(config)
            plan.append(({"study": s.name, "seed": config.seed, **_diff(s, budget, config)}, config,
                         out_dir / f"{stem}.h5"))
        plans.append((s, plan))
    report = []
    for s, plan in plans:
        head = {"study": s.name, "title": s.title, "budget": budget, "data_dir": data_dir}
        _, counts = train_points(plan, out_dir, data_dir, force=force, progress=BarProgress(show_bar),
                                 manifest=f"study-{s.name}.json", head=head)
        report.append({"study": s.name, "points": len(plan), **counts})
    if as_json:
        echo_json({"out_dir": str(out_dir), "budget": budget, "studies": report})
    else:
        for r in report:
            click.echo(f"{r['study']}: {counts_line(r['points'], r)}")


@study.command("table")
@click.argument("name")
@click.argument("folder", type=click.Path(path_type=Path))
@budget_option
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@one_line_errors
def table(name, folder, budget, fmt):
    """NAME's runs in FOLDER grouped by what the study varies: mean ± sd over seeds, beside the paper's numbers.

    Only complete runs whose config is exactly one of the study's points count; missing points are listed.
    """
    s = STUDIES.get(name)
    records, missing = _study_records(s, budget, folder)
    keys = s.group_keys(budget)
    try:
        groups = group_runs(records, keys)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    extra = {"paper (its own setting)": paper_values(s, [g.key for g in groups]),
             "threads": [group_threads(g.records) for g in groups]}
    if fmt == "table":
        click.echo(f"{s.title} — budget {budget}: {BUDGETS.get(budget).note}")
    click.echo(format_groups([g.stats() for g in groups], keys, fmt, skipped=missing, extra=extra), nl=False)
    if fmt == "table":
        if missing:
            click.echo(f"missing ({len(missing)}): {', '.join(missing)}")
        if s.paper_note:
            click.echo(f"paper: {s.paper_note}")


def _study_records(s: Study, budget: str, folder: Path):
    """The complete runs in ``folder`` that are exactly the study's points, and the stems of the missing points.

    A point file that cannot be read counts as missing and is named on stderr, one line per file."""
    if not folder.is_dir():
        raise RunFileError(f"{folder}: no such folder")
    files, bad = run_candidates(folder)
    by_stem = {f.stem: f for f in files}
    points = list(s.points(budget))
    found, unreadable = read_each([by_stem[stem] for stem, _ in points if stem in by_stem])
    by_stem = {rec.path.stem: rec for rec in found}
    for b in [*bad, *unreadable]:
        if b.path.stem in {stem for stem, _ in points}:
            click.echo(f"skipped {b.line()}", err=True)
    records, missing = [], []
    for stem, config in points:
        rec = by_stem.get(stem)
        if rec is None or rec.status != "complete" or config_diff(rec.config, config.to_dict()):
            missing.append(stem)
            continue
        records.append(rec)
    if not records:
        raise RunFileError(f"no complete runs of study {s.name} ({budget}) in {folder}; "
                           f"run: ffneuro study run {s.name} --budget {budget} --out-dir {folder}")
    return records, missing


@study.command("plot")
@click.argument("name")
@click.argument("folder", type=click.Path(path_type=Path))
@budget_option
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="figure file (PNG)")
@click.option("--metric", type=click.Choice(["val", "test"]), default="val", show_default=True,
              help="best validation accuracy over epochs, or test accuracy")
@one_line_errors
def plot_cmd(name, folder, budget, out, metric):
    """NAME's accuracy per readout against the value it sweeps (mean ± sd over seeds), one line per other key."""
    from .plot import plot_sweep

    s = STUDIES.get(name)
    keys = s.group_keys(budget)
    if not keys:
        raise ConfigError(f"study {name} compares readouts of one config: nothing to plot against; "
                          f"use ffneuro study table {name}")
    records, missing = _study_records(s, budget, folder)
    x = s.plot_x or keys[-1]
    plot_sweep(records, x, out, metric, f"{s.title} ({budget} budget, {metric})",
               series=[k for k in keys if k != x])
    if missing:
        click.echo(f"missing ({len(missing)}): {', '.join(missing)}", err=True)
    click.echo(f"wrote {out}")


def paper_values(s: Study, keys: list[dict]) -> list[str | None]:
    """Per group key, the paper's numbers for that point of the comparison, at the paper's own setting:
    a paper value matches when it agrees on every key the table varies (other keys are the budget's)."""
    out = []
    for key in keys:
        hits = [p for p in s.paper if all(key[k] == v for k, v in p.point.items() if k in key)]
        out.append("; ".join(f"{p.mean:.4f}" + (f" ± {p.sd:.4f}" if p.sd is not None else "")
                             + f" ({p.readout}, {p.split})" for p in hits) or None)
    return out
