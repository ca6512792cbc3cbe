"""``ffneuro compare``: one table across hardware targets, FF against BP, training and inference."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import click

from ffneuro.profiler import format_si, load_profile, profile_config

from .network import resolve_network, with_bp_run
from .options import model_options
from .util import echo_json, table

UNITS = {"energy_j": "J", "latency_s": "s", "peak_memory_bytes": "B"}
COLUMNS = ("target", "workload", "energy_j", "latency_s", "peak_memory_bytes", "cores", "off_core_share", "note")


def comparison_rows(reports) -> list[dict]:
    """One row per target and workload; unsupported workloads keep a row with the reason."""
    rows = []
    for rep in reports:
        for name, w in rep.workloads.items():
            rows.append({"target": rep.target, "workload": name, "energy_j": w.energy_j, "latency_s": w.latency_s,
                         "peak_memory_bytes": w.peak_memory_bytes, "cores": w.cores_needed,
                         "off_core_share": w.off_core_share, "note": "" if w.supported else "not supported"})
    return rows


def _fmt(key: str, v) -> str:
    if v is None:
        return "-"
    if key in UNITS:
        return format_si(v, UNITS[key])
    if key == "off_core_share":
        return f"{v:.1%}"
    return str(v)


@click.command()
@click.argument("run_file", required=False, type=click.Path(dir_okay=False))
@click.option("--hw", "hw_names", required=True,
              help="comma-separated targets: shipped names (ffneuro hw list) or .toml paths")
@click.option("--bp-run", type=click.Path(dir_okay=False), default=None,
              help="a BP run of the same network: its measured activity feeds the BP training estimate")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="also write a PNG: per-unit energy of FF and BP training, and FF vs BP across targets")
@model_options
@click.pass_context
def compare(ctx, run_file, hw_names, bp_run, fmt, plot, overrides, preset):
    """Compare FF and BP training and both inference readouts across hardware targets (per sample)."""
    net = with_bp_run(resolve_network(ctx, run_file, preset, overrides), bp_run)
    targets = [load_profile(n.strip()) for n in hw_names.split(",") if n.strip()]
    reports = [profile_config(net.config, net.image_shape, net.num_classes, hw, sparsity=net.sparsity,
                              bp_sparsity=net.bp_sparsity)
               for hw in targets]
    rows = comparison_rows(reports)
    if fmt == "json":
        echo_json({"network": net.label, "rows": rows, "reports": [r.to_dict() for r in reports]})
    elif fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        click.echo(buf.getvalue(), nl=False)
    else:
        click.echo(f"{net.label}: per sample, batch {net.config.batch_size}, "
                   f"{net.sparsity_note()}")
        click.echo(table([list(COLUMNS), *([_fmt(k, r[k]) for k in COLUMNS] for r in rows)]))
    if plot is not None:
        from .plotting import plot_comparison

        plot_comparison(reports, plot, title=net.label)
        click.echo(f"wrote {plot}", err=True)
