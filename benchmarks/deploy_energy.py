"""Re-derive the deploy tables' inference energies from the activity their JSON recorded, without the run files.

    python benchmarks/deploy_energy.py benchmarks/results/deploy-table.json [TARGET ...]

``benchmarks/deploy_table.py`` simulates a trained run on each target and then costs linear-readout inference
with ``ffneuro profile RUN --timesteps T --profile-batch 1`` (the simulation's measured activity) and again with
``--activity 0.1``. The energy depends only on the network's shape, that activity and the hardware profile, so
when a profile changes (e.g. Loihi 2's packing) the energy columns can be recomputed from the stored activity
without training or simulating again. The run file's name maps to its preset (``PRESETS``); unchanged targets
reproduce the stored numbers exactly, which checks the recomputation.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ffneuro.presets import resolve_config
from ffneuro.profiler import load_profile, profile_config
from ffneuro.profiler.activity import ActivitySources, Simulation, deployed_sources

PRESETS = {"mfd10k.h5": "mnist-fast-deploy", "mfd.h5": "mnist-fast-deploy", "ms.h5": "mnist-small"}
DEFAULT_RATE = 0.1   # deploy_table.py's --activity for the "default" column


def energies(row: dict) -> tuple[float, float]:
    """(measured-activity, default-activity) energy per image of one stored row, in joules."""
    cfg = resolve_config(PRESETS[row["run"]], {})
    names = [f"unit{i + 1}" for i in range(cfg.layers)]
    sim = Simulation(row["target"], tuple(row["activity"]), tuple(row["activity"].values()), row["timesteps"])
    out = []
    for given in (None, DEFAULT_RATE):
        sources = deployed_sources(ActivitySources(), names, simulation=sim, given=given)
        report = profile_config(cfg, (1, 28, 28), 10, load_profile(row["target"]), batch=1, activity=sources,
                                workloads=("infer_linear",))
        out.append(report["infer_linear"].energy_j)
    return out[0], out[1]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("table", type=Path)
    ap.add_argument("targets", nargs="*")
    args = ap.parse_args(argv)
    for row in json.loads(args.table.read_text())["rows"]:
        if args.targets and row["target"] not in args.targets:
            continue
        measured, default = energies(row)
        print(f"{row['run']:10s} {row['target']:10s} T={row['timesteps']:<3d} measured {measured * 1e3:.3g} mJ "
              f"(stored {row['energy_measured_j'] * 1e3:.3g})  default {default * 1e3:.3g} mJ "
              f"(stored {row['energy_default_j'] * 1e3:.3g})")


if __name__ == "__main__":
    main()
