"""Analytic MAC / parameter / memory accounting, checked against torch's own FLOP counter."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ffneuro.accounting import BYTES_PER_ELEMENT, UnitCost, conv2d_macs, conv_unit_cost, linear_macs
from ffneuro.config import RunConfig
from ffneuro.models import FFNet


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The CI box has 2 shared cores; intra-op threads only thrash on these tiny tensors."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


SHAPES = [  # c_in, c_out, kernel, H, W
    (1, 4, 3, 8, 8),
    (3, 5, 5, 8, 6),
    (2, 3, 1, 7, 9),
    (4, 2, 7, 8, 8),
]


def counted_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def same_conv(c_in, c_out, k):
    torch.manual_seed(0)
    return nn.Conv2d(c_in, c_out, k, padding=k // 2)


def test_conv2d_macs_hand_value():
    assert conv2d_macs(3, 5, 3, 4, 6) == 5 * 4 * 6 * 3 * 3 * 3 == 3240
    assert linear_macs(10, 7) == 70


@pytest.mark.parametrize("c_in,c_out,k,h,w", SHAPES)
@pytest.mark.parametrize("n", [1, 3])
def test_conv2d_macs_matches_flop_counter_forward(c_in, c_out, k, h, w, n):
    conv = same_conv(c_in, c_out, k)
    x = torch.rand(n, c_in, h, w)
    assert conv(x).shape == (n, c_out, h, w)  # 'same' output size
    assert counted_flops(lambda: conv(x)) == 2 * n * conv2d_macs(c_in, c_out, k, h, w)


@pytest.mark.parametrize("c_in,c_out,k,h,w", SHAPES)
def test_backward_without_input_grad_is_weight_grad_only(c_in, c_out, k, h, w):
    """FF units get detached inputs, so their backward costs exactly macs_weight_grad."""
    conv = same_conv(c_in, c_out, k)
    n = 2
    y = conv(torch.rand(n, c_in, h, w))  # input does not require grad
    cost = conv_unit_cost("u", (c_in, h, w), c_out, k)
    assert counted_flops(lambda: y.pow(2).sum().backward()) == 2 * n * cost.macs_weight_grad
    assert cost.macs_weight_grad == conv2d_macs(c_in, c_out, k, h, w)


@pytest.mark.parametrize("c_in,c_out,k,h,w", SHAPES[:2])
def test_backward_with_input_grad_is_twice_forward(c_in, c_out, k, h, w):
    conv = same_conv(c_in, c_out, k)
    y = conv(torch.rand(1, c_in, h, w, requires_grad=True))
    cost = conv_unit_cost("u", (c_in, h, w), c_out, k)
    assert counted_flops(lambda: y.sum().backward()) == 2 * (cost.macs_weight_grad + cost.macs_input_grad)
    assert cost.macs_weight_grad + cost.macs_input_grad == 2 * cost.macs_forward


@pytest.mark.parametrize("c_in,c_out,k,h,w", SHAPES)
@pytest.mark.parametrize("bias", [True, False])
def test_params_equal_conv2d_numel(c_in, c_out, k, h, w, bias):
    conv = nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=bias)
    cost = conv_unit_cost("u", (c_in, h, w), c_out, k, bias=bias)
    assert cost.params == sum(p.numel() for p in conv.parameters())
    assert cost.param_bytes == 4 * cost.params  # weights stay fp32 under bf16 autocast


def test_activation_bytes_by_precision():
    fp32 = conv_unit_cost("u", (3, 8, 6), 5, 3, precision="fp32")
    bf16 = conv_unit_cost("u", (3, 8, 6), 5, 3, precision="bf16")
    assert fp32.activation_elems == bf16.activation_elems == 5 * 8 * 6
    assert fp32.activation_bytes == 4 * 240 and bf16.activation_bytes == 2 * 240
    assert fp32.param_bytes == bf16.param_bytes
    assert BYTES_PER_ELEMENT["fp32"] == 4 and BYTES_PER_ELEMENT["bf16"] == 2


def test_ff_train_macs_trainable_vs_frozen():
    on = conv_unit_cost("u", (2, 8, 8), 4, 3, trainable=True)
    off = conv_unit_cost("u", (2, 8, 8), 4, 3, trainable=False)
    assert on.macs_forward == off.macs_forward == conv2d_macs(2, 4, 3, 8, 8)
    assert on.macs_ff_train == 4 * on.macs_forward
    assert off.macs_ff_train == 2 * off.macs_forward


def test_inference_macs_by_readout():
    cost = conv_unit_cost("u", (1, 8, 8), 2, 3)
    assert cost.macs_inference(10, "goodness") == 10 * cost.macs_forward
    assert cost.macs_inference(10, "linear") == cost.macs_forward


def test_as_dict_includes_derived_train_macs():
    cost = conv_unit_cost("u", (1, 8, 8), 2, 3, trainable=False)
    d = cost.as_dict()
    assert d["macs_ff_train"] == cost.macs_ff_train and d["name"] == "u" and d["trainable"] is False
    assert set(d) == {f for f in UnitCost.__dataclass_fields__} | {"macs_ff_train"}


@pytest.mark.parametrize("train_first_layer", [True, False])
def test_ff_unit_train_step_flops_match_macs_ff_train(train_first_layer):
    """Real FF train_steps (pos + neg forward, weight-grad backward if trainable) against the accounting."""
    torch.manual_seed(0)
    cfg = RunConfig(layers=2, filters=3, kernel=3, pool="max", labels="fourier2", goodness="meansq",
                    readout_from=1, readout="goodness", train_first_layer=train_first_layer, epochs=1)
    net = FFNet(cfg, (1, 8, 8), 4)
    n = 2  # positives; as many negatives
    h_pos, h_neg = torch.rand(n, 1, 8, 8), torch.rand(n, 1, 8, 8)
    for unit in net.units:
        with FlopCounterMode(display=False) as counter:
            h_pos, h_neg, _ = unit.train_step(h_pos, h_neg)
        assert counter.get_total_flops() == 2 * n * unit.cost().macs_ff_train, unit.name
    assert [u.cost().macs_ff_train == 2 * u.cost().macs_forward for u in net.units] == [not train_first_layer, False]
