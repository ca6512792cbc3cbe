"""Analytic MAC / parameter / memory accounting, checked against torch's own FLOP counter."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from blockspecs import conv_unit_cost
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ffneuro.accounting import (
    BYTES_PER_ELEMENT,
    Traffic,
    UnitCost,
    bp_memory,
    bp_peak_training_bytes,
    bp_training_costs,
    conv2d_macs,
    ff_memory,
    ff_peak_training_bytes,
    ff_training_costs,
    head_spec,
    inference_costs,
    inference_memory,
    inference_peak_bytes,
    linear_macs,
    readout_spec,
)
from ffneuro.accounting.onednn import (
    detect_onednn_block,
    forward_copies,
    input_grad_copies,
    weight_grad_copies,
)
from ffneuro.blocks import layer_specs
from ffneuro.blocks.conv import ConvBlock
from ffneuro.config import RunConfig
from ffneuro.models import BPNet, FFNet
from ffneuro.profiler.measure import step_peak_bytes

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


@pytest.mark.parametrize("pool", ["max", "stride"])
@pytest.mark.parametrize("train_first_layer", [True, False])
def test_ff_unit_train_step_flops_match_macs_ff_train(train_first_layer, pool):
    """Real FF train_steps (pos + neg forward, weight-grad backward if trainable) against the accounting."""
    torch.manual_seed(0)
    cfg = RunConfig(layers=2, filters=3, kernel=3, pool=pool, labels="fourier2", goodness="meansq",
                    readout_from=1, readout="goodness", train_first_layer=train_first_layer, epochs=1)
    net = FFNet(cfg, (1, 9, 9), 4)
    costs = net.costs()
    n = 2  # positives; as many negatives
    h = torch.rand(2 * n, 1, 9, 9)
    for unit, cost in zip(net.units, costs):
        with FlopCounterMode(display=False) as counter:
            h, _ = unit.train_step(h, n)
        assert counter.get_total_flops() == 2 * n * cost.macs_ff_train, unit.name
    assert [c.macs_ff_train == 2 * c.macs_forward for c in costs] == [not train_first_layer, False]


# --- shapes: ConvBlock / layer_specs ----------------------------------------------------------------



def small_cfg(**kw):
    base = {"layers": 3, "filters": 4, "kernel": 3, "pool": "max", "labels": "fourier2", "goodness": "meansq",
            "readout_from": 2, "readout": "goodness", "train_first_layer": False, "epochs": 1}
    base.update(kw)
    return RunConfig(**base)


@pytest.mark.parametrize("pool", ["none", "max", "avg", "stride"])
@pytest.mark.parametrize("algo", ["ff", "bp"])
def test_layer_specs_from_config_match_the_built_model(pool, algo):
    cfg = small_cfg(pool=pool, algo=algo)
    specs = layer_specs(cfg, (2, 8, 8))
    torch.manual_seed(0)
    net = (FFNet if algo == "ff" else BPNet)(cfg, (2, 8, 8), 5)
    assert specs == net.layer_specs()
    blocks = [u.block for u in net.units] if algo == "ff" else list(net.blocks)
    for s, b in zip(specs, blocks):
        assert s.out_shape == b.out_shape and s.in_shape == b.in_shape and s.neuron_shape == b.neuron_shape
        assert s.params == sum(p.numel() for p in b.parameters())
        assert s.neurons == math.prod(b.out_shape) * (4 if pool in ("max", "avg") else 1)
    assert [s.trainable for s in specs] == ([False, True, True] if algo == "ff" else [True] * 3)
    assert [s.name for s in specs] == [f"{'unit' if algo == 'ff' else 'layer'}{i}" for i in (1, 2, 3)]


def test_readout_and_head_specs_match_the_models():
    cfg = small_cfg(readout="both", pool="none")
    torch.manual_seed(0)
    ff, bp = FFNet(cfg, (2, 8, 8), 5), BPNet(small_cfg(algo="bp", pool="none"), (2, 8, 8), 5)
    r = readout_spec(layer_specs(cfg, (2, 8, 8)), 5, cfg.readout_from)
    h = head_spec(layer_specs(cfg, (2, 8, 8), algo="bp"), 5)
    assert (r.in_features, r.out_features, r.params) == (ff.linear.linear.in_features, 5, sum(p.numel() for p in ff.linear.parameters()))
    assert (h.in_features, h.params) == (bp.head.in_features, sum(p.numel() for p in bp.head.parameters()))


@pytest.mark.parametrize("pool", ["none", "max", "stride"])
@pytest.mark.parametrize("c_in,c_out,k,h,w", SHAPES)
def test_layer_spec_macs_match_flop_counter_for_a_block(pool, c_in, c_out, k, h, w):
    """One ConvBlock forward, pooled or strided (odd sizes round up at stride 2), against its ConvBlock."""
    torch.manual_seed(0)
    block, spec = ConvBlock("block", (c_in, h, w), c_out, k, pool).build(), ConvBlock("u", (c_in, h, w), c_out, k, pool)
    x = torch.rand(2, c_in, h, w)
    assert counted_flops(lambda: block.pool_out(block(x))) == 2 * 2 * spec.macs
    assert tuple(block(x).shape[1:]) == spec.neuron_shape and tuple(block.pool_out(block(x)).shape[1:]) == spec.out_shape


def test_layer_spec_validates():
    with pytest.raises(ValueError, match="pool"):
        ConvBlock("u", (1, 4, 4), 2, 3, pool="min")
    with pytest.raises(ValueError, match="odd"):
        ConvBlock("u", (1, 4, 4), 2, 2)
    with pytest.raises(ValueError, match="cannot pool"):
        ConvBlock("u", (1, 1, 4), 2, 1, pool="max")


# --- MACs against torch's FLOP counter: strided/padded convs, whole steps ---------------------------

@pytest.mark.parametrize("c_in,c_out,k,stride,pad,h,w,n", [
    (3, 5, 3, 2, 1, 9, 7, 2), (2, 4, 5, 1, 0, 8, 8, 3), (4, 2, 3, 3, 2, 10, 11, 2), (1, 6, 1, 2, 0, 6, 6, 4)])
def test_conv2d_macs_general_stride_and_padding(c_in, c_out, k, stride, pad, h, w, n):
    torch.manual_seed(0)
    conv = nn.Conv2d(c_in, c_out, k, stride=stride, padding=pad)
    x = torch.rand(n, c_in, h, w, requires_grad=True)
    y = conv(x)
    ho, wo = y.shape[2:]
    macs = conv2d_macs(c_in, c_out, k, ho, wo)
    assert counted_flops(lambda: conv(x)) == 2 * n * macs
    # backward with input and weight gradient: one conv-transpose and one weight-gradient conv, same MACs
    assert counted_flops(lambda: conv(x).sum().backward()) == 2 * 3 * n * macs


DOWNSAMPLING = [("none", 1), ("max", 1), ("avg", 1), ("stride", 1), ("stride", 2), ("max", 2)]  # (pool, pool_every)


@pytest.mark.parametrize("pool,pool_every", DOWNSAMPLING)
@pytest.mark.parametrize("train_first_layer", [True, False])
@pytest.mark.parametrize("readout", ["goodness", "both"])
def test_whole_ff_step_flops_equal_twice_analytic_macs(pool, pool_every, train_first_layer, readout):
    cfg = small_cfg(pool=pool, pool_every=pool_every, train_first_layer=train_first_layer, readout=readout)
    torch.manual_seed(0)
    net, n = FFNet(cfg, (2, 8, 8), 5), 3
    x, y = torch.rand(n, 2, 8, 8), torch.arange(n) % 5
    cost = ff_training_costs(layer_specs(cfg, (2, 8, 8)), num_classes=5, batch=n,
                             linear_readout=readout == "both", readout_from=cfg.readout_from)
    assert counted_flops(lambda: net.train_batch(x, y)) == 2 * cost.macs
    for u, s in zip(cost.units, layer_specs(cfg, (2, 8, 8))):   # per phase: 2N forwards, 2N weight gradients
        assert u.phase("forward_pos").macs == u.phase("forward_neg").macs == n * s.macs
        assert u.phase("backward").macs == (2 * n * s.macs if s.trainable else 0)


@pytest.mark.parametrize("pool,pool_every", DOWNSAMPLING)
def test_whole_bp_step_flops_equal_twice_analytic_macs(pool, pool_every):
    cfg = small_cfg(algo="bp", pool=pool, pool_every=pool_every)
    torch.manual_seed(0)
    net, n = BPNet(cfg, (2, 8, 8), 5), 3
    x, y = torch.rand(n, 2, 8, 8), torch.arange(n) % 5
    cost = bp_training_costs(layer_specs(cfg, (2, 8, 8)), num_classes=5, batch=n)
    assert counted_flops(lambda: net.train_batch(x, y)) == 2 * cost.macs
    l1, l2 = cost.unit("layer1"), cost.unit("layer2")
    assert l1.phase("backward_input").macs == 0          # the image needs no gradient
    assert l2.phase("backward_input").macs == l2.phase("backward_weight").macs == l2.phase("forward").macs
    assert cost.unit("head").total.macs == 3 * n * head_spec(layer_specs(cfg, (2, 8, 8)), 5).macs


@pytest.mark.parametrize("pool,pool_every", [("none", 1), ("avg", 1), ("stride", 1), ("stride", 2)])
def test_inference_flops_equal_twice_analytic_macs(pool, pool_every):
    cfg = small_cfg(pool=pool, pool_every=pool_every, readout="both")
    torch.manual_seed(0)
    net, n = FFNet(cfg, (2, 8, 8), 5), 2
    x = torch.rand(n, 2, 8, 8)
    specs = layer_specs(cfg, (2, 8, 8))
    for readout in ("goodness", "linear"):
        cost = inference_costs(specs, readout=readout, num_classes=5, batch=n, readout_from=cfg.readout_from)
        assert counted_flops(lambda readout=readout: net.predict(x, readout)) == 2 * cost.macs, readout
    assert inference_costs(specs, readout="goodness", num_classes=5, batch=n).macs == \
        5 * sum(n * s.macs for s in specs)
    bp = BPNet(small_cfg(algo="bp", pool=pool, pool_every=pool_every), (2, 8, 8), 5)
    cost = inference_costs(layer_specs(cfg, (2, 8, 8), algo="bp"), readout="linear", num_classes=5, batch=n, algo="bp")
    assert counted_flops(lambda: bp.predict(x)) == 2 * cost.macs


# --- phases, traffic, per-sample amortisation ----------------------------------------------------------

def paper_specs(layers=3, algo="ff"):
    return layer_specs(RunConfig(layers=layers), (1, 28, 28), algo=algo)


def test_flops_are_two_per_mac_plus_elementwise_and_fields_stay_separate():
    cost = ff_training_costs(paper_specs(), num_classes=10, batch=50)
    t = cost.total
    assert t.flops == 2 * t.macs + t.elementwise_ops and t.elementwise_ops > 0
    upd = cost.unit("unit2").phase("update")
    assert upd.macs == 0 and upd.elementwise_ops == 13 * paper_specs()[1].params   # Adam: elementwise only
    assert cost.unit("unit1").phase("update").elementwise_ops == 0                  # frozen: no update


def test_per_sample_amortises_weight_traffic_not_activations():
    specs = paper_specs()
    per = {n: ff_training_costs(specs, num_classes=10, batch=n).per_sample() for n in (1, 10, 100)}
    w = [per[n].total.bytes_read.weights for n in (1, 10, 100)]
    a = [per[n].total.bytes_read.activations for n in (1, 10, 100)]
    assert w[0] == pytest.approx(10 * w[1]) == pytest.approx(100 * w[2])
    assert a[0] == pytest.approx(a[1]) == pytest.approx(a[2])
    assert per[10].total.macs == pytest.approx(per[100].total.macs)


def test_traffic_categories_and_precision():
    specs = paper_specs()
    ff32 = ff_training_costs(specs, num_classes=10, batch=4)
    ff16 = ff_training_costs(specs, num_classes=10, batch=4, precision="bf16")
    assert ff16.total.bytes_read.activations * 2 == ff32.total.bytes_read.activations
    assert ff16.total.bytes_read.weights == ff32.total.bytes_read.weights         # fp32 master weights
    assert ff16.total.bytes_read.optimizer == ff32.total.bytes_read.optimizer
    assert ff32.total.bytes_read.errors == ff32.total.bytes_written.errors == 0    # FF sends no error signal
    bp = bp_training_costs(paper_specs(algo="bp"), num_classes=10, batch=4)
    assert bp.total.bytes_written.errors > 0 and bp.total.bytes_read.errors > 0
    u2 = ff32.unit("unit2").spec
    fwd = ff32.unit("unit2").phase("forward_pos")
    assert fwd.crossing_read == 4 * 4 * u2.in_elems and fwd.crossing_written == 4 * 4 * u2.out_elems
    crossing = lambda c: c.total.crossing_read + c.total.crossing_written
    assert crossing(bp) > crossing(ff_training_costs(specs, num_classes=10, batch=4)) / 2
    assert Traffic(1, 2, 3, 4, 5).total == 15


def test_network_cost_to_dict_is_json():
    cost = bp_training_costs(paper_specs(algo="bp"), num_classes=10, batch=2)
    d = json.loads(json.dumps(cost.per_sample().to_dict()))
    assert d["per"] == "sample" and [u["unit"] for u in d["units"]] == ["layer1", "layer2", "layer3", "head"]
    assert set(d["units"][1]["phases"]) == {"forward", "backward_input", "backward_weight", "update"}


# --- memory -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["pytorch", "minimal"])
def test_memory_monotone_in_batch_and_depth(scheme):
    for fn in (ff_peak_training_bytes, bp_peak_training_bytes):
        by_batch = [fn(paper_specs(3, "ff" if fn is ff_peak_training_bytes else "bp"), n, scheme=scheme) for n in (1, 8, 50, 200)]
        assert by_batch == sorted(by_batch) and len(set(by_batch)) == 4
        by_depth = [fn(paper_specs(d, "ff" if fn is ff_peak_training_bytes else "bp"), 50, scheme=scheme) for d in (2, 3, 6, 12)]
        assert by_depth == sorted(by_depth) and len(set(by_depth)) == 4


def test_ff_below_bp_for_the_paper_network_and_the_gap_grows_with_depth():
    """FF below BP from 3 layers in both the minimal (fused) model and the PyTorch model of this code
    (one 2N-row tensor through the step, no per-unit cat, lean goodness backward); the gap grows with
    depth in both (see docs/accounting.md)."""
    for scheme in ("minimal", "pytorch"):
        gaps = []
        for depth in (3, 6, 12):
            ff = ff_peak_training_bytes(paper_specs(depth), 50, scheme=scheme)
            bp = bp_peak_training_bytes(paper_specs(depth, "bp"), 50, scheme=scheme)
            gaps.append(bp - ff)
        assert gaps == sorted(gaps) and gaps[0] > 0, (scheme, gaps)
    ff3 = ff_memory(paper_specs(3), 50)
    assert ff3.peak_at == "unit2: relu backward"
    # at the peak: unit 2's input, its ReLU output, the goodness gradient and ReLU's backward output (four
    # 2N-row layer-sized tensors), less unit 2's weight gradient, freed by zero_grad before the backward
    u2 = paper_specs(3)[1]
    assert ff3.working_bytes == 4 * (4 * 2 * 50 * u2.neurons) - 4 * u2.params


def test_memory_cost_parts():
    specs = paper_specs()
    m = ff_memory(specs, 50)
    assert m.param_bytes == 4 * sum(s.params for s in specs)
    assert m.grad_bytes == 4 * sum(s.params for s in specs[1:])        # frozen unit 1 has no gradient
    assert m.optimizer_bytes == 2 * m.grad_bytes
    assert m.working_bytes == m.peak_bytes - m.resident_bytes > 0
    assert json.loads(json.dumps(m.to_dict()))["units"] == ["unit1", "unit2", "unit3"]
    b = bp_memory(paper_specs(algo="bp"), 50)
    head = head_spec(paper_specs(algo="bp"), 10)
    assert b.grad_bytes == 4 * (sum(s.params for s in paper_specs(algo="bp")) + head.params)
    # fused kernels: bf16 halves the activations; this code under autocast keeps the 2N input in fp32,
    # adds its bf16 copy and computes goodness on an fp32 copy, so its FF peak is *higher* in bf16 than fp32
    lo = [ff_memory(specs, 50, p, scheme="minimal").working_bytes for p in ("fp32", "bf16")]
    assert lo[0] == 2 * lo[1]
    assert ff_peak_training_bytes(specs, 50, "bf16") > ff_peak_training_bytes(specs, 50)
    assert inference_peak_bytes(specs, 4, readout="goodness") > inference_peak_bytes(specs, 4, readout="linear")
    with pytest.raises(ValueError, match="scheme"):
        ff_memory(specs, 2, scheme="guess")


def test_pytorch_memory_model_matches_the_cpu_allocator_within_10_percent():
    """fp32 replay of autograd's saved tensors and temporaries against what the allocator saw, with
    ``backend="cpu"`` at this CPU's oneDNN channel block: the blocked copies oneDNN makes around every
    conv (the forward's blocked output sets FF's peak when the filters are fewer than the block) and
    CPU Adam's two temporaries the size of the largest parameter tensor (which set the peak when a big
    linear readout updates). Measured agreement, block 16 (AVX-512) and block 8 (AVX2): 1.00-1.03;
    stride-2 convs up to 1.06 (the batch, allocated before profiling, is in the model but not in the
    measurement). The other block is 0.82-0.92 or 1.14-1.26 on the same cases."""
    torch.manual_seed(0)
    n, shape = 4, (1, 12, 12)
    x, y = torch.rand(n, *shape), torch.arange(n) % 10
    block = detect_onednn_block()
    for cfg in (small_cfg(layers=2, filters=8, pool="none", readout_from=1, train_first_layer=True),
                small_cfg(layers=2, filters=8, pool="none", readout_from=1, goodness="sumsq"),
                small_cfg(layers=2, filters=8, pool="max", readout_from=1, readout="both"),
                small_cfg(algo="bp", layers=2, filters=8, pool="max"),
                small_cfg(layers=2, filters=8, pool="stride", readout_from=1),
                small_cfg(layers=2, filters=8, pool="stride", pool_every=2, readout_from=1),
                small_cfg(algo="bp", layers=2, filters=8, pool="stride", pool_every=2),
                small_cfg(layers=2, filters=32, pool="none", readout_from=1, readout="both"),
                small_cfg(layers=2, filters=32, pool="stride", pool_every=2, readout_from=1, readout="both")):
        cls = FFNet if cfg.algo == "ff" else BPNet
        model, measured = step_peak_bytes(lambda cls=cls, cfg=cfg: cls(cfg, shape, 10), x, y)
        specs = model.layer_specs()
        if cfg.algo == "ff":
            est = ff_memory(specs, n, num_classes=10, linear_readout=cfg.readout == "both", readout_from=1,
                            backend="cpu").peak_bytes
            est += model.labels.patterns.numel() * 4
        else:
            est = bp_memory(specs, n, num_classes=10, backend="cpu").peak_bytes
        assert abs(est - measured) <= 0.1 * measured, (block, cfg.algo, cfg.pool, cfg.pool_every, est, measured)


def test_inference_memory_matches_the_cpu_allocator_within_10_percent():
    """The ``predict`` replay (goodness readout over batch × classes rows, linear readout, BP) against
    the allocator, after two training steps (so gradients and Adam state are resident, as when a run
    evaluates). Measured agreement at either block: 1.00-1.05 (the batch, allocated before
    profiling, is in the model but not in the measurement)."""
    torch.manual_seed(0)
    n, shape = 6, (1, 12, 12)
    x, y = torch.rand(n, *shape), torch.arange(n) % 10
    block = detect_onednn_block()
    both = {"readout": "both", "readout_from": 1}
    for cfg, readout in ((small_cfg(layers=2, filters=8, pool="none", **both), "goodness"),
                         (small_cfg(layers=2, filters=8, pool="none", **both), "linear"),
                         (small_cfg(layers=3, filters=8, pool="max", readout="both"), "goodness"),
                         (small_cfg(layers=3, filters=8, pool="max", readout="both"), "linear"),
                         (small_cfg(layers=2, filters=32, pool="stride", **both), "goodness"),
                         (small_cfg(layers=2, filters=32, pool="avg", readout_from=1), "goodness"),
                         (small_cfg(algo="bp", layers=2, filters=8, pool="max"), "linear"),
                         (small_cfg(algo="bp", layers=3, filters=32, pool="none"), "linear"),
                         (small_cfg(algo="bp", layers=2, filters=16, pool="stride"), "linear")):
        cls = FFNet if cfg.algo == "ff" else BPNet
        model, measured = step_peak_bytes(lambda cls=cls, cfg=cfg: cls(cfg, shape, 10), x, y, readout=readout)
        specs = model.layer_specs()
        if cfg.algo == "ff":
            train = ff_memory(specs, n, num_classes=10, linear_readout=cfg.readout == "both",
                              readout_from=cfg.readout_from, backend="cpu")
            extra = model.labels.patterns.numel() * 4
        else:
            train, extra = bp_memory(specs, n, num_classes=10, backend="cpu"), 0
        infer = inference_memory(specs, n, readout=readout, num_classes=10, readout_from=cfg.readout_from,
                                 algo=cfg.algo, linear_readout=cfg.readout == "both", backend="cpu")
        est = infer.peak_bytes + train.grad_bytes + train.optimizer_bytes + extra
        assert abs(est - measured) <= 0.1 * measured, (block, cfg.algo, cfg.pool, readout, est, measured)
    with pytest.raises(ValueError, match="only the linear"):
        inference_memory(paper_specs(algo="bp"), 2, readout="goodness", algo="bp")


def _conv_peaks(spec: ConvBlock, rows: int, need_dx: bool) -> tuple[int, int]:
    """Peak rise of live tensor bytes during one conv's forward, and during its backward (weight and
    bias gradient, and dL/dx when ``need_dx``), as the CPU allocator saw them."""
    from torch.profiler import ProfilerActivity, profile, record_function

    x = torch.rand(rows, *spec.in_shape, requires_grad=need_dx)
    conv = nn.Conv2d(spec.in_shape[0], spec.filters, spec.kernel, stride=spec.stride, padding=spec.kernel // 2)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        with record_function("fwd"):
            out = conv(x)
        grad = torch.ones_like(out)
        with record_function("bwd"):
            out.backward(grad)
    events = sorted(prof.profiler.kineto_results.events(), key=lambda e: e.start_ns())
    peaks = []
    for phase in ("fwd", "bwd"):
        span = next(e for e in events if e.name() == phase)
        live = peak = 0
        for e in events:
            if e.name() == "[memory]" and span.start_ns() <= e.start_ns() <= span.end_ns():
                live += e.nbytes()
                peak = max(peak, live)
        peaks.append(peak)
    return peaks[0], peaks[1]


@pytest.mark.parametrize("channels", [(1, 8), (3, 17), (4, 8), (8, 8), (12, 4), (16, 8), (17, 32)])
@pytest.mark.parametrize("pool", ["none", "stride"])
def test_onednn_conv_copies_match_the_allocator(channels, pool):
    """The per-conv rules of ``accounting.onednn`` (forward, weight gradient, input gradient) at this
    CPU's block against the allocator, over the channel counts where the rules change: thin inputs
    read as they are, the 4-15-channel fallback to block 8, padding of outputs to the block."""
    torch.manual_seed(0)
    block = detect_onednn_block()
    c_in, c_out = channels
    rows = 8
    s = ConvBlock("c", (c_in, 15, 15), c_out, 3, pool)
    f32 = lambda elems: 4 * elems
    for need_dx in (False, True):
        fwd, bwd = _conv_peaks(s, rows, need_dx)
        fc = forward_copies(s.conv, rows, block)
        want_fwd = max(fc.src + fc.weights + fc.dst, fc.tail + f32(rows * s.neurons))
        wc = weight_grad_copies(s.conv, rows, block)
        dw = f32(s.weights)
        want_bwd = max(wc.src + wc.weights + wc.dst, wc.tail + dw)
        if need_dx:
            ic = input_grad_copies(s.conv, rows, block)
            dx = f32(rows * s.in_elems)
            want_bwd = max(ic.src + ic.weights + ic.dst, ic.tail + dx, dx + want_bwd)
        assert abs(want_fwd - fwd) <= 0.03 * fwd, (block, channels, pool, "forward", want_fwd, fwd)
        # the stride-2 input gradient's gemm scratch (60-120 KB) is not modelled
        tol = 0.03 * bwd + (128 * 1024 if need_dx and pool == "stride" else 0)
        assert want_bwd - tol <= bwd <= want_bwd + tol, (block, channels, pool, need_dx, want_bwd, bwd)


def test_onednn_block_follows_onednn_max_cpu_isa(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")
    assert detect_onednn_block() == 8
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")
    assert detect_onednn_block() == (16 if torch.backends.cpu.get_cpu_capability() == "AVX512" else 8)
    specs = paper_specs()
    with pytest.raises(ValueError, match="block"):
        ff_memory(specs, 2, backend="cpu", onednn_block=4)
    with pytest.raises(ValueError, match="cpu"):
        ff_memory(specs, 2, onednn_block=8)


@pytest.mark.slow
def test_cpu_memory_model_holds_on_onednn_avx2_kernels(tmp_path):
    """The allocator comparisons above (training step, predict, single convs) again, in a fresh process with oneDNN capped at AVX2 (block 8):
    ``ONEDNN_MAX_CPU_ISA`` is read once, when oneDNN first runs, so it needs its own process."""
    if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        pytest.skip("this CPU has no AVX2")
    here = Path(__file__).resolve()
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    tests = [f"{here}::test_pytorch_memory_model_matches_the_cpu_allocator_within_10_percent",
             f"{here}::test_inference_memory_matches_the_cpu_allocator_within_10_percent",
             f"{here}::test_onednn_conv_copies_match_the_allocator"]
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    code = "from ffneuro.accounting.onednn import detect_onednn_block as d; print(d())"
    block = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=60, check=False)
    assert block.stdout.strip() == "8", block.stdout + block.stderr


def test_cpu_backend_adds_onednn_weight_gradient_copies():
    specs = paper_specs()
    cuda = ff_memory(specs, 50)
    # unit 2's weight gradient: blocked copies of its input, of dL/dy and of dW (128 channels: no padding)
    u2 = specs[1]
    extra = 4 * 2 * 50 * (u2.in_elems + u2.neurons) + 4 * u2.weights
    for block in (8, 16):
        cpu = ff_memory(specs, 50, backend="cpu", onednn_block=block)
        assert cpu.peak_at == "unit2: conv backward (oneDNN)"
        assert cpu.peak_bytes == cuda.peak_bytes - 4 * 2 * 50 * u2.neurons + extra  # g_y is gone by then
    # a 1-channel input: block 16 reads it as it is; block 8 pads it to 8 channels (the first layer's dW)
    first = ConvBlock("u1", (1, 28, 28), 128, 7)
    assert weight_grad_copies(first.conv, 2, 16).src == 0
    assert weight_grad_copies(first.conv, 2, 8).src == 4 * 2 * 8 * 28 * 28
    # fewer filters than the block: the forward's blocked output is padded
    assert forward_copies(ConvBlock("u", (1, 12, 12), 8, 3).conv, 2, 16).dst == 2 * forward_copies(
        ConvBlock("u", (1, 12, 12), 8, 3).conv, 2, 8).dst
    assert bp_memory(paper_specs(algo="bp"), 50, backend="cpu").peak_bytes >= bp_memory(paper_specs(algo="bp"), 50).peak_bytes
    with pytest.raises(ValueError, match="backend"):
        ff_memory(specs, 2, backend="tpu")
    with pytest.raises(ValueError, match="fp32"):
        bp_memory(paper_specs(algo="bp"), 2, "bf16", backend="cpu")
