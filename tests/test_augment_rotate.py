"""``--augment rotate``: random rotations of up to ±15° about the centre, nearest neighbour, zero fill (the
Trifecta code's torchvision ``RandomRotation(15)``), in the order crop, rotate, flip."""
from __future__ import annotations

import math

import pytest
import torch

from ffneuro.data import augment
from ffneuro.data.augment import augment_batch, random_crop, random_rotation


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_a_zero_degree_rotation_is_the_identity():
    x = torch.rand(3, 2, 9, 9, generator=gen(1))
    assert torch.equal(random_rotation(x, 0.0, gen()), x)


def random_rotation_at(monkeypatch, x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Every image turned by exactly ``degrees`` (the angle draw fixed at its upper end: (2·1 − 1)·degrees)."""
    monkeypatch.setattr(augment.torch, "rand", lambda n, **kw: torch.ones(n, dtype=kw.get("dtype")))
    out = random_rotation(x, degrees)
    monkeypatch.undo()
    return out


@pytest.mark.parametrize("h, w", [(8, 8), (6, 10)])
def test_a_quarter_turn_of_a_square_image_is_rot90_and_any_turn_keeps_the_size(monkeypatch, h, w):
    x = torch.rand(4, 1, h, w, generator=gen(2))
    assert random_rotation(x, 15.0, gen()).shape == x.shape
    if h == w:
        out = random_rotation_at(monkeypatch, x, 90.0)
        assert torch.equal(out, torch.rot90(x, 1, (2, 3))) or torch.equal(out, torch.rot90(x, -1, (2, 3)))


def test_a_turned_image_keeps_its_centre_and_fills_its_uncovered_corners_with_zeros(monkeypatch):
    x = torch.ones(1, 1, 28, 28)
    out = random_rotation_at(monkeypatch, x, 15.0)
    assert out[0, 0, 14, 14] == 1 and out[0, 0, 0, 0] == 0 and out[0, 0, -1, -1] == 0
    # a 15° turn of a square uncovers four thin corner triangles: some of its area, far from all of it
    lost = 1 - float(out.mean())
    assert 0.05 < lost < 0.25
    assert set(out.unique().tolist()) <= {0.0, 1.0}   # nearest neighbour: no blended values


def test_angles_are_uniform_in_plus_minus_the_degrees_and_drawn_from_the_generator(monkeypatch):
    draws = []
    real = augment.torch.nn.functional.affine_grid

    def spy(theta, size, align_corners):
        draws.append(torch.atan2(theta[:, 1, 0], theta[:, 0, 0]))
        return real(theta, size, align_corners=align_corners)
    monkeypatch.setattr(augment.torch.nn.functional, "affine_grid", spy)
    x = torch.rand(2000, 1, 4, 4)
    random_rotation(x, 15.0, gen(3))
    again = random_rotation(x, 15.0, gen(3))
    monkeypatch.undo()
    angles = torch.rad2deg(draws[0])
    assert torch.equal(draws[0], draws[1]) and torch.equal(random_rotation(x, 15.0, gen(3)), again)
    assert float(angles.abs().max()) <= 15.0 and float(angles.min()) < -14 and float(angles.max()) > 14
    assert abs(float(angles.mean())) < 0.6 and float(angles.std()) == pytest.approx(30 / math.sqrt(12), rel=0.05)


def test_crop_then_rotate_in_that_order():
    x = torch.rand(5, 1, 12, 12, generator=gen(4))
    g1, g2 = gen(5), gen(5)
    expected = random_rotation(random_crop(x, 4, g1), augment.ROTATION_DEGREES, g1)
    assert torch.equal(augment_batch(x, "crop+rotate", g2, 4), expected)


@pytest.mark.parametrize("bad", ["spin", "rotate+rotate", "crop+"])
def test_unknown_or_repeated_parts_are_refused(bad):
    with pytest.raises(ValueError, match="unknown augment"):
        augment_batch(torch.rand(1, 1, 4, 4), bad, gen())
