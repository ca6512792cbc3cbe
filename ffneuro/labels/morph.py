"""Morphological labels (Scodellaro et al., 2025): one morphological transform of a shared texture per class.

Recipe (the paper gives none; this is ours, see docs/labels.md):

1. A fixed random texture: white Gaussian noise of the image size from ``seed``, smoothed with a Gaussian
   of ``smoothing`` pixels (periodic boundary).
2. Class k gets the k-th (operation, structuring element) pair of a fixed bank and its pattern is the
   grey-level *residual* of that operation on the texture: dilation − f, f − erosion, f − opening
   (white top-hat), closing − f (black top-hat). The residual keeps only what the structuring element
   changed, so the class is written in the orientation/shape of the element, not in the texture itself.
3. Each pattern is made zero-mean and scaled to unit max-abs, i.e. into [-1, 1] like the Fourier waves,
   and embedded additively with strength K by :meth:`LabelScheme.embed`.

The bank (156 pairs, enumerated in this order) is: 3-px lines at 0/90/45/135° × 4 ops; 2-px one-sided
rays in 8 directions × {dilate, erode}; 5-px lines at 8 orientations × 4 ops; 4-px rays × 8 directions ×
{dilate, erode}; 9-px lines × 8 orientations × 4 ops; 3-px rays × 16 directions × {dilate, erode}; disk r=1,
X-cross 3, disk r=3 × 4 ops. Rays are only used with dilation/erosion because opening/closing are invariant
to translating the element. A label set whose patterns collide (largest pairwise |Pearson r| above
``max_corr``) is refused with a :class:`ConfigError` naming the pair.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy import ndimage as ndi

from ..errors import ConfigError
from .base import LabelScheme
from .registry import LABELS

OPS = ("dilate", "erode", "open", "close")


def line_se(length: int, angle_deg: float) -> np.ndarray:
    """A symmetric digital line of ``length`` pixels along its dominant axis, centred in a length×length box."""
    r = length // 2
    se = np.zeros((2 * r + 1, 2 * r + 1), bool)
    t = math.radians(angle_deg)
    c, s = math.cos(t), math.sin(t)
    m = max(abs(c), abs(s))
    for u in np.linspace(-r, r, 8 * length + 1):
        se[int(round(r - u * s / m)), int(round(r + u * c / m))] = True
    return se


def ray_se(length: int, angle_deg: float) -> np.ndarray:
    """A one-sided line from the origin, ``length`` pixels towards ``angle_deg`` (origin = array centre)."""
    se = np.zeros((2 * length + 1, 2 * length + 1), bool)
    t = math.radians(angle_deg)
    c, s = math.cos(t), math.sin(t)
    m = max(abs(c), abs(s))
    for u in np.linspace(0, length, 8 * length + 1):
        se[int(round(length - u * s / m)), int(round(length + u * c / m))] = True
    return se


def disk_se(radius: int) -> np.ndarray:
    y, x = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return x * x + y * y <= radius * radius + 0.5 * radius


def xcross_se(size: int) -> np.ndarray:
    eye = np.eye(size, dtype=bool)
    return eye | eye[:, ::-1]


def default_bank() -> list[tuple[str, str, np.ndarray]]:
    """The fixed (operation, element name, element) enumeration; class k uses entry k."""
    bank: list[tuple[str, str, np.ndarray]] = []

    def all_ops(name, se):
        bank.extend((op, name, se) for op in OPS)

    def dil_ero(name, se):
        bank.extend((op, name, se) for op in ("dilate", "erode"))

    eight = (0.0, 90.0, 45.0, 135.0, 22.5, 67.5, 112.5, 157.5)
    for a in eight[:4]:
        all_ops(f"line3@{a:g}", line_se(3, a))
    for a in range(0, 360, 45):
        dil_ero(f"ray2@{a:g}", ray_se(2, a))
    for a in eight:
        all_ops(f"line5@{a:g}", line_se(5, a))
    for a in range(0, 360, 45):
        dil_ero(f"ray4@{a:g}", ray_se(4, a))
    for a in eight:
        all_ops(f"line9@{a:g}", line_se(9, a))
    for a in np.arange(0.0, 360.0, 22.5):
        dil_ero(f"ray3@{a:g}", ray_se(3, float(a)))
    all_ops("disk1", disk_se(1))
    all_ops("xcross3", xcross_se(3))
    all_ops("disk3", disk_se(3))
    return bank


def texture(height: int, width: int, seed: int, smoothing: float) -> np.ndarray:
    """The shared random texture: seeded white noise, Gaussian-smoothed with periodic boundaries."""
    f = np.random.default_rng(seed).standard_normal((height, width))
    return ndi.gaussian_filter(f, smoothing, mode="wrap") if smoothing > 0 else f


def morph_residual(op: str, f: np.ndarray, se: np.ndarray) -> np.ndarray:
    """What grey-level ``op`` with flat element ``se`` changes in ``f`` (always >= 0)."""
    if op == "dilate":
        return ndi.grey_dilation(f, footprint=se, mode="wrap") - f
    if op == "erode":
        return f - ndi.grey_erosion(f, footprint=se, mode="wrap")
    if op == "open":
        return f - ndi.grey_opening(f, footprint=se, mode="wrap")
    if op == "close":
        return ndi.grey_closing(f, footprint=se, mode="wrap") - f
    raise ConfigError(f"unknown morphological operation {op!r}; valid: {', '.join(OPS)}")


def pattern_distinctness(patterns) -> dict:
    """How distinct per-class patterns (classes, ...) are.

    Returns ``max_abs_corr`` (largest pairwise |Pearson r|) with its pair ``max_corr_pair``, and
    ``min_rms_distance`` (smallest pairwise RMS difference) with its pair ``min_rms_pair``. A constant
    pattern has undefined correlation; it counts as |r| = 1 with any other constant pattern, else 0.
    """
    p = torch.as_tensor(patterns).detach().double().flatten(1).cpu().numpy()
    n = p.shape[0]
    if n < 2:
        raise ConfigError("pattern_distinctness needs at least 2 patterns")
    z = p - p.mean(1, keepdims=True)
    norm = np.linalg.norm(z, axis=1)
    const = norm < 1e-12
    zn = z / np.where(const, 1.0, norm)[:, None]
    corr = np.abs(zn @ zn.T)
    corr[np.ix_(const, const)] = 1.0
    sq = (p * p).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * p @ p.T, 0.0) / p.shape[1]
    iu = np.triu_indices(n, 1)
    c, d = corr[iu], np.sqrt(d2[iu])
    ic, idist = int(c.argmax()), int(d.argmin())
    return {
        "max_abs_corr": float(min(c[ic], 1.0)),
        "max_corr_pair": (int(iu[0][ic]), int(iu[1][ic])),
        "min_rms_distance": float(d[idist]),
        "min_rms_pair": (int(iu[0][idist]), int(iu[1][idist])),
    }


@LABELS.register("morph")
class MorphLabels(LabelScheme):
    """Class k: zero-mean, max-abs-1 residual of the k-th (operation, element) of the bank on a seeded texture."""

    def __init__(self, num_classes, image_shape, strength, *, seed: int = 0, smoothing: float = 0.5,
                 max_corr: float = 0.95):
        super().__init__(num_classes, image_shape, strength)
        if smoothing < 0:
            raise ConfigError(f"morph smoothing must be >= 0, got {smoothing}")
        if not 0.0 < max_corr <= 1.0:
            raise ConfigError(f"morph max_corr must lie in (0, 1], got {max_corr}")
        bank = default_bank()
        if num_classes > len(bank):
            raise ConfigError(f"morph labels have {len(bank)} (operation, element) pairs, fewer than {num_classes} classes")
        _, h, w = self.image_shape
        tex = texture(h, w, seed, smoothing)
        pats = []
        self.elements = []
        for k, (op, name, se) in enumerate(bank[:num_classes]):
            r = morph_residual(op, tex, se)
            r = r - r.mean()
            peak = np.abs(r).max()
            if peak < 1e-12:
                raise ConfigError(f"morph class {k} ({op} {name}) leaves the texture unchanged on {h}x{w} images")
            pats.append(r / peak)
            self.elements.append((op, name))
        pats_t = torch.from_numpy(np.stack(pats)).float().unsqueeze(1)
        stats = pattern_distinctness(pats_t)
        self.distinctness = stats
        if stats["max_abs_corr"] > max_corr:
            i, j = stats["max_corr_pair"]
            raise ConfigError(
                f"morph labels collide: classes {i} ({' '.join(self.elements[i])}) and {j} "
                f"({' '.join(self.elements[j])}) have |corr| = {stats['max_abs_corr']:.3f} > max_corr = {max_corr}")
        self.seed, self.smoothing, self.max_corr = int(seed), float(smoothing), float(max_corr)
        self.register_buffer("patterns", pats_t, persistent=False)
