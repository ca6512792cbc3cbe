"""``--drop-last``: an epoch skips its short last batch, as a PyTorch ``DataLoader(drop_last=True)`` does
(the Trifecta's code trains that way); without it every image is trained on."""
from __future__ import annotations

import numpy as np
import pytest
from cli_runner import invoke

from ffneuro.data.dataset import Dataset
from ffneuro.errors import ConfigError
from ffneuro.presets import resolve_config
from ffneuro.store import read_run
from ffneuro.train.trainer import Trainer

SMALL = {"layers": 2, "widths": (16, 16), "readout_from": 1, "batch_size": 8, "val_size": 0, "device": "cpu",
         "epochs": 2}


def _data(n: int = 30) -> Dataset:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(n + 10, 1, 12, 12), dtype=np.uint8)
    return Dataset("mnist", x[:n], np.arange(n, dtype=np.int64) % 10, x[n:], np.arange(10, dtype=np.int64), 10)


def _batch_sizes(monkeypatch, trainer: Trainer) -> list[int]:
    sizes: list[int] = []
    step = trainer.parallel.train_batch

    def spy(model, x, y, generator):
        sizes.append(len(y))
        return step(model, x, y, generator)
    monkeypatch.setattr(trainer.parallel, "train_batch", spy)
    return sizes


@pytest.mark.parametrize("drop_last, per_epoch", [(False, [8, 8, 8, 6]), (True, [8, 8, 8])])
def test_an_epoch_trains_the_short_last_batch_unless_drop_last(monkeypatch, drop_last, per_epoch):
    trainer = Trainer(resolve_config("hinton-fc-mnist", {**SMALL, "drop_last": drop_last}), _data())
    sizes = _batch_sizes(monkeypatch, trainer)
    trainer.run(final_test=False)
    assert sizes == per_epoch * 2


def test_drop_last_changes_nothing_when_the_batches_divide_the_images(monkeypatch):
    runs = []
    for drop_last in (False, True):
        trainer = Trainer(resolve_config("hinton-fc-mnist", {**SMALL, "drop_last": drop_last}), _data(32))
        sizes = _batch_sizes(monkeypatch, trainer)
        trainer.run(final_test=False)
        runs.append((sizes, [p.detach().clone() for p in trainer.model.parameters()]))
    assert runs[0][0] == runs[1][0] == [8] * 8
    assert all((a == b).all() for a, b in zip(runs[0][1], runs[1][1], strict=True))


def test_drop_last_with_fewer_images_than_a_batch_is_refused():
    with pytest.raises(ConfigError, match="fewer than the batch size 8"):
        Trainer(resolve_config("hinton-fc-mnist", {**SMALL, "drop_last": True}), _data(6))


def test_drop_last_must_be_a_bool():
    with pytest.raises(ConfigError, match="drop_last is true or false"):
        resolve_config("hinton-fc-mnist", {"drop_last": "yes"})


def test_the_cli_flag_reaches_the_stored_config(tmp_path):
    out = tmp_path / "run.h5"
    invoke("train", "--preset", "smoke", "--epochs", "1", "--train-limit", "200", "--val-size", "100",
           "--batch-size", "64", "--drop-last", "--out", out, ok=True)
    assert read_run(out).config["drop_last"] is True


def test_the_cli_refuses_drop_last_without_a_full_batch(tmp_path):
    result = invoke("train", "--preset", "smoke", "--epochs", "1", "--train-limit", "50", "--val-size", "100",
                    "--batch-size", "64", "--drop-last", "--out", tmp_path / "run.h5")
    assert result.exit_code != 0 and "fewer than the batch size 64" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not (tmp_path / "run.h5").exists()
