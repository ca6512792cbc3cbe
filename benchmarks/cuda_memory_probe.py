"""Where the CUDA memory model falls short: the same FF and BP steps measured with cuDNN on (as trained)
and off (PyTorch's native convolutions, no cuDNN workspace), against the model.

    python benchmarks/cuda_memory_probe.py --depths 3,6 --batch 50
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

SHAPE, CLASSES = (1, 28, 28), 10


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depths", default="3,6")
    ap.add_argument("--batch", type=int, default=50)
    args = ap.parse_args()
    device = torch.device("cuda")
    rows = []
    for depth in (int(d) for d in args.depths.split(",")):
        for algo in ("ff", "bp"):
            cfg = resolve_config("paper-mnist", {"layers": depth, "algo": algo, "readout": "goodness"})
            specs = layer_specs(cfg, SHAPE)
            est = (ff_memory(specs, args.batch, num_classes=CLASSES, readout_from=cfg.readout_from,
                             goodness=cfg.goodness) if algo == "ff"
                   else bp_memory(specs, args.batch, num_classes=CLASSES)).peak_bytes
            row = {"depth": depth, "algo": algo, "model": est}
            for cudnn in (True, False):
                torch.backends.cudnn.enabled = cudnn
                torch.manual_seed(0)
                x = torch.rand(args.batch, *SHAPE, device=device)
                y = torch.randint(0, CLASSES, (args.batch,), device=device)
                cls = FFNet if algo == "ff" else BPNet
                _, measured = step_peak_bytes(lambda cls=cls, cfg=cfg: cls(cfg, SHAPE, CLASSES).to(device), x, y)
                row["cudnn_on" if cudnn else "cudnn_off"] = measured
            torch.backends.cudnn.enabled = True
            rows.append(row)
            print(f"depth {depth} {algo}: model {est / 2**20:.1f} MiB, measured {row['cudnn_on'] / 2**20:.1f} MiB "
                  f"with cuDNN ({est / row['cudnn_on']:.2f}), {row['cudnn_off'] / 2**20:.1f} MiB without "
                  f"({est / row['cudnn_off']:.2f})")
    print(json.dumps({"batch": args.batch, "rows": rows}))


if __name__ == "__main__":
    main()
