"""cfse's ``bn_refresh`` option: after each update a unit runs its block once more on the same input in
training mode, so batch norm's running statistics follow the new weights (as CwComp's code, whose
training loop calls predict in training mode after every update)."""
from __future__ import annotations

import copy

import pytest
import torch

from ffneuro.blocks.cfse import CFSEBlock
from ffneuro.errors import ConfigError
from ffneuro.goodness import GOODNESS
from ffneuro.models import build_model
from ffneuro.presets import resolve_config
from ffneuro.units import FFUnit, LocalObjective, OptimizerSettings

CLASSES = 2


def _unit(bn_refresh: bool, trainable: bool = True) -> FFUnit:
    torch.manual_seed(0)
    block = CFSEBlock("u", (1, 6, 6), 4, 3, "max", bn_refresh=bn_refresh).build()
    objective = LocalObjective(GOODNESS.get("classwise"), "cwc", classes=CLASSES)
    return FFUnit("u", block, objective, OptimizerSettings(lr=0.05), trainable=trainable).train()


def _batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(16, 1, 6, 6, generator=g), torch.randint(0, CLASSES, (16,), generator=g)


def _stats(unit: FFUnit) -> tuple[torch.Tensor, torch.Tensor]:
    bn = unit.block.norm
    return bn.running_mean.clone(), bn.running_var.clone()


def test_refresh_adds_one_training_forward_of_the_updated_weights():
    x, y = _batch()
    plain, fresh = _unit(False), _unit(True)
    out_plain, _ = plain.train_step(x, len(x), y)
    out_fresh, _ = fresh.train_step(x, len(x), y)
    assert torch.equal(out_plain, out_fresh)                  # same step, same hand-on (pre-update forward)
    for p, q in zip(plain.parameters(), fresh.parameters(), strict=True):
        assert torch.equal(p, q)                               # the refresh changes no weight
    assert not torch.allclose(_stats(plain)[0], _stats(fresh)[0])
    by_hand = copy.deepcopy(plain)
    with torch.no_grad():
        by_hand.block(x)                                       # the refresh: the new weights, training mode
    for a, b in zip(_stats(by_hand), _stats(fresh), strict=True):
        assert torch.allclose(a, b)
    assert fresh.block.norm.num_batches_tracked.item() == 2


def test_no_refresh_without_an_update_or_in_eval_mode():
    x, y = _batch()
    frozen = _unit(True, trainable=False)
    frozen.train_step(x, len(x), y)
    assert frozen.block.norm.num_batches_tracked.item() == 1   # its training-mode forward only
    stopped = _unit(True)
    stopped.active = False                                     # an --unit-epochs schedule stopped it
    stopped.train_step(x, len(x), y)
    assert stopped.block.norm.num_batches_tracked.item() == 1
    unit = _unit(True).eval()
    with torch.no_grad():
        unit.block.after_update(x)
    assert unit.block.norm.num_batches_tracked.item() == 0


def _tiny(**overrides):
    """cwcomp-mnist with two small units on the synthetic set."""
    return resolve_config("cwcomp-mnist", {"dataset": "synthetic", "layers": 2, "widths": (10, 20), "readout_from": 2,
                                           "unit_epochs": (1, 1), "device": "cpu", **overrides})


def test_the_option_reaches_every_unit_of_a_network_and_is_checked():
    cfg = _tiny()
    assert cfg.block_options == {"bn_refresh": True}
    assert all(u.block.spec.bn_refresh for u in build_model(cfg, (1, 16, 16), 10).units)
    off = build_model(_tiny(block_options={"bn_refresh": False}), (1, 16, 16), 10)
    assert not any(u.block.spec.bn_refresh for u in off.units)
    with pytest.raises(ConfigError, match="bn_refresh must be true or false, got 'yes'"):
        build_model(_tiny(block_options={"bn_refresh": "yes"}), (1, 16, 16), 10)


def test_a_training_step_of_the_network_refreshes_each_unit_once():
    torch.manual_seed(0)
    model = build_model(_tiny(), (1, 16, 16), 10).train()
    x, y = torch.rand(8, 1, 16, 16), torch.randint(0, 10, (8,))
    model.train_batch(x, y)
    assert [u.block.norm.num_batches_tracked.item() for u in model.units] == [2, 2]


def test_the_accounting_charges_the_refresh_forward():
    """The refresh forward is real work: the unit's training MACs and the step's phases count it (one more
    forward of the step's rows); without the option, or on a frozen block, nothing is added."""
    from ffneuro.accounting import unit_cost
    from ffneuro.accounting.phases import PAIRS, ff_training_costs
    plain = CFSEBlock("u", (1, 6, 6), 4, 3, "max")
    fresh = CFSEBlock("u", (1, 6, 6), 4, 3, "max", bn_refresh=True)
    frozen = CFSEBlock("u", (1, 6, 6), 4, 3, "max", bn_refresh=True, trainable=False)
    assert (plain.refresh_after_update, fresh.refresh_after_update, frozen.refresh_after_update) == (False, True, False)
    a, b = unit_cost(plain, ff_passes=1), unit_cost(fresh, ff_passes=1)
    assert b.macs_ff_train - a.macs_ff_train == plain.macs
    phases = {p.phase: p for p in ff_training_costs([fresh], num_classes=CLASSES, batch=8, objective=PAIRS).units[0].phases}
    assert phases["forward_refresh"].macs == 16 * fresh.macs          # positives and negatives once more
    names = [p.phase for p in ff_training_costs([plain], num_classes=CLASSES, batch=8, objective=PAIRS).units[0].phases]
    assert "forward_refresh" not in names
