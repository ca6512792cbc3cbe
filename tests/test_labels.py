"""Label schemes: Fourier plane waves, one-hot corner, embedding and wrong-label sampling."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ffneuro.catalog import LABEL_CHANNELS, label_channels, network_input_shape
from ffneuro.errors import ConfigError
from ffneuro.labels import LABELS, build_labels, minmax01, random_wrong_labels
from ffneuro.labels.fourier import FourierSet1, FourierSet2, plane_wave
from ffneuro.labels.onehot import OneHotCorner
from ffneuro.labels.registry import LabelRegistry
from ffneuro.registry import UnknownNameError


def images(n=3, shape=(1, 8, 8), seed=0):
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed))


# --- input channels: declared once in ffneuro.catalog ------------------------------------------------

@pytest.mark.parametrize("name", LABELS.names())
def test_every_scheme_embeds_exactly_the_input_channels_the_catalog_declares(name):
    shape = (3, 16, 16)
    s = build_labels(name, 10, shape, 0.35)
    x, y = images(4, shape), torch.arange(4) % 10
    extra = label_channels(name)
    assert s.extra_channels == extra
    for out in (s.embed(x, y), s.embed_neutral(x)):
        assert out.shape == (4, shape[0] + extra, *shape[1:])
    assert s.embed_all(x).shape == (4 * 10, shape[0] + extra, *shape[1:])
    assert network_input_shape(name, shape) == (shape[0] + extra, *shape[1:])
    assert network_input_shape(name, shape, "bp") == shape


def test_registering_takes_the_channels_from_the_catalog_and_refuses_an_undeclared_name():
    registry = LabelRegistry("label scheme")

    @registry.register("channel")
    class Stand:
        extra_channels = 7

    assert Stand.extra_channels == LABEL_CHANNELS["channel"] == 1
    with pytest.raises(ValueError, match="not declared in ffneuro.catalog"):
        registry.register("nosuchscheme")


# --- plane waves ------------------------------------------------------------------------------------

def test_plane_wave_equals_cos_formula_at_pixels():
    h, w, f, a, phi = 7, 9, 3.0, 30.0, 0.4
    wave = plane_wave(h, w, f, a, phi)
    assert wave.shape == (h, w)
    th = math.radians(a)
    for r, c in [(0, 0), (0, 5), (3, 2), (6, 8)]:
        expected = math.cos(2 * math.pi * f * (c / w * math.cos(th) + r / h * math.sin(th)) + phi)
        assert wave[r, c].item() == pytest.approx(expected, abs=1e-6)


def test_plane_wave_range_and_orientation():
    wave = plane_wave(16, 16, 2.0, 0.0)
    assert wave.min() >= -1 and wave.max() <= 1
    assert torch.equal(wave, wave[:1].expand(16, 16))      # 0°: constant down each column
    vertical = plane_wave(16, 16, 2.0, 90.0)
    assert torch.allclose(vertical, vertical[:, :1].expand(16, 16), atol=1e-6)  # 90°: constant along rows
    assert wave[0, 0] == pytest.approx(1.0)
    assert wave[0, 4].item() == pytest.approx(-1.0, abs=1e-6)  # half a cycle at 2 cycles / 16 px


# --- Fourier sets -----------------------------------------------------------------------------------

def test_fourier1_modes_are_frequency_major_first_ten_of_twelve():
    s = FourierSet1(10, (1, 28, 28), 0.35)
    expected = [(f, a) for f in (2.0, 4.0, 6.0) for a in (0.0, 45.0, 90.0, 135.0)][:10]
    assert s.modes == expected
    assert s.patterns.shape == (10, 1, 28, 28)
    for k, (f, a) in enumerate(expected):
        assert torch.allclose(s.patterns[k, 0], plane_wave(28, 28, f, a))


def test_fourier1_custom_frequencies():
    s = FourierSet1(5, (3, 16, 16), 0.5, frequencies=(1.0, 3.0))
    assert s.modes == [(1.0, 0.0), (1.0, 45.0), (1.0, 90.0), (1.0, 135.0), (3.0, 0.0)]


def test_fourier2_one_frequency_ten_orientations_equally_spaced():
    s = FourierSet2(10, (1, 28, 28), 0.35, frequency=3.0)
    assert [f for f, _ in s.modes] == [3.0] * 10
    angles = [a for _, a in s.modes]
    assert angles == pytest.approx([18.0 * k for k in range(10)])
    assert min(angles) == 0.0 and max(angles) < 180.0


@pytest.mark.parametrize("name", ["fourier1", "fourier2"])
def test_fourier_patterns_of_different_classes_are_distinct(name):
    s = build_labels(name, 10, (1, 28, 28), 0.35)
    pats = s.patterns.flatten(1).numpy().astype(np.float64)
    assert pats.min() >= -1 and pats.max() <= 1
    corr = np.corrcoef(pats)
    off = np.abs(corr[~np.eye(10, dtype=bool)])
    assert off.max() < 0.99


def test_fourier1_with_too_many_classes_is_config_error():
    with pytest.raises(ConfigError, match="frequencies"):
        FourierSet1(13, (1, 28, 28), 0.35)
    with pytest.raises(ConfigError):
        FourierSet1(5, (1, 28, 28), 0.35, frequencies=(2.0,))
    FourierSet1(12, (1, 28, 28), 0.35)  # exactly the 12 modes is fine


@pytest.mark.parametrize("strength", [-0.01, 1.01])
@pytest.mark.parametrize("name", ["channel", "channel-normal", "fourier1", "fourier2", "morph", "onehot"])
def test_strength_outside_unit_interval_is_config_error(name, strength):
    with pytest.raises(ConfigError, match="K"):
        build_labels(name, 10, (1, 28, 28), strength)


def test_fewer_than_two_classes_is_config_error():
    with pytest.raises(ConfigError):
        build_labels("fourier2", 1, (1, 8, 8), 0.3)


def test_unknown_scheme_lists_valid_names():
    with pytest.raises(UnknownNameError, match="channel.*fourier1.*fourier2.*onehot"):
        build_labels("stripes", 10, (1, 8, 8), 0.3)
    assert LABELS.names() == ["channel", "channel-normal", "fourier1", "fourier2", "morph", "onehot"]


# --- embedding --------------------------------------------------------------------------------------

def test_minmax01_per_sample():
    x = torch.tensor([[[[1.0, 3.0], [2.0, 5.0]]], [[[-4.0, -4.0], [0.0, -2.0]]]])
    out = minmax01(x)
    assert torch.allclose(out[0, 0], torch.tensor([[0.0, 0.5], [0.25, 1.0]]))
    assert torch.allclose(out[1, 0], torch.tensor([[0.0, 0.0], [1.0, 0.5]]))


@pytest.mark.parametrize("name", ["fourier1", "fourier2"])
def test_fourier_embed_is_minmax_of_image_plus_k_pattern(name):
    s = build_labels(name, 10, (3, 8, 8), 0.35)
    x = images(4, (3, 8, 8))
    labels = torch.tensor([0, 3, 9, 3])
    out = s.embed(x, labels)
    assert out.shape == x.shape
    flat = out.flatten(1)
    assert torch.allclose(flat.min(1).values, torch.zeros(4)) and torch.allclose(flat.max(1).values, torch.ones(4))
    for i in range(4):  # by hand: every channel gets the same pattern, then per-sample min-max
        raw = x[i] + 0.35 * s.patterns[labels[i], 0]
        assert torch.allclose(out[i], (raw - raw.min()) / (raw.max() - raw.min()), atol=1e-6)


@pytest.mark.parametrize("name", ["channel", "channel-normal", "fourier1", "fourier2", "morph", "onehot"])
def test_embed_depends_on_label(name):
    s = build_labels(name, 10, (1, 16, 16), 0.35)
    x = images(2, (1, 16, 16))
    outs = [s.embed(x, torch.full((2,), c)) for c in range(10)]
    for a in range(10):
        for b in range(a + 1, 10):
            assert not torch.allclose(outs[a], outs[b]), (a, b)


@pytest.mark.parametrize("name", ["fourier1", "fourier2", "morph", "onehot"])
def test_embed_neutral_is_the_same_for_every_label_and_differs_from_labelled(name):
    s = build_labels(name, 10, (1, 16, 16), 0.35)
    x = images(2, (1, 16, 16))
    neutral = s.embed_neutral(x)
    assert neutral.shape == x.shape
    assert neutral.min() >= 0 and neutral.max() <= 1
    for c in range(10):
        assert not torch.allclose(neutral, s.embed(x, torch.full((2,), c)))


def test_fourier_embed_neutral_uses_mean_pattern():
    s = FourierSet2(4, (1, 8, 8), 0.5)
    x = images(2)
    raw = x + 0.5 * s.patterns.mean(0, keepdim=True)
    assert torch.allclose(s.embed_neutral(x), minmax01(raw))


def test_embed_with_zero_strength_ignores_the_label():
    s = FourierSet1(10, (1, 8, 8), 0.0)
    x = images(2)
    assert torch.allclose(s.embed(x, torch.tensor([0, 0])), s.embed(x, torch.tensor([7, 5])))


@pytest.mark.parametrize("name", ["fourier1", "onehot"])
def test_embed_all_is_sample_major(name):
    c = 4
    s = build_labels(name, c, (2, 8, 8), 0.35)
    x = images(3, (2, 8, 8))
    out = s.embed_all(x)
    assert out.shape == (3 * c, 2, 8, 8)
    for i in range(3):
        for k in range(c):
            assert torch.allclose(out[i * c + k], s.embed(x[i : i + 1], torch.tensor([k]))[0])


# --- one-hot corner ---------------------------------------------------------------------------------

def test_onehot_writes_code_into_top_row_of_every_channel_only():
    s = OneHotCorner(5, (3, 8, 8), 0.35)
    x = images(2, (3, 8, 8)) * 0.5 + 0.25
    out = s.embed(x, torch.tensor([2, 4]))
    for i, lab in enumerate([2, 4]):
        code = torch.zeros(5)
        code[lab] = 1.0
        for ch in range(3):
            assert torch.equal(out[i, ch, 0, :5], code)
    rest = torch.ones_like(x, dtype=torch.bool)
    rest[:, :, 0, :5] = False
    assert torch.equal(out[rest], x[rest])        # everything else untouched (no min-max)
    assert not torch.equal(x[:, :, 0, :5], out[:, :, 0, :5])  # and the input tensor itself is not modified
    assert torch.all((x >= 0.25) & (x <= 0.75))


def test_onehot_neutral_writes_one_over_c():
    s = OneHotCorner(4, (1, 8, 8), 0.35)
    x = images(2)
    out = s.embed_neutral(x)
    assert torch.allclose(out[:, :, 0, :4], torch.full((2, 1, 4), 0.25))
    assert torch.equal(out[:, :, 1:], x[:, :, 1:]) and torch.equal(out[:, :, 0, 4:], x[:, :, 0, 4:])


def test_onehot_needs_width_at_least_classes():
    with pytest.raises(ConfigError, match="width"):
        OneHotCorner(10, (1, 8, 8), 0.35)


def test_embed_keeps_dtype():
    s = FourierSet1(4, (1, 8, 8), 0.35)
    x = images(2).double()
    assert s.embed(x, torch.tensor([0, 1])).dtype == torch.float64
    assert OneHotCorner(4, (1, 8, 8), 0.3).embed(x, torch.tensor([0, 1])).dtype == torch.float64
    channel = build_labels("channel", 4, (1, 8, 8), 0.3)
    assert channel.embed(x, torch.tensor([0, 1])).dtype == torch.float64
    assert channel.embed_neutral(x).dtype == torch.float64


# --- wrong labels -----------------------------------------------------------------------------------

@pytest.mark.parametrize("num_classes", [2, 3, 10])
def test_random_wrong_labels_never_true_and_cover_all_wrong_classes(num_classes):
    g = torch.Generator().manual_seed(123)
    n = 20000
    labels = torch.randint(0, num_classes, (n,), generator=g)
    wrong = random_wrong_labels(labels, num_classes, g)
    assert wrong.shape == labels.shape and wrong.dtype == labels.dtype
    assert not torch.any(wrong == labels)
    assert wrong.min() >= 0 and wrong.max() < num_classes
    for true in range(num_classes):
        picks = wrong[labels == true]
        counts = torch.bincount(picks, minlength=num_classes).double()
        assert counts[true] == 0
        expected = picks.numel() / (num_classes - 1)
        others = torch.cat([counts[:true], counts[true + 1:]])
        assert torch.all((others - expected).abs() < 5 * math.sqrt(expected)), (true, counts)  # ~5 sigma


def test_random_wrong_labels_two_classes_is_the_other_class():
    labels = torch.tensor([0, 1, 1, 0, 1])
    assert torch.equal(random_wrong_labels(labels, 2), 1 - labels)


def test_random_wrong_labels_is_reproducible_with_generator():
    labels = torch.arange(10).repeat(5)
    a = random_wrong_labels(labels, 10, torch.Generator().manual_seed(5))
    b = random_wrong_labels(labels, 10, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
