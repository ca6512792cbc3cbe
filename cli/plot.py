"""``ffneuro plot``: PNG figures of stored runs (training curves, sweeps); matplotlib is optional
(``pip install 'ffneuro[plot]'``)."""
from __future__ import annotations

import math
from pathlib import Path

import click
import numpy as np

from ffneuro.errors import RunFileError
from ffneuro.run_groups import group_runs

from .table import _collect
from .util import one_line_errors, pyplot


def _labels(records) -> list[str]:
    """A label per run: the file stem, or parent/stem where stems repeat."""
    stems = [Path(r.path).stem for r in records]
    if len(set(stems)) == len(stems):
        return stems
    return [f"{Path(r.path).parent.name}/{Path(r.path).stem}" for r in records]


def _records(paths, include_incomplete: bool):
    records, skipped = _collect(paths, include_incomplete)
    for f, why in skipped:
        click.echo(f"skipped {f}: {why}", err=True)
    if not records:
        kind = "" if include_incomplete else "complete "
        raise RunFileError(f"no {kind}ffneuro runs in {', '.join(paths)}")
    return records


def _save(fig, plt, out: Path) -> None:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=120)
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot write {out}: {exc}") from None
    finally:
        plt.close(fig)


def _epochs(values) -> np.ndarray:
    return np.arange(1, len(values) + 1)


def plot_curves(records, out: Path, title: str = "") -> None:
    """2×2 panels over epochs: per-unit loss (BP: train loss), goodness of positives/negatives,
    discrimination accuracy, and accuracy per readout (val solid, train dotted)."""
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5), sharex=True)
    (loss_ax, good_ax), (disc_ax, acc_ax) = axes
    colour = {"loss": 0, "good": 0, "disc": 0, "acc": 0}

    def next_colour(panel: str) -> str:
        c = f"C{colour[panel] % 10}"
        colour[panel] += 1
        return c

    for rec, label in zip(records, _labels(records)):
        units = rec.unit_metrics
        names = list(rec.unit_names)
        if "loss" in units:
            loss = np.asarray(units["loss"], dtype=float)
            for j in range(loss.shape[1]):
                loss_ax.plot(_epochs(loss), loss[:, j], color=next_colour("loss"),
                             label=f"{label} {names[j] if j < len(names) else j}")
        if (rec.config.get("algo") == "bp" or not units) and "train_loss" in rec.metrics:
            tl = np.asarray(rec.metrics["train_loss"], dtype=float)
            loss_ax.plot(_epochs(tl), tl, color=next_colour("loss"), label=f"{label} BP train loss")
        if "goodness_pos" in units or "goodness_neg" in units:
            pos = np.asarray(units.get("goodness_pos", units.get("goodness_neg")), dtype=float)
            for j in range(pos.shape[1]):
                c = next_colour("good")
                unit = names[j] if j < len(names) else j
                if "goodness_pos" in units:
                    good_ax.plot(_epochs(pos), units["goodness_pos"][:, j], color=c, ls="-", label=f"{label} {unit} pos")
                if "goodness_neg" in units:
                    good_ax.plot(_epochs(pos), units["goodness_neg"][:, j], color=c, ls="--", label=f"{label} {unit} neg")
        if "disc_acc" in units:
            disc = np.asarray(units["disc_acc"], dtype=float)
            pair = np.asarray(units["pair_acc"], dtype=float) if "pair_acc" in units else None
            for j in range(disc.shape[1]):
                c, unit = next_colour("disc"), names[j] if j < len(names) else j
                disc_ax.plot(_epochs(disc), disc[:, j], color=c, label=f"{label} {unit}")
                if pair is not None:
                    disc_ax.plot(_epochs(pair), pair[:, j], color=c, ls=":", label=f"{label} {unit} G+>G-")
        readouts = list(dict.fromkeys(k.split("_acc_", 1)[1] for k in rec.metrics
                                      if k.startswith(("val_acc_", "train_acc_"))))
        for r in readouts:
            c = next_colour("acc")
            for kind, ls in (("val", "-"), ("train", ":")):
                values = rec.metrics.get(f"{kind}_acc_{r}")
                if values is not None:
                    values = np.asarray(values, dtype=float)
                    acc_ax.plot(_epochs(values), values, color=c, ls=ls, label=f"{label} {kind} {r}")

    panels = ((loss_ax, "(a) per-unit FF loss (BP: train loss)", "loss"),
              (good_ax, "(b) mean goodness: positives solid, negatives dashed", "goodness"),
              (disc_ax, "(c) per-unit discrimination: σ(logit) > ½ solid, G⁺ > G⁻ dotted", "accuracy"),
              (acc_ax, "(d) accuracy per readout: val solid, train dotted", "accuracy"))
    for ax, heading, ylabel in panels:
        ax.set_title(heading, fontsize=10)
        ax.set_ylabel(ylabel)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no data (BP runs have no unit metrics)", ha="center", va="center",
                    transform=ax.transAxes, color="grey")
    from matplotlib.ticker import MaxNLocator

    for ax in (disc_ax, acc_ax):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, plt, out)


def _numeric(values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def plot_sweep(records, key: str, out: Path, metric: str = "val", title: str = "",
               series: list[str] | None = None) -> None:
    """Accuracy per readout vs config ``key``: mean ± sd over the runs sharing each value.

    ``series``: config keys whose values split the runs into separate lines (e.g. ``algo``).
    """
    series = list(series or [])
    try:
        splits = group_runs(records, by=series) if series else None
        parts = [(g.key, g.records) for g in splits] if series else [({}, list(records))]
        panels = [(name, group_runs(recs, by=[key])) for name, recs in parts]
    except ValueError as exc:
        raise click.ClickException(f"--param/--series: {exc}") from None
    field = f"{metric}_acc"
    all_stats = [[g.stats() for g in groups] for _, groups in panels]
    readouts = list(dict.fromkeys(r for stats in all_stats for s in stats for r in s[field]))
    if not readouts:
        raise click.ClickException(f"the runs have no {metric} accuracy")
    values = list(dict.fromkeys(g.key[key] for _, groups in panels for g in groups))
    numeric = _numeric(values)
    if numeric:
        values = sorted(values)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.8))
    if not numeric:
        ax.set_xticks(np.arange(len(values), dtype=float), [str(v) for v in values])
    elif len(values) <= 12:
        ax.set_xticks(np.array(values, dtype=float), [str(v) for v in values])  # the swept values, not 3.5
    lines = [(name, r) for name, _ in panels for r in readouts]
    offset = 0.0 if numeric else 0.05
    ns = []
    for (name, groups), stats in zip(panels, all_stats):
        ns += [str(s["n"]) for s in stats]
        x = np.array([g.key[key] if numeric else values.index(g.key[key]) for g in groups], dtype=float)
        for r in readouts:
            i = lines.index((name, r))
            mean = np.array([s[field].get(r, {}).get("mean", math.nan) for s in stats], dtype=float)
            if np.all(np.isnan(mean)):
                continue
            sd = np.array([s[field].get(r, {}).get("sd", math.nan) for s in stats], dtype=float)
            label = " ".join([*(f"{k}={v}" for k, v in name.items()), r])
            ax.errorbar(x + (i - (len(lines) - 1) / 2) * offset, mean, yerr=np.nan_to_num(sd),
                        marker="o", capsize=4, ls="-" if numeric else "none", label=label)
    ax.set_xlabel(key)
    ax.set_ylabel(f"{'best validation' if metric == 'val' else 'test'} accuracy")
    ax.set_title(title or f"{metric} accuracy vs {key} (mean ± sd over seeds; n = {', '.join(ns)})", fontsize=10)
    ax.legend(title=" ".join([*series, "readout"]), fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, plt, out)


@click.group("plot")
def plot():
    """PNG figures of stored runs (needs matplotlib: pip install 'ffneuro[plot]')."""


@plot.command("curves")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="figure file (PNG)")
@click.option("--title", default="", help="figure title")
@one_line_errors
def curves(paths, out, title):
    """Training curves of the runs in PATHS (folders or run files), overlaid, one label per run.

    Panels over epochs: (a) per-unit FF loss (BP runs: train loss), (b) per-unit mean goodness of
    positives (solid) and negatives (dashed), (c) per-unit discrimination accuracy, (d) accuracy per
    readout (validation solid, training dotted). Incomplete runs are plotted as far as they got.
    """
    records = _records(paths, include_incomplete=True)
    plot_curves(records, out, title)
    click.echo(f"wrote {out}")


@plot.command("sweep")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--param", "param", required=True, metavar="KEY",
              help="swept config key on the x axis (flag spelling accepted: label-strength)")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="figure file (PNG)")
@click.option("--metric", type=click.Choice(["val", "test"]), default="val", show_default=True,
              help="best validation accuracy over epochs, or test accuracy")
@click.option("--series", default=None, metavar="KEYS",
              help="comma-separated config keys that split the runs into separate lines (e.g. algo)")
@click.option("--title", default="", help="figure title")
@click.option("--include-incomplete", is_flag=True, help="also use runs whose status is not complete")
@one_line_errors
def sweep(paths, param, out, metric, series, title, include_incomplete):
    """Accuracy per readout vs the config parameter KEY over the runs in PATHS (folders or files).

    Runs sharing a value of KEY (e.g. seeds) are averaged: mean ± sample sd as error bars. Numeric
    values go on a numeric axis, others are categories.
    """
    key = param.strip().replace("-", "_")
    if not key:
        raise click.ClickException("--param: empty key")
    keys = [k.strip().replace("-", "_") for k in series.split(",")] if series else []
    if any(not k for k in keys):
        raise click.ClickException(f"--series {series!r} has an empty key")
    records = _records(paths, include_incomplete)
    plot_sweep(records, key, out, metric, title, series=keys)
    click.echo(f"wrote {out}")
