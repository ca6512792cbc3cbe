"""Energy, latency and locality estimates: hand calculations, unsupported training, mapping, JSON."""
from __future__ import annotations

import json
import math

import pytest
from ffneuro.cli.profile import format_report

from ffneuro.accounting import ff_training_costs
from ffneuro.blocks import layer_specs
from ffneuro.blocks.conv import ConvBlock
from ffneuro.config import RunConfig
from ffneuro.presets import resolve_config
from ffneuro.profiler import (
    EnergyBreakdown,
    action_energies,
    load_profile,
    map_units,
    profile_config,
    profile_network,
    shipped_profiles,
)

PJ = 1e-12


def paper_specs(layers: int = 3):
    return layer_specs(RunConfig(layers=layers), (1, 28, 28), algo="ff")


@pytest.fixture(scope="module")
def paper():
    """The paper network (3 × 128 filters 7×7 on 1×28×28, batch 50) on every shipped target."""
    cfg = resolve_config("paper-mnist", {})
    return {name: profile_config(cfg, (1, 28, 28), 10, name, sparsity=[0.0, 0.6, 0.6]) for name in shipped_profiles()}


# --- hand calculations on the 45 nm reference ---------------------------------------------------------

def test_tiny_linear_inference_on_horowitz45_equals_a_hand_computation():
    """One 1×1 conv (1 filter) on a 1×2×2 image, linear readout over 2 classes, one image, fp32.

    unit1 forward: 4 MACs; ops: label embedding 6·4 + bias 4 + ReLU 4 + RMS norm (3·4 + 3) = 47.
      bytes: weights 2 params·4 B = 8; reads input 4·4 B + its neurons 4·4 B; writes neurons 16 B and output 16 B.
      Crossing the unit: input read (16 B) and output written (16 B) → off-chip (640 pJ / 4 B = 160 pJ/B);
      the rest (8 + 16 + 16 = 40 B) on-core (5 pJ / 4 B = 1.25 pJ/B).
    readout: 4 × 2 = 8 MACs; ops: bias 2 + argmax 2 = 4; weights (8 + 2)·4 = 40 B and its scores
      written 2·4 = 8 B on-core; its features read (16 B) off-chip.
    """
    spec = ConvBlock("unit1", (1, 2, 2), 1, 1)
    rep = profile_network([spec], "horowitz45", num_classes=2, batch=1, workloads=["infer_linear"])
    est = rep["infer_linear"]
    unit1 = (4 * 4.6 + 47 * 0.9 + 40 * 1.25 + 32 * 160) * PJ
    readout = (8 * 4.6 + 4 * 0.9 + 48 * 1.25 + 16 * 160) * PJ
    assert est.unit("unit1").energy.total_j == pytest.approx(unit1, rel=1e-12)
    assert est.unit("readout").energy.total_j == pytest.approx(readout, rel=1e-12)
    assert est.energy_j == pytest.approx(unit1 + readout, rel=1e-12)
    assert est.unit("unit1").energy.compute_j == pytest.approx((4 * 4.6 + 47 * 0.9) * PJ)
    assert (est.bytes_on_core, est.bytes_off_core) == (88, 48)
    assert est.off_core_share == pytest.approx(48 / 136)
    assert est.latency_s is None and "power.static" in rep.unknown   # a reference table has no rates or leakage


def test_ff_training_compute_energy_is_macs_and_ops_times_the_table():
    specs = paper_specs()
    rep = profile_network(specs, "horowitz45", num_classes=10, batch=50, linear_readout=False, workloads=["ff_train"])
    cost = ff_training_costs(specs, num_classes=10, batch=50).per_sample()
    e = rep["ff_train"].energy
    assert e.compute_j == pytest.approx(cost.total.macs * 4.6 * PJ + cost.total.elementwise_ops * 0.9 * PJ)
    assert e.on_core_j + e.off_core_j == pytest.approx(
        rep["ff_train"].bytes_on_core * 1.25 * PJ + rep["ff_train"].bytes_off_core * 160 * PJ)
    assert e.static_j == e.interconnect_j == 0
    assert rep["ff_train"].macs == cost.total.macs == rep["ff_train"].effective_macs   # dense target


def test_energy_breakdown_arithmetic():
    a = EnergyBreakdown(1, 2, 3, 4, 5)
    assert a.total_j == 15 and (a + a).total_j == 30 and a.scaled(0.5).static_j == 2.5
    assert a.to_dict()["total_j"] == 15


# --- targets: unsupported training, all-in, precision, static, sparsity ---------------------------------

def test_truenorth_training_unsupported_with_reason_inference_estimated(paper):
    rep = paper["truenorth"]
    for w in ("ff_train", "bp_train"):
        est = rep[w]
        assert est.supported is False and est.energy is None and est.per_unit == ()
        assert "no on-chip learning" in est.reason and "truenorth" in est.reason
    for w in ("infer_linear", "infer_goodness"):
        assert rep[w].supported and rep[w].energy_j > 0 and rep[w].latency_s > 0
    assert rep.native_precision == "binary"
    # time-stepped: one 1 ms tick per unit per input; the goodness readout runs 10 inputs per image
    assert rep["infer_goodness"].latency_s == pytest.approx(10 * rep["infer_linear"].latency_s * 3 / 4)


def test_all_in_targets_add_no_memory_static_or_interconnect(paper):
    for name in ("h100", "cortex-m7", "truenorth"):
        for est in paper[name].workloads.values():
            if est.supported:
                e = est.energy
                assert e.on_core_j == e.off_core_j == e.interconnect_j == e.static_j == 0
                assert e.compute_j > 0 and est.bytes_on_core + est.bytes_off_core > 0
    h = load_profile("h100")
    rep = profile_network(paper_specs(), h, num_classes=10, batch=50, precision="bf16", workloads=["infer_linear"])
    assert rep.native_precision == "bf16"
    est = rep["infer_linear"]
    assert est.energy.compute_j == pytest.approx(
        est.macs * h.mac_energy("bf16") + sum(u.elementwise_ops for u in est.per_unit) * h.mac_energy("bf16") / 2)


def test_precision_maps_to_the_nearest_native_format(paper):
    assert paper["loihi"].native_precision == "int8" and paper["h100"].native_precision == "fp32"
    assert action_energies(load_profile("horowitz45"), "bf16").native_precision == "fp16"
    assert action_energies(load_profile("loihi"), "fp32").mac_j == pytest.approx(23.6 * PJ)


def test_static_energy_is_static_power_times_latency_times_chips(paper):
    est = paper["loihi"]["infer_linear"]
    for u in est.per_unit:
        assert u.energy.static_j == pytest.approx(0.104 * u.latency_s * est.chips_needed)


def test_event_driven_targets_charge_effective_macs_dense_targets_do_not():
    specs = paper_specs()
    dense = profile_network(specs, "loihi", num_classes=10, batch=50, workloads=["infer_linear"])["infer_linear"]
    sparse = profile_network(specs, "loihi", num_classes=10, batch=50, sparsity=[0.0, 0.75, 0.5],
                             workloads=["infer_linear"])["infer_linear"]
    for u, s in zip(specs, (0.0, 0.75, 0.5)):
        # real synapses only (padding taps never spike), and events with a zero input skipped
        assert sparse.unit(u.name).effective_macs == pytest.approx(u.synops * (1 - s))
        assert sparse.unit(u.name).effective_synops == pytest.approx(u.synops * (1 - s))
        assert sparse.unit(u.name).synops == dense.unit(u.name).synops == u.synops
        assert sparse.unit(u.name).macs == dense.unit(u.name).macs == u.macs
    assert sparse.energy.compute_j < dense.energy.compute_j
    gpu = [profile_network(specs, "h100", num_classes=10, batch=50, sparsity=sp, workloads=["infer_linear"])
           for sp in (None, [0.0, 0.75, 0.5])]
    assert gpu[0]["infer_linear"].energy_j == gpu[1]["infer_linear"].energy_j


@pytest.mark.parametrize("arch", ["conv", "fc"])
def test_measured_sparsity_applies_to_every_block_unit_whatever_its_type(arch):
    """The sparsity list holds one zero fraction per FF block unit, in order, whatever the block type (an
    fc unit's synapse is a Linear, not a Conv2d); the readout is not in it and stays dense."""
    cfg = RunConfig(arch=arch, layers=2, filters=8, widths=(16, 16), kernel=3, readout_from=1)
    specs = layer_specs(cfg, (1, 12, 12), algo="ff", num_classes=10)
    for w in ("infer_linear", "ff_train"):
        est = profile_network(specs, "loihi", num_classes=10, batch=4, sparsity=[0.8, 0.5], workloads=[w])[w]
        for spec, s in zip(specs, (0.8, 0.5)):
            u = est.unit(spec.name)
            assert u.input_zero_fraction == s
            assert u.effective_synops == pytest.approx(u.synops * (1 - s))
        readout = est.per_unit[-1]
        assert readout.unit == "readout" and readout.input_zero_fraction == 0.0
        assert readout.effective_synops == pytest.approx(readout.synops)


def test_a_peak_memory_not_modelled_is_reported_as_such_not_guessed(monkeypatch):
    """A workload whose peak memory is not modelled (peak None) still gets every other figure; its peak and
    whether it fits on chip read "not modelled" in the table and null in JSON, with a note saying why."""
    import types

    import ffneuro.profiler.report as report

    monkeypatch.setattr(report, "ff_memory", lambda *a, **k: types.SimpleNamespace(peak_bytes=None))
    rep = profile_network(paper_specs(), "h100", num_classes=10, batch=50, workloads=["ff_train", "infer_linear"])
    est, known = rep["ff_train"], rep["infer_linear"]
    assert est.peak_memory_bytes is None and est.fits_on_chip is None and est.energy_j > 0
    assert known.peak_memory_bytes > 0 and known.fits_on_chip is not None
    assert any("peak memory not modelled" in n for n in est.notes)
    assert json.loads(json.dumps(rep.to_dict()))["workloads"]["ff_train"]["peak_memory_bytes"] is None
    assert math.isnan(rep.to_columns()["ff_train"]["total_peak_memory_bytes"])
    text = format_report(rep)
    assert "peak memory not modelled, fits on chip: not modelled" in text
    assert text.count("not modelled, fits on chip") == 1
    from ffneuro.cli.compare import TABLE, _cell

    from ffneuro.profiler.compare import comparison_rows
    cells = {row["workload"]: [_cell(row, k) for k in TABLE] for row in comparison_rows([rep])}
    assert cells["ff_train"][TABLE.index("peak_memory_bytes")] == "not modelled"
    assert cells["infer_linear"][TABLE.index("peak_memory_bytes")].endswith("B")


def test_neuron_and_synaptic_updates_on_a_learning_chip(paper):
    est = paper["loihi"]["ff_train"]
    u2 = est.unit("unit2")
    # pos, neg, and the neutral pass feeding the linear readout (the preset trains it), per sample
    assert u2.neuron_updates == pytest.approx(3 * paper_specs()[1].neurons)
    # one update per stored synapse per batch: the trace rule keeps weight + 1 B tag, so synapse memory
    # (128 KiB) holds 2 channels' kernels × 4 copies (2·4·6272·2 B); 1,024 neurons then allow 512 positions,
    # so the 128 channels × 784 positions take 64 channel groups × 2 position tiles: the kernel is stored
    # 4 copies × 2 tiles over
    assert u2.synaptic_updates == pytest.approx(4 * 2 * 128 * 6272 / 50)
    assert (u2.cores, u2.limited_by) == (128, "neurons+synapse_bytes")
    assert est.unit("unit1").synaptic_updates == 0                                    # frozen


# --- locality --------------------------------------------------------------------------------------------

def test_loihi_cores_per_unit_at_least_neurons_over_1024(paper):
    for w in ("ff_train", "infer_linear", "infer_goodness"):
        est = paper["loihi"][w]
        for u, s in zip(est.per_unit, paper_specs()):
            assert u.cores >= math.ceil(s.neurons / 1024)
        assert est.cores_needed == sum(u.cores for u in est.per_unit)
        assert est.chips_needed == math.ceil(est.cores_needed / 128)
    assert paper["loihi"]["ff_train"].unit("unit1").cores == math.ceil(128 * 28 * 28 / 1024)
    assert paper["loihi"]["ff_train"].unit("unit1").limited_by == "neurons"


def test_map_units_styles_limits_and_fan_in():
    tiny = ConvBlock("u", (1, 4, 4), 2, 3)   # 32 neurons, fan-in 9
    m = map_units([tiny], load_profile("truenorth"), training=False, precision="binary")
    assert (m.style, m.cores_needed, m.units[0].fan_in_fits, m.weights_on_chip) == ("unrolled", 1, True, True)
    assert m.units[0].synapses == tiny.synops   # real synapses only: 2 · (3 + 4 + 4 + 3)² = 392, not 2 · 16 · 9
    wide = ConvBlock("w", (64, 4, 4), 300, 3)   # 4800 neurons, fan-in 576 > 256 axons
    m = map_units([wide], load_profile("truenorth"), training=False, precision="binary")
    assert m.units[0].cores >= math.ceil(4800 / 256) and m.units[0].fan_in_fits is False
    assert any("lower bound" in n for n in m.notes)
    assert map_units([wide], load_profile("h100"), training=True, precision="fp32").style == "monolithic"
    assert map_units([wide], load_profile("spinnaker2"), training=False, precision="int8").style == "shared"


def test_ff_moves_fewer_bytes_off_core_than_bp(paper):
    for name in ("loihi", "loihi2", "spinnaker2", "horowitz45", "h100"):
        ff, bp = paper[name]["ff_train"], paper[name]["bp_train"]
        assert ff.bytes_off_core < bp.bytes_off_core, name
        assert ff.off_core_share < bp.off_core_share, name
    ff, bp = paper["loihi"]["ff_train"], paper["loihi"]["bp_train"]
    assert ff.unit("unit2").crossing == ("input", "output")
    assert "error signal from above" in bp.unit("layer2").crossing
    assert "error signal to the layer below" not in bp.unit("layer1").crossing


@pytest.mark.parametrize("pool,pool_every", [("max", 1), ("stride", 1), ("stride", 2)])
def test_bp_stores_a_pooled_map_only_where_a_unit_pools(pool, pool_every):
    """Per layer: a max-pooled layer stores its pooled map for the backward, a stride-2 conv or an
    undownsampled layer has none; the profile's MACs are those of the strided specs."""
    cfg = resolve_config("paper-mnist", {"pool": pool, "pool_every": pool_every})
    rep = profile_config(cfg, (1, 28, 28), 10, "loihi")
    specs = layer_specs(cfg, (1, 28, 28))
    for i, s in enumerate(specs):
        stored = next(c for c in rep["bp_train"].unit(f"layer{i + 1}").crossing if c.startswith("stored activations"))
        assert ("pooled map" in stored) == (s.pool == "max")
    assert rep["infer_linear"].macs == pytest.approx(sum(s.macs for s in specs) + 10 * sum(s.out_elems for s in specs[1:]))


def test_monolithic_locality_is_whether_the_working_set_fits(paper):
    h = paper["h100"]
    assert h["infer_linear"].fits_on_chip is True and h["infer_linear"].bytes_off_core == 0
    assert h["ff_train"].fits_on_chip is False and h["ff_train"].bytes_off_core > 0
    assert h["ff_train"].peak_memory_bytes > load_profile("h100").on_chip_sram_bytes
    m7 = paper["cortex-m7"]["ff_train"]
    assert m7.fits_on_chip is False and any("does not fit the device" in n for n in m7.notes)
    assert paper["horowitz45"]["ff_train"].fits_on_chip is None   # a reference table has no capacity


# --- report ------------------------------------------------------------------------------------------

def test_report_is_json_serialisable_and_formats(paper):
    for name, rep in paper.items():
        d = json.loads(json.dumps(rep.to_dict()))
        assert d["target"] == name and set(d["workloads"]) == {"ff_train", "bp_train", "infer_linear", "infer_goodness",
                                                               "bp_infer"}
        text = format_report(rep)
        assert name in text and "ff_train" in text
    assert "not estimated" in format_report(paper["truenorth"])


def test_report_columns_go_into_a_run_file(tmp_path, paper):
    import numpy as np

    from ffneuro.store import RunWriter, read_run
    w = RunWriter(tmp_path / "run.h5", config={}, environment={}, unit_names=["u"], accounting={})
    w.write_group("profile_loihi", paper["loihi"].to_columns())
    w.write_group("profile_truenorth", paper["truenorth"].to_columns())
    groups = read_run(tmp_path / "run.h5").groups
    ff, est = groups["profile_loihi"]["ff_train"], paper["loihi"]["ff_train"]
    assert list(ff["unit"]) == ["unit1", "unit2", "unit3", "readout"]
    assert float(ff["total_energy_j"]) == pytest.approx(est.energy_j)
    np.testing.assert_allclose(ff["cores"], [u.cores for u in est.per_unit])
    tn = groups["profile_truenorth"]["ff_train"]
    assert float(tn["supported"]) == 0.0 and "no on-chip learning" in str(tn["reason"])
    assert float(groups["profile_truenorth"]["infer_linear"]["supported"]) == 1.0


def test_profile_network_validates_inputs():
    with pytest.raises(ValueError, match="sparsity"):
        profile_network(paper_specs(), "loihi", num_classes=10, batch=2, sparsity=[0.5])
    with pytest.raises(ValueError, match="workloads"):
        profile_network(paper_specs(), "loihi", num_classes=10, batch=2, workloads=["ff_inference"])


@pytest.mark.parametrize("x, text", [(9.998e-4, "1 ms"), (1.234e-6, "1.23 µs"), (0, "0 s"), (None, "?"), (2.5e3, "2.5 ks")])
def test_format_si_rounds_before_choosing_the_prefix(x, text):
    from ffneuro.profiler import format_si

    assert format_si(x, "s") == text
