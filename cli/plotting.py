"""PNG figures of profiler results; matplotlib is optional (``pip install 'ffneuro[plot]'``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ffneuro.errors import FFNeuroError

TERMS = ("compute_j", "on_core_j", "off_core_j", "interconnect_j", "static_j")


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise FFNeuroError("plotting needs matplotlib: pip install 'ffneuro[plot]' (or pip install matplotlib)") from None
    return plt


def plot_comparison(reports, path: Path, title: str = "") -> None:
    """Left: per-unit energy by term for FF and BP training on the first target that trains.
    Right: energy per sample of FF/BP training and both inference readouts on every target (log scale)."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [1, 1.3]})
    first = next((r for r in reports if "ff_train" in r.workloads and r["ff_train"].supported), None)
    if first is not None:
        bars, labels = [], []
        for workload, tag in (("ff_train", "FF"), ("bp_train", "BP")):
            for u in first[workload].per_unit:
                bars.append([getattr(u.energy, t) for t in TERMS])
                labels.append(f"{tag} {u.unit}")
        data = np.array(bars) * 1e6
        bottom = np.zeros(len(bars))
        for i, term in enumerate(TERMS):
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
