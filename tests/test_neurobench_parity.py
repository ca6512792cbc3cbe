"""Effective synaptic ops per layer as NeuroBench counts them (per output position, sparse linear layers),
and its static metrics (parameter count, footprint, connection sparsity)."""
from __future__ import annotations

import math

import pytest
import torch

from ffneuro.blocks import BLOCKS
from ffneuro.config import RunConfig
from ffneuro.models import BPNet, FFNet
from ffneuro.profiler import profile_network
from ffneuro.profiler.activity import ActivitySources
from ffneuro.profiler.sparsity import measure_activity, zero_fraction
from ffneuro.profiler.static import weight_stats, workload_static
from ffneuro.profiler.synops import layer_synops

# two units, the second downsampling; what a block type needs instead (as tests/test_block_contract.py)
DEFAULT = dict(layers=2, widths=(8, 8), kernel=3, pool="max", pool_every=2)
NEEDS: dict[str, dict] = {"fc": dict(pool="none"),
                          "cfse": dict(widths=(10, 20), labels="none", goodness="classwise", loss="cwc")}


def config(arch: str = "conv", **kw) -> RunConfig:
    values = {**DEFAULT, **NEEDS.get(arch, {}), "arch": arch, "readout": "both", "readout_from": 1,
              "train_first_layer": True, "epochs": 1}
    values.update(kw)
    return RunConfig(**values)


def bordered(n: int, shape=(1, 8, 8), border: int = 2) -> torch.Tensor:
    """Images whose outer ``border`` pixels are zero (MNIST's black frame) and whose inside is positive."""
    x = torch.rand(n, *shape) + 0.1
    x[..., :border, :] = 0
    x[..., -border:, :] = 0
    x[..., :, :border] = 0
    x[..., :, -border:] = 0
    return x


def test_a_conv_over_a_zero_border_is_counted_per_position():
    """3×3 'same' conv on a 4×4 image whose only nonzero pixels are the inner 2×2. Per output row (and
    column) the window sees 1, 2, 2, 1 of the two inner rows: 6 × 6 = 36 effective synaptic ops. Dense
    without padding: per row 2, 3, 3, 2 taps: 10 × 10 = 100. The average zero fraction (12 of 16 pixels)
    gives 100 × 0.25 = 25: wrong by 30.6%."""
    conv = torch.nn.Conv2d(1, 1, 3, padding=1)
    torch.nn.init.constant_(conv.weight, 0.5)
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 1:3, 1:3] = 1.0
    assert layer_synops(conv, x) == (36.0, 100.0)
    assert 100 * (1 - zero_fraction(x)) == 25.0
    # a zero weight is a synapse that does no work (NeuroBench binarises the weights too): the centre tap
    # sees a nonzero input at the four inner positions only
    with torch.no_grad():
        conv.weight[0, 0, 1, 1] = 0.0
    assert layer_synops(conv, x) == (32.0, 100.0)
    # several output channels and images add up
    conv2 = torch.nn.Conv2d(1, 3, 3, padding=1)
    assert layer_synops(conv2, torch.cat([x, x])) == (2 * 3 * 36.0, 2 * 3 * 100.0)


def test_a_linear_layer_skips_its_zero_inputs():
    """The head counted sparse: 4 inputs of which 1 is zero, 3 outputs: 9 of 12; a zero weight on a live
    input takes one more."""
    lin = torch.nn.Linear(4, 3)
    x = torch.tensor([[0.5, 0.0, -1.0, 2.0]])
    assert layer_synops(lin, x) == (9.0, 12.0)
    with torch.no_grad():
        lin.weight[2, 0] = 0.0
    assert layer_synops(lin, x) == (8.0, 12.0)


def test_measured_activity_counts_each_unit_and_the_bp_head_sparse():
    torch.manual_seed(0)
    net = BPNet(config(algo="bp", readout="linear"), (1, 8, 8), 5)
    x = bordered(6)
    act = measure_activity(net, x)
    assert act.synops_layers == ("layer1", "layer2", "head")
    syn = act.synops()
    with torch.no_grad():
        h, expect = x, []
        for block in net.blocks:
            expect.append(layer_synops(block.conv, h))
            h = block.hand_on(block(h))
    for name, (e, d) in zip(("layer1", "layer2"), expect):
        assert syn[name] == (e / 6, d / 6)
    # the head: 5 synapses per nonzero input of the last block's output
    assert syn["head"] == (5 * int(torch.count_nonzero(h)) / 6, 5 * h[0].numel())
    assert syn["head"][0] < syn["head"][1]
    # the first layer: the per-position count differs from the average over the zero border
    avg = syn["layer1"][1] * (1 - act.input_zero_fraction[0])
    assert syn["layer1"][0] != pytest.approx(avg, rel=1e-3)
    # stored as plain lists beside the old keys
    d = act.to_dict()
    assert d["synops_layers"] == ["layer1", "layer2", "head"] and len(d["effective_synops"]) == 3


def test_the_ff_readout_is_counted_on_what_it_reads():
    torch.manual_seed(0)
    net = FFNet(config(), (1, 8, 8), 5)
    x = bordered(4)
    act = measure_activity(net, x)
    assert act.synops_layers == ("unit1", "unit2", "readout")
    feats = net.features(net.readout_input(x))
    assert act.synops()["readout"] == (5 * int(torch.count_nonzero(feats)) / 4, 5 * feats.shape[1])
    # the goodness readout only: no linear layer to count
    plain = FFNet(config(readout="goodness"), (1, 8, 8), 5)
    assert measure_activity(plain, x).synops_layers == ("unit1", "unit2")


def test_the_profiler_charges_the_measured_count_per_layer():
    torch.manual_seed(0)
    cfg = config(algo="bp", readout="linear")
    net = BPNet(cfg, (1, 8, 8), 5)
    x = bordered(8)
    act = measure_activity(net, x)
    layers = cfg.check_shapes((1, 8, 8), 5, algo="ff")
    sources = ActivitySources(synops=act.synops())
    rep = profile_network(layers, "loihi", num_classes=5, batch=1, bp_activity=sources, workloads=["bp_infer"])
    w = rep["bp_infer"]
    for u in w.per_unit:
        eff, dense = act.synops()[u.unit]
        assert u.synops == pytest.approx(dense) and u.effective_synops == pytest.approx(eff)
        assert u.activity_source == "measured sparsity"
    # the zero-fraction estimate of the same run charges another number
    old = profile_network(layers, "loihi", num_classes=5, batch=1, bp_sparsity=list(act.input_zero_fraction),
                          workloads=["bp_infer"])["bp_infer"]
    assert old.unit("head").effective_synops == old.unit("head").synops   # the head counted dense
    assert w.unit("head").effective_synops < old.unit("head").effective_synops
    assert w.energy_j != pytest.approx(old.energy_j)


@pytest.mark.parametrize("arch", BLOCKS.names())
@pytest.mark.parametrize("algo", ["ff", "bp"])
def test_stored_weight_counts_match_torch(arch, algo):
    """Every parameter and buffer of every block type's FF and BP model lands in a layer, and parameters
    and buffers are told apart as torch tells them (so the footprint is NeuroBench's)."""
    torch.manual_seed(0)
    cfg = config(arch, algo=algo, readout="linear" if algo == "bp" else "both")
    shape = (3, 8, 8)
    net = (BPNet if algo == "bp" else FFNet)(cfg, shape, 10)
    names = [c.name for c in net.costs()]
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    stats = weight_stats(state, names)
    assert sum(s.params for s in stats.values()) == sum(p.numel() for p in net.parameters())
    buffers = {k for k, _ in net.named_buffers()} & set(net.state_dict())
    assert sum(s.buffer_bytes for s in stats.values()) == sum(net.state_dict()[k].numel() *
                                                              net.state_dict()[k].element_size() for k in buffers)
    weights = [m.weight for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert sum(s.weights for s in stats.values()) == sum(w.numel() for w in weights)


def test_connection_sparsity_and_footprint_from_stored_weights():
    torch.manual_seed(0)
    net = BPNet(config(algo="bp", readout="linear"), (1, 8, 8), 5)
    with torch.no_grad():
        net.blocks[0].conv.weight[:2] = 0.0
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    stats = weight_stats(state, ["layer1", "layer2"])
    zeros = 2 * math.prod(net.blocks[0].conv.weight.shape[1:])
    total = sum(m.weight.numel() for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))

    class U:   # what workload_static reads of a costed unit
        def __init__(self, unit):
            self.unit = unit

    out = workload_static([U("layer1"), U("layer2"), U("head")], stats, "int8")
    params = sum(p.numel() for p in net.parameters())
    assert out["parameter_count"] == params and out["footprint_bytes"] == params   # one byte each, no buffers
    assert out["connection_sparsity"] == pytest.approx(zeros / total)
    assert workload_static([U("layer1"), U("layer2"), U("head")], stats, "fp32")["footprint_bytes"] == 4 * params
    with pytest.raises(ValueError, match="belongs to no layer"):
        weight_stats({"stray.weight": state["head.weight"]}, ["layer1"])


def test_neurobench_counts_the_same_per_layer_and_static_metrics():
    """Against the neurobench package where it is installed (``pip install neurobench``: its
    ``SynapticOperations``, ``Footprint``, ``ParameterCount`` and ``ConnectionSparsity`` run on the same model
    and images through its own Benchmark loop)."""
    pytest.importorskip("neurobench.benchmarks", reason="neurobench is not installed (pip install neurobench)")
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import ConnectionSparsity, Footprint, ParameterCount
    from neurobench.metrics.workload import SynapticOperations
    from neurobench.models import TorchModel

    torch.manual_seed(0)
    net = BPNet(config(algo="bp", readout="linear", pool="avg", pool_every=1), (1, 12, 12), 10).eval()
    with torch.no_grad():
        net.head.weight[:, :7] = 0.0
    x, y = bordered(6, (1, 12, 12), border=3), torch.zeros(6, dtype=torch.long)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=3)
    bench = Benchmark(TorchModel(net), loader, [], [],
                      [[Footprint, ParameterCount, ConnectionSparsity], [SynapticOperations]])
    theirs = bench.run(verbose=False)
    act = measure_activity(net, x)
    assert theirs["SynapticOperations"]["Effective_MACs"] == pytest.approx(sum(act.effective_synops), rel=1e-12)
    assert theirs["SynapticOperations"]["Dense"] == pytest.approx(sum(act.dense_synops), rel=1e-12)
    stats = weight_stats({k: v.numpy() for k, v in net.state_dict().items()}, ["layer1", "layer2"])

    class U:
        def __init__(self, unit):
            self.unit = unit

    ours = workload_static([U("layer1"), U("layer2"), U("head")], stats, "fp32")
    assert ours["parameter_count"] == theirs["ParameterCount"]
    assert ours["footprint_bytes"] == theirs["Footprint"]
    assert ours["connection_sparsity"] == pytest.approx(theirs["ConnectionSparsity"], abs=5e-5)   # they round
