"""benchmarks/fidelity.py's batch-norm diagnostic for cwcomp-mnist (issue 19): after an epoch it reads the test
set a second time with every batch norm's running statistics recomputed for the current weights (the exact
mean over the first training batches, run through the whole chain in training mode), then puts the run's
own statistics back so that training goes on unchanged."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from benchmark_scripts import load_benchmark

from ffneuro.data.dataset import Dataset
from ffneuro.presets import resolve_config
from ffneuro.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]


def _fidelity():
    return load_benchmark("fidelity")


def _trainer() -> Trainer:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(40, 1, 12, 12), dtype=np.uint8)
    data = Dataset("mnist", x[:30], np.arange(30, dtype=np.int64) % 10, x[30:], np.arange(10, dtype=np.int64), 10)
    cfg = resolve_config("cwcomp-mnist", {"layers": 2, "widths": (10, 20), "readout_from": 2, "unit_epochs": (1, 1),
                                          "epochs": 1, "batch_size": 8, "val_size": 0, "device": "cpu"})
    torch.manual_seed(0)
    return Trainer(cfg, data)


def _norms(trainer):
    return [m for m in trainer.model.modules() if isinstance(m, torch.nn.BatchNorm2d)]


def test_recalibration_reads_the_test_set_on_the_exact_statistics_and_puts_the_run_s_back():
    fid, tr = _fidelity(), _trainer()
    for m in _norms(tr):   # statistics far from any the data gives
        m.running_mean.fill_(5.0)
        m.running_var.fill_(0.01)
    kept = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone(), m.momentum)
            for m in _norms(tr)]
    seen = {}

    def evaluate(split):
        seen["stats"] = [(m.running_mean.clone(), m.running_var.clone()) for m in _norms(tr)]
        seen["training"] = tr.model.training
        return {"goodness": 0.5, "linear": 0.25}
    tr.evaluate = evaluate
    assert fid.recalibrated_test(tr, 2) == {"goodness": 0.5, "linear": 0.25}
    # by hand: the mean of the two batches' statistics through the chain, each batch normalised by its own
    x = torch.cat([tr.train.batch(torch.arange(0, 8))[0], tr.train.batch(torch.arange(8, 16))[0]])
    with torch.no_grad():
        parts = list(x.split(8))
        for unit, (mean, var) in zip(tr.model.units, seen["stats"], strict=True):
            ys = [_relu_pool(unit, p) for p in parts]
            assert torch.allclose(mean, torch.stack([y.mean((0, 2, 3)) for y in ys]).mean(0), atol=1e-5)
            assert torch.allclose(var, torch.stack([y.var((0, 2, 3)) for y in ys]).mean(0), atol=1e-4)
            norm = unit.block.norm
            parts = [unit.hand_on(torch.nn.functional.batch_norm(y, None, None, norm.weight, norm.bias, True, 0.0,
                                                                 norm.eps)) for y in ys]
    assert seen["training"]   # the chain ran in training mode; evaluate() itself switches to eval
    for m, (mean, var, count, momentum) in zip(_norms(tr), kept, strict=True):
        assert torch.equal(m.running_mean, mean) and torch.equal(m.running_var, var)
        assert torch.equal(m.num_batches_tracked, count) and m.momentum == momentum


def _relu_pool(unit, x: torch.Tensor) -> torch.Tensor:
    """cfse's block before its batch norm: conv, (2×2 max pool), ReLU."""
    y = unit.block.conv(x)
    return torch.relu(torch.nn.functional.max_pool2d(y, 2) if unit.block.spec.pooled else y)
