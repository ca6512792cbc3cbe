"""benchmarks/fidelity.py's probe patches for ``hinton-fc-mnist`` (issue 19): each changes one difference from
the reference code (loeweX/Forward-Forward) on the ffneuro side. ``readout-before-step``: the linear readout
learns from the units' features before the batch's FF step, as the reference code's one summed SGD step
does; ffneuro's own step reads them after the units' update."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from benchmark_scripts import load_benchmark

from ffneuro.config import RunConfig
from ffneuro.models import build_model
from ffneuro.models.ff_net import FFNet

ROOT = Path(__file__).resolve().parents[1]


def _fidelity():
    return load_benchmark("fidelity")


def _model() -> FFNet:
    cfg = RunConfig.from_dict(dict(dataset="synthetic", arch="fc", layers=2, widths=(16, 16), pool="none",
                                   labels="onehot", goodness="sumsq", loss="bce", readout="linear", readout_from=1,
                                   optimizer="sgd", lr=0.5, train_first_layer=True))
    torch.manual_seed(0)
    return build_model(cfg, (1, 12, 12), 10)


def _readout_features(model: FFNet, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The features the linear readout trains on in one ``train_batch``."""
    seen = []
    step = model.linear.train_step
    model.linear.train_step = lambda feats, labels: (seen.append(feats.clone()), step(feats, labels))[1]
    model.train_batch(x, y, torch.Generator().manual_seed(1))
    return seen[0]


@pytest.fixture
def restore_ffnet(monkeypatch):
    monkeypatch.setattr(FFNet, "train_batch", FFNet.train_batch)   # undone after the test, whatever patched it


def test_readout_before_step_reads_the_weights_before_the_units_update(restore_ffnet):
    x, y = torch.rand(8, 1, 12, 12, generator=torch.Generator().manual_seed(0)), torch.arange(8) % 10
    model = _model()
    with torch.no_grad():
        before = model.features(model.readout_input(x))
    plain = _readout_features(copy.deepcopy(model), x, y)
    assert not torch.allclose(plain, before)            # ffneuro's step: after the units' update
    _fidelity().PATCHES["readout-before-step"]()
    patched_model = copy.deepcopy(model)
    patched = _readout_features(patched_model, x, y)
    torch.testing.assert_close(patched, before)
    assert "features" not in vars(patched_model)           # the patch leaves no attribute behind
    # the units' own update is the plain one: same unit weights after the step
    for a, b in zip(patched_model.units.parameters(), _after_plain_step(copy.deepcopy(model), x, y).units.parameters()):
        torch.testing.assert_close(a, b)


def _after_plain_step(model: FFNet, x: torch.Tensor, y: torch.Tensor) -> FFNet:
    h, n, labels = model.input_rows(x, y, torch.Generator().manual_seed(1))
    for unit in model.units:
        h, _ = unit.train_step(h, n, labels)
    return model
