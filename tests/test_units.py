"""FF units: each owns its parameters and optimiser, learns alone, and hands on detached outputs."""
from __future__ import annotations

import pytest
import torch

from ffneuro.blocks.conv import ConvBlock
from ffneuro.blocks.module import rms_normalize
from ffneuro.config import RunConfig
from ffneuro.errors import ConfigError
from ffneuro.goodness import GOODNESS, LOSSES, ff_loss
from ffneuro.models import FFNet
from ffneuro.units import FFUnit, LocalObjective, OptimizerSettings, UnitStats


def make_unit(in_shape=(1, 8, 8), filters=4, kernel=3, pool="none", goodness="meansq", theta=None,
              trainable=True, lr=1e-2, seed=0, loss="bce"):
    torch.manual_seed(seed)
    return FFUnit("u", ConvBlock("block", in_shape, filters, kernel, pool).build(),
                  LocalObjective(GOODNESS.get(goodness), loss, theta), OptimizerSettings(lr=lr), trainable=trainable)


def batch(n=4, shape=(1, 8, 8), seed=0, scale=1.0):
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed)) * scale


def pos_neg(x_pos: torch.Tensor, x_neg: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The one 2N-row tensor a unit trains on (positives first) and the number of positives."""
    return torch.cat([x_pos, x_neg]), x_pos.shape[0]


def tiny_net(**overrides) -> FFNet:
    torch.manual_seed(0)
    values = dict(layers=3, filters=3, kernel=3, labels="fourier2", goodness="meansq", readout_from=2,
                  readout="both", lr=1e-2, linear_lr=1e-2, train_first_layer=False, epochs=1)
    values.update(overrides)
    return FFNet(RunConfig(**values), (1, 8, 8), 4)


def snapshot(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def unchanged(module: torch.nn.Module, before: list[torch.Tensor]) -> bool:
    return all(torch.equal(p, b) for p, b in zip(module.parameters(), before))


def all_changed(module: torch.nn.Module, before: list[torch.Tensor]) -> bool:
    return all(not torch.equal(p, b) for p, b in zip(module.parameters(), before))


# --- ConvBlock --------------------------------------------------------------------------------------

@pytest.mark.parametrize("pool,out_hw", [("none", (8, 8)), ("max", (4, 4)), ("avg", (4, 4))])
def test_conv_block_shapes_and_pooling(pool, out_hw):
    block = ConvBlock("block", (2, 8, 8), 5, 3, pool).build()
    x = batch(3, (2, 8, 8))
    y = block(x)
    assert y.shape == (3, 5, 8, 8)            # goodness is measured before pooling
    assert (y >= 0).all()                      # ReLU
    assert block.pool_out(y).shape == (3, *block.out_shape) == (3, 5, *out_hw)


def test_conv_block_max_pool_values():
    block = ConvBlock("block", (1, 4, 4), 1, 1, "max").build()
    y = torch.arange(16.0).view(1, 1, 4, 4)
    assert torch.equal(block.pool_out(y), torch.tensor([[[[5.0, 7.0], [13.0, 15.0]]]]))


@pytest.mark.parametrize("kwargs", [dict(kernel=4), dict(kernel=0), dict(pool="min"), dict(pool="max", in_shape=(1, 1, 8))])
def test_conv_block_rejects_bad_settings(kwargs):
    args = dict(in_shape=(1, 8, 8), filters=2, kernel=3, pool="none") | kwargs
    with pytest.raises(ConfigError):
        ConvBlock("block", **args).build()


# --- one unit ---------------------------------------------------------------------------------------

def test_optimizer_holds_exactly_the_units_own_parameters():
    unit = make_unit()
    opt_params = [p for group in unit.optimizer.param_groups for p in group["params"]]
    assert {id(p) for p in opt_params} == {id(p) for p in unit.parameters()}
    assert len(opt_params) == len(list(unit.parameters())) == 2  # conv weight and bias


def test_default_theta_uses_neurons_before_pooling():
    assert make_unit(filters=4, pool="max", goodness="sumsq").theta == 4 * 8 * 8
    assert make_unit(goodness="meansq").theta == 1.0
    assert make_unit(theta=3).theta == 3.0


def test_frozen_unit_has_no_optimizer_and_does_not_change():
    unit = make_unit(trainable=False)
    assert unit.optimizer is None
    assert not any(p.requires_grad for p in unit.parameters())
    before = snapshot(unit)
    for _ in range(3):
        unit.train_step(*pos_neg(batch(seed=1), batch(seed=2)))
    assert unchanged(unit, before)
    assert all(p.grad is None for p in unit.parameters())


def test_trainable_unit_changes_its_parameters():
    unit = make_unit()
    before = snapshot(unit)
    unit.train_step(*pos_neg(batch(seed=1), batch(seed=2)))
    assert all_changed(unit, before)


@pytest.mark.parametrize("trainable", [True, False])
def test_train_step_outputs_carry_no_graph(trainable):
    unit = make_unit(trainable=trainable)
    x_pos = batch(seed=1).requires_grad_(True)  # even a graph-carrying input must not leak through
    out, stats = unit.train_step(*pos_neg(x_pos, batch(seed=2)))
    for t in (out, *stats.values()):
        assert not t.requires_grad and t.grad_fn is None
    assert x_pos.grad is None


def test_train_step_outputs_are_pooled_rms_normalised_hand_on():
    unit = make_unit(pool="max", trainable=False)
    x_pos, x_neg = batch(seed=1), batch(3, seed=2)
    out, _ = unit.train_step(*pos_neg(x_pos, x_neg))
    assert out.shape == (7, 4, 4, 4)                       # positives first, then negatives, in order
    with torch.no_grad():
        expected = [rms_normalize(torch.nn.functional.max_pool2d(unit(x), 2)) for x in (x_pos, x_neg)]
    assert torch.allclose(out[:4], expected[0], atol=1e-6) and torch.allclose(out[4:], expected[1], atol=1e-6)


def test_train_step_stats_match_hand_computation():
    unit = make_unit(goodness="sumsq", theta=5.0, trainable=False)
    x_pos, x_neg = batch(seed=1), batch(seed=2)
    with torch.no_grad():
        g_pos = unit(x_pos).flatten(1).pow(2).sum(1)
        g_neg = unit(x_neg).flatten(1).pow(2).sum(1)
    _, stats = unit.train_step(*pos_neg(x_pos, x_neg))
    assert stats.loss.item() == pytest.approx(ff_loss(g_pos - 5.0, g_neg - 5.0).item(), rel=1e-5)
    assert stats.goodness_pos.item() == pytest.approx(g_pos.mean().item(), rel=1e-5)
    assert stats.goodness_neg.item() == pytest.approx(g_neg.mean().item(), rel=1e-5)
    acc = ((g_pos > 5).sum() + (g_neg <= 5).sum()).item() / 8
    assert stats.disc_acc.item() == pytest.approx(acc)
    assert stats.pair_acc.item() == pytest.approx((g_pos > g_neg).float().mean().item())


def test_train_step_learns_to_separate_positives_from_negatives():
    unit = make_unit(lr=2e-2, theta=0.5, seed=3)
    x_pos, x_neg = batch(8, seed=1, scale=1.0), batch(8, seed=2, scale=0.2)
    x, n = pos_neg(x_pos, x_neg)
    losses = [unit.train_step(x, n)[1].loss.item() for _ in range(30)]
    assert losses[-1] < 0.7 * losses[0]
    assert unit.train_step(x, n)[1].disc_acc.item() == 1.0


@pytest.mark.parametrize("goodness", ["sumsq", "meansq"])
@pytest.mark.parametrize("loss", ["bce", "symba"])
def test_train_step_on_one_2n_tensor_matches_separate_passes_with_autograds_goodness(goodness, loss):
    """The 2N-row step and the lean goodness backward change no result: the same as two separate
    passes with ``y.pow(2).sum/mean`` and plain autograd (up to the conv's rounding over N vs 2N rows)."""
    unit, ref = (make_unit(pool="max", goodness=goodness, loss=loss, theta=2.0) for _ in range(2))
    x_pos, x_neg = batch(seed=1), batch(seed=2)
    reduce = (lambda t: t.pow(2).sum(1)) if goodness == "sumsq" else (lambda t: t.pow(2).mean(1))
    for _ in range(3):
        y_pos, y_neg = ref(x_pos), ref(x_neg)
        ref_loss = LOSSES.get(loss)(reduce(y_pos.flatten(1)) - 2.0, reduce(y_neg.flatten(1)) - 2.0)
        ref.optimizer.zero_grad(set_to_none=True)
        ref_loss.backward()
        ref.optimizer.step()
        out, stats = unit.train_step(*pos_neg(x_pos, x_neg))
        assert stats.loss.item() == pytest.approx(ref_loss.item(), rel=1e-5)
        assert torch.allclose(out, torch.cat([ref.hand_on(y_pos), ref.hand_on(y_neg)]), atol=1e-6)
        for p, q in zip(unit.parameters(), ref.parameters()):  # Adam's step is lr-sized even for a tiny
            assert torch.allclose(p, q, atol=1e-5)              # gradient: conv rounding over 2N vs N rows


def test_set_lr_updates_optimizer_and_is_noop_when_frozen():
    unit = make_unit(lr=1e-3)
    unit.set_lr(0.5)
    assert [g["lr"] for g in unit.optimizer.param_groups] == [0.5]
    make_unit(trainable=False).set_lr(0.5)  # no optimizer: nothing to do, no error


def test_unit_stats_addition_is_elementwise():
    a = UnitStats(*map(torch.tensor, (1.0, 2.0, 3.0, 0.5, 0.25)))
    b = UnitStats(*map(torch.tensor, (10.0, 20.0, 30.0, 0.25, 0.5)))
    total = a + b
    assert [v.item() for v in total.values()] == [11.0, 22.0, 33.0, 0.75, 0.75]
    assert [v.item() for v in a.values()] == [1.0, 2.0, 3.0, 0.5, 0.25]  # operands untouched


# --- units inside an FFNet --------------------------------------------------------------------------

@pytest.mark.parametrize("k", [0, 1, 2])
def test_train_step_of_one_unit_touches_no_other_unit(k):
    net = tiny_net(train_first_layer=True)
    before = [snapshot(u) for u in net.units]
    x = batch(4)
    h_pos, h_neg = net.labels.embed(x, torch.tensor([0, 1, 2, 3])), net.labels.embed(x, torch.tensor([1, 2, 3, 0]))
    with torch.no_grad():
        for unit in net.units[:k]:
            h_pos, h_neg = unit.hand_on(unit(h_pos)), unit.hand_on(unit(h_neg))
    net.units[k].train_step(*pos_neg(h_pos, h_neg))
    for i, unit in enumerate(net.units):
        if i == k:
            assert all_changed(unit, before[i])
            assert all(p.grad is not None for p in unit.parameters())
        else:
            assert unchanged(unit, before[i]), i
            assert all(p.grad is None for p in unit.parameters()), i
    assert all(p.grad is None for p in net.linear.parameters())


def test_train_batch_updates_trainable_units_and_never_the_frozen_one():
    net = tiny_net(train_first_layer=False)
    assert [u.trainable for u in net.units] == [False, True, True]
    before = [snapshot(u) for u in net.units]
    step = net.train_batch(batch(4), torch.tensor([0, 1, 2, 3]), torch.Generator().manual_seed(0))
    stats, linear_loss = step.unit_stats, step.train_loss
    assert len(stats) == 3 and linear_loss is not None and not linear_loss.requires_grad
    assert unchanged(net.units[0], before[0])
    assert all(p.grad is None for p in net.units[0].parameters())
    assert all_changed(net.units[1], before[1]) and all_changed(net.units[2], before[2])


def test_train_batch_with_trainable_first_layer_updates_all_units():
    net = tiny_net(train_first_layer=True)
    before = [snapshot(u) for u in net.units]
    net.train_batch(batch(4), torch.tensor([0, 1, 2, 3]))
    assert all(all_changed(u, b) for u, b in zip(net.units, before))


def test_linear_readout_training_never_changes_units():
    net = tiny_net(train_first_layer=True)
    before = [snapshot(u) for u in net.units]
    lin_before = snapshot(net.linear)
    x, y = batch(4), torch.tensor([0, 1, 2, 3])
    for _ in range(2):
        feats = net.features(net.labels.embed_neutral(x))
        assert not feats.requires_grad
        net.linear.train_step(feats, y)
    assert all(unchanged(u, b) for u, b in zip(net.units, before))
    assert all(p.grad is None for u in net.units for p in u.parameters())
    assert all_changed(net.linear, lin_before)


def test_linear_readout_gradient_stops_at_features_even_if_they_carry_a_graph():
    net = tiny_net(train_first_layer=True)
    x = net.labels.embed_neutral(batch(4))
    feats = net.units[1].block(net.units[0].block(x)).flatten(1)  # a graph back into the units
    feats = torch.cat([feats, torch.zeros(4, net.linear.linear.in_features - feats.shape[1])], 1)
    net.linear.train_step(feats, torch.tensor([0, 1, 2, 3]))
    assert all(p.grad is None for u in net.units for p in u.parameters())


def test_hand_on_detaches_even_outside_no_grad():
    unit = make_unit()
    y = unit(batch())
    assert y.requires_grad
    out = unit.hand_on(y)
    assert not out.requires_grad and out.grad_fn is None


def test_train_batch_trains_linear_readout_on_neutral_features_after_unit_updates(monkeypatch):
    net = tiny_net(train_first_layer=True)
    x, y = batch(4), torch.tensor([0, 1, 2, 3])
    seen = {}
    original = net.linear.train_step

    def spy(features, labels):
        seen["features"], seen["labels"] = features, labels
        return original(features, labels)

    monkeypatch.setattr(net.linear, "train_step", spy)
    net.train_batch(x, y)
    assert torch.equal(seen["labels"], y)
    assert torch.allclose(seen["features"], net.features(net.labels.embed_neutral(x)))  # no label in them
    assert not torch.allclose(seen["features"], net.features(net.labels.embed(x, y)))
