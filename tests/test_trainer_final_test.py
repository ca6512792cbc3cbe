"""``Trainer.run(final_test=False)``: a caller that reads the test set itself (benchmarks/fidelity.py reads it
after every epoch) skips the trainer's own final read, instead of the trainer reading a test set emptied
behind its back."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from benchmark_scripts import load_benchmark

from ffneuro.data.dataset import Dataset
from ffneuro.presets import resolve_config
from ffneuro.train import trainer as trainer_mod
from ffneuro.train.trainer import Trainer

SMALL = {"layers": 2, "widths": (16, 16), "readout_from": 1, "batch_size": 10, "val_size": 0, "device": "cpu"}


def _data() -> Dataset:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(40, 1, 12, 12), dtype=np.uint8)
    return Dataset("mnist", x[:30], np.arange(30, dtype=np.int64) % 10, x[30:], np.arange(10, dtype=np.int64), 10)


@pytest.fixture
def test_reads(monkeypatch) -> list[int]:
    """Every Trainer.evaluate of the trainer's test split (as it is at the call), by its number of images."""
    reads: list[int] = []
    evaluate = Trainer.evaluate

    def spy(self, split, *args, **kwargs):
        if split is self.test:
            reads.append(len(split))
        return evaluate(self, split, *args, **kwargs)
    monkeypatch.setattr(Trainer, "evaluate", spy)
    monkeypatch.setattr(trainer_mod, "TRAIN_EVAL_SIZE", trainer_mod.TRAIN_EVAL_SIZE)   # fidelity.py sets it
    return reads


@pytest.mark.parametrize("final_test", [True, False])
def test_run_reads_the_test_set_once_at_the_end_unless_told_not_to(final_test, test_reads):
    torch.manual_seed(0)
    trainer = Trainer(resolve_config("hinton-fc-mnist", {**SMALL, "epochs": 1}), _data())
    summary = trainer.run(final_test=final_test)
    assert test_reads == ([10] if final_test else [])
    assert (set(summary.test) == set(trainer.readouts())) if final_test else summary.test == {}
    assert summary.epochs == 1 and summary.wall_time_s > 0


def test_fidelity_reads_the_full_test_set_once_per_epoch_and_never_an_emptied_one(test_reads, monkeypatch):
    fid = load_benchmark("fidelity")
    monkeypatch.setattr(fid, "images", lambda dataset, data_dir: _data())
    seen: list[int] = []
    epochs = fid.run_ffneuro("hinton-fc-mnist", 0, 2, 30, None, SMALL, lambda entries: seen.append(len(entries)))
    assert [e["epoch"] for e in epochs] == [1, 2] and seen == [1, 2]
    assert test_reads == [10, 10]
