"""Activation sparsity measured on real forward passes, and effective MACs."""
from __future__ import annotations

import pytest
import torch

from ffneuro.config import RunConfig
from ffneuro.models import BPNet, FFNet
from ffneuro.profiler import profile_network
from ffneuro.profiler.sparsity import (
    effective_macs,
    measure_activity,
    measure_sparsity,
    zero_fraction,
)


def cfg(**kw):
    base = dict(layers=3, filters=4, kernel=3, pool="none", labels="fourier2", goodness="meansq", readout_from=1,
                readout="both", train_first_layer=True, epochs=1)
    base.update(kw)
    return RunConfig(**base)


def test_zero_fraction_and_effective_macs():
    assert zero_fraction(torch.tensor([0.0, 1.0, 0.0, 2.0])) == 0.5
    assert zero_fraction(torch.empty(0)) == 0.0
    assert effective_macs(1000, 0.25) == 750 and effective_macs(1000, 1.0) == 0
    with pytest.raises(ValueError):
        effective_macs(10, 1.5)


def test_all_zero_input_unit_and_silent_layers():
    torch.manual_seed(0)
    net = BPNet(cfg(algo="bp"), (1, 6, 6), 5)
    with torch.no_grad():
        for b in net.blocks:
            b.conv.bias.fill_(-1.0)   # zero input → conv = bias < 0 → ReLU silent everywhere
    act = measure_activity(net, torch.zeros(3, 1, 6, 6))
    assert act.units == ("layer1", "layer2", "layer3")
    assert act.input_zero_fraction == (1.0, 1.0, 1.0) and act.neuron_zero_fraction == (1.0, 1.0, 1.0)
    assert measure_sparsity(net, torch.zeros(3, 1, 6, 6)) == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("pool", ["none", "max"])
def test_ff_sparsity_follows_the_units_inputs(pool):
    torch.manual_seed(0)
    net = FFNet(cfg(pool=pool), (1, 8, 8), 5)
    x = torch.rand(6, 1, 8, 8) * (torch.rand(6, 1, 8, 8) > 0.5)   # half-blank images
    act = measure_activity(net, x)
    assert act.input_zero_fraction[0] == zero_fraction(net.labels.embed_neutral(x))   # unit 1: labelled image
    with torch.no_grad():
        h = net.labels.embed_neutral(x)
        for i, unit in enumerate(net.units):
            y = unit(h)
            assert act.neuron_zero_fraction[i] == zero_fraction(y)
            h = unit.hand_on(y)
            if i + 1 < len(net.units):
                assert act.input_zero_fraction[i + 1] == zero_fraction(h)
    if pool == "none":   # the RMS norm keeps ReLU's zeros: a unit receives exactly its predecessor's sparsity
        assert act.input_zero_fraction[1:] == act.neuron_zero_fraction[:-1]
    assert 0 < act.neuron_zero_fraction[0] < 1


def test_labels_select_the_positive_embedding_and_mode_is_restored():
    torch.manual_seed(0)
    net = FFNet(cfg(), (1, 8, 8), 5)
    net.train()
    x, y = torch.rand(4, 1, 8, 8), torch.arange(4)
    s = measure_sparsity(net, x, y)
    assert s[0] == zero_fraction(net.labels.embed(x, y)) and net.training
    with pytest.raises(TypeError):
        measure_sparsity(torch.nn.Linear(2, 2), x)


def test_measured_sparsity_drives_effective_macs_on_an_event_driven_target():
    torch.manual_seed(0)
    net = FFNet(cfg(), (1, 8, 8), 5)
    x = torch.rand(8, 1, 8, 8)
    s = measure_sparsity(net, x)
    specs = net.layer_specs()
    est = profile_network(specs, "loihi", num_classes=5, batch=8, sparsity=s, workloads=["infer_linear"])["infer_linear"]
    for spec, frac in zip(specs, s):
        # an event-driven core charges real synapses (no padding taps) with a nonzero input
        assert est.unit(spec.name).effective_macs == pytest.approx(effective_macs(spec.synops, frac))
