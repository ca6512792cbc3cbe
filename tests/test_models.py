"""FFNet readouts and features, the BP baseline, and the shared conv stack."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ffneuro.config import RunConfig
from ffneuro.models import BPNet, FFNet, block_stack, build_model
from ffneuro.models.weights import weights_mismatch

SHAPE = (1, 8, 8)
CLASSES = 4


def config(**overrides) -> RunConfig:
    values = dict(layers=3, filters=3, kernel=3, labels="fourier2", goodness="meansq", readout_from=2,
                  readout="both", lr=1e-2, linear_lr=1e-2, train_first_layer=True, epochs=1)
    values.update(overrides)
    return RunConfig(**values)


def ff_net(**overrides) -> FFNet:
    torch.manual_seed(0)
    return FFNet(config(**overrides), SHAPE, CLASSES)


def images(n=5, shape=SHAPE, seed=0):
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed))


def hand_goodness_scores(net: FFNet, x: torch.Tensor, first: int) -> torch.Tensor:
    """Embed each label separately, run the units, sum goodness of layers first..L (1-based)."""
    scores = torch.zeros(x.shape[0], CLASSES)
    with torch.no_grad():
        for c in range(CLASSES):
            h = net.labels.embed(x, torch.full((x.shape[0],), c))
            for i, unit in enumerate(net.units):
                y = torch.relu(unit.block.conv(h))
                if i + 1 >= first:
                    scores[:, c] += unit.goodness.fn(y)
                pooled = unit.block.pool_out(y)
                h = pooled / pooled.flatten(1).pow(2).mean(1).add(1e-8).sqrt().view(-1, 1, 1, 1)
    return scores


# --- conv_stack -------------------------------------------------------------------------------------

def test_conv_stack_shapes_without_pooling():
    blocks = block_stack(config(layers=3, filters=5), (3, 8, 8))
    assert [b.in_shape for b in blocks] == [(3, 8, 8), (5, 8, 8), (5, 8, 8)]
    assert [b.out_shape for b in blocks] == [(5, 8, 8)] * 3


def test_conv_stack_max_pool_halves_each_layer():
    blocks = block_stack(config(layers=3, filters=2, pool="max"), (1, 16, 16))
    assert [b.out_shape for b in blocks] == [(2, 8, 8), (2, 4, 4), (2, 2, 2)]
    h = images(2, (1, 16, 16))
    for b in blocks:
        h = b.pool_out(b(h))
        assert h.shape[1:] == b.out_shape


# --- FFNet ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("readout_from", [1, 2, 3])
def test_goodness_scores_match_hand_loop(readout_from):
    net = ff_net(readout_from=readout_from)
    x = images()
    scores = net.goodness_scores(x)
    assert scores.shape == (5, CLASSES)
    assert torch.allclose(scores, hand_goodness_scores(net, x, readout_from), rtol=1e-5, atol=1e-6)


def test_goodness_scores_with_pooling_and_sumsq_match_hand_loop():
    net = ff_net(pool="max", goodness="sumsq", readout_from=1)
    x = images()
    assert torch.allclose(net.goodness_scores(x), hand_goodness_scores(net, x, 1), rtol=1e-5)


def test_goodness_scores_depend_on_the_label():
    scores = ff_net().goodness_scores(images())
    assert (scores.max(1).values - scores.min(1).values).min() > 0


def test_predict_goodness_is_argmax_of_scores():
    net = ff_net()
    x = images(6)
    pred = net.predict(x, "goodness")
    assert pred.shape == (6,) and pred.dtype == torch.int64
    assert torch.equal(pred, hand_goodness_scores(net, x, 2).argmax(1))


def test_features_shape_is_sum_of_readout_layer_outputs():
    net = ff_net(pool="max", readout_from=2, filters=3)
    # layer outputs (3,4,4), (3,2,2), (3,1,1); readout layers 2 and 3
    assert net.features(images()).shape == (5, 3 * 2 * 2 + 3 * 1 * 1)
    assert net.linear.linear.in_features == 15
    net1 = ff_net(readout_from=1)
    assert net1.features(images()).shape == (5, 3 * 3 * 8 * 8)


def test_features_concatenate_hand_on_outputs_in_layer_order():
    net = ff_net(readout_from=2)
    x = net.labels.embed_neutral(images(2))
    with torch.no_grad():
        h1 = net.units[0].hand_on(net.units[0](x))
        h2 = net.units[1].hand_on(net.units[1](h1))
        h3 = net.units[2].hand_on(net.units[2](h2))
    assert torch.allclose(net.features(x), torch.cat([h2.flatten(1), h3.flatten(1)], 1))


@pytest.mark.parametrize("pool", ["none", "max"])
@pytest.mark.parametrize("readout_from", [1, 2])
def test_features_are_bit_identical_to_list_and_cat(pool, readout_from):
    """The preallocated features equal the old list + torch.cat gathering exactly."""
    net = ff_net(pool=pool, readout_from=readout_from)
    x = net.labels.embed_neutral(images(4))
    with torch.no_grad():
        out, h = [], x
        for i, unit in enumerate(net.units[: net.readout_units[-1] + 1]):
            h = unit.hand_on(unit(h))
            if i in net.readout_units:
                out.append(h.flatten(1))
        ref = torch.cat(out, 1)
        got = net.features(x)
    assert got.dtype == ref.dtype and got.shape == ref.shape
    assert torch.equal(got, ref)


def test_predict_linear_uses_neutral_features():
    net = ff_net()
    x = images(6)
    expected = net.linear(net.features(net.labels.embed_neutral(x))).argmax(1)
    assert torch.equal(net.predict(x, "linear"), expected)


def class_wise_net(**overrides) -> FFNet:
    """A class-objective net (no label in the image): both readouts read one forward of the image."""
    torch.manual_seed(0)
    cfg = config(arch="cfse", layers=2, widths=(4, 8), labels="none", goodness="classwise", loss="cwc",
                 readout_from=1, block_options={"group_at": ()}, **overrides)
    return FFNet(cfg, SHAPE, CLASSES)


@pytest.mark.parametrize("make", [ff_net, class_wise_net], ids=["pair", "class-wise"])
def test_predict_all_equals_predict_per_readout(make):
    net = make()
    net.eval()
    x = images(6)
    got = net.predict_all(x, ["goodness", "linear"])
    assert list(got) == ["goodness", "linear"]
    for r in ("goodness", "linear"):
        assert torch.equal(got[r], net.predict(x, r))
    assert list(net.predict_all(x, ["linear"])) == ["linear"]


def test_predict_all_walks_a_class_wise_net_once():
    """Both readouts of a class-objective net come from one pass: each unit runs once per batch, not twice."""
    net = class_wise_net()
    net.eval()
    calls = []
    for unit in net.units:
        unit.register_forward_hook(lambda module, args, out: calls.append(module))
    net.predict_all(images(3), ["goodness", "linear"])
    assert len(calls) == len(net.units)


def test_readouts_and_missing_linear_readout():
    assert ff_net(readout="both").readouts() == ["goodness", "linear"]
    net = ff_net(readout="goodness")
    assert net.readouts() == ["goodness"] and net.linear is None
    with pytest.raises(ValueError, match="linear"):
        net.predict(images(), "linear")
    step = net.train_batch(images(4), torch.arange(4))
    assert step.train_loss is None and len(step.unit_stats) == 3 and list(step.losses) == net.loss_names()


def test_ff_costs_one_per_unit_with_trainability():
    costs = ff_net(train_first_layer=False).costs()
    assert [c.name for c in costs] == ["unit1", "unit2", "unit3"]
    assert [c.trainable for c in costs] == [False, True, True]


def test_ff_train_batch_learns_a_tiny_fixed_batch():
    net = ff_net(lr=3e-2, linear_lr=3e-2, layers=2, readout_from=1)
    x, y = images(4), torch.arange(4)
    g = torch.Generator().manual_seed(0)
    first = net.train_batch(x, y, g).unit_stats
    for _ in range(25):
        step = net.train_batch(x, y, g)
        last, lin = step.unit_stats, step.train_loss
    assert last[0].loss < first[0].loss and last[1].loss < first[1].loss
    assert lin.item() < math.log(CLASSES)


def test_ff_train_batch_runs_each_unit_on_one_2n_tensor_of_positives_then_negatives():
    """Every unit trains on one tensor: N positive embeddings, then N negatives (no per-unit cat), and
    hands the next unit its output for all 2N rows."""
    from ffneuro.labels import random_wrong_labels
    net, ref = ff_net(readout="goodness"), ff_net(readout="goodness")
    x, y = images(4), torch.arange(4)
    stats = net.train_batch(x, y, torch.Generator().manual_seed(7)).unit_stats
    wrong = random_wrong_labels(y, CLASSES, torch.Generator().manual_seed(7))
    h = torch.cat([ref.labels.embed(x, y), ref.labels.embed(x, wrong)])
    for unit, unit_stats in zip(ref.units, stats):
        assert h.shape[0] == 8
        h, s = unit.train_step(h, 4)
        assert torch.equal(torch.stack(s.values()), torch.stack(unit_stats.values()))
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), ref.parameters()))


def test_build_model_picks_the_class():
    assert isinstance(build_model(config(algo="ff"), SHAPE, CLASSES), FFNet)
    assert isinstance(build_model(config(algo="bp"), SHAPE, CLASSES), BPNet)


# --- BPNet ------------------------------------------------------------------------------------------

def bp_net(**overrides) -> BPNet:
    torch.manual_seed(0)
    return BPNet(config(algo="bp", **overrides), SHAPE, CLASSES)


@pytest.mark.parametrize("pool,flat", [("none", 3 * 8 * 8), ("max", 3 * 1 * 1)])
def test_bp_forward_shape(pool, flat):
    net = bp_net(pool=pool)
    assert net.head.in_features == flat
    out = net(images(5))
    assert out.shape == (5, CLASSES) and out.dtype == torch.float32
    assert torch.equal(net.predict(images(5)), out.argmax(1))
    assert net.readouts() == ["linear"]


def test_bp_train_batch_reduces_loss_and_populates_grads_everywhere():
    net = bp_net()
    x, y = images(8), torch.arange(8) % CLASSES
    first = net.train_batch(x, y).train_loss
    assert not first.requires_grad
    for block in net.blocks:  # unlike FF, one backward reaches every block
        assert block.conv.weight.grad is not None and block.conv.weight.grad.abs().sum() > 0
    assert net.head.weight.grad is not None
    for _ in range(20):
        last = net.train_batch(x, y).train_loss
    assert last.item() < 0.5 * first.item()


def test_bp_optimizer_holds_all_parameters_and_set_lr():
    net = bp_net()
    opt = {id(p) for g in net.optimizer.param_groups for p in g["params"]}
    assert opt == {id(p) for p in net.parameters()}
    net.set_lr(0.123, 9.0)
    assert [g["lr"] for g in net.optimizer.param_groups] == [0.123]


def test_bp_costs_cover_every_block():
    costs = bp_net(pool="max").costs()
    assert [c.name for c in costs] == ["layer1", "layer2", "layer3"]
    assert [c.macs_forward for c in costs] == [3 * 8 * 8 * 1 * 9, 3 * 4 * 4 * 3 * 9, 3 * 2 * 2 * 3 * 9]


def test_weights_mismatch_names_the_first_few_and_counts_the_rest():
    network = {f"w{i}": (2, 3) for i in range(6)}
    assert weights_mismatch(network, {k: np.zeros(s) for k, s in network.items()}) == ""
    stored = {"w0": np.zeros((2, 3)), "w1": np.zeros((3, 2)), "x": np.zeros(1), "y": np.float32(1.0)}
    text = weights_mismatch(network, stored)
    assert text == ("4 missing: w2, w3, w4 and 1 more; 2 unexpected: x, y; "
                    "1 of another shape: w1 (file 3×2, network 2×3)")
    assert "\n" not in text
