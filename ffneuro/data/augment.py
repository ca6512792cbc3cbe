"""Training-batch augmentation: pure, vectorised torch functions on float (N, C, H, W) image batches.

Every random draw comes from the ``generator`` passed in (the trainer's), so CPU runs stay
deterministic by seed. Applied by :class:`ffneuro.train.Trainer` to training batches only, before the
FF label pattern is embedded (the label pattern itself is never shifted or flipped); evaluation never
sees augmented images. ``augment="none"`` draws nothing, so runs without augmentation are unchanged.
"""
from __future__ import annotations

import math

import torch

CROP_PADDING = 4  # the usual CIFAR setting (32×32 images padded to 40×40, cropped back to 32×32)
ROTATION_DEGREES = 15.0  # rotate: angles uniform in ±this (the Trifecta's code: torchvision RandomRotation(15))
PARTS = ("crop", "rotate", "flip")   # what an augment mode combines, in the order they apply


def random_crop(x: torch.Tensor, padding: int = CROP_PADDING, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pad each image by ``padding`` pixels of zeros on every side, then crop back to H×W at a random
    offset drawn per sample (uniform in 0..2·padding on each axis).

    Zero padding (not reflection) as in the common CIFAR recipe (torchvision ``RandomCrop(32, 4)``'s
    default fill): images lie in [0, 1], so the border reads as black, which a shifted view never creates
    from real content. Returns a new tensor; ``x`` is left untouched.
    """
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    if padding == 0 or x.shape[0] == 0:
        return x.clone()
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=x.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=x.device)
    rows = dy[:, None] + torch.arange(h, device=x.device)          # (N, H)
    cols = dx[:, None] + torch.arange(w, device=x.device)          # (N, W)
    batch = torch.arange(n, device=x.device)[:, None, None]
    # (N, H+2p, W+2p, C) indexed per sample → (N, H, W, C) → back to channels first
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def random_flip(x: torch.Tensor, generator: torch.Generator | None = None, p: float = 0.5) -> torch.Tensor:
    """Mirror each image left-right with probability ``p`` (drawn per sample). Returns a new tensor."""
    flip = torch.rand(x.shape[0], generator=generator, device=x.device) < p
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def rotate(x: torch.Tensor, radians: torch.Tensor) -> torch.Tensor:
    """Rotate image ``i`` about its centre by ``radians[i]`` (counter-clockwise, as torchvision's ``rotate``);
    nearest neighbour, the corners it uncovers zero (black in [0, 1]), the size kept: torchvision's rotation of
    the PIL image up to where a rounded pixel centre falls (``benchmarks/fidelity.py rotation`` counts those
    pixels). Returns a new tensor."""
    n, _, h, w = x.shape
    if n == 0:
        return x.clone()
    angle = radians.to(torch.float64)
    cos, sin = angle.cos(), angle.sin()
    # affine_grid works in coordinates normalised to [-1, 1] per axis: a rotation in pixels, re-scaled for H != W
    theta = torch.zeros(n, 2, 3, dtype=torch.float64, device=x.device)
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin * h / w
    theta[:, 1, 0], theta[:, 1, 1] = sin * w / h, cos
    grid = torch.nn.functional.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def random_rotation(x: torch.Tensor, degrees: float = ROTATION_DEGREES,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """:func:`rotate` each image by an angle drawn per sample, uniform in ±``degrees`` (torchvision's
    ``RandomRotation(degrees)``). Returns a new tensor."""
    draw = torch.rand(x.shape[0], generator=generator, device=x.device, dtype=torch.float64)
    return rotate(x, (draw * 2 - 1) * math.radians(degrees))


def augment_batch(x: torch.Tensor, mode: str, generator: torch.Generator | None = None,
                  padding: int = CROP_PADDING) -> torch.Tensor:
    """Apply ``mode`` (``RunConfig.augment``): none, or ``+``-joined parts of crop, rotate and flip, applied
    in that order (the Trifecta's code crops, then rotates); a crop pads ``padding`` pixels
    (``RunConfig.crop_padding``) on every side."""
    if mode == "none":
        return x
    parts = mode.split("+")
    if set(parts) - set(PARTS) or len(set(parts)) != len(parts):
        raise ValueError(f"unknown augment {mode!r}; valid: none or +-joined {', '.join(PARTS)}")
    if "crop" in parts:
        x = random_crop(x, padding, generator)
    if "rotate" in parts:
        x = random_rotation(x, ROTATION_DEGREES, generator)
    if "flip" in parts:
        x = random_flip(x, generator)
    return x
