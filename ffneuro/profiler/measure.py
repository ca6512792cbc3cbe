"""Measured peak memory of one training step or one ``predict`` call, to check the analytic memory
model against.

On CUDA: ``torch.cuda.max_memory_allocated`` over one steady-state step. On CPU: the profiler's
allocator events (recording starts before the model is built, so every live block's size is known).
"""
from __future__ import annotations

from collections.abc import Callable

import torch


def step_peak_bytes(make_model: Callable[[], torch.nn.Module], x: torch.Tensor, y: torch.Tensor,
                    warmup: int = 2, readout: str | None = None) -> tuple[torch.nn.Module, int]:
    """Build a model, run ``warmup`` training steps, and return it with the peak of live tensor bytes
    during the next step (everything alive counts: weights, optimiser state, data). With ``readout``,
    the measured step is ``model.predict(x, readout)`` instead of a training step."""
    def measured(model: torch.nn.Module) -> None:
        if readout is None:
            model.train_batch(x, y)
        else:
            model.predict(x, readout)

    if x.device.type == "cuda":
        model = make_model()
        for _ in range(warmup):
            model.train_batch(x, y)
        torch.cuda.synchronize(x.device)
        torch.cuda.reset_peak_memory_stats(x.device)
        measured(model)
        torch.cuda.synchronize(x.device)
        return model, torch.cuda.max_memory_allocated(x.device)
    from torch.profiler import ProfilerActivity, profile, record_function

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        model = make_model()
        for _ in range(warmup):
            model.train_batch(x, y)
        with record_function("ffneuro-step"):
            measured(model)
    return model, span_peak_bytes(prof, "ffneuro-step")


def span_peak_bytes(prof, name: str) -> int:
    """The peak of live tensor bytes during the ``record_function(name)`` span of a CPU profile taken with
    ``profile_memory=True`` (the allocations before the span count towards what is live)."""
    events = sorted(prof.profiler.kineto_results.events(), key=lambda e: e.start_ns())
    span = next(e for e in events if e.name() == name)
    live = peak = 0
    for e in events:
        if e.name() == "[memory]":
            live += e.nbytes()
            if span.start_ns() <= e.start_ns() <= span.end_ns():
                peak = max(peak, live)
    return peak
