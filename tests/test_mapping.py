"""Each mapping rule on a tiny network whose answer is computed by hand, plus precision as executed,
static power, on-chip learning state and uncertainty ranges."""
from __future__ import annotations

import itertools
import textwrap

import pytest

from ffneuro.accounting import LinearSpec
from ffneuro.blocks.conv import ConvBlock
from ffneuro.presets import resolve_config
from ffneuro.profiler import (
    SPREAD,
    ff_vs_bp,
    load_profile,
    map_units,
    profile_config,
    profile_graph,
    profile_network,
    rank,
)
from ffneuro.spec import Conv2d, sequential

PJ = 1e-12


def chip(tmp_path, *, cores=8, limits="", mapping='conv_weights = { value = "shared", source = "t", basis = "specified" }',
         extra="", name="toy"):
    """A minimal neuromorphic profile with the given per-core limits and [mapping]."""
    text = textwrap.dedent(f"""\
        schema = "ffneuro.hw"
        schema_version = 1
        name = "{name}"
        description = "a toy chip"
        kind = "neuromorphic"
        on_chip_learning = false
        supports_training = true
        precisions = ["int8"]

        [cores]
        count = {{ value = {cores}, unit = "1", source = "t", basis = "specified" }}
        """) + limits + textwrap.dedent("""
        [compute.int8]
        scope = "op"
        mac = { value = 1, unit = "pJ", source = "t", basis = "measured" }
        peak_rate = { value = 1, unit = "GMAC/s", source = "t", basis = "specified" }

        [neuro]
        synaptic_op_time = { value = 1, unit = "ns", source = "t", basis = "specified" }

        [mapping]
        """) + mapping + "\n" + extra
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return load_profile(path)


def limit(key, value, unit="1"):
    return f'{key} = {{ value = {value}, unit = "{unit}", source = "t", basis = "specified" }}\n'


# --- shared conv weights ---------------------------------------------------------------------------------

def test_shared_kernel_tiling_by_hand(tmp_path):
    """Conv 2 → 4 channels, 3×3 'same' on 4×4 (16 positions), int8. A core holds 16 neurons and 72 B of
    synapses; the kernel slice of one output channel is 2·9 = 18 B, twice (kernel_copies = 2): 36 B, so a
    core takes at most 2 channels. Tiles: 1 channel × 16 positions → 4 cores; 2 × 8 → 2 · 2 = 4 cores (the
    wider tile is kept). Neurons alone would allow 4 cores too (64 / 16); memory alone 2 (2 channels × all
    16 positions per core); so the neuron limit binds."""
    hw = chip(tmp_path, limits=limit("neurons_per_core", 16) + limit("synapse_bytes_per_core", 72, "B"),
              mapping='conv_weights = { value = "shared", source = "t", basis = "specified" }\n'
                      'kernel_copies = { value = 2, unit = "1", source = "t", basis = "specified" }')
    spec = ConvBlock("u", (2, 4, 4), 4, 3)
    m = map_units([spec], hw, training=False, precision="int8")
    u = m.units[0]
    assert (m.style, u.cores, u.channels_per_core, u.positions_per_core) == ("shared", 4, 2, 8)
    assert u.cores_by == {"neurons": 4, "synapse_bytes": 2}
    assert u.limited_by == "neurons"
    # stored synapses: 2 copies × 18 weights × 4 channels × 2 position tiles
    assert u.synapses == 2 * 18 * 4 * 2
    assert (m.cores_needed, m.chips_needed) == (4, 1)


def test_unshared_memory_is_what_made_loihi_need_a_hundred_thousand_cores():
    """The paper network on Loihi: a few hundred cores with shared kernels, the binding limit named."""
    rep = profile_config(resolve_config("paper-mnist", {}), (1, 28, 28), 10, "loihi")
    est = rep["infer_linear"]
    assert 300 <= est.cores_needed <= 500 and est.chips_needed == 3
    u2 = est.unit("unit2")
    # 100,352 neurons need 98 cores at 1,024 each; the 4 copies of a channel's 6,272-weight kernel let a
    # 128 KiB core hold 5 channels, so 5 × 204 tiles: 26 channel groups × 4 position tiles = 104 cores
    assert (u2.cores, u2.limited_by) == (104, "neurons")
    assert u2.cores_by["neurons"] == 98


@pytest.mark.parametrize("axons,expected", [("population", 16), ("per_input", 64)])
def test_axon_limit_by_hand(tmp_path, axons, expected):
    """Conv 2 → 2, 3×3 'same' on 8×8 with 20 input axons per core. A tile of P < 8 positions in one row
    sees 3 × (P + 2) input positions: with population axons (one per position) P ≤ 4, so 64 / 4 = 16
    cores; one axon per input element doubles that to 6 (P + 2) ≤ 20, so P = 1 and 64 cores."""
    hw = chip(tmp_path, limits=limit("axons_per_core", 20),
              mapping=f'conv_weights = {{ value = "shared", source = "t", basis = "specified" }}\n'
                      f'axons = {{ value = "{axons}", source = "t", basis = "specified" }}')
    m = map_units([ConvBlock("u", (2, 8, 8), 2, 3)], hw, training=False, precision="int8")
    assert (m.units[0].cores, m.units[0].limited_by) == (expected, "axons")


# --- unrolled weights -------------------------------------------------------------------------------------

def test_unrolled_weights_store_only_real_synapses_by_hand(tmp_path):
    """Conv 1 → 2, 3×3 'same' on 4×4: the taps inside the map are 2 + 3 + 3 + 2 = 10 per axis, so 2 · 10² =
    200 synapses (not 2 · 16 · 9 = 288 MACs), 6.25 per neuron. 64 synapses per core: a tile holds at most
    10 neurons (1 channel × 10 positions, or 2 × 5), so 4 cores, bound by synapses."""
    hw = chip(tmp_path, limits=limit("synapses_per_core", 64),
              mapping='conv_weights = { value = "unrolled", source = "t", basis = "specified" }')
    spec = ConvBlock("u", (1, 4, 4), 2, 3)
    assert (spec.synops, spec.macs) == (200, 288)
    m = map_units([spec], hw, training=False, precision="int8")
    assert (m.style, m.units[0].synapses, m.units[0].cores, m.units[0].limited_by) == ("unrolled", 200, 4, "synapses")


def test_truenorth_unrolls_and_flags_a_fan_in_beyond_its_axons():
    m = map_units([ConvBlock("w", (64, 4, 4), 8, 3)], load_profile("truenorth"), training=False, precision="binary")
    assert m.style == "unrolled" and m.units[0].fan_in_fits is False
    assert any("lower bound" in n for n in m.notes)


# --- spreading onto idle cores ----------------------------------------------------------------------------

def test_idle_cores_are_shared_out_by_work(tmp_path):
    """Two units that each fit one core of an 8-core chip: 6 cores idle. Unit a does twice unit b's MACs,
    so it gets 4 of them, b 2: 5 and 3 cores, and each runs that much faster."""
    hw = chip(tmp_path, limits=limit("sram_bytes_per_core", 64, "KiB"),
              mapping='conv_weights = { value = "shared", source = "t", basis = "specified" }\n'
                      'spread = { value = "idle_cores", source = "t", basis = "specified" }')
    a, b = ConvBlock("a", (1, 8, 8), 8, 3), ConvBlock("b", (8, 8, 8), 1, 3)
    m = map_units([a, b], hw, training=False, precision="int8", work={"a": 2.0, "b": 1.0})
    assert (m.cores_needed, m.cores_used, m.chips_needed) == (2, 8, 1)
    assert [u.cores for u in m.units] == [5, 3] and [u.cores_needed for u in m.units] == [1, 1]
    spread = profile_network([a], hw, num_classes=2, batch=1, workloads=["infer_goodness"])["infer_goodness"]
    assert spread.cores_used == 8 and spread.cores_needed == 1


def test_spinnaker2_spreads_the_paper_network_over_all_its_pes():
    rep = profile_config(resolve_config("paper-mnist", {}), (1, 28, 28), 10, "spinnaker2")
    est = rep["infer_linear"]
    assert est.cores_used == est.chips_needed * 152 > est.cores_needed


# --- on-chip learning ---------------------------------------------------------------------------------------

def test_trace_rule_stores_weight_and_tag_not_adam(tmp_path):
    """Loihi training keeps per synapse the 1-byte weight and the 1-byte tag of its trace rule (no fp32
    gradient or Adam moments), and says that Adam is not what it costs."""
    spec = ConvBlock("u", (1, 8, 8), 4, 3)
    loihi = load_profile("loihi")
    train = map_units([spec], loihi, training=True, precision="int8").units[0]
    infer = map_units([spec], loihi, training=False, precision="int8").units[0]
    # 4 kernel copies × 9 weights × 4 channels, one tile; neuron state: 2 passes + 3 trace bytes per neuron
    assert infer.synapses == train.synapses == 4 * 9 * 4
    assert train.state_bytes == 4 * 9 * 4 * (1 + 1) + 256 * (2 + 3)
    assert infer.state_bytes == 4 * 9 * 4 * 1 + 256 * 1
    rep = profile_config(resolve_config("paper-mnist", {}), (1, 28, 28), 10, "loihi")
    assert any("nearest supported rule" in n and "Adam" in n for n in rep["ff_train"].notes)


# --- static power, precision --------------------------------------------------------------------------------

def test_loihi2_has_measured_static_power_per_chip():
    # from the PilotNet LIF run (b9e3691) whose energy and throughput it is compared with, not the SDNN run's
    p = load_profile("loihi2").power.static
    assert p.basis == "measured" and p.value_si == pytest.approx(0.232) and "pilotnet_snn" in p.source
    rep = profile_config(resolve_config("mnist-small", {}), (1, 28, 28), 10, "loihi2")
    est = rep["infer_linear"]
    assert est.energy.static_j == pytest.approx(0.232 * est.latency_s * est.chips_needed)


def test_h100_runs_fp32_convs_as_tf32_and_linear_layers_as_fp32():
    h = load_profile("h100")
    rep = profile_config(resolve_config("paper-mnist", {}), (1, 28, 28), 10, h, workloads=["infer_linear"])
    est = rep["infer_linear"]
    assert rep.executed_precision == "conv tf32, linear fp32" and est.precision == "conv tf32, linear fp32"
    assert any("tf32" in n and "allow_tf32" in n for n in rep.notes)
    convs = sum(u.macs for u in est.per_unit if u.unit != "readout")
    readout = est.unit("readout").macs
    ew = sum(u.elementwise_ops for u in est.per_unit)
    assert est.energy.compute_j == pytest.approx(convs * h.mac_energy("tf32") + readout * h.mac_energy("fp32")
                                                 + ew * h.mac_energy("fp32") / 2)


def test_int8_estimates_reach_every_targets_int8_rates():
    cfg = resolve_config("paper-mnist", {})
    for name, native in (("h100", "int8"), ("horowitz45", "int8"), ("cortex-m7", "int8"), ("loihi", "int8"),
                         ("truenorth", "binary"), ("spinnaker2", "int8")):
        rep = profile_config(cfg, (1, 28, 28), 10, name, precision="int8", workloads=["infer_linear"])
        assert (rep.precision, rep.native_precision) == ("int8", native)
    h = load_profile("h100")
    est = profile_config(cfg, (1, 28, 28), 10, h, precision="int8", workloads=["infer_linear"])["infer_linear"]
    assert est.energy.compute_j == pytest.approx(est.macs * h.mac_energy("int8")
                                                 + sum(u.elementwise_ops for u in est.per_unit) * h.mac_energy("int8") / 2)


# --- uncertainty ------------------------------------------------------------------------------------------

def test_ranges_follow_each_numbers_basis(tmp_path):
    """On the toy chip every energy is 'measured' (×/÷ 1.2) and the rate 'specified' (exact)."""
    hw = chip(tmp_path, limits=limit("neurons_per_core", 1024))
    spec = ConvBlock("u", (1, 4, 4), 2, 3)
    est = profile_network([spec], hw, num_classes=2, batch=1, workloads=["infer_goodness"])["infer_goodness"]
    f = SPREAD["measured"]
    assert est.energy_range == pytest.approx((est.energy_j / f, est.energy_j * f))
    lo, hi = est.latency_range
    assert lo == pytest.approx(est.latency_s / SPREAD["specified"]) and hi == pytest.approx(est.latency_s)
    wide = profile_config(resolve_config("paper-mnist", {}), (1, 28, 28), 10, "loihi2")["ff_train"]
    assert wide.energy_range[0] < wide.energy_j < wide.energy_range[1]


def test_rankings_are_resolved_only_where_ranges_do_not_overlap():
    cfg = resolve_config("paper-mnist", {})
    reports = [profile_config(cfg, (1, 28, 28), 10, n) for n in ("h100", "horowitz45", "cortex-m7")]
    ranked = rank(reports, "infer_linear")
    assert [r.target for r in ranked] == ["h100", "horowitz45", "cortex-m7"]
    for a, b in itertools.pairwise(ranked):
        assert a.resolved_from_next == (a.high < b.low)
    assert ranked[-1].resolved_from_next is None
    pair = ff_vs_bp(reports[0])
    assert pair.ratio == pytest.approx(reports[0]["ff_train"].energy_j / reports[0]["bp_train"].energy_j)
    assert pair.resolved and pair.verdict == "BP cheaper"


# --- graphs (NIR) ----------------------------------------------------------------------------------------------

def test_snn_graph_on_an_event_driven_target_by_hand(tmp_path):
    """conv 1 → 2, 3×3 'same' on 4×4, LIF; 4 timesteps, the input given as 0.25 spikes per element per step
    (by default a graph's input is dense analog), on the toy chip
    (1 pJ per synaptic op, no neuron-update energy). Real synapses 200 per step (see above); events
    200 × 4 × 0.25 = 200. Elementwise: bias 32 + LIF 4 · 32 per step, charged at half a MAC each."""
    hw = chip(tmp_path, limits=limit("neurons_per_core", 1024))
    spec = sequential((1, 4, 4), [("conv2d", {"out_channels": 2, "kernel": 3, "padding": 1}), ("neuron", {"model": "lif"})])
    est = profile_graph(spec, hw, timesteps=4, activity=0.25, input_activity=0.25)["infer"]
    assert (est.macs, est.synops, est.effective_synops) == (4 * 288, 4 * 200, 200)
    ew = 4 * (32 + 4 * 32)
    assert est.energy.compute_j == pytest.approx((200 + ew / 2) * PJ)
    assert est.cores_needed == 1


def test_ann_graph_is_dense_and_matches_the_conv_node():
    spec = sequential((3, 8, 8), [("conv2d", {"out_channels": 4, "kernel": 3, "stride": 2, "padding": (0, 1, 0, 1)}),
                                  ("activation", {}), ("flatten", {}), ("linear", {"out_features": 5})])
    est = profile_graph(spec, "horowitz45")["infer"]
    conv = Conv2d((3, 8, 8), 4, 3, 2, (0, 1, 0, 1))
    assert est.macs == conv.macs + 4 * 4 * 4 * 5 and est.synops == conv.synops + 4 * 4 * 4 * 5
    assert est.effective_synops == est.synops   # no spiking neuron: every input dense


def test_linear_spec_units_map_like_their_node():
    m = map_units([LinearSpec("fc", 64, 10)], load_profile("loihi"), training=False, precision="int8")
    assert m.units[0].synapses == 640 and m.units[0].cores == 1
