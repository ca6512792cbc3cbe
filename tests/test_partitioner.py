"""Compiler-faithful mapping (Lava's partitioner on Loihi 2, input encoders) and the software-stack
overheads (per-timestep management, per-input-core host input, per-inference host I/O), on
hand-computed small cases (issue 17)."""
from __future__ import annotations

import math

import pytest

from ffneuro.errors import FFNeuroError
from ffneuro.profiler import load_profile, profile_from_dict, profile_graph
from ffneuro.profiler.energy import stack_overhead
from ffneuro.profiler.locality import ENCODER, encoder_mapping, lava_cores, map_units
from ffneuro.spec import Conv2d, Linear, NetSpec, Neuron, Unit


def _net(*units, shape=(3, 8, 16)) -> NetSpec:
    return NetSpec(shape, tuple(units), "t")


def _conv(name, in_shape, out_ch, stride=1) -> Unit:
    c = Conv2d(in_shape, out_ch, (3, 3), (stride, stride), (0, 0, 0, 0), 1, 1, True)
    return Unit(name, (c, Neuron(c.out_shape, "lif")), True, "")


def _dense(name, n_in, n_out) -> Unit:
    lin = Linear((n_in,), n_out, True)
    return Unit(name, (lin, Neuron(lin.out_shape, "lif")), True, "")


# --- Lava's slicing rule -------------------------------------------------------------------------------------

def test_a_layer_over_the_neuron_cap_splits_into_power_of_two_column_slices():
    # 10 columns of 300 neurons, cap 1000: 1 col = 300, 2 = 600, 4 = 1200 > cap -> 2 columns a core, 5 cores
    assert lava_cores(10, 300, neurons_cap=1000) == (5, 2, "neurons")
    # the slice is a power of two even past the layer's width: 3 columns (900 neurons) still take 2 cores, as
    # PilotNet's conv5 (20 columns of 128) took 2 cores of 16 columns although 2,560 neurons fit one
    assert lava_cores(3, 300, neurons_cap=1000) == (2, 2, "neurons")
    assert lava_cores(20, 128, neurons_cap=4095) == (2, 16, "neurons")
    assert lava_cores(2, 300, neurons_cap=1000) == (1, 2, "none")


def test_synapse_memory_caps_a_dense_layers_neurons_per_core():
    # 100 neurons of fan-in 2560 at 2.824 weights a word: 906.5 words each; 12,000 words: 13.2 -> 8 a core
    cores, per_core, limit = lava_cores(100, 1, neurons_cap=4095, words_cap=12000, column_words=2560 / 2.824)
    assert (cores, per_core, limit) == (13, 8, "synapse_words")
    # a shared conv kernel larger than a core's words splits even a one-column layer (lower bound)
    assert lava_cores(1, 10, neurons_cap=4095, words_cap=100, core_words=250)[0] == 3


def test_loihi2_maps_pilotnet_convs_as_the_compiler_did():
    hw = load_profile("loihi2")
    # PilotNet's conv3 (48 x 7 x 24 out): 336 neurons a column, 8 columns = 2,688, 16 = 5,376 > 4,095 -> 3 cores
    conv3 = _conv("conv3", (36, 15, 49), 48, stride=2)
    # conv4-like: 16 columns of 4 x 64 = 4,096 neurons is refused (cap 4,095), so 8 columns a core
    conv4 = Unit("conv4", (c4 := Conv2d((48, 7, 24), 64, (3, 3), (2, 1), (1, 1, 0, 0), 1, 1, True),
                           Neuron(c4.out_shape, "lif")), True, "")
    fc1 = _dense("fc1", 2560, 100)
    m = map_units([conv3, conv4, fc1], hw, training=False, precision="int8")
    assert [u.cores for u in m.units] == [3, 3, 13]
    assert m.unit("conv3").positions_per_core == 8 * 7 and m.unit("fc1").limited_by == "synapse_words"
    assert m.cores_needed == 19


def test_an_input_encoder_gets_cores_on_a_many_core_target():
    # PilotNet's input layer 3 x 66 x 200: 198 neurons a column, 16 columns = 3,168 -> ceil(200 / 16) = 13 cores
    enc = encoder_mapping((3, 66, 200), load_profile("loihi2"))
    assert (enc.unit, enc.neurons, enc.synapses, enc.cores) == (ENCODER, 39600, 0, 13)
    # without a Lava partitioner: neurons per core alone (Loihi: 1,024 compartments)
    assert encoder_mapping((3, 66, 200), load_profile("loihi")).cores == math.ceil(39600 / 1024)
    m = map_units([_dense("fc", 12, 4)], load_profile("loihi2"), training=False, precision="int8",
                  encoder_shape=(3, 4, 1))
    assert [u.unit for u in m.units] == [ENCODER, "fc"] and m.cores_needed == 2


def test_the_encoder_is_costed_every_timestep():
    hw = load_profile("loihi2")
    net = _net(_dense("fc", 3 * 8 * 16, 10), shape=(384,))
    plain = profile_graph(net, hw, timesteps=4, input_activity=0.1, precision="int8")["infer"]
    enc = profile_graph(net, hw, timesteps=4, input_activity=0.1, precision="int8", input_encoder=True)["infer"]
    u = enc.unit(ENCODER)
    assert u.neuron_updates == 384 * 4 and u.cores == 1
    assert u.energy.compute_j == pytest.approx(384 * 4 * 81e-12)
    assert u.latency_s == pytest.approx(384 * 4 * 3.922e-9)
    assert enc.cores_needed == plain.cores_needed + 1
    # the fc layer's own cost does not change; the encoder's neuron updates add to the dynamic energy
    dyn = enc.energy_j - enc.energy.static_j - (plain.energy_j - plain.energy.static_j)
    assert dyn == pytest.approx(384 * 4 * 81e-12, rel=1e-6)


# --- software-stack overheads --------------------------------------------------------------------------------

def _with_stack(name="loihi2", **fields):
    d = load_profile(name).to_dict()
    d["stacks"] = {"test-stack": {k: {"value": v, "unit": u, "source": "test", "basis": "measured"}
                                  for k, (v, u) in fields.items()}}
    return profile_from_dict(d)


def test_stack_overhead_terms_add_up_as_named():
    hw = _with_stack(step_time=(100, "us"), step_time_per_input_core=(10, "us"), step_power=(50, "mW"),
                     inference_time=(1, "ms"), inference_energy=(2, "uJ"))
    o = stack_overhead(hw, timesteps=4, input_cores=3)
    assert o.stack == "test-stack"
    assert o.step_time_s == pytest.approx(130e-6) and o.inference_time_s == pytest.approx(1e-3)
    assert o.time_s == pytest.approx(4 * 130e-6 + 1e-3)              # 1.52 ms
    assert o.energy_j == pytest.approx(1.52e-3 * 0.05 + 2e-6)        # 78 uJ
    assert stack_overhead(load_profile("loihi2"), timesteps=4) is None   # no stack given


def test_profile_graph_adds_the_stacks_time_and_energy_on_top_of_the_cores():
    net = _net(_conv("c", (3, 8, 16), 4))
    base = profile_graph(net, load_profile("loihi2"), timesteps=5, input_activity=0.1, precision="int8")["infer"]
    hw = _with_stack(step_time=(20, "us"), step_power=(10, "mW"), inference_energy=(1, "uJ"))
    est = profile_graph(net, hw, timesteps=5, input_activity=0.1, precision="int8")["infer"]
    assert est.latency_s == pytest.approx(base.latency_s + 5 * 20e-6)
    assert est.energy.overhead_j == pytest.approx(5 * 20e-6 * 0.01 + 1e-6)
    assert est.energy.compute_j == pytest.approx(base.energy.compute_j)
    assert est.energy.static_j == pytest.approx(0.232 * est.latency_s)   # static runs over the longer time
    assert est.overhead.stack == "test-stack" and any("software stack test-stack" in n for n in
                                                       profile_graph(net, hw, timesteps=5, precision="int8").notes)
    # a dense (monolithic) device has no stack terms
    assert profile_graph(net, "h100", timesteps=5, precision="int8")["infer"].overhead is None


def test_loihi_stacks_are_named_and_the_kws_intercept_is_the_management():
    hw = load_profile("loihi")
    assert [s.name for s in hw.stacks] == ["nxtf", "slayer", "nengo-loihi"]
    step = hw.stack("nxtf").step_time      # read from the MNIST run, so that run's row is in its fit set
    assert hw.stack().name == "nxtf" and step.basis == "fitted" and step.fit_set == ("loihi-nxtf-mnist",)
    nl = hw.stack("nengo-loihi")
    assert all(q.basis == "fitted" and "fit set" in q.note
               for q in (nl.step_time, nl.step_time_per_input_core, nl.step_power))
    with pytest.raises(FFNeuroError, match="no software stack 'lava'"):
        hw.stack("lava")
    # 2 input cores: 147.7 + 2 x 76.27 = 300.2 us a step; 10 steps at 81.16 mW = 243.7 uJ a keyword inference
    o = stack_overhead(hw, timesteps=10, stack="nengo-loihi", input_cores=2)
    assert o.time_s == pytest.approx(3.0024e-3, rel=1e-4) and o.energy_j == pytest.approx(243.7e-6, rel=1e-3)


def test_profile_sections_are_validated():
    d = load_profile("loihi2").to_dict()
    d["partitioner"]["rule"]["value"] = "guess"
    with pytest.raises(FFNeuroError, match="partitioner.rule"):
        profile_from_dict(d)
    d = load_profile("loihi2").to_dict()
    d["stacks"] = {"x": {"step_time": {"value": 1, "unit": "us", "source": "s", "basis": "fitted"}}}
    with pytest.raises(FFNeuroError, match="needs a note"):          # a fitted number must name its fit set
        profile_from_dict(d)
    d["stacks"]["x"]["step_time"]["unit"] = "mW"
    d["stacks"]["x"]["step_time"]["note"] = "fit set: none"
    with pytest.raises(FFNeuroError, match="time"):
        profile_from_dict(d)
    hw = load_profile("loihi2")
    assert profile_from_dict(hw.to_dict()) == hw                        # round-trips with the new sections


def test_two_compartment_neurons_take_twice_the_slots_and_updates():
    # NxTF builds a soft-reset neuron from 2 compartments (dnn_layers.py: neuronSize = 2 if resetMode == 'soft'):
    # 600 neurons fit one 1,024-compartment Loihi core, 1,200 compartments need 2
    hw = load_profile("loihi")
    net = _net(_dense("fc", 16, 600), shape=(16,))
    one = profile_graph(net, hw, timesteps=3, input_activity=0.1, precision="int8")["infer"]
    two = profile_graph(net, hw, timesteps=3, input_activity=0.1, precision="int8", compartments_per_neuron=2)["infer"]
    assert (one.unit("fc").cores, two.unit("fc").cores) == (1, 2)
    assert two.unit("fc").neuron_updates == 2 * one.unit("fc").neuron_updates == 2 * 600 * 3
    with pytest.raises(ValueError, match="compartments_per_neuron"):
        profile_graph(net, hw, compartments_per_neuron=0)
