"""NeuroBench's effective synaptic operations, counted per layer on real data (pure torch).

An event-driven core does the work of a synapse only when its input is nonzero. NeuroBench's
``SynapticOperations`` counts that per output position: for each output, the synapses whose input and
weight are both nonzero. An average zero fraction times the dense count is not the same number: a
conv's border outputs have fewer real synapses (zero padding), and where the input's zeros sit at the
border (MNIST's black frame) the average over-counts the skipped work. A linear layer's (the readout's,
the BP head's) input zeros are skipped like any other.

:func:`layer_synops` counts one ``nn.Conv2d``/``nn.Linear``; :func:`count_synops` hooks every such layer
of a module while a pass runs. Counts are exact integers (a conv of 0/1 masks in fp32, summed in fp64).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ..errors import NotModelled

CHUNK = 64   # rows counted at once: the masks add about CHUNK rows of the layer's input and output


def _apply(layer: nn.Module, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    if isinstance(layer, nn.Conv2d):
        if layer.padding_mode != "zeros":
            raise NotModelled(f"effective synaptic ops of a conv with {layer.padding_mode!r} padding")
        return nn.functional.conv2d(x, w, None, layer.stride, layer.padding, layer.dilation, layer.groups)
    if isinstance(layer, nn.Linear):
        return nn.functional.linear(x, w)
    raise NotModelled(f"effective synaptic ops of a {type(layer).__name__}")


@torch.no_grad()
def layer_synops(layer: nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """(effective, dense) synaptic ops of ``layer`` on input ``x``, summed over its rows.

    Effective: for every output, the synapses whose input and weight are both nonzero (NeuroBench's
    ``single_layer_MACs``: the layer with 0/1 weights applied to the 0/1 input, bias left out); padding
    taps read zeros and never count. Dense: every real synapse (input and weights all ones)."""
    weight = layer.weight.detach()
    w_mask = (weight != 0).float()
    ones = torch.ones_like(w_mask)
    effective = 0.0
    with torch.autocast(device_type=x.device.type, enabled=False):
        dense = float(_apply(layer, torch.ones_like(x[:1], dtype=torch.float32), ones).sum(dtype=torch.float64))
        for start in range(0, x.shape[0], CHUNK):
            mask = (x[start:start + CHUNK] != 0).float()
            effective += float(_apply(layer, mask, w_mask).sum(dtype=torch.float64))
    return effective, dense * x.shape[0]


def synaptic_layers(module: nn.Module) -> list[nn.Module]:
    """Every ``nn.Conv2d`` and ``nn.Linear`` inside ``module``: the layers with synapses."""
    return [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


class SynopsCounter:
    """Running (effective, dense) totals, fed by forward hooks; :meth:`take` reads and resets them."""

    def __init__(self) -> None:
        self.effective = self.dense = 0.0

    def hook(self, layer: nn.Module, args: tuple, _out) -> None:
        e, d = layer_synops(layer, args[0])
        self.effective += e
        self.dense += d

    def take(self) -> tuple[float, float]:
        out = (self.effective, self.dense)
        self.effective = self.dense = 0.0
        return out


@contextmanager
def count_synops(layers: list[nn.Module]) -> Iterator[SynopsCounter]:
    """Count the synaptic ops of ``layers`` while the block runs (every call of each one adds)."""
    counter = SynopsCounter()
    handles = [layer.register_forward_hook(counter.hook) for layer in layers]
    try:
        yield counter
    finally:
        for h in handles:
            h.remove()
