"""Simulate a trained run on a target: accuracy as deployed beside the float accuracy, activity per layer,
saturation; and the ``/simulation/<target>`` group that stores them in the run file."""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

import numpy as np
import torch

from ..data.normalise import refuse_standardised
from ..errors import ConfigError
from ..profiler.hardware import HardwareProfile
from .engine import Trace, deploy, readout_logits, run, run_float
from .network import Calibration, NetView, calibrate, net_view, norm_divisors
from .targets import TargetNumerics, numerics_for

GROUP = "simulation"
INPUT = "input"


@dataclass
class SimulationResult:
    """One target's simulation of one network. ``layer_names`` starts with ``input``; ``activity`` is events
    per neuron per timestep of each layer's neurons (the input's pixels for ``input``), ``out_activity`` of
    what a unit hands on (after pooling), ``saturated`` neuron values that hit the top of their range
    (spiking: fired at every timestep; int8/graded: clipped codes), out of ``elements`` (rows × neurons)."""

    target: str
    numerics: TargetNumerics
    timesteps: int
    samples: int
    readouts: list[str]
    primary: str
    float_acc: dict[str, float]
    fixed_norm_acc: dict[str, float]
    deployed_acc: dict[str, float]
    layer_names: list[str]
    activity: list[float]
    out_activity: list[float]
    saturated: list[int]
    elements: list[int]
    fan_in: list[int]
    fan_in_exceeded: list[bool]
    calibration: Calibration
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "target": self.target, "numerics": self.numerics.to_dict(), "timesteps": self.timesteps,
            "samples": self.samples, "readout": self.primary, "readouts": self.readouts,
            "float_acc": self.float_acc[self.primary], "deployed_acc": self.deployed_acc[self.primary],
            "accuracy": {r: {"float": self.float_acc[r], "fixed_norm": self.fixed_norm_acc.get(r),
                             "deployed": self.deployed_acc[r]} for r in self.readouts},
            "layers": [{"name": n, "activity": a, "out_activity": o, "saturated": s, "elements": e, "fan_in": f,
                        "fan_in_exceeded": x}
                       for n, a, o, s, e, f, x in zip(self.layer_names, self.activity, self.out_activity, self.saturated,
                                                      self.elements, self.fan_in, self.fan_in_exceeded)],
            "calibration": {"percentile": self.calibration.percentile, "images": self.calibration.images,
                            "lambda": self.calibration.lam, "norm_scale": self.calibration.norm_scale},
            "notes": self.notes,
        }


class _Tally:
    """Events and saturation summed over batches."""

    def __init__(self, n: int):
        self.events, self.out_events, self.saturated = [0.0] * n, [0.0] * n, [0] * n
        self.neurons, self.outs = [0] * n, [0] * n
        self.input_events, self.input_elems, self.steps, self.input_saturated = 0.0, 0, 1, 0

    def add(self, trace: Trace, rows: torch.Tensor) -> None:
        self.steps = trace.steps
        self.input_events += trace.input_events
        self.input_saturated += trace.input_saturated
        self.input_elems += rows.numel()
        for i in range(len(self.events)):
            self.events[i] += trace.events[i]
            self.out_events[i] += trace.out_events[i]
            self.saturated[i] += trace.saturated[i]
            self.neurons[i] += trace.neurons[i].numel()
            self.outs[i] += trace.outs[i].numel()


def _accuracy(pred: torch.Tensor, y: torch.Tensor) -> float:
    return float((pred == y).float().mean()) if len(y) else float("nan")


@torch.no_grad()
def simulate_model(model: torch.nn.Module, hw: HardwareProfile, test_x: torch.Tensor, test_y: torch.Tensor,
                   calib_x: torch.Tensor, calib_y: torch.Tensor, *, timesteps: int = 32, percentile: float = 99.9,
                   run_precision: str = "fp32", readouts: list[str] | None = None,
                   batch_images: int = 50) -> SimulationResult:
    """Run ``model`` (an FFNet or BPNet, weights loaded) on ``test_x`` (images in [0, 1]) with ``hw``'s
    numerics; scales are calibrated on ``calib_x`` (training images). ``readouts``: which to simulate
    (default every one the network has; the goodness readout of a label-in-image network costs one pass
    per class)."""
    if timesteps < 1:
        raise ConfigError(f"timesteps must be >= 1, got {timesteps}")
    if len(test_y) == 0:
        raise ConfigError("no test images to simulate")
    if len(calib_y) == 0:
        raise ConfigError("no training images to calibrate the deployed network on")
    numerics = numerics_for(hw, run_precision)
    view = net_view(model)
    available = view.readouts()
    wanted = available if readouts is None else readouts
    missing = [r for r in wanted if r not in available]
    if missing:
        raise ConfigError(f"the network has no {missing[0]} readout; it has: {', '.join(available)}")
    cal = calibrate(view, view.calibration_rows(calib_x, calib_y), percentile)
    dep = deploy(view, cal, numerics)
    float_numerics = TargetNumerics("float", "reference", "relu", "float", fixed_norm=True)
    float_dep = deploy(view, cal, float_numerics)
    steps = timesteps if numerics.timed else 1

    primary = "linear" if "linear" in wanted else wanted[0]
    tally = _Tally(len(view.layers))
    preds = {r: [] for r in wanted}
    fixed_preds = {r: [] for r in wanted}
    float_preds = {r: [] for r in wanted}
    for start in range(0, len(test_y), batch_images):
        x = test_x[start: start + batch_images]
        n = len(x)
        done = None   # (rows, trace, fixed) of the readout before: readouts that see the same rows share one pass
        for r, pred in model.predict_all(x, wanted).items():   # one float pass where the readouts share it
            float_preds[r].append(pred)
        for r in wanted:
            rows = view.rows(x, r)
            if done is not None and done[0] is rows:
                _, trace, fixed = done
            else:
                trace = run(view, dep, cal, rows, numerics, steps)
                fixed = run_float(view, float_dep, cal, rows, float_numerics, fixed_norm=True)
                done = (rows, trace, fixed)
            if r == primary:
                tally.add(trace, rows)
            if r == "goodness":
                div = norm_divisors(view, cal, rows, trace.neurons) if numerics.fixed_norm else None
                preds[r].append(view.goodness(trace.neurons, n, div).argmax(1))
                fixed_preds[r].append(view.goodness(fixed.neurons, n, norm_divisors(view, cal, rows, fixed.neurons))
                                      .argmax(1))
            else:
                preds[r].append(readout_logits(view, dep, trace, numerics).argmax(1))
                fixed_preds[r].append(view.logits(fixed.outs).argmax(1))
    float_acc = {r: _accuracy(torch.cat(float_preds[r]), test_y) for r in wanted}
    folded_approx = any(layer.approx_border for layer in view.layers)
    fixed_acc = ({r: _accuracy(torch.cat(fixed_preds[r]), test_y) for r in wanted}
                 if numerics.fixed_norm or folded_approx else {})
    deployed = {r: _accuracy(torch.cat(preds[r]), test_y) for r in wanted}

    names = [INPUT] + [layer.name for layer in view.layers]
    per_step = float(tally.steps)
    activity = [tally.input_events / (tally.input_elems * per_step)] + \
        [e / (m * per_step) if m else 0.0 for e, m in zip(tally.events, tally.neurons)]
    out_activity = [activity[0]] + [e / (m * per_step) if m else 0.0 for e, m in zip(tally.out_events, tally.outs)]
    notes = list(numerics.assumptions)
    if numerics.fixed_norm and any(layer.norm == "rms" or layer.input_norm for layer in view.layers):
        notes.append("the per-sample RMS norm between units is a fixed per-layer scale calibrated on "
                     f"{cal.images} training images (fixed_norm accuracy: float with that scale)")
    if numerics.timed:
        notes.append(f"threshold balancing: λ per layer = the {percentile:g}th percentile of its activations on the "
                     "calibration images; the input image is rate-coded (integrate-and-fire encoders, rate = pixel)"
                     if numerics.neuron == "if" else
                     f"activations in units of λ (the {percentile:g}th percentile on the calibration images); the "
                     "input image is sent as graded changes too")
    notes += _fold_notes(view)
    exceeded = [False] + dep.fan_in_exceeded
    if any(exceeded):
        bad = [f"{n} ({layer.fan_in})" for n, layer, x in zip(names[1:], view.layers, dep.fan_in_exceeded) if x]
        notes.append(f"fan-in above {numerics.fan_in_limit} input lines per neuron: {', '.join(bad)}")
    if not numerics.timed:
        notes.append("a dense target: activity is the fraction of nonzero values (every value is computed)")
    return SimulationResult(
        target=hw.name, numerics=numerics, timesteps=steps, samples=int(len(test_y)), readouts=list(wanted),
        primary=primary, float_acc=float_acc, fixed_norm_acc=fixed_acc, deployed_acc=deployed, layer_names=names,
        activity=activity, out_activity=out_activity, saturated=[tally.input_saturated] + tally.saturated,
        elements=[tally.input_elems] + tally.neurons, fan_in=[0] + [layer.fan_in for layer in view.layers],
        fan_in_exceeded=exceeded, calibration=cal, notes=notes)


def _fold_notes(view: NetView) -> list[str]:
    """What the network's batch norms became: folded as ``ffneuro export`` folds them, exact or approximate
    at the zero-padded border pixels of the named layers; a layer inside a unit (dwsep) named for the record."""
    notes = []
    folded = [layer for layer in view.layers if layer.out_affine is not None]
    if folded or any(layer.approx_border for layer in view.layers) or _has_batch_norm(view):
        approx = [layer.name for layer in view.layers if layer.approx_border]
        notes.append("batch norm: folded (eval statistics) into the weights that read it, as ffneuro export folds it"
                     + (f"; its shift under zero padding is approximate at the border pixels of {', '.join(approx)} "
                        "(the float network as deployed: the fixed norm column)" if approx else "; exact"))
    inner = [layer.name for layer in view.layers if not layer.tap]
    if inner:
        notes.append(f"layers inside a unit (neurons the unit's next conv reads): {', '.join(inner)}")
    return notes


def _has_batch_norm(view: NetView) -> bool:
    return view.model is not None and any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                                          for m in view.model.modules())


def _finite(v: float) -> float:
    return v if math.isfinite(v) else float("nan")


def store_simulation(path: str | os.PathLike, result: SimulationResult) -> None:
    """Write (replacing) ``/simulation/<target>`` of the run at ``path``, under its lock, in one commit
    (other targets' groups are kept). Layout: docs/run-schema.md#simulation."""
    import h5py

    from ..store import RunWriter

    text = h5py.string_dtype("utf-8")
    with RunWriter.open(path) as writer, writer.transaction() as f:
        parent = f.require_group(GROUP)
        if result.target in parent:
            del parent[result.target]
        g = parent.create_group(result.target)
        g.create_dataset("layer_names", data=np.array(result.layer_names, dtype=text), dtype=text)
        g.create_dataset("activity", data=np.asarray(result.activity, dtype=np.float64))
        g.create_dataset("out_activity", data=np.asarray(result.out_activity, dtype=np.float64))
        g.create_dataset("saturated", data=np.asarray(result.saturated, dtype=np.int64))
        g.create_dataset("elements", data=np.asarray(result.elements, dtype=np.int64))
        g.create_dataset("fan_in", data=np.asarray(result.fan_in, dtype=np.int64))
        g.create_dataset("fan_in_exceeded", data=np.asarray(result.fan_in_exceeded, dtype=np.int8))
        attrs = {"timesteps": result.timesteps, "samples": result.samples, "readout": result.primary,
                 "float_acc": _finite(result.float_acc[result.primary]),
                 "deployed_acc": _finite(result.deployed_acc[result.primary]),
                 "neuron": result.numerics.neuron, "weights": result.numerics.weights,
                 "weight_bits": result.numerics.weight_bits or 0, "percentile": result.calibration.percentile,
                 "calibration_images": result.calibration.images,
                 "details": json.dumps(result.to_dict(), allow_nan=True)}
        for r in result.readouts:
            attrs[f"float_acc_{r}"] = _finite(result.float_acc[r])
            attrs[f"deployed_acc_{r}"] = _finite(result.deployed_acc[r])
        g.attrs.update(attrs)


def simulate_run_file(path: str | os.PathLike, hw: HardwareProfile, *, timesteps: int = 32, samples: int = 200,
                      percentile: float = 99.9, calib_images: int = 256, weights: str = "final",
                      readouts: list[str] | None = None, data_dir: str | os.PathLike | None = None,
                      device: str = "cpu") -> SimulationResult:
    """Restore the run at ``path`` (as ``ffneuro eval`` does) and simulate its first ``samples`` test images
    on ``hw``, calibrated on its first ``calib_images`` training images."""
    from ..config import stored_config
    from ..store import read_run
    from ..train.runfile import restore_run

    if samples < 1:
        raise ConfigError(f"--samples must be >= 1, got {samples}")
    if timesteps < 1:
        raise ConfigError(f"--timesteps must be >= 1, got {timesteps}")
    record = read_run(path)
    config = stored_config(record, device=device)
    refuse_standardised(config.normalise, str(path), "simulate",
                        "its input encoders rate-code pixel values in [0, 1], and standardised pixels are negative")
    trainer = restore_run(record, config, weights, data_dir)
    test, train = trainer.test, trainer.train
    n = min(samples, len(test))
    x, y = test.batch(torch.arange(n, device=test.y.device))
    c = min(calib_images, len(train))
    cx, cy = train.batch(torch.arange(c, device=train.y.device))
    return simulate_model(trainer.model, hw, x, y, cx, cy, timesteps=timesteps, percentile=percentile,
                          run_precision=config.precision, readouts=readouts)
