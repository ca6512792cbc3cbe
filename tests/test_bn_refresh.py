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
    assert cfg.block_options == {"bn_refresh": "chain"}   # the reference code's pass (BENCHMARKS 17)
    assert all(u.block.spec.bn_refresh for u in build_model(cfg, (1, 16, 16), 10).units)
    off = build_model(_tiny(block_options={"bn_refresh": False}), (1, 16, 16), 10)
    assert not any(u.block.spec.bn_refresh for u in off.units)
    chain = build_model(_tiny(block_options={"bn_refresh": "chain"}), (1, 16, 16), 10)
    assert all(u.block.spec.refresh_chained for u in chain.units) and chain.refresh_through == 2
    own = build_model(_tiny(block_options={"bn_refresh": True}), (1, 16, 16), 10)
    assert not any(u.block.spec.refresh_chained for u in own.units) and own.refresh_through == 0
    for bad in ("yes", 1, "Chain"):
        with pytest.raises(ConfigError, match=f"bn_refresh must be true, false or chain, got {bad!r}"):
            build_model(_tiny(block_options={"bn_refresh": bad}), (1, 16, 16), 10)


def test_a_training_step_of_the_network_refreshes_each_unit_once():
    torch.manual_seed(0)
    model = build_model(_tiny(), (1, 16, 16), 10).train()
    x, y = torch.rand(8, 1, 16, 16), torch.randint(0, 10, (8,))
    model.train_batch(x, y)
    assert [u.block.norm.num_batches_tracked.item() for u in model.units] == [2, 2]


def _bn_state(model) -> list[torch.Tensor]:
    return [t.clone() for u in model.units for t in (u.block.norm.running_mean, u.block.norm.running_var)]


def test_the_chain_refresh_is_one_pass_through_the_updated_units_after_the_step():
    """bn_refresh=chain is CwComp's predict call after train_: once every unit has updated, the step's rows go
    through the units again in training mode, unit 2 fed unit 1's *updated* output. Its statistics are those
    of that pass, which the per-unit refresh (unit 2 on unit 1's pre-update output) does not give."""
    x, y = torch.rand(8, 1, 16, 16), torch.randint(0, 10, (8,))
    models = {}
    for option in (False, True, "chain"):
        torch.manual_seed(0)
        models[option] = build_model(_tiny(block_options={"bn_refresh": option}), (1, 16, 16), 10).train()
        models[option].train_batch(x, y)
    by_hand = copy.deepcopy(models[False])
    with torch.no_grad():                                       # the pass by hand after a plain step
        h = x
        for unit in by_hand.units:
            h = unit.hand_on(unit(h))
    for a, b in zip(_bn_state(by_hand), _bn_state(models["chain"]), strict=True):
        assert torch.allclose(a, b)
    for p, q in zip(models[False].parameters(), models["chain"].parameters(), strict=True):
        assert torch.equal(p, q)                                # the pass changes no weight
    assert [u.block.norm.num_batches_tracked.item() for u in models["chain"].units] == [2, 2]
    own, chained = _bn_state(models[True]), _bn_state(models["chain"])
    assert all(torch.allclose(a, b) for a, b in zip(own[:2], chained[:2], strict=True))   # unit 1: the same input
    assert not torch.allclose(own[2], chained[2])               # unit 2: its input differs


def test_the_chain_refresh_runs_no_pass_in_eval_mode_or_without_the_option():
    x, y = torch.rand(8, 1, 16, 16), torch.randint(0, 10, (8,))
    plain = build_model(_tiny(block_options={"bn_refresh": False}), (1, 16, 16), 10).train()
    assert plain.refresh_through == 0
    plain.train_batch(x, y)
    assert [u.block.norm.num_batches_tracked.item() for u in plain.units] == [1, 1]
    chain = build_model(_tiny(block_options={"bn_refresh": "chain"}), (1, 16, 16), 10).eval()
    before = _bn_state(chain)
    chain.refresh(x)
    assert all(torch.equal(a, b) for a, b in zip(before, _bn_state(chain), strict=True))


def test_a_pipeline_refuses_the_chain_refresh():
    from types import SimpleNamespace

    from ffneuro.distributed.pipeline import Pipeline
    chain = build_model(_tiny(block_options={"bn_refresh": "chain"}), (1, 16, 16), 10)
    with pytest.raises(ConfigError, match="bn_refresh=chain"):
        Pipeline(SimpleNamespace(rank=0, world=2), placement="1,1").prepare(chain, 8)


def test_the_accounting_charges_the_refresh_forward():
    """The refresh forward is real work: the unit's training MACs and the step's phases count it (one more
    forward of the step's rows); without the option, or on a frozen block, nothing is added."""
    from ffneuro.accounting import unit_cost
    from ffneuro.accounting.phases import PAIRS, ff_training_costs
    plain = CFSEBlock("u", (1, 6, 6), 4, 3, "max")
    fresh = CFSEBlock("u", (1, 6, 6), 4, 3, "max", bn_refresh=True)
    frozen = CFSEBlock("u", (1, 6, 6), 4, 3, "max", bn_refresh=True, trainable=False)
    assert (plain.refresh_after_update, fresh.refresh_after_update, frozen.refresh_after_update) == (False, True, False)
    chain = CFSEBlock("u", (1, 6, 6), 4, 3, "max", bn_refresh="chain")
    assert chain.refresh_after_update and unit_cost(chain, ff_passes=1) == unit_cost(fresh, ff_passes=1)
    a, b = unit_cost(plain, ff_passes=1), unit_cost(fresh, ff_passes=1)
    assert b.macs_ff_train - a.macs_ff_train == plain.macs
    phases = {p.phase: p for p in ff_training_costs([fresh], num_classes=CLASSES, batch=8, objective=PAIRS).units[0].phases}
    assert phases["forward_refresh"].macs == 16 * fresh.macs          # positives and negatives once more
    names = [p.phase for p in ff_training_costs([plain], num_classes=CLASSES, batch=8, objective=PAIRS).units[0].phases]
    assert "forward_refresh" not in names
