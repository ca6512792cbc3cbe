"""Training-batch augmentation (crop, flip), its use by the trainer, and per-unit learning rates."""
from __future__ import annotations

import json
import logging

import h5py
import pytest
import torch
from click.testing import CliRunner
from ffneuro.cli.main import main

from ffneuro.config import RunConfig
from ffneuro.data import load_dataset
from ffneuro.data.augment import augment_batch, random_crop, random_flip
from ffneuro.errors import ConfigError
from ffneuro.models import FFNet
from ffneuro.presets import resolve_config
from ffneuro.train import trainer as trainer_mod
from ffneuro.train.trainer import Trainer


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def batch(n=6, c=3, h=8, w=8):
    return torch.rand(n, c, h, w, generator=gen(99))


@pytest.mark.parametrize("mode", ["none", "crop", "flip", "crop+flip", "rotate", "crop+rotate", "crop+rotate+flip"])
def test_augment_keeps_shape_and_dtype(mode):
    x = batch()
    out = augment_batch(x, mode, gen())
    assert out.shape == x.shape and out.dtype == x.dtype


def test_shapes_of_crop_and_flip():
    x = batch(5, 1, 7, 9)
    assert random_crop(x, 4, gen()).shape == x.shape
    assert random_flip(x, gen()).shape == x.shape


@pytest.mark.parametrize("fn", [lambda x, g: random_crop(x, 4, g), random_flip,
                                lambda x, g: augment_batch(x, "crop+flip", g)])
def test_same_generator_seed_same_result(fn):
    x = batch(16)
    a, b, c = fn(x, gen(3)), fn(x, gen(3)), fn(x, gen(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_crop_is_a_shifted_window_of_the_zero_padded_image():
    x = torch.arange(2 * 1 * 4 * 5, dtype=torch.float32).view(2, 1, 4, 5) + 1  # no zeros in the image
    p = 2
    g = gen(7)
    out = random_crop(x, p, g)
    # the offsets are the first two draws of the same generator state
    g = gen(7)
    dy = torch.randint(0, 2 * p + 1, (2,), generator=g)
    dx = torch.randint(0, 2 * p + 1, (2,), generator=g)
    padded = torch.zeros(2, 1, 4 + 2 * p, 5 + 2 * p)
    padded[:, :, p:p + 4, p:p + 5] = x
    for i in range(2):
        assert torch.equal(out[i], padded[i, :, dy[i]:dy[i] + 4, dx[i]:dx[i] + 5])


def test_crop_hand_case_every_offset_is_a_window():
    x = torch.arange(1, 10, dtype=torch.float32).view(1, 1, 3, 3)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    windows = {tuple(padded[0, 0, i:i + 3, j:j + 3].flatten().tolist()) for i in range(3) for j in range(3)}
    seen = set()
    for seed in range(60):
        out = random_crop(x, 1, gen(seed))
        key = tuple(out.flatten().tolist())
        assert key in windows
        seen.add(key)
    assert len(seen) > 1  # offsets really vary
    assert torch.equal(random_crop(x, 0, gen()), x)


def test_crop_offsets_differ_per_sample():
    x = batch(1).expand(32, -1, -1, -1).contiguous()
    out = random_crop(x, 4, gen(1))
    assert len({tuple(o.flatten().tolist()) for o in out}) > 1


def test_flip_flips_exactly_the_chosen_samples():
    x = batch(40)
    out = random_flip(x, gen(5))
    chosen = torch.rand(40, generator=gen(5)) < 0.5
    assert 0 < int(chosen.sum()) < 40
    for i in range(40):
        expected = x[i].flip(-1) if chosen[i] else x[i]
        assert torch.equal(out[i], expected)


def test_augment_does_not_modify_input_and_rejects_unknown_mode():
    x = batch()
    before = x.clone()
    augment_batch(x, "crop+rotate+flip", gen())
    assert torch.equal(x, before)
    with pytest.raises(ValueError, match="spin"):
        augment_batch(x, "spin", gen())


def test_config_augment_validated_and_default_none():
    assert RunConfig().augment == "none"
    with pytest.raises(ConfigError, match="augment"):
        RunConfig(augment="spin")


def test_crop_padding_validated_and_used():
    """``crop_padding`` bounds each shift: with padding p no pixel moves more than p rows or columns."""
    assert RunConfig().crop_padding == 4
    for bad in (-1, 17, 2.0, True):
        with pytest.raises(ConfigError, match="crop-padding"):
            RunConfig(crop_padding=bad)
    x = torch.zeros(64, 1, 12, 12)
    x[:, :, 6, 6] = 1.0   # one lit pixel per image: where it lands is the shift
    for p in (1, 3):
        out = augment_batch(x, "crop", gen(), padding=p)
        where = out[:, 0].flatten(1).argmax(1)
        rows, cols = where // 12 - 6, where % 12 - 6
        assert int(rows.abs().max()) == p and int(cols.abs().max()) == p   # 64 draws reach the extremes
    old = RunConfig().to_dict()
    del old["crop_padding"]   # a run stored before the field existed loads with the former padding
    assert RunConfig.from_dict(old).crop_padding == 4


def test_evaluation_never_sees_augmented_images(monkeypatch):
    """Spy: augmentation marks its output (+1000); training must see only marked images, evaluation none."""
    calls = []

    def marking(x, mode, generator, padding):
        calls.append(mode)
        return x + 1000.0

    monkeypatch.setattr(trainer_mod, "augment_batch", marking)
    cfg = resolve_config("smoke", {"epochs": 1, "augment": "crop+flip", "train_limit": 200, "device": "cpu"})
    tr = Trainer(cfg, load_dataset("synthetic"))
    seen = {"train": [], "eval": []}
    train_batch, predict = tr.model.train_batch, tr.model.predict
    monkeypatch.setattr(tr.model, "train_batch", lambda x, y, g=None: (seen["train"].append(float(x.min())), train_batch(x, y, g))[1])
    monkeypatch.setattr(tr.model, "predict", lambda x, r: (seen["eval"].append(float(x.max())), predict(x, r))[1])
    tr.run()
    assert calls and set(calls) == {"crop+flip"}
    assert seen["train"] and min(seen["train"]) >= 1000.0
    assert seen["eval"] and max(seen["eval"]) <= 1.0


def test_unit_lrs_validation_and_serialisation():
    with pytest.raises(ConfigError, match="one lr per layer"):
        RunConfig(layers=3, unit_lrs=(1e-3, 1e-4))
    with pytest.raises(ConfigError, match="learning rates"):
        RunConfig(layers=2, readout_from=1, unit_lrs=(1e-3, 0.0))
    cfg = RunConfig.from_dict({"layers": 2, "readout_from": 1, "unit_lrs": [1e-3, 5e-4]})  # as stored (JSON list)
    assert cfg.unit_lrs == (1e-3, 5e-4)
    d = cfg.to_dict()
    assert d == json.loads(json.dumps(d)) and d["unit_lrs"] == [1e-3, 5e-4]
    assert RunConfig.from_dict(d) == cfg
    # a stored run from before these fields existed still loads
    old = RunConfig().to_dict()
    del old["augment"], old["unit_lrs"]
    assert RunConfig.from_dict(old) == RunConfig()


def lrs(model):
    return [u.optimizer.param_groups[0]["lr"] if u.optimizer is not None else None for u in model.units]


def test_each_unit_gets_its_own_lr_and_cooldown_scales_each():
    cfg = RunConfig(dataset="synthetic", layers=3, filters=4, kernel=3, readout_from=1, train_first_layer=True,
                    lr=1e-2, unit_lrs=(4e-3, 2e-3, 1e-3), epochs=4, cooldown_start=0.5)
    model = FFNet(cfg, (1, 8, 8), 10)
    assert lrs(model) == [4e-3, 2e-3, 1e-3]
    assert FFNet(RunConfig(dataset="synthetic", layers=3, filters=4, kernel=3, lr=1e-2), (1, 8, 8), 10).units[1] \
        .optimizer.param_groups[0]["lr"] == 1e-2  # without unit_lrs: lr for every unit
    tr = Trainer.__new__(Trainer)  # only what _train_epoch's schedule step needs
    tr.config, tr.model = cfg, model
    for epoch in range(4):
        factor = cfg.lr_at(epoch, 1.0)
        unit_lr = [cfg.lr_at(epoch, b) for b in cfg.unit_lrs]
        model.set_lr(unit_lr, cfg.lr_at(epoch, cfg.linear_lr))
        assert lrs(model) == pytest.approx([4e-3 * factor, 2e-3 * factor, 1e-3 * factor])
    model.set_lr(5e-4, 1e-3)  # one lr for all still works
    assert lrs(model) == [5e-4] * 3


def test_trainer_schedules_each_units_lr(monkeypatch):
    cfg = resolve_config("smoke", {"epochs": 4, "unit_lrs": (2e-3, 1e-3), "train_limit": 100, "device": "cpu",
                                   "cooldown_start": 0.0})
    tr = Trainer(cfg, load_dataset("synthetic"))
    seen = []
    start_epoch = tr.model.start_epoch
    monkeypatch.setattr(tr.model, "start_epoch", lambda e, sched: (start_epoch(e, sched), seen.append(lrs(tr.model)))[0])
    for epoch in range(4):
        tr._train_epoch(epoch, trainer_mod._Silent())
    assert seen == [pytest.approx([2e-3 * f, 1e-3 * f]) for f in (1.0, 0.75, 0.5, 0.25)]


def test_cli_train_with_augment_and_unit_lrs(tmp_path, monkeypatch):
    """``train --augment crop+flip --unit-lrs a,b`` takes effect, not only lands in the run file: training
    batches go through the augmentation (and come out changed), and each unit's optimiser runs at its
    own lr (one epoch, before the cool-down: the lrs given)."""
    monkeypatch.setenv("FFNEURO_DATA", str(tmp_path / "data"))
    augmented, unit_lrs = [], []
    augment = trainer_mod.augment_batch

    def spy_augment(x, mode, generator, padding):
        out = augment(x, mode, generator, padding)
        augmented.append((mode, padding, not torch.equal(out, x)))
        return out

    start_epoch = FFNet.start_epoch

    def spy_start_epoch(self, epoch, schedule):
        start_epoch(self, epoch, schedule)
        unit_lrs.append(lrs(self))

    monkeypatch.setattr(trainer_mod, "augment_batch", spy_augment)
    monkeypatch.setattr(FFNet, "start_epoch", spy_start_epoch)
    out = tmp_path / "run.h5"
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        result = CliRunner().invoke(main, ["train", "--preset", "smoke", "--augment", "crop+flip", "--crop-padding", "2",
                                           "--unit-lrs", "1e-3,5e-4", "--epochs", "1", "--train-limit", "200",
                                           "--device", "cpu", "--out", str(out)])
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    assert augmented and {(mode, padding) for mode, padding, _ in augmented} == {("crop+flip", 2)}
    assert any(changed for _, _, changed in augmented)   # the crops and flips moved pixels
    assert unit_lrs == [pytest.approx([1e-3, 5e-4])]
    with h5py.File(out, "r") as f:
        stored = json.loads(f["config"].attrs["json"])
    assert stored["augment"] == "crop+flip" and stored["crop_padding"] == 2 and stored["unit_lrs"] == [1e-3, 5e-4]


def test_cli_rejects_bad_unit_lrs(tmp_path):
    for bad in ("1e-3,abc", "1e-3,1e-3,1e-3"):
        result = CliRunner().invoke(main, ["train", "--preset", "smoke", "--unit-lrs", bad,
                                           "--out", str(tmp_path / "x.h5")])
        assert result.exit_code != 0
