"""Predicted against measured: published measurements on real chips, rebuilt as layer-spec graphs.

    python benchmarks/silicon.py [--data benchmarks/data/silicon_measurements.toml] [--json] [--record [ID ...]]

The measurements (with what each includes, its source and how it was read) are in
``benchmarks/data/silicon_measurements.toml``. Each case profiles the measured network with the
shipped hardware profile and compares predicted with measured energy per inference, latency and cores.
Where the measured part differs from the profile in a specified fact (a clock), the profile runs at
that operating point (``--hw NAME@CLOCK``: what it derives from the clock and voltage rederived), and
the case says so. A measurement can carry its own ``[measurement.case]`` table
(keys as :class:`Case`, ``profile`` for the target) instead of an entry in CASES. A case's ``stack``
is the measured run's software stack, applied as ``--hw NAME:STACK`` is (the MLPerf Tiny runs of other
submissions on the Cortex-M7 each run their own ``[stacks.NAME]``).

Calibration (issue 17): a profile number with ``basis = "fitted"`` names its fit set (measurement
ids). The FIT TABLE lists the rows inside a fit set, with each fitted value refitted here beside the
file's; the HELD-OUT TABLE lists only rows outside every fit set of the constants they use, plus
leave-one-out rows (refit without the row, then predict it; constants are refitted in groups linked
by shared fit-set measurements, e.g. one software stack's numbers, and a row the rest of its group does
not determine is listed as not validated instead), with each measurement's run-to-run
spread as its error bar, and the mean and maximum |log2(predicted / measured)| per target
(ffneuro.profiler.calibration). ``--record [ID ...]`` appends the current prediction for every
measurement (or only those named) not yet recorded to benchmarks/results/silicon-predictions.json with
the code commit and whether the measured value was already in the file; the held-out table says, per
row, whether its prediction was recorded before the measurement was entered.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ffneuro.profiler import (
    DEFAULT_ACTIVITY,
    HardwareProfile,
    load_profile,
    profile_from_dict,
    profile_graph,
)
from ffneuro.profiler.calibration import (
    Constant,
    FittedConstant,
    Observation,
    Row,
    Summary,
    constants_used,
    fit,
    leave_one_out,
    split,
    summarize,
    validate,
)
from ffneuro.profiler.hardware import at_clock as _at_clock
from ffneuro.profiler.hardware import with_stack
from ffneuro.profiler.locality import ENCODER
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
    activity: float | dict | None = None   # one rate for every spiking layer, or per layer by unit name
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
    # loihi-slayer-ntidigits and loihi-nxtf-cifar: their own [measurement.case] tables (activity from the sources)
    # host wall clock per sample, as the nxtf stack's per-sample readout/reset/injection term predicts it
    Case("loihi-nxtf-mnist", "loihi", timesteps=512, input_activity=DEFAULT_ACTIVITY, latency="latency_with_io",
         stack="nxtf"),
    # batch 2048: NVIDIA's resnet50 Offline config for H100_SXM_80GBx1. The DGX MaxQ wall-power row is
    # dropped (a whole 8-GPU server at the wall against one GPU; the record's dropped_because says why)
    Case("h100-resnet50-mlperf-x1", "h100", batch=2048, latency="time_per_inference_at_throughput"),
    Case("h100-resnet50-mlperf-x8-offline", "h100", batch=2048, latency="time_per_inference_at_throughput_per_gpu"),
]
# the other stacks and rounds of MLPerf Tiny on the same STM32H7A3 board (held out from the cortex-m7 fit)
# each runs its own software stack (hw_profiles/cortex-m7.toml [stacks.NAME]), fitted on that stack's rows and
# validated leave-one-out across its benchmarks
CASES += [Case(f"cortexm7-mlperftiny-{bench}-{stack}", "cortex-m7", clock_mhz=280,
               energy="energy_per_inference" if energy else None, latency="latency", stack=stack)
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


CASE_KEYS = {"profile", "precision", "timesteps", "activity", "input_activity", "batch", "clock_mhz", "energy",
             "dynamic", "latency", "latency_per", "cores", "cores_exclude", "why", "stack", "input_encoder",
             "input_cores", "compartments"}
METRIC_OF_ROW = {"energy": "energy", "latency": "latency", "cores": "cores"}
# run-to-run columns of a record's repeat_runs, by measured metric: (column, factor to SI)
REPEAT_COLUMNS = {"energy_per_inference": ("total_mJ", 1e-3), "dynamic_energy_per_inference": ("dynamic_mJ", 1e-3),
                  "throughput": ("fps", 1.0), "cores": ("cores", 1.0)}
PREDICTIONS = Path(__file__).with_name("results") / "silicon-predictions.json"
PREDICTIONS_SCHEMA = "ffneuro.silicon_predictions"


def cases_from_data(data: dict) -> list[Case]:
    """The built-in cases, then any measurement with a ``[measurement.case]`` table (which replaces a
    built-in case of the same id): a new measurement needs no edit here."""
    ids = [m.get("id") for m in data["measurement"]]
    for i, m in enumerate(data["measurement"]):
        if not isinstance(m.get("id"), str) or not m["id"].strip():
            raise SystemExit(f"Error: measurement #{i + 1} ({m.get('title', 'untitled')}) has no id; give it a "
                             "stable one (predictions are recorded by id)")
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise SystemExit(f"Error: measurement ids used twice: {', '.join(sorted(dup))}")
    cases = {c.record: c for c in CASES}
    for m in data["measurement"]:
        spec = m.get("case")
        if spec is None:
            continue
        unknown = set(spec) - CASE_KEYS
        if unknown or "profile" not in spec:
            raise SystemExit(f"Error: {m['id']}: case: unknown keys {sorted(unknown)} or no profile; "
                             f"valid: {', '.join(sorted(CASE_KEYS))}")
        kw = {k: v for k, v in spec.items() if k != "profile"}
        cases[m["id"]] = Case(m["id"], spec["profile"], **kw)
    return list(cases.values())


def activity_text(activity: float | dict) -> str:
    """A case's activity in words: one number, or the per-layer rates a measurement's case gives."""
    if isinstance(activity, dict):
        return "per layer (" + ", ".join(f"{k} {v:g}" for k, v in activity.items()) + ")"
    return f"{activity:g}"


def _metric(record: dict, name: str) -> float | None:
    for m in record.get("measured", []):
        if m["metric"] == name and not isinstance(m["value"], list):
            return float(m["value"])
    return None


def _spread(record: dict, name: str) -> tuple[float, float] | None:
    """A measured metric's run-to-run range: its own ``spread = [low, high]``, else the min and max over
    the record's ``repeat_runs``; None where the source gives one run."""
    for m in record.get("measured", []):
        if m["metric"] == name and "spread" in m:
            lo, hi = m["spread"]
            return float(lo), float(hi)
    col = REPEAT_COLUMNS.get(name)
    runs = record.get("repeat_runs") or []
    if col and runs and all(col[0] in r for r in runs):
        vals = [float(r[col[0]]) * col[1] for r in runs]
        return min(vals), max(vals)
    return None


def with_constants(hw: HardwareProfile, values: dict[str, float]) -> HardwareProfile:
    """``hw`` with the numbers at the dotted paths in ``values`` set (SI units): how a fit tries a value."""
    if not values:
        return hw
    d = hw.to_dict()
    for path, v in values.items():
        node = _at_path(d, path)
        node.update(value=v, unit=node["unit_si"])
    return profile_from_dict(d, origin=f"{hw.name} with {', '.join(values)} set")


def _at_path(d: dict, path: str) -> dict:
    """The entry of a profile dict at a dotted path whose keys may hold dots themselves (a stack named
    ``st-v1.2``: ``stacks.st-v1.2.supply_power``): the longest key that matches is taken at each level."""
    parts, node, i = path.split("."), d, 0
    while i < len(parts):
        for j in range(len(parts), i, -1):
            key = ".".join(parts[i:j])
            if isinstance(node, dict) and key in node:
                node, i = node[key], j
                break
        else:
            raise KeyError(f"no number at {path!r}")
    return node


def evaluate(case: Case, record: dict, networks: dict, values: dict[str, float] | None = None) -> dict:
    hw = with_constants(load_profile(case.target), values or {})
    if case.stack is not None:   # the measured run's software stack (its per-stack numbers applied)
        hw = with_stack(hw, case.stack)
    if case.clock_mhz is not None:
        hw = at_clock(hw, case.clock_mhz)
    key = record["network"]["key"]
    spec = spec_from_layers(networks[key])
    # layers trained with synaptic delays (the network file's delay_bits: ceil(log2(max delay))): the
    # partitioner caps their neurons per core by the dendritic accumulator
    delays = {la["name"]: int(la["delay_bits"]) for la in networks[key]["layers"] if la.get("delay_bits")}
    rep = profile_graph(spec, hw, timesteps=case.timesteps, activity=case.activity, input_activity=case.input_activity,
                        precision=case.precision, batch=case.batch, input_encoder=case.input_encoder, stack=case.stack,
                        input_cores=case.input_cores, compartments_per_neuron=case.compartments, delay_bits=delays)
    est = rep["infer"]
    rows = []
    if case.energy:
        measured = _metric(record, case.energy)
        lo, hi = est.energy_range
        pred = est.energy_j
        if case.dynamic:   # leave out static power, at each end of the range too
            pred, lo, hi = pred - est.energy.static_j, lo - est.static_range[0], hi - est.static_range[1]
        rows.append({"metric": "energy per inference" + (" (dynamic)" if case.dynamic else ""), "kind": "energy",
                     "predicted": pred, "low": lo, "high": hi, "measured": measured,
                     "spread": _spread(record, case.energy), "unit": "J"})
    if case.latency:
        measured = _metric(record, case.latency)
        spread = _spread(record, case.latency)
        if case.latency == "throughput":
            measured = None if measured is None else 1.0 / measured
            spread = None if spread is None else (1.0 / spread[1], 1.0 / spread[0])
        lo, hi = est.latency_range or (None, None)
        rows.append({"metric": "latency per inference", "kind": "latency", "predicted": est.latency_s, "low": lo,
                     "high": hi, "measured": measured, "spread": spread, "unit": "s"})
    if case.cores:
        measured = _metric(record, case.cores)
        excl = sum(case.cores_exclude.values())
        spread = _spread(record, case.cores)
        rows.append({"metric": "cores" + (" (without " + ", ".join(case.cores_exclude) + ")" if case.cores_exclude else ""),
                     "kind": "cores", "predicted": est.cores_needed, "low": None, "high": None,
                     "measured": None if measured is None else measured - excl,
                     "spread": None if spread is None else (spread[0] - excl, spread[1] - excl), "unit": ""})
    for r in rows:
        r["ratio"] = None if not r["measured"] or r["predicted"] is None else r["predicted"] / r["measured"]
        r["within_0.5_2"] = None if r["ratio"] is None else 0.5 <= r["ratio"] <= 2.0
    src = record["source"]
    return {"record": case.record, "target": case.target + (f" at {case.clock_mhz:g} MHz" if case.clock_mhz else ""),
            "profile": case.target, "in_fit_set": case.record in fit_set(hw),
            "network": key, "macs": est.macs, "synops": est.synops, "timesteps": case.timesteps,
            "activity": case.activity if case.activity is not None else (DEFAULT_ACTIVITY if any(u.spiking for u in spec.units) else 1.0),
            "includes": record["includes"], "source": f"{src.get('authors')}, {src.get('title')}, {src.get('year')}",
            "url": src.get("url", ""), "rows": rows, "per_layer_cores": per_layer_cores(record, est)}


def per_layer_cores(record: dict, est) -> list[dict]:
    """The compiler's published cores per layer (the cores metric's ``per_layer`` table, or the record's
    ``per_layer_cores``), each beside ffneuro's for the unit whose name starts the label; [] if none published."""
    published = record.get("per_layer_cores")
    if published is None:
        published = next((m.get("per_layer") for m in record.get("measured", [])
                          if m["metric"] == "cores" and m.get("per_layer")), None)
    if published is None:
        published = next((m["value"] for m in record.get("measured", [])
                          if m["metric"] == "cores_per_layer" and isinstance(m.get("value"), dict)), None)
    if not published:
        return []
    ours = {u.unit: u.cores for u in est.per_unit}
    out = []
    for label, n in published.items():
        first = label.replace(",", " ").replace("(", " ").split()[0] if label.strip() else ""
        if first == "input":     # the compiler's input layer is ffneuro's on-chip input encoder
            first = ENCODER
        out.append({"layer": label, "compiler": n, "ffneuro": ours.get(first)})
    return out


# ---- calibration: fit sets, held-out rows, recorded predictions --------------------------------------------

def fitted_constants(targets: set[str]) -> list[FittedConstant]:
    """Every number with basis 'fitted' in the profiles of ``targets``, with its value and fit set."""
    out = []
    for t in sorted(targets):
        for path, q in load_profile(t).fitted():
            out.append(FittedConstant(t, path, q.value_si, tuple(q.fit_set)))
    return out


class Model:
    """Predictions for observations, by measurement id, with constants set: the ``predict`` callback
    of :mod:`ffneuro.profiler.calibration` (cached, since a fit asks for each point many times)."""

    def __init__(self, cases: list[Case], records: dict, networks: dict):
        self.cases = {c.record: c for c in cases}
        self.records = records
        self.networks = networks
        self._cache: dict = {}

    def result(self, rid: str, values: dict[str, float] | None = None) -> dict:
        key = (rid, tuple(sorted((values or {}).items())))
        if key not in self._cache:
            self._cache[key] = evaluate(self.cases[rid], self.records[rid], self.networks, values)
        return self._cache[key]

    def __call__(self, values, obs: Observation) -> float | None:
        res = self.result(obs.id, dict(values))
        row = next(r for r in res["rows"] if r["kind"] == obs.metric)
        return row["predicted"]


def observations(results: list[dict]) -> list[Observation]:
    out = []
    for res in results:
        for r in res["rows"]:
            if r["measured"]:
                out.append(Observation(res["record"], res["profile"], r["kind"], r["measured"], r["spread"], r["metric"]))
    return out


def fit_groups(fitted: list[FittedConstant]) -> list[list[FittedConstant]]:
    """A target's fitted constants in groups that share fit-set measurements (linked through any chain):
    each group is refitted, and validated leave-one-out, on its own measurements, with the other
    constants at their file values (a software stack's numbers apart from another stack's)."""
    groups: list[list[FittedConstant]] = []
    for c in fitted:
        linked = [g for g in groups if g[0].target == c.target and any(set(c.fit_set) & set(x.fit_set) for x in g)]
        merged = [c]
        for g in linked:
            merged = g + merged
            groups.remove(g)
        groups.append(merged)
    return groups


def calibrate(model: Model, obs: list[Observation]) -> dict:
    """The fit table (rows in a fit set, with a refit beside each file value) and the held-out table
    (rows outside every fit set, plus leave-one-out rows for each fit set of two measurements or more)."""
    fitted = fitted_constants({o.target for o in obs})
    seen, held = split(obs, fitted)
    fit_rows = [Row(o, model({c.path: c.value for c in constants_used(o, fitted)}, o), "fit",
                    constants_used(o, fitted)) for o in seen]
    refits, loo = [], []
    for consts in fit_groups(fitted):   # constants whose fit sets share a measurement are refitted together,
        target = consts[0].target      # on the union of their fit sets (e.g. one software stack's numbers)
        ids = {m for c in consts for m in c.fit_set}
        pts = [o for o in seen if o.target == target and o.id in ids]
        if not pts:
            refits.append({"target": target, "paths": [c.path for c in consts],
                           "note": "no observation of its fit set is in the measurement file"})
            continue
        start = [Constant(target, c.path, c.value, c.value / 10, c.value * 10) for c in consts]
        res = fit(start, pts, model)
        n_ids = len({o.id for o in pts})
        refits.append({"target": target, "success": res.success, "measurements": n_ids, "constants": [
            {"path": c.path, "file_value": c.value, "refit_value": r.value, "fit_set": list(c.fit_set),
             "refit_on": list(r.fit_set), "at_bound": r.at_bound} for c, r in zip(consts, res.constants, strict=True)]})
        if n_ids >= 2:
            loose: list[Observation] = []
            loo.extend(leave_one_out(start, pts, model, undetermined=loose))
            if loose:
                refits[-1]["undetermined"] = [o.key for o in loose]
        else:   # one measurement: nothing left to refit on, so it cannot be validated (fit table only)
            refits[-1]["note"] = (f"fit set of one measurement ({pts[0].id}): it cannot be validated, so it has no "
                                  "held-out row")
    held_rows = validate(held, fitted, model) + loo
    return {"fitted": fitted, "fit_rows": fit_rows, "refits": refits, "held_rows": held_rows,
            "summary": summarize(held_rows), "fit_summary": summarize(fit_rows)}


def explore_fit(model: Model, obs: list[Observation], spec: str) -> dict:
    """``--fit TARGET:PATH[,PATH...]``: fit those numbers of TARGET's profile (bounded to a tenth and ten
    times the file's value) to TARGET's measured rows, with a leave-one-out row for each; the profile is
    not changed. What a fitted constant in a profile must then name as its fit set is printed."""
    target, _, paths = spec.partition(":")
    known = dict(load_profile(target).quantities())
    names = [p for p in paths.split(",") if p]
    counts = [p for p in names if p in known and known[p].unit == "1"]
    if counts:
        raise SystemExit(f"Error: --fit {spec}: {', '.join(counts)} is a count (whole number), which is not fitted")
    bad = [p for p in names if p not in known]
    if not names or bad:
        raise SystemExit(f"Error: --fit {spec}: give TARGET:PATH[,PATH...] with paths of {target}'s numbers "
                         f"(unknown: {', '.join(bad) or 'none given'}; e.g. {', '.join(list(known)[:4])})")
    pts = [o for o in obs if o.target == target]
    if not pts:
        raise SystemExit(f"Error: --fit {spec}: no measured row of {target}")
    start = [Constant(target, p, known[p].value_si, known[p].value_si / 10, known[p].value_si * 10) for p in names]
    res = fit(start, pts, model)
    loo = leave_one_out(start, pts, model) if len({o.id for o in pts}) >= 2 else []
    return {"spec": spec, "result": res, "loo": loo, "start": start}


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def load_predictions(path: Path) -> dict[str, dict]:
    """Recorded predictions by ``id:metric`` (the first recording of each; later ones never replace it)."""
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    if data.get("schema") != PREDICTIONS_SCHEMA:
        raise SystemExit(f"Error: {path}: not a {PREDICTIONS_SCHEMA} file")
    return {f"{p['id']}:{p['metric']}": p for p in data["predictions"]}


def record_predictions(results: list[dict], path: Path, only: set[str] | None = None) -> list[str]:
    """Append a prediction for every (measurement, metric) not yet recorded (of the measurements in
    ``only`` where given), with the code commit, the time, and whether the measured value was already
    in the data file; returns the keys added."""
    known = load_predictions(path)
    commit = _git("rev-parse", "HEAD") or "unknown"
    if _git("status", "--porcelain", "--untracked-files=no"):
        commit += "+uncommitted changes"
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    added = []
    for res in results:
        if only is not None and res["record"] not in only:
            continue
        for r in res["rows"]:
            key = f"{res['record']}:{r['kind']}"
            if key in known or r["predicted"] is None:
                continue
            known[key] = {"id": res["record"], "metric": r["kind"], "predicted": r["predicted"], "unit": r["unit"],
                          "code_commit": commit, "recorded_utc": now, "measured_in_file": bool(r["measured"])}
            added.append(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"schema": PREDICTIONS_SCHEMA, "schema_version": 1,
                                "note": "append-only: silicon.py --record adds predictions, never replaces one",
                                "predictions": sorted(known.values(), key=lambda p: (p["id"], p["metric"]))},
                               indent=1) + "\n")
    return added


def preregistered(row: Row, recorded: dict[str, dict]) -> str:
    """Whether the row's prediction was recorded before its measurement was entered."""
    p = recorded.get(row.obs.key)
    if p is None:
        return "not recorded"
    if p["measured_in_file"]:
        return "no (recorded after)"
    return f"yes ({p['recorded_utc'][:10]}, {p['code_commit'][:10]})"


# ---- output ---------------------------------------------------------------------------------------------

def fmt(v, unit: str) -> str:
    from ffneuro.profiler import format_si

    if v is None:
        return "-"
    return format_si(v, unit) if unit else f"{v:g}"


UNITS = {"energy": "J", "latency": "s", "cores": ""}


def _row_dict(r: Row, recorded: dict[str, dict]) -> dict:
    return {"id": r.obs.id, "target": r.obs.target, "metric": r.obs.metric, "label": r.obs.label, "kind": r.kind,
            "predicted": r.predicted, "measured": r.obs.measured, "spread": r.obs.spread, "ratio": r.ratio,
            "log2_ratio": r.log2_ratio, "error_bar_log2": r.error_bar_log2, "within_spread": r.within_spread,
            "constants": [{"path": c.path, "value": c.value, "fit_set": list(c.fit_set)} for c in r.constants],
            "recorded_before_measured": preregistered(r, recorded)}


def _print_rows(rows: list[Row], recorded: dict[str, dict]) -> None:
    print(f"{'measurement':38s} {'metric':34s} {'how':13s} {'predicted':>10s} {'measured [run-to-run]':>30s} "
          f"{'ratio':>6s} {'log2':>6s} {'log2 error bar':>15s}  recorded before measured")
    for r in rows:
        u = UNITS[r.obs.metric]
        meas = fmt(r.obs.measured, u) + ("" if r.obs.spread is None else
                                         f" [{fmt(r.obs.spread[0], u)}–{fmt(r.obs.spread[1], u)}]")
        bar = "-" if r.error_bar_log2 is None else f"[{r.error_bar_log2[0]:+.2f}, {r.error_bar_log2[1]:+.2f}]"
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}"
        lr = "-" if r.log2_ratio is None else f"{r.log2_ratio:+.2f}"
        flag = "" if r.ratio is None or 0.5 <= r.ratio <= 2 else "  outside [0.5, 2]"
        print(f"{r.obs.id:38s} {(r.obs.label or r.obs.metric)[:34]:34s} {r.kind:13s} {fmt(r.predicted, u):>10s} {meas:>30s} {ratio:>6s} "
              f"{lr:>6s} {bar:>15s}  {preregistered(r, recorded)}{flag}")


def _print_summary(summary: list[Summary], targets: list[str]) -> None:
    print(f"{'target':12s} {'metric':8s} {'n':>3s} {'mean |log2|':>11s} {'(typical x)':>11s} {'max |log2|':>10s} "
          f"{'(worst x)':>9s} {'in [0.5,2]':>10s}")
    for s in summary:
        print(f"{s.target:12s} {s.metric:8s} {s.n:3d} {s.mean_abs_log2:11.2f} {s.typical_factor:11.2f} "
              f"{s.max_abs_log2:10.2f} {s.worst_factor:9.2f} {s.within_2x:>6d}/{s.n}")
    covered = {s.target for s in summary}
    missing = [t for t in targets if t not in covered]
    if missing:
        print(f"no held-out rows yet: {', '.join(missing)}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--predictions", type=Path, default=PREDICTIONS, help="recorded predictions (JSON)")
    ap.add_argument("--record", nargs="*", metavar="ID", default=None,
                    help="append a prediction for every measurement and metric not yet recorded (only the "
                         "measurements ID... where given), then report")
    ap.add_argument("--fit", action="append", default=[], metavar="TARGET:PATH[,PATH...]",
                    help="explore: fit these numbers of TARGET's profile to its rows and show leave-one-out rows "
                         "(the profile is not changed)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    data = tomllib.loads(args.data.read_text())
    cases = cases_from_data(data)
    records = {m["id"]: m for m in data["measurement"]}
    missing = [c.record for c in cases if c.record not in records]
    if missing:
        raise SystemExit(f"Error: cases without a measurement in {args.data}: {', '.join(missing)}")
    unknown = sorted(set(args.record or ()) - records.keys())
    if unknown:
        raise SystemExit(f"Error: --record: no measurement with id {', '.join(unknown)} in {args.data}")
    model = Model(cases, records, data["networks"])
    results = [model.result(c.record) for c in cases]
    if args.record is not None:
        added = record_predictions(results, args.predictions, set(args.record) or None)
        print(f"recorded {len(added)} new prediction(s) in {args.predictions}: {', '.join(added) or '-'}",
              file=sys.stderr)
    recorded = load_predictions(args.predictions)
    cal = calibrate(model, observations(results))
    explored = [explore_fit(model, observations(results), f) for f in args.fit]
    awaiting = [{"id": res["record"], "metric": r["kind"], "predicted": r["predicted"],
                 "recorded": f"{res['record']}:{r['kind']}" in recorded}
                for res in results for r in res["rows"] if not r["measured"]]
    targets = sorted({c.target for c in cases} | {n.get("target_profile", "?") for n in data.get("not_usable", [])})
    if args.json:
        json.dump({"fitted_constants": [vars(c) for c in cal["fitted"]], "refits": cal["refits"],
                   "fit_rows": [_row_dict(r, recorded) for r in cal["fit_rows"]],
                   "held_out_rows": [_row_dict(r, recorded) for r in cal["held_rows"]],
                   "held_out_summary": [vars(s) for s in cal["summary"]],
                   "fit_summary": [vars(s) for s in cal["fit_summary"]],
                   "awaiting_measurement": awaiting, "cases": results,
                   "explored_fits": [{"spec": e["spec"], "success": e["result"].success,
                                      "constants": [vars(c) for c in e["result"].constants],
                                      "fit_rows": [_row_dict(r, recorded) for r in e["result"].rows],
                                      "leave_one_out_rows": [_row_dict(r, recorded) for r in e["loo"]],
                                      "leave_one_out_summary": [vars(x) for x in summarize(e["loo"])]}
                                     for e in explored],
                   "not_usable": data.get("not_usable", [])}, sys.stdout, indent=1, default=str)
        print()
        return 0
    print("FIT TABLE: measurements inside a fit set (they show how well the fit fits, not how well it predicts)")
    if not cal["fitted"]:
        print("  (empty: no constant of the profiles used has basis = 'fitted')")
    for ref in cal["refits"]:
        for c in ref.get("constants", []):
            print(f"  {ref['target']}:{c['path']} = {c['file_value']:.4g} (file), refit here {c['refit_value']:.4g}"
                  f"{' at a bound' if c['at_bound'] else ''}; fit set: {', '.join(c['fit_set'])}")
        if "note" in ref:
            print(f"  {ref['target']}:{','.join(ref.get('paths', [c['path'] for c in ref.get('constants', [])]))}: "
                  f"{ref['note']}")
        if ref.get("undetermined"):
            print(f"  not validated (the rest of this fit set does not determine its prediction, so a refit "
                  f"without it would keep the value that saw it): {', '.join(ref['undetermined'])}")
    if cal["fit_rows"]:
        _print_rows(cal["fit_rows"], recorded)
    print("\nHELD-OUT TABLE: measurements outside every fit set of the constants they use "
          "(leave-one-out rows: predicted by a refit without them)")
    _print_rows(cal["held_rows"], recorded)
    print("\nheld-out error (mean |log2 ratio| is log2 of the geometric-mean error factor; 'all' pools the targets):")
    _print_summary(cal["summary"], targets)
    for e in explored:
        print(f"\nEXPLORED FIT (--fit {e['spec']}; no profile changed):")
        for s0, c in zip(e["start"], e["result"].constants, strict=True):
            print(f"  {c.target}:{c.path}: file {s0.initial:.4g} -> fitted {c.value:.4g}"
                  f"{' (at a bound)' if c.at_bound else ''}; fit set: {', '.join(c.fit_set)}")
        _print_rows(list(e["result"].rows), recorded)
        if e["loo"]:
            print("  leave-one-out (each row predicted by a refit without it):")
            _print_rows(e["loo"], recorded)
            _print_summary(summarize(e["loo"]), [])
    if awaiting:
        print("\nawaiting measurement (prediction only):")
        for a in awaiting:
            print(f"  {a['id']} {a['metric']}: {a['predicted']:.4g}{' (recorded)' if a['recorded'] else ''}")
    layers = [(res["record"], pl) for res in results for pl in res["per_layer_cores"]]
    if layers:
        print("\ncores per layer: the compiler's (published) beside ffneuro's ('-': no such unit in the rebuilt spec)")
        for rid, pl in layers:
            print(f"  {rid:22s} {pl['layer'][:60]:60s} {pl['compiler']:>4} {'-' if pl['ffneuro'] is None else pl['ffneuro']:>4}")
    print("\nwhat each measurement includes, and its source:")
    for res in results:
        inc = res["includes"]
        print(f"- {res['record']}: {res['network']}, {res['timesteps']} timestep(s), activity {activity_text(res['activity'])}; "
              f"energy: {inc.get('energy_scope', '-')}; hardware: {inc.get('hardware_scope', '-')}; "
              f"source: {res['source']} ({res['url']})")
    if data.get("not_usable"):
        print("\nnot usable (no row): " + "; ".join(f"{n['id']} ({n.get('target_profile', '?')})"
                                                  for n in data["not_usable"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
