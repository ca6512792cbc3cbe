"""Every number the accounting, the memory model and the profiler give for every preset, as one JSON
document: run it before and after a refactor and diff the two (``--out``), to show what changed.

    python benchmarks/preset_numbers.py --out before.json    # on the old commit
    python benchmarks/preset_numbers.py --out after.json
    python benchmarks/preset_numbers.py --diff before.json after.json
"""
from __future__ import annotations

import argparse
import json
import math
import sys

from ffneuro.accounting import (
    bp_memory,
    bp_training_costs,
    ff_memory,
    ff_training_costs,
    inference_costs,
    unit_cost,
)
from ffneuro.accounting.objective import objective_cost
from ffneuro.data import dataset_shape
from ffneuro.presets import PRESETS, resolve_config
from ffneuro.profiler import profile_config, shipped_profiles

try:   # the block plugins (after issue 15); before, the specs came from the accounting
    from ffneuro.blocks import layer_specs
except ImportError:  # pragma: no cover - the old layout, for the "before" run
    from ffneuro.accounting import layer_specs


def _memory(fn, *args, **kw):
    try:
        return fn(*args, **kw).peak_bytes
    except Exception as exc:   # noqa: BLE001 - record what a model cannot do, as text
        return f"{type(exc).__name__}: {exc}"


def numbers(preset: str) -> dict:
    cfg = resolve_config(preset, {})
    shape, classes = dataset_shape(cfg.dataset)
    ff = layer_specs(cfg, shape, algo="ff", num_classes=classes)
    bp = layer_specs(cfg, shape, algo="bp", num_classes=classes)
    obj = objective_cost(cfg, classes)
    linear = cfg.readout in ("linear", "both")
    out = {"units": [unit_cost(s, cfg.precision, ff_passes=2 if obj.pairs else 1).as_dict() for s in ff],
           "ff_train": ff_training_costs(ff, num_classes=classes, batch=8, linear_readout=linear,
                                         readout_from=cfg.readout_from, objective=obj).to_dict()["total"],
           "bp_train": bp_training_costs(bp, num_classes=classes, batch=8).to_dict()["total"],
           "infer": {r: inference_costs(ff, readout=r, num_classes=classes, batch=8, readout_from=cfg.readout_from,
                                        objective=obj).to_dict()["total"] for r in ("goodness", "linear")},
           "memory": {}}
    for backend, block in (("cuda", None), ("cpu", 8), ("cpu", 16)):
        key = backend if block is None else f"{backend}{block}"
        kw = {"backend": backend} if block is None else {"backend": backend, "onednn_block": block}
        out["memory"][f"ff_{key}"] = _memory(ff_memory, ff, 8, num_classes=classes, linear_readout=linear,
                                             readout_from=cfg.readout_from, objective=obj, **kw)
        out["memory"][f"bp_{key}"] = _memory(bp_memory, bp, 8, num_classes=classes, **kw)
    out["memory"]["ff_minimal"] = _memory(ff_memory, ff, 8, num_classes=classes, scheme="minimal", objective=obj)
    out["memory"]["bp_minimal"] = _memory(bp_memory, bp, 8, num_classes=classes, scheme="minimal")
    out["profile"] = {hw: profile_config(cfg, shape, classes, hw).to_dict() for hw in shipped_profiles()}
    return out


def _diff(a, b, path="") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _diff(a.get(k), b.get(k), f"{path}/{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _diff(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float) and math.isclose(a, b, rel_tol=1e-12, abs_tol=0):
        return []
    return [] if a == b else [f"{path}: {a!r} -> {b!r}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out")
    ap.add_argument("--diff", nargs=2)
    args = ap.parse_args()
    if args.diff:
        a, b = (json.load(open(f)) for f in args.diff)
        lines = _diff(a, b)
        print("\n".join(lines) or "identical")
        print(f"{len(lines)} differences", file=sys.stderr)
        return
    doc = {name: numbers(name) for name in PRESETS.names()}
    text = json.dumps(doc, indent=1, sort_keys=True, default=str)
    if args.out:
        open(args.out, "w").write(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
