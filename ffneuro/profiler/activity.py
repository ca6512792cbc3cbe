"""Which activity each layer is costed with, and where that number came from.

An event-driven target charges a unit for the synaptic ops its input events cause. What a unit receives
is known, best first, from:

- **given**: ``--activity`` (events per neuron per timestep of a layer's output, by unit name, or one
  number for every spiking layer) and ``--input-activity`` (the network input's events per element);
- **measured: simulation TARGET**: a run's ``/simulation/TARGET`` group (``ffneuro simulate``): the same
  quantities, measured with the target's numerics;
- **measured sparsity**: a run's ``/activity`` group: per layer the effective synaptic ops counted per
  output position (:mod:`.synops`), or in older files the unit's input zero fraction;
- **default**: a spiking graph's layers fire :data:`DEFAULT_ACTIVITY`; anything else is dense, the
  network input included (analog values, not spikes).

Given and simulated activity describe the deployed network: they cost inference. Training keeps the
measured sparsity of the trained network. Pure Python: no torch.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import ConfigError

DEFAULT_ACTIVITY = 0.1   # spikes per neuron per timestep when an SNN graph is profiled without --activity
INPUT = "input"          # the network input's name in a simulation's layer_names and in --activity

GIVEN = "given"
MEASURED = "measured sparsity"
DEFAULT = "default"
DENSE_INPUT = "default: dense analog input"
DENSE = "default: dense"


def simulation_source(target: str) -> str:
    return f"measured: simulation {target}"


@dataclass(frozen=True)
class InputActivity:
    """What one unit's input carries per pass (timestep): ``share`` of its dense synaptic ops that happen,
    i.e. events per input element (1 − the zero fraction; above 1 where a pooled element sums several
    neurons' spikes), and ``source`` (given, measured: simulation TARGET, measured sparsity, default)."""

    share: float
    source: str

    def to_dict(self) -> dict:
        return {"activity": self.share, "source": self.source}


@dataclass(frozen=True)
class ActivitySources:
    """Everything known about one network's activity, by layer name.

    ``zero_fractions``: measured input zero fraction per unit (older run files, or ``sparsity=``);
    ``synops``: measured (effective, dense) synaptic ops per sample per layer (readout/head included);
    ``neurons``: (events per neuron per timestep, source) of each layer's output, given or simulated;
    ``input``: (events per element per timestep, source) of the network input; ``timesteps``: passes per
    inference sample (a simulation's T)."""

    zero_fractions: Mapping[str, float] = field(default_factory=dict)
    synops: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    neurons: Mapping[str, tuple[float, str]] = field(default_factory=dict)
    input: tuple[float, str] | None = None
    timesteps: int = 1


@dataclass(frozen=True)
class Wiring:
    """A costed layer as the activity resolver sees it: how many input elements it has, whose outputs
    feed it (``input``: the network's), and how many outputs its neurons fire (before any pooling)."""

    name: str
    in_elems: int
    feeders: tuple[str, ...]
    fired: int


def resolve(wiring: Sequence[Wiring], sources: ActivitySources, *, deployed: bool) -> dict[str, InputActivity]:
    """Each layer's input activity. ``deployed``: an inference workload, where given and simulated
    activity count; a training workload uses the measured sparsity only.

    A layer fed by spiking layers with a known activity receives their events: Σ activity × fired
    outputs over its feeders, per input element (a 2×2 sum pool hands a pooled element four neurons'
    events)."""
    fired = {w.name: w.fired for w in wiring}
    out = {}
    for w in wiring:
        out[w.name] = _one(w, fired, sources, deployed)
    return out


def _one(w: Wiring, fired: Mapping[str, int], sources: ActivitySources, deployed: bool) -> InputActivity:
    if deployed and w.in_elems:
        known = [(sources.input if f == INPUT else sources.neurons.get(f)) for f in w.feeders]
        if known and all(k is not None for k in known):
            events = sum(a * (w.in_elems if f == INPUT else fired[f]) for (a, _), f in zip(known, w.feeders))
            return InputActivity(events / w.in_elems, "; ".join(dict.fromkeys(src for _, src in known)))
    if w.name in sources.synops:
        eff, dense = sources.synops[w.name]
        if dense > 0:
            return InputActivity(eff / dense, MEASURED)
    if w.name in sources.zero_fractions:
        return InputActivity(1.0 - sources.zero_fractions[w.name], MEASURED)
    return InputActivity(1.0, DENSE_INPUT if w.feeders == (INPUT,) else DENSE)


# ------------------------------------------------------------------------------------ options


def _number(text: str, what: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise ConfigError(f"{what}: {text!r} is not a number") from None
    if not math.isfinite(v) or v < 0:
        raise ConfigError(f"{what}: {text!r} must be a finite number >= 0 (events per neuron per timestep)")
    return v


def parse_activity(text: str | None) -> float | dict[str, float] | None:
    """``--activity``: one number for every spiking layer, or ``NAME=V,NAME=V`` by unit name (events per
    neuron per timestep of that unit's output). Raises a one-line :class:`ConfigError`."""
    if text is None:
        return None
    text = text.strip()
    if "=" not in text:
        return _number(text, "--activity")
    out: dict[str, float] = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(f"--activity: {item.strip()!r} is not NAME=VALUE (e.g. conv1=0.2,conv2=0.1)")
        if name in out:
            raise ConfigError(f"--activity: {name} is given twice")
        out[name] = _number(value.strip(), f"--activity {name}")
    return out


def parse_input_activity(value: float | None) -> float | None:
    if value is None:
        return None
    return _number(str(value), "--input-activity")


def given_neurons(given: float | Mapping[str, float] | None, names: Sequence[str],
                  spiking: Sequence[str] | None = None) -> dict[str, tuple[float, str]]:
    """``--activity`` as (value, "given") by layer name: one number applies to every layer in ``spiking``
    (default: all ``names``); a name that is not a layer is a one-line error naming the valid ones."""
    if given is None:
        return {}
    if isinstance(given, Mapping):
        unknown = [n for n in given if n not in names]
        if INPUT in given:
            raise ConfigError("--activity: the network input's activity is --input-activity, not --activity input=")
        if unknown:
            raise ConfigError(f"--activity: no layer {', '.join(unknown)}; layers: {', '.join(names)}")
        return {n: (float(v), GIVEN) for n, v in given.items()}
    return {n: (float(given), GIVEN) for n in (names if spiking is None else spiking)}


# --------------------------------------------------------------------------------- simulations


@dataclass(frozen=True)
class Simulation:
    """A stored ``/simulation/TARGET`` group: per layer (``input`` first, then the units) the events per
    neuron per timestep the target's numerics gave, over ``timesteps`` timesteps (None: not stored)."""

    target: str
    layers: tuple[str, ...]
    activity: tuple[float, ...]
    timesteps: int | None = None

    @property
    def source(self) -> str:
        return simulation_source(self.target)

    def neurons(self, names: Sequence[str]) -> dict[str, tuple[float, str]]:
        """The simulated activity of the layers in ``names``, with its source."""
        return {n: (a, self.source) for n, a in zip(self.layers, self.activity) if n in names}

    @property
    def input(self) -> tuple[float, str] | None:
        for n, a in zip(self.layers, self.activity):
            if n == INPUT:
                return a, self.source
        return None


def simulation_from_group(target: str, values: Mapping, attrs: Mapping | None = None) -> Simulation:
    """A :class:`Simulation` from a run file's ``/simulation/TARGET`` datasets (``layer_names``,
    ``activity``) and attributes (``timesteps``); a malformed group is a one-line :class:`ConfigError`."""
    where = f"/simulation/{target}"
    names, act = values.get("layer_names"), values.get("activity")
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{where}: layer_names is missing or not a list of names")
    try:
        activity = [float(v) for v in (act if hasattr(act, "__len__") else [act])]
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: activity is missing or not numbers") from None
    if len(activity) != len(names):
        raise ConfigError(f"{where}: {len(names)} layer_names but {len(activity)} activity values")
    bad = [n for n, a in zip(names, activity) if not (math.isfinite(a) and a >= 0)]
    if bad:
        raise ConfigError(f"{where}: activity of {', '.join(bad)} is not a finite number >= 0")
    raw = (attrs or {}).get("timesteps", values.get("timesteps"))
    timesteps = None
    if raw is not None:
        try:
            timesteps = int(raw)
        except (TypeError, ValueError):
            timesteps = 0
        if timesteps < 1 or timesteps != raw:
            raise ConfigError(f"{where}: timesteps {raw!r} is not a count >= 1")
    return Simulation(target, tuple(names), tuple(activity), timesteps)


def pick_simulation(simulations: Mapping[str, Simulation], hw_name: str, activity_from: str | None) -> Simulation | None:
    """``--activity-from TARGET``'s simulation (a one-line error when the run has none of it), else the one
    of the profiled target when the run holds it, else None."""
    if activity_from is not None:
        if activity_from not in simulations:
            held = ", ".join(sorted(simulations)) or "none (run ffneuro simulate)"
            raise ConfigError(f"--activity-from {activity_from}: the run holds no simulation of it; held: {held}")
        return simulations[activity_from]
    return simulations.get(hw_name)


def measured_sources(group: Mapping | None) -> ActivitySources:
    """What a run's ``/activity`` group measured: input zero fractions per unit and, in files written since
    the per-position count, each layer's (effective, dense) synaptic ops per sample."""
    if not group:
        return ActivitySources()
    units = list(group.get("units") or [])
    zf = group.get("input_zero_fraction")
    zero = {} if zf is None else dict(zip(units, (float(v) for v in zf)))
    layers, eff, dense = group.get("synops_layers"), group.get("effective_synops"), group.get("dense_synops")
    synops = {}
    if layers is not None and eff is not None and dense is not None:
        layers = [layers] if isinstance(layers, str) else list(layers)
        synops = {n: (float(e), float(d)) for n, e, d in zip(layers, eff, dense)}
    return ActivitySources(zero_fractions=zero, synops=synops)


def deployed_sources(measured: ActivitySources, names: Sequence[str], *, simulation: Simulation | None = None,
                     given: float | Mapping[str, float] | None = None, input_activity: float | None = None,
                     timesteps: int | None = None) -> ActivitySources:
    """``measured`` with the deployed network's activity: the ``simulation``'s rates (and its timesteps),
    overridden per layer by ``given`` (``--activity``) and for the input by ``input_activity``."""
    neurons = simulation.neurons(names) if simulation is not None else {}
    neurons.update(given_neurons(given, names))
    inp = (input_activity, GIVEN) if input_activity is not None else (
        simulation.input if simulation is not None else None)
    steps = timesteps or (simulation.timesteps if simulation is not None and simulation.timesteps else 1)
    return ActivitySources(zero_fractions=measured.zero_fractions, synops=measured.synops, neurons=neurons,
                           input=inp, timesteps=steps)
