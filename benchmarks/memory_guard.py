"""The memory guard's estimate against the peak RSS growth of real training, on CPU.

    python benchmarks/memory_guard.py --preset mnist-small --data-dir ../shared/datasets [--set batch_size=2000 ...] [--tensors]

Loads the data as ``ffneuro train`` does, notes the process's RSS where the guard runs (just before
the Trainer is built), resets the peak (``/proc/self/clear_refs``), then builds the Trainer and runs
one epoch on ``--train-limit`` images, the validation and train-accuracy evaluations, and the activity
pass. Prints the guard's estimate (without its margins), the peak RSS growth, their ratio, and what
the guard asks to be free (with its margins). Linux only. With ``--tensors``, the same phases run under
``torch.profiler`` instead and the peak of live tensor bytes of each is compared with the model's
(training step; evaluation or activity pass, whichever is larger).
"""
from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import torch

from ffneuro.data import load_dataset
from ffneuro.presets import resolve_config
from ffneuro.profiler.measure import span_peak_bytes
from ffneuro.train import Trainer
from ffneuro.train.memory_guard import MARGIN, MARGIN_BYTES, estimate_memory
from ffneuro.train.trainer import _Silent


def _status(key: str) -> int:
    """VmRSS or VmHWM of this process, in bytes."""
    return int(re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE).group(1)) * 1024


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _phases(trainer: Trainer) -> dict:
    return {"train": lambda: trainer._train_epoch(0, _Silent()), "eval": lambda: trainer.evaluate(trainer.val),
            "eval train": lambda: trainer.evaluate(trainer.train, limit=1000),
            "activity": lambda: trainer.activity(trainer.val)}


def _tensor_peaks(config, data) -> dict[str, int]:
    """Peak live tensor bytes per phase, from the allocator events (recorded from before the Trainer)."""
    from torch.profiler import ProfilerActivity, profile, record_function

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        trainer = Trainer(config, data)
        for name, run in _phases(trainer).items():
            with record_function(name):
                run()
    return {name: span_peak_bytes(prof, name) for name in _phases(trainer)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="mnist-small")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--train-limit", type=int, default=2000)
    ap.add_argument("--val-size", type=int, default=1000)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    ap.add_argument("--tensors", action="store_true", help="compare the phases' tensor peaks instead of RSS")
    args = ap.parse_args()
    overrides = dict(s.split("=", 1) for s in args.set)
    overrides = {k: _value(v) for k, v in overrides.items()}
    overrides.update(train_limit=args.train_limit, val_size=args.val_size, epochs=1, device="cpu")
    config = resolve_config(args.preset, overrides)
    data = load_dataset(config.dataset, args.data_dir)
    val = config.val_size
    train = min(len(data.x_train) - val, config.train_limit or len(data.x_train))
    need = estimate_memory(config, data.image_shape, data.num_classes, train_images=train, val_images=val,
                           test_images=len(data.x_test), device=torch.device("cpu"))
    mib = 2**20
    if args.tensors:
        peaks = _tensor_peaks(config, data)
        held = max(peaks["eval"], peaks["eval train"], peaks["activity"])
        print(f"tensor peaks: training step {peaks['train'] / mib:.1f} MiB (model {need.train_step / mib:.1f}); "
              f"evaluation {max(peaks['eval'], peaks['eval train']) / mib:.1f}, activity {peaks['activity'] / mib:.1f}"
              f" (model, the larger: {need.evaluation / mib:.1f})")
        print(json.dumps({"preset": args.preset, "overrides": overrides, "tensor_peak_bytes": peaks,
                          "train_step_bytes": need.train_step, "evaluation_bytes": need.evaluation,
                          "evaluation_over_model": round(held / need.evaluation, 3)}))
        return
    base = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    t0 = time.perf_counter()
    for run in _phases(Trainer(config, data)).values():
        run()
    grown = _status("VmHWM") - base
    guarded = int(need.peak * (1 + MARGIN)) + MARGIN_BYTES
    row = {"preset": args.preset, "overrides": overrides, "estimate_bytes": need.peak,
           "train_step_bytes": need.train_step, "evaluation_bytes": need.evaluation, "rss_growth_bytes": grown,
           "growth_over_estimate": round(grown / need.peak, 3), "need_with_margins_bytes": guarded,
           "growth_over_need": round(grown / guarded, 3), "seconds": round(time.perf_counter() - t0, 1)}
    print(f"estimate {need.peak / mib:.1f} MiB (train step {need.train_step / mib:.1f}, evaluation "
          f"{need.evaluation / mib:.1f}); peak RSS growth {grown / mib:.1f} MiB = {grown / need.peak:.3f} x the "
          f"estimate; with the margins the guard asks for {guarded / mib:.1f} MiB ({grown / guarded:.3f} used)")
    print(json.dumps(row))


if __name__ == "__main__":
    main()
