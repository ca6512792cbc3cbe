"""NIR import beyond feed-forward chains: recurrence (snntorch's RLeaky/RSynaptic, self loops), residual
skips, a PilotNet-like LIF stack with an analog input, and the Scale, Threshold, Delay, I, Conv1d and
SumPool2d nodes; neuron parameters kept; counts by hand; JSON round trips; one-line refusals."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from ffneuro.cli.main import main
from torch.utils.flop_counter import FlopCounterMode

from ffneuro.accounting.phases import graph_inference_costs
from ffneuro.errors import ConfigError
from ffneuro.profiler import profile_graph
from ffneuro.profiler.hardware import load_profile
from ffneuro.profiler.locality import map_units
from ffneuro.spec import Conv1d, Conv2d, Delay, Linear, NetSpec, Neuron, Scale, Threshold, Unit, node_from_dict

nir = pytest.importorskip("nir")

from ffneuro.spec.nir_io import _read_graph, graph_to_spec, read_nir, read_nir_parameters, write_nir  # noqa: E402, write_nir

T = 5   # timesteps in the cost checks


def ones(*shape):
    return np.ones(shape, dtype=np.float32)


def lif(*n, **kw):
    p = dict(tau=ones(*n) * 2e-3, r=ones(*n) * 20, v_leak=ones(*n) * 0, v_threshold=ones(*n), v_reset=ones(*n) * 0)
    return nir.LIF(**{**p, **kw})


def write(path, nodes, edges, **kw):
    nir.write(str(path), nir.NIRGraph(nodes=nodes, edges=edges, type_check=False, **kw))
    return path


# --------------------------------------------------------------------------------------------- recurrence

def snntorch_rleaky(n_in=5, hidden=3, out=2):
    """What snntorch 1.0.0's export_to_nir writes for Linear → RLeaky(all_to_all) → Linear → Leaky (checked
    against the package: nirtorch inlines the RLeaky subgraph as ``lif1.lif`` and ``lif1.w_rec``, the
    recurrent weight an Affine, the keys in HDF5's sorted order, the edges in no particular order)."""
    nodes = {"fc1": nir.Affine(weight=ones(hidden, n_in), bias=ones(hidden)),
             "fc2": nir.Affine(weight=ones(out, hidden), bias=ones(out)),
             "input": nir.Input(input_type={"input": np.array([n_in])}),
             "lif1.lif": lif(hidden), "lif1.w_rec": nir.Affine(weight=ones(hidden, hidden), bias=ones(hidden)),
             "lif2": lif(out), "output": nir.Output(output_type={"output": np.array([out])})}
    edges = [("fc2", "lif2"), ("input", "fc1"), ("lif1.w_rec", "lif1.lif"), ("lif2", "output"),
             ("lif1.lif", "lif1.w_rec"), ("fc1", "lif1.lif"), ("lif1.lif", "fc2")]
    return nodes, edges


def test_snntorch_rleaky_export_reads_as_a_recurrent_unit(tmp_path):
    spec = read_nir(write(tmp_path / "rleaky.nir", *snntorch_rleaky()))
    rec, head = spec.units
    assert [u.name for u in spec.units] == ["fc1", "fc2"]
    assert [(n.kind, n.name) for n in rec.nodes] == [("linear", "fc1"), ("linear", "lif1.w_rec"), ("add", ""),
                                                     ("neuron", "lif1.lif")]
    # w_rec (node 1) reads the LIF (node 3) of the previous timestep; the add sums fc1 and w_rec
    assert rec.inputs == ((-1,), (3,), (0, 1), (2,)) and rec.feedback == ((1, 3),)
    assert rec.recurrent == (Linear((3,), 3),) and rec.spiking and rec.neuron.model == "lif"
    assert (rec.in_shape, rec.out_shape, rec.neurons, rec.state_elems) == ((5,), (3,), 3, 3 + 3)
    assert (rec.macs, rec.recurrent_macs, rec.synops, rec.recurrent_synops) == (15 + 9, 9, 24, 9)
    assert head.nodes == (Linear((3,), 2), Neuron((2,), "lif"))


def test_recurrent_synapses_are_costed_every_timestep(tmp_path):
    """Per timestep: MACs 15 (fc1) + 9 (w_rec); elementwise 3 + 3 bias adds, 3 adds of the recurrent current,
    4 · 3 LIF ops; state: 3 membranes + the 3 spikes held for w_rec; weights 15 + 3 + 9 + 3 = 30 (fp32)."""
    spec = read_nir(write(tmp_path / "rleaky.nir", *snntorch_rleaky()))
    cost = graph_inference_costs(spec, timesteps=T).unit("fc1").phase("forward")
    assert cost.macs == cost.sparse_macs == T * 24
    assert cost.elementwise_ops == T * (6 + 3 + 12)
    assert cost.bytes_read.weights == T * 30 * 4
    assert cost.bytes_read.activations == T * (5 + 6) * 4 and cost.bytes_written.activations == T * (3 + 6) * 4
    assert cost.crossing_read == T * 5 * 4 and cost.crossing_written == T * 3 * 4
    # the profiler charges them too: every timestep, dense and (here) as events
    est = profile_graph(spec, "loihi", timesteps=T, activity=0.5)["infer"]
    assert est.macs == est.synops == T * (24 + 6)
    assert {u.unit: u.neuron_updates for u in est.per_unit} == {"fc1": T * 3, "fc2": T * 2}


def test_recurrent_weights_get_cores_like_any_weighted_node(tmp_path):
    spec = read_nir(write(tmp_path / "rleaky.nir", *snntorch_rleaky(n_in=40, hidden=30)))
    hw = load_profile("truenorth")   # unrolled: every real synapse stored
    m = map_units(list(spec.units), hw, training=False, precision="int8")
    assert m.unit("fc1").synapses == 40 * 30 + 30 * 30


def test_a_nested_recurrent_subgraph_reads_as_the_inlined_one(tmp_path):
    """snntorch before nirtorch 2 wrote RLeaky as a NIRGraph node (input → lif ⟲ w_rec → output) wired by its key."""
    flat_nodes, _ = snntorch_rleaky()
    sub = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([3])}), "lif": lif(3),
                              "w_rec": nir.Affine(weight=ones(3, 3), bias=ones(3)),
                              "output": nir.Output(output_type={"output": np.array([3])})},
                       edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
                       type_check=False)
    nodes = {k: v for k, v in flat_nodes.items() if not k.startswith("lif1.")} | {"lif1": sub}
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")]
    nested = read_nir(write(tmp_path / "nested.nir", nodes, edges))
    flat = read_nir(write(tmp_path / "flat.nir", *snntorch_rleaky()))
    assert nested.units == flat.units
    assert [n.name for n in nested.nodes] == [n.name for n in flat.nodes]


def test_rsynaptic_diagonal_recurrence_and_a_self_loop(tmp_path):
    """RSynaptic with all_to_all=False: a CubaLIF (2 state variables) and a diagonal Linear w_rec; and a LIF
    wired straight back into itself, which reads its own spikes of the last step through an add."""
    n = {"input": nir.Input(input_type={"input": np.array([4])}),
         "fc": nir.Linear(weight=ones(3, 4)),
         "syn.lif": nir.CubaLIF(tau_syn=ones(3), tau_mem=ones(3) * 2, r=ones(3), v_leak=ones(3) * 0,
                                v_threshold=ones(3), w_in=ones(3)),
         "syn.w_rec": nir.Linear(weight=np.diag(np.arange(1, 4, dtype=np.float32))),
         "out": nir.Linear(weight=ones(2, 3)), "loop": lif(2),
         "output": nir.Output(output_type={"output": np.array([2])})}
    edges = [("input", "fc"), ("fc", "syn.lif"), ("syn.lif", "syn.w_rec"), ("syn.w_rec", "syn.lif"),
             ("syn.lif", "out"), ("out", "loop"), ("loop", "loop"), ("loop", "output")]
    spec = read_nir(write(tmp_path / "rsyn.nir", n, edges))
    syn, out = spec.units
    assert syn.inputs == ((-1,), (3,), (0, 1), (2,)) and syn.nodes[3] == Neuron((3,), "cubalif", 2)
    assert syn.state_elems == 2 * 3 + 3
    assert [n.kind for n in out.nodes] == ["linear", "add", "neuron"] and out.inputs == ((-1,), (0, 2), (1,))
    assert out.feedback == ((1, 2),) and out.recurrent == () and out.neurons == 2
    ew = graph_inference_costs(spec, timesteps=T).unit("out").total.elementwise_ops
    assert ew == T * (2 + 4 * 2)     # no bias; the add of the fed-back spikes; the LIF


def test_a_loop_without_neuron_or_delay_is_refused_as_recurrent_naming_the_node(tmp_path):
    n = {"input": nir.Input(input_type={"input": np.array([3])}),
         "a": nir.Affine(weight=ones(3, 3), bias=ones(3)), "b": nir.Affine(weight=ones(3, 3), bias=ones(3)),
         "output": nir.Output(output_type={"output": np.array([3])})}
    path = write(tmp_path / "loop.nir", n, [("input", "a"), ("a", "b"), ("b", "a"), ("b", "output")])
    with pytest.raises(ConfigError, match=r"NIR node a: recurrent loop a -> b -> a has no neuron or delay"):
        read_nir(path)
    result = CliRunner().invoke(main, ["profile", str(path), "--hw", "loihi"])
    assert result.exit_code == 1 and result.stderr.startswith("Error:") and "recurrent" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    # with a delay on the loop it is a recurrence the spec holds: the loop's weighted node b runs first, on
    # the delay line's output of the step before (a's output 2 steps before that)
    n["d"] = nir.Delay(delay=np.full(3, 2.0))
    spec = read_nir(write(tmp_path / "delayed.nir", n, [("input", "a"), ("a", "d"), ("d", "b"), ("b", "a"),
                                                         ("b", "output")]))
    (unit,) = spec.units
    assert [(n.kind, n.name) for n in unit.nodes] == [("linear", "b"), ("add", ""), ("linear", "a"), ("delay", "d")]
    assert unit.inputs == ((3,), (-1, 0), (1,), (2,)) and unit.nodes[3] == Delay((3,), 2)
    assert unit.feedback == ((0, 3),) and unit.recurrent == (Linear((3,), 3),) and unit.state_elems == 2 * 3 + 3


# ---------------------------------------------------------------------------------------- residual, analog

def test_a_residual_block_with_a_skip_is_one_unit(tmp_path):
    """c0 → l0 → c1 → l1 → c2 → (+ l0) → l2 → flatten → fc: the skip from l0 joins after c2, so c1, c2 and
    the add are one unit whose input is l0's output. Each 2→2 3×3 'same' conv on 6×6: 72 outputs × 18
    MACs; real taps 16 per axis (2 + 3·4 + 2... : valid_taps(6, 3, 1, 1) = 16), so 16² per channel pair × 4."""
    conv = dict(input_shape=(6, 6), weight=ones(2, 2, 3, 3), stride=1, padding=1, dilation=1, groups=1,
                bias=np.zeros(2, dtype=np.float32))
    shp = (2, 6, 6)
    n = {"input": nir.Input(input_type={"input": np.array(shp)}), "c0": nir.Conv2d(**conv), "l0": lif(*shp),
         "c1": nir.Conv2d(**conv), "l1": lif(*shp), "c2": nir.Conv2d(**conv), "l2": lif(*shp),
         "flat": nir.Flatten(input_type={"input": np.array(shp)}, start_dim=0),
         "fc": nir.Linear(weight=ones(3, 72)), "output": nir.Output(output_type={"output": np.array([3])})}
    edges = [("input", "c0"), ("c0", "l0"), ("l0", "c1"), ("c1", "l1"), ("l1", "c2"), ("c2", "l2"), ("l0", "l2"),
             ("l2", "flat"), ("flat", "fc"), ("fc", "output")]
    spec = read_nir(write(tmp_path / "res.nir", n, edges))
    assert [u.name for u in spec.units] == ["c0", "c1", "fc"]
    block = spec.unit("c1")
    assert [n.kind for n in block.nodes] == ["conv2d", "neuron", "conv2d", "add", "neuron", "flatten"]
    assert block.inputs == ((-1,), (0,), (1,), (-1, 2), (3,), (4,)) and block.feedback == ()
    assert (block.macs, block.synops) == (2 * 72 * 18, 2 * 16 ** 2 * 4)
    assert spec.macs == 3 * 72 * 18 + 72 * 3
    assert NetSpec.from_json(spec.to_json()) == spec


def pilotnet_like(path, **input_kw):
    """A PilotNet-style LIF stack (lava-dl's benchmark, scaled down): a 3×16×32 frame, conv 8 3×3/2 → LIF →
    conv 12 3×3/2 → LIF → flatten → affine 252→10 → LIF → affine 10→1 → output; the frame is analog."""
    n = {"input": nir.Input(input_type={"input": np.array([3, 16, 32])}, **input_kw),
         "conv1": nir.Conv2d(input_shape=(16, 32), weight=ones(8, 3, 3, 3), stride=2, padding=0, dilation=1,
                             groups=1, bias=ones(8)),
         "lif1": lif(8, 7, 15),
         "conv2": nir.Conv2d(input_shape=(7, 15), weight=ones(12, 8, 3, 3), stride=2, padding=0, dilation=1,
                             groups=1, bias=ones(12)),
         "lif2": lif(12, 3, 7), "flat": nir.Flatten(input_type={"input": np.array([12, 3, 7])}, start_dim=0),
         "fc1": nir.Affine(weight=ones(10, 252), bias=ones(10)), "lif3": lif(10),
         "fc2": nir.Affine(weight=ones(1, 10), bias=ones(1)), "output": nir.Output(output_type={"output": np.array([1])})}
    keys = list(n)
    return write(path, n, list(zip(keys, keys[1:])))


def test_pilotnet_like_lif_stack_with_an_analog_input(tmp_path):
    spec = read_nir(pilotnet_like(tmp_path / "pilot.nir"))
    assert spec.input_encoding == "analog"   # NIR does not say; a frame is values, not events
    assert [u.name for u in spec.units] == ["conv1", "conv2", "fc1", "fc2"]
    c1, c2 = spec.unit("conv1").synapses[0], spec.unit("conv2").synapses[0]
    assert (c1.out_shape, c2.out_shape) == ((8, 7, 15), (12, 3, 7))
    assert (c1.macs, c1.synops) == (8 * 7 * 15 * 27, 8 * 7 * 15 * 27)   # no padding: every tap is real
    assert c2.macs == 12 * 3 * 7 * 72 and spec.macs == 22680 + 18144 + 2520 + 10
    data = json.loads(spec.to_json())
    assert data["input_encoding"] == "analog" and NetSpec.from_dict(data) == spec
    events = read_nir(pilotnet_like(tmp_path / "dvs.nir", metadata={"input_encoding": "spikes"}))
    assert events.input_encoding == "spikes" and NetSpec.from_json(events.to_json()).input_encoding == "spikes"
    assert read_nir(tmp_path / "pilot.nir", input_encoding="spikes").input_encoding == "spikes"
    with pytest.raises(ConfigError, match="input encoding"):
        read_nir(tmp_path / "pilot.nir", input_encoding="rate")


# ------------------------------------------------------------------------------ Scale, Threshold, Delay, I, …

def elementwise_graph(path):
    """2×16 → Conv1d 4 × 3 taps, padding 1 → Scale 0.5 → Threshold 1 → Delay 2 steps → flatten → Linear 5 → I."""
    s = (4, 16)
    n = {"input": nir.Input(input_type={"input": np.array([2, 16])}),
         "c": nir.Conv1d(input_shape=16, weight=ones(4, 2, 3), stride=1, padding=1, dilation=1, groups=1,
                         bias=np.zeros(4, dtype=np.float32)),
         "scale": nir.Scale(scale=ones(*s) * 0.5), "th": nir.Threshold(threshold=ones(*s)),
         "delay": nir.Delay(delay=ones(*s) * 2), "flat": nir.Flatten(input_type={"input": np.array(s)}, start_dim=0),
         "fc": nir.Linear(weight=ones(5, 64)), "int": nir.I(r=np.arange(5, dtype=np.float32)),
         "output": nir.Output(output_type={"output": np.array([5])})}
    keys = list(n)
    return write(path, n, list(zip(keys, keys[1:])))


def test_scale_threshold_delay_integrator_and_conv1d_by_hand(tmp_path):
    """Conv1d: 4 × 16 outputs × 6 MACs = 384; real taps per channel pair 2 + 14 · 3 = 46 (the ends lose one),
    4 · 2 · 46 = 368. Per step: scale 64 multiplies, threshold 64 compares, the delay moves 64 values and
    holds 2 · 64, the integrator does 2 ops for each of its 5 neurons."""
    spec = read_nir(elementwise_graph(tmp_path / "ew.nir"))
    conv, head = spec.units
    assert [n.kind for n in conv.nodes] == ["conv1d", "scale", "threshold", "delay", "flatten"]
    c = conv.synapses[0]
    assert c == Conv1d((2, 16), 4, 3, 1, (1, 1), 1, 1, False) and (c.macs, c.synops) == (384, 368)
    assert conv.spiking and not head.spiking and head.nodes[1] == Neuron((5,), "i", 1)
    assert conv.nodes[3] == Delay((4, 16), 2) and conv.state_elems == 128 and conv.params == 24 + 64
    cost = graph_inference_costs(spec, timesteps=T)
    f = cost.unit("c").phase("forward")
    assert f.macs == T * 384 and f.elementwise_ops == T * (64 + 64)
    assert f.bytes_read.activations == T * (32 + 64) * 4 and f.bytes_written.activations == T * (64 + 64) * 4
    g = cost.unit("fc").phase("forward")
    assert g.macs == T * 320 and g.elementwise_ops == T * 2 * 5
    assert g.bytes_read.activations == T * (64 + 5) * 4


def test_sum_and_avg_pooling_read_as_pool_nodes(tmp_path):
    for cls, pool in ((nir.SumPool2d, "sum"), (nir.AvgPool2d, "avg")):
        n = {"input": nir.Input(input_type={"input": np.array([1, 8, 8])}),
             "conv": nir.Conv2d(input_shape=(8, 8), weight=ones(2, 1, 3, 3), stride=1, padding=1, dilation=1,
                                groups=1, bias=np.zeros(2, dtype=np.float32)),
             "lif": lif(2, 8, 8), "pool": cls(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                             padding=np.array([0, 0])),
             "flat": nir.Flatten(input_type={"input": np.array([2, 4, 4])}, start_dim=0),
             "fc": nir.Linear(weight=ones(3, 32)), "output": nir.Output(output_type={"output": np.array([3])})}
        keys = list(n)
        spec = read_nir(write(tmp_path / f"{pool}.nir", n, list(zip(keys, keys[1:]))))
        p = spec.units[0].nodes[2]
        assert (p.kind, p.pool, p.out_shape) == ("pool2d", pool, (2, 4, 4))
        ew = graph_inference_costs(spec).unit("conv").total.elementwise_ops
        assert ew == 4 * 128 + {"sum": 3, "avg": 4}[pool] * 32     # LIF, then the pool per output


@pytest.mark.parametrize("c_in,c_out,k,s,p,d,g,n", [(2, 4, 3, 1, 1, 1, 1, 16), (4, 6, 5, 2, 2, 2, 2, 21),
                                                     (3, 3, 4, 3, 0, 1, 3, 20)])
def test_conv1d_counts_match_torch(c_in, c_out, k, s, p, d, g, n):
    node = Conv1d((c_in, n), c_out, k, s, p, d, g, bias=False)
    conv = torch.nn.Conv1d(c_in, c_out, k, s, p, d, g, bias=False)
    torch.nn.init.ones_(conv.weight)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        y = conv(torch.ones(1, c_in, n))
    assert tuple(y.shape[1:]) == node.out_shape and counter.get_total_flops() == 2 * node.macs
    assert y.sum().item() == node.synops      # unit weights on ones: the taps that land inside the input
    assert node.as_conv2d().macs == node.macs and node.as_conv2d().synops == node.synops


def test_conv1d_maps_onto_cores_as_its_2d_equivalent():
    c1 = Conv1d((8, 64), 16, 5, 1, 2)
    hw = load_profile("loihi")
    one = map_units([Unit("c", (c1,))], hw, training=False, precision="int8").unit("c")
    two = map_units([Unit("c", (c1.as_conv2d(),))], hw, training=False, precision="int8").unit("c")
    assert (one.cores, one.synapses, one.neurons) == (two.cores, two.synapses, two.neurons)


@pytest.mark.parametrize("hw", ["loihi", "truenorth"])
def test_conv1d_graph_profiles_on_event_driven_targets(tmp_path, hw):
    spec = read_nir(elementwise_graph(tmp_path / "ew.nir"))
    est = profile_graph(spec, hw, timesteps=2)["infer"]
    assert est.macs == 2 * (384 + 320) and est.synops == 2 * (368 + 320)


def test_conv1d_graph_profiles_on_a_monolithic_target(tmp_path):
    spec = read_nir(elementwise_graph(tmp_path / "ew.nir"))
    assert profile_graph(spec, "h100", timesteps=2)["infer"].macs == 2 * (384 + 320)


# ---------------------------------------------------------------------------- parameters, JSON, shapes only

def test_neuron_parameters_are_kept_scalars_when_uniform(tmp_path):
    spec = read_nir(elementwise_graph(tmp_path / "ew.nir"))
    scale, th, delay = spec.units[0].nodes[1:4]
    assert (scale.parameters, th.parameters, delay.parameters) == ({"scale": 0.5}, {"threshold": 1.0}, {"delay": 2.0})
    r = spec.units[1].nodes[1].parameters["r"]
    assert isinstance(r, np.ndarray) and r.tolist() == [0, 1, 2, 3, 4]      # not uniform: the array
    rec = read_nir(write(tmp_path / "rleaky.nir", *snntorch_rleaky())).units[0].nodes[3]
    assert rec.name == "lif1.lif"
    assert rec.parameters == pytest.approx({"tau": 2e-3, "r": 20.0, "v_leak": 0.0, "v_threshold": 1.0, "v_reset": 0.0})
    # the JSON keeps the scalars and marks an array as null; equality and costs ignore them
    d = spec.units[1].nodes[1].to_dict()
    assert d["parameters"] == {"r": None} and d["name"] == "int"
    back = node_from_dict(json.loads(json.dumps(rec.to_dict())))
    assert back == rec and back.parameters == rec.parameters and back.name == "lif1.lif"
    assert NetSpec.from_json(spec.to_json()) == spec
    # the arrays, by NIR key, for a simulator
    params = read_nir_parameters(tmp_path / "ew.nir")
    assert set(params) == {"scale", "th", "delay", "int"} and params["int"]["r"].tolist() == [0, 1, 2, 3, 4]
    assert read_nir_parameters(tmp_path / "ew.nir", weights=True)["fc"]["weight"].shape == (5, 64)
    assert set(read_nir_parameters(tmp_path / "rleaky.nir")["lif1.lif"]) == {"tau", "r", "v_leak", "v_threshold",
                                                                              "v_reset"}


def test_a_neuron_parameter_of_the_wrong_size_is_refused(tmp_path):
    n = {"input": nir.Input(input_type={"input": np.array([4])}), "fc": nir.Linear(weight=ones(3, 4)),
         "lif": lif(2), "output": nir.Output(output_type={"output": np.array([3])})}
    with pytest.raises(ConfigError, match="NIR node lif: LIF has 2 values of tau for an input of \\(3,\\)"):
        read_nir(write(tmp_path / "bad.nir", n, [("input", "fc"), ("fc", "lif"), ("lif", "output")]))


def test_reading_for_costs_never_loads_a_weight(tmp_path):
    """The profiler's read gives weights as zero-strided stand-ins of their shape: no values are read."""
    path = write(tmp_path / "rleaky.nir", *snntorch_rleaky(n_in=300, hidden=200))
    graph = _read_graph(path, weights=False)
    w = graph.nodes["fc1"].weight
    assert w.shape == (200, 300) and w.strides == (0, 0)
    assert _read_graph(path, weights=True).nodes["fc1"].weight.strides != (0, 0)
    assert read_nir(path).units[0].macs == 200 * 300 + 200 * 200


def test_recurrent_units_round_trip_and_check_their_wiring():
    rec = Unit("r", (Linear((4,), 3), Linear((3,), 3), Neuron((3,), "lif")), inputs=((-1,), (2,), (0,)))
    assert rec.feedback == ((1, 2),) and rec.upstream(2) == {0}
    spec = NetSpec((4,), (rec,), "rnn", "spikes")
    assert NetSpec.from_json(spec.to_json()) == spec and NetSpec.from_json(spec.to_json()).input_encoding == "spikes"
    with pytest.raises(ConfigError, match=r"neuron \(node 2\) hands on \(previous timestep\) \(3,\) but linear \(node 1\) takes \(2,\)"):
        Unit("r", (Linear((4,), 3), Linear((2,), 3), Neuron((3,), "lif")), inputs=((-1,), (2,), (0,)))
    with pytest.raises(ConfigError, match="does not have"):
        Unit("r", (Linear((4,), 3), Neuron((3,), "lif")), inputs=((-1,), (5,)))
    with pytest.raises(ConfigError, match="no node reads the unit's input"):
        Unit("r", (Linear((3,), 3),), inputs=((0,),))
    with pytest.raises(ConfigError, match="input encoding"):
        NetSpec((4,), (rec,), input_encoding="poisson")


def test_new_nodes_round_trip_through_json():
    for node in (Conv1d((3, 10), 2, 3, 2, (1, 0), 1, 1, True), Scale((2, 3)), Threshold((4,)), Delay((5,), 3),
                 Neuron((2,), "i", 1), Conv2d((1, 4, 4), 2, 3)):
        assert node_from_dict(json.loads(json.dumps(node.to_dict()))) == node
    with pytest.raises(ConfigError, match="conv1d needs a \\(C, L\\) input"):
        Conv1d((3, 4, 4), 2, 3)
    with pytest.raises(ConfigError, match="steps must be >= 0"):
        Delay((2,), -1)


def test_snntorch_export_itself_reads_as_recurrent():
    """Against snntorch's own exporter, where it is installed (with nirtorch)."""
    snn = pytest.importorskip("snntorch")
    pytest.importorskip("nirtorch")
    from snntorch.export_nir import export_to_nir

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = torch.nn.Linear(5, 3)
            self.lif1 = snn.RLeaky(beta=0.9, linear_features=3, init_hidden=True)
            self.fc2 = torch.nn.Linear(3, 2)
            self.lif2 = snn.Leaky(beta=torch.full((2,), 0.8), threshold=torch.ones(2), init_hidden=True, output=True)

        def forward(self, x):
            return self.lif2(self.fc2(self.lif1(self.fc1(x))))

    spec = graph_to_spec(export_to_nir(Net(), torch.randn(1, 5), ignore_dims=[0]))
    rec = spec.units[0]
    assert rec.feedback and rec.recurrent == (Linear((3,), 3),) and rec.macs == 15 + 9
    assert rec.neuron.parameters["v_threshold"] == pytest.approx(1.0)


def test_hostile_files_are_one_line_config_errors(tmp_path):
    import h5py

    path = write(tmp_path / "rleaky.nir", *snntorch_rleaky())
    with h5py.File(path, "r+") as f:
        del f["node/nodes/fc2/type"]
        f["node/nodes/fc2/type"] = b"Foo"
    with pytest.raises(ConfigError, match="not a readable NIR file"):
        read_nir(path)
    nodes, edges = snntorch_rleaky()
    with pytest.raises(ConfigError, match="NIR edge fc1 -> ghost names ghost, which is not a node"):
        graph_to_spec(nir.NIRGraph(nodes=nodes, edges=[*edges, ("fc1", "ghost")], type_check=False))
    result = CliRunner().invoke(main, ["profile", str(path), "--hw", "loihi"])
    assert result.exit_code == 1 and result.stderr.startswith("Error:") and "Traceback" not in result.output


def test_a_recurrent_unit_is_written_back_with_its_cycle(tmp_path):
    """spec → NIR → spec keeps the recurrent connection (an edge back to the weighted node that reads the
    neuron's previous output) and its per-timestep cost."""
    spec = read_nir(write(tmp_path / "rleaky.nir", *snntorch_rleaky()))
    write_nir(spec, tmp_path / "back.nir")
    back = read_nir(tmp_path / "back.nir")
    assert [[n.kind for n in u.nodes] for u in back.units] == [[n.kind for n in u.nodes] for u in spec.units]
    assert [u.feedback for u in back.units] == [u.feedback for u in spec.units] and back.units[0].feedback
    assert (back.macs, back.synops) == (spec.macs, spec.synops)


# ------------------------------------------------------------------------- import, then simulate (issue 16)

def _lif_step(v, current, p, dt=1e-4):
    """One forward-Euler LIF step as NIR defines it (the oracle for the simulator's wiring)."""
    v = v + dt / p.tau * ((p.v_leak - v) + p.r * current)
    spike = (v > p.v_threshold).float()
    return torch.where(spike > 0, torch.as_tensor(p.v_reset), v), spike


def test_a_residual_graph_simulates_with_its_skip_added(tmp_path):
    """The skip l0 → l2 arrives in the same timestep as c2's output: over three timesteps every LIF layer's
    spikes equal a hand-stepped network in which l2 receives c2(l1) + l0."""
    rng = np.random.default_rng(0)
    w = [rng.normal(0, 0.6, (2, c, 3, 3)).astype(np.float32) for c in (1, 2, 2)]
    conv = dict(input_shape=(6, 6), stride=1, padding=1, dilation=1, groups=1)
    shp = (2, 6, 6)
    p = dict(tau=ones(*shp) * 2e-3, r=ones(*shp) * 20, v_leak=ones(*shp) * 0, v_threshold=ones(*shp) * 0.5,
             v_reset=ones(*shp) * 0)
    n = {"input": nir.Input(input_type={"input": np.array((1, 6, 6))}),
         "c0": nir.Conv2d(weight=w[0], bias=np.zeros(2, np.float32), **conv), "l0": nir.LIF(**p),
         "c1": nir.Conv2d(weight=w[1], bias=np.zeros(2, np.float32), **conv), "l1": nir.LIF(**p),
         "c2": nir.Conv2d(weight=w[2], bias=np.zeros(2, np.float32), **conv), "l2": nir.LIF(**p),
         "output": nir.Output(output_type={"output": np.array(shp)})}
    edges = [("input", "c0"), ("c0", "l0"), ("l0", "c1"), ("c1", "l1"), ("l1", "c2"), ("c2", "l2"), ("l0", "l2"),
             ("l2", "output")]
    path = write(tmp_path / "res.nir", n, edges)
    assert [u.name for u in read_nir(path).units] == ["c0", "c1"]
    x = torch.from_numpy(rng.uniform(0, 1, (3, 1, 1, 6, 6)).astype(np.float32)).expand(3, 3, 1, 6, 6).contiguous()
    from ffneuro.simulate.nir_sim import run_graph

    outs, _ = run_graph(nir.read(str(path)), x)
    lif_p = nir.LIF(**{k: torch.from_numpy(v) for k, v in p.items()})
    conv_w = [torch.from_numpy(a) for a in w]
    v = [torch.zeros(3, *shp) for _ in range(3)]
    for t in range(3):
        v[0], s0 = _lif_step(v[0], torch.nn.functional.conv2d(x[:, t], conv_w[0], padding=1), lif_p)
        v[1], s1 = _lif_step(v[1], torch.nn.functional.conv2d(s0, conv_w[1], padding=1), lif_p)
        v[2], s2 = _lif_step(v[2], torch.nn.functional.conv2d(s1, conv_w[2], padding=1) + s0, lif_p)
        for name, want in (("l0", s0), ("l1", s1), ("l2", s2)):
            torch.testing.assert_close(outs[name][t], want)
    assert sum(float(outs["l2"][t].sum()) for t in range(3)) > 0      # the check saw spikes


@pytest.mark.parametrize("graph", ["pilotnet", "rleaky", "residual"])
def test_imported_graphs_simulate_from_the_cli(tmp_path, graph):
    """The three kinds of graph issue 16 names import and simulate through ``ffneuro simulate``: a PilotNet-
    style LIF stack fed analog frames, snntorch's recurrent RLeaky export, a residual skip."""
    from cli_runner import invoke

    if graph == "pilotnet":
        path, args = pilotnet_like(tmp_path / "g.nir"), ["--analog"]
    elif graph == "rleaky":
        path, args = write(tmp_path / "g.nir", *snntorch_rleaky()), []
    else:
        shp = (2, 6, 6)
        conv = dict(input_shape=(6, 6), weight=ones(2, 2, 3, 3) * 0.2, stride=1, padding=1, dilation=1, groups=1,
                    bias=np.zeros(2, dtype=np.float32))
        n = {"input": nir.Input(input_type={"input": np.array(shp)}), "c0": nir.Conv2d(**conv), "l0": lif(*shp),
             "c1": nir.Conv2d(**conv), "l1": lif(*shp), "add_out": lif(*shp),
             "output": nir.Output(output_type={"output": np.array(shp)})}
        edges = [("input", "c0"), ("c0", "l0"), ("l0", "c1"), ("c1", "l1"), ("l1", "add_out"), ("l0", "add_out"),
                 ("add_out", "output")]
        path, args = write(tmp_path / "g.nir", n, edges), ["--input-rate", "0.5"]
    read_nir(path)
    data = json.loads(invoke("simulate", path, "--hw", "loihi2", "--timesteps", "6", "--samples", "2", "--json",
                             *args, ok=True).stdout)
    layers = {layer["name"]: layer["activity"] for layer in data["layers"]}
    assert data["timesteps"] == 6 and data["samples"] == 2
    if graph == "pilotnet":
        assert layers["input"] == 1.0             # analog frames: every input element carries a value
    else:
        assert 0 < layers["input"] < 1            # Poisson spikes
    assert all(0 <= a <= 1 for a in layers.values()) and any(a > 0 for k, a in layers.items() if k != "input")
