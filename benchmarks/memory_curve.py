"""Peak training memory of FF vs BP for the paper's MNIST network at several depths: the analytic
model (ffneuro.accounting) and, with --measure, what one real training step allocates.

    python benchmarks/memory_curve.py --depths 3,6,12 --batch 50 [--measure] [--device cuda]

On CUDA the measurement is torch.cuda.max_memory_allocated; on CPU the profiler's allocator events
(compare with the model's backend="cpu", which adds oneDNN's weight-gradient copies).
"""
from __future__ import annotations

import argparse
import json

import torch

from ffneuro.accounting import bp_memory, ff_memory
from ffneuro.blocks import layer_specs
from ffneuro.models import BPNet, FFNet
from ffneuro.presets import resolve_config
from ffneuro.profiler.measure import step_peak_bytes
from ffneuro.train import pick_device

SHAPE, CLASSES = (1, 28, 28), 10


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="paper-mnist")
    ap.add_argument("--depths", default="3,6,12")
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--readout", default="goodness", help="goodness: the pure FF step; both: with the linear readout")
    ap.add_argument("--measure", action="store_true", help="also measure one real step per network")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    device = pick_device(args.device)
    backend = "cuda" if device.type == "cuda" else "cpu"
    rows = []
    for depth in (int(d) for d in args.depths.split(",")):
        row = {"depth": depth, "batch": args.batch}
        for algo in ("ff", "bp"):
            cfg = resolve_config(args.preset, {"layers": depth, "algo": algo, "readout": args.readout})
            specs = layer_specs(cfg, SHAPE)
            if algo == "ff":
                est = ff_memory(specs, args.batch, num_classes=CLASSES, linear_readout=args.readout == "both",
                                readout_from=cfg.readout_from, goodness=cfg.goodness, backend=backend).peak_bytes
            else:
                est = bp_memory(specs, args.batch, num_classes=CLASSES, backend=backend).peak_bytes
            row[f"{algo}_model_bytes"] = est
            if args.measure:
                torch.manual_seed(0)
                x = torch.rand(args.batch, *SHAPE, device=device)
                y = torch.randint(0, CLASSES, (args.batch,), device=device)
                cls = FFNet if algo == "ff" else BPNet
                _, measured = step_peak_bytes(lambda cls=cls, cfg=cfg: cls(cfg, SHAPE, CLASSES).to(device), x, y)
                row[f"{algo}_measured_bytes"] = measured
                row[f"{algo}_model_over_measured"] = est / measured
        rows.append(row)
    mib = 2 ** 20
    print(f"{'depth':>5s} {'FF model':>10s} {'BP model':>10s} {'FF/BP':>6s}"
          + (f" {'FF meas.':>10s} {'BP meas.':>10s} {'FF/BP':>6s} {'FF mod/meas':>11s} {'BP mod/meas':>11s}" if args.measure else ""))
    for r in rows:
        line = f"{r['depth']:5d} {r['ff_model_bytes'] / mib:9.1f}M {r['bp_model_bytes'] / mib:9.1f}M " \
               f"{r['ff_model_bytes'] / r['bp_model_bytes']:6.2f}"
        if args.measure:
            line += f" {r['ff_measured_bytes'] / mib:9.1f}M {r['bp_measured_bytes'] / mib:9.1f}M " \
                    f"{r['ff_measured_bytes'] / r['bp_measured_bytes']:6.2f} {r['ff_model_over_measured']:11.3f} " \
                    f"{r['bp_model_over_measured']:11.3f}"
        print(line)
    print(json.dumps({"preset": args.preset, "device": str(device), "backend": backend, "rows": rows}))


if __name__ == "__main__":
    main()
