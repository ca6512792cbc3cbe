"""The layer-spec graph: node shapes and counts (against torch and by hand), units, JSON round trip."""
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ffneuro.accounting import head_spec, net_spec
from ffneuro.blocks import layer_specs
from ffneuro.blocks.module import rms_normalize
from ffneuro.config import RunConfig
from ffneuro.errors import ConfigError, UnknownNameError
from ffneuro.models import BPNet, FFNet
from ffneuro.presets import resolve_config
from ffneuro.spec import Conv2d, Linear, NetSpec, Pool2d, chain, sequential, valid_taps

CONVS = [  # (in_shape, out_channels, kernel, stride, padding, dilation, groups)
    ((1, 28, 28), 4, 7, 1, 3, 1, 1),
    ((3, 9, 7), 6, 3, 2, 1, 1, 1),
    ((4, 8, 8), 4, 3, 1, 1, 2, 2),
    ((2, 5, 6), 3, (3, 1), (1, 2), (1, 0), 1, 1),
    ((2, 6, 6), 2, 5, 1, 0, 1, 1),
]


def torch_conv(node: Conv2d) -> nn.Conv2d:
    return nn.Conv2d(node.in_shape[0], node.out_channels, node.kernel, node.stride, node.symmetric_padding,
                     node.dilation, node.groups, bias=node.bias)


def test_asymmetric_padding_as_tensorflow_same():
    """TF 'same' on an even kernel or at stride 2 pads one side more: 5×5 input, 2×2 kernel pads 0 top, 1 bottom."""
    node = Conv2d((1, 5, 5), 1, 2, 1, (0, 1, 0, 1), bias=False)
    assert node.out_shape == (1, 5, 5) and node.symmetric_padding is None
    conv = nn.Conv2d(1, 1, 2, bias=False)
    nn.init.ones_(conv.weight)
    with torch.no_grad():
        total = conv(nn.functional.pad(torch.ones(1, 1, 5, 5), (0, 1, 0, 1))).sum().item()
    assert node.synops == total == (4 * 2 + 1) ** 2
    assert node.macs == 25 * 4


def test_valid_taps_by_hand():
    # 28 positions, k = 7, padding 3: 4, 5, 6 taps at each border, 7 in the 22 positions between
    assert valid_taps(28, 7, 1, 3) == 2 * (4 + 5 + 6) + 22 * 7 == 184
    assert valid_taps(5, 3, 1, 0) == 3 * 3          # no padding: every tap is real
    assert valid_taps(4, 3, 2, 1) == 2 + 3          # outputs 0 and 1 at stride 2


@pytest.mark.parametrize("spec", CONVS)
def test_conv_node_shapes_and_macs_match_torch(spec):
    in_shape, c_out, k, s, p, d, g = spec
    node = Conv2d(in_shape, c_out, k, s, p, d, g)
    conv = torch_conv(node)
    x = torch.rand(2, *in_shape)
    with FlopCounterMode(display=False) as counter:
        y = conv(x)
    assert tuple(y.shape[1:]) == node.out_shape
    assert counter.get_total_flops() == 2 * 2 * node.macs
    assert node.params == sum(p.numel() for p in conv.parameters())


@pytest.mark.parametrize("spec", CONVS)
def test_synops_count_only_taps_inside_the_map(spec):
    """A conv with unit weights on an all-ones input sums, per output, the taps that hit the map: the
    padding contributes zeros. That total is the dense synaptic-operation count without padding."""
    in_shape, c_out, k, s, p, d, g = spec
    node = Conv2d(in_shape, c_out, k, s, p, d, g, bias=False)
    conv = torch_conv(node)
    nn.init.ones_(conv.weight)
    with torch.no_grad():
        total = conv(torch.ones(1, *in_shape)).sum().item()
    assert node.synops == total
    assert node.synops <= node.macs


def test_paper_network_synops_equal_neurobench_dense_count():
    """The BP twin of paper-mnist (3 × 128 filters 7×7 'same' on 28×28, then a 10-way head)."""
    cfg = resolve_config("paper-mnist", {})
    layers = layer_specs(cfg, (1, 28, 28), algo="bp")
    spec = net_spec(layers, head_spec(layers, 10))
    assert spec.synops == 1_114_730_496
    assert spec.macs == 1_264_736_256
    # by hand: 184² real taps per channel pair and layer; 128 · 784 · 10 in the head
    assert spec.synops == 184 ** 2 * (1 * 128 + 128 * 128 * 2) + 128 * 784 * 10


def test_models_produce_the_spec_their_config_describes():
    cfg = RunConfig(dataset="synthetic", layers=2, filters=3, kernel=3, pool="max", readout="both")
    ff, bp = FFNet(cfg, (1, 8, 8), 4), BPNet(cfg, (1, 8, 8), 4)
    assert ff.spec() == net_spec(layer_specs(cfg, (1, 8, 8)))
    bp_layers = layer_specs(cfg, (1, 8, 8), algo="bp")
    assert bp.spec() == net_spec(bp_layers, head_spec(bp_layers, 4))
    assert [n.kind for n in bp.spec().units[0].nodes] == ["conv2d", "activation", "pool2d", "rms_norm"]
    assert bp.spec().units[-1].synapses[0] == Linear((3 * 2 * 2,), 4)


def test_json_round_trip_and_units():
    spec = sequential((2, 8, 8), [("conv2d", {"out_channels": 4, "kernel": 3, "padding": 1}),
                                  ("neuron", {"model": "lif"}), ("pool2d", {"pool": "sum"}),
                                  ("flatten", {}), ("linear", {"out_features": 3}), ("neuron", {"model": "li"})])
    assert [u.name for u in spec.units] == ["layer1", "layer2"]
    assert spec.units[0].spiking and not spec.units[1].spiking
    assert spec.units[1].synapses[0].in_features == 4 * 4 * 4
    assert NetSpec.from_json(spec.to_json()) == spec


def test_bad_graphs_are_config_errors():
    with pytest.raises(ConfigError, match="flat input"):
        chain((2, 4, 4), [("linear", {"out_features": 3})])
    with pytest.raises(ConfigError, match="does not fit"):
        Conv2d((1, 3, 3), 2, 5)
    with pytest.raises(ConfigError, match="groups"):
        Conv2d((3, 8, 8), 4, 3, groups=2)
    with pytest.raises(ConfigError, match="pool"):
        Pool2d((1, 1, 1), "max", 2, 2)
    with pytest.raises(ConfigError, match="no conv2d or linear"):
        sequential((1, 4, 4), [("activation", {})])
    with pytest.raises(UnknownNameError, match="unknown spec node"):
        chain((1, 4, 4), [("conv3d", {})])


def test_neurobench_counts_the_same_dense_synaptic_operations():
    """Against the neurobench package itself, where it is installed: its per-layer dense count
    (``total=True``: every input treated as nonzero) summed over the BP twin's convs and head."""
    layers_mod = pytest.importorskip("neurobench.metrics.utils.layers")
    cfg = resolve_config("paper-mnist", {"filters": 16})
    model = BPNet(cfg, (1, 28, 28), 10)
    counted, x = 0, torch.rand(1, 1, 28, 28)
    with torch.no_grad():
        h = x
        for block in model.blocks:
            counted += layers_mod.single_layer_MACs(h, block.conv, total=True)[0]
            h = rms_normalize(block.pool_out(block(h)))
        counted += layers_mod.single_layer_MACs(h.flatten(1), model.head, total=True)[0]
    assert counted == model.spec().synops
