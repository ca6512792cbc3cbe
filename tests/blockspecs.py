"""Test helpers that build conv block specs the short way (a stack, one unit's summary)."""
from __future__ import annotations

from collections.abc import Sequence

from ffneuro.accounting import UnitCost, unit_cost
from ffneuro.blocks import layer_pools
from ffneuro.blocks.conv import ConvBlock
from ffneuro.spec.block import StackPlan


def conv_stack_specs(image_shape: Sequence[int], layers: int, filters: int, kernel: int, pool: str = "none", *,
                     prefix: str = "unit", trainable: Sequence[bool] | bool = True,
                     pool_every: int = 1) -> list[ConvBlock]:
    """``layers`` conv blocks, each fed the previous one's output; every ``pool_every``-th one downsamples."""
    flags = [trainable] * layers if isinstance(trainable, bool) else list(trainable)
    if len(flags) != layers:
        raise ValueError(f"trainable has {len(flags)} flags for {layers} layers")
    plan = StackPlan(kernel, tuple(layer_pools(layers, pool, pool_every)), prefix, tuple(flags))
    return ConvBlock.stack(image_shape, [filters] * layers, plan)


def conv_unit_cost(name: str, in_shape: tuple[int, int, int], filters: int, kernel: int, *, bias: bool = True,
                   trainable: bool = True, precision: str = "fp32", stride: int = 1) -> UnitCost:
    """The run file's summary of one 'same' conv block (``stride`` 2 is ``pool="stride"``)."""
    if stride not in (1, 2):
        raise ValueError(f"a conv block has stride 1 or 2, got {stride}")
    spec = ConvBlock(name, in_shape, filters, kernel, "stride" if stride == 2 else "none", trainable, bias)
    return unit_cost(spec, precision)


#: block types checked again with their options by tests/test_block_contract.py: case name -> the config
#: values that case changes (``arch`` names the block type)
BLOCK_VARIANTS: dict[str, dict] = {
    # DeeperForward's parts: group norm with one group per class, no biases, mean goodness, stride-2 downsampling
    "residual-deeperforward": dict(arch="residual", widths=(10, 20), pool="stride", labels="none",
                                   goodness="classmean", loss="cwc", block_options={"norm": "group", "bias": False}),
    # layer norm (one group) over the pooled map, with the default objective
    "residual-layernorm": dict(arch="residual", block_options={"norm": "layer"}),
    # pad → batch norm → unpadded conv (the deploy presets)
    "trifecta-pad-first": dict(arch="trifecta", block_options={"pad_first": True}),
    # Hinton's code's start and straight-through ReLU (the hinton-fc-mnist preset's fc block)
    "fc-straight-through": dict(arch="fc", pool="none", block_options={"init": "normal", "relu_grad": "pass"}),
    # CwComp's batch-norm refresh: one training-mode pass through the updated units after each step
    "cfse-bn-refresh-chain": dict(arch="cfse", widths=(10, 20), labels="none", goodness="classwise", loss="cwc",
                                  block_options={"bn_refresh": "chain"}),
}
