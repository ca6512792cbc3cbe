"""The PyTorch memory replay of every block type's FF step (and its BP twin's) against what the CPU
allocator sees.

Each block type replays its own unit step (``replay_ff_unit``, and ``replay_bp_forward`` /
``replay_bp_backward`` for BP; ffneuro/accounting/rules); the replay
for the conv block's oneDNN copies uses an 8-channel block (see docs/accounting.md). Measured agreement
on the configurations below: 0.99-1.02 for the FF step, 0.99-1.03 for the BP twin's.
"""
from __future__ import annotations

import pytest
import torch

from ffneuro.accounting import ff_memory, optimizers_of
from ffneuro.accounting.objective import objective_cost
from ffneuro.blocks.cfse import CFSEBlock
from ffneuro.config import RunConfig
from ffneuro.models import FFNet
from ffneuro.profiler.measure import step_peak_bytes

CLASSES = 10

CASES = [  # (config, image shape, batch)
    (dict(arch="fc", layers=2, widths=(64, 48), labels="onehot", goodness="sumsq", loss="bce", peer_norm=0.03,
          readout="goodness", readout_from=1), (1, 12, 12), 4),
    (dict(arch="fc", layers=3, widths=(128, 128, 96), labels="onehot", goodness="sumsq", loss="bce",
          readout="both", readout_from=2), (1, 12, 12), 8),
    (dict(arch="fc", layers=2, widths=(256, 256), labels="onehot", goodness="sumsq", loss="symba", readout="both",
          train_first_layer=False, readout_from=2), (1, 16, 16), 16),
    # hinton-fc-mnist's optimisers: SGD units with momentum and weight decay, a zero-started SGD readout without
    # a bias (replayed as Adam with a bias, 1.40 of the allocator)
    (dict(arch="fc", layers=3, widths=(128, 128, 96), labels="onehot", goodness="sumsq", loss="bce", readout="both",
          readout_from=2, optimizer="sgd", weight_decay=3e-4, linear_optimizer="sgd", linear_weight_decay=3e-3,
          linear_init="zero"), (1, 12, 12), 8),
    (dict(arch="cfse", layers=2, widths=(20, 40), kernel=3, pool="max", pool_every=2, labels="none",
          goodness="classwise", loss="cwc", readout="goodness", readout_from=2), (1, 12, 12), 4),
    (dict(arch="cfse", layers=4, widths=(20, 40, 80, 160), kernel=3, pool="max", pool_every=2, labels="none",
          goodness="classwise", loss="cwc", readout="both", readout_from=4), (1, 12, 12), 4),
    (dict(arch="cfse", layers=2, widths=(40, 80), kernel=3, pool="max", pool_every=2, labels="none",
          goodness="classwise", loss="pvn", readout="both", readout_from=1), (3, 12, 12), 8),
    (dict(arch="trifecta", layers=2, widths=(16, 32), kernel=3, pool="max", pool_every=2, labels="fourier2",
          goodness="meansq", loss="symba", readout="goodness", readout_from=2), (1, 12, 12), 4),
    (dict(arch="trifecta", layers=3, widths=(16, 32, 32), kernel=3, pool="max", pool_every=2, labels="fourier2",
          goodness="meansq", loss="symba", readout="both", readout_from=2), (1, 12, 12), 4),
    (dict(arch="conv", layers=2, filters=40, kernel=3, pool="max", labels="none", goodness="classwise", loss="cwc",
          readout="both", readout_from=2), (1, 12, 12), 4),
]


@pytest.mark.parametrize("values,shape,n", CASES, ids=lambda v: v["arch"] + "-" + v["loss"] if isinstance(v, dict) else None)
def test_ff_memory_replay_of_every_block_type_matches_the_cpu_allocator_within_10_percent(values, shape, n):
    cfg = RunConfig(**{"train_first_layer": True, "epochs": 1, **values})
    torch.manual_seed(0)
    x, y = torch.rand(n, *shape), torch.arange(n) % CLASSES
    model, measured = step_peak_bytes(lambda: FFNet(cfg, shape, CLASSES), x, y)
    est = ff_memory(model.layer_specs(), n, num_classes=CLASSES, linear_readout=cfg.readout == "both",
                    readout_from=cfg.readout_from, backend="cpu", objective=objective_cost(cfg, CLASSES),
                    optimizers=optimizers_of(cfg)).peak_bytes
    if model.labels is not None:   # the label patterns are a buffer of the model, outside the replay
        est += model.labels.patterns.numel() * 4
    assert abs(est - measured) <= 0.1 * measured, (est, measured)


def test_class_objective_needs_no_input_rows_and_keeps_the_readout_features():
    """A class-wise step runs the batch itself (no embedding, no 2N-row copy), so it needs less than the
    same blocks under a pair objective."""

    specs = [CFSEBlock("u1", (1, 12, 12), 20, 3), CFSEBlock("u2", (20, 12, 12), 40, 3, "max", 10)]
    pair = RunConfig(arch="cfse", layers=2, widths=(20, 40), labels="fourier2", goodness="meansq", loss="bce")
    cls = RunConfig(arch="cfse", layers=2, widths=(20, 40), labels="none", goodness="classwise", loss="cwc")
    kw = dict(num_classes=CLASSES, linear_readout=True, readout_from=1, backend="cpu")
    assert ff_memory(specs, 8, objective=objective_cost(cls, CLASSES), **kw).peak_bytes < \
        ff_memory(specs, 8, objective=objective_cost(pair, CLASSES), **kw).peak_bytes


@pytest.mark.parametrize("values,shape,n", [c for c in CASES if c[0]["arch"] != "conv"],
                         ids=lambda v: v["arch"] + "-" + v["loss"] if isinstance(v, dict) else None)
def test_bp_twin_memory_replay_of_every_block_type_matches_the_cpu_allocator_within_10_percent(values, shape, n):
    from ffneuro.accounting import bp_memory
    from ffneuro.models import BPNet

    labels = "none" if values["loss"] in ("cwc", "pvn", "cwg") else values["labels"]
    cfg = RunConfig(**{**values, "algo": "bp", "readout": "linear", "labels": labels, "epochs": 1})
    torch.manual_seed(0)
    x, y = torch.rand(n, *shape), torch.arange(n) % CLASSES
    model, measured = step_peak_bytes(lambda: BPNet(cfg, shape, CLASSES), x, y)
    est = bp_memory(model.layer_specs(), n, num_classes=CLASSES, backend="cpu").peak_bytes
    assert abs(est - measured) <= 0.1 * measured, (est, measured)
