"""Fit the cortex-m7 profile's int8 roofline ceilings to ST's MLPerf Tiny v1.2 throughputs, and print them.

    python benchmarks/fit_cortex_m7.py

Each ceiling (MACs per cycle of one kernel kind) is solved by bisection so that the profiler's roofline
latency equals one benchmark's measured latency (1 / throughput): conv on IC, pointwise and depthwise
(tied: one ceiling for MobileNet-style separable layers) on VWW, linear on AD; IC's few pointwise MACs
and VWW's first conv couple the first two, so the solves are repeated until they settle. KWS is not
used: it is the held-out row of this stack. The per-layer overhead, the elementwise ceiling and the
memory ceilings stay as the profile states them (assumed or modelled, not fitted). The printed values
are what hw_profiles/cortex-m7.toml holds, each with basis = "fitted" and its fit_set.
"""
from __future__ import annotations

import tomllib

from silicon import DATA, _metric, spec_from_layers

from ffneuro.profiler import load_profile, profile_from_dict, profile_graph

FITS = (  # (kernel kinds solved together, the measurement they are solved on)
    (("conv",), "cortexm7-mlperftiny-ic"),
    (("pointwise", "depthwise"), "cortexm7-mlperftiny-vww"),
    (("linear",), "cortexm7-mlperftiny-ad"),
)


def _latency(d: dict, spec) -> float:
    return profile_graph(spec, profile_from_dict(d, "fit"), precision="int8")["infer"].latency_s


def fit() -> dict[str, float]:
    data = tomllib.loads(DATA.read_text())
    records = {m["id"]: m for m in data["measurement"]}
    d = load_profile("cortex-m7").to_dict()
    out = {}
    for kinds, rid in FITS * 4:   # Gauss-Seidel: four sweeps settle to 4 digits
        spec = spec_from_layers(data["networks"][records[rid]["network"]["key"]])
        target = _metric(records[rid], "latency")
        lo, hi = 0.01, 16.0
        for _ in range(60):   # latency falls as the ceiling rises: bisect on it
            mid = (lo * hi) ** 0.5
            for k in kinds:
                d["roofline"]["int8"][k]["macs_per_cycle"]["value"] = mid
            lo, hi = (mid, hi) if _latency(d, spec) > target else (lo, mid)
        for k in kinds:
            out[k] = round(lo, 4)
            d["roofline"]["int8"][k]["macs_per_cycle"]["value"] = out[k]
    return out


if __name__ == "__main__":
    for kind, v in fit().items():
        print(f"roofline.int8.{kind}.macs_per_cycle = {v}")
