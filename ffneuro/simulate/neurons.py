"""Neuron state updates, one timestep at a time: rate-coded integrate-and-fire (reset by subtraction),
the sigma-delta encoder of graded spikes, spike max pooling, and threshold balancing. Pure functions of
tensors; the caller keeps the state."""
from __future__ import annotations

import torch
from torch.nn import functional as F


def if_step(v: torch.Tensor, current: torch.Tensor, threshold: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Integrate-and-fire: v += current; a neuron at or above ``threshold`` spikes once and loses
    ``threshold`` (reset by subtraction, which keeps the surplus: Rueckauer et al. 2017). (new v, spikes)."""
    v = v + current
    spikes = (v >= threshold).to(v.dtype)
    return v - spikes * threshold, spikes


def sigma_delta_step(sent: torch.Tensor, activation: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Sigma-delta (Loihi 2 graded spikes): a neuron sends the change of its activation since the value
    it last sent, when that change is at least ``threshold`` in size; the receiver adds the changes up.
    (what the receivers now hold, the graded messages sent: zero where nothing was sent)."""
    delta = activation - sent
    message = torch.where(delta.abs() >= threshold, delta, torch.zeros_like(delta))
    return sent + message, message


def spike_max_pool(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """2×2 max pooling of spike trains from each neuron's spike count before and after this step: the pooled
    neuron spikes when the window's largest count grows (by at most one a step), so over T steps it fires
    exactly as often as the window's busiest neuron: its rate is the max of the window's rates. Gating by
    the leader so far (Rueckauer et al. 2017) loses spikes whenever the lead changes, and gating by the
    count including this step passes nearly every spike of neurons with similar rates (both measured
    worse on mnist-small)."""
    return F.max_pool2d(after, 2) - F.max_pool2d(before, 2)


def balance_scale(activations: torch.Tensor, percentile: float) -> float:
    """Data-based threshold balancing: the layer's activation scale λ, the ``percentile``-th percentile of
    its positive activations (100: the maximum; Diehl et al. 2015 use the maximum, Rueckauer et al. 2017
    the 99.9th percentile). 1.0 when the layer never activates."""
    if not 0.0 < percentile <= 100.0:
        raise ValueError(f"percentile must lie in (0, 100], got {percentile}")
    pos = activations.detach().flatten()
    pos = pos[pos > 0]
    if pos.numel() == 0:
        return 1.0
    if percentile >= 100.0:
        return float(pos.max())
    pos = pos.double()
    if pos.numel() > 2_000_000:   # torch.quantile's size limit (16M); a strided sample is plenty for a percentile
        pos = pos[:: pos.numel() // 2_000_000 + 1]
    return float(torch.quantile(pos, percentile / 100.0))


def normalised_layer(weight: torch.Tensor, bias: torch.Tensor | None, lam_in: float, lam_out: float
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A layer rescaled for spiking neurons of threshold 1 whose rates stand for activations a/λ:
    W' = W·λ_in/λ_out, b' = b/λ_out (Diehl et al. 2015, Rueckauer et al. 2017)."""
    return weight * (lam_in / lam_out), None if bias is None else bias / lam_out
