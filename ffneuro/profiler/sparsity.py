"""Activation sparsity on real data, and NeuroBench-style effective MACs.

An event-driven core only does work for nonzero inputs: a MAC whose input activation is zero is
skipped. NeuroBench counts *effective MACs* that way; for a unit whose input is a fraction ``s`` zero
that is ``dense MACs × (1 - s)`` (per-unit average; exact per sample for a stride-1 conv, since every
input element takes part in the same number of MACs up to zero padding at the border; a stride-2 conv
(``pool="stride"``) uses odd and even positions unequally, so there it is an estimate).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


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
    """Per unit: the zero fraction of what it receives and of its neurons (ReLU outputs, pre-pool)."""

    units: tuple[str, ...]
    input_zero_fraction: tuple[float, ...]
    neuron_zero_fraction: tuple[float, ...]

    def to_dict(self) -> dict:
        return {"units": list(self.units), "input_zero_fraction": list(self.input_zero_fraction),
                "neuron_zero_fraction": list(self.neuron_zero_fraction)}


@torch.no_grad()
def measure_activity(model, x_batch: torch.Tensor, labels: torch.Tensor | None = None) -> Activity:
    """Run ``x_batch`` (images in [0, 1]) through an FFNet or BPNet (its ``walk``) and record, per unit,
    the zero fraction of its input and of its neurons (the block's output, what goodness is measured on).

    Unit 1 receives what the model feeds it in training (``model.activity_input``): an FF network with a
    label in the image, the positive embedding with ``labels`` (the neutral one without); an image
    without a label, or a BP network, the raw image. Each later unit receives the previous one's hand-on
    output (for the conv block pooled and RMS-normalised, which keeps the ReLU zeros).
    """
    if not hasattr(model, "walk"):
        raise TypeError(f"expected an FFNet or BPNet, got {type(model).__name__}")
    was_training = model.training
    model.eval()
    try:
        names, inputs, neurons = [], [], []
        unit_names = [c.name for c in model.costs()]
        for step in model.walk(model.activity_input(x_batch, labels)):
            names.append(unit_names[step.index])
            inputs.append(zero_fraction(step.x))
            neurons.append(zero_fraction(step.y))
    finally:
        model.train(was_training)
    return Activity(tuple(names), tuple(inputs), tuple(neurons))


def measure_sparsity(model, x_batch: torch.Tensor, labels: torch.Tensor | None = None) -> list[float]:
    """Input zero fraction of each unit (see :func:`measure_activity`): what the profiler's
    ``sparsity`` argument takes."""
    return list(measure_activity(model, x_batch, labels).input_zero_fraction)
