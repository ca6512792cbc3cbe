"""The linear readout's optimiser is configurable (issue 19: Hinton's code trains its softmax readout with
SGD, momentum 0.9, weight decay 3e-3, where ffneuro's readout is Adam: measured side by side with
benchmarks/fidelity.py)."""
from __future__ import annotations

import pytest
import torch
from cli_runner import invoke

from ffneuro.config import RunConfig
from ffneuro.errors import ConfigError
from ffneuro.models import build_model
from ffneuro.models.readouts import LinearReadout


def _fc(**kw) -> RunConfig:
    return RunConfig.from_dict(dict(dataset="synthetic", arch="fc", layers=2, widths=(8, 8), pool="none",
                                    labels="onehot", goodness="sumsq", loss="bce", readout="both", **kw))


def test_default_readout_keeps_adam():
    model = build_model(_fc(), (1, 16, 16), 10)
    assert isinstance(model.linear.optimizer, torch.optim.Adam)


def test_sgd_readout_takes_momentum_and_its_own_weight_decay():
    model = build_model(_fc(linear_optimizer="sgd", linear_lr=0.01, momentum=0.8, linear_weight_decay=3e-3,
                            weight_decay=1e-4), (1, 16, 16), 10)
    opt = model.linear.optimizer
    assert isinstance(opt, torch.optim.SGD)
    group = opt.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.01, 0.8, 3e-3)


def test_sgd_readout_learns():
    torch.manual_seed(0)
    x = torch.randn(64, 5)
    y = (x[:, 0] > 0).long()
    head = LinearReadout(5, 2, lr=0.1, optimizer="sgd", momentum=0.9)
    first = head.train_step(x, y)
    for _ in range(50):
        last = head.train_step(x, y)
    assert last < 0.5 * first


@pytest.mark.parametrize("bad", [dict(linear_optimizer="rmsprop"), dict(linear_weight_decay=-1.0)])
def test_bad_readout_settings_are_config_errors(bad):
    with pytest.raises(ConfigError):
        _fc(**bad)



@pytest.mark.parametrize("args, fragment", [
    (["--linear-optimizer", "rmsprop"], "--linear-optimizer"),
    (["--linear-weight-decay", "-1"], "--linear-weight-decay"),
    (["--linear-init", "ones"], "--linear-init"),
])
def test_bad_readout_flags_are_one_line_errors(tmp_path, args, fragment):
    out = tmp_path / "bad.h5"
    result = invoke("train", "--preset", "smoke", "--epochs", "1", *args, "--out", out)
    assert result.exit_code != 0
    assert fragment in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_zero_init_readout_has_no_bias_and_starts_at_zero():
    model = build_model(_fc(linear_init="zero"), (1, 16, 16), 10)
    assert model.linear.linear.bias is None
    assert torch.count_nonzero(model.linear.linear.weight) == 0
    plain = build_model(_fc(), (1, 16, 16), 10)
    assert plain.linear.linear.bias is not None and torch.count_nonzero(plain.linear.linear.weight) > 0


def test_hinton_preset_trains_its_readout_as_the_reference_code():
    """loeweX/Forward-Forward: SGD lr 1e-2, momentum 0.9, weight decay 3e-3 on a bias-free, zero-started layer."""
    from ffneuro.presets import resolve_config
    cfg = resolve_config("hinton-fc-mnist", {"widths": (8, 8, 8, 8)})
    model = build_model(cfg, (1, 28, 28), 10)
    group = model.linear.optimizer.param_groups[0]
    assert isinstance(model.linear.optimizer, torch.optim.SGD)
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (1e-2, 0.9, 3e-3)
    assert model.linear.linear.bias is None and torch.count_nonzero(model.linear.linear.weight) == 0


def test_readout_settings_leave_the_units_training_unchanged():
    """The readout never reaches the units: the same seed trains the same unit weights whichever readout
    (so the goodness readout of runs that differ only in the linear readout is the same run's)."""
    from ffneuro.data import load_dataset
    from ffneuro.train.trainer import Trainer

    def units_after(**kw):
        cfg = _fc(epochs=1, batch_size=16, train_limit=64, val_size=0, optimizer="sgd", lr=0.01, peer_norm=0.03, **kw)
        trainer = Trainer(cfg, load_dataset("synthetic", None))
        trainer._train_epoch(0, _silent())
        return [p.detach().clone() for u in trainer.model.units for p in u.parameters()]
    a = units_after()
    b = units_after(linear_init="zero", linear_optimizer="sgd", linear_lr=0.01, linear_weight_decay=3e-3)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def _silent():
    from ffneuro.train import trainer
    return trainer._Silent()


def test_bad_linear_init_is_a_config_error():
    with pytest.raises(ConfigError, match="linear init"):
        _fc(linear_init="ones")

