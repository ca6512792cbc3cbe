"""Training throughput on one process against several, for data-parallel and pipelined units, side by side.

Each case is a real ``ffneuro train`` run (``--nproc N --parallel data|pipeline``, launched through
torchrun, gloo on the CPU, NCCL on GPUs); its images/s is the run's own ``images_per_s`` metric
(training images over the epoch's training time, so start-up and evaluation are left out), the median
over epochs after the first. The default network has two equally costly units (fully connected, 256 →
256 → 256 on the 16×16 synthetic images), so a two-stage pipeline is balanced. Every process gets one
thread (OMP_NUM_THREADS=1) unless --threads says otherwise.

    python benchmarks/scale.py --nproc 2                      # CPU: 1 × 1 thread vs 2 × 1 thread
    python benchmarks/scale.py --nproc 8 --device cuda --dataset mnist --data-dir DATA   # 8 GPUs

Expected on N GPUs: data-parallel close to N× while the per-unit all-reduce (every trained parameter, once
per step) stays small beside a step's compute, i.e. large batches; a pipeline of N balanced stages close
to N× after it fills (N − 1 batches), less the share of the wire for the hand-on tensors.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ffneuro.store import read_run

SMOKE_NET = "--arch fc --layers 2 --widths 256,256 --train-first-layer"


def run_case(out: Path, nproc: int, mode: str, args: list[str], threads: int) -> dict:
    cmd = [sys.executable, "-m", "ffneuro.cli", "-q", "train", *args, "--out", str(out)]
    if nproc > 1:
        cmd += ["--nproc", str(nproc), "--parallel", mode]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    rec = read_run(out)
    rates = list(rec.metrics["images_per_s"])
    steady = rates[1:] if len(rates) > 1 else rates
    wire = {k: float(v[-1]) for k, v in rec.metrics.items() if k.startswith("wire_")}
    return {"nproc": nproc, "mode": mode if nproc > 1 else "one process", "images_per_s": statistics.median(steady),
            "images_per_s_by_epoch": [float(r) for r in rates], "wall_s": wall, "wire": wire,
            "test": {k.removeprefix("acc_"): v for k, v in rec.groups["test"].items() if k.startswith("acc_")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="threads per process")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dataset", default="synthetic")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--train-limit", type=int, default=None)
    ap.add_argument("--preset", default="smoke", help="the preset the network and schedule start from")
    ap.add_argument("--net", default=None,
                    help="model flags on top of the preset (default with smoke: two equally costly fully "
                         "connected units; with any other preset: none)")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    net = args.net if args.net is not None else (SMOKE_NET if args.preset == "smoke" else "")
    common = ["--preset", args.preset, "--dataset", args.dataset, "--device", args.device, "--epochs", str(args.epochs),
              "--batch-size", str(args.batch_size), "--eval-every", str(args.epochs), "--readout", "goodness",
              *net.split()]
    if args.data_dir:
        common += ["--data-dir", args.data_dir]
    if args.train_limit:
        common += ["--train-limit", str(args.train_limit)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = run_case(Path(tmp) / "one.h5", 1, "none", common, args.threads)
        rows.append(base)
        for mode in ("data", "pipeline"):
            rows.append(run_case(Path(tmp) / f"{mode}.h5", args.nproc, mode, common, args.threads))
    for r in rows:
        r["speedup"] = r["images_per_s"] / base["images_per_s"]
    print(f"{'case':14s} {'procs':>5s} {'img/s':>10s} {'× one':>6s}  wire bytes per step (measured / predicted)")
    for r in rows:
        wire = r["wire"]
        shown = ", ".join(f"{k.removeprefix('wire_')}={v:,.0f}" for k, v in wire.items()) or "-"
        print(f"{r['mode']:14s} {r['nproc']:5d} {r['images_per_s']:10.1f} {r['speedup']:6.2f}  {shown}")
    result = {"argv": sys.argv[1:], "threads_per_process": args.threads, "cpu_count": os.cpu_count(), "rows": rows}
    print(json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
