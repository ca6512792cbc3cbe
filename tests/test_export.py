"""``ffneuro export``: the deployable NIR graph computes what the trained network computes.

Calibrated on one image, the fixed scale that replaces the RMS normalisation is that image's own, so on
that image the exported graph must give the float network's logits and goodness exactly: this checks the
batch-norm folding (after a ReLU, and the trifecta's before a conv), the RMS scale, the SumPool rewriting,
the residual add and the readout numerically, with no optional package but nir."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

pytest.importorskip("nir")

from cli_runner import invoke as _cli

from ffneuro.deploy.export import deploy_network, graph_forward, read_graph  # noqa: E402
from ffneuro.errors import ConfigError  # noqa: E402
from ffneuro.models import build_model  # noqa: E402
from ffneuro.presets import PRESETS, resolve_config  # noqa: E402
from ffneuro.spec.nir_io import read_nir  # noqa: E402

SHAPE, CLASSES = (1, 16, 16), 10


def _model(preset: str, **overrides):
    torch.manual_seed(0)
    if preset == "mnist-fast-deploy":     # the paper's conv block with average pooling unless told otherwise
        overrides = {"arch": "conv", "pool": "avg", **overrides}
    layers = overrides.get("layers")
    if layers is not None:
        overrides.setdefault("readout_from", layers)
        if "trifecta" in preset:
            overrides.setdefault("unit_epochs", None)
    config = resolve_config(preset, {"dataset": "synthetic", **overrides})
    model = build_model(config, SHAPE, CLASSES).eval()
    for m in model.modules():        # batch norm with statistics and affine parameters far from identity
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            c = m.num_features
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(-1.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
            assert c > 0
    return model, config


def _image(n: int = 1, seed: int = 1) -> torch.Tensor:
    return torch.rand((n, *SHAPE), generator=torch.Generator().manual_seed(seed))


def _logits(model, x):
    with torch.no_grad():
        if hasattr(model, "head"):
            return model(x).double()
        return model.linear(model.features(model.readout_input(x))).double()


def _exact(model, config, **kw):
    """Deploy calibrated on one image; the graph's logits (and class-wise goodness) on it vs the float model's."""
    x = _image()
    calib = model.activity_input(x)
    want = _logits(model, x)
    deployed = deploy_network(model, config.to_dict(), calib, **kw)
    model.float()
    graph = deployed.graph()
    got, rec = graph_forward(graph, model.readout_input(x), record=tuple(k for k, _, _ in deployed.goodness_nodes.values()))
    return deployed, graph, got, want, rec


def _kinds(graph) -> list[str]:
    return [type(n).__name__ for n in graph.nodes.values()]


def test_conv_avg_pool_rms_and_a_readout_over_two_units_are_exact_on_the_calibration_image():
    model, config = _model("mnist-fast-deploy", layers=2, widths=(10, 20), pool_at=(1,), readout_from=1)
    x = _image()
    deployed, graph, got, want, rec = _exact(model, config)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5), (got - want).abs().max()
    kinds = _kinds(graph)
    assert "SumPool2d" in kinds and "AvgPool2d" not in kinds
    assert kinds.count("IF") == 2
    # one readout node per unit it reads, summed by the Output node
    assert {"readout_unit1", "readout_unit2"} <= set(graph.nodes)
    assert sum(1 for _, d in graph.edges if d == "output") == 2
    # the next conv's weights carry the RMS scale of this image and the sum pool's 1/4
    with torch.no_grad():
        pooled = torch.nn.functional.avg_pool2d(model.units[0].block(x), 2)
    c = float(1 / pooled.pow(2).mean().add(1e-8).sqrt())
    w2 = model.units[1].block.conv.weight.detach().double().numpy()
    np.testing.assert_allclose(graph.nodes["unit2"].weight, w2 * c / 4, rtol=1e-5)
    assert any("SumPool2d" in line for line in deployed.changes)
    assert any("RMS normalisation" in line for line in deployed.changes)
    # class-wise goodness read from the IF neurons equals the float network's
    scores = sum(model.units[i].scores(rec[deployed.goodness_nodes[u.name][0]].float())
                 for i, u in enumerate(model.units))
    torch.testing.assert_close(scores, model.goodness_scores(x), rtol=1e-5, atol=1e-6)


def test_the_rms_scale_is_the_mean_over_the_calibration_images():
    model, config = _model("mnist-fast-deploy", layers=2, widths=(10, 20), pool_at=(1,))
    x = _image(8)
    deployed = deploy_network(model, config.to_dict(), x)
    model.float()
    with torch.no_grad():
        pooled = torch.nn.functional.avg_pool2d(model.units[0].block(x), 2)
    c = float(1 / pooled.flatten(1).pow(2).mean(1).add(1e-8).sqrt().mean())
    w2 = model.units[1].block.conv.weight.detach().double().numpy()
    np.testing.assert_allclose(deployed.weights["unit2"]["weight"], w2 * c / 4, rtol=1e-5)
    # per-sample normalisation is gone: other images' logits differ from the float network's a little
    got, _ = graph_forward(deployed.graph(), x)
    assert (got - _logits(model, x)).abs().max() > 1e-4


def test_batch_norm_after_relu_folds_into_the_next_conv_and_the_readout():
    # cfse without pooling: conv → ReLU → batch norm; kernel 1: no padding, so the fold is exact
    model, config = _model("mnist-fast", layers=2, widths=(10, 20), kernel=1, pool="none", pool_at=None)
    deployed, graph, got, want, _ = _exact(model, config)
    assert "BatchNorm" not in " ".join(_kinds(graph))
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5), (got - want).abs().max()
    assert any(line.startswith("batch norm: folded") and "approximate" not in line for line in deployed.changes)


def test_batch_norm_shift_under_padding_is_reported_approximate():
    model, config = _model("mnist-fast", layers=2, widths=(10, 20), pool="none", pool_at=None)
    deployed, _, got, want, _ = _exact(model, config)
    line = next(line for line in deployed.changes if line.startswith("batch norm"))
    assert "approximate at the zero-padded border pixels of unit2" in line
    assert (got - want).abs().max() > 1e-4


def test_trifecta_batch_norm_before_the_conv_folds_into_it():
    model, config = _model("trifecta-mnist", layers=2, widths=(8, 16), kernel=1, pool="none", pool_at=(1,),
                           labels="fourier1")
    deployed, graph, got, want, _ = _exact(model, config)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5), (got - want).abs().max()
    # the label embedding is not in the graph: its patterns are in the metadata, as the input's description says
    assert deployed.metadata["label_patterns"].shape[0] == CLASSES
    assert "one pass per class" in deployed.metadata["input"]


def _trifecta_border_gap(pad_first: bool) -> tuple[float, float, float, float, str]:
    """A 2-unit trifecta network (3×3 'same' convs, batch norm far from identity) exported; on 4 images, the
    graph's neurons vs the torch network's: unit 1's (it reads the raw image) on the map's one-pixel border
    and inside it, both units' anywhere, the logits; and the export's batch-norm line."""
    model, config = _model("mnist-fast-deploy", arch="trifecta", pool="none", pool_at=None, layers=2, widths=(10, 20),
                           readout_from=1, block_options={"pad_first": pad_first})
    assert all(u.block.spec.pad_first is pad_first for u in model.units)
    x = _image(4, seed=2)
    deployed = deploy_network(model, config.to_dict(), model.activity_input(_image(4)))
    model.float()
    keys = {name: key for name, (key, _, _) in deployed.goodness_nodes.items()}
    got, rec = graph_forward(deployed.graph(), model.readout_input(x), record=tuple(keys.values()))
    border = torch.ones(SHAPE[1:], dtype=torch.bool)
    border[1:-1, 1:-1] = False
    diffs = []
    h = model.readout_input(x)
    with torch.no_grad():
        for unit in model.units:
            y = unit(h)
            _, a, b = deployed.goodness_nodes[unit.name]
            diffs.append((rec[keys[unit.name]] * a.double() + b.double() - y.double()).abs())
            h = unit.hand_on(y)
    logits = float((got - _logits(model, x)).abs().max())
    line = next(line for line in deployed.changes if line.startswith("batch norm"))
    return (float(diffs[0][..., border].max()), float(diffs[0][..., ~border].max()), max(float(d.max()) for d in diffs),
            logits, line)


def test_trifecta_padded_before_its_batch_norm_exports_exactly_at_the_borders():
    border, inside, anywhere, logits, line = _trifecta_border_gap(pad_first=True)
    assert border < 1e-5 and inside < 1e-5 and anywhere < 1e-5 and logits < 1e-5, (border, inside, anywhere, logits)
    assert "approximate" not in line and "exact at the borders of unit1, unit2" in line, line


def test_trifecta_padding_after_its_batch_norm_exports_exactly_only_inside_the_map():
    # the Trifecta's own order (the default, the trifecta-* presets): the conv pads the normalised map with
    # zeros, which the folded bias shifts; unit 1 differs at its border pixels only, and the network's logits
    border, inside, _, logits, line = _trifecta_border_gap(pad_first=False)
    assert inside < 1e-5, inside
    assert border > 1e-2 and logits > 1e-3, (border, logits)
    assert "approximate at the zero-padded border pixels of unit1, unit2" in line, line


def test_the_deploy_presets_pad_before_the_batch_norm_and_the_trifecta_presets_do_not():
    from ffneuro.blocks import layer_specs

    for name in ("mnist-fast-deploy", "cifar10-fast-deploy", "trifecta-mnist", "trifecta-cifar10"):
        config = resolve_config(name, {})
        shape = (3, 32, 32) if "cifar" in name else (1, 28, 28)
        specs = layer_specs(config, shape, num_classes=CLASSES)
        assert {s.pad_first for s in specs} == {name.endswith("-deploy")}, name
    # another block type leaves the preset's trifecta option behind
    assert resolve_config("mnist-fast-deploy", {"arch": "conv"}).block_options is None
    with pytest.raises(ConfigError, match="pad_first is true or false"):
        layer_specs(resolve_config("mnist-fast-deploy", {"block_options": {"pad_first": 1}}), (1, 28, 28),
                    num_classes=CLASSES)


@pytest.mark.parametrize("arch", ["residual", "dwsep"])
def test_units_with_several_weighted_nodes(arch):
    model, config = _model("mnist-fast-deploy", arch=arch, layers=2, widths=(10, 10), pool_at=(1,))
    deployed, graph, got, want, _ = _exact(model, config)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5), (got - want).abs().max()
    assert "unit1.0" in deployed.weights and "unit2.0" in deployed.weights
    if arch == "residual":    # the identity skip of unit 2: two edges into its last ReLU, which NIR sums
        merges = [d for d in graph.nodes if sum(1 for _, dst in graph.edges if dst == d) == 2 and d != "output"]
        assert merges


def test_bp_run_with_its_head():
    model, config = _model("mnist-fast-deploy", algo="bp", layers=2, widths=(10, 20), pool_at=(1,), labels="none")
    _, graph, got, want, _ = _exact(model, config)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5)
    assert type(graph.nodes["readout"]).__name__ == "Affine"


def test_max_pooling_is_refused_naming_the_deployable_preset():
    model, config = _model("mnist-fast", layers=2, widths=(10, 20))
    with pytest.raises(ConfigError, match="max-pools.*--preset mnist-fast-deploy"):
        deploy_network(model, {**config.to_dict(), "dataset": "mnist"}, _image())


def test_the_deploy_preset_exports_with_its_batch_norm_folded():
    model, config = _model("mnist-fast-deploy", arch="trifecta", pool="none", pool_at=None, layers=2, widths=(10, 20))
    deployed = deploy_network(model, config.to_dict(), _image(4))
    model.float()
    kinds = _kinds(deployed.graph())
    assert kinds.count("Conv2d") == 2 and "Affine" in kinds and not any("Pool" in k for k in kinds)
    assert any(line.startswith("batch norm: folded") for line in deployed.changes)


def test_every_preset_deploys_or_is_refused_naming_a_deployable_preset():
    shapes = {"mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28), "cifar10": (3, 32, 32), "cifar100": (3, 32, 32),
              "synthetic": SHAPE}
    for name in PRESETS:
        config = resolve_config(name, {})
        classes = 100 if config.dataset == "cifar100" else CLASSES
        model = build_model(config, shapes[config.dataset], classes).eval()
        x = torch.rand(2, *shapes[config.dataset])
        if config.pool == "max":
            with pytest.raises(ConfigError, match=r"max-pools.*--preset \S+-deploy"):
                deploy_network(model, config.to_dict(), x)
        elif (config.block_options or {}).get("norm") in ("group", "layer"):   # deeperforward-*: no group norm in NIR
            with pytest.raises(ConfigError, match="cannot deploy a group_norm node"):
                deploy_network(model, config.to_dict(), model.activity_input(x))
        else:
            deployed = deploy_network(model, config.to_dict(), model.activity_input(x))
            model.float()
            out, _ = graph_forward(deployed.graph(), model.readout_input(x))
            assert out.shape == (2, classes), name
    assert {"mnist-fast-deploy", "cifar10-fast-deploy"} <= set(PRESETS)


def test_int8_file_weights_on_the_grid_scales_in_metadata_and_readable_by_old_readers(tmp_path):
    model, config = _model("mnist-fast-deploy", layers=2, widths=(10, 20), pool_at=(1,))
    deployed = deploy_network(model, config.to_dict(), _image(4), precision="int8")
    path = tmp_path / "net.nir"
    deployed.write(path)
    graph = read_graph(path)
    for key in ("unit1", "unit2", "readout"):
        node = graph.nodes[key]
        scale = np.asarray(graph.metadata["int8_scales"][key], dtype=np.float64)
        q = np.asarray(node.weight, dtype=np.float64).reshape(len(scale), -1) / scale[:, None]
        np.testing.assert_allclose(q, np.round(q), atol=1e-3)
        assert np.abs(q).max() <= 127.001 and np.abs(q).max() >= 126.99
    assert any(line.startswith("int8:") for line in deployed.changes)
    with h5py.File(path) as f:   # nir <= 1.0.4 (sinabs) refuses IF(v_reset=...): a zero reset is left out
        ifs = [g for g in f["node/nodes"].values() if g["type"][()] == b"IF"]
        assert ifs and not any("v_reset" in g for g in ifs)
    spec = read_nir(path)        # ffneuro reads its own export back: same shapes and MACs
    assert spec.macs == deployed.spec.macs
    assert spec.output_shape == (CLASSES,)




def test_cli_export_prints_each_change_and_the_accuracy_change(tmp_path):
    run = tmp_path / "run.h5"
    r = _cli("-q", "train", "--preset", "mnist-fast-deploy", "--dataset", "synthetic", "--widths", "10,20,40",
             "--arch", "conv", "--pool", "avg", "--epochs", "1", "--out", run)
    assert r.exit_code == 0, r.output
    out = tmp_path / "net.nir"
    r = _cli("export", run, "--format", "nir", "--out", out, "--precision", "int8", "--images", "50",
             "--calibration", "100")
    assert r.exit_code == 0, r.output
    text = r.stdout
    for fragment in ("SumPool2d", "RMS normalisation", "Affine", "int8:", "linear readout on 50 test images: float",
                     "goodness readout on 50 test images: float"):
        assert fragment in text, text
    assert out.exists() and read_nir(out).output_shape == (CLASSES,)
    r = _cli("export", run, "--out", out)
    assert r.exit_code == 1 and r.output.strip().startswith("Error:") and "--force" in r.output


def test_cli_export_of_a_max_pooling_run_is_one_error_line(tmp_path):
    run = tmp_path / "run.h5"
    r = _cli("-q", "train", "--preset", "smoke", "--pool", "max", "--epochs", "1", "--train-limit", "100",
             "--out", run)
    assert r.exit_code == 0, r.output
    r = _cli("export", run, "--out", tmp_path / "net.nir")
    assert r.exit_code == 1
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and "max-pools" in lines[0] and "--preset mnist-fast-deploy" in lines[0] and "--pool avg" in lines[0]
    assert not (tmp_path / "net.nir").exists()
