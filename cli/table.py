"""``ffneuro runs table``: runs grouped by config, mean ± sd over seeds, as a table, CSV or JSON."""
from __future__ import annotations

import csv
import io
import json
import logging
import math
from pathlib import Path

import click

from ffneuro.errors import RunFileError
from ffneuro.jsonable import jsonable
from ffneuro.run_groups import group_runs
from ffneuro.store.folder import read_each, runs_in

from .util import one_line_errors
from .util import table as text_table

log = logging.getLogger("ffneuro.cli")


def _num(value: float, digits: int = 4) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _pm(stat: dict | None) -> str:
    if not stat or math.isnan(stat["mean"]):
        return "-"
    return _num(stat["mean"]) if math.isnan(stat["sd"]) else f"{_num(stat['mean'])} ± {_num(stat['sd'])}"


def _collect(paths: tuple[str, ...], include_incomplete: bool):
    """Readable runs from folders (their *.h5 files) and files; the rest are reported as skipped.

    A bad file in a folder is one skipped entry naming what is wrong (every good run is still used); a
    bad file named on its own is a one-line error."""
    records, skipped = [], []
    for p in map(Path, paths):
        if p.is_dir():
            found, bad = runs_in(p)
            skipped += [(b.path, b.reason) for b in bad]
        elif p.exists():
            found, bad = read_each([p])
            if bad:
                raise RunFileError(bad[0].line())
        else:
            raise RunFileError(f"{p}: no such file or directory")
        for rec in found:
            if rec.pending:  # a --force run beside the run it will replace: counting both would count it twice
                skipped.append((rec.path, f"unfinished replacement of {rec.replaces}"))
                continue
            if rec.cut_short:  # complete, but killed before its rename: STEM.h5 beside it is still the old run
                skipped.append((rec.path, f"complete replacement of {rec.replaces} whose rename was cut short "
                                          f"(ffneuro train --resume {rec.path} finishes it)"))
                continue
            if rec.status != "complete" and not include_incomplete:
                skipped.append((rec.path, f"status {rec.status}"))
                continue
            records.append(rec)
    return records, skipped


@click.command("table")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--by", default=None, metavar="KEYS",
              help="comma-separated config keys to group by (default: every key that varies, except seed and device)")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--include-incomplete", is_flag=True, help="also use runs whose status is not complete")
@one_line_errors
def table(paths, by, fmt, include_incomplete):
    """Group the runs in PATHS (folders or run files) by config; mean ± sd over seeds.

    Per group: best validation accuracy over epochs and test accuracy (per readout, mean ± sample sd),
    best epoch and wall time (means), n runs, and threads (processes × torch threads per process, as its
    runs recorded them). With one run the sd is undefined: shown as the mean alone (JSON null).
    """
    records, skipped = _collect(paths, include_incomplete)
    for f, why in skipped:
        click.echo(f"skipped {f}: {why}", err=True)
    if not records:
        raise RunFileError(f"no complete ffneuro runs in {', '.join(paths)}")
    keys = None
    if by is not None:
        keys = [k.strip().replace("-", "_") for k in by.split(",")]
        if any(not k for k in keys):
            raise click.BadParameter(f"{by!r} has an empty key", param_hint="'--by'")
    try:
        groups = group_runs(records, keys)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--by'") from None
    stats = [g.stats() for g in groups]
    key_names = list(groups[0].key) if groups else []
    threads = {"threads": [group_threads(g.records) for g in groups]}
    click.echo(format_groups(stats, key_names, fmt, skipped=[str(f) for f, _ in skipped], extra=threads), nl=False)


def run_threads(rec) -> str:
    """How a run computed: "PROCESSES×THREADS" (processes, each with THREADS torch threads, as recorded in
    its environment), "?" where the run did not record it. Pipelined units match one process bit for bit
    only at the same thread count, so runs that differ in it are told apart in tables."""
    env = rec.environment if isinstance(rec.environment, dict) else {}
    parallel = env.get("parallel") if isinstance(env.get("parallel"), dict) else {}
    processes = env.get("processes", parallel.get("world_size", 1))
    threads = env.get("torch_threads")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (processes, threads)):
        return "?"
    return f"{processes}×{threads}"


def group_threads(records) -> str:
    """The distinct :func:`run_threads` of a group's runs, comma-separated."""
    return ",".join(sorted({run_threads(r) for r in records}))


def format_groups(stats: list[dict], key_names: list[str], fmt: str, *, skipped=(), extra: dict | None = None) -> str:
    """Group statistics (:meth:`ffneuro.run_groups.Group.stats`) as a text table, CSV or JSON.

    ``extra`` maps a column name to one value per group (shown last; in JSON under each group's "extra").
    """
    extra = extra or {}
    val_r = list(dict.fromkeys(r for s in stats for r in s["val_acc"]))
    test_r = list(dict.fromkeys(r for s in stats for r in s["test_acc"]))
    if fmt == "json":
        groups = [{**s, "extra": {k: v[i] for k, v in extra.items()}} if extra else s for i, s in enumerate(stats)]
        return json.dumps(jsonable({"by": key_names, "groups": groups, "skipped": list(skipped)}),
                          indent=2, allow_nan=False) + "\n"
    if fmt == "csv":
        header = [*key_names, "n", *(f"val_acc_{r}_{m}" for r in val_r for m in ("mean", "sd")),
                  *(f"test_acc_{r}_{m}" for r in test_r for m in ("mean", "sd")), "best_epoch_mean",
                  "wall_time_s_mean", *extra]
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(header)

        def cell(v):
            return "" if v is None or (isinstance(v, float) and math.isnan(v)) else v

        for i, s in enumerate(stats):
            w.writerow([*(cell(s["key"][k]) for k in key_names), s["n"],
                        *(cell(s["val_acc"].get(r, {}).get(m)) for r in val_r for m in ("mean", "sd")),
                        *(cell(s["test_acc"].get(r, {}).get(m)) for r in test_r for m in ("mean", "sd")),
                        cell(s["best_epoch"]), cell(s["wall_time_s"]), *(cell(v[i]) for v in extra.values())])
        return buf.getvalue()
    rows = [[*key_names, "n", *(f"val {r}" for r in val_r), *(f"test {r}" for r in test_r), "best epoch", "wall s",
             *extra]]
    for i, s in enumerate(stats):
        rows.append([*(str(s["key"][k]) for k in key_names), str(s["n"]),
                     *(_pm(s["val_acc"].get(r)) for r in val_r), *(_pm(s["test_acc"].get(r)) for r in test_r),
                     _num(s["best_epoch"], 1), _num(s["wall_time_s"], 1),
                     *("-" if v[i] is None else str(v[i]) for v in extra.values())])
    return text_table(rows) + "\n"
