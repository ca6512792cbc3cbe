"""Class activation maps: the pure functions, their identities with the FF readouts, and ``ffneuro cam``."""
from __future__ import annotations

import h5py
import pytest
import torch
from click.testing import CliRunner
from ffneuro.cli.cam import cam
from ffneuro.cli.main import main

from ffneuro.models import cam as C
from ffneuro.models.ff_net import FFNet
from ffneuro.presets import resolve_config
from ffneuro.store import read_run

SMOKE = ["-q", "train", "--preset", "smoke", "--epochs", "1", "--train-limit", "100", "--val-size", "50"]


def tiny_net(**overrides) -> FFNet:
    torch.manual_seed(0)
    config = resolve_config("smoke", {"layers": 3, "filters": 4, "readout_from": 2, "device": "cpu", **overrides})
    return FFNet(config, (1, 8, 8), 5).eval()


# ---------------------------------------------------------------------------------------------- pure functions


def test_linear_cam_hand_computed():
    a = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])                  # N=1, C=1, 2×2
    w = torch.tensor([[1.0, 0.0, -1.0, 0.5],                         # class 0, flat C·H·W
                      [2.0, 2.0, 0.0, -1.0]])                        # class 1
    expected = torch.tensor([[[[1.0, 0.0], [-3.0, 2.0]],
                              [[2.0, 4.0], [0.0, -4.0]]]])
    assert torch.equal(C.linear_cam(a, w), expected)
    assert torch.equal(C.linear_cam(a, w.view(2, 1, 2, 2)), expected)
    # summed over positions: the logit without bias
    assert torch.allclose(C.linear_cam(a, w).sum((2, 3)), a.flatten(1) @ w.T)


def test_linear_cam_sums_over_channels():
    a = torch.ones(1, 2, 1, 1) * torch.tensor([1.0, 10.0]).view(1, 2, 1, 1)
    w = torch.tensor([[2.0, 3.0]])                                   # one class, C=2, 1×1
    assert C.linear_cam(a, w).item() == 32.0


def test_split_linear_weight_follows_concatenation_order():
    w = torch.arange(2 * (1 * 2 * 2 + 2 * 1 * 1), dtype=torch.float).view(2, 6)
    first, second = C.split_linear_weight(w, [(1, 2, 2), (2, 1, 1)])
    assert first.shape == (2, 1, 2, 2) and second.shape == (2, 2, 1, 1)
    assert first[1].flatten().tolist() == [6, 7, 8, 9] and second[1].flatten().tolist() == [10, 11]
    with pytest.raises(ValueError):
        C.split_linear_weight(w, [(1, 2, 2)])


def test_goodness_map_hand_computed():
    y = torch.tensor([[[[1.0, 2.0]], [[3.0, 0.0]]]])                # N=1, C=2, 1×2
    assert C.goodness_map(y).tolist() == [[[10.0, 4.0]]]
    assert C.goodness_map(y, 0.5).tolist() == [[[5.0, 2.0]]]


# ---------------------------------------------------------------------------------------------- FFNet identities


@pytest.mark.parametrize("pool", ["none", "max", "stride"])
def test_linear_cam_decomposes_the_logits(pool):
    net = tiny_net(pool=pool)
    x = torch.rand(3, 1, 8, 8)
    cams = C.linear_cams(net, x)
    assert list(cams) == ["unit2", "unit3"]
    side = 8 if pool == "none" else None
    for i, m in zip(net.readout_units, cams.values()):
        _, h, w = net.units[i].block.out_shape
        assert m.shape == (3, 5, h, w)
        if side:
            assert h == w == side
    logits = net.linear(net.features(net.labels.embed_neutral(x)))
    total = sum(m.sum((2, 3)) for m in cams.values()) + net.linear.linear.bias
    assert torch.allclose(total, logits, atol=1e-5)


@pytest.mark.parametrize("goodness,pool,pool_every", [("meansq", "max", 1), ("sumsq", "none", 1),
                                                       ("sumsq", "stride", 1), ("meansq", "stride", 2)])
def test_goodness_maps_sum_to_goodness_scores(goodness, pool, pool_every):
    net = tiny_net(goodness=goodness, pool=pool, pool_every=pool_every)
    x = torch.rand(2, 1, 8, 8)
    maps = C.goodness_maps(net, x)
    assert list(maps) == ["unit2", "unit3"]
    for i, m in zip(net.readout_units, maps.values()):
        _, h, w = net.units[i].block.neuron_shape  # neuron resolution: before pooling, after a stride
        if pool != "stride":
            assert (h, w) == net.units[i].block.in_shape[1:]
        assert m.shape == (2, 5, h, w)
        assert (m >= 0).all()
    total = sum(m.sum((2, 3)) for m in maps.values())
    assert torch.allclose(total, net.goodness_scores(x), rtol=1e-5, atol=1e-6)


def test_goodness_scale():
    net = tiny_net(goodness="meansq")
    assert C.goodness_scale(net.units[0].goodness, (4, 8, 8)) == pytest.approx(1 / 256)
    assert C.goodness_scale(tiny_net(goodness="sumsq").units[0].goodness, (4, 8, 8)) == 1.0


def test_linear_cams_without_linear_readout():
    net = tiny_net(readout="goodness")
    with pytest.raises(ValueError, match="no linear readout"):
        C.linear_cams(net, torch.rand(1, 1, 8, 8))
    assert set(C.goodness_maps(net, torch.rand(1, 1, 8, 8))) == {"unit2", "unit3"}


# ---------------------------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def ff_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("cam") / "ff.h5"
    result = CliRunner().invoke(main, [*SMOKE, "--out", str(path)])
    assert result.exit_code == 0, result.output
    return path


def _one_error_line(result):
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output


def test_cli_cam_writes_pngs_and_group(ff_run, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "figs"
    result = CliRunner().invoke(cam, [str(ff_run), "--samples", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 2 and all(p.stat().st_size > 0 for p in pngs)
    group = read_run(ff_run).groups["cam"]
    assert group["sample"].tolist() == [0, 1] and group["label"].shape == (2,)
    for unit in ("unit1", "unit2"):  # smoke: 2 layers of 8 filters on 16×16, readout from layer 1
        assert group[f"linear_{unit}"].shape == (2, 10, 16, 16)
        assert group[f"goodness_{unit}"].shape == (2, 10, 16, 16)
    assert group["attrs"]["split"] == "test" and group["attrs"]["units"] == "unit1,unit2"


def test_cli_cam_goodness_only_run(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "g.h5"
    assert CliRunner().invoke(main, [*SMOKE, "--readout", "goodness", "--out", str(path)]).exit_code == 0
    result = CliRunner().invoke(cam, [str(path), "--samples", "1", "--out", str(tmp_path / "f"), "--split", "val"])
    assert result.exit_code == 0, result.output
    with h5py.File(path) as f:
        assert sorted(f["cam"]) == ["goodness_unit1", "goodness_unit2", "label", "pred_goodness", "sample"]
    assert len(list((tmp_path / "f").glob("*.png"))) == 1


def test_cli_cam_rejects_bp_run(tmp_path):
    path = tmp_path / "bp.h5"
    train = CliRunner().invoke(main, [*SMOKE, "--algo", "bp", "--train-limit", "50", "--out", str(path)])
    assert train.exit_code == 0, train.output
    result = CliRunner().invoke(cam, [str(path), "--samples", "2", "--out", str(tmp_path / "f")])
    _one_error_line(result)
    assert "FF" in result.output
    assert not (tmp_path / "f").exists()


def test_cli_cam_bad_input(ff_run, tmp_path):
    not_a_run = tmp_path / "x.h5"
    not_a_run.write_text("hello")
    _one_error_line(CliRunner().invoke(cam, [str(not_a_run), "--out", str(tmp_path / "f")]))
    _one_error_line(CliRunner().invoke(cam, [str(tmp_path / "missing.h5"), "--out", str(tmp_path / "f")]))
    a_file = tmp_path / "file"
    a_file.write_text("")
    _one_error_line(CliRunner().invoke(cam, [str(ff_run), "--out", str(a_file)]))
    assert CliRunner().invoke(cam, [str(ff_run), "--samples", "0", "--out", str(tmp_path / "f")]).exit_code == 2
