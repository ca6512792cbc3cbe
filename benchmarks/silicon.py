"""Predicted against measured: published measurements on real chips, rebuilt as layer-spec graphs.

    python benchmarks/silicon.py [--data benchmarks/data/silicon_measurements.toml] [--json]

The measurements (with what each includes, its source and how it was read) are in
``benchmarks/data/silicon_measurements.toml``, collected for issue 9. Each case below profiles the
measured network with the shipped hardware profile and prints predicted / measured for energy per
inference, latency and cores. Nothing here is fitted: where the measured part differs from the
profile in a specified fact (the MLPerf Tiny board's Cortex-M7 runs at 280 MHz, the profile at 480
MHz), only that fact and the numbers the profile itself derives from it are changed, and the case
says so. Activity (spikes per neuron per timestep) is not reported by any of the SNN sources, so the
profiler's default (0.1) is used and stated. The results and what they say are in BENCHMARKS.md
section 11 and docs/hw-profiles.md.
"""
from __future__ import annotations

import argparse
import json
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ffneuro.profiler import (
    DEFAULT_ACTIVITY,
    HardwareProfile,
    load_profile,
    profile_from_dict,
    profile_graph,
)
from ffneuro.spec import (
    Activation,
    Conv2d,
    Flatten,
    Linear,
    NetSpec,
    Neuron,
    Pool2d,
    Unit,
)

DATA = Path(__file__).with_name("data") / "silicon_measurements.toml"
ACTIVATIONS = {"relu": lambda s: Activation(s, "relu"), "lif": lambda s: Neuron(s, "lif"),
               "if": lambda s: Neuron(s, "if"), "neuron": lambda s: Neuron(s, "lif"),
               "neuron_readout": lambda s: Neuron(s, "li")}   # none/readout/softmax: no neuron node


def spec_from_layers(net: dict) -> NetSpec:
    """A NetSpec from the measurement file's layer list (conv2d, linear, pools, flatten, residual adds)."""
    units: list[Unit] = []
    pending: dict[str, list] = {}          # unit name -> its nodes while being built
    owner: dict[str, str] = {"input": "input"}   # layer name -> the unit whose output it is
    sources: dict[str, str] = {}
    order: list[str] = []

    for layer in net["layers"]:
        op = layer["op"]
        src = layer.get("input") or (layer.get("inputs") or [None])[-1]
        if op in ("conv2d", "linear"):
            if op == "conv2d":
                t, b, left, r = layer["pad"]
                node = Conv2d(tuple(layer["in_shape"]), layer["out_channels"], tuple(layer["kernel"]),
                              tuple(layer["stride"]), (t, b, left, r), 1, layer["groups"], True)
            else:
                node = Linear((layer["in_features"],), layer["out_features"], True)
            nodes = [node]
            act = ACTIVATIONS.get(layer.get("activation", "none"))
            if act is not None:
                nodes.append(act(node.out_shape))
            pending[layer["name"]] = nodes
            sources[layer["name"]] = owner[src]
            owner[layer["name"]] = layer["name"]
            order.append(layer["name"])
        elif op == "add":   # merge of two branches: its output is the later branch's unit's (shapes equal)
            unit = owner[layer["inputs"][-1]]
            act = ACTIVATIONS.get(layer.get("activation", "none"))
            if act is not None:
                pending[unit].append(act(pending[unit][-1].out_shape))
            owner[layer["name"]] = unit
        else:               # pooling or flatten: appended to the unit that produces its input
            unit = owner[src]
            if unit == "input":
                raise ValueError(f"{net['name']}: a {op} on the input is not supported here")
            shape = pending[unit][-1].out_shape
            if op == "flatten":
                pending[unit].append(Flatten(shape))
            else:
                pad = layer.get("pad", [0, 0, 0, 0])
                pending[unit].append(Pool2d(shape, op.removesuffix("pool2d"), tuple(layer["kernel"]),
                                            tuple(layer["stride"]), (pad[0], pad[2])))
            owner[layer["name"]] = unit
    previous = "input"
    for name in order:
        src = sources[name]
        units.append(Unit(name, tuple(pending[name]), True, "" if src == previous else src))
        previous = name
    return NetSpec(tuple(net["input_shape"]), tuple(units), net["name"])


def at_clock(hw: HardwareProfile, mhz: float) -> HardwareProfile:
    """``hw`` with its core clock at ``mhz`` and what the profile derives from the clock (peak rates, and
    all-in MAC energies = power.typical / rate) rederived: the measured part's specified clock, nothing fitted."""
    d = hw.to_dict()
    old = d["clock"]["core"]["value_si"] / 1e6
    scale = mhz / old
    d["clock"]["core"].update(value=mhz, unit="MHz", note=f"the measured part's clock (profile: {old:g} MHz)")
    power = hw.power.typical.value_si if hw.power and hw.power.typical else None
    for c in d["compute"].values():
        if "peak_rate" in c:
            c["peak_rate"]["value"] = c["peak_rate"]["value"] * scale
        if power is not None and c["scope"] == "all_in" and "peak_rate" in c:
            rate = c["peak_rate"]["value_si"] * scale / 2     # MAC/s
            c["mac"].update(value=power / rate * 1e12, unit="pJ")
    return profile_from_dict(d, origin=f"{hw.name} at {mhz:g} MHz")


@dataclass
class Case:
    """One measurement to rebuild: which record, on what profile, at what precision and timesteps,
    and which of the prediction's numbers stands for each measured metric."""

    record: str
    target: str
    precision: str = "int8"
    timesteps: int = 1
    activity: float | None = None
    input_activity: float | None = None   # the first layer's input events per element (None: dense analog)
    batch: int = 1
    clock_mhz: float | None = None
    energy: str | None = None      # measured metric compared with the predicted total (or dynamic) energy
    dynamic: bool = False          # compare the predicted energy without static power
    latency: str | None = None
    latency_per: float = 1.0       # measured latency covers this many samples' worth of time
    cores: str | None = None
    cores_exclude: dict = field(default_factory=dict)   # per-layer cores of the measurement the spec does not have
    why: str = ""
    input_encoder: bool = False    # the input is encoded on chip by neurons with cores of their own
    stack: str | None = None       # the profile's software stack (per-timestep and per-inference costs)
    input_cores: int = 1           # cores the host injects input spikes into (a fact of the measured run)
    compartments: int = 1          # compartments per neuron (NxTF's soft reset: 2; a fact of the measured run)


CASES = [
    Case("cortexm7-mlperftiny-ic", "cortex-m7", clock_mhz=280, energy="energy_per_inference", latency="latency"),
    Case("cortexm7-mlperftiny-kws", "cortex-m7", clock_mhz=280, energy="energy_per_inference", latency="latency"),
    Case("cortexm7-mlperftiny-vww", "cortex-m7", clock_mhz=280, energy="energy_per_inference", latency="latency"),
    Case("cortexm7-mlperftiny-ad", "cortex-m7", clock_mhz=280, energy="energy_per_inference", latency="latency"),
    # the spiking cases' first layers take spikes (PilotNet's from its on-chip input LIF layer, the others
    # injected by the host), at the profiler's default rate: no published rate exists for them
    Case("loihi2-pilotnet-lif", "loihi2", timesteps=16, input_activity=DEFAULT_ACTIVITY, energy="energy_per_inference",
         latency="throughput", cores="cores", input_encoder=True),
    Case("loihi-kws-blouw2019", "loihi", timesteps=10, input_activity=DEFAULT_ACTIVITY,
         energy="dynamic_energy_per_inference", dynamic=True, latency="throughput", stack="nengo-loihi", input_cores=2),
    *(Case(f"loihi-kws-scaling-{n}x10", "loihi", timesteps=10, input_activity=DEFAULT_ACTIVITY,
           energy="dynamic_energy_per_inference", dynamic=True, latency="latency", stack="nengo-loihi", input_cores=8)
      for n in (0, 1, 2, 4, 6, 8, 10)),
    Case("loihi-slayer-ntidigits", "loihi", timesteps=3000, input_activity=DEFAULT_ACTIVITY,
         energy="dynamic_energy_per_inference", dynamic=True, latency="latency", cores="cores", input_encoder=True,
         stack="nxtf"),
    Case("loihi-nxtf-mnist", "loihi", timesteps=512, input_activity=DEFAULT_ACTIVITY, latency="latency_with_management",
         stack="nxtf"),
    Case("loihi-nxtf-cifar", "loihi", timesteps=512, input_activity=DEFAULT_ACTIVITY, latency="latency", cores="cores",
         stack="nxtf", compartments=2),
    Case("h100-resnet50-mlperf-x1", "h100", latency="time_per_inference_at_throughput"),
    Case("h100-resnet50-mlperf-dgx-maxq-power", "h100", energy="energy_per_inference_system"),
]


def _metric(record: dict, name: str) -> float | None:
    for m in record["measured"]:
        if m["metric"] == name and not isinstance(m["value"], list):
            return float(m["value"])
    return None


def evaluate(case: Case, record: dict, networks: dict) -> dict:
    hw = load_profile(case.target)
    if case.clock_mhz is not None:
        hw = at_clock(hw, case.clock_mhz)
    key = record["network"]["key"]
    spec = spec_from_layers(networks[key])
    rep = profile_graph(spec, hw, timesteps=case.timesteps, activity=case.activity, input_activity=case.input_activity,
                        precision=case.precision, batch=case.batch, input_encoder=case.input_encoder, stack=case.stack,
                        input_cores=case.input_cores, compartments_per_neuron=case.compartments)
    est = rep["infer"]
    rows = []
    if case.energy:
        measured = _metric(record, case.energy)
        lo, hi = est.energy_range
        pred = est.energy_j
        if case.dynamic:   # leave out static power, at each end of the range too
            pred, lo, hi = pred - est.energy.static_j, lo - est.static_range[0], hi - est.static_range[1]
        rows.append({"metric": "energy per inference" + (" (dynamic)" if case.dynamic else ""), "predicted": pred,
                     "low": lo, "high": hi, "measured": measured, "unit": "J"})
    if case.latency:
        measured = _metric(record, case.latency)
        if case.latency == "throughput":
            measured = 1.0 / measured
        lo, hi = est.latency_range or (None, None)
        rows.append({"metric": "latency per inference", "predicted": est.latency_s, "low": lo, "high": hi,
                     "measured": measured, "unit": "s"})
    if case.cores:
        measured = _metric(record, case.cores) - sum(case.cores_exclude.values())
        rows.append({"metric": "cores" + (" (without " + ", ".join(case.cores_exclude) + ")" if case.cores_exclude else ""),
                     "predicted": est.cores_needed, "low": None, "high": None, "measured": measured, "unit": ""})
    fitted_by = " ".join(record.get("fitted_by", []))
    for r, metric in zip(rows, [m for m in (case.energy, case.latency, case.cores) if m], strict=True):
        r["ratio"] = None if not r["measured"] or r["predicted"] is None else r["predicted"] / r["measured"]
        r["within_0.5_2"] = None if r["ratio"] is None else 0.5 <= r["ratio"] <= 2.0
        # a profile constant was fitted to this row (the record's fitted_by names the metric): not a validation
        r["fitted"] = f"({r['metric'].split()[0]}" in fitted_by or f"({metric})" in fitted_by
    published = next((m["value"] for m in record["measured"] if m["metric"] == "cores_per_layer"), None)
    per_layer = None if published is None else \
        {u.unit: [u.cores, published.get(u.unit)] for u in est.per_unit}
    src = record["source"]
    return {"record": case.record, "target": case.target + (f" at {case.clock_mhz:g} MHz" if case.clock_mhz else ""),
            "network": key, "macs": est.macs, "synops": est.synops, "timesteps": case.timesteps,
            "activity": case.activity if case.activity is not None else (DEFAULT_ACTIVITY if any(u.spiking for u in spec.units) else 1.0),
            "includes": record["includes"], "source": f"{src.get('authors')}, {src.get('title')}, {src.get('year')}",
            "url": src.get("url", ""), "rows": rows, "cores_per_layer": per_layer}


def fmt(v, unit: str) -> str:
    from ffneuro.profiler import format_si

    if v is None:
        return "-"
    return format_si(v, unit) if unit else f"{v:g}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    data = tomllib.loads(args.data.read_text())
    records = {m["id"]: m for m in data["measurement"]}
    results = [evaluate(c, records[c.record], data["networks"]) for c in CASES]
    if args.json:
        json.dump(results, sys.stdout, indent=1, default=str)
        print()
        return 0
    print(f"{'measurement':38s} {'target':22s} {'metric':44s} {'predicted [range]':34s} {'measured':>10s} {'ratio':>6s}")
    for res in results:
        for r in res["rows"]:
            rng = "" if r["low"] is None else f" [{fmt(r['low'], r['unit'])}–{fmt(r['high'], r['unit'])}]"
            ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
            flag = "" if r["within_0.5_2"] in (None, True) else "  outside [0.5, 2]"
            flag += "  (fitted to this row)" if r.get("fitted") else ""
            print(f"{res['record']:38s} {res['target']:22s} {r['metric']:44s} {fmt(r['predicted'], r['unit']) + rng:34s} "
                  f"{fmt(r['measured'], r['unit']):>10s} {ratio:>6s}{flag}")
    for res in results:
        if res["cores_per_layer"]:
            print(f"\ncores per layer, {res['record']} (predicted / compiler's): " + ", ".join(
                f"{unit} {p}/{'-' if c is None else c}" for unit, (p, c) in res["cores_per_layer"].items()))
    print("\nwhat each measurement includes, and its source:")
    for res in results:
        inc = res["includes"]
        print(f"- {res['record']}: {res['network']}, {res['timesteps']} timestep(s), activity {res['activity']:g}; "
              f"energy: {inc.get('energy_scope', '-')}; hardware: {inc.get('hardware_scope', '-')}; "
              f"source: {res['source']} ({res['url']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
