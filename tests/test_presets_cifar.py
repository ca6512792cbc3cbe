"""The CIFAR presets: valid, deeper than MNIST, augmented, and they build for 3×32×32 images."""
from __future__ import annotations

import pytest

from ffneuro.models import FFNet
from ffneuro.presets import PRESETS, resolve_config

CIFAR = {"paper-cifar10": 10, "paper-cifar100": 100, "ffneuro-cifar10": 10}


def test_cifar_presets_registered():
    assert set(CIFAR) <= set(PRESETS.names())


@pytest.mark.parametrize("name,classes", CIFAR.items())
def test_cifar_preset_valid_and_builds(name, classes):
    cfg = resolve_config(name, {})
    assert cfg.dataset == f"cifar{classes}"
    assert cfg.layers >= 4 and cfg.augment == "crop+flip"
    model = FFNet(cfg, (3, 32, 32), classes)
    assert len(model.units) == cfg.layers and model.num_classes == classes
    assert all(min(u.block.out_shape[1:]) >= 1 for u in model.units)
    trainable = [u for u in model.units if u.optimizer is not None]
    assert [u.optimizer.param_groups[0]["lr"] for u in trainable] == \
        [cfg.unit_lr(i) for i, u in enumerate(model.units) if u.optimizer is not None]


def test_paper_cifar_presets_follow_the_paper():
    for name in ("paper-cifar10", "paper-cifar100"):
        cfg = resolve_config(name, {})
        assert (cfg.label_strength, cfg.goodness, cfg.loss, cfg.batch_size, cfg.lr) == (0.35, "sumsq", "bce", 50, 5e-5)
        assert not cfg.train_first_layer and cfg.unit_lrs is None
    assert resolve_config("paper-cifar100", {}).epochs >= resolve_config("paper-cifar10", {}).epochs


def test_own_preset_uses_per_unit_lrs_falling_with_depth():
    cfg = resolve_config("ffneuro-cifar10", {})
    assert len(cfg.unit_lrs) == cfg.layers
    assert list(cfg.unit_lrs) == sorted(cfg.unit_lrs, reverse=True)
