"""``--linear-loss``: the FF linear readout's cross-entropy taken of its logits (``ce``) or of their softmax
(``ce-of-softmax``, CwComp's softmax predictor, which the cwcomp-* presets train): the math in isolation,
the readout's step, the same training as the fidelity probe that measured it, the config and CLI checks,
and the cost accounting's extra softmax."""
from __future__ import annotations

import math

import pytest
import torch
from benchmark_scripts import load_benchmark
from cli_runner import invoke
from torch import nn

from ffneuro.accounting import ops
from ffneuro.accounting.optimizer import Optimizers, optimizers_of
from ffneuro.accounting.phases import ff_training_costs
from ffneuro.blocks import layer_specs
from ffneuro.config import RunConfig
from ffneuro.errors import ConfigError
from ffneuro.models import readouts
from ffneuro.models.readouts import LinearReadout, readout_loss
from ffneuro.presets import resolve_config


def test_ce_is_the_cross_entropy_of_the_logits_and_ce_of_softmax_that_of_the_probabilities():
    torch.manual_seed(0)
    logits, labels = torch.randn(7, 4) * 3, torch.tensor([0, 1, 2, 3, 0, 1, 2])
    probs = logits.softmax(1)
    manual = -(probs.softmax(1).log()[torch.arange(7), labels]).mean()   # log-softmax of the softmax, by hand
    assert float(readout_loss(logits, labels, "ce-of-softmax")) == pytest.approx(float(manual), rel=1e-6)
    assert float(readout_loss(logits, labels, "ce")) == pytest.approx(
        float(-(logits.log_softmax(1)[torch.arange(7), labels]).mean()), rel=1e-6)
    # a softmax of probabilities in [0, 1] never reaches 0 loss: at best log(1 + (C-1)/e) with C classes
    perfect = torch.eye(4) * 100
    assert float(readout_loss(perfect, torch.arange(4), "ce-of-softmax")) == pytest.approx(
        math.log(1 + 3 / math.e), rel=1e-5)
    with pytest.raises(ValueError, match="valid: ce, ce-of-softmax"):
        readout_loss(logits, labels, "mse")


def test_the_softmax_first_gradient_vanishes_where_the_outputs_saturate():
    logits = torch.tensor([[40.0, 0.0, 0.0]], requires_grad=True)   # confidently wrong for label 1
    for kind, vanishes in (("ce", False), ("ce-of-softmax", True)):
        logits.grad = None
        readout_loss(logits, torch.tensor([1]), kind).backward()
        assert (logits.grad.abs().max() < 1e-6) == vanishes


def test_one_sgd_step_of_the_softmax_first_readout():
    torch.manual_seed(0)
    features, labels = torch.randn(6, 5), torch.tensor([0, 1, 2, 0, 1, 2])
    head = LinearReadout(5, 3, lr=0.01, optimizer="sgd", momentum=0.0, loss="ce-of-softmax")
    w, b = head.linear.weight.detach().clone().requires_grad_(), head.linear.bias.detach().clone()
    expected = nn.functional.cross_entropy((features @ w.T + b).softmax(1), labels)
    expected.backward()
    loss = head.train_step(features, labels)
    assert float(loss) == pytest.approx(float(expected.detach()), rel=1e-6)
    assert torch.allclose(head.linear.weight, w.detach() - 0.01 * w.grad, atol=1e-7)


def test_an_unknown_loss_is_refused_by_the_readout_and_the_config():
    with pytest.raises(ValueError, match="unknown linear loss"):
        LinearReadout(5, 3, lr=0.01, loss="hinge")
    with pytest.raises(ConfigError, match="unknown linear loss 'hinge'; valid: ce, ce-of-softmax"):
        resolve_config("smoke", {"linear_loss": "hinge"})


def test_the_cli_flag_reaches_the_stored_config_and_a_bad_one_is_a_one_line_error(tmp_path):
    from ffneuro.store import read_run
    out = tmp_path / "run.h5"
    invoke("train", "--preset", "smoke", "--epochs", "1", "--train-limit", "200", "--val-size", "100",
           "--linear-loss", "ce-of-softmax", "--out", out, ok=True)
    assert read_run(out).config["linear_loss"] == "ce-of-softmax"
    bad = invoke("train", "--preset", "smoke", "--epochs", "1", "--linear-loss", "hinge", "--out", tmp_path / "b.h5")
    assert bad.exit_code == 2 and "--linear-loss" in bad.output and "Traceback" not in bad.output


@pytest.mark.parametrize("preset", ["cwcomp-mnist", "cwcomp-fashion-mnist", "cwcomp-cifar10"])
def test_the_cwcomp_presets_train_the_codes_softmax_predictor(preset):
    cfg = resolve_config(preset, {})
    assert (cfg.linear_loss, cfg.linear_optimizer, cfg.linear_lr, cfg.momentum) == ("ce-of-softmax", "sgd", 0.01, 0.0)
    assert optimizers_of(cfg).readout_softmax_first


def test_the_option_trains_exactly_as_the_fidelity_probe_that_measured_it(monkeypatch):
    """The rows measured with ``benchmarks/fidelity.py --patch softmax-readout`` and the code's SGD are what
    the presets now train: the same weights after the same steps."""
    from ffneuro.models.ff_net import FFNet
    small = dict(widths=(20, 80), layers=2, readout_from=2, pool_every=1, unit_epochs=(2, 3), dataset="synthetic")
    x, y = torch.rand(16, 1, 12, 12), torch.arange(16) % 10

    def trained(cfg: RunConfig) -> list[torch.Tensor]:
        torch.manual_seed(0)
        net = FFNet(cfg, (1, 12, 12), 10)
        for _ in range(3):
            net.train_batch(x, y)
        return [p.detach().clone() for p in net.parameters()]
    preset = trained(resolve_config("cwcomp-mnist", small))
    before = resolve_config("cwcomp-mnist", {**small, "linear_loss": "ce"})
    assert not all(torch.equal(a, b) for a, b in zip(preset, trained(before), strict=True))
    monkeypatch.setattr(readouts.LinearReadout, "train_step", readouts.LinearReadout.train_step)
    load_benchmark("fidelity").PATCHES["softmax-readout"]()
    probe = trained(before)
    assert all(torch.equal(a, b) for a, b in zip(preset, probe, strict=True))


def test_the_accounting_charges_the_softmax_forward_and_backward():
    cfg = resolve_config("cwcomp-mnist", {})
    specs, n, classes = layer_specs(cfg, (1, 28, 28), algo="ff", num_classes=10), 4, 10
    kw = dict(num_classes=classes, batch=n, linear_readout=True, readout_from=cfg.readout_from)
    plain = ff_training_costs(specs, **kw, optimizers=Optimizers()).units[-1]
    first = ff_training_costs(specs, **kw, optimizers=Optimizers(readout_loss="ce-of-softmax")).units[-1]
    assert first.phase("loss").elementwise_ops - plain.phase("loss").elementwise_ops == n * ops.SOFTMAX_FWD * classes
    assert (first.phase("backward").elementwise_ops - plain.phase("backward").elementwise_ops
            == n * ops.SOFTMAX_BWD * classes)
    assert first.phase("forward") == plain.phase("forward") and first.phase("update") == plain.phase("update")
    with pytest.raises(ValueError, match="unknown linear loss"):
        Optimizers(readout_loss="hinge")


def test_a_config_stored_before_the_option_reads_as_the_plain_cross_entropy():
    class Old:   # a stored config without the field
        optimizer = "adam"
    assert optimizers_of(Old()).readout_loss == "ce"
    assert RunConfig.from_dict({"dataset": "synthetic"}).linear_loss == "ce"
