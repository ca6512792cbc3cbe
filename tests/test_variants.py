"""The FF variants as parts: their losses against hand computations, their blocks, configs and CLI, the
layer schedule, peer normalisation, CAM and goodness maps, and bit-identical resume with batch norm."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from ffneuro.cli.main import main

from ffneuro.config import RunConfig
from ffneuro.data import load_dataset
from ffneuro.errors import ConfigError
from ffneuro.goodness import (
    GOODNESS,
    LOSSES,
    classwise_squares,
    cwc_loss,
    cwg_loss,
    peer_normalisation,
    pvn_loss,
    symba_loss,
)
from ffneuro.models import FFNet
from ffneuro.models.cam import goodness_maps, linear_cams
from ffneuro.presets import PRESETS, resolve_config
from ffneuro.store import read_run
from ffneuro.train import Trainer

# --- losses on tiny tensors, computed by hand -----------------------------------------------------------

G = torch.tensor([[2.0, 0.0, 1.0],     # sample 0: true class 0
                  [0.5, 0.5, 3.0]])    # sample 1: true class 2
LABELS = torch.tensor([0, 2])


def test_cwc_loss_is_cross_entropy_of_the_goodness_by_hand():
    # −log(e^2 / (e^2 + e^0 + e^1)) and −log(e^3 / (e^0.5 + e^0.5 + e^3)), averaged
    l0 = -(2.0 - math.log(math.exp(2) + 1 + math.exp(1)))
    l1 = -(3.0 - math.log(2 * math.exp(0.5) + math.exp(3)))
    assert cwc_loss(G, LABELS).item() == pytest.approx((l0 + l1) / 2, rel=1e-6)


def test_pvn_loss_by_hand():
    # true goodness 2 and 3; the others' mean 0.5 and 0.5; threshold 2
    sp = lambda v: math.log1p(math.exp(v))
    expected = (sp(2 - 2) + sp(2 - 3) + sp(0.5 - 2) + sp(0.5 - 2)) / 4
    assert pvn_loss(G, LABELS).item() == pytest.approx(expected, rel=1e-6)
    at_1 = (sp(1 - 2) + sp(1 - 3) + sp(0.5 - 1) + sp(0.5 - 1)) / 4
    assert pvn_loss(G, LABELS, threshold=1.0).item() == pytest.approx(at_1, rel=1e-6)


def test_cwg_loss_is_the_weighted_mix_by_hand():
    ce = 0.5 * (-(2.0 - math.log(math.exp(2) + 1 + math.exp(1))) - (3.0 - math.log(2 * math.exp(0.5) + math.exp(3))))
    sp = lambda v: math.log1p(math.exp(v))
    pvn = (sp(0) + sp(-1) + 2 * sp(-1.5)) / 4
    assert cwg_loss(G, LABELS).item() == pytest.approx(0.28 * ce + 0.72 * pvn, rel=1e-6)
    assert cwg_loss(G, LABELS, weight=1.0).item() == pytest.approx(ce, rel=1e-6)


def test_symba_alpha_scales_the_margin_by_hand():
    pos, neg = torch.tensor([1.0, 0.0]), torch.tensor([0.5, 0.25])
    for alpha in (1.0, 4.0, 10.0):
        expected = (math.log1p(math.exp(-alpha * 0.5)) + math.log1p(math.exp(alpha * 0.25))) / 2
        assert symba_loss(pos, neg, alpha=alpha).item() == pytest.approx(expected, rel=1e-6)


def test_classwise_goodness_by_hand_and_its_gradient():
    # one sample, 4 channels of 1×2 in 2 groups: group 0 = channels 0,1; group 1 = channels 2,3
    y = torch.tensor([[[[1.0, 2.0]], [[0.0, 2.0]], [[3.0, 0.0]], [[1.0, 1.0]]]], requires_grad=True)
    g = classwise_squares(y, 2)
    assert torch.allclose(g, torch.tensor([[(1 + 4 + 0 + 4) / 4, (9 + 0 + 1 + 1) / 4]]))
    (grad,) = torch.autograd.grad(g[0, 0] * 3.0 + g[0, 1], y)
    expected = torch.cat([2 * y[:, :2] / 4 * 3.0, 2 * y[:, 2:] / 4]).detach().view_as(y)
    assert torch.allclose(grad, expected.reshape(1, 4, 1, 2))
    ref = y.detach().view(1, 2, -1).pow(2).mean(2)
    assert torch.allclose(g.detach(), ref)
    with pytest.raises(ValueError, match="groups"):
        classwise_squares(torch.zeros(1, 5, 2, 2), 2)   # 5 channels: a group would split a channel


def test_classwise_goodness_gradcheck():
    y = torch.randn(2, 6, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: classwise_squares(t, 3), (y,))


def test_position_maps_sum_to_the_goodness():
    y = torch.rand(3, 6, 4, 5, generator=torch.Generator().manual_seed(1))
    for name, groups in (("sumsq", None), ("meansq", None), ("classwise", 3)):
        gd = GOODNESS.get(name)
        m = gd.position_map(y, groups)
        assert m.shape == (3, groups or 1, 4, 5)
        assert torch.allclose(m.sum((2, 3)).squeeze(1) if groups is None else m.sum((2, 3)), gd(y, groups), rtol=1e-5)
    with pytest.raises(ValueError, match="spatial"):
        GOODNESS.get("sumsq").position_map(torch.rand(2, 8))


def test_peer_normalisation_by_hand():
    act = torch.tensor([[1.0, 3.0], [3.0, 1.0], [2.0, 0.0]])   # batch means 2, 4/3
    running = torch.tensor([0.5, 0.5])
    penalty, new = peer_normalisation(act, running, 0.9)
    expected_new = torch.tensor([0.45 + 0.2, 0.45 + 0.1 * 4 / 3])
    assert torch.allclose(new, expected_new)
    mean = expected_new.mean()
    assert penalty.item() == pytest.approx(((mean - expected_new) ** 2).mean().item(), rel=1e-6)
    assert not new.requires_grad


def test_loss_registry_kinds_params_and_errors():
    assert {n: LOSSES.get(n).kind for n in LOSSES} == \
        {"bce": "pair", "symba": "pair", "cwc": "class", "pvn": "class", "cwg": "class"}
    assert LOSSES.get("symba").resolve({"alpha": 8}) == {"alpha": 8.0}
    assert LOSSES.get("cwg").resolve(None) == {"weight": 0.28, "threshold": 2.0}
    with pytest.raises(ConfigError, match="no parameter 'beta'; its parameters: alpha"):
        LOSSES.get("symba").resolve({"beta": 1})
    bound = LOSSES.get("symba").bind({"alpha": 1.0})
    pos, neg = torch.tensor([1.0]), torch.tensor([0.0])
    assert bound(pos, neg).item() == pytest.approx(math.log1p(math.exp(-1.0)))


# --- configs --------------------------------------------------------------------------------------------

def test_config_refuses_mismatched_objectives_with_one_line_reasons():
    with pytest.raises(ConfigError, match="--goodness classwise"):
        RunConfig(loss="cwc", labels="none")
    with pytest.raises(ConfigError, match="--labels none"):
        RunConfig(loss="cwc", goodness="classwise")
    with pytest.raises(ConfigError, match="class loss"):
        RunConfig(goodness="classwise", loss="bce")
    with pytest.raises(ConfigError, match="no label to compare"):
        RunConfig(labels="none")
    with pytest.raises(ConfigError, match="one value per layer"):
        RunConfig(layers=3, widths=(4, 4))
    with pytest.raises(ConfigError, match="unknown block type"):
        RunConfig(arch="capsule")
    with pytest.raises(ConfigError, match="pool-at"):
        RunConfig(layers=2, pool_at=(3,))
    with pytest.raises(ConfigError, match="multiples of 10"):
        FFNet(RunConfig(arch="cfse", layers=2, widths=(12, 20), kernel=3, labels="none", goodness="classwise",
                        loss="cwc", train_first_layer=True), (1, 12, 12), 10)


def test_config_round_trips_the_new_fields_through_json():
    cfg = RunConfig(arch="fc", layers=2, widths=(8, 4), labels="onehot", loss="symba", loss_params={"alpha": 6},
                    peer_norm=0.03, optimizer="sgd", unit_epochs=(1, 2), pool_at=None)
    again = RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.widths == (8, 4) and again.loss_params == {"alpha": 6.0}


@pytest.mark.parametrize("name", PRESETS.names())
def test_every_preset_resolves(name):
    cfg = resolve_config(name, {})
    assert cfg.preset == name


# --- models ---------------------------------------------------------------------------------------------

def tiny(arch: str, **kw) -> RunConfig:
    base = {
        "fc": dict(arch="fc", layers=3, widths=(32, 24, 16), labels="onehot", goodness="sumsq", loss="bce",
                   peer_norm=0.03, readout_from=2),
        "cfse": dict(arch="cfse", layers=4, widths=(10, 20, 30, 40), kernel=3, pool="max", pool_every=2,
                     labels="none", goodness="classwise", loss="cwc", readout_from=4),
        "trifecta": dict(arch="trifecta", layers=3, widths=(8, 16, 16), kernel=3, pool="max", pool_at=(1, 3),
                         labels="fourier1", goodness="meansq", loss="symba", readout_from=3),
    }[arch]
    return RunConfig(**{**base, "readout": "both", "train_first_layer": True, "epochs": 1, "lr": 3e-3,
                        "linear_lr": 3e-3, **kw})


@pytest.mark.parametrize("arch", ["fc", "cfse", "trifecta"])
def test_each_variant_learns_a_tiny_fixed_batch_with_units_that_stay_local(arch):
    torch.manual_seed(0)
    net = FFNet(tiny(arch), (1, 12, 12), 10)
    x, y = torch.rand(20, 1, 12, 12, generator=torch.Generator().manual_seed(0)), torch.arange(20) % 10
    g = torch.Generator().manual_seed(1)
    first = net.train_batch(x, y, g)
    for _ in range(30):
        last = net.train_batch(x, y, g)
    assert list(last.losses) == net.loss_names()
    # the top unit learns the batch; together the units' losses fall (a pair objective's first unit sees a
    # new random wrong label every step, so its own loss is noisy)
    assert last.unit_stats[-1].loss < 0.5 * first.unit_stats[-1].loss, arch
    assert sum(s.loss for s in last.unit_stats) < sum(s.loss for s in first.unit_stats), arch
    # no graph across units: a unit's step leaves every other unit untouched
    before = [[p.detach().clone() for p in u.parameters()] for u in net.units]
    h = net.input_rows(x, y, g)[0]
    net.units[1].train_step(net.units[0].hand_on(net.units[0](h)), 20, None if net.pairs else y)
    for k, unit in enumerate(net.units):
        same = all(torch.equal(p, q) for p, q in zip(unit.parameters(), before[k]))
        assert same == (k != 1), (arch, k)


def test_class_objective_reads_one_forward_and_scores_by_channel_group():
    torch.manual_seed(0)
    net = FFNet(tiny("cfse"), (1, 12, 12), 10).eval()
    x = torch.rand(3, 1, 12, 12)
    scores = net.goodness_scores(x)
    h = x
    for unit in net.units:
        y = unit(h)
        h = unit.hand_on(y)
    by_hand = y.view(3, 10, -1).pow(2).mean(2)           # the last unit's class groups (readout_from 4)
    assert torch.allclose(scores, by_hand, rtol=1e-5)
    assert net.eval_rows_per_image(["goodness", "linear"]) == 1 and net.labels is None


def test_unit_epochs_stop_a_units_learning_after_its_epochs():
    torch.manual_seed(0)
    net = FFNet(tiny("cfse", unit_epochs=(1, 2, 2, 2)), (1, 12, 12), 10)
    x, y = torch.rand(10, 1, 12, 12), torch.arange(10)
    net.start_epoch(1, lambda base: base)
    assert [u.active for u in net.units] == [False, True, True, True]
    before = [p.detach().clone() for p in net.units[0].parameters()]
    net.train_batch(x, y)
    assert all(torch.equal(p, q) for p, q in zip(net.units[0].parameters(), before))
    net.start_epoch(2, lambda base: base)
    assert not any(u.active for u in net.units)


def test_peer_norm_running_means_are_state_saved_with_the_weights():
    torch.manual_seed(0)
    net = FFNet(tiny("fc"), (1, 12, 12), 10)
    assert "units.0.peer_running" in net.state_dict()
    net.train_batch(torch.rand(4, 1, 12, 12), torch.arange(4))
    assert not torch.equal(net.units[0].peer_running, torch.full_like(net.units[0].peer_running, 0.5))


def test_goodness_maps_sum_to_the_goodness_scores_for_spatial_variants():
    for arch in ("cfse", "trifecta"):
        torch.manual_seed(0)
        net = FFNet(tiny(arch), (1, 12, 12), 10).eval()
        x = torch.rand(2, 1, 12, 12)
        maps = goodness_maps(net, x)
        total = sum(m.sum((2, 3)) for m in maps.values())
        assert torch.allclose(total, net.goodness_scores(x), rtol=1e-4), arch
        cams = linear_cams(net, x)
        logits = net.linear(net.features(net.readout_input(x)))
        assert torch.allclose(sum(c.sum((2, 3)) for c in cams.values()) + net.linear.linear.bias, logits, atol=1e-4)


def test_fc_units_have_no_maps_and_say_why():
    net = FFNet(tiny("fc"), (1, 12, 12), 10)
    for fn in (goodness_maps, linear_cams):
        with pytest.raises(ValueError, match="fully connected unit"):
            fn(net, torch.rand(1, 1, 12, 12))


# --- resume with batch norm and peer-normalisation state -----------------------------------------------

class _Stop(Exception):
    pass


class _Recorder:
    """Keeps each committed epoch's weights and resume state; raises after ``stop_after`` epochs."""

    def __init__(self, stop_after: int | None = None):
        self.stop_after, self.epochs = stop_after, {}

    def commit_epoch(self, epoch, scalars, per_unit, weights, *, best, state=None, state_meta=None):
        self.epochs[epoch] = (scalars, per_unit, weights, state, state_meta)
        if epoch == self.stop_after:
            raise _Stop

    def heartbeat(self):
        pass


@pytest.mark.parametrize("arch", ["fc", "cfse", "trifecta"])
def test_resume_from_a_checkpoint_is_bit_identical_to_one_go(arch):
    data = load_dataset("synthetic")
    cfg = tiny(arch, dataset="synthetic", epochs=3, batch_size=25, train_limit=200, val_size=100, device="cpu",
               unit_epochs=(2, 3, 3) if arch != "cfse" else (2, 3, 3, 3), augment="crop")
    assert data.image_shape == (1, 16, 16)
    one = _Recorder()
    Trainer(cfg, data).run(one)
    two = _Recorder(stop_after=2)
    with pytest.raises(_Stop):
        Trainer(cfg, data).run(two)
    _, _, weights, arrays, meta = two.epochs[2]
    resumed = Trainer(cfg, data)
    resumed.restore(weights, arrays, meta)
    resumed.run(two)
    a, b = one.epochs[3][2], two.epochs[3][2]
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert one.epochs[3][1] == two.epochs[3][1]


# --- the CLI --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("flags,parts", [
    (["--arch", "fc", "--layers", "2", "--widths", "32,16", "--labels", "onehot", "--peer-norm", "0.03",
      "--optimizer", "sgd", "--lr", "0.01"],
     dict(arch="fc", widths=(32, 16), labels="onehot", peer_norm=0.03, optimizer="sgd", lr=0.01)),
    (["--arch", "cfse", "--layers", "2", "--widths", "10,20", "--kernel", "3", "--pool", "max", "--pool-at", "2",
      "--labels", "none", "--goodness", "classwise", "--loss", "cwg", "--loss-params", "weight=0.5;threshold=1",
      "--unit-epochs", "1,2"],
     dict(arch="cfse", widths=(10, 20), kernel=3, pool="max", pool_at=(2,), labels="none", goodness="classwise",
          loss="cwg", loss_params={"weight": 0.5, "threshold": 1.0}, unit_epochs=(1, 2))),
    (["--arch", "trifecta", "--layers", "2", "--widths", "8,8", "--kernel", "3", "--pool", "max",
      "--goodness", "meansq", "--loss", "symba", "--loss-params", "alpha=8"],
     dict(arch="trifecta", widths=(8, 8), kernel=3, pool="max", goodness="meansq", loss="symba",
          loss_params={"alpha": 8.0})),
])
def test_cli_trains_every_variant_and_stores_its_parts(tmp_path, flags, parts):
    """The run file holds the config the flags asked for (every part, as typed values), and weights of
    the widths asked for that every unit has moved from its seeded initialisation: each unit trained."""
    out = tmp_path / "run.h5"
    result = CliRunner().invoke(main, ["-q", "train", "--preset", "smoke", "--epochs", "1", "--train-limit", "200",
                                       "--val-size", "100", "--train-first-layer", "--readout-from", "1",
                                       *flags, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    stored = RunConfig.from_dict(json.loads(result.output)["config"])
    assert {k: getattr(stored, k) for k in parts} == parts
    assert stored.to_dict() == read_run(out).config
    final = read_run(out).weights("final")
    # the same seed, the same start; parameters only (batch-norm statistics move without learning)
    initial = dict(Trainer(stored, load_dataset("synthetic")).model.named_parameters())
    for i, width in enumerate(parts["widths"]):
        unit = {k: v for k, v in final.items() if k.startswith(f"units.{i}.") and k in initial}
        assert unit and max(v.shape[0] for v in unit.values() if v.ndim > 1) == width
        assert any(not np.array_equal(v, initial[k].detach().numpy()) for k, v in unit.items()), \
            f"unit {i + 1} did not learn"


@pytest.mark.parametrize("flags,message", [
    (["--loss-params", "alpha"], "is not name=number"),
    (["--loss", "symba", "--loss-params", "beta=2"], "has no parameter 'beta'; its parameters: alpha"),
    (["--arch", "fc", "--pool", "max"], "fully connected units do not downsample"),
    (["--loss", "cwc"], "--goodness classwise"),
])
def test_cli_bad_variant_flags_are_one_line_errors(tmp_path, flags, message):
    result = CliRunner().invoke(main, ["train", "--preset", "smoke", "--epochs", "1", *flags,
                                       "--out", str(tmp_path / "x.h5")])
    assert result.exit_code != 0 and message in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("name", ["hinton-fc-mnist", "cwcomp-mnist", "trifecta-cifar10"])
def test_every_variant_preset_profiles_on_a_target(name):
    from ffneuro.profiler import profile_config

    cfg = resolve_config(name, {})
    shape = (3, 32, 32) if name.endswith("cifar10") else (1, 28, 28)
    report = profile_config(cfg, shape, 10, "horowitz45", batch=8)
    train, good, lin = report["ff_train"], report["infer_goodness"], report["infer_linear"]
    assert train.energy_j > 0 and train.peak_memory_bytes > 0
    # a class-wise goodness readout is one forward pass; a pair objective's is one per class
    passes = 1 if name.startswith("cwcomp") else 10
    assert good.macs == pytest.approx(passes * sum(u.macs for u in lin.per_unit if u.unit != "readout"))


def test_cam_of_a_fully_connected_run_is_a_one_line_error(tmp_path):
    out = tmp_path / "fc.h5"
    args = ["-q", "train", "--preset", "smoke", "--epochs", "1", "--train-limit", "100", "--val-size", "50",
            "--arch", "fc", "--layers", "2", "--widths", "16,16", "--labels", "onehot", "--out", str(out)]
    assert CliRunner().invoke(main, args).exit_code == 0
    result = CliRunner().invoke(main, ["cam", str(out), "--samples", "1", "--out", str(tmp_path / "cam")])
    assert result.exit_code == 1 and "fully connected unit(s) with no spatial layout" in result.output
    assert "Traceback" not in result.output
