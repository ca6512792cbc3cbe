"""Goodness functions, FF logits/loss and accuracy, checked against hand computations."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ffneuro.blocks.module import rms_normalize
from ffneuro.goodness import (
    GOODNESS,
    discrimination_accuracy,
    ff_logits,
    ff_loss,
    mean_squares,
    sum_squares,
)
from ffneuro.registry import UnknownNameError

# Two samples of shape (1, 2, 2): squares sum to 1+4+9+16=30 and 0+0+0+4=4.
Y = torch.tensor([[[[1.0, -2.0], [3.0, 4.0]]],
                  [[[0.0, 0.0], [0.0, -2.0]]]])


def test_sum_squares_matches_hand_values():
    assert torch.equal(sum_squares(Y), torch.tensor([30.0, 4.0]))


def test_mean_squares_matches_hand_values():
    assert torch.allclose(mean_squares(Y), torch.tensor([7.5, 1.0]))


def test_goodness_is_per_sample_over_all_neurons_of_any_rank():
    flat = Y.flatten(1)  # (2, 4): same neurons, different layout
    assert torch.equal(sum_squares(flat), sum_squares(Y))
    assert torch.allclose(mean_squares(flat), mean_squares(Y))


def test_ff_logits_is_goodness_minus_theta():
    assert torch.allclose(ff_logits(Y, GOODNESS.get("sumsq"), 10.0), torch.tensor([20.0, -6.0]))
    assert torch.allclose(ff_logits(Y, GOODNESS.get("meansq"), 1.0), torch.tensor([6.5, 0.0]))


def test_ff_logits_are_fp32_for_bf16_activations():
    out = ff_logits(Y.to(torch.bfloat16), GOODNESS.get("sumsq"), 0.0)
    assert out.dtype == torch.float32
    assert torch.allclose(out, torch.tensor([30.0, 4.0]))


def test_ff_loss_equals_bce_with_logits_halved_over_the_two_sets():
    g = torch.Generator().manual_seed(0)
    pos = torch.randn(5, generator=g) * 3
    neg = torch.randn(7, generator=g) * 3  # different set sizes: each set averaged separately
    expected = 0.5 * (F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos))
                      + F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg)))
    assert torch.allclose(ff_loss(pos, neg), expected, atol=1e-6)


def test_ff_loss_hand_value_at_zero_logits_is_log2():
    assert ff_loss(torch.zeros(3), torch.zeros(4)).item() == pytest.approx(math.log(2), abs=1e-6)


def test_ff_loss_is_stable_for_huge_logits():
    loss = ff_loss(torch.tensor([1e4]), torch.tensor([-1e4]))
    assert torch.isfinite(loss) and loss.item() == pytest.approx(0.0, abs=1e-6)
    bad = ff_loss(torch.tensor([-1e4]), torch.tensor([1e4]))
    assert bad.item() == pytest.approx(1e4, rel=1e-6)


def test_discrimination_accuracy_hand_case():
    pos = torch.tensor([2.0, -1.0, 0.5])   # 2 of 3 above 0
    neg = torch.tensor([-3.0, 1.0])        # 1 of 2 at or below 0
    assert discrimination_accuracy(pos, neg).item() == pytest.approx(3 / 5)


def test_discrimination_accuracy_zero_logit_counts_as_negative():
    assert discrimination_accuracy(torch.tensor([0.0]), torch.tensor([0.0])).item() == pytest.approx(0.5)


def test_registry_default_thresholds():
    assert GOODNESS.get("sumsq").default_theta(128 * 28 * 28) == float(128 * 28 * 28)
    assert GOODNESS.get("meansq").default_theta(128 * 28 * 28) == 1.0
    assert GOODNESS.get("sumsq").fn is sum_squares
    assert GOODNESS.get("meansq").fn is mean_squares


def test_unknown_goodness_error_lists_valid_names():
    with pytest.raises(UnknownNameError) as err:
        GOODNESS.get("l2")
    msg = str(err.value)
    assert "'l2'" in msg and "meansq" in msg and "sumsq" in msg


# --- rms_normalize (the hand-on normalisation between units) ---------------------------------------

@pytest.mark.parametrize("shape", [(4, 6), (3, 2, 5, 5)])
def test_rms_normalize_gives_unit_mean_square_per_sample(shape):
    y = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    y = y * torch.arange(1, shape[0] + 1).view(-1, *([1] * (len(shape) - 1)))  # different scale per sample
    out = rms_normalize(y)
    assert out.shape == y.shape
    assert torch.allclose(out.flatten(1).pow(2).mean(1), torch.ones(shape[0]), atol=1e-5)


def test_rms_normalize_hand_values_and_no_mean_subtraction():
    y = torch.tensor([[3.0, 4.0], [1.0, 1.0]])  # rms: sqrt(12.5), 1
    out = rms_normalize(y)
    assert torch.allclose(out[0], torch.tensor([3.0, 4.0]) / math.sqrt(12.5))
    assert torch.allclose(out[1], torch.tensor([1.0, 1.0]), atol=1e-6)  # a constant positive stays positive


def test_rms_normalize_preserves_sign_pattern_and_zeros():
    y = torch.tensor([[[[-2.0, 0.0], [5.0, 0.1]]]])
    out = rms_normalize(y)
    assert torch.equal(torch.sign(out), torch.sign(y))


def test_rms_normalize_all_zero_sample_stays_finite():
    out = rms_normalize(torch.zeros(2, 3))
    assert torch.isfinite(out).all() and torch.equal(out, torch.zeros(2, 3))


# --- the goodness autograd function (lean backward) -------------------------------------------------

def _autograd_reference(fn):
    return (lambda y: y.flatten(1).pow(2).sum(1)) if fn is sum_squares else (lambda y: y.flatten(1).pow(2).mean(1))


@pytest.mark.parametrize("fn", [sum_squares, mean_squares])
@pytest.mark.parametrize("shape", [(3, 2, 4, 4), (5, 7)])
def test_goodness_values_and_gradients_equal_autograds_bit_for_bit(fn, shape):
    g = torch.Generator().manual_seed(0)
    y = torch.randn(*shape, generator=g).relu().requires_grad_(True)
    w = torch.randn(shape[0], generator=g)
    out = fn(y)
    ref_out = _autograd_reference(fn)(y)
    assert torch.equal(out, ref_out)
    (grad,) = torch.autograd.grad((out * w).sum(), y)
    (ref,) = torch.autograd.grad((ref_out * w).sum(), y)
    assert torch.equal(grad, ref)


@pytest.mark.parametrize("fn", [sum_squares, mean_squares])
def test_goodness_gradcheck_float64(fn):
    y = torch.randn(3, 2, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    assert torch.autograd.gradcheck(fn, (y,))
    assert torch.autograd.gradgradcheck(fn, (y,))  # the backward is built from differentiable ops


@pytest.mark.parametrize("fn", [sum_squares, mean_squares])
def test_goodness_under_autocast_bf16(fn):
    """ff_logits measures goodness on y.float(); the gradient flows back to the bf16 activations."""
    gen = torch.Generator().manual_seed(2)
    conv = torch.nn.Conv2d(1, 3, 3, padding=1)
    x = torch.rand(4, 1, 6, 6, generator=gen)
    goodness = GOODNESS.get("sumsq" if fn is sum_squares else "meansq")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = torch.relu(conv(x))
        logit = ff_logits(y, goodness, 0.0)
    assert y.dtype == torch.bfloat16 and logit.dtype == torch.float32
    assert torch.equal(logit, _autograd_reference(fn)(y.float()))
    logit.sum().backward()
    w_grad = conv.weight.grad.clone()
    conv.weight.grad = None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _autograd_reference(fn)(torch.relu(conv(x)).float()).sum().backward()
    assert torch.equal(w_grad, conv.weight.grad)


def test_ff_logits_makes_no_copy_of_fp32_activations():
    """In fp32, y.float() is y itself: the goodness saves the ReLU output autograd already holds."""
    y = torch.rand(2, 3, 4, 4).requires_grad_(True)
    act = y * 1.0
    logit = ff_logits(act, GOODNESS.get("sumsq"), 1.0)
    saved = logit.grad_fn.next_functions[0][0].saved_tensors   # (goodness − θ) → the goodness node
    assert len(saved) == 1 and saved[0].data_ptr() == act.data_ptr()


def test_goodness_backward_allocates_one_full_size_tensor():
    from torch.profiler import ProfilerActivity, profile
    y = torch.rand(8, 16, 10, 10).requires_grad_(True)
    full = y.numel() * y.element_size()
    for fn in (sum_squares, mean_squares):
        out = fn(y).sum()
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            torch.autograd.grad(out, y)
        allocs = [e.nbytes() for e in prof.profiler.kineto_results.events()
                  if e.name() == "[memory]" and e.nbytes() >= full]
        assert allocs == [full], (fn.__name__, allocs)


def test_pair_accuracy_compares_each_positive_with_its_own_negative():
    from ffneuro.goodness import pair_accuracy

    pos, neg = torch.tensor([5.0, 1.0, 3.0, 2.0]), torch.tensor([4.0, 2.0, 3.0, -1.0])
    assert pair_accuracy(pos, neg).item() == 0.5  # 5>4 and 2>-1; 1<2 and a tie do not count
    assert pair_accuracy(pos + 100, neg + 100).item() == 0.5  # independent of θ
