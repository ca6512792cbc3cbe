"""Neuron state updates, one timestep at a time: rate-coded integrate-and-fire (reset by subtraction),
the sigma-delta encoder of graded spikes, spike max pooling, and threshold balancing. Pure functions of
tensors; the caller keeps the state."""
from __future__ import annotations

import torch


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


def spike_max_pool(spikes: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """2×2 max pooling of spike trains: each window passes the spike of the neuron that has fired most so
    far (``counts``, spikes up to and including this step; ties to the first), so its rate tends to the
    largest rate of the window (Rueckauer et al. 2017)."""
    n, c, h, w = spikes.shape
    h2, w2 = h // 2, w // 2

    def windows(t: torch.Tensor) -> torch.Tensor:
        t = t[:, :, : 2 * h2, : 2 * w2].reshape(n, c, h2, 2, w2, 2)
        return t.permute(0, 1, 2, 4, 3, 5).reshape(n, c, h2, w2, 4)

    winner = windows(counts).argmax(-1, keepdim=True)
    return windows(spikes).gather(-1, winner).squeeze(-1)


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
