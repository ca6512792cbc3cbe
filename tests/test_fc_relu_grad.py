"""The fc block's ``relu_grad`` option (issue 19): Hinton's code (loeweX/Forward-Forward, ReLU_full_grad) passes
the gradient through its ReLU also where the input is negative; ``relu_grad="pass"`` does the same, the
default ``zero`` is ReLU's own gradient. Measured beside the reference code in BENCHMARKS.md section 17."""
from __future__ import annotations

import pytest
import torch

from ffneuro.accounting import ops
from ffneuro.blocks import layer_specs
from ffneuro.blocks.fc import FCBlock
from ffneuro.blocks.module import rms_normalize
from ffneuro.config import RunConfig
from ffneuro.errors import ConfigError
from ffneuro.models import build_model


def _fc(**kw) -> RunConfig:
    return RunConfig.from_dict({**dict(dataset="synthetic", arch="fc", layers=2, widths=(12, 12), pool="none",
                                       labels="onehot", goodness="sumsq", loss="bce", readout="goodness"), **kw})


def _grad_of_silent_pre_activations(relu_grad: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(d sum(y) / d z, z) for one fc block whose pre-activations z are partly negative."""
    grads, z = _relu_backward(relu_grad, None)
    return grads["z"], z


def _relu_backward(relu_grad: str, upstream: torch.Tensor | None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The gradients ReLU's backward received (``y``: dL/dy, ``upstream`` or ones) and handed on (``z``: dL/dz)
    in one fc block whose pre-activations z are partly negative, and z."""
    block = FCBlock("u", (6,), 5, relu_grad=relu_grad).build()
    torch.manual_seed(0)
    x = torch.randn(4, 6)
    z = block.linear(x)
    grads: dict[str, torch.Tensor] = {}
    z.register_hook(lambda g: grads.__setitem__("z", g))
    block.linear = _Fixed(z)   # the block's forward on exactly these pre-activations
    y = block(x)
    y.register_hook(lambda g: grads.__setitem__("y", g))
    y.backward(torch.ones_like(y) if upstream is None else upstream)
    return grads, z.detach()


class _Fixed(torch.nn.Module):
    def __init__(self, z: torch.Tensor) -> None:
        super().__init__()
        self.z = z

    def forward(self, _x: torch.Tensor) -> torch.Tensor:
        return self.z


def test_pass_hands_the_gradient_through_negative_inputs():
    grad, z = _grad_of_silent_pre_activations("pass")
    assert (z < 0).any() and (z > 0).any()
    assert torch.equal(grad, torch.ones_like(z))


@pytest.mark.parametrize("relu_grad", ["pass", "zero"])
def test_an_arbitrary_upstream_gradient_gives_the_explicit_expected_one(relu_grad):
    upstream = torch.randn(4, 5, generator=torch.Generator().manual_seed(3))
    grads, z = _relu_backward(relu_grad, upstream)
    assert (z < 0).any() and (z > 0).any() and (upstream < 0).any()
    expected = upstream if relu_grad == "pass" else torch.where(z > 0, upstream, torch.zeros_like(upstream))
    assert torch.equal(grads["z"], expected)


def test_pass_hands_on_the_gradient_it_received_without_a_copy():
    grads, _ = _relu_backward("pass", torch.randn(4, 5, generator=torch.Generator().manual_seed(3)))
    assert grads["z"].data_ptr() == grads["y"].data_ptr()


@pytest.mark.parametrize("relu_grad", ["pass", "zero"])
def test_the_ff_memory_replay_follows_the_relu_backward_where_it_sets_the_peak(relu_grad):
    """Many rows through small weights: the step's peak is activations, at the ReLU's backward (``zero``:
    one more rows x width tensor) or, straight through (no tensor), before it; the replay follows both
    within 3 % (the block contract test's default config is dominated by weights and Adam state)."""
    from ffneuro.accounting import ff_memory
    from ffneuro.accounting.objective import objective_cost
    from ffneuro.models import FFNet
    from ffneuro.profiler.measure import step_peak_bytes

    cfg = _fc(widths=(64, 64), block_options={"relu_grad": relu_grad}, train_first_layer=True)
    shape, n = (1, 4, 12), 512   # onehot labels need 10 columns
    x, y = torch.rand(n, *shape, generator=torch.Generator().manual_seed(0)), torch.arange(n) % 10
    torch.manual_seed(0)
    model, measured = step_peak_bytes(lambda: FFNet(cfg, shape, 10), x, y)
    m = ff_memory(model.layer_specs(), n, num_classes=10, linear_readout=False, readout_from=cfg.readout_from,
                  backend="cpu", objective=objective_cost(cfg, 10))
    est = m.peak_bytes - m.input_bytes + model.labels.patterns.numel() * model.labels.patterns.element_size()
    assert abs(est - measured) <= 0.03 * measured, (est, measured, m.peak_at)


def test_default_is_relus_own_gradient():
    grad, z = _grad_of_silent_pre_activations("zero")
    assert torch.equal(grad, (z > 0).float())


def test_forward_is_relu_either_way():
    torch.manual_seed(0)
    plain = FCBlock("u", (6,), 5).build()
    straight = FCBlock("u", (6,), 5, relu_grad="pass").build()
    straight.load_state_dict(plain.state_dict())
    x = torch.randn(4, 6)
    assert torch.equal(plain(x), straight(x))


def test_option_reaches_every_unit_and_the_cost_rule():
    cfg = _fc(block_options={"relu_grad": "pass", "init": "normal"})
    specs = layer_specs(cfg, (1, 16, 16))
    assert all(s.relu_grad == "pass" and s.init == "normal" for s in specs)
    plain = layer_specs(_fc(), (1, 16, 16))
    for s, p in zip(specs, plain):   # the straight-through backward hands on its input: no compare-and-select
        assert p.neuron_grad_ops - s.neuron_grad_ops == ops.RELU_OPS * s.width
        assert p.bp_input_grad_ops(False) - s.bp_input_grad_ops(False) == ops.RELU_OPS * s.width
    model = build_model(cfg, (1, 16, 16), 10)
    assert all(u.block.spec.relu_grad == "pass" for u in model.units)


def test_bad_relu_grad_is_a_config_error():
    with pytest.raises(ConfigError, match="relu_grad"):
        FCBlock("u", (10,), 4, relu_grad="sometimes")
    with pytest.raises(ConfigError, match="relu_grad"):
        build_model(_fc(block_options={"relu_grad": "sometimes"}), (1, 16, 16), 10)


def test_hinton_preset_passes_the_gradient_through_its_relu_as_the_reference_code():
    from ffneuro.presets import resolve_config
    cfg = resolve_config("hinton-fc-mnist", {"widths": (64, 64, 64, 64)})
    assert all(s.relu_grad == "pass" and s.init == "normal" for s in layer_specs(cfg, (1, 28, 28)))


@pytest.mark.parametrize("relu_grad, moves", [("zero", False), ("pass", True)])
def test_peer_normalisation_pulls_a_silent_neuron_back_only_through_the_straight_through_relu(relu_grad, moves):
    """The goodness gradient of a silent neuron is 0 either way; peer normalisation's reaches it only with pass."""
    torch.manual_seed(0)
    model = build_model(_fc(block_options={"relu_grad": relu_grad}, optimizer="sgd", lr=0.1, momentum=0.0,
                            weight_decay=0.0, peer_norm=0.03, train_first_layer=True), (1, 16, 16), 10)
    lin = model.units[0].block.linear
    with torch.no_grad():
        lin.bias[0] = -5.0   # neuron 0 is silent on every input (its w·x has std ~0.6)
    x, y = torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(0)), torch.arange(8) % 10
    with torch.no_grad():
        z_silent = lin(rms_normalize(model.input_rows(x, y, torch.Generator().manual_seed(1))[0].flatten(1)))[:, 0]
    model.train_batch(x, y, torch.Generator().manual_seed(1))
    assert (z_silent < 0).all()
    assert (lin.bias[0].item() > -5.0) == moves


@pytest.mark.parametrize("relu_grad", ["pass", "zero"])
def test_the_bp_memory_replay_matches_the_allocator_where_activations_set_the_peak(relu_grad):
    """Many rows through small weights (the BP step's peak is activations, at the last layer's norm
    backward): the head's backward releases the last layer's output it saved, so that norm backward runs
    without it; the replay follows within 3 %."""
    from ffneuro.accounting import bp_memory
    from ffneuro.models import BPNet
    from ffneuro.profiler.measure import step_peak_bytes

    cfg = _fc(algo="bp", widths=(64, 64), block_options={"relu_grad": relu_grad}, readout="linear")
    shape, n = (1, 4, 12), 512
    x, y = torch.rand(n, *shape, generator=torch.Generator().manual_seed(0)), torch.arange(n) % 10
    torch.manual_seed(0)
    model, measured = step_peak_bytes(lambda: BPNet(cfg, shape, 10), x, y)
    m = bp_memory(model.layer_specs(), n, num_classes=10, backend="cpu")
    est = m.peak_bytes - m.input_bytes
    assert abs(est - measured) <= 0.03 * measured, (est, measured, m.peak_at)
