"""Time one FF training step against one BP step on the same network, side by side in one process.

FF should cost about 4/3 of BP: two forwards and two weight gradients (positive and negative) against
one forward, one weight gradient and one input gradient; a class-wise objective (no label in the image,
no negative images) runs one forward and one weight gradient. Random images of the preset's dataset
shape stand in for data (speed does not depend on pixel values). On CUDA it also reports peak memory per step.

The variants' steps are interleaved (one step of each in turn, ``--steps`` rounds), so a shared machine's
load drifts over all of them alike and the ratios to BP hold within a run; the median step is reported,
in wall time and in the process's CPU time (with ``--threads 1``, the CPU time is the step's own work,
much less disturbed than wall time by other programs on a shared machine).

    python benchmarks/step_cost.py --preset paper-mnist --batch-size 50 --steps 20 [--device cuda]
    python benchmarks/step_cost.py --preset mnist-fast --preset cifar10-fast --batch-size 128 --out r.json
"""
from __future__ import annotations

import argparse
import json
import time
import types
from pathlib import Path

import torch
from torch import nn

from ffneuro.blocks.cfse import CFSEModule
from ffneuro.data.loading import dataset_shape
from ffneuro.models import BPNet, FFNet
from ffneuro.presets import resolve_config
from ffneuro.train import environment, pick_device

# FF with the goodness readout only: the pure FF step, no linear-readout training.
VARIANTS = {
    "ff": ("ff", {"readout": "goodness"}),
    "ff+linear": ("ff", {"readout": "both"}),
    "ff-all-trained": ("ff", {"readout": "goodness", "train_first_layer": True}),
    "bp": ("bp", {}),
}


def torch_pool_forward(self, x: torch.Tensor) -> torch.Tensor:
    """The cfse block's forward before its pooling was sped up (ReLU, then torch's NCHW ``max_pool2d``),
    for an A/B of the pooling within one run (``--ab-pool``)."""
    y = torch.relu(self.conv(x))
    if self.spec.pooled:
        y = nn.functional.max_pool2d(y, 2)
    return self.norm(y)


def with_torch_pool(model: nn.Module) -> nn.Module:
    """``model`` with every cfse block running :func:`torch_pool_forward`."""
    for m in model.modules():
        if isinstance(m, CFSEModule):
            m.forward = types.MethodType(torch_pool_forward, m)
    return model


def time_interleaved(models: dict, x: torch.Tensor, y: torch.Tensor, steps: int, warmup: int,
                     device: torch.device) -> dict[str, dict]:
    """Median seconds per training step of each model, the models stepping in turn (one step each per
    round), and peak CUDA bytes of a step (0 on CPU)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        for model in models.values():
            model.train_batch(x, y)
    sync()
    times = {name: [] for name in models}
    cpu = {name: [] for name in models}
    peaks = dict.fromkeys(models, 0)
    for _ in range(steps):
        for name, model in models.items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
                base = torch.cuda.memory_allocated(device)
            t0, c0 = time.perf_counter(), time.process_time()
            model.train_batch(x, y)
            sync()
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
            if device.type == "cuda":
                peaks[name] = max(peaks[name], torch.cuda.max_memory_allocated(device) - base)
    return {name: {"s_per_step": median(ts), "s_min": min(ts), "cpu_s_per_step": median(cpu[name]),
                   "peak_bytes": peaks[name]} for name, ts in times.items()}


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def preset_rows(preset: str, args: argparse.Namespace, device: torch.device) -> dict[str, dict]:
    """Every variant of ``preset`` timed side by side; each row also gets its time relative to BP's."""
    over = {"device": args.device, "precision": args.precision, "layers": args.layers, "filters": args.filters}
    image_shape, classes = dataset_shape(resolve_config(preset, over).dataset)
    torch.manual_seed(0)
    x = torch.rand(args.batch_size, *image_shape, device=device)
    y = torch.randint(0, classes, (args.batch_size,), device=device)
    models, configs = {}, []
    for name, (algo, extra) in VARIANTS.items():
        torch.manual_seed(0)
        cfg = resolve_config(preset, {**over, **extra, "algo": algo})
        if cfg in configs:   # e.g. ff-all-trained where the preset trains layer 1 already: the same step as ff
            continue
        configs.append(cfg)
        models[name] = (FFNet if algo == "ff" else BPNet)(cfg, image_shape, classes).to(device)
        if args.ab_pool and name in ("ff+linear", "bp"):
            torch.manual_seed(0)
            model = (FFNet if algo == "ff" else BPNet)(cfg, image_shape, classes).to(device)
            models[name + " torch-pool"] = with_torch_pool(model)
    rows = time_interleaved(models, x, y, args.steps, args.warmup, device)
    bp, bp_cpu = rows["bp"]["s_per_step"], rows["bp"]["cpu_s_per_step"]
    for r in rows.values():
        r["images_per_s"] = args.batch_size / r["s_per_step"]
        r["time_vs_bp"] = r["s_per_step"] / bp
        r["cpu_time_vs_bp"] = r["cpu_s_per_step"] / bp_cpu
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", action="append", help="repeatable; default paper-mnist")
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--steps", type=int, default=10, help="timed rounds (one step of every variant each)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--filters", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--ab-pool", action="store_true",
                    help="also time ff+linear and bp with the cfse block's former pooling (torch's max_pool2d after the ReLU)")
    ap.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    result = {"batch_size": args.batch_size, "steps": args.steps, "warmup": args.warmup,
              "environment": environment(device), "presets": {}}
    for preset in args.preset or ["paper-mnist"]:
        rows = preset_rows(preset, args, device)
        result["presets"][preset] = rows
        print(f"{preset}, batch {args.batch_size}")
        print(f"  {'variant':20s} {'s/step':>8s} {'min':>8s} {'img/s':>8s} {'x BP':>6s} {'CPU s':>8s} {'x BP':>6s} "
              f"{'peak MiB':>9s}")
        for name, r in rows.items():
            peak = f"{r['peak_bytes'] / 2**20:9.1f}" if device.type == "cuda" else f"{'-':>9s}"  # CUDA only
            print(f"  {name:20s} {r['s_per_step']:8.4f} {r['s_min']:8.4f} {r['images_per_s']:8.1f} "
                  f"{r['time_vs_bp']:6.2f} {r['cpu_s_per_step']:8.4f} {r['cpu_time_vs_bp']:6.2f} {peak}", flush=True)
    print(json.dumps(result))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
