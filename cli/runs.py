"""``ffneuro runs``: list, show and export stored run files."""
from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from pathlib import Path

import click

from ffneuro.errors import RunFileError
from ffneuro.jsonable import jsonable
from ffneuro.profiler.stored import stored_profiles
from ffneuro.run_groups import run_numbers
from ffneuro.store import RunRecord, read_run
from ffneuro.store.folder import read_checked, runs_in

from .options import json_option
from .table import table as table_cmd
from .util import table, write_text_atomic

log = logging.getLogger("ffneuro.cli")


def _fmt(value) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def live_status(rec: RunRecord) -> str:
    """The stored status, told apart for a 'running' file: 'running' with a live writer, else 'crashed'
    (the process died without closing the run: ``ffneuro train --resume`` continues it)."""
    status = rec.status
    if status == "running":
        status = "running" if rec.writer() is not None else "crashed"
    if status == "failed" and rec.failure:
        status = f"failed ({rec.failure})"
    if rec.pending:
        status += f", replaces {rec.replaces}"
    elif rec.cut_short:  # complete, killed between its last commit and its rename over STEM.h5
        status += f", replaces {rec.replaces} (rename cut short; --resume finishes it)"
    return status


def _summary(rec: RunRecord) -> dict:
    numbers = run_numbers(rec)
    writer = rec.writer() if rec.status == "running" else None
    return {"run": str(rec.path), "status": live_status(rec),
            "writer": None if writer is None else {"pid": writer.pid, "host": writer.host, "since": writer.since},
            "preset": rec.config.get("preset"),
            "dataset": rec.config.get("dataset"), "algo": rec.config.get("algo"),
            "epochs": f"{rec.epochs_done}/{rec.config.get('epochs')}", "best_val_acc": numbers["val_acc"], "test_acc": numbers["test_acc"]}


def _listing(rec: RunRecord) -> tuple[dict, list[str]]:
    """A run's summary and its ``runs list`` row (plain strings, whatever types the file held)."""
    s = _summary(rec)
    row = [s["run"], s["status"], s["algo"] or "-", s["dataset"] or "-", s["epochs"],
           " ".join(f"{k}={_fmt(v)}" for k, v in s["best_val_acc"].items()),
           " ".join(f"{k}={_fmt(v)}" for k, v in s["test_acc"].items()) or "-"]
    return s, [str(c) for c in row]


@click.group()
def runs():
    """Inspect stored run files."""


runs.add_command(table_cmd)


@runs.command("list")
@click.argument("directory", type=click.Path(file_okay=False), default="runs")
@json_option
def list_cmd(directory, as_json):
    """List the ffneuro runs in DIRECTORY (default: runs/)."""
    # each file is read, summarised and formatted on its own: whatever one file raises is one line naming it
    listed, bad = runs_in(directory, lambda path: _listing(read_checked(path)))
    summaries = [s for s, _ in listed]
    if as_json:
        click.echo(json.dumps({"runs": jsonable(summaries), "skipped": [str(b.path) for b in bad],
                                "bad_files": [{"file": str(b.path), "error": b.reason} for b in bad]}, indent=2))
        return
    if not summaries:
        click.echo(f"no ffneuro runs in {directory}")
    else:
        rows = [["run", "status", "algo", "dataset", "epochs", "val (best)", "test"]]
        click.echo(table(rows + [row for _, row in listed]))
    for b in bad:  # one line per file that is not a readable run, naming it and what is wrong
        click.echo(f"skipped (not a readable ffneuro run): {b.line()}", err=True)


@runs.command("show")
@click.argument("run_file", type=click.Path(dir_okay=False))
@json_option
def show_cmd(run_file, as_json):
    """Show a run's config, environment, accounting, last epoch and test result."""
    rec = read_run(run_file)
    last = {k: v[-1].item() for k, v in rec.metrics.items() if len(v)}
    if as_json:
        click.echo(json.dumps(jsonable({
            **_summary(rec), "created": rec.created, "config": rec.config, "environment": rec.environment,
            "units": rec.unit_names, "accounting": rec.accounting, "last_epoch": last,
            "groups": {k: v for k, v in rec.groups.items()},
            "profiled_on": list(stored_profiles(rec.groups)),
        }), indent=2))
        return
    s = _summary(rec)
    click.echo(f"{rec.path}  [{s['status']}]  created {rec.created}")
    if s["writer"]:
        click.echo(f"  being written by {rec.writer().describe()}")
    elif s["status"].startswith("crashed"):
        click.echo(f"  no live writer (last commit {rec.committed or rec.created}); continue it with: "
                   f"ffneuro train --resume {rec.path}")
    if rec.message:
        click.echo(f"  message: {rec.message}")
    click.echo(f"  {s['algo']} on {s['dataset']}, preset {s['preset']}, epochs {s['epochs']}")
    click.echo("  config: " + ", ".join(f"{k}={v}" for k, v in rec.config.items()))
    env = rec.environment
    click.echo(f"  environment: torch {env.get('torch')}, device {env.get('device')}, {env.get('platform')}")
    if "torch_threads" in env:
        parallel = env.get("parallel") if isinstance(env.get("parallel"), dict) else {}
        processes = env.get("processes", parallel.get("world_size", 1))
        click.echo(f"  threads: {processes} process{'' if processes == 1 else 'es'} × {env['torch_threads']} "
                   f"thread{'' if env['torch_threads'] == 1 else 's'}")
    rows = [["unit", *rec.accounting]]
    rows += [[name, *(str(rec.accounting[k][i]) for k in rec.accounting)] for i, name in enumerate(rec.unit_names)]
    click.echo("  accounting (per sample):")
    click.echo("\n".join("    " + line for line in table(rows).splitlines()))
    if last:
        click.echo("  last epoch: " + ", ".join(f"{k}={_fmt(v)}" for k, v in last.items()))
    click.echo("  test: " + (", ".join(f"{k}={_fmt(v)}" for k, v in s["test_acc"].items()) or "not evaluated"))
    profiles = stored_profiles(rec.groups)
    if profiles:   # ffneuro profile RUN_FILE: one per full target string (name, stack, clock)
        click.echo("  profiled on: " + ", ".join(profiles))


def _epoch_rows(rec: RunRecord) -> list[dict]:
    """One dict per epoch: the scalar metrics and each per-unit metric as ``<metric>.<unit>``."""
    rows = []
    for e in range(rec.epochs_done):
        row = {"epoch": e + 1}
        row.update({k: v[e].item() for k, v in rec.metrics.items()})
        for k, v in rec.unit_metrics.items():
            row.update({f"{k}.{u}": v[e, i].item() for i, u in enumerate(rec.unit_names)})
        rows.append(row)
    return rows


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


@runs.command("export")
@click.argument("run_file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path), default=None,
              help="file to write (default: stdout)")
@click.option("--force", is_flag=True, help="overwrite an existing --out file")
def export_cmd(run_file, fmt, out, force):
    """Export a run's per-epoch metrics as CSV or JSON."""
    rows = _epoch_rows(read_run(run_file))
    if fmt == "json":
        text = json.dumps(jsonable(rows), indent=2, allow_nan=False) + "\n"
    else:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["epoch"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        text = buf.getvalue()
    if out is None or str(out) == "-":
        click.echo(text, nl=False)
        return
    if _same_file(out, Path(run_file)):
        raise RunFileError(f"--out {out} is the run file itself; refusing to overwrite it")
    if out.exists() and not force:
        raise RunFileError(f"{out} exists; pass --force to overwrite")
    write_text_atomic(out, text)
