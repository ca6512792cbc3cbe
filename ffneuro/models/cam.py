"""Class activation maps (CAM) of an FF-CNN: where in the image each class's evidence comes from.

Two maps per readout unit, both as pure functions on tensors plus thin wrappers around :class:`FFNet`:

- **Linear-readout CAM** (as in Scodellaro et al.): the linear readout sees the concatenated, flattened
  hand-on maps A_u (N, C_u, H_u, W_u) of the readout units for the *neutral*-embedded image. With W_u the
  slice (classes, C_u·H_u·W_u) of the weight matrix that belongs to unit u, reshaped to
  (classes, C_u, H_u, W_u)::

      CAM_u[n, k, h, w] = Σ_c W_u[k, c, h, w] · A_u[n, c, h, w]

  the contribution of position (h, w) of unit u to class k's logit, so
  ``Σ_u Σ_hw CAM_u[n, k] + bias[k] == logits[n, k]``.
- **Goodness map** (FF-native): with label k embedded, the goodness each neuron position of unit u adds,
  ``G_u[n, k, h, w] = s_u · Σ_c y_u[n, c, h, w]²`` at neuron resolution (before pooling), where s_u is the
  scale of the unit's goodness (1 for ``sumsq``, 1/#neurons for ``meansq``); Σ_hw over the readout units
  is :meth:`FFNet.goodness_scores`.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .ff_net import FFNet

# ----------------------------------------------------------------------------------------- pure functions


def split_linear_weight(weight: torch.Tensor, shapes: Sequence[Sequence[int]]) -> list[torch.Tensor]:
    """Cut a linear weight (classes, Σ_u C_u·H_u·W_u) into per-unit (classes, C_u, H_u, W_u) slices.

    ``shapes`` are the per-unit feature shapes (C_u, H_u, W_u) in the order the features were
    concatenated; each unit's features were flattened C-major (``Tensor.flatten(1)``).
    """
    sizes = [math.prod(s) for s in shapes]
    if weight.dim() != 2 or weight.shape[1] != sum(sizes):
        raise ValueError(f"weight of shape {tuple(weight.shape)} does not match features of sizes {sizes} "
                         f"(total {sum(sizes)})")
    return [w.reshape(weight.shape[0], *s) for w, s in zip(weight.split(sizes, dim=1), shapes)]


def linear_cam(features: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """CAM[n, k, h, w] = Σ_c weight[k, c, h, w] · features[n, c, h, w].

    ``features``: (N, C, H, W) one unit's hand-on maps; ``weight``: that unit's slice of the linear
    weight, (K, C, H, W) or flat (K, C·H·W). Returns (N, K, H, W).
    """
    if features.dim() != 4:
        raise ValueError(f"features must be (N, C, H, W), got shape {tuple(features.shape)}")
    if weight.dim() == 2:
        weight = weight.reshape(weight.shape[0], *features.shape[1:])
    if tuple(weight.shape[1:]) != tuple(features.shape[1:]):
        raise ValueError(f"weight {tuple(weight.shape)} does not fit features {tuple(features.shape)}")
    return torch.einsum("kchw,nchw->nkhw", weight.float(), features.float())


def goodness_map(y: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Per-position goodness scale · Σ_c y[n, c, h, w]²: (N, C, H, W) → (N, H, W); Σ_hw is the goodness."""
    if y.dim() != 4:
        raise ValueError(f"activations must be (N, C, H, W), got shape {tuple(y.shape)}")
    g = y.float().pow(2).sum(1)
    return g if scale == 1.0 else g * scale


def goodness_scale(goodness, neuron_shape: Sequence[int]) -> float:
    """s with goodness.fn(y) == s · Σ y² for a unit whose neurons have shape (C, H, W).

    Probed on an all-ones activation: Σ 1² is the neuron count, so sumsq gives 1 and meansq 1/#neurons.
    """
    ones = torch.ones(1, *neuron_shape)
    return float(goodness.fn(ones)) / ones.numel()


# ----------------------------------------------------------------------------------------- FFNet wrappers


@torch.no_grad()
def hand_on_maps(model: FFNet, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Hand-on maps (N, C_u, H_u, W_u) of every readout unit for already-embedded images ``x``."""
    out, h = {}, x
    for i, unit in enumerate(model.units[: model.readout_units[-1] + 1]):
        h = unit.hand_on(unit(h))
        if i in model.readout_units:
            out[unit.name] = h
    return out


@torch.no_grad()
def linear_cams(model: FFNet, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Linear-readout CAM per readout unit, (N, classes, H_u, W_u), for raw images ``x`` in [0, 1].

    The images get the neutral label, as the linear readout sees them. Raises ValueError if the
    network has no linear readout.
    """
    if model.linear is None:
        raise ValueError("this network has no linear readout")
    maps = hand_on_maps(model, model.labels.embed_neutral(x))
    weights = split_linear_weight(model.linear.linear.weight, [m.shape[1:] for m in maps.values()])
    return {name: linear_cam(a, w) for (name, a), w in zip(maps.items(), weights)}


@torch.no_grad()
def goodness_maps(model: FFNet, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Goodness map per readout unit, (N, classes, H, W) at neuron resolution, for raw images ``x``.

    Entry [n, k] is computed with label k embedded in image n; summed over (h, w) and the readout
    units it equals ``model.goodness_scores(x)``. Costs one forward per class per image.
    """
    n, k = x.shape[0], model.num_classes
    h = model.labels.embed_all(x)
    out = {}
    for i, unit in enumerate(model.units[: model.readout_units[-1] + 1]):
        y = unit(h)
        if i in model.readout_units:
            g = goodness_map(y, goodness_scale(unit.goodness, y.shape[1:]))
            out[unit.name] = g.view(n, k, *g.shape[1:])
        h = unit.hand_on(y)
    return out


__all__ = [
    "goodness_map",
    "goodness_maps",
    "goodness_scale",
    "hand_on_maps",
    "linear_cam",
    "linear_cams",
    "split_linear_weight",
]
