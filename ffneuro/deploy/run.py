"""``ffneuro export``'s library side: restore a stored run, deploy it, write the NIR file, and measure
what the deployment changed (the float network vs the exported graph evaluated in PyTorch)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

from ..config import stored_config
from ..data.normalise import refuse_standardised
from ..errors import ConfigError
from ..store import read_run
from ..train.runfile import restore_run
from .export import Deployed, deploy_network, graph_forward, max_pool_refusal, read_graph

FORMATS = ("nir",)


@dataclass
class ExportReport:
    """What an export wrote and measured: one line per change, accuracy per readout (float network,
    exported graph at fp32 and, for int8, at int8) on ``images`` test images."""

    out: str
    precision: str
    changes: list[str]
    images: int
    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)   # readout -> {"float", "exported", ("int8")}

    def lines(self) -> list[str]:
        out = [f"wrote {self.out} (NIR, {self.precision})", "what differs from the trained network:"]
        out += [f"  - {c}" for c in self.changes]
        for readout, acc in self.accuracy.items():
            parts = [f"float {acc['float']:.4f}", f"exported {acc['exported']:.4f} ({acc['exported'] - acc['float']:+.4f})"]
            if "int8" in acc:
                parts.append(f"int8 {acc['int8']:.4f} ({acc['int8'] - acc['float']:+.4f})")
            out.append(f"{readout} readout on {self.images} test images: " + ", ".join(parts))
        return out


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def graph_accuracy(graph, deployed: Deployed, model, x: torch.Tensor, y: torch.Tensor, readouts: list[str],
                   batch: int = 250) -> dict[str, float]:
    """Accuracy of the exported ``graph`` (IF neurons at their rate) per readout: linear from the graph's
    output on the readout's input, goodness from the neurons the model measures it on."""
    correct = dict.fromkeys(readouts, 0)
    pairs = getattr(model, "pairs", False)
    record = tuple(k for k, _, _ in deployed.goodness_nodes.values())
    units = {u.name: u for u in getattr(model, "units", [])}
    readout_units = [list(units)[i] for i in getattr(model, "readout_units", [])]
    for sl in _batches(len(y), batch):
        xb, yb = x[sl], y[sl]
        if "linear" in readouts:
            logits, _ = graph_forward(graph, model.readout_input(xb))
            correct["linear"] += int((logits.argmax(1) == yb).sum())
        if "goodness" in readouts:
            h = model.labels.embed_all(xb) if pairs else xb
            _, rec = graph_forward(graph, h, record=record)
            total = None
            for name in readout_units:
                key, a, b = deployed.goodness_nodes[name]
                g = units[name].scores((rec[key] * a.double() + b.double()).float())
                total = g if total is None else total + g
            correct["goodness"] += int((total.view(len(yb), -1).argmax(1) == yb).sum())
    return {r: c / max(1, len(y)) for r, c in correct.items()}


def export_run(run_path: str | os.PathLike, out: str | os.PathLike, *, fmt: str = "nir", precision: str = "fp32",
               weights: str = "final", images: int = 1000, calibration: int = 1000,
               data_dir: str | os.PathLike | None = None, force: bool = False) -> ExportReport:
    """Export the run at ``run_path`` to ``out`` and measure the change on its first ``images`` test
    images; the RMS scales are calibrated on ``calibration`` training images."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; valid: {', '.join(FORMATS)}")
    if os.path.exists(out) and not force:
        raise ConfigError(f"{out} exists; pass --force to replace it")
    if images < 1 or calibration < 1:
        raise ConfigError("--images and --calibration must be >= 1")
    record = read_run(run_path)
    config = stored_config(record, device="cpu")
    if config.pool == "max":     # refused before any data loads (deploy_network checks each unit again)
        raise ConfigError(max_pool_refusal(config.to_dict(), str(run_path)))
    refuse_standardised(config.normalise, str(run_path), "export",
                        "a NIR graph has no input-normalisation node, and the first conv's zero padding keeps it "
                        "from being folded into the weights exactly")
    trainer = restore_run(record, config, weights, data_dir)
    model, config = trainer.model.eval(), trainer.config
    readouts = model.readouts()
    n = min(images, len(trainer.test))
    xt, yt = trainer.test.batch(slice(0, n))
    float_acc = trainer.evaluate(trainer.test, readouts, limit=n)
    xc, yc = trainer.train.batch(slice(0, min(calibration, len(trainer.train))))
    calib = model.activity_input(xc, yc) if hasattr(model, "activity_input") else xc
    report = ExportReport(str(out), precision, [], n)
    results: dict[str, dict[str, float]] = {r: {"float": float_acc[r]} for r in readouts}
    for prec in (["fp32", "int8"] if precision == "int8" else ["fp32"]):
        deployed = deploy_network(model, config.to_dict(), calib, prec)
        if prec == precision:
            tmp = f"{out}.tmp{os.getpid()}"
            try:
                deployed.write(tmp)
                os.replace(tmp, out)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            report.changes = deployed.changes
            graph = read_graph(out)           # measure the file as written
        else:
            graph = deployed.graph()
        acc = graph_accuracy(graph, deployed, model, xt, yt, readouts)
        for r in readouts:
            results[r]["exported" if prec == "fp32" else "int8"] = acc[r]
    report.accuracy = results
    return report


__all__ = ["FORMATS", "ExportReport", "export_run", "graph_accuracy"]
