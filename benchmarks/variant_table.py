"""One table of FF variants from a folder of run files: test accuracy per readout, seconds per training
epoch (mean over the run's epochs), and MACs per training image (forward, backward and update, from the
accounting; FF pairs count both the positive and the negative pass).

    python benchmarks/variant_table.py runs/variants [--format md|json]

Rows are grouped by (variant, epochs): a run's variant is its preset, with " (BP)" for --algo bp and any
widths that differ from the preset's noted.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from ffneuro.accounting import bp_training_costs, ff_training_costs
from ffneuro.accounting.objective import objective_cost
from ffneuro.blocks import layer_specs
from ffneuro.config import RunConfig
from ffneuro.presets import PRESETS
from ffneuro.store import find_runs, read_run


def macs_per_training_image(config: RunConfig, shape, classes: int) -> float:
    specs = layer_specs(config, shape, num_classes=classes)
    if config.algo == "bp":
        return bp_training_costs(specs, num_classes=classes, batch=1).macs
    return ff_training_costs(specs, num_classes=classes, batch=1, linear_readout=config.readout in ("linear", "both"),
                             readout_from=config.readout_from, objective=objective_cost(config, classes)).macs


def row(path) -> dict | None:
    rec = read_run(path)
    if rec.status != "complete":
        return None
    config = RunConfig.from_dict(rec.config)
    data = rec.groups["data"]
    shape, classes = tuple(int(v) for v in data["image_shape"]), int(data["num_classes"])
    name = config.preset or "custom"
    if config.preset and config.widths != RunConfig.from_dict({**PRESETS.get(config.preset)}).widths:
        name += f" widths {','.join(map(str, config.widths))}"
    if config.algo == "bp":
        name += " (BP)"
    test = {k.removeprefix("acc_"): float(v) for k, v in rec.groups["test"].items() if k.startswith("acc_")}
    return {"variant": name, "dataset": data["name"], "epochs": rec.epochs_done, "train_images": int(data["train_images"]),
            "test": test, "s_per_epoch": float(np.mean(rec.metrics["epoch_train_time_s"])),
            "wall_s": float(rec.metrics["wall_time_s"][-1]), "macs_per_train_image": macs_per_training_image(config, shape, classes),
            "run": str(path)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("--format", choices=["md", "json"], default="md")
    args = ap.parse_args()
    found, _ = find_runs(args.folder)
    rows = sorted(filter(None, (row(p) for p in found)), key=lambda r: (r["dataset"], r["variant"], r["epochs"]))
    if args.format == "json":
        json.dump(rows, sys.stdout, indent=1)
        return
    print("| variant | dataset | epochs | train images | test goodness | test linear | s / epoch | MACs / training image |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        acc = {k: f"{100 * r['test'][k]:.2f}%" if k in r["test"] else "-" for k in ("goodness", "linear")}
        print(f"| {r['variant']} | {r['dataset']} | {r['epochs']} | {r['train_images']} | {acc['goodness']} | "
              f"{acc['linear']} | {r['s_per_epoch']:.0f} | {r['macs_per_train_image'] / 1e6:.1f} M |")


if __name__ == "__main__":
    main()
