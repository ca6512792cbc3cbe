"""Predicted against measured: published measurements on real chips, rebuilt as layer-spec graphs.

    python benchmarks/silicon.py [--data benchmarks/data/silicon_measurements.toml] [--json]

The measurements (with what each includes, its source and how it was read) are in
``benchmarks/data/silicon_measurements.toml``, collected for issue 9. Each case below profiles the
measured network with the shipped hardware profile and prints predicted / measured for energy per
inference, latency and cores. Nothing here is fitted; a profile's own fitted constants (basis
"fitted") name their fit sets, and rows of those measurements are marked "[fit set]" (not held out).
Where the measured part differs from the profile in a specified fact (a clock), the profile runs at
that operating point (``--hw NAME@CLOCK``: what it derives from the clock and voltage rederived), and
the case says so. Activity (spikes per neuron per timestep) is not reported by any of the SNN sources, so the
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
    profile_graph,
)
from ffneuro.profiler.hardware import at_clock as _at_clock
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
    """``hw`` at the measured part's clock: the profiler's operating point (``--hw NAME@CLOCK``), which
    rederives peak rates, voltage and supply power (dynamic ∝ f·V², static ∝ V) from the clock; nothing fitted."""
    return _at_clock(hw, mhz * 1e6)


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


CASES = [
    Case("cortexm7-mlperftiny-ic", "cortex-m7", clock_mhz=280, energy="energy_per_inference", latency="latency"),
    Case("cortexm7-mlperftiny-kws", "cortex-m7", clock_mhz=280, energy="energy_per_inference", latency="latency"),
    Case("cortexm7-mlperftiny-vww", "cortex-m7", clock_mhz=280, energy="energy_per_inference", latency="latency"),
    Case("cortexm7-mlperftiny-ad", "cortex-m7", clock_mhz=280, energy="energy_per_inference", latency="latency"),
    # the spiking cases' first layers take spikes (PilotNet's from its on-chip input LIF layer, the others
    # injected by the host), at the profiler's default rate: no published rate exists for them
    Case("loihi2-pilotnet-lif", "loihi2", timesteps=16, input_activity=DEFAULT_ACTIVITY, energy="energy_per_inference",
         latency="throughput", cores="cores", cores_exclude={"input layer (LIF encoding of the image, no synapses)": 13}),
    Case("loihi-kws-blouw2019", "loihi", timesteps=10, input_activity=DEFAULT_ACTIVITY,
         energy="dynamic_energy_per_inference", dynamic=True, latency="throughput"),
    Case("loihi-nxtf-mnist", "loihi", timesteps=512, input_activity=DEFAULT_ACTIVITY, latency="latency"),
    Case("loihi-nxtf-cifar", "loihi", timesteps=512, input_activity=DEFAULT_ACTIVITY, latency="latency", cores="cores"),
    # batch 2048: NVIDIA's resnet50 Offline config for H100_SXM_80GBx1. The DGX MaxQ wall-power row is
    # dropped (a whole 8-GPU server at the wall against one GPU; the record's dropped_because says why)
    Case("h100-resnet50-mlperf-x1", "h100", batch=2048, latency="time_per_inference_at_throughput"),
    Case("h100-resnet50-mlperf-x8-offline", "h100", batch=2048, latency="time_per_inference_at_throughput_per_gpu"),
]
# the other stacks and rounds of MLPerf Tiny on the same STM32H7A3 board (held out from the cortex-m7 fit)
CASES += [Case(f"cortexm7-mlperftiny-{bench}-{stack}", "cortex-m7", clock_mhz=280,
               energy="energy_per_inference" if energy else None, latency="latency")
          for stack, energy, benches in (
              ("st-v0.7", True, "ic kws vww ad"), ("st-v1.0", True, "ic kws vww ad"), ("st-v1.1", True, "ic kws vww ad"),
              ("krai-xcubeai7.3-v1.1", True, "ic kws vww"), ("krai-xcubeai7.3-v1.1", False, "ad"),
              ("krai-xcubeai8.0-v1.1", True, "ic kws vww ad"), ("plumerai-v1.1", False, "ic kws vww ad"),
              ("bosch-v1.1", False, "ic kws vww ad"), ("bosch-v1.2", False, "ic kws vww ad"),
              ("bosch-maxperf-v1.2", False, "ad"))
          for bench in benches.split()]


def fit_set(hw: HardwareProfile) -> set[str]:
    """The measurements any fitted constant of ``hw`` was fitted on (their rows are not held out)."""
    return {m for _, q in hw.fitted() for m in q.fit_set}


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
                        precision=case.precision, batch=case.batch)
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
    for r in rows:
        r["ratio"] = None if not r["measured"] or r["predicted"] is None else r["predicted"] / r["measured"]
        r["within_0.5_2"] = None if r["ratio"] is None else 0.5 <= r["ratio"] <= 2.0
    src = record["source"]
    return {"record": case.record, "target": case.target + (f" at {case.clock_mhz:g} MHz" if case.clock_mhz else ""),
            "in_fit_set": case.record in fit_set(hw),
            "network": key, "macs": est.macs, "synops": est.synops, "timesteps": case.timesteps,
            "activity": case.activity if case.activity is not None else (DEFAULT_ACTIVITY if any(u.spiking for u in spec.units) else 1.0),
            "includes": record["includes"], "source": f"{src.get('authors')}, {src.get('title')}, {src.get('year')}",
            "url": src.get("url", ""), "rows": rows}


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
            flag += "  [fit set]" if res["in_fit_set"] else ""
            print(f"{res['record']:38s} {res['target']:22s} {r['metric']:44s} {fmt(r['predicted'], r['unit']) + rng:34s} "
                  f"{fmt(r['measured'], r['unit']):>10s} {ratio:>6s}{flag}")
    print("\nwhat each measurement includes, and its source:")
    for res in results:
        inc = res["includes"]
        print(f"- {res['record']}: {res['network']}, {res['timesteps']} timestep(s), activity {res['activity']:g}; "
              f"energy: {inc.get('energy_scope', '-')}; hardware: {inc.get('hardware_scope', '-')}; "
              f"source: {res['source']} ({res['url']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
