"""Float vs deployed accuracy, measured activity, and inference energy with measured vs default activity.

    python benchmarks/deploy_table.py RUN.h5 [RUN.h5 ...] [--targets loihi,loihi2,...] [--timesteps 16,32]
        [--samples 500] [--data-dir DIR] [--out benchmarks/results/deploy-table.json]

For every run, target and T it calls the CLI as a user would: ``ffneuro simulate RUN --hw TARGET
--timesteps T --json`` (which stores /simulation/TARGET in the run), then ``ffneuro profile RUN --hw
TARGET --timesteps T --json`` twice: once with the activity that simulation measured (the default for a
run that holds one) and once with ``--activity 0.1`` (the profiler's default rate for spiking layers).
The energy compared is the linear readout's inference workload (``infer_linear``) at batch 1. Prints a
markdown table (README "Deploy") and writes every number to ``--out``.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

TARGETS = ("loihi", "loihi2", "spinnaker2", "truenorth", "cortex-m7")
DEFAULT_RATE = 0.1
WORKLOAD = "infer_linear"


def ffneuro(*args: str) -> dict:
    """``ffneuro ARGS --json`` in a subprocess; its JSON result (exits on an error, printing it)."""
    cmd = [str(Path(sys.executable).with_name("ffneuro")), *args, "--json"]   # the venv's own entry point
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr.strip()}")
    return json.loads(done.stdout)


def energy(report: dict) -> tuple[float, list[str]]:
    """The linear readout's inference energy per image and each unit's activity source."""
    w = report["workloads"][WORKLOAD]
    return w["energy_j"] / report["batch"], [u.get("activity_source", "") for u in w.get("per_unit", [])]


def row(run: Path, target: str, steps: int, samples: int, data_dir: list[str]) -> dict:
    t0 = time.perf_counter()
    sim = ffneuro("simulate", str(run), "--hw", target, "--timesteps", str(steps), "--samples", str(samples),
                  "--readout", "linear", *data_dir)
    seconds = time.perf_counter() - t0
    steps_run = int(sim["timesteps"])
    measured = ffneuro("profile", str(run), "--hw", target, "--timesteps", str(steps_run), "--no-store",
                       "--profile-batch", "1")
    default = ffneuro("profile", str(run), "--hw", target, "--timesteps", str(steps_run), "--no-store",
                      "--profile-batch", "1", "--activity", str(DEFAULT_RATE))
    e_measured, sources = energy(measured)
    e_default, _ = energy(default)
    layers = sim["layers"]
    return {"run": run.name, "target": target, "timesteps": steps_run, "samples": sim["samples"],
            "float_acc": sim["float_acc"], "deployed_acc": sim["deployed_acc"],
            "activity": {layer["name"]: layer["activity"] for layer in layers},
            "saturated": {layer["name"]: layer["saturated"] for layer in layers},
            "energy_measured_j": e_measured, "energy_default_j": e_default, "activity_sources": sources,
            "simulate_seconds": round(seconds, 1)}


def joules(e: float) -> str:
    return f"{e * 1e3:.3g} mJ" if e >= 1e-3 else f"{e * 1e6:.3g} µJ"


def markdown(rows: list[dict]) -> str:
    head = ("| run | target | T | float | deployed | activity per layer (measured) | energy/image, measured activity |"
            " energy/image, default 0.1 |\n|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        acts = " / ".join(f"{v:.3f}" for k, v in r["activity"].items() if k != "input")
        lines.append(f"| {r['run']} | {r['target']} | {r['timesteps']} | {100 * r['float_acc']:.1f}% | "
                     f"{100 * r['deployed_acc']:.1f}% | {acts} | {joules(r['energy_measured_j'])} | "
                     f"{joules(r['energy_default_j'])} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--timesteps", default="16,32", help="comma-separated T for the spiking targets")
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    data_dir = ["--data-dir", args.data_dir] if args.data_dir else []
    rows = []
    for run in args.runs:
        for target in args.targets.split(","):
            for steps in [int(s) for s in args.timesteps.split(",")]:
                r = row(run, target, steps, args.samples, data_dir)
                rows.append(r)
                print(f"{run.name} {target} T={r['timesteps']}: float {r['float_acc']:.4f} deployed "
                      f"{r['deployed_acc']:.4f} ({r['simulate_seconds']} s)", file=sys.stderr, flush=True)
                if r["timesteps"] == 1:      # a dense target runs one pass whatever T is asked
                    break
    print(markdown(rows))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        meta = {"command": " ".join(sys.argv), "machine": platform.processor() or platform.machine(),
                "python": platform.python_version()}
        args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
