"""Morphological labels: registration, determinism, range, distinctness at 10/100 classes, collisions."""
from __future__ import annotations

import pytest
import torch

from ffneuro.errors import ConfigError
from ffneuro.labels import LABELS, build_labels, morph
from ffneuro.labels.morph import MorphLabels, pattern_distinctness


def test_registered_and_buildable_for_1_and_3_channels():
    assert "morph" in LABELS.names()
    s = build_labels("morph", 10, (1, 28, 28), 0.35)
    assert isinstance(s, MorphLabels) and s.patterns.shape == (10, 1, 28, 28)
    s3 = build_labels("morph", 10, (3, 32, 32), 0.35)
    assert s3.patterns.shape == (10, 1, 32, 32)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert s3.embed(x, torch.tensor([0, 1])).shape == (2, 3, 32, 32)


def test_deterministic_in_seed():
    a = build_labels("morph", 10, (1, 28, 28), 0.35, seed=3).patterns
    b = build_labels("morph", 10, (1, 28, 28), 0.35, seed=3).patterns
    c = build_labels("morph", 10, (1, 28, 28), 0.35, seed=4).patterns
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_patterns_in_unit_range_zero_mean_unit_max_abs():
    p = build_labels("morph", 100, (1, 32, 32), 0.35).patterns.flatten(1).double()
    assert p.min() >= -1 and p.max() <= 1
    assert torch.allclose(p.mean(1), torch.zeros(100, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(p.abs().max(1).values, torch.ones(100, dtype=torch.float64))


@pytest.mark.parametrize("classes", [10, 100])
@pytest.mark.parametrize("size", [28, 32])
def test_default_sets_are_distinct(classes, size):
    s = build_labels("morph", classes, (1, size, size), 0.35)
    d = pattern_distinctness(s.patterns)
    assert d["max_abs_corr"] < 0.95 and d["min_rms_distance"] > 0.05
    assert d == s.distinctness
    assert len(set(s.elements)) == classes


def test_tiny_max_corr_is_refused_naming_the_pair():
    with pytest.raises(ConfigError, match=r"classes \d+ .* and \d+ .*\|corr\| = 0\.\d+ > max_corr"):
        build_labels("morph", 10, (1, 28, 28), 0.35, max_corr=0.1)


def test_shared_element_collision_is_refused(monkeypatch):
    bank = morph.default_bank()
    bank[5] = bank[2]
    monkeypatch.setattr(morph, "default_bank", lambda: bank)
    with pytest.raises(ConfigError, match=r"classes 2 .* and 5 .*\|corr\| = 1\.000"):
        build_labels("morph", 10, (1, 28, 28), 0.35)


def test_bad_params_and_too_many_classes():
    with pytest.raises(ConfigError, match="pairs"):
        build_labels("morph", len(morph.default_bank()) + 1, (1, 28, 28), 0.35)
    with pytest.raises(ConfigError):
        build_labels("morph", 10, (1, 28, 28), 0.35, smoothing=-1)
    with pytest.raises(ConfigError):
        build_labels("morph", 10, (1, 28, 28), 0.35, max_corr=0)


def test_embed_in_unit_interval_and_depends_on_label():
    s = build_labels("morph", 10, (1, 28, 28), 0.35)
    x = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    a, b = s.embed(x, torch.tensor([0])), s.embed(x, torch.tensor([1]))
    for y in (a, b, s.embed_neutral(x)):
        assert y.min() >= 0 and y.max() <= 1
    assert not torch.allclose(a, b)
    assert s.embed_all(x).shape == (10, 1, 28, 28)


def test_pattern_distinctness_hand_made():
    p = torch.tensor([[1.0, -1.0, 0.0, 0.0], [1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 1.0, -1.0]])
    d = pattern_distinctness(p)
    assert d["max_abs_corr"] == pytest.approx(1.0)
    assert d["max_corr_pair"] == (0, 1)
    assert d["min_rms_distance"] == pytest.approx(0.0)
    assert d["min_rms_pair"] == (0, 1)
    d2 = pattern_distinctness(p[1:])
    assert d2["max_abs_corr"] == pytest.approx(0.0, abs=1e-12)
    assert d2["min_rms_distance"] == pytest.approx(1.0)   # sqrt((1+1+1+1)/4)
