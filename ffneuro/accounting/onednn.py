"""What oneDNN allocates around a 'same'-padded fp32 conv on an x86 CPU, from shapes alone.

PyTorch runs CPU convs through oneDNN, which computes on channel-blocked copies of its tensors: the
channels are rounded up to the *block*, 16 where oneDNN uses its AVX-512 kernels and 8 on AVX2 (and
SSE4.1). Which tensors are copied was measured per conv with the CPU allocator (torch 2.13.0, oneDNN
through ``mkldnn_convolution``; kernels 3, 5 and 7, strides 1 and 2, 1 to 128 channels, both blocks
via ``ONEDNN_MAX_CPU_ISA``); the rules below reproduce every measured peak within 2 %, except where
stated:

* **forward**: the output is computed into a blocked buffer (``blocked(C_out)`` channels) and then
  copied into the plain output tensor. The input is copied to a blocked layout only when it has at
  least ``block`` channels; thinner inputs (an image's 1 or 3 channels) are read as they are.
* **weight gradient**: blocked copies of dL/d(output) and of the input, and a blocked dW. With block
  16, inputs of 4 to 15 channels fall back to oneDNN's AVX2 kernel, so those copies use block 8;
  inputs of 1 to 3 channels are read as they are. With block 8, only a 3-channel input is read as it
  is, and a 1-channel input is padded to 8 channels (8× the input).
* **input gradient**, stride 1: blocked copies of dL/d(output), of the weights and of dL/dx, then the
  plain dL/dx. Stride 2 takes a gemm-based kernel on plain layouts: a copy of dL/d(output) (none for a
  single output channel) and dL/dx, then one or two more dL/dx-sized buffers; its gemm scratch
  (60–120 KB) is not counted.

Not counted: scratchpads of a few hundred bytes, and the per-thread reduction buffers of a
multi-threaded weight gradient (tens of KB per conv at 2 threads). 1×1 convs that ATen runs
single-threaded on fewer than 16 rows bypass oneDNN, so there the rules over-count.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from ..spec import Conv2d
from .ops import nbytes

BLOCKS = (8, 16)
# ONEDNN_MAX_CPU_ISA values below oneDNN's avx512_core, the first ISA with 16-channel fp32 blocks
_BELOW_AVX512 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2")


def detect_onednn_block() -> int:
    """oneDNN's fp32 channel block in this process: 16 when the CPU has AVX-512 (F, BW, VL, DQ: what
    oneDNN's avx512_core needs) and ``ONEDNN_MAX_CPU_ISA`` (or the older ``DNNL_MAX_CPU_ISA``) does not
    cap oneDNN below it, else 8. Measured on x86 only; elsewhere 8 is a guess."""
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").strip().upper()
    if cap in _BELOW_AVX512:
        return 8
    import torch  # only here: the rest of accounting is pure arithmetic on shapes

    if hasattr(torch.cpu, "get_capabilities"):  # the CPU's own features (torch >= 2.10 or so)
        features = torch.cpu.get_capabilities()
        avx512 = all(features.get(f, False) for f in ("avx512_f", "avx512_bw", "avx512_vl", "avx512_dq"))
    else:  # ATen's own ISA, which ATEN_CPU_CAPABILITY can lower without touching oneDNN
        avx512 = torch.backends.cpu.get_cpu_capability() == "AVX512"
    return 16 if avx512 else 8


def check_block(block: int) -> int:
    if block not in BLOCKS:
        raise ValueError(f"oneDNN channel block must be one of {', '.join(map(str, BLOCKS))}, got {block!r}")
    return block


def _up(c: int, block: int) -> int:
    return -(-c // block) * block


@dataclass(frozen=True)
class ConvCopies:
    """oneDNN's buffers for one conv pass over ``rows`` images (fp32 bytes), in two steps: first
    ``src + weights + dst`` live together while the primitive runs; they are freed, and the plain
    result (output, dW or dL/dx) is written while ``tail`` bytes are still alive beside it."""

    src: int      # the input (forward, weight gradient) or dL/dx (input gradient)
    weights: int  # the weights (forward, input gradient) or dW (weight gradient)
    dst: int      # the output (forward) or dL/d(output) (gradients)
    tail: int     # forward: the blocked output; weight gradient: the blocked dW; input gradient: see below


def forward_copies(conv: Conv2d, rows: int, block: int) -> ConvCopies:
    """Forward: blocked output always; blocked input only from ``block`` input channels."""
    c, h, w = conv.in_shape
    (filters, ho, wo), kernel = conv.out_shape, conv.kernel[0]
    reordered = c >= block
    dst = nbytes(rows * _up(filters, block) * ho * wo, "fp32")
    return ConvCopies(src=nbytes(rows * _up(c, block) * h * w, "fp32") if reordered else 0,
                      weights=nbytes(_up(filters, block) * (_up(c, block) if reordered else c) * kernel ** 2,
                                     "fp32"),
                      dst=dst, tail=dst)


def weight_grad_copies(conv: Conv2d, rows: int, block: int) -> ConvCopies:
    """Weight gradient: blocked dL/d(output), input and dW (see the module docstring for the kernels)."""
    c, h, w = conv.in_shape
    (filters, ho, wo), kernel = conv.out_shape, conv.kernel[0]
    b = 8 if block == 8 or 4 <= c < 16 else 16
    plain = c < 4 if b == 16 else c == 3
    dw = nbytes(_up(filters, b) * (c if plain else _up(c, b)) * kernel ** 2, "fp32")
    return ConvCopies(src=0 if plain else nbytes(rows * _up(c, b) * h * w, "fp32"), weights=dw,
                      dst=nbytes(rows * _up(filters, b) * ho * wo, "fp32"), tail=dw)


def input_grad_copies(conv: Conv2d, rows: int, block: int) -> ConvCopies:
    """Input gradient. Stride 1: blocked dL/d(output), weights and dL/dx; the blocked dL/dx is the tail.
    Stride 2 (gemm-based, plain layouts): ``src`` is dL/dx itself, and the tail is one more dL/dx-sized
    buffer for a 1-channel input, two for more."""
    c, h, w = conv.in_shape
    (filters, ho, wo), kernel = conv.out_shape, conv.kernel[0]
    weights = nbytes(_up(filters, block) * _up(c, block) * kernel ** 2, "fp32")
    if conv.stride[0] == 1:
        src = nbytes(rows * _up(c, block) * h * w, "fp32")
        return ConvCopies(src=src, weights=weights, dst=nbytes(rows * _up(filters, block) * ho * wo, "fp32"),
                          tail=src)
    dx = nbytes(rows * c * h * w, "fp32")
    return ConvCopies(src=dx, weights=weights, dst=nbytes(rows * filters * ho * wo, "fp32") if filters > 1 else 0,
                      tail=dx * (2 if c > 1 else 1))


# ---- beyond the plain k×k conv (measured with the allocator for the dwsep and residual blocks, torch 2.13,
# oneDNN block 8; docs/variants/blocks.md): depthwise and 1×1 convs copy every tensor to the blocked layout,
# thin inputs included; a grouped conv with several outputs per group runs on plain layouts; ATen's own
# kernel (slow_conv2d), which small convs take instead of oneDNN, adds an im2col buffer.

def onednn_runs(conv: Conv2d, rows: int, threads: int) -> bool:
    """Whether ATen runs ``conv`` on ``rows`` fp32 rows through oneDNN (``use_mkldnn``): a 1×1 stride-1 conv
    single-threaded on fewer than 16 rows, and a small conv of one row, take ATen's own kernel instead."""
    plain = conv.stride == (1, 1) and conv.dilation == (1, 1) and conv.kernel == (1, 1)
    if plain and rows < 16 and threads == 1:
        return False
    c, h, w = conv.in_shape
    return conv.groups > 1 or min(conv.kernel) > 3 or rows > 1 or rows * c * h * w > 20480


def aten_copies(kind: str, conv: Conv2d, rows: int) -> ConvCopies | None:
    """ATen's own conv kernel: the im2col columns (``rows`` × fan-in × output positions) beside the output in
    the forward and beside dW in the weight gradient; none for a 1×1 stride-1 conv without padding."""
    if kind == "input" or (conv.kernel == (1, 1) and conv.stride == (1, 1) and not any(conv.padding)):
        return None
    return ConvCopies(src=0, weights=0, dst=0, tail=nbytes(rows * conv.fan_in * conv.out_shape[1] * conv.out_shape[2], "fp32"))


def grouped_copies(kind: str, conv: Conv2d, rows: int) -> ConvCopies:
    """A grouped conv with several outputs per group (a depthwise conv with a depth multiplier): a
    gemm-based kernel on plain layouts computes the output (or dL/dx) into a plain buffer, then copies
    it; the weight gradient's scratch is not counted."""
    if kind == "forward":
        out = nbytes(rows * conv.out_elems, "fp32")
        return ConvCopies(src=0, weights=0, dst=out, tail=out)
    if kind == "input":
        dx = nbytes(rows * conv.in_elems, "fp32")
        return ConvCopies(src=dx, weights=0, dst=0, tail=dx)
    return ConvCopies(0, 0, 0, 0)


def blocked_copies(kind: str, conv: Conv2d, rows: int, block: int) -> ConvCopies:
    """A depthwise or 1×1 conv: the input (or dL/dx), the output (or dL/d output) and the weights (or dW),
    all channel-blocked. ``kind``: forward, weight or input (gradient)."""
    c, h, w = conv.in_shape
    f, ho, wo = conv.out_shape
    per_group = c // conv.groups
    src = nbytes(rows * _up(c, block) * h * w, "fp32")
    dst = nbytes(rows * _up(f, block) * ho * wo, "fp32")
    weights = nbytes(_up(f, block) * (per_group if conv.groups > 1 else _up(c, block)) * conv.kernel[0] * conv.kernel[1],
                     "fp32")
    if kind == "forward":
        return ConvCopies(src=src, weights=weights, dst=dst, tail=dst)
    if kind == "weight":
        return ConvCopies(src=src, weights=weights, dst=dst, tail=weights)
    # input gradient: the blocked dL/dx is the tail; a strided 1×1 conv keeps one more plain dL/dx beside it
    extra = nbytes(rows * c * h * w, "fp32") if conv.stride != (1, 1) and conv.groups == 1 else 0
    return ConvCopies(src=src, weights=weights, dst=dst, tail=src + extra)


def conv_copies(kind: str, conv: Conv2d, rows: int, block: int, threads: int = 1) -> ConvCopies | None:
    """The CPU's buffers of one pass of any conv node (``kind`` forward, weight or input gradient)."""
    if not onednn_runs(conv, rows, threads):
        return aten_copies(kind, conv, rows)
    if conv.groups > 1 and conv.out_channels != conv.in_shape[0]:
        return grouped_copies(kind, conv, rows)
    if conv.groups > 1 or conv.kernel == (1, 1):
        return blocked_copies(kind, conv, rows, block)
    rule = {"forward": forward_copies, "weight": weight_grad_copies, "input": input_grad_copies}[kind]
    return rule(conv, rows, block)
