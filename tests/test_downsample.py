"""Downsampling between units: ``pool="stride"`` (a stride-2 conv) and ``pool_every`` (every k-th unit)."""
from __future__ import annotations

import logging

import pytest
import torch
from blockspecs import conv_stack_specs, conv_unit_cost
from click.testing import CliRunner
from ffneuro.cli.main import main

from ffneuro.blocks import layer_pools, layer_specs
from ffneuro.blocks.conv import ConvBlock
from ffneuro.config import RunConfig
from ffneuro.errors import ConfigError
from ffneuro.models import BPNet, FFNet, block_stack
from ffneuro.presets import resolve_config
from ffneuro.store import read_run


def smoke(**overrides) -> RunConfig:
    return resolve_config("smoke", {"device": "cpu", **overrides})


# --- ConvBlock and conv_stack shapes --------------------------------------------------------------------

@pytest.mark.parametrize("hw,out", [(8, 4), (7, 4), (28, 14), (5, 3), (2, 1)])
def test_stride_block_neurons_are_the_strided_map(hw, out):
    block = ConvBlock("block", (2, hw, hw), 5, 3, "stride").build()
    assert block.spec.stride == 2 and block.conv.stride == (2, 2) and block.conv.padding == (1, 1)
    y = block(torch.rand(3, 2, hw, hw))
    assert y.shape == (3, *block.neuron_shape) == (3, 5, out, out)
    assert block.pool_out(y) is y                        # no pooled tensor: the conv already downsampled
    assert block.out_shape == block.neuron_shape


def test_stride_block_needs_a_map_to_downsample():
    with pytest.raises(ConfigError, match="block cannot downsample its 1×8 input map"):
        ConvBlock("block", (1, 1, 8), 2, 1, "stride")



@pytest.mark.parametrize("pool", ["max", "stride"])
def test_eight_units_on_cifar_with_pool_every_2(pool):
    blocks = block_stack(RunConfig(layers=8, filters=2, kernel=3, pool=pool, pool_every=2), (3, 32, 32))
    assert [b.out_shape[1] for b in blocks] == [32, 16, 16, 8, 8, 4, 4, 2]
    assert [b.spec.pool for b in blocks] == ["none", pool] * 4
    h = torch.rand(1, 3, 32, 32)
    for b in blocks:
        h = b.pool_out(b(h))
        assert h.shape[1:] == b.out_shape


def test_stride_on_28x28_rounds_up():
    blocks = block_stack(RunConfig(layers=3, filters=2, kernel=5, pool="stride"), (1, 28, 28))
    assert [b.out_shape[1:] for b in blocks] == [(14, 14), (7, 7), (4, 4)]


def test_layer_pools_rule():
    assert layer_pools(5, "max", 1) == ["max"] * 5
    assert layer_pools(5, "stride", 2) == ["none", "stride", "none", "stride", "none"]
    assert layer_pools(2, "avg", 3) == ["none", "none"]
    assert layer_pools(4, "none", 2) == ["none"] * 4


def test_pool_every_1_builds_todays_network_bit_identically():
    """pool_every=1 is the old behaviour: same blocks, same weights, same FF step."""
    def step(**kw):
        torch.manual_seed(0)
        net = FFNet(smoke(pool="max", layers=3, **kw), (1, 16, 16), 10)
        x, y = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(1)), torch.arange(4)
        net.train_batch(x, y, torch.Generator().manual_seed(2))
        return [p.detach().clone() for p in net.parameters()], [u.theta for u in net.units]
    (a, ta), (b, tb) = step(), step(pool_every=1)
    assert ta == tb and all(torch.equal(p, q) for p, q in zip(a, b))


# --- ConvBlock / accounting -----------------------------------------------------------------------------

def test_layer_spec_stride_shapes_and_flags():
    s = ConvBlock("u", (4, 28, 28), 8, 3, pool="stride")
    assert (s.stride, s.pooled) == (2, False)
    assert s.neuron_shape == s.out_shape == (8, 14, 14)
    assert s.macs == 8 * 14 * 14 * 4 * 9 and s.neurons == s.out_elems == 8 * 14 * 14
    assert ConvBlock("u", (4, 28, 28), 8, 3, pool="max").pooled
    assert not ConvBlock("u", (4, 28, 28), 8, 3).pooled
    with pytest.raises(ValueError, match="cannot downsample"):
        ConvBlock("u", (1, 1, 4), 2, 1, pool="stride")


def test_old_config_objects_without_pool_every_downsample_every_unit():
    class Old:  # a config-like object from before pool_every
        algo, layers, filters, kernel, pool, train_first_layer = "ff", 3, 4, 3, "max", False
    assert [s.pool for s in layer_specs(Old(), (1, 16, 16))] == ["max"] * 3
    assert conv_stack_specs((1, 16, 16), 3, 4, 3, "stride", pool_every=3)[2].pool == "stride"


@pytest.mark.parametrize("algo", ["ff", "bp"])
@pytest.mark.parametrize("pool,pool_every", [("stride", 1), ("stride", 2), ("max", 2), ("avg", 3)])
def test_layer_specs_match_the_built_model(algo, pool, pool_every):
    cfg = smoke(algo=algo, layers=4, filters=3, kernel=3, pool=pool, pool_every=pool_every)
    torch.manual_seed(0)
    net = (FFNet if algo == "ff" else BPNet)(cfg, (1, 13, 13), 5)
    specs = layer_specs(cfg, (1, 13, 13))
    assert specs == net.layer_specs()
    blocks = [u.block for u in net.units] if algo == "ff" else list(net.blocks)
    for s, b, c in zip(specs, blocks, net.costs()):
        assert (s.neuron_shape, s.out_shape, s.stride) == (b.neuron_shape, b.out_shape, b.spec.stride)
        assert c.macs_forward == s.macs and c.activation_elems == s.neurons


def test_ff_default_theta_counts_the_strided_neurons():
    net = FFNet(smoke(pool="stride", goodness="sumsq", layers=2), (1, 16, 16), 10)
    assert [u.theta for u in net.units] == [8 * 8 * 8, 8 * 4 * 4]
    assert conv_unit_cost("u", (1, 16, 16), 8, 3, stride=2).activation_elems == 8 * 8 * 8


def test_hand_built_unit_on_a_strided_block():
    """An FFUnit made outside FFNet: θ and cost() both count the strided conv's outputs."""
    from ffneuro.goodness import GOODNESS
    from ffneuro.units import FFUnit, LocalObjective, OptimizerSettings

    unit = FFUnit("u", ConvBlock("block", (1, 16, 16), 8, 3, "stride").build(), LocalObjective(GOODNESS.get("sumsq")),
                  OptimizerSettings(lr=1e-3), trainable=True)
    assert unit.theta == 8 * 8 * 8
    assert unit.cost().activation_elems == 8 * 8 * 8
    assert unit.cost().macs_forward == 8 * 8 * 8 * 9


# --- config and training --------------------------------------------------------------------------------

@pytest.mark.parametrize("algo", ["ff", "bp"])
def test_smoke_train_step_with_stride_every_second_unit(algo):
    cfg = smoke(algo=algo, layers=4, pool="stride", pool_every=2)
    torch.manual_seed(0)
    net = (FFNet if algo == "ff" else BPNet)(cfg, (1, 16, 16), 10)
    x, y = torch.rand(8, 1, 16, 16), torch.arange(8)
    before = [p.detach().clone() for p in net.parameters()]
    loss = net.train_batch(x, y).train_loss
    assert torch.isfinite(loss)
    assert any(not torch.equal(p, q) for p, q in zip(before, net.parameters()))
    readout = "goodness" if algo == "ff" else "linear"
    assert net.predict(x, readout).shape == (8,)


def test_cli_train_with_stride_and_pool_every(tmp_path):
    out = tmp_path / "stride.h5"
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:  # the command points the root logger at the runner's stderr: restore it afterwards
        result = CliRunner().invoke(main, ["-q", "train", "--preset", "smoke", "--pool", "stride", "--pool-every", "2",
                                           "--epochs", "1", "--train-limit", "100", "--val-size", "50", "--out", str(out)])
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert result.exit_code == 0, result.output
    rec = read_run(out)
    assert rec.config["pool"] == "stride" and rec.config["pool_every"] == 2
    # smoke: 2 units of 8 filters 7×7 on 16×16; only unit 2 is strided (8 × 8×8 outputs)
    assert list(rec.accounting["macs_forward"]) == [8 * 16 * 16 * 49, 8 * 8 * 8 * 8 * 49]


def test_cli_pool_every_rejects_zero():
    result = CliRunner().invoke(main, ["train", "--preset", "smoke", "--pool-every", "0"])
    assert result.exit_code != 0 and "--pool-every" in result.output


def test_sweep_offers_pool_every():
    result = CliRunner().invoke(main, ["sweep", "--help"])
    assert result.exit_code == 0 and "--pool-every" in result.output and "stride-2 conv" in result.output

