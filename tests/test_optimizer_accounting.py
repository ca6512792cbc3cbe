"""The memory replay and the phase accounting follow the run's optimisers: SGD (with or without momentum,
with weight decay) for the units and the linear readout, and a readout without a bias (``linear_init=zero``,
hinton-fc-mnist's classifier), checked against the CPU allocator as tests/test_variant_memory.py does for Adam.
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from ffneuro.accounting import (
    DEFAULT_OPTIMIZERS,
    OptimizerCost,
    Optimizers,
    ff_memory,
    ff_training_costs,
    inference_costs,
    inference_memory,
    inference_peak_bytes,
    optimizers_of,
)
from ffneuro.accounting.objective import objective_cost
from ffneuro.config import RunConfig
from ffneuro.models import FFNet
from ffneuro.profiler.measure import step_peak_bytes

CLASSES = 10
SHAPE = (1, 12, 12)
FC = dict(arch="fc", layers=3, widths=(128, 128, 96), labels="onehot", goodness="sumsq", loss="bce",
          readout="both", readout_from=2)
CONV = dict(arch="conv", layers=2, filters=40, kernel=3, pool="max", labels="none", goodness="classwise",
            loss="cwc", readout="both", readout_from=2)
HINTON = dict(optimizer="sgd", weight_decay=3e-4, linear_optimizer="sgd", linear_weight_decay=3e-3,
              linear_init="zero")

CASES = {  # name: (config, batch); each is off by 14 % to 120 % when replayed as Adam with a readout bias
    "fc-sgd-momentum-decay-zero-readout": ({**FC, **HINTON}, 8),
    "fc-sgd-no-momentum-zero-readout": ({**FC, "optimizer": "sgd", "linear_optimizer": "sgd", "momentum": 0.0,
                                          "linear_init": "zero"}, 8),
    "conv-sgd-zero-readout": ({**CONV, **HINTON}, 4),
}


def measure(values: dict, n: int) -> tuple[FFNet, RunConfig, int]:
    cfg = RunConfig(**{"train_first_layer": True, "epochs": 1, **values})
    torch.manual_seed(0)
    x, y = torch.rand(n, *SHAPE), torch.arange(n) % CLASSES
    model, measured = step_peak_bytes(lambda: FFNet(cfg, SHAPE, CLASSES), x, y)
    return model, cfg, measured


def replayed(model: FFNet, cfg: RunConfig, n: int, optimizers: Optimizers) -> int:
    est = ff_memory(model.layer_specs(), n, num_classes=CLASSES, linear_readout=cfg.readout == "both",
                    readout_from=cfg.readout_from, backend="cpu", objective=objective_cost(cfg, CLASSES),
                    optimizers=optimizers).peak_bytes
    if model.labels is not None:   # the label patterns are a buffer of the model, outside the replay
        est += model.labels.patterns.numel() * 4
    return est


@pytest.mark.parametrize("name", sorted(CASES))
def test_sgd_and_bias_free_readout_replay_matches_the_cpu_allocator(name):
    values, n = CASES[name]
    model, cfg, measured = measure(values, n)
    est = replayed(model, cfg, n, optimizers_of(cfg))
    assert abs(est - measured) <= 0.1 * measured, (est, measured)


def test_the_readout_optimiser_and_bias_alone_change_the_replay_as_they_change_the_allocator():
    """Only the readout differs (the units stay Adam): Adam with a bias against zero-started SGD without
    one. The replay's difference is the allocator's (Adam's ``step`` scalars aside: 4 bytes a tensor)."""
    adam_model, adam_cfg, adam_measured = measure({**FC, "readout_from": 1}, 4)
    sgd_values = {**FC, "readout_from": 1, "linear_optimizer": "sgd", "linear_weight_decay": 3e-3,
                  "linear_init": "zero"}
    sgd_model, sgd_cfg, sgd_measured = measure(sgd_values, 4)
    assert sgd_model.linear.linear.bias is None
    measured = adam_measured - sgd_measured
    est = replayed(adam_model, adam_cfg, 4, optimizers_of(adam_cfg)) - \
        replayed(sgd_model, sgd_cfg, 4, optimizers_of(sgd_cfg))
    assert measured > 0
    assert abs(est - measured) <= 0.02 * measured, (est, measured)


def test_optimizers_of_reads_the_config_and_older_configs_as_adam_with_a_bias():
    cfg = RunConfig(**{**FC, **HINTON, "momentum": 0.5})
    assert optimizers_of(cfg) == Optimizers(OptimizerCost("sgd", 0.5, 3e-4), OptimizerCost("sgd", 0.5, 3e-3), False)
    assert optimizers_of(RunConfig(**FC)) == DEFAULT_OPTIMIZERS
    assert optimizers_of(SimpleNamespace(lr=1e-3)) == DEFAULT_OPTIMIZERS   # a config without the fields
    with pytest.raises(ValueError, match="unknown optimizer"):
        OptimizerCost("rmsprop")


def test_sgd_state_and_transients():
    assert [OptimizerCost("adam").state_per_param, OptimizerCost("sgd", 0.9).state_per_param,
            OptimizerCost("sgd", 0.0).state_per_param] == [2, 1, 0]
    tensors = [400, 40]
    assert OptimizerCost("adam").transient_bytes(tensors, "cpu") == 800
    assert OptimizerCost("adam", weight_decay=1e-4).transient_bytes(tensors, "cpu") == 1200
    assert OptimizerCost("adam").transient_bytes(tensors, "cuda") == 440
    assert OptimizerCost("sgd").transient_bytes(tensors, "cpu") == 0
    assert OptimizerCost("sgd", weight_decay=1e-4).transient_bytes(tensors, "cpu") == 400
    assert OptimizerCost("sgd", weight_decay=1e-4).transient_bytes(tensors, "cuda") == 440


def test_phase_accounting_costs_the_update_by_optimiser_and_the_readout_without_a_bias():
    cfg = RunConfig(**{**FC, **HINTON})
    specs = cfg.check_shapes(SHAPE, CLASSES)
    kw = dict(num_classes=CLASSES, batch=8, linear_readout=True, readout_from=2)
    adam = ff_training_costs(specs, **kw)
    sgd = ff_training_costs(specs, optimizers=optimizers_of(cfg), **kw)
    unit = specs[1]
    update = sgd.unit(unit.name).phase("update")
    # p -= lr·g, the momentum buffer, weight decay: 2 + 2 + 2 ops; read w, g, buf; write w, buf
    assert update.elementwise_ops == 6 * unit.params
    assert update.bytes_read.optimizer == update.bytes_written.optimizer == 4 * unit.params
    assert adam.unit(unit.name).phase("update").bytes_read.optimizer == 8 * unit.params
    features = sum(s.out_elems for s in specs[1:])
    readout = sgd.unit("readout")
    assert readout.spec.params == features * CLASSES                     # no bias
    assert adam.unit("readout").spec.params == features * CLASSES + CLASSES
    assert readout.phase("forward").elementwise_ops < adam.unit("readout").phase("forward").elementwise_ops
    no_momentum = ff_training_costs(specs, optimizers=Optimizers(OptimizerCost("sgd", 0.0), readout_bias=False), **kw)
    assert no_momentum.unit(unit.name).phase("update").bytes_read.optimizer == 0
    infer = inference_costs(specs, readout="linear", num_classes=CLASSES, readout_from=2, readout_bias=False)
    assert infer.unit("readout").spec.params == features * CLASSES
    kw = dict(readout="linear", num_classes=CLASSES, readout_from=2)
    assert inference_peak_bytes(specs, 4, **kw) - inference_peak_bytes(specs, 4, readout_bias=False, **kw) == 4 * CLASSES


def test_the_prediction_replay_holds_a_readout_without_a_bias():
    specs = RunConfig(**{**CONV, **HINTON}).check_shapes(SHAPE, CLASSES)
    kw = dict(readout="linear", num_classes=CLASSES, readout_from=2, backend="cpu", onednn_block=8)
    assert inference_memory(specs, 4, **kw).param_bytes - \
        inference_memory(specs, 4, readout_bias=False, **kw).param_bytes == 4 * CLASSES


def test_the_profile_costs_and_names_the_runs_optimisers():
    """The profiler takes the run's optimisers: an SGD run's FF update moves less optimiser state than Adam's,
    and an on-chip learning note names SGD, not Adam (BP's twin stays Adam)."""
    from ffneuro.profiler import profile_config

    small = {**FC, "widths": (32, 32, 16)}
    sgd = profile_config(RunConfig(**{**small, **HINTON}), SHAPE, CLASSES, "loihi", batch=4)
    adam = profile_config(RunConfig(**small), SHAPE, CLASSES, "loihi", batch=4)
    assert any("SGD with momentum" in n for n in sgd["ff_train"].notes)
    assert not any("SGD" in n for n in adam["ff_train"].notes)
    assert any("(Adam)" in n for n in sgd["bp_train"].notes)
    assert sgd["ff_train"].peak_memory_bytes < adam["ff_train"].peak_memory_bytes
    assert sgd["infer_linear"].parameter_count == adam["infer_linear"].parameter_count - CLASSES   # no readout bias
