"""Xylo Audio 2 (issue 17, BENCHMARKS 15g): the profile charges every neuron's fixed per-step work in the
vendor's cycle counts, and the held-out record's arithmetic about what its measured power contains holds."""
from __future__ import annotations

import math
import tomllib
from pathlib import Path

import pytest

from ffneuro.profiler.hardware import load_profile

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "data" / "silicon_measurements.toml"
ROW = "xylo-audio2-rockpool-intro"

# Rockpool's cycle model of the Xylo Audio 2 core (rockpool/devices/xylo/syns61201/power_cycles_model.py
# @ 42cee1c9, cycles_model): master-clock cycles per time step
INPUT_LOOP, HIDDEN_UPDATE, OUTPUT_ISYN, FIXED_HIDDEN, FIXED_OUTPUT = 3.5, 7, 8, 19, 12


def cycles_per_step(n_in: int, n_hid: int, n_out: int, fanout: float, p_in: float, p_hid: float) -> float:
    """The cycle model's sum for a network without Isyn2 or aliases (transcribed term by term)."""
    inputs = n_in * (p_in * n_hid * INPUT_LOOP + 1)
    hidden_isyn = n_hid * (fanout * HIDDEN_UPDATE * p_hid + 3)
    output_isyn = n_hid * p_hid * (1 + n_out * OUTPUT_ISYN)
    hidden_spk = n_hid * (FIXED_HIDDEN + 2 * p_hid + p_hid)
    return inputs + hidden_isyn + output_isyn + hidden_spk + n_out * FIXED_OUTPUT


def test_neuron_update_is_the_cycle_models_fixed_work_at_the_profiles_energy_per_cycle():
    p = load_profile("xylo-audio2")
    clock = p.clock.core.value_si
    per_cycle = p.neuro.synaptic_op.value_si / HIDDEN_UPDATE          # one synaptic event: 7 cycles
    fixed = FIXED_HIDDEN + 3                                             # a hidden neuron with no spike
    assert p.neuro.neuron_update is not None
    assert p.neuro.neuron_update.value_si == pytest.approx(fixed * per_cycle, rel=1e-3)
    assert p.neuro.neuron_update_time.value_si == pytest.approx(fixed / clock)
    assert p.neuro.synaptic_op_time.value_si == pytest.approx(HIDDEN_UPDATE / clock)
    assert p.neuro.neuron_update.basis == "assumed"                     # not fitted to the held-out row


def _case():
    from benchmark_scripts import load_benchmark

    silicon = load_benchmark("silicon")
    data = tomllib.loads(DATA.read_text())
    case = next(c for c in silicon.cases_from_data(data) if c.record == ROW)
    record = next(m for m in data["measurement"] if m["id"] == ROW)
    return silicon, data, case, record


def test_the_xylo_row_charges_every_neuron_every_step_as_a_neuron_update():
    silicon, data, case, record = _case()
    hw = silicon.at_clock(load_profile(case.target), case.clock_mhz)
    net = data["networks"][record["network"]["key"]]
    spec = silicon.spec_from_layers(net)
    est = silicon.profile_graph(spec, hw, timesteps=case.timesteps, activity=case.activity,
                                input_activity=case.input_activity, precision=case.precision)["infer"]
    neurons = [la["out_features"] for la in net["layers"] if la["op"] == "linear"]
    units = [u.to_dict() for u in est.per_unit]
    assert [u["neuron_updates"] for u in units] == [n * case.timesteps for n in neurons]
    assert all(u["elementwise_ops"] == 0 for u in units)                # no LIF ops charged twice
    nu = hw.neuro.neuron_update.value_si
    event = hw.neuro.synaptic_op.value_si
    expected = est.effective_synops * event + sum(neurons) * case.timesteps * nu
    assert est.energy.compute_j == pytest.approx(expected, rel=1e-9)
    # the prediction is still far below the measurement: the energy per cycle is the open question
    row = silicon.evaluate(case, record, data["networks"])["rows"][0]
    assert row["ratio"] < 0.5


def test_the_records_cycle_arithmetic():
    # the tutorial network on the chip: 2 inputs, 8 hidden (mean fan-out 4), 2 outputs; input p = 0.4
    zero = cycles_per_step(2, 8, 2, 4, 0.0, 0.0)
    assert zero == 202                                                   # per-neuron work alone
    lo, hi = cycles_per_step(2, 8, 2, 4, 0.4, 0.0), cycles_per_step(2, 8, 2, 4, 0.4, 1.0)
    assert (lo, hi) == pytest.approx((224.4, 608.4))
    assert cycles_per_step(2, 8, 2, 4, 0.4, 0.1) == pytest.approx(224.4 + 38.4)
    _, _, _, record = _case()
    energy = next(m for m in record["measured"] if m["metric"] == "dynamic_energy_per_inference")
    per_step = energy["value"] / 1000
    assert per_step / cycles_per_step(2, 8, 2, 4, 0.4, 0.1) == pytest.approx(24.1e-12, rel=0.01)
    lo_e, hi_e = (s / 1000 for s in energy["spread"])
    assert lo_e / hi == pytest.approx(7.9e-12, rel=0.01) and hi_e / lo == pytest.approx(35.9e-12, rel=0.01)
    # the evolution's pace: 6 samples at 20 Hz = 0.25-0.35 s for 1000 steps at 6.25 MHz
    f = 6.25e6
    assert (0.25e-3 * f, 0.35e-3 * f) == pytest.approx((1562.5, 2187.5))
    assert math.isclose(lo / (0.35e-3 * f), 0.1026, rel_tol=1e-3) and math.isclose(hi / (0.25e-3 * f), 0.389, rel_tol=1e-2)


def test_the_record_says_what_its_power_contains_and_what_is_missing():
    _, _, _, record = _case()
    contents = record["contents"]
    for key in ("rails", "front_end", "clock_and_pace", "per_step_work", "implied", "missing"):
        assert contents[key].strip(), key
    assert "Logic" in contents["rails"] and "inf_time" in contents["missing"]
