"""Activation sparsity on real data, and NeuroBench's effective synaptic ops per layer.

An event-driven core only does work for nonzero inputs: a synaptic op whose input activation is zero is
skipped. ``dense × (1 - s)`` for a unit whose input is a fraction ``s`` zero is only an estimate of
that: a conv's border outputs have fewer real synapses, and where the zeros sit at the border (MNIST's
black frame) the average over-counts the skipped work (11.7% on BP16's first layer). So
:func:`measure_activity` also counts, per layer and output position, the synapses whose input and weight
are nonzero (:mod:`.synops`, NeuroBench's ``SynapticOperations``), the readout or head included.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .synops import count_synops, synaptic_layers


def zero_fraction(t: torch.Tensor) -> float:
    """Fraction of exactly-zero elements (0.0 for an empty tensor). ``count_nonzero`` allocates
    nothing; ``(t == 0).sum()`` made a bool mask and an int64 copy of it (twice ``t``'s fp32 bytes)."""
    n = t.numel()
    return 0.0 if n == 0 else (n - int(torch.count_nonzero(t))) / n


def effective_macs(dense_macs: float, input_zero_fraction: float) -> float:
    """MACs left when those with a zero input activation are skipped."""
    if not 0.0 <= input_zero_fraction <= 1.0:
        raise ValueError(f"a zero fraction must lie in [0, 1], got {input_zero_fraction}")
    return dense_macs * (1.0 - input_zero_fraction)


@dataclass(frozen=True)
class Activity:
    """Per unit: the zero fraction of what it receives and of its neurons (ReLU outputs, pre-pool); per
    layer with synapses (the units, then the FF linear ``readout`` or the BP ``head``), the effective and
    dense synaptic ops of one sample (NeuroBench's counts, :mod:`.synops`)."""

    units: tuple[str, ...]
    input_zero_fraction: tuple[float, ...]
    neuron_zero_fraction: tuple[float, ...]
    synops_layers: tuple[str, ...] = ()
    effective_synops: tuple[float, ...] = ()
    dense_synops: tuple[float, ...] = ()

    def to_dict(self) -> dict:
        d = {"units": list(self.units), "input_zero_fraction": list(self.input_zero_fraction),
             "neuron_zero_fraction": list(self.neuron_zero_fraction)}
        if self.synops_layers:
            d.update(synops_layers=list(self.synops_layers), effective_synops=list(self.effective_synops),
                     dense_synops=list(self.dense_synops))
        return d

    def synops(self) -> dict[str, tuple[float, float]]:
        """By layer name: (effective, dense) synaptic ops per sample."""
        return dict(zip(self.synops_layers, zip(self.effective_synops, self.dense_synops, strict=True), strict=True))


@torch.no_grad()
def measure_activity(model, x_batch: torch.Tensor, labels: torch.Tensor | None = None) -> Activity:
    """Run ``x_batch`` (images in [0, 1]) through an FFNet or BPNet (its ``walk``) and record, per unit,
    the zero fraction of its input and of its neurons (the block's output, what goodness is measured on).

    Unit 1 receives what the model feeds it in training (``model.activity_input``): an FF network with a
    label in the image, the positive embedding with ``labels`` (the neutral one without); an image
    without a label, or a BP network, the raw image. Each later unit receives the previous one's hand-on
    output (for the conv block pooled and RMS-normalised, which keeps the ReLU zeros).

    The same pass counts each unit's effective synaptic ops; the FF linear readout is counted on what
    it reads in training and inference (the units' hand-on outputs of the neutral embedding, or of the
    image without labels), the BP head on the last block's output.
    """
    if not hasattr(model, "walk"):
        raise TypeError(f"expected an FFNet or BPNet, got {type(model).__name__}")
    was_training = model.training
    model.eval()
    try:
        names, inputs, neurons, effective, dense = [], [], [], [], []
        unit_names = [c.name for c in model.costs()]
        readout, readout_name = _readout_layer(model)
        unit_layers = [m for m in synaptic_layers(model) if readout is None or m is not readout]
        last = None
        with count_synops(unit_layers) as counter:
            for step in model.walk(model.activity_input(x_batch, labels)):
                names.append(unit_names[step.index])
                inputs.append(zero_fraction(step.x))
                neurons.append(zero_fraction(step.y))
                e, d = counter.take()
                effective.append(e / len(x_batch))
                dense.append(d / len(x_batch))
                last = step.out
        if readout is not None:
            features = last.flatten(1) if readout_name == "head" else model.features(model.readout_input(x_batch))
            with count_synops([readout]) as counter:
                readout(features)
            e, d = counter.take()
            effective.append(e / len(x_batch))
            dense.append(d / len(x_batch))
            names_synops = (*names, readout_name)
        else:
            names_synops = tuple(names)
    finally:
        model.train(was_training)
    return Activity(tuple(names), tuple(inputs), tuple(neurons), names_synops, tuple(effective), tuple(dense))


def _readout_layer(model) -> tuple[torch.nn.Linear | None, str]:
    """The layer that classifies from the units: the BP ``head`` or the FF linear ``readout`` (the
    accounting's names for them), or None for an FF network with the goodness readout only."""
    head = getattr(model, "head", None)
    if isinstance(head, torch.nn.Linear):
        return head, "head"
    linear = getattr(model, "linear", None)
    if linear is not None:
        return linear.linear, "readout"
    return None, ""


def measure_sparsity(model, x_batch: torch.Tensor, labels: torch.Tensor | None = None) -> list[float]:
    """Input zero fraction of each unit (see :func:`measure_activity`): what the profiler's
    ``sparsity`` argument takes."""
    return list(measure_activity(model, x_batch, labels).input_zero_fraction)
