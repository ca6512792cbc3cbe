"""``ffneuro simulate``: target numerics (int8, ternary, TF32), IF and sigma-delta neurons, threshold
balancing, saturation counts, the /simulation/<target> group, NIR graphs with their own dynamics."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from cli_runner import invoke

from ffneuro.profiler.hardware import load_profile
from ffneuro.simulate.engine import deploy, readout_logits, run_float, run_if, run_int8, run_sigma_delta
from ffneuro.simulate.network import NetView, SimLayer, calibrate
from ffneuro.simulate.neurons import balance_scale, if_step, normalised_layer, sigma_delta_step, spike_max_pool
from ffneuro.simulate.quant import quantize, quantize_symmetric, round_tf32, symmetric_scale, ternarize
from ffneuro.simulate.targets import numerics_for

SMOKE = ["--preset", "smoke", "--epochs", "1", "--train-limit", "200", "--val-size", "100", "--filters", "4"]
TARGETS = ("loihi", "loihi2", "spinnaker2", "truenorth", "cortex-m7")


def cli(*args, ok: bool = True):
    return invoke(*args, ok=ok)


# ------------------------------------------------------------------------------------------- a toy MLP

def _toy(seed: int = 0, n: int = 600):
    """A 2-hidden-layer ReLU MLP with the RMS norm between layers, trained by backprop for a few hundred
    steps on three Gaussian blobs in 8-D with inputs in [0, 1]: (view, train x, train y, test x, test y)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(3, 8, generator=g)
    y = torch.randint(0, 3, (2 * n,), generator=g)
    x = (centres[y] + 0.12 * torch.randn(2 * n, 8, generator=g)).clamp(0, 1)
    torch.manual_seed(seed)
    l1, l2, head = torch.nn.Linear(8, 24), torch.nn.Linear(24, 24), torch.nn.Linear(24, 3)
    opt = torch.optim.Adam([*l1.parameters(), *l2.parameters(), *head.parameters()], lr=0.02)

    def rms(h):
        return h / h.pow(2).mean(1, keepdim=True).add(1e-8).sqrt()

    for _ in range(150):
        out = head(rms(torch.relu(l2(rms(torch.relu(l1(x[:n])))))))
        loss = torch.nn.functional.cross_entropy(out, y[:n])
        opt.zero_grad()
        loss.backward()
        opt.step()
    layers = [SimLayer("unit1", "linear", l1.weight.detach().clone(), l1.bias.detach().clone()),
              SimLayer("unit2", "linear", l2.weight.detach().clone(), l2.bias.detach().clone())]
    view = NetView(layers, 3, None, False, False, [1], head.weight.detach().clone(), head.bias.detach().clone(),
                   out_sizes=[24, 24])
    return view, x[:n], y[:n], x[n:], y[n:]


@pytest.fixture(scope="module")
def toy():
    return _toy()


def _acc(logits, y) -> float:
    return float((logits.argmax(1) == y).float().mean())


def test_if_conversion_matches_float_at_large_t(toy):
    """Rate-coded IF neurons with threshold balancing on Loihi's int8 weights: within 3 points of the float
    network with the same fixed norm at T = 256 (300 test samples); far from it at T = 2."""
    view, xtr, ytr, xte, yte = toy
    cal = calibrate(view, xtr, 99.9)
    float_num = numerics_for(load_profile("h100"))
    fixed = run_float(view, deploy(view, cal, float_num), cal, xte, float_num, fixed_norm=True)
    float_acc = _acc(view.logits(fixed.outs), yte)
    assert float_acc > 0.9
    loihi = numerics_for(load_profile("loihi"))
    dep = deploy(view, cal, loihi)
    long = run_if(view, dep, cal, xte, 256)
    assert abs(_acc(readout_logits(view, dep, long, loihi), yte) - float_acc) <= 0.03
    # the read-back activations approach the float ones (relative error of the layer's mean)
    for i in range(2):
        assert torch.allclose(long.neurons[i].mean(), fixed.neurons[i].clamp(max=cal.lam[i]).mean(), rtol=0.1)
    short = run_if(view, dep, cal, xte, 2)
    err_short = (short.neurons[1] - fixed.neurons[1]).abs().mean()
    err_long = (long.neurons[1] - fixed.neurons[1]).abs().mean()
    assert err_long < err_short / 4


def test_int8_per_channel_round_trip():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(4, 3, 5, 5, generator=g) * torch.tensor([1.0, 0.01, 10.0, 0.5]).view(4, 1, 1, 1)
    q = quantize_symmetric(w, 8, per_channel=True)
    scale = symmetric_scale(w, 8, per_channel=True)
    assert scale.shape == (4, 1, 1, 1)
    codes = q / scale
    assert torch.allclose(codes, codes.round(), atol=1e-4) and codes.abs().max() <= 127 + 1e-4
    assert torch.all((q - w).abs() <= scale / 2 + 1e-7)
    assert torch.allclose(q.abs().flatten(1).amax(1), w.abs().flatten(1).amax(1), rtol=1e-6)
    assert torch.equal(quantize_symmetric(q, 8, per_channel=True), q)      # a fixed point
    # one scale for the layer loses the small channel: per channel keeps it to 1/254 of its range
    per_layer = quantize_symmetric(w, 8, per_channel=False)
    small = w[1].abs().max()
    assert (per_layer[1] - w[1]).abs().max() > 5 * (q[1] - w[1]).abs().max()
    assert (q[1] - w[1]).abs().max() <= small / 254 + 1e-9


def test_ternary_and_tf32_storage():
    w = torch.tensor([[1.0, -1.0, 0.05, 2.0], [0.0, 0.0, 0.0, 0.3]])
    t = ternarize(w)
    assert set(torch.unique(t[0].abs()).tolist()) <= {0.0, float(t[0].abs().max())}
    assert t[0, 2] == 0 and t[0, 1] < 0 and t[0, 3] > 0           # small weights drop, signs stay
    assert t[1, 3] > 0 and torch.count_nonzero(t[1]) == 1
    x = torch.tensor([1.0 + 2 ** -11, 1.0 + 2 ** -10, 3.0, -1.0 - 3 * 2 ** -12])
    r = round_tf32(x)
    assert r[0] == 1.0 and r[1] == 1.0 + 2 ** -10 and r[2] == 3.0 and r[3] == -1.0 - 2 ** -10


def test_sigma_delta_sends_fewer_events_than_rate_coding(toy):
    """On a constant input a sigma-delta neuron sends its value once; an IF neuron sends a spike train."""
    view, xtr, _, xte, _ = toy
    cal = calibrate(view, xtr)
    dep = deploy(view, cal, numerics_for(load_profile("loihi")))
    rate = run_if(view, dep, cal, xte[:50], 32)
    graded = run_sigma_delta(view, dep, cal, xte[:50], 32, bits=8)
    for i in range(2):
        assert 0 < graded.events[i] < rate.events[i] / 4
    assert graded.input_events < rate.input_events
    # one neuron by hand: activation 0.3 held for 10 steps is one message; IF at threshold 1 sends 3 spikes
    sent, msgs, v, spikes = torch.zeros(1), 0, torch.zeros(1), 0
    for _ in range(10):
        sent, m = sigma_delta_step(sent, torch.tensor([0.3]), 0.01)
        msgs += int(torch.count_nonzero(m))
        v, s = if_step(v, torch.tensor([0.3]))
        spikes += int(s.sum())
    assert msgs == 1 and float(sent) == pytest.approx(0.3) and spikes == 3


def test_threshold_balancing_by_hand():
    """Two 1-neuron layers: y1 = 2x, y2 = 3·y1/s1 with the fixed norm s1 = 1 / mean|y1|; λ = the maxima."""
    x = torch.tensor([[0.5], [1.0]])
    layers = [SimLayer("unit1", "linear", torch.tensor([[2.0]]), torch.zeros(1)),
              SimLayer("unit2", "linear", torch.tensor([[3.0]]), torch.zeros(1))]
    view = NetView(layers, 1, None, False, False, [1], torch.ones(1, 1), torch.zeros(1), out_sizes=[1, 1])
    cal = calibrate(view, x, percentile=100)
    assert cal.lam[0] == pytest.approx(2.0)              # y1 = [1, 2]
    assert cal.norm_scale[0] == pytest.approx(1 / 1.5)   # mean RMS of a 1-element map is mean |y1|
    assert cal.lam[1] == pytest.approx(3 * 2 / 1.5)      # y2 = 3 · y1 / 1.5
    w1, b1 = normalised_layer(layers[0].weight, layers[0].bias, 1.0, cal.lam[0])
    w2, _ = normalised_layer(layers[1].weight, None, cal.norm_scale[0] * cal.lam[0], cal.lam[1])
    assert float(w1) == pytest.approx(1.0) and float(b1) == 0.0 and float(w2) == pytest.approx(1.0)
    # the normalised network's rates equal x, so the read-back activations are λ·x
    dep = deploy(view, cal, numerics_for(load_profile("spinnaker2")))
    trace = run_if(view, dep, cal, x, 64)
    assert torch.allclose(trace.neurons[1], cal.lam[1] * x, atol=cal.lam[1] / 64)
    # percentiles: 99.9th of 1..1000, and a silent layer keeps λ = 1
    assert balance_scale(torch.arange(1.0, 1001.0), 99.9) == pytest.approx(999.001, rel=1e-6)
    assert balance_scale(torch.zeros(10), 99.9) == 1.0


def test_saturation_counting(toy):
    view, xtr, _, xte, _ = toy
    cal = calibrate(view, xtr, percentile=100)
    mcu = numerics_for(load_profile("cortex-m7"))
    dep = deploy(view, cal, mcu)
    # on the calibration data at most the peak itself clips (int8 operands round it up by a fraction of a code)
    assert sum(run_int8(view, dep, cal, xtr, mcu).saturated) <= 2
    hot = run_int8(view, dep, cal, xte * 3, mcu)                           # inputs 3× brighter than calibration
    assert hot.input_saturated > 100 and hot.saturated[0] > 10
    # IF: a neuron driven above threshold every step fires every step, and is counted
    loihi = numerics_for(load_profile("loihi"))
    trace = run_if(view, deploy(view, cal, loihi), cal, xte * 3, 16)
    assert trace.saturated[0] > 0 and trace.input_saturated == int((xte * 3 > 1).sum())
    assert trace.saturated[0] == int((trace.neurons[0] >= cal.lam[0] - 1e-6).sum())
    values, clipped = quantize(torch.tensor([0.0, 1.0, 2.0, 5.0]), 1.0, 0, 3)
    assert clipped == 1 and values.tolist() == [0.0, 1.0, 2.0, 3.0]
    v, s = if_step(torch.zeros(2), torch.tensor([2.5, 0.4]))
    assert s.tolist() == [1.0, 0.0] and v.tolist() == pytest.approx([1.5, 0.4])   # reset by subtraction


def test_spike_max_pool_fires_as_the_busiest_neuron():
    """The pooled neuron spikes when the window's largest count grows: over T steps its count is the max."""
    g = torch.Generator().manual_seed(0)
    rates = torch.tensor([[[[0.5, 0.45], [0.1, 0.48]]]])
    counts, pooled = torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 1, 1)
    for _ in range(200):
        spikes = (torch.rand(1, 1, 2, 2, generator=g) < rates).float()
        before = counts.clone()
        counts += spikes
        out = spike_max_pool(before, counts)
        assert set(out.flatten().tolist()) <= {0.0, 1.0}
        pooled += out
    assert float(pooled) == float(counts.max())


def test_target_numerics_from_profiles():
    n = {t: numerics_for(load_profile(t)) for t in (*TARGETS, "h100")}
    assert n["loihi"].neuron == "if" and n["loihi"].weights == "int" and n["loihi"].weight_bits == 8
    assert not n["loihi"].per_channel
    assert n["loihi2"].neuron == "sigma_delta" and n["spinnaker2"].neuron == "if"
    assert n["truenorth"].weights == "ternary" and n["truenorth"].fan_in_limit == 128
    assert n["cortex-m7"].neuron == "relu" and n["cortex-m7"].per_channel and n["cortex-m7"].activation_bits == 8
    assert (n["h100"].conv_format, n["h100"].linear_format) == ("tf32", "fp32") and not n["h100"].fixed_norm
    assert numerics_for(load_profile("h100"), "bf16").conv_format == "bf16"


def _randomize_batch_norms(model: torch.nn.Module) -> None:
    """Give every batch norm statistics and an affine map far from the identity (a fresh one is nearly
    the identity, which a simulator that ignored batch norm would also reproduce)."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(c, generator=g))
            m.bias.data.copy_(torch.randn(c, generator=g) * 0.5)


def _hand_on(layer, out):
    """A unit's hand-on output from the simulator's: its trailing batch norm (folded forward) applied."""
    if layer.out_affine is None:
        return out
    a, b = layer.out_affine
    return out * a + b


CLASSWISE = {"goodness": "classwise", "loss": "cwc", "labels": "none"}


@pytest.mark.parametrize("overrides", [
    {},                                                           # smoke: conv, no pooling, FF
    {"pool": "max", "filters": 4},                                # 2×2 max pooling
    {"pool": "avg", "filters": 4, "algo": "bp"},                  # BP with its linear head
    {"arch": "fc", "widths": (12, 10)},                           # fully connected, input norm in unit 1
    # batch norm folded: 1×1 convs (no padding) make the fold exact everywhere
    {"arch": "cfse", "filters": 10, "kernel": 1, "pool": "max", **CLASSWISE},   # unit2 grouped by class
    {"arch": "cfse", "filters": 10, "kernel": 1, "pool": "max", "algo": "bp"},
    {"arch": "trifecta", "filters": 10, "kernel": 1, "pool": "max"},           # label in the image, pooled goodness
    {"arch": "trifecta", "filters": 10, "kernel": 1, **CLASSWISE},
    {"arch": "dwsep", "filters": 4, "pool": "max"},               # two layers of neurons per unit
    # a readout without a bias (loeweX's zero-started classifier, hinton-fc-mnist), plain and batch-norm folded
    {"arch": "fc", "widths": (12, 10), "linear_init": "zero"},
    {"arch": "cfse", "filters": 10, "kernel": 1, "pool": "max", "linear_init": "zero", **CLASSWISE},
])
def test_view_reproduces_the_trained_network(overrides):
    """The chip's view of a network (its layers, pools, norm, folded batch norms and readouts), run in fp32
    with the per-sample norm, gives the network's own predictions, goodness inputs and hand-on outputs:
    nothing is lost in the extraction."""
    from ffneuro.models import build_model
    from ffneuro.presets import resolve_config
    from ffneuro.simulate.network import net_view

    torch.manual_seed(0)
    config = resolve_config("smoke", overrides)
    model = build_model(config, (1, 16, 16), 10).eval()
    _randomize_batch_norms(model)
    if getattr(model, "linear", None) is not None and model.linear.linear.bias is None:
        torch.nn.init.normal_(model.linear.linear.weight)    # zero-started: give its predictions something to say
    view = net_view(model)
    x = torch.rand(6, 1, 16, 16)
    fp32 = numerics_for(load_profile("h100"), "fp32")
    fp32 = type(fp32)(**{**fp32.__dict__, "conv_format": "fp32"})
    cal = calibrate(view, view.calibration_rows(x, torch.arange(6)))
    dep = deploy(view, cal, fp32)
    assert not any(layer.approx_border for layer in view.layers)
    units = [i for i, layer in enumerate(view.layers) if layer.tap]
    assert len(units) == config.layers
    for readout in view.readouts():
        rows = view.rows(x, readout)
        trace = run_float(view, dep, cal, rows, fp32, fixed_norm=False)
        if readout == "goodness":
            ours = view.goodness(trace.neurons, 6)
            assert torch.allclose(ours, model.goodness_scores(x), rtol=1e-5, atol=1e-5)
        else:
            assert torch.equal(readout_logits(view, dep, trace, fp32).argmax(1), model.predict(x, "linear"))
            with torch.no_grad():
                for i, step in zip(units, model.walk(rows), strict=True):   # a step's y lives until the next
                    layer = view.layers[i]
                    assert torch.allclose(layer.goodness_input(trace.neurons[i]), step.y, rtol=1e-5, atol=1e-5)
                    assert torch.allclose(_hand_on(layer, trace.outs[i]), step.out, rtol=1e-5, atol=1e-5)
    if config.arch in ("cfse", "trifecta"):
        # the batch norms matter: without them the first unit's goodness input is another tensor
        block = (model.units[0].block if hasattr(model, "units") else model.blocks[0])
        with torch.no_grad():
            bare = torch.relu(block.conv(view.rows(x, view.readouts()[-1])))
            if block.spec.pooled:
                bare = torch.nn.functional.max_pool2d(bare, 2)
            assert not torch.allclose(bare, block(view.rows(x, view.readouts()[-1])), atol=1e-2)


@pytest.mark.parametrize("arch, first", [("trifecta", 0), ("cfse", 1)])
def test_batch_norm_folded_under_padding_is_approximate_only_at_the_border(arch, first):
    """A batch norm's shift folded into a zero-padded 3×3 conv (trifecta: its own input norm; cfse: the unit
    before's norm into unit 2) is exact inside the map and off at the one-pixel border, as ffneuro export
    folds it; the layer says so and the simulation's notes name it."""
    from ffneuro.models import build_model
    from ffneuro.presets import resolve_config
    from ffneuro.simulate.network import net_view
    from ffneuro.simulate.run import _fold_notes

    torch.manual_seed(0)
    config = resolve_config("smoke", {"arch": arch, "filters": 10, "kernel": 3, "pool": "none",
                                      "block_options": {"group_at": ()} if arch == "cfse" else None, **CLASSWISE})
    model = build_model(config, (1, 16, 16), 10).eval()
    _randomize_batch_norms(model)
    if getattr(model, "linear", None) is not None and model.linear.linear.bias is None:
        torch.nn.init.normal_(model.linear.linear.weight)    # zero-started: give its predictions something to say
    view = net_view(model)
    assert [layer.approx_border for layer in view.layers] == [i >= first for i in range(2)]
    assert "approximate at the border pixels of " + ", ".join(view.layers[i].name for i in range(first, 2)) \
        in " ".join(_fold_notes(view))
    x = torch.rand(4, 1, 16, 16)
    h = a = x
    with torch.no_grad():
        for i, (layer, unit) in enumerate(zip(view.layers, model.units)):
            y = unit.block(h)                        # the trained unit, batch norm unfolded
            neurons = torch.relu(layer.op(a))        # the simulator's layer, batch norm folded
            mine = layer.goodness_input(neurons)
            inner = (slice(None), slice(None), slice(i + 1, -(i + 1)), slice(i + 1, -(i + 1)))
            assert torch.allclose(mine[inner], y[inner], atol=1e-5)
            if i >= first:
                assert (mine - y).abs().max() > 1e-2
            h, a = unit.block.hand_on(y), layer.pool_values(neurons)


def _pads_first() -> bool:
    from ffneuro.blocks.trifecta import TrifectaBlock

    return "pad_first" in getattr(TrifectaBlock, "option_names", ())


@pytest.mark.skipif(not _pads_first(), reason="the trifecta block has no pad_first option in this tree")
def test_trifecta_padded_before_its_norm_folds_exactly():
    """With pad_first (zeros padded before the batch norm) the folded 3×3 conv reproduces the block
    everywhere, borders included: no layer is approximate and the goodness and outputs are the module's."""
    from ffneuro.models import build_model
    from ffneuro.presets import resolve_config
    from ffneuro.simulate.network import net_view

    torch.manual_seed(0)
    config = resolve_config("smoke", {"arch": "trifecta", "filters": 10, "kernel": 3, "pool": "none",
                                      "block_options": {"pad_first": True}, **CLASSWISE})
    model = build_model(config, (1, 16, 16), 10).eval()
    _randomize_batch_norms(model)
    if getattr(model, "linear", None) is not None and model.linear.linear.bias is None:
        torch.nn.init.normal_(model.linear.linear.weight)    # zero-started: give its predictions something to say
    view = net_view(model)
    assert not any(layer.approx_border for layer in view.layers)
    x = torch.rand(4, 1, 16, 16)
    a = x
    with torch.no_grad():
        for layer, step in zip(view.layers, model.walk(x), strict=True):
            neurons = torch.relu(layer.op(a))
            assert torch.allclose(layer.goodness_input(neurons), step.y, atol=1e-5)
            a = layer.pool_values(neurons)
        assert torch.allclose(view.goodness([torch.relu(view.layers[0].op(x)),
                                             torch.relu(view.layers[1].op(torch.relu(view.layers[0].op(x))))], 4),
                              model.goodness_scores(x), atol=1e-4)


# ------------------------------------------------------------------------------------------- the CLI

@pytest.fixture(scope="module")
def run_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sim") / "ff.h5"
    cli("train", *SMOKE, "--out", path, "-q")
    return path


@pytest.mark.parametrize("target", TARGETS)
def test_cli_prints_and_stores(run_file, target):
    result = cli("simulate", run_file, "--hw", target, "--samples", "10", "--timesteps", "4", "--readout", "linear")
    out = result.stdout
    assert "readout" in out and "float" in out and "deployed" in out
    assert "\nlinear " in out and "\nunit1 " in out and "\nunit2 " in out and "\ninput " in out
    assert f"group simulation/{target}" in out
    with h5py.File(run_file, "r") as f:
        g = f[f"simulation/{target}"]
        assert g["layer_names"].asstr()[()].tolist() == ["input", "unit1", "unit2"]
        assert g["activity"].dtype == np.float64 and g["activity"].shape == (3,)
        assert np.all((g["activity"][()] >= 0) & (g["activity"][()] <= 1))
        assert g.attrs["timesteps"] == (1 if target == "cortex-m7" else 4) and g.attrs["samples"] == 10
        assert 0 <= g.attrs["deployed_acc"] <= 1 and 0 <= g.attrs["float_acc"] <= 1
        assert g["saturated"].shape == (3,)


def test_cli_json_goodness_and_other_targets_kept(run_file):
    cli("simulate", run_file, "--hw", "loihi", "--samples", "5", "--timesteps", "2", "--readout", "linear")
    result = cli("simulate", run_file, "--hw", "truenorth", "--samples", "5", "--timesteps", "4", "--json")
    data = json.loads(result.stdout)
    assert data["stored"] and set(data["accuracy"]) == {"goodness", "linear"}
    assert [layer["name"] for layer in data["layers"]] == ["input", "unit1", "unit2"]
    # smoke's unit2 reads 4 channels × 7×7 = 196 inputs, above TrueNorth's 128 input lines per neuron
    assert [layer["fan_in_exceeded"] for layer in data["layers"]] == [False, False, True]
    with h5py.File(run_file, "r") as f:
        assert {"loihi", "truenorth"} <= set(f["simulation"])
    from ffneuro.store import read_run
    assert read_run(run_file).groups["simulation"]["truenorth"]["layer_names"] == ["input", "unit1", "unit2"]


@pytest.mark.parametrize("args, message", [
    (["--hw", "nochip"], "nochip"),
    (["--hw", "loihi", "--timesteps", "0"], "--timesteps must be >= 1"),
    (["--hw", "loihi", "--samples", "0"], "--samples must be >= 1"),
    (["--hw", "horowitz45"], "reference"),
])
def test_cli_bad_input_is_one_error_line(run_file, args, message):
    result = cli("simulate", run_file, *args, "--no-store", ok=False)
    assert result.exit_code != 0
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], result.output


# ------------------------------------------------------------------- batch-norm blocks, runs of them

#: tiny twins of the fast presets on the synthetic set: cfse (conv → ReLU → 2×2 max pool → batch norm, unit 2
#: grouped by class) and trifecta (batch norm → conv → ReLU, no pooling: mnist-fast-deploy's block)
BN_RUNS = {
    "cfse": ["--preset", "mnist-fast", "--pool-at", "1,2", "--group-at", "2"],
    "trifecta": ["--preset", "mnist-fast-deploy"],
}
ALL_TARGETS = (*TARGETS, "h100")


@pytest.fixture(scope="module", params=sorted(BN_RUNS))
def bn_run(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("sim-bn") / f"{request.param}.h5"
    cli("train", *BN_RUNS[request.param], "--dataset", "synthetic", "--layers", "2", "--widths", "10,20",
        "--readout-from", "2", "--train-limit", "300", "--val-size", "100", "--epochs", "2", "--out", path, "-q", ok=True)
    return request.param, path


def test_batch_norm_runs_simulate_on_every_target(bn_run):
    """A trained cfse / trifecta run simulates on every target; its float accuracy is the run's own
    evaluation (ffneuro eval, all 200 test images); the dense targets stay near the float network as
    deployed (folded batch norm); the CLI prints and stores the units' activity."""
    from ffneuro.simulate import simulate_run_file

    arch, path = bn_run
    evaluated = json.loads(cli("eval", path, "--json", ok=True).stdout)
    dense = simulate_run_file(path, load_profile("cortex-m7"), samples=200)
    assert dense.samples == 200 and dense.float_acc == pytest.approx(evaluated["accuracy"], abs=1e-6)
    assert dense.float_acc["linear"] > 0.15           # trained (chance: 0.1)
    assert abs(dense.deployed_acc["linear"] - dense.fixed_norm_acc["linear"]) <= 0.05
    assert any("batch norm: folded" in n for n in dense.notes)
    for target in ALL_TARGETS:
        r = simulate_run_file(path, load_profile(target), samples=10, timesteps=4)
        assert r.layer_names == ["input", "unit1", "unit2"] and set(r.deployed_acc) == {"goodness", "linear"}
        assert all(0 <= a <= 1 for a in r.deployed_acc.values())
        assert all(a > 0 for a in r.activity[1:]), (target, r.activity)
        if arch == "cfse":   # unit 2 is grouped by class: each neuron reads its group's 1 channel × 3 × 3
            assert r.fan_in == [0, 9, 9]
    result = cli("simulate", path, "--hw", "loihi2", "--samples", "10", "--timesteps", "4", ok=True)
    assert "\nunit1 " in result.stdout and "\nunit2 " in result.stdout and "batch norm: folded" in result.stdout
    with h5py.File(path, "r") as f:
        assert f["simulation/loihi2"]["layer_names"].asstr()[()].tolist() == ["input", "unit1", "unit2"]


def test_residual_run_is_refused_in_one_line_and_its_nir_export_simulates(tmp_path):
    """A residual unit's skip add is refused in one line naming the block and the way that works: its NIR
    export, which ffneuro simulate runs for activity."""
    path = tmp_path / "res.h5"
    cli("train", *SMOKE, "--arch", "residual", "--train-limit", "60", "--out", path, "-q", ok=True)
    result = cli("simulate", path, "--hw", "loihi", "--samples", "5", ok=False)
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code != 0 and len(lines) == 1 and lines[0].startswith("Error:"), result.output
    assert "'residual'" in lines[0] and "ffneuro export" in lines[0] and "NET.nir" in lines[0]
    pytest.importorskip("nir")
    cli("export", path, "--format", "nir", "--out", tmp_path / "res.nir", "--images", "10", ok=True)
    out = cli("simulate", tmp_path / "res.nir", "--hw", "loihi", "--analog", "--dt", "1", "--samples", "3",
              "--timesteps", "8", "--json", ok=True)
    data = json.loads(out.stdout)
    assert any(layer["activity"] > 0 for layer in data["layers"] if layer["type"] == "IF")


def test_cli_run_without_weights_is_one_error_line(run_file, tmp_path):
    bare = tmp_path / "bare.h5"
    bare.write_bytes(run_file.read_bytes())
    with h5py.File(bare, "r+") as f:
        del f["weights"]
    result = cli("simulate", bare, "--hw", "loihi", ok=False)
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code != 0 and len(lines) == 1 and lines[0].startswith("Error:") and "weights" in lines[0]


# ------------------------------------------------------------------------------------------- NIR graphs

nir = pytest.importorskip("nir", reason="NIR graphs need the nir package (pip install 'ffneuro[nir]')")


def _lif_graph(recurrent: bool = False):
    rng = np.random.RandomState(0)
    dt, beta, alpha = 1e-4, 0.9, 0.8
    tau = dt / (1 - beta)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([4])}),
        "fc1": nir.Affine(weight=rng.randn(6, 4).astype(np.float32), bias=np.full(6, 0.1, np.float32)),
        "lif1": nir.LIF(tau=np.full(6, tau), r=np.full(6, tau / dt), v_leak=np.zeros(6), v_threshold=np.ones(6),
                        v_reset=np.zeros(6)),
        "fc2": nir.Linear(weight=rng.randn(3, 6).astype(np.float32)),
        "cuba": nir.CubaLIF(tau_syn=np.full(3, dt / (1 - alpha)), tau_mem=np.full(3, tau), r=np.full(3, tau / dt),
                            v_leak=np.zeros(3), v_threshold=np.ones(3), v_reset=np.zeros(3),
                            w_in=np.full(3, 1 / (1 - alpha))),
        "output": nir.Output(output_type={"output": np.array([3])}),
    }
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "cuba"), ("cuba", "output")]
    if recurrent:
        nodes["rec"] = nir.Linear(weight=-0.5 * np.eye(6, dtype=np.float32))
        edges += [("lif1", "rec"), ("rec", "lif1")]
    return nir.NIRGraph(nodes=nodes, edges=edges), beta, alpha


def test_nir_lif_and_cubalif_match_snntorch():
    """The same graph in snntorch (Leaky with reset to zero: NIR's v_reset; Synaptic up to each neuron's first
    spike, since snntorch's Synaptic also zeroes its synaptic current on reset, which NIR's CubaLIF does not)."""
    snn = pytest.importorskip("snntorch", reason="the cross-check needs snntorch (pip install snntorch)")
    from ffneuro.simulate.nir_sim import run_graph

    graph, beta, alpha = _lif_graph()
    x = (torch.rand(5, 30, 4, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    outs, _ = run_graph(graph, x)
    fc1 = torch.nn.Linear(4, 6)
    fc1.weight.data, fc1.bias.data = torch.tensor(graph.nodes["fc1"].weight), torch.tensor(graph.nodes["fc1"].bias)
    fc2 = torch.nn.Linear(6, 3, bias=False)
    fc2.weight.data = torch.tensor(graph.nodes["fc2"].weight)
    lif, syn = snn.Leaky(beta=beta, reset_mechanism="zero"), snn.Synaptic(alpha=alpha, beta=beta, reset_mechanism="zero")
    mem1, (cur2, mem2) = lif.init_leaky(), syn.init_synaptic()
    ref1, ref2 = [], []
    with torch.no_grad():
        for t in range(30):
            s1, mem1 = lif(fc1(x[:, t]), mem1)
            s2, cur2, mem2 = syn(fc2(s1), cur2, mem2)
            ref1.append(s1)
            ref2.append(s2)
    ours1, theirs1 = torch.stack(outs["lif1"]), torch.stack(ref1)
    assert torch.equal(ours1, theirs1) and 0 < float(ours1.mean()) < 1
    ours2, theirs2 = torch.stack(outs["cuba"]), torch.stack(ref2)
    first = (theirs2.cumsum(0) > 0).int().cumsum(0) <= 1      # up to and including each neuron's first spike
    assert torch.equal(ours2[first], theirs2[first]) and float(theirs2.sum()) > 0


def test_nir_if_li_i_delay_by_hand():
    from ffneuro.simulate.nir_sim import run_graph

    dt = 1e-3
    nodes = {"input": nir.Input(input_type={"input": np.array([1])}),
             "if": nir.IF(r=np.array([100.0]), v_threshold=np.array([1.0]), v_reset=np.array([0.0])),
             "li": nir.LI(tau=np.array([0.01]), r=np.array([1.0]), v_leak=np.array([0.0])),
             "i": nir.I(r=np.array([1000.0])),
             "delay": nir.Delay(delay=np.array([2 * dt])),
             "output": nir.Output(output_type={"output": np.array([1])})}
    edges = [("input", "if"), ("input", "li"), ("input", "i"), ("input", "delay"), ("if", "output")]
    x = torch.ones(1, 6, 1) * 4.0
    outs, _ = run_graph(nir.NIRGraph(nodes=nodes, edges=edges), x, dt)
    # IF: v grows by dt·r·I = 0.4 a step: 0.4, 0.8, 1.2 -> spike, reset to 0, ...
    assert [float(o) for o in outs["if"]] == [0, 0, 1, 0, 0, 1]
    assert float(outs["li"][0]) == pytest.approx(0.1 * 4.0)                 # dt/tau · r · I from 0
    assert float(outs["li"][1]) == pytest.approx(0.4 + 0.1 * (4.0 - 0.4))
    assert [float(o) for o in outs["i"]] == pytest.approx([4.0 * k for k in range(1, 7)])
    assert [float(o) for o in outs["delay"]] == [0, 0, 4, 4, 4, 4]


def test_nir_recurrent_graph_and_cli(tmp_path):
    from ffneuro.simulate.nir_sim import simulate_graph

    graph, _, _ = _lif_graph(recurrent=True)
    plain = simulate_graph(_lif_graph()[0], None, timesteps=20, samples=4)
    rec = simulate_graph(graph, None, timesteps=20, samples=4)
    i_plain, i_rec = plain.layer_names.index("lif1"), rec.layer_names.index("lif1")
    assert rec.activity[i_rec] < plain.activity[i_plain]     # self-inhibition lowers the LIF layer's rate
    assert plain.layer_names[0] == "input" and plain.activity[0] == pytest.approx(0.1, abs=0.05)
    path = tmp_path / "g.nir"
    nir.write(str(path), graph)
    out = cli("simulate", path, "--hw", "loihi", "--timesteps", "10", "--samples", "3").stdout
    assert "lif1" in out and "LIF" in out and "Poisson" in out
    npz = tmp_path / "in.npz"
    np.savez(npz, input=np.ones((2, 5, 4), np.float32))
    data = json.loads(cli("simulate", path, "--hw", "loihi", "--input", npz, "--json").stdout)
    assert data["timesteps"] == 5 and data["samples"] == 2 and data["layers"][0]["activity"] == 1.0
    bad = cli("simulate", path, "--hw", "loihi", "--input", tmp_path / "nope.npz", ok=False)
    assert bad.exit_code != 0 and bad.output.strip().startswith("Error:") and len(bad.output.strip().splitlines()) == 1
