"""``ffneuro compare``: one table across hardware targets, FF against BP, training and inference (and a figure)."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import click
import numpy as np

from ffneuro.profiler import PROFILED, ff_vs_bp, format_si, load_profile, rank
from ffneuro.profiler.compare import ROW_FIELDS, comparison_rows, rankings
from ffneuro.profiler.energy import ENERGY_TERMS
from ffneuro.profiler.network import with_bp_run

from .network import resolve_network, sparsity_note
from .options import estimate_options, model_options
from .util import echo_json, pyplot, table

UNITS = {"energy_j": "J", "energy_low_j": "J", "energy_high_j": "J", "latency_s": "s", "latency_low_s": "s",
         "latency_high_s": "s", "peak_memory_bytes": "B"}
TABLE = ("target", "workload", "precision", "energy", "latency", "peak_memory_bytes", "cores", "binding",
         "off_core_share", "note")


def _fmt(key: str, v) -> str:
    if v is None or v == "":
        return "-" if v is None else ""
    if key in UNITS:
        return format_si(v, UNITS[key])
    if key == "off_core_share":
        return f"{v:.1%}"
    return str(v)


def _cell(row: dict, key: str) -> str:
    if key == "peak_memory_bytes" and row[key] is None and row["note"] == "":
        return "not modelled"   # an estimated workload whose blocks do not model their memory
    if key in ("energy", "latency"):
        unit = "j" if key == "energy" else "s"
        mid, lo, hi = row[f"{key}_{unit}"], row[f"{key}_low_{unit}"], row[f"{key}_high_{unit}"]
        if mid is None:
            return "-"
        u = UNITS[f"{key}_{unit}"]
        return format_si(mid, u) + ("" if lo is None else f" [{format_si(lo, u)}–{format_si(hi, u)}]")
    return _fmt(key, row[key])


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
              help="comma-separated targets: shipped names (ffneuro hw list) or .toml paths, each optionally NAME@CLOCK (e.g. cortex-m7@140MHz)")
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
        writer = csv.DictWriter(buf, fieldnames=ROW_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        click.echo(buf.getvalue(), nl=False)
    else:
        batch = reports[0].batch if reports else ""
        click.echo(f"{net.label}: per sample, batch {batch}, {sparsity_note(net)}; [low–high] from each "
                   "number's basis")
        precisions = {r["precision"] for r in rows if r["note"] == ""}
        if len(precisions) > 1:
            click.echo(f"note: the targets execute in different precisions ({', '.join(sorted(precisions))}): "
                       "see the precision column")
        click.echo(table([list(TABLE), *([_cell(r, k) for k in TABLE] for r in rows)]))
        click.echo("\n".join(_ranking_lines(reports)))
    if plot is not None:
        plot_comparison(reports, plot, title=net.label)
        click.echo(f"wrote {plot}", err=True)


def plot_comparison(reports, path: Path, title: str = "") -> None:
    """Left: per-unit energy by term for FF and BP training on the first target that trains.
    Right: energy per sample of FF/BP training and both inference readouts on every target (log scale)."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [1, 1.3]})
    first = next((r for r in reports if "ff_train" in r.workloads and r["ff_train"].supported), None)
    if first is not None:
        bars, labels = [], []
        for workload, tag in (("ff_train", "FF"), ("bp_train", "BP")):
            for u in first[workload].per_unit:
                bars.append([getattr(u.energy, t) for t in ENERGY_TERMS])
                labels.append(f"{tag} {u.unit}")
        data = np.array(bars) * 1e6
        bottom = np.zeros(len(bars))
        for i, term in enumerate(ENERGY_TERMS):
            left.bar(labels, data[:, i], bottom=bottom, label=term.removesuffix("_j").replace("_", "-"))
            bottom += data[:, i]
        left.set_ylim(0, bottom.max() * 1.1)  # headroom above the tallest stack, below the legend
        left.set_ylabel("energy per training sample (µJ)")
        left.set_title(f"per-unit training energy on {first.target}")
        left.tick_params(axis="x", rotation=45)
        left.legend(fontsize=8)
    names = {"ff_train": "FF train", "bp_train": "BP train", "infer_linear": "infer linear",
             "infer_goodness": "infer goodness", "bp_infer": "BP infer", "infer": "infer"}
    workloads = [(w, label) for w, label in names.items() if any(w in r.workloads for r in reports)]
    x = np.arange(len(reports))
    width = 0.8 / len(workloads)
    for i, (w, label) in enumerate(workloads):
        values, lows, highs = [], [], []
        for r in reports:
            est = r.workloads.get(w)
            ok = est is not None and est.supported and est.energy_j
            values.append(est.energy_j * 1e6 if ok else np.nan)
            lows.append((est.energy_j - est.energy_range[0]) * 1e6 if ok else 0.0)
            highs.append((est.energy_range[1] - est.energy_j) * 1e6 if ok else 0.0)
        right.bar(x + (i - (len(workloads) - 1) / 2) * width, values, width, label=label,
                  yerr=[lows, highs], capsize=2, error_kw={"elinewidth": 0.8})
    right.set_xticks(x, [f"{r.target}\n{r.executed_precision}" for r in reports], fontsize=8)
    right.set_yscale("log")
    right.set_ylabel("energy per sample (µJ, log)")
    right.set_title("FF vs BP across targets (error bars: range from each number's basis;\nmissing bar: not supported)",
                    fontsize=9)
    right.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
