"""Compiler-faithful mapping (Lava's partitioner on Loihi 2, input encoders) and the software-stack
overheads (per-timestep management, per-input-core host input, per-inference host I/O), on
hand-computed small cases (issue 17)."""
from __future__ import annotations

import math
from functools import partial

import pytest

from ffneuro.errors import FFNeuroError
from ffneuro.profiler import load_profile, profile_from_dict, profile_graph
from ffneuro.profiler.energy import stack_overhead
from ffneuro.profiler.locality import (
    ENCODER,
    encoder_mapping,
    lava_axon_words,
    lava_conv_cores,
    lava_dense_cores,
    map_units,
)
from ffneuro.spec import Conv2d, Linear, NetSpec, Neuron, Unit


def _net(*units, shape=(3, 8, 16)) -> NetSpec:
    return NetSpec(shape, tuple(units), "t")


def _conv(name, in_shape, out_ch, stride=1) -> Unit:
    c = Conv2d(in_shape, out_ch, (3, 3), (stride, stride), (0, 0, 0, 0), 1, 1, True)
    return Unit(name, (c, Neuron(c.out_shape, "lif")), True, "")


def _dense(name, n_in, n_out) -> Unit:
    lin = Linear((n_in,), n_out, True)
    return Unit(name, (lin, Neuron(lin.out_shape, "lif")), True, "")


# --- Lava's slicing rule and the synapse format ------------------------------------------------------------

def test_an_axons_synapses_take_whole_words_per_group_behind_a_header():
    # groups of <= 64 synapses, each a 10-bit header plus 15 bits a synapse, rounded up to 64-bit words
    assert lava_axon_words(0, 15) == 0
    assert lava_axon_words(1, 15) == 1                       # 25 bits
    assert lava_axon_words(9, 15) == 3                       # 145 bits
    assert lava_axon_words(64, 15) == 16                     # 970 bits
    assert lava_axon_words(100, 15) == 16 + 9                # 64 + 36 synapses: two groups, two headers
    assert lava_axon_words(24, 5) == 3 and lava_axon_words(64, 5) == 6


def test_a_dense_layers_split_ratio_grows_by_the_words_overshoot_as_lavas_log_shows():
    # PilotNet fc1, 100 neurons x 2,560 axons at 15 bits a synapse: ratio 1 needs 64,000 words of 12,000 ->
    # ratio 6 (17 neurons: 5 words an axon, 12,800 words, the log's violation) -> ratio 12 (9 neurons, 7,680 words)
    pack = partial(lava_axon_words, synapse_bits=15)
    assert 2560 * pack(17) == 12800
    assert lava_dense_cores(100, 2560, neurons_cap=4095, words_cap=12000, axon_words=pack) == (12, 9, "synapse_words")
    # MNIST fc1 (784 -> 128): 25,088 words at ratio 1 -> ratio 3, 43 neurons a core: the compiler's 3 cores
    assert lava_dense_cores(128, 784, neurons_cap=4095, words_cap=12000, axon_words=pack)[:2] == (3, 43)
    # the neuron cap alone
    assert lava_dense_cores(10000, 1, neurons_cap=4095) == (3, 3334, "neurons")


def test_conv_slices_are_a_power_of_two_wide_and_keep_height_and_channels_while_they_can():
    # PilotNet's convs (C, H, W out) take the compiler's 25 / 13 / 3 / 3 / 2 cores, whole height and channels
    got = [lava_conv_cores(s, neurons_cap=4095) for s in [(24, 32, 99), (36, 15, 49), (48, 7, 24), (64, 4, 22),
                                                          (64, 2, 20)]]
    assert [g[0] for g in got] == [25, 13, 3, 3, 2]
    assert [g[1] for g in got] == [(24, 32, 4), (36, 15, 4), (48, 7, 8), (64, 4, 8), (64, 2, 16)]
    # a 224 x 224 x 16 map: 3,584 neurons a core (16 channels x 224 positions), cut in height too: 224 cores
    cores, (c, h, w), limit = lava_conv_cores((16, 224, 224), neurons_cap=4095)
    assert cores == 224 and c * h * w == 3584 and limit == "neurons"


def test_synapse_words_halve_a_convs_channels():
    # YOLO-KP's conv6, 256 x 14 x 14 out of a 3 x 3 x 256 kernel: 2,304 rows; 64 channels a core at 5 bits
    # would take 6 words a row (13,824 > 12,000), 32 channels 3 (6,912): 8 channel groups x 2 slices = 16 cores
    rows = 256 * 9
    cores, (c, h, w), limit = lava_conv_cores((256, 14, 14), neurons_cap=4095, words_cap=12000,
                                              slice_words=lambda cs: rows * lava_axon_words(cs, 5))
    assert (cores, c, limit) == (16, 32, "synapse_words") and c * h * w <= 4095


def test_the_fitted_synapse_bits_are_the_best_fit_to_pilotnets_per_core_table():
    # the compiler's Synapses column (words a core): conv rows (input channels x taps, output channels a core)
    # and dense rows (axons, neurons a core), including the log's fc1 at all 100 neurons (61,440 words)
    conv = [(27, 24, 81), (216, 36, 864), (324, 48, 1620), (432, 64, 2160), (576, 64, 2880)]
    dense = [(2560, 8, 7253), (100, 50, 1300), (50, 10, 150), (10, 1, 10), (2560, 100, 61440)]
    part = load_profile("loihi2").partitioner

    def err(rows, b):
        return sum(math.log(r * lava_axon_words(n, b) / words) ** 2 for r, n, words in rows)

    for rows, field in ((conv, "conv_synapse_bits"), (dense, "dense_synapse_bits")):
        b = part.get(field) * 8
        assert all(err(rows, b) < err(rows, other) for other in range(2, 25) if other != b), field
    q = part.conv_synapse_bits
    assert q.basis == "fitted" and list(q.fit_set) == ["loihi2-pilotnet-lif"]


def test_loihi2_maps_pilotnet_as_the_compiler_did():
    hw = load_profile("loihi2")
    conv3 = _conv("conv3", (36, 15, 49), 48, stride=2)
    conv4 = Unit("conv4", (c4 := Conv2d((48, 7, 24), 64, (3, 3), (2, 1), (1, 1, 0, 0), 1, 1, True),
                           Neuron(c4.out_shape, "lif")), True, "")
    fc1 = _dense("fc1", 2560, 100)
    m = map_units([conv3, conv4, fc1], hw, training=False, precision="int8")
    assert [u.cores for u in m.units] == [3, 3, 12]
    assert m.unit("conv3").positions_per_core == 8 * 7 and m.unit("fc1").limited_by == "synapse_words"
    assert m.unit("fc1").channels_per_core == 9 and m.cores_needed == 18


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
    assert u.latency_s == pytest.approx(384 * 4 * dict(hw.quantities())["neuro.neuron_update_time"].value_si)
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
    bare = load_profile("loihi2").to_dict()
    bare["stacks"] = {}
    assert stack_overhead(profile_from_dict(bare), timesteps=4) is None   # no stack given


def test_profile_graph_adds_the_stacks_time_and_energy_on_top_of_the_cores():
    net = _net(_conv("c", (3, 8, 16), 4))
    bare = load_profile("loihi2").to_dict()
    bare["stacks"] = {}   # the shipped profile's own stack (Lava's per-step floor) taken out
    base = profile_graph(net, profile_from_dict(bare), timesteps=5, input_activity=0.1, precision="int8")["infer"]
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


def test_loihi2_maps_a_deep_yolo_kp_conv_in_channel_groups_not_width_columns():
    # YOLO-KP's conv6 (3 x 3, 256 -> 256 channels, 14 x 14 out): the compiler's table gives 16 cores; a rule
    # cutting the width only, with the whole kernel on every core, needed 98
    c = Conv2d((256, 28, 28), 256, (3, 3), (2, 2), (1, 1, 1, 1), 1, 1, True)
    m = map_units([Unit("conv6", (c, Neuron(c.out_shape, "lif")), True, "")], load_profile("loihi2"),
                  training=False, precision="int8")
    u = m.unit("conv6")
    assert (u.cores, u.limited_by, u.channels_per_core) == (16, "synapse_words", 32)
