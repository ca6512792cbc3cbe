"""The fast step (issue 19, speed): the linear readout trains on the features the FF step computed when no
label enters the image (no extra forward, detached, bit-equal to what the readout units handed on), one
neutral pass when a label does; and the cfse block's faster 2×2 max pool equals ReLU then ``max_pool2d``
bit for bit, values and gradients."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from ffneuro.accounting import ff_memory
from ffneuro.accounting.objective import objective_cost
from ffneuro.blocks.cfse import CFSEBlock
from ffneuro.blocks.module import max_pool2x2
from ffneuro.config import RunConfig
from ffneuro.models import FFNet
from ffneuro.models.ff_net import evaluating
from ffneuro.profiler.measure import step_peak_bytes

SHAPE, CLASSES, N = (1, 12, 12), 10, 16
CLASS_WISE = dict(arch="cfse", layers=3, widths=(10, 20, 20), kernel=3, pool="max", pool_at=(1, 2),
                  block_options={"group_at": ()}, labels="none", goodness="classwise", loss="cwc",
                  train_first_layer=True, readout="both", readout_from=2, lr=1e-2)
PAIRED = dict(arch="cfse", layers=2, widths=(10, 20), kernel=3, pool="max", pool_at=(1,),
              block_options={"group_at": ()}, labels="fourier2", goodness="meansq", loss="bce",
              train_first_layer=True, readout="both", readout_from=1, lr=1e-2)


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(N, *SHAPE, generator=g), torch.arange(N) % CLASSES


def readout_inputs(model: FFNet, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, int]]:
    """One training step of ``model``: the features its linear readout trained on, and how many times each
    unit's block ran forward."""
    seen, calls = [], {u.name: 0 for u in model.units}
    train_step = model.linear.train_step

    def capture(features, labels):
        seen.append(features)
        return train_step(features, labels)

    def count(name):
        def hook(module, inputs, output):
            calls[name] += 1
        return hook

    model.linear.train_step = capture
    hooks = [u.block.register_forward_hook(count(u.name)) for u in model.units]
    try:
        model.train_batch(x, y, torch.Generator().manual_seed(1))
    finally:
        for h in hooks:
            h.remove()
        del model.linear.train_step
    assert len(seen) == 1
    return seen[0], calls


def test_class_wise_readout_trains_on_the_step_s_own_features_without_another_forward():
    torch.manual_seed(0)
    model = FFNet(RunConfig(**CLASS_WISE), SHAPE, CLASSES)
    x, y = batch()
    model.train_batch(x, y)                        # a step first, so batch norm's running statistics have moved
    x, y = batch(1)
    before = copy.deepcopy(model)
    feats, calls = readout_inputs(model, x, y)
    assert calls == {u.name: 1 for u in model.units}   # one forward per unit: the readout ran none of its own
    assert feats.grad_fn is None and not feats.requires_grad   # detached: no gradient reaches a unit
    # what the readout units handed on in this step: the pre-update units in training mode (batch statistics)
    h, kept = x, []
    with torch.no_grad():
        for i, unit in enumerate(before.units):
            h = unit.hand_on(unit(h))
            if i in before.readout_units:
                kept.append(h.flatten(1))
    assert torch.equal(feats, torch.cat(kept, 1))   # bit-equal
    # ... which is not an extra pass after the update in eval mode (that one would differ)
    with evaluating(model):
        assert not torch.equal(feats, model.features(model.readout_input(x)))


def test_paired_readout_runs_one_neutral_pass_after_the_update():
    torch.manual_seed(0)
    model = FFNet(RunConfig(**PAIRED), SHAPE, CLASSES)
    x, y = batch()
    model.train_batch(x, y)
    x, y = batch(1)
    feats, calls = readout_inputs(model, x, y)
    assert calls == {u.name: 2 for u in model.units}   # the 2N-row training pass and one neutral pass
    assert feats.grad_fn is None and not feats.requires_grad
    with evaluating(model):   # the neutral pass: the updated units in eval mode, on the neutral embedding
        assert torch.equal(feats, model.features(model.readout_input(x)))


def reference_pool(y: torch.Tensor) -> torch.Tensor:
    return nn.functional.max_pool2d(torch.relu(y), 2)


@pytest.mark.parametrize("shape", [(4, 6, 12, 12), (2, 3, 7, 9), (3, 16, 8, 8)])
def test_max_pool_before_relu_equals_relu_then_max_pool2d_bit_for_bit(shape):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(*shape, generator=g)
    z[:, :, :3] = 0.25          # ties of a positive maximum: the first one of a window takes the gradient
    z[:, :, 3:4] = -0.5         # windows with no positive value pass no gradient
    w = torch.randn(shape[0], shape[1], shape[2] // 2, shape[3] // 2, generator=g)
    a, b = z.clone().requires_grad_(), z.clone().requires_grad_()
    out_a, out_b = torch.relu(max_pool2x2(a)), reference_pool(b)
    (out_a * w).sum().backward()
    (out_b * w).sum().backward()
    assert torch.equal(out_a, out_b) and torch.equal(a.grad, b.grad)
    with torch.no_grad():
        assert torch.equal(torch.relu(max_pool2x2(z)), reference_pool(z))


@pytest.mark.parametrize("shape", [(2, 4, 8, 8), (3, 5, 7, 9)])
def test_max_pool_without_gradients_keeps_nothing_and_equals_max_pool2d(shape):
    z = torch.randn(*shape)
    z[0, 0, 0, 0] = float("nan")    # a NaN is its window's maximum, as in max_pool2d
    out = max_pool2x2(z)
    assert out.grad_fn is None and out.is_contiguous()
    assert torch.equal(out.nan_to_num(7.0), nn.functional.max_pool2d(z, 2).nan_to_num(7.0))
    assert out[0, 0, 0, 0].isnan()
    with torch.no_grad():            # a tensor that requires a gradient, where none is computed
        assert max_pool2x2(z.requires_grad_()).grad_fn is None


def test_cfse_block_output_and_weight_gradients_equal_relu_then_max_pool2d():
    torch.manual_seed(0)
    block = CFSEBlock("u", (3, 10, 10), 8, 3, "max").build()
    ref = copy.deepcopy(block)
    x = torch.rand(8, 3, 10, 10)
    x[:, :, :4] = 0.0           # a constant region: equal conv outputs, ties in the pool
    out = block(x)
    out.square().sum().backward()
    ref_out = ref.norm(reference_pool(ref.conv(x)))
    ref_out.square().sum().backward()
    assert torch.equal(out, ref_out)
    for p, q in zip(block.parameters(), ref.parameters(), strict=True):
        assert torch.equal(p.grad, q.grad)


def test_cfse_memory_replay_with_a_neutral_pass_matches_the_cpu_allocator():
    """The pair objective's step (2N rows through the pool's backward, then the neutral pass through the
    index-free pool): replayed within 10 % of the CPU allocator."""
    cfg = RunConfig(**{**PAIRED, "layers": 3, "widths": (20, 40, 40), "pool_at": (1, 2), "loss": "symba"})
    torch.manual_seed(0)
    x, y = torch.rand(8, 1, 16, 16), torch.arange(8) % CLASSES
    model, measured = step_peak_bytes(lambda: FFNet(cfg, (1, 16, 16), CLASSES), x, y)
    m = ff_memory(model.layer_specs(), 8, num_classes=CLASSES, linear_readout=True, readout_from=cfg.readout_from,
                  backend="cpu", objective=objective_cost(cfg, CLASSES))
    est = m.peak_bytes + model.labels.patterns.numel() * 4   # the label patterns: a buffer outside the replay
    assert abs(est - measured) <= 0.1 * measured, (est, measured, m.peak_at)
