"""The residual FF family's parts, each alone: DeeperForward's mean goodness (``classmean``), the residual
block's ``norm`` and ``bias`` options (group norm of the hand-on), the ``deeperforward-*`` presets and their
paper numbers in the studies. The whole block is checked by tests/test_block_contract.py (its variants in
tests/blockspecs.py)."""
from __future__ import annotations

import pytest
import torch

from ffneuro import blocks
from ffneuro.blocks.residual import ResidualBlock, group_normalize
from ffneuro.errors import ConfigError
from ffneuro.goodness import GOODNESS, classwise_means
from ffneuro.presets import resolve_config
from ffneuro.spec import GroupNorm, RMSNorm, node_from_dict
from ffneuro.spec.block import StackPlan

# ------------------------------------------------------------------------------------------ mean goodness


def test_classwise_means_is_the_mean_of_each_class_group():
    y = torch.arange(2 * 4 * 3 * 3, dtype=torch.float32).view(2, 4, 3, 3)
    g = classwise_means(y, 2)
    assert g.shape == (2, 2)
    expected = torch.stack([y[:, :2].mean((1, 2, 3)), y[:, 2:].mean((1, 2, 3))], 1)
    assert torch.equal(g, expected)


def test_classwise_means_gradient_is_one_over_the_group_size_whatever_the_activity():
    """DeeperForward's point: d(mean)/dy does not shrink with y (the square's 2y starves quiet neurons)."""
    grads = []
    for y0 in (torch.zeros(3, 6, 2, 2), torch.rand(3, 6, 2, 2) * 5):
        y = y0.clone().requires_grad_(True)
        w = torch.tensor([[1.0, -2.0, 0.5]] * 3)
        (classwise_means(y, 3) * w).sum().backward()
        grads.append(y.grad)
    assert torch.equal(grads[0], grads[1])
    count = 2 * 2 * 2   # 2 channels of 2×2 per group
    assert torch.allclose(grads[0][:, 0:2], torch.full((3, 2, 2, 2), 1.0 / count))
    assert torch.allclose(grads[0][:, 2:4], torch.full((3, 2, 2, 2), -2.0 / count))
    assert grads[0].is_contiguous()


def test_classwise_means_gradient_passes_gradcheck():
    y = torch.rand(2, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: classwise_means(t, 2), (y,))


def test_classwise_means_refuses_channels_that_do_not_split():
    with pytest.raises(ValueError, match="5 channels do not split into 2"):
        classwise_means(torch.rand(1, 5, 2, 2), 2)


def test_classmean_is_registered_class_wise_and_its_position_map_sums_to_it():
    g = GOODNESS.get("classmean")
    assert g.per_class and g.power == 1
    y = torch.rand(2, 20, 4, 4)
    pm = g.position_map(y, 10)
    assert pm.shape == (2, 10, 4, 4)
    assert torch.allclose(pm.sum((2, 3)), g(y, 10))
    # the squares' map still sums to the squares' goodness
    sq = GOODNESS.get("classwise")
    assert torch.allclose(sq.position_map(y, 10).sum((2, 3)), sq(y, 10))


def test_classmean_takes_a_class_loss_and_no_label():
    cfg = resolve_config(None, dict(goodness="classmean", loss="cwc", labels="none"))
    assert cfg.goodness == "classmean"
    with pytest.raises(ConfigError, match="class-wise"):
        resolve_config(None, dict(goodness="classmean", loss="bce", labels="fourier1"))


# ------------------------------------------------------------------------------ group norm of the hand-on


def test_group_normalize_standardises_each_group_of_each_sample():
    torch.manual_seed(0)
    y = torch.rand(3, 6, 4, 4) * torch.tensor([1.0, 1, 5, 5, 0.5, 0.5]).view(1, 6, 1, 1) + 2
    out = group_normalize(y, 3)
    groups = out.view(3, 3, -1)
    assert torch.allclose(groups.mean(2), torch.zeros(3, 3), atol=1e-5)
    assert torch.allclose(groups.var(2, unbiased=False), torch.ones(3, 3), atol=1e-3)
    # by hand: (y - mean) / sqrt(var + eps) per sample and group
    v = y.view(3, 3, -1)
    by_hand = (v - v.mean(2, keepdim=True)) / (v.var(2, unbiased=False, keepdim=True) + 1e-5).sqrt()
    assert torch.allclose(out, by_hand.view_as(y), atol=1e-5)


def test_layer_norm_is_one_group():
    y = torch.rand(2, 4, 3, 3)
    out = group_normalize(y, 1)
    assert torch.allclose(out, torch.nn.functional.layer_norm(y, y.shape[1:]), atol=1e-5)


# --------------------------------------------------------------------------------- the block's options


def _stack(options: dict, widths=(10, 20), pools=("none", "stride"), classes: int | None = 10):
    plan = StackPlan(3, pools, "unit", (True,) * len(widths), num_classes=classes, options=options)
    return ResidualBlock.stack((3, 8, 8), widths, plan)


def test_norm_group_hands_on_group_norm_with_one_group_per_class():
    specs = _stack({"norm": "group", "bias": False})
    for s in specs:
        last = s.nodes()[-1]
        assert isinstance(last, GroupNorm) and last.groups == 10
        assert not s.bias and not any(c.bias for c in s.convs)
    module = specs[0].build()
    assert all(c.bias is None for c in (module.conv1, module.conv2))
    y = module(torch.rand(2, 3, 8, 8))
    out = module.hand_on(y)
    assert torch.allclose(out.view(2, 10, -1).mean(2), torch.zeros(2, 10), atol=1e-5)


def test_norm_layer_is_one_group_and_the_default_is_rms():
    (spec,) = _stack({"norm": "layer"}, widths=(10,), pools=("max",), classes=None)
    assert spec.nodes()[-1] == GroupNorm(spec.out_shape, 1)
    (plain,) = _stack({}, widths=(10,), pools=("max",), classes=None)
    assert isinstance(plain.nodes()[-1], RMSNorm) and plain.bias


def test_bias_false_removes_the_conv_biases_from_the_counts():
    (biased,) = _stack({}, widths=(10,), pools=("none",))
    (plain,) = _stack({"bias": False}, widths=(10,), pools=("none",))
    assert biased.params - plain.params == 2 * 10
    assert plain.forward_ops < biased.forward_ops and plain.bias_grad_ops == 0


def test_group_norm_costs_differ_from_rms_norm():
    (rms,) = _stack({}, widths=(10,), pools=("none",))
    (group,) = _stack({"norm": "group"}, widths=(10,), pools=("none",))
    elems = group.out_elems
    assert group.forward_ops - rms.forward_ops == (5 - 3) * elems + 4 * 10 - 3
    assert group.bp_input_grad_ops(True) - rms.bp_input_grad_ops(True) == (7 - 5) * elems + 3 * 10 - 4


@pytest.mark.parametrize("options, message", [
    ({"norm": "batch"}, "norm must be one of rms, group, layer"),
    ({"bias": "no"}, "bias must be true or false"),
])
def test_bad_option_values_are_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        _stack(options)


def test_norm_group_needs_the_classes_and_widths_that_split_into_them():
    with pytest.raises(ConfigError, match="number of classes"):
        _stack({"norm": "group"}, classes=None)
    with pytest.raises(ConfigError, match="multiple of 10"):
        _stack({"norm": "group"}, widths=(12, 20))


def test_unknown_block_options_are_refused_by_name():
    with pytest.raises(ConfigError, match="takes no option dropout; valid: norm, bias"):
        ResidualBlock.check_options({"dropout": 0.2})


def test_group_norm_node_round_trips_and_checks_its_groups():
    node = GroupNorm((20, 4, 4), 10)
    assert node_from_dict(node.to_dict()) == node
    assert node.out_shape == (20, 4, 4) and node.params == 0
    with pytest.raises(ConfigError, match="do not split into 3"):
        GroupNorm((20, 4, 4), 3)


# ------------------------------------------------------------------------------------------------ presets


@pytest.mark.parametrize("dataset, shape, maps", [
    ("cifar10", (3, 32, 32), (32, 32, 16, 16, 8, 8, 4, 4)),
    ("mnist", (1, 28, 28), (28, 28, 14, 14, 7, 7, 4, 4)),
    ("fashion-mnist", (1, 28, 28), (28, 28, 14, 14, 7, 7, 4, 4)),
])
def test_deeperforward_presets_build_a_resnet_of_eight_residual_units(dataset, shape, maps):
    name = f"deeperforward-{dataset}"
    cfg = resolve_config(name, {})
    assert (cfg.dataset, cfg.goodness, cfg.loss, cfg.labels, cfg.arch) == (dataset, "classmean", "cwc", "none", "residual")
    assert (cfg.epochs, cfg.batch_size, cfg.lr) == (20, 128, 0.08)
    specs = blocks.layer_specs(cfg, shape, num_classes=10)
    assert [s.out_shape[1] for s in specs] == list(maps)
    assert [s.filters for s in specs] == [100, 100, 200, 200, 400, 400, 800, 800]
    assert sum(len(s.convs) for s in specs) == 16 + 4   # 16 3×3 convs, 4 projection skips (channels change)
    assert all(s.norm == "group" and s.norm_groups == 10 and not s.bias for s in specs)


def test_deeperforward_studies_carry_the_papers_numbers():
    from ffneuro.studies import STUDIES

    expected = {"deeperforward-mnist": 0.9963, "deeperforward-fashion-mnist": 0.9313, "deeperforward-cifar10": 0.8622}
    for name, value in expected.items():
        study = STUDIES.get(name)
        assert study.preset == name
        assert [round(p.mean, 4) for p in study.paper] == [value]
        assert study.paper[0].sd is not None and study.paper[0].split == "test"
        points = study.points("cpu20k", seeds=(0,))   # the CPU budget: 1 and 2 epochs at a fifth of the widths
        assert [c.epochs for _, c in points] == [1, 2]
        assert all(c.widths == (20, 20, 40, 40, 80, 80, 160, 160) for _, c in points)


def test_mnist_fast_residual_is_mnist_fast_on_residual_units_with_deeperforwards_parts():
    fast, res = resolve_config("mnist-fast", {}), resolve_config("mnist-fast-residual", {})
    assert (res.arch, res.goodness, res.block_options) == ("residual", "classmean", {"norm": "group", "bias": False})
    # the budget is not shared: mnist-fast's record runs 12 augmented epochs, this keeps 3 (test_presets_fast)
    for key in ("widths", "pool_at", "loss", "labels", "lr", "batch_size", "cooldown_start"):
        assert getattr(res, key) == getattr(fast, key), key
    specs = blocks.layer_specs(res, (1, 28, 28), num_classes=10)
    assert [s.out_shape for s in specs] == [(40, 14, 14), (80, 7, 7), (160, 7, 7)]
