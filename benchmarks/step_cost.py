"""Time one FF training step against one BP step on the same network, side by side in one process.

FF should cost about 4/3 of BP: two forwards and two weight gradients (positive and negative) against
one forward, one weight gradient and one input gradient. Random images stand in for data (speed does
not depend on pixel values). On CUDA it also reports peak memory per step.

    python benchmarks/step_cost.py --preset paper-mnist --batch-size 50 --steps 20 [--device cuda]
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from ffneuro.models import BPNet, FFNet
from ffneuro.presets import resolve_config
from ffneuro.train import environment, pick_device


def time_steps(model, x, y, steps: int, warmup: int, device: torch.device) -> tuple[float, int]:
    """Seconds per training step (median of ``steps``) and peak CUDA bytes during them (0 on CPU)."""
    for _ in range(warmup):
        model.train_batch(x, y)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        model.train_batch(x, y)
        sync()
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated(device) - base if device.type == "cuda" else 0
    return sorted(times)[len(times) // 2], peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="paper-mnist")
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--filters", type=int, default=None)
    args = ap.parse_args()
    device = pick_device(args.device)
    image_shape, classes = (1, 28, 28), 10
    over = {"device": args.device, "precision": args.precision, "layers": args.layers, "filters": args.filters}
    rows = {}
    x = torch.rand(args.batch_size, *image_shape, device=device)
    y = torch.randint(0, classes, (args.batch_size,), device=device)
    # FF with the goodness readout only: the pure FF step, no linear-readout forward.
    variants = {
        "ff": ("ff", {"readout": "goodness"}),
        "ff+linear": ("ff", {"readout": "both"}),
        "ff-all-trained": ("ff", {"readout": "goodness", "train_first_layer": True}),
        "bp": ("bp", {}),
    }
    for name, (algo, extra) in variants.items():
        torch.manual_seed(0)
        cfg = resolve_config(args.preset, {**over, **extra, "algo": algo})
        model = (FFNet if algo == "ff" else BPNet)(cfg, image_shape, classes).to(device)
        sec, peak = time_steps(model, x, y, args.steps, args.warmup, device)
        rows[name] = {"s_per_step": sec, "images_per_s": args.batch_size / sec, "peak_bytes": peak}
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    bp = rows["bp"]["s_per_step"]
    for r in rows.values():
        r["time_vs_bp"] = r["s_per_step"] / bp
    print(f"{'variant':16s} {'s/step':>9s} {'img/s':>9s} {'x BP':>6s} {'peak MiB':>9s}")
    for name, r in rows.items():
        peak = f"{r['peak_bytes'] / 2**20:9.1f}" if device.type == "cuda" else f"{'-':>9s}"  # CUDA only
        print(f"{name:16s} {r['s_per_step']:9.4f} {r['images_per_s']:9.1f} {r['time_vs_bp']:6.2f} {peak}")
    print(json.dumps({"preset": args.preset, "batch_size": args.batch_size, "environment": environment(device),
                      "rows": rows}))


if __name__ == "__main__":
    main()
