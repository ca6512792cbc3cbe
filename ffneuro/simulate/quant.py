"""How targets store numbers: symmetric integer quantisation (per channel or per layer), ternary synapses,
and the float formats GPUs compute in (TF32, bf16). Pure tensor functions, no state."""
from __future__ import annotations

import torch


def symmetric_scale(w: torch.Tensor, bits: int, per_channel: bool) -> torch.Tensor:
    """The quantum of a symmetric ``bits``-bit code for ``w``: max|w| / (2^(bits-1) - 1), one per output
    channel (dim 0) or one for the tensor; shaped to broadcast against ``w``. A zero channel gets quantum 1."""
    if bits < 2:
        raise ValueError(f"a symmetric code needs at least 2 bits, got {bits}")
    levels = 2 ** (bits - 1) - 1
    if per_channel:
        peak = w.abs().flatten(1).amax(1).view(-1, *([1] * (w.dim() - 1)))
    else:
        peak = w.abs().amax()
    scale = peak / levels
    return torch.where(scale > 0, scale, torch.ones_like(scale))


def quantize(x: torch.Tensor, scale: torch.Tensor | float, lo: int, hi: int) -> tuple[torch.Tensor, int]:
    """``x`` rounded to the nearest multiple of ``scale`` (half to even), clipped to codes ``lo..hi``:
    (dequantised values, how many elements were clipped)."""
    codes = torch.round(x / scale)
    clipped = int(((codes < lo) | (codes > hi)).sum())
    return codes.clamp(lo, hi) * scale, clipped


def quantize_symmetric(w: torch.Tensor, bits: int, per_channel: bool) -> torch.Tensor:
    """``w`` stored as a symmetric ``bits``-bit integer with a per-channel (dim 0) or per-tensor scale, dequantised."""
    scale = symmetric_scale(w, bits, per_channel)
    levels = 2 ** (bits - 1) - 1
    return quantize(w, scale, -levels, levels)[0]


def ternarize(w: torch.Tensor, magnitude_bits: int = 8, delta_factor: float = 0.7) -> torch.Tensor:
    """Ternary synapses {-a_c, 0, +a_c} per output channel (Li & Liu's ternary weight networks: threshold
    0.7·mean|w_c|, a_c the mean magnitude above it), the magnitudes a_c then stored as ``magnitude_bits``-bit
    unsigned integers of one per-layer quantum (TrueNorth: a neuron's signed 9-bit weight per axon type)."""
    flat = w.flatten(1)
    delta = delta_factor * flat.abs().mean(1, keepdim=True)
    mask = flat.abs() > delta
    count = mask.sum(1, keepdim=True).clamp_min(1)
    alpha = (flat.abs() * mask).sum(1, keepdim=True) / count
    levels = 2 ** magnitude_bits - 1
    quantum = alpha.amax() / levels
    if quantum > 0:
        alpha = torch.round(alpha / quantum).clamp(0, levels) * quantum
    return (torch.sign(flat) * mask * alpha).view_as(w)


def round_tf32(x: torch.Tensor) -> torch.Tensor:
    """fp32 values rounded to TF32 (10 explicit mantissa bits, fp32's exponent), round half to even, as
    tensor cores read their operands."""
    if x.dtype != torch.float32:
        x = x.float()
    bits = x.contiguous().view(torch.int32)
    drop = 13                                   # 23 - 10 mantissa bits
    lsb = (bits >> drop) & 1
    rounded = (bits + ((1 << (drop - 1)) - 1) + lsb) & ~((1 << drop) - 1)
    finite = torch.isfinite(x)
    return torch.where(finite, rounded.view(torch.float32), x)


def round_bf16(x: torch.Tensor) -> torch.Tensor:
    """fp32 values rounded to bfloat16 (7 mantissa bits) and back."""
    return x.to(torch.bfloat16).to(x.dtype)


def round_format(x: torch.Tensor, fmt: str) -> torch.Tensor:
    """``x`` as a float format stores it: fp32 (unchanged), tf32, bf16 or fp16."""
    if fmt in ("fp32", "fp64"):
        return x
    if fmt == "tf32":
        return round_tf32(x)
    if fmt == "bf16":
        return round_bf16(x)
    if fmt == "fp16":
        return x.to(torch.float16).to(x.dtype)
    raise ValueError(f"no float rounding for {fmt!r}")
