"""The fast CPU presets: mnist-fast's record setting (issue 19) and its BP twin on the same budget."""
from __future__ import annotations

import pytest
import torch

from ffneuro.data import load_dataset
from ffneuro.presets import resolve_config
from ffneuro.train import trainer as trainer_mod
from ffneuro.train.trainer import Trainer

# the CPU record's budget: chosen on the validation split (ffneuro/presets.py, benchmarks/records.sh)
RECORD_EPOCHS, RECORD_AUGMENT = 18, "crop"


def test_mnist_fast_is_the_record_setting_and_strict_ff():
    cfg = resolve_config("mnist-fast", {})
    assert (cfg.dataset, cfg.epochs, cfg.augment) == ("mnist", RECORD_EPOCHS, RECORD_AUGMENT)
    # strict FF: class-wise goodness of every unit on its own loss, no label in the image, no negatives
    assert (cfg.algo, cfg.goodness, cfg.loss, cfg.labels) == ("ff", "classwise", "cwc", "none")
    assert cfg.cooldown_per_step and cfg.lr == 0.01 and cfg.widths == (40, 80, 160)


@pytest.mark.parametrize("name,epochs,augment", [
    ("fashion-mnist-fast", 30, "crop+flip"), ("cifar10-fast", 32, "crop+flip"),
    ("mnist-fast-deploy", 3, "none"), ("mnist-fast-residual", 3, "none"),
])
def test_record_does_not_leak_into_the_presets_built_on_the_same_parts(name, epochs, augment):
    """mnist-fast's longer, augmented budget overrides _FAST in mnist-fast only: the presets measured at
    their own budgets keep them."""
    cfg = resolve_config(name, {})
    assert (cfg.epochs, cfg.augment) == (epochs, augment)


def test_bp_twin_trains_on_the_same_budget_augmented_and_cooled_per_step(monkeypatch):
    """``--preset mnist-fast --algo bp``: the twin inherits the preset's epochs and augment, every training
    batch is augmented, and its lr cools every batch along the same schedule as the FF units'."""
    calls = []
    real_augment = trainer_mod.augment_batch

    def spy(x, mode, generator, padding):
        calls.append(mode)
        return real_augment(x, mode, generator, padding)

    monkeypatch.setattr(trainer_mod, "augment_batch", spy)
    cfg = resolve_config("mnist-fast", {"algo": "bp", "readout": "linear", "lr": 1e-3, "dataset": "synthetic",
                                        "train_limit": 64, "val_size": 16, "batch_size": 16, "epochs": 2,
                                        "widths": (10, 10, 10), "device": "cpu"})
    assert (cfg.epochs, cfg.augment) == (2, RECORD_AUGMENT)  # given epochs win; augment comes from the preset
    tr = Trainer(cfg, load_dataset("synthetic"))
    seen = []
    train_batch = tr.model.train_batch

    def record(x, y, g=None, rows=None):
        seen.append(tr.model.optimizer.param_groups[0]["lr"])
        return train_batch(x, y, g)

    monkeypatch.setattr(tr.model, "train_batch", record)
    nb = -(-len(tr.train) // cfg.batch_size)
    for epoch in range(cfg.epochs):
        tr._train_epoch(epoch, trainer_mod._Silent())
    assert calls == [RECORD_AUGMENT] * (cfg.epochs * nb)
    expected = [cfg.lr_at(e + b / nb, cfg.lr) for e in range(cfg.epochs) for b in range(nb)]
    assert seen == pytest.approx(expected)
    assert seen[0] == 1e-3 and seen[nb - 1] < seen[0]   # cools inside the first epoch: per step, not per epoch
    assert seen[-1] < seen[nb] < seen[nb - 1]
    assert torch.isfinite(torch.tensor(seen)).all()


def test_records_script_runs_the_preset_and_its_bp_twin(tmp_path):
    """benchmarks/records.sh (smoke, synthetic data): trains PRESET and PRESET-bp, prints each curve and
    judges the wall time against that preset's record time."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    preset, minutes = "fashion-mnist-fast", 30   # not mnist-fast: the script's default until PRESET is read
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash not available")
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "records.sh"
    env = {**os.environ, "PRESET": preset, "FFNEURO_DATA": str(tmp_path / "data"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    out = subprocess.run([bash, str(script), str(tmp_path / "data"), str(tmp_path / "out"), "both",
                          "--dataset", "synthetic", "--epochs", "1", "--widths", "10,10,10", "--train-limit", "64",
                          "--val-size", "32"], capture_output=True, text=True, env=env, timeout=1200)
    assert out.returncode == 0, out.stderr
    assert f"{preset}.h5: ff epochs 1" in out.stdout and f"{preset}-bp.h5: bp epochs 1" in out.stdout
    assert out.stdout.count(f"within {minutes} min") == 2
    assert (tmp_path / "out" / f"{preset}.h5").exists() and (tmp_path / "out" / f"{preset}-bp.h5").exists()
    bad = subprocess.run([bash, str(script), str(tmp_path / "data")], capture_output=True, text=True,
                         env={**env, "PRESET": "smoke"}, timeout=60)
    assert bad.returncode == 2 and "no record time for preset smoke" in bad.stderr
