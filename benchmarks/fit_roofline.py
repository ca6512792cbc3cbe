"""Fit the int8 roofline ceilings of cortex-m7 and h100 to their fit-set measurements, and print them.

    python benchmarks/fit_roofline.py

cortex-m7 (ST's MLPerf Tiny v1.2 throughputs): each ceiling (MACs per cycle of one kernel kind) is solved by bisection so that the profiler's roofline
latency equals one benchmark's measured latency (1 / throughput): conv on IC, pointwise and depthwise
(tied: one ceiling for MobileNet-style separable layers) on VWW, linear on AD; IC's few pointwise MACs
and VWW's first conv couple the first two, so the solves are repeated until they settle. KWS is not
used: it is the held-out row of this stack. The per-layer overhead, the elementwise ceiling and the
memory ceilings stay as the profile states them (assumed or modelled, not fitted). The printed values
are what hw_profiles/cortex-m7.toml holds, each with basis = "fitted" and its fit_set.

h100 (NVIDIA's MLPerf Inference v4.0 x1 Offline ResNet-50, batch 2048): one ceiling for conv and
pointwise (TensorRT's int8 implicit-GEMM convs), solved the same way; the x8 Offline run is held out.
"""
from __future__ import annotations

import tomllib

from silicon import DATA, _metric, spec_from_layers

from ffneuro.profiler import load_profile, profile_from_dict, profile_graph

FITS = {  # target -> (batch, ((kernel kinds solved together, the measurement they are solved on), ...))
    "cortex-m7": (1, ((("conv",), "cortexm7-mlperftiny-ic"),
                      (("pointwise", "depthwise"), "cortexm7-mlperftiny-vww"),
                      (("linear",), "cortexm7-mlperftiny-ad"))),
    "h100": (2048, ((("conv", "pointwise"), "h100-resnet50-mlperf-x1"),)),
}
METRIC = {"cortex-m7": "latency", "h100": "time_per_inference_at_throughput"}


def _latency(d: dict, spec, batch: int) -> float:
    return profile_graph(spec, profile_from_dict(d, "fit"), precision="int8", batch=batch)["infer"].latency_s


def fit(target: str) -> dict[str, float]:
    data = tomllib.loads(DATA.read_text())
    records = {m["id"]: m for m in data["measurement"]}
    d = load_profile(target).to_dict()
    batch, fits = FITS[target]
    out = {}
    for kinds, rid in fits * 4:   # Gauss-Seidel: four sweeps settle to 4 digits
        spec = spec_from_layers(data["networks"][records[rid]["network"]["key"]])
        measured = _metric(records[rid], METRIC[target])
        lo, hi = 0.01, 1e7
        for _ in range(60):   # latency falls as the ceiling rises: bisect on it
            mid = (lo * hi) ** 0.5
            for k in kinds:
                d["roofline"]["int8"][k]["macs_per_cycle"]["value"] = mid
            lo, hi = (mid, hi) if _latency(d, spec, batch) > measured else (lo, mid)
        for k in kinds:
            out[k] = float(f"{lo:.5g}")
            d["roofline"]["int8"][k]["macs_per_cycle"]["value"] = out[k]
    return out


if __name__ == "__main__":
    for name in FITS:
        for kind, v in fit(name).items():
            print(f"{name}: roofline.int8.{kind}.macs_per_cycle = {v:g}")
