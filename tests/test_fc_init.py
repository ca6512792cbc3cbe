"""The fc block's ``init`` option (issue 19): Hinton's code (loeweX/Forward-Forward) starts every weight from
N(0, 1/width) with zero biases; measured beside it (BENCHMARKS.md section 17) this start, not PyTorch's,
is what makes the preset learn as fast as the reference code."""
from __future__ import annotations

import math

import pytest
import torch

from ffneuro.blocks import layer_specs
from ffneuro.blocks.fc import FCBlock
from ffneuro.config import RunConfig
from ffneuro.errors import ConfigError
from ffneuro.models import build_model
from ffneuro.presets import resolve_config


def _fc(**kw) -> RunConfig:
    return RunConfig.from_dict(dict(dataset="synthetic", arch="fc", layers=2, widths=(400, 300), pool="none",
                                    labels="onehot", goodness="sumsq", loss="bce", readout="goodness", **kw))


def test_normal_init_draws_weights_with_std_one_over_root_width_and_zero_biases():
    torch.manual_seed(0)
    model = build_model(_fc(block_options={"init": "normal"}), (1, 16, 16), 10)
    for unit, width in zip(model.units, (400, 300)):
        lin = unit.block.linear
        assert lin.weight.std().item() == pytest.approx(1 / math.sqrt(width), rel=0.02)
        assert torch.count_nonzero(lin.bias) == 0


def test_default_init_is_pytorchs():
    torch.manual_seed(0)
    model = build_model(_fc(), (1, 16, 16), 10)
    lin = model.units[1].block.linear   # 400 inputs: uniform, std 1/sqrt(3*400)
    assert lin.weight.std().item() == pytest.approx(1 / math.sqrt(3 * 400), rel=0.02)
    assert torch.count_nonzero(lin.bias) > 0


def test_hinton_preset_starts_as_the_reference_code():
    cfg = resolve_config("hinton-fc-mnist", {"widths": (64, 64, 64, 64)})
    assert all(s.init == "normal" for s in layer_specs(cfg, (1, 28, 28)))


def test_bad_init_is_a_config_error():
    with pytest.raises(ConfigError, match="init"):
        FCBlock("u", (10,), 4, init="ones")
    with pytest.raises(ConfigError, match="init"):
        build_model(_fc(block_options={"init": "ones"}), (1, 16, 16), 10)
