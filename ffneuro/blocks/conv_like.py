"""What the block types built of 'same' convs share (conv, cfse, trifecta, dwsep, residual): the checks of
their input, how a network of them chains, and what their ``pool`` means (torch-free)."""
from __future__ import annotations

from collections.abc import Sequence

from ..errors import ConfigError
from ..spec.block import StackPlan, check_conv_input, conv_in_shape


class ConvLike:
    """A mixin for frozen dataclasses with ``name``, ``in_shape``, ``filters``, ``kernel``, ``pool`` and
    ``trainable`` taken in that order. ``pool`` is none, max or avg (a 2×2 pool after the last ReLU) or
    stride (the first conv has stride 2, so no pooled tensor exists)."""

    pools: tuple[str, ...] = ("none", "max", "avg", "stride")   # what this block type can downsample with

    def _checked_in_shape(self) -> tuple[int, int, int]:
        """The validated (C, H, W) input, for ``__post_init__``: filters, pool and kernel checked."""
        shape = conv_in_shape(self.name, self.in_shape, self.kernel)
        if self.filters < 1:
            raise ConfigError(f"{self.name}: need filters >= 1, got {self.filters}")
        if self.pool not in self.pools:
            raise ConfigError(f"unknown pool {self.pool!r} for a {self.kind} block; valid: {', '.join(self.pools)}")
        check_conv_input(self.name, shape, self.kernel, self.pool)
        return shape

    @classmethod
    def stack(cls, image_shape: Sequence[int], widths: Sequence[int], plan: StackPlan) -> list:
        """Blocks fed one by another: block i has ``widths[i]`` filters and downsamples with ``plan.pools[i]``."""
        specs, shape = [], tuple(image_shape)
        for i, (width, pool) in enumerate(zip(widths, plan.pools, strict=True)):
            specs.append(cls(f"{plan.prefix}{i + 1}", shape, width, plan.kernel, pool, trainable=plan.trainable[i],
                             **cls._stack_extra(i, shape, width, plan)))
            shape = specs[-1].out_shape
        return specs

    @classmethod
    def _stack_extra(cls, i: int, shape: tuple[int, ...], width: int, plan: StackPlan) -> dict:
        """Keyword arguments block ``i`` of a stack gets beyond the common ones (none by default)."""
        return {}

    @property
    def stride(self) -> int:
        """The first conv's stride: 2 when it downsamples (``pool="stride"``), else 1."""
        return 2 if self.pool == "stride" else 1

    @property
    def pooled(self) -> bool:
        """Whether a separate 2×2-pooled tensor follows the last ReLU (max or avg pooling)."""
        return self.pool in ("max", "avg")
