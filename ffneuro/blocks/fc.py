"""The fully connected FF block (Hinton 2022, section 3.3): linear → ReLU → length normalisation.

The first unit sees the flattened image, RMS-normalised (``input_norm``), as Hinton's code does with its
input; every unit hands on its ReLU output divided by its root mean square, so the next unit cannot read
this unit's goodness off the length of its input. Goodness is measured on the ReLU output.

Option ``init`` (``block_options={"init": "normal"}``; the ``hinton-fc-mnist`` preset): weights drawn from
N(0, 1/width) and biases started at zero, as Hinton's code does (github.com/loeweX/Forward-Forward,
src/ff_model.py); the default ``torch`` keeps PyTorch's own start (uniform, std 1/√(3·inputs)), which gives
a layer fed by 2000 unit-RMS inputs a third of the reference's pre-activation variance.

Option ``relu_grad`` (``block_options={"relu_grad": "pass"}``): ``zero`` (default) is ReLU's own gradient, zero
where the input is negative; ``pass`` hands the gradient through unchanged there too, as the reference code's
``ReLU_full_grad`` does. The goodness gradient is zero at a silent neuron either way (d(y²)/dy = 0 at y = 0), so
``pass`` changes only what other terms (peer normalisation, BP's gradient) do to silent neurons: they are
pulled back. Its ReLU backward then hands the incoming gradient tensor on as it is: no compare-and-select
(the cost rule counts 0 ops for it) and no new tensor (the memory replays allocate none for it).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..accounting import ops
from ..accounting import replay as r
from ..errors import ConfigError
from ..spec import Activation, Flatten, Linear, Node, RMSNorm
from ..spec.block import BlockSpec, StackPlan
from . import register_block
from .module import BlockModule, rms_normalize

INITS = ("torch", "normal")   # the weights' start (block option init)
RELU_GRADS = ("zero", "pass")   # ReLU's gradient where its input is negative (block option relu_grad)


@register_block
@dataclass(frozen=True)
class FCBlock(BlockSpec):
    """One fully connected block on an input of any shape (flattened): ``width`` ReLU neurons."""

    kind: ClassVar[str] = "fc"
    pool: ClassVar[str] = "none"      # a dense block never downsamples
    pooled: ClassVar[bool] = False
    option_names: ClassVar[tuple[str, ...]] = ("init", "relu_grad")

    name: str
    in_shape: tuple[int, ...]
    width: int
    trainable: bool = True
    bias: bool = True
    input_norm: bool = False           # RMS-normalise the flattened input first (the image, in unit 1)
    init: str = "torch"                # torch: PyTorch's default start; normal: N(0, 1/width), zero biases
    relu_grad: str = "zero"            # zero: ReLU's gradient; pass: straight through where the input is negative

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.in_shape)
        if not shape or min(shape) < 1:
            raise ConfigError(f"{self.name}: in_shape must be positive ints, got {self.in_shape}")
        if self.width < 1:
            raise ConfigError(f"{self.name}: need width >= 1, got {self.width}")
        if self.init not in INITS:
            raise ConfigError(f"block option init must be one of {', '.join(INITS)}; got {self.init!r}")
        if self.relu_grad not in RELU_GRADS:
            raise ConfigError(f"block option relu_grad must be one of {', '.join(RELU_GRADS)}; got {self.relu_grad!r}")
        object.__setattr__(self, "in_shape", shape)

    @property
    def linear(self) -> Linear:
        return Linear((self.in_elems,), self.width, self.bias)

    def nodes(self) -> tuple[Node, ...]:
        """(flatten →) (RMS norm →) linear → ReLU → RMS norm."""
        out: list[Node] = [Flatten(self.in_shape)] if len(self.in_shape) > 1 else []
        if self.input_norm:
            out.append(RMSNorm((self.in_elems,)))
        out += [self.linear, Activation((self.width,), "relu"), RMSNorm((self.width,))]
        return tuple(out)

    @property
    def goodness_shape(self) -> tuple[int]:
        """Goodness is measured on the ReLU output."""
        return self.neuron_shape

    @property
    def relu_grad_ops(self) -> int:
        """Ops per neuron of ReLU's backward: a compare-and-select, or none for the straight-through hand-on."""
        return ops.RELU_OPS if self.relu_grad == "zero" else 0

    @property
    def update_ops(self) -> int:
        return (ops.BIAS_OPS if self.bias else 0) + ops.RELU_OPS

    # ---- cost rule (per sample)

    @property
    def forward_ops(self) -> int:
        """(Input norm,) bias and ReLU per neuron, and the RMS norm of the hand-on output."""
        return (ops.rms_norm_fwd_ops(self.in_elems) if self.input_norm else 0) \
            + ((ops.BIAS_OPS if self.bias else 0) + ops.RELU_OPS) * self.width + ops.rms_norm_fwd_ops(self.width)

    @property
    def neuron_grad_ops(self) -> int:
        return self.relu_grad_ops * self.width

    @property
    def bias_grad_ops(self) -> int:
        return self.width if self.bias else 0

    def bp_input_grad_ops(self, first: bool) -> int:
        """RMS norm and ReLU backward (the input norm sits before the weights: no gradient needed)."""
        return ops.rms_norm_bwd_ops(self.width) + self.relu_grad_ops * self.width

    @property
    def bp_stored(self) -> int:
        """BP keeps the ReLU output and the normalised output (and the normalised input of unit 1)."""
        return 2 * self.width + (self.in_elems if self.input_norm else 0)

    @property
    def straight_through(self) -> bool:
        """ReLU's backward hands dL/dy on as dL/dz (``relu_grad="pass"``): it allocates nothing and saves no
        tensor of the forward."""
        return self.relu_grad == "pass"

    def _relu_backward(self, t: r.Timeline, size: int, where: str, *frees: str) -> None:
        """ReLU's backward from ``g_y`` to ``g_z`` in a replay: a new tensor (then ``frees`` released), or with
        the straight-through ReLU (``frees`` released first: it saved none of them) the very same tensor under
        the new name."""
        if self.straight_through:
            t.free(*frees)
            t.rename("g_y", "g_z")
            return
        t.alloc("g_z", size)
        t.mark(where)
        t.free("g_y", *frees)

    def replay_ff_unit(self, t: r.Timeline, step: r.ReplayStep, where: str) -> None:
        """One FF step of this unit in the PyTorch memory replay (see :mod:`.replay`): (input norm,) the
        linear layer's output, ReLU, goodness, then dL/dy, ReLU backward, dW (no dL/dx), Adam, hand-on."""
        step.fp32_only(self.kind)
        rows = step.rows
        if self.input_norm:
            t.alloc("norm_sq", r.f32(rows * self.in_elems))
            t.mark(where + "input norm")
            t.free("norm_sq")
            t.alloc("x_norm", r.f32(rows * self.in_elems))   # saved by the linear layer for dW
        t.alloc("z", r.f32(rows * self.width))
        t.alloc("y", r.f32(rows * self.width))               # ReLU output, saved by ReLU and goodness
        t.mark(where + "relu")
        t.free("z")
        r.goodness_forward(t, rows, self.width, where)
        if self.trainable:
            t.free(f"grad:{self.name}")
            r.goodness_backward(t, step, self.width, where)
            self._relu_backward(t, r.f32(rows * self.width), where + "relu backward")
            t.alloc(f"grad:{self.name}", r.nbytes(self.params, step.master))
            t.mark(where + "linear backward")
            t.free("g_z", "x_norm")                          # autograd drops the saved input after the backward
            r.update(t, self, step, where)
        t.free("x_norm")
        r.rms_hand_on(t, rows, self.width, where)

    def replay_forward(self, t: r.Timeline, rows: int, step: r.ReplayStep, where: str) -> None:
        """One pass without gradients (the readout's neutral features): leaves the hand-on output ``n_out``."""
        step.fp32_only(self.kind)
        if self.input_norm:
            t.alloc("n_sq", r.f32(rows * self.in_elems))
            t.mark(where + "input norm")
            t.free("n_sq")
            t.alloc("n_x", r.f32(rows * self.in_elems))
        t.alloc("n_z", r.f32(rows * self.width))
        t.alloc("n_y", r.f32(rows * self.width))
        t.mark(where + "relu")
        t.free("n_z", "n_x")
        t.alloc("n_sq", r.f32(rows * self.width))
        t.mark(where + "hand-on norm")
        t.free("n_sq")
        t.alloc("n_out", r.f32(rows * self.width))
        t.mark(where + "hand-on out")
        t.free("n_y")

    def replay_bp_forward(self, t: r.Timeline, n: int, layer: int, step: r.ReplayStep, where: str) -> None:
        """BP forward of layer ``layer``: saves the (normalised) input, the ReLU output and the RMS norm's
        rms and output ``h_<layer>``."""
        step.fp32_only(self.kind)
        if self.input_norm:
            t.alloc("sq", r.f32(n * self.in_elems))
            t.mark(where + "input norm")
            t.free("sq")
            t.alloc(f"xn_{layer}", r.f32(n * self.in_elems))
        t.alloc("z", r.f32(n * self.width))
        t.alloc(f"y_{layer}", r.f32(n * self.width))
        t.mark(where + "relu")
        t.free("z")
        t.alloc("sq", r.f32(n * self.width))
        t.mark(where + "norm")
        t.free("sq")
        t.alloc(f"rms_{layer}", r.f32(n))
        t.alloc(f"h_{layer}", r.f32(n * self.width))
        t.mark(where + "norm out")

    def replay_bp_backward(self, t: r.Timeline, n: int, layer: int, step: r.ReplayStep, where: str) -> None:
        """BP backward from ``g`` (dL/d h_<layer>): the RMS norm's backward (four temporaries for its
        division, four for its mean of squares), ReLU's, then dW and (not for layer 1) dL/dx as ``g``."""
        step.fp32_only(self.kind)
        w = r.f32(n * self.width)
        t.alloc("div_bwd", 4 * w)
        t.mark(where + "norm (div)")
        t.free("div_bwd", "g")
        t.alloc("g_y", w)
        t.alloc("pow_bwd", 4 * w)
        t.mark(where + "norm (pow)")
        t.free("pow_bwd", f"rms_{layer}")
        self._relu_backward(t, w, where + "relu", f"y_{layer}")
        if layer > 1:
            t.alloc("g", r.f32(n * self.in_elems))
        t.alloc(f"grad:{self.name}", r.nbytes(self.params, step.master))
        t.mark(where + "linear")
        t.free("g_z", f"xn_{layer}")

    @classmethod
    def stack(cls, image_shape: Sequence[int], widths: Sequence[int], plan: StackPlan) -> list[FCBlock]:
        """Dense blocks of ``widths`` neurons; the first normalises the flattened image."""
        if any(p != "none" for p in plan.pools):
            raise ConfigError("fully connected units do not downsample; use --pool none with --arch fc")
        specs, shape = [], tuple(image_shape)
        init, relu_grad = plan.options.get("init", "torch"), plan.options.get("relu_grad", "zero")
        for i, width in enumerate(widths):
            specs.append(cls(f"{plan.prefix}{i + 1}", shape, width, trainable=plan.trainable[i], input_norm=i == 0,
                             init=init, relu_grad=relu_grad))
            shape = specs[-1].out_shape
        return specs

    # ---- the torch module

    def build(self) -> FCModule:
        return FCModule(self)


class FCModule(BlockModule):
    """``width`` ReLU neurons fully connected to the (flattened) input."""

    def __init__(self, spec: FCBlock):
        super().__init__(spec)
        self.linear = nn.Linear(spec.in_elems, spec.width, bias=spec.bias)
        if spec.init == "normal":   # Hinton's code: N(0, 1/out_features), zero biases
            nn.init.normal_(self.linear.weight, 0.0, 1.0 / math.sqrt(spec.width))
            if self.linear.bias is not None:
                nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)
        if self.spec.input_norm:
            h = rms_normalize(h)
        z = self.linear(h)
        return _StraightThroughReLU.apply(z) if self.spec.straight_through else torch.relu(z)

    def hand_on(self, y: torch.Tensor) -> torch.Tensor:
        return rms_normalize(y.float())


class _StraightThroughReLU(torch.autograd.Function):
    """max(z, 0) forward; the gradient passed back unchanged, also where z < 0 (Hinton's code, loeweX/
    Forward-Forward src/ff_model.py, ReLU_full_grad). The backward hands on the incoming tensor itself, as an
    identity-gradient autograd Function may: no copy."""

    @staticmethod
    def forward(ctx, z: torch.Tensor) -> torch.Tensor:
        return z.clamp(min=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad
