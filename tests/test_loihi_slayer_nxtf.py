"""Loihi's SLAYER and NxTF facts (issue 17): the dendritic-accumulator cap on layers with synaptic delays
(SLAYER's compiler places NTIDIGITS' delayed layers at 128 neurons per core), NxTF's per-sample readout,
reset and input injection, a SLAYER stack with preloaded input, and a measurement's own case naming a stack."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from benchmark_scripts import load_benchmark

from ffneuro.errors import FFNeuroError
from ffneuro.profiler import load_profile, profile_from_dict, profile_graph
from ffneuro.profiler.energy import stack_overhead
from ffneuro.profiler.hardware import with_stack
from ffneuro.profiler.locality import delay_neurons_cap, map_units
from ffneuro.spec import Linear, NetSpec, Neuron, Unit

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "silicon.py"
DATA = ROOT / "benchmarks" / "data" / "silicon_measurements.toml"


def _dense(name, n_in, n_out) -> Unit:
    lin = Linear((n_in,), n_out, True)
    return Unit(name, (lin, Neuron(lin.out_shape, "lif")), True, "")


def _silicon():
    return load_benchmark("silicon")


# --- the dendritic accumulator caps a delayed layer's neurons per core -----------------------------------------

def test_delay_bits_cap_compartments_per_core_by_the_accumulator():
    hw = load_profile("loihi")
    assert hw.partitioner.get("dendritic_accumulator_slots") == 8192
    assert delay_neurons_cap(hw, 6) == 128      # max delay 62: 6 bits, 2**(13 - 6)
    assert delay_neurons_cap(hw, 3) == 1024
    assert delay_neurons_cap(hw, 0) is None      # no delays, no cap
    assert delay_neurons_cap(load_profile("loihi2"), 6) is None   # a profile without the limit


def test_a_delayed_256_neuron_layer_takes_two_loihi_cores():
    hw = load_profile("loihi")
    units = [_dense("d1", 64, 256), _dense("d2", 256, 256), _dense("d3", 256, 242)]
    kw = dict(training=False, precision="int8")
    plain = map_units(units, hw, **kw)
    delayed = map_units(units, hw, delay_bits={"d1": 6, "d2": 6}, **kw)
    assert [u.cores for u in plain.units] == [1, 1, 1]
    assert [u.cores for u in delayed.units] == [2, 2, 1]          # SLAYER's NTIDIGITS layer table: 2, 2, 1
    assert delayed.units[0].limited_by == "neurons"
    # two-compartment neurons at 3 delay bits: 1,024 slots / 2 = 512 neurons a core
    assert map_units(units[:1], hw, delay_bits={"d1": 3}, compartments_per_neuron=8, **kw).units[0].cores == 2


def test_delay_bits_must_name_units_of_the_network():
    net = NetSpec((64,), (_dense("d1", 64, 256),), "t")
    with pytest.raises(ValueError, match="delay_bits names no unit of the network: nope"):
        profile_graph(net, "loihi", timesteps=2, precision="int8", delay_bits={"nope": 6})
    est = profile_graph(net, "loihi", timesteps=2, precision="int8", input_activity=0.1, delay_bits={"d1": 6})
    assert est["infer"].cores_needed == 2


# --- software stacks ---------------------------------------------------------------------------------------

def test_nxtf_charges_the_per_sample_readout_reset_and_injection_it_was_measured_to_take():
    st = load_profile("loihi").stack("nxtf")
    q = st.inference_time
    assert q.value_si == pytest.approx(10e-3) and q.basis == "measured" and not q.fit_set
    assert "b_image_classification_cifar.ipynb" in q.source
    o = stack_overhead(load_profile("loihi"), timesteps=512, stack="nxtf")
    assert o.inference_time_s == pytest.approx(10e-3)
    assert o.time_s == pytest.approx(512 * 3.444e-6 + 10e-3)


def test_slayer_stack_adds_nothing_and_says_why():
    hw = load_profile("loihi")
    st = hw.stack("slayer")
    assert "streamOnce" in st.note and "benchmarking.py" in st.source
    o = stack_overhead(hw, timesteps=3000, stack="slayer")
    assert (o.stack, o.time_s, o.energy_j) == ("slayer", 0.0, 0.0)
    assert with_stack(hw, "slayer").stack().name == "slayer"
    assert profile_from_dict(hw.to_dict()) == hw                    # the texts round-trip
    d = hw.to_dict()
    d["stacks"]["bare"] = {"source": "somewhere"}                   # no numbers and no note: refused
    with pytest.raises(FFNeuroError, match="stacks.bare: empty section"):
        profile_from_dict(d)


# --- a measurement's own case may name its stack -------------------------------------------------------------

def test_a_measurement_case_can_name_its_software_stack():
    silicon = _silicon()
    assert "stack" in silicon.CASE_KEYS
    data = {"measurement": [{"id": "x-run", "case": {"profile": "loihi", "timesteps": 8, "stack": "slayer"}}]}
    (case,) = [c for c in silicon.cases_from_data(data) if c.record == "x-run"]
    assert case.stack == "slayer" and case.timesteps == 8


def test_slayer_ntidigits_cores_are_the_compilers_per_layer():
    silicon = _silicon()
    data = tomllib.loads(DATA.read_text())
    rec = next(m for m in data["measurement"] if m["id"] == "loihi-slayer-ntidigits")
    case = next(c for c in silicon.cases_from_data(data) if c.record == "loihi-slayer-ntidigits")
    assert case.stack == "slayer"
    out = silicon.evaluate(case, rec, data["networks"])
    cores = next(r for r in out["rows"] if r["kind"] == "cores")
    assert cores["predicted"] == cores["measured"] == 6
    assert [(p["compiler"], p["ffneuro"]) for p in out["per_layer_cores"]] == [(1, 1), (2, 2), (2, 2), (1, 1)]
