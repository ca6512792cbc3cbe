"""``ffneuro compare``: one table across hardware targets, FF against BP, training and inference."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import click

from ffneuro.profiler import PROFILED, ff_vs_bp, format_si, load_profile, rank

from .network import resolve_network, with_bp_run
from .options import estimate_options, model_options
from .util import echo_json, table

UNITS = {"energy_j": "J", "energy_low_j": "J", "energy_high_j": "J", "latency_s": "s", "latency_low_s": "s",
         "latency_high_s": "s", "peak_memory_bytes": "B"}
COLUMNS = ("target", "workload", "precision", "energy_j", "energy_low_j", "energy_high_j", "latency_s",
           "latency_low_s", "latency_high_s", "peak_memory_bytes", "cores", "chips", "binding", "synops", "macs",
           "off_core_share", "note")
TABLE = ("target", "workload", "precision", "energy", "latency", "peak_memory_bytes", "cores", "binding",
         "off_core_share", "note")


def _binding(w) -> str:
    """The binding limits of the unit with the most cores (the one that sets the chip count)."""
    if not w.supported or not w.per_unit:
        return ""
    u = max(w.per_unit, key=lambda u: u.cores)
    return "" if u.limited_by == "monolithic" else f"{u.unit}: {u.limited_by}"


def comparison_rows(reports) -> list[dict]:
    """One row per target and workload; unsupported workloads keep a row with the reason."""
    rows = []
    for rep in reports:
        for name, w in rep.workloads.items():
            er = w.energy_range or (None, None)
            lr = w.latency_range or (None, None)
            rows.append({"target": rep.target, "workload": name, "precision": w.precision or rep.executed_precision,
                         "energy_j": w.energy_j, "energy_low_j": er[0], "energy_high_j": er[1],
                         "latency_s": w.latency_s, "latency_low_s": lr[0], "latency_high_s": lr[1],
                         "peak_memory_bytes": w.peak_memory_bytes, "cores": w.cores_used or w.cores_needed,
                         "chips": w.chips_needed, "binding": _binding(w), "synops": w.synops if w.supported else None,
                         "macs": w.macs if w.supported else None, "off_core_share": w.off_core_share,
                         "note": "" if w.supported else "not supported"})
    return rows


def _fmt(key: str, v) -> str:
    if v is None or v == "":
        return "-" if v is None else ""
    if key in UNITS:
        return format_si(v, UNITS[key])
    if key == "off_core_share":
        return f"{v:.1%}"
    return str(v)


def _cell(row: dict, key: str) -> str:
    if key in ("energy", "latency"):
        unit = "j" if key == "energy" else "s"
        mid, lo, hi = row[f"{key}_{unit}"], row[f"{key}_low_{unit}"], row[f"{key}_high_{unit}"]
        if mid is None:
            return "-"
        u = UNITS[f"{key}_{unit}"]
        return format_si(mid, u) + ("" if lo is None else f" [{format_si(lo, u)}–{format_si(hi, u)}]")
    return _fmt(key, row[key])


def rankings(reports) -> dict:
    """Per workload the targets cheapest first with whether each is resolved from the next, and FF vs BP per target."""
    return {"by_workload": {w: [r.to_dict() for r in rank(reports, w)] for w in PROFILED + ("infer",)
                            if any(w in rep.workloads for rep in reports)},
            "ff_vs_bp": [c.to_dict() for c in (ff_vs_bp(rep) for rep in reports) if c is not None]}


def _ranking_lines(reports) -> list[str]:
    lines = ["", "ranking by energy per sample (cheapest first; '<' resolved, '≈' ranges overlap: not resolved):"]
    for w in (*PROFILED, "infer"):
        ranked = rank(reports, w)
        if len(ranked) < 2:
            continue
        text = ""
        for r in ranked:
            text += r.target + ("" if r.resolved_from_next is None else (" < " if r.resolved_from_next else " ≈ "))
        lines.append(f"  {w:15s} {text}")
    pairs = [c for c in (ff_vs_bp(rep) for rep in reports) if c is not None]
    if pairs:
        lines.append("FF training / BP training energy on each target (low–high: the same constants at both ends):")
        for c in pairs:
            lines.append(f"  {c.target:12s} {c.ratio:.2f} ({c.ratio_low:.2f}–{c.ratio_high:.2f}): {c.verdict}")
    return lines


@click.command()
@click.argument("run_file", required=False, type=click.Path(dir_okay=False))
@click.option("--hw", "hw_names", required=True,
              help="comma-separated targets: shipped names (ffneuro hw list) or .toml paths")
@click.option("--bp-run", type=click.Path(dir_okay=False), default=None,
              help="a BP run of the same network: its measured activity feeds the BP training estimate")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="also write a PNG: per-unit energy of FF and BP training, and FF vs BP across targets")
@estimate_options
@model_options(skip=("precision",))
@click.pass_context
def compare(ctx, run_file, hw_names, bp_run, fmt, plot, est_precision, timesteps, activity, input_activity, activity_from, overrides, preset):
    """Compare FF and BP training and both inference readouts across hardware targets (per sample).

    Every estimate carries a low–high range from the basis of each number it uses (measured, modelled,
    assumed ...; docs/hw-profiles.md). Targets whose ranges overlap are reported as not resolved.
    RUN_FILE may also be a NIR file (inference only)."""
    net = with_bp_run(resolve_network(ctx, run_file, preset, overrides, timesteps=timesteps, activity=activity,
                                           input_activity=input_activity, activity_from=activity_from), bp_run)
    targets = [load_profile(n.strip()) for n in hw_names.split(",") if n.strip()]
    reports = [net.profile(hw, precision=est_precision) for hw in targets]
    rows = comparison_rows(reports)
    if fmt == "json":
        echo_json({"network": net.label, "rows": rows, "rankings": rankings(reports),
                   "reports": [r.to_dict() for r in reports]})
    elif fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        click.echo(buf.getvalue(), nl=False)
    else:
        batch = reports[0].batch if reports else ""
        click.echo(f"{net.label}: per sample, batch {batch}, {net.sparsity_note()}; [low–high] from each "
                   "number's basis")
        precisions = {r["precision"] for r in rows if r["note"] == ""}
        if len(precisions) > 1:
            click.echo(f"note: the targets execute in different precisions ({', '.join(sorted(precisions))}): "
                       "see the precision column")
        click.echo(table([list(TABLE), *([_cell(r, k) for k in TABLE] for r in rows)]))
        click.echo("\n".join(_ranking_lines(reports)))
    if plot is not None:
        from .plotting import plot_comparison

        plot_comparison(reports, plot, title=net.label)
        click.echo(f"wrote {plot}", err=True)
