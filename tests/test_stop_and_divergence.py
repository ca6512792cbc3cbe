"""Stop signals become a flag checked at safe points; the divergence guard's rule on tiny tensors."""
from __future__ import annotations

import os
import signal

import pytest
import torch
from torch import nn

from ffneuro.errors import Diverged
from ffneuro.train.divergence import CHECK_EVERY, EXPLODE_FACTOR, DivergenceGuard
from ffneuro.train.stop import StopRequested, StopSignals


def test_a_signal_only_sets_the_flag_until_check():
    with StopSignals() as stop:
        stop.check()                                  # nothing yet
        os.kill(os.getpid(), signal.SIGTERM)          # delivered now, in the main thread: must not raise
        assert stop.signum == signal.SIGTERM
        with pytest.raises(StopRequested) as info:
            stop.check()
    assert info.value.exit_code == 143 and str(info.value) == "stopped by SIGTERM"
    assert isinstance(info.value, KeyboardInterrupt)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL   # the previous handler is back


def test_a_second_ctrl_c_stops_at_once():
    with StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.signum == signal.SIGINT
        with pytest.raises(KeyboardInterrupt) as info:
            os.kill(os.getpid(), signal.SIGINT)
        assert not isinstance(info.value, StopRequested)
        with pytest.raises(StopRequested) as first:
            stop.check()
    assert first.value.exit_code == 130


def test_guard_takes_the_first_batch_as_reference_and_flags_explosion():
    guard = DivergenceGuard(["unit1", "readout"], epoch=1)
    guard.add(torch.tensor([0.5, 2.0]), 0)
    guard.check(0)
    assert guard.reference == [0.5, 2.0]
    limit = EXPLODE_FACTOR * 2.0                      # max(1, 2.0) for the readout; max(1, 0.5) = 1 for unit1
    guard.add(torch.tensor([0.9 * EXPLODE_FACTOR, 0.9 * limit]), 1)
    guard.check(1)                                    # both under their limits
    guard.add(torch.tensor([0.1, 1.1 * limit]), 2)
    with pytest.raises(Diverged, match=r"epoch 1, batch 3: readout loss is 2200, over 1000× its first value"):
        guard.check(2)


def test_guard_averages_between_checks_and_catches_non_finite():
    guard = DivergenceGuard(["u"], epoch=3, reference=[1.0])
    for b in range(CHECK_EVERY - 1):
        guard.add(torch.tensor([1.0]), b)
    with pytest.raises(Diverged, match=r"epoch 3, batch 50: u loss is nan \(non-finite\)"):
        guard.add(torch.tensor([float("nan")]), CHECK_EVERY - 1)   # the 50th batch triggers the check


def test_guard_checks_weights():
    model = nn.Linear(2, 2)
    DivergenceGuard(["u"], epoch=2).check_weights(model)
    with torch.no_grad():
        model.weight[0, 0] = float("inf")
    with pytest.raises(Diverged, match="epoch 2: non-finite weights in weight"):
        DivergenceGuard(["u"], epoch=2).check_weights(model)
