"""Class activation maps (CAM) of an FF-CNN: where in the image each class's evidence comes from.

Two maps per readout unit, both as pure functions on tensors plus thin wrappers around :class:`FFNet`:

- **Linear-readout CAM** (as in Scodellaro et al.): the linear readout sees the concatenated, flattened
  hand-on maps A_u (N, C_u, H_u, W_u) of the readout units for the *neutral*-embedded image. With W_u the
  slice (classes, C_u·H_u·W_u) of the weight matrix that belongs to unit u, reshaped to
  (classes, C_u, H_u, W_u)::

      CAM_u[n, k, h, w] = Σ_c W_u[k, c, h, w] · A_u[n, c, h, w]

  the contribution of position (h, w) of unit u to class k's logit, so
  ``Σ_u Σ_hw CAM_u[n, k] + bias[k] == logits[n, k]``.
- **Goodness map** (FF-native): the goodness each position of unit u adds for class k, at the resolution
  goodness is measured on (the conv block: before pooling), as the unit's goodness splits it
  (:meth:`~ffneuro.goodness.Goodness.position_map`). Pair objective: with label k embedded,
  ``G_u[n, k, h, w] = s_u · Σ_c y_u[n, c, h, w]²`` (s_u 1 for ``sumsq``, 1/#neurons for ``meansq``);
  class-wise goodness (CwComp): one forward, ``G_u[n, k, h, w]`` the mean square of class k's channels
  there. Σ_hw over the readout units is :meth:`FFNet.goodness_scores` either way.

Both need a spatial map: a fully connected unit (``--arch fc``) has none, so its maps are refused with
that reason rather than drawn as something they are not.
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
    """s with goodness.fn(y) == s · Σ y² for a unit whose neurons have shape (C, H, W) (per-sample goodness).

    Probed on an all-ones activation: Σ 1² is the neuron count, so sumsq gives 1 and meansq 1/#neurons.
    """
    ones = torch.ones(1, *neuron_shape)
    return float(goodness.fn(ones)) / ones.numel()


def _check_spatial(model) -> None:
    flat = [u.name for u in model.units if len(u.block.out_shape) != 3]
    if flat:
        raise ValueError(f"{', '.join(flat)} {'is a' if len(flat) == 1 else 'are'} fully connected unit(s) with no "
                         "spatial layout: class activation and goodness maps need (C, H, W) feature maps")


# ----------------------------------------------------------------------------------------- FFNet wrappers


@torch.no_grad()
def hand_on_maps(model: FFNet, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Hand-on maps (N, C_u, H_u, W_u) of every readout unit for already-prepared input ``x``."""
    return {step.unit.name: step.out for step in model.walk(x, model.readout_units[-1] + 1)
            if step.index in model.readout_units}


@torch.no_grad()
def linear_cams(model: FFNet, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Linear-readout CAM per readout unit, (N, classes, H_u, W_u), for raw images ``x`` in [0, 1].

    The images enter as the linear readout sees them (neutral label, or no label). Raises ValueError if
    the network has no linear readout or no spatial maps.
    """
    if model.linear is None:
        raise ValueError("this network has no linear readout")
    _check_spatial(model)
    maps = hand_on_maps(model, model.readout_input(x))
    weights = split_linear_weight(model.linear.linear.weight, [m.shape[1:] for m in maps.values()])
    return {name: linear_cam(a, w) for (name, a), w in zip(maps.items(), weights)}


@torch.no_grad()
def goodness_maps(model: FFNet, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Goodness map per readout unit, (N, classes, H, W) where goodness is measured, for raw images ``x``.

    Pair objective: entry [n, k] is computed with label k embedded in image n (one forward per class);
    class-wise goodness: entry [n, k] is class k's share of one forward. Summed over (h, w) and the
    readout units it equals ``model.goodness_scores(x)``. Raises ValueError without spatial maps.
    """
    _check_spatial(model)
    n, k = x.shape[0], model.num_classes
    h = model.labels.embed_all(x) if model.pairs else x
    out = {}
    for step in model.walk(h, model.readout_units[-1] + 1):
        if step.index in model.readout_units:
            g = step.unit.goodness.position_map(step.y, step.unit.classes)   # (rows, 1 or classes, H, W)
            out[step.unit.name] = g.reshape(n, k, *g.shape[2:])
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
