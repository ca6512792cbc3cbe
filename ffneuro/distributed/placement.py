"""Which units run on which pipeline stage: consecutive units per rank, given or balanced by cost.

The cost is measured by default: a unit's training MACs (the accounting's) predict its time poorly on a
CPU, where a cheap first unit at full resolution is bound by memory traffic (pooling, activations), not
by arithmetic; on ``mnist-fast`` unit 1 has 2% of the training MACs and 44% of the step time.
"""
from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Sequence

import torch

from ..errors import ConfigError

STRATEGIES = ("time", "macs")   # --placement's named choices (besides explicit counts)


def parse_placement(text: str, units: int, world: int) -> list[int]:
    """``"1,1,2"``: how many consecutive units each rank trains (rank 0 first); one count per rank,
    each at least 1, summing to the number of units."""
    try:
        counts = [int(v) for v in text.split(",")]
    except ValueError:
        raise ConfigError(f"--placement {text!r}: give one unit count per rank, e.g. 1,1,2, or one of "
                          f"{', '.join(STRATEGIES)}") from None
    if len(counts) != world:
        raise ConfigError(f"--placement {text!r} names {len(counts)} ranks but {world} processes run")
    if any(c < 1 for c in counts):
        raise ConfigError(f"--placement {text!r}: every rank needs at least one unit")
    if sum(counts) != units:
        raise ConfigError(f"--placement {text!r} places {sum(counts)} units but the network has {units}")
    return counts


def auto_placement(costs: Sequence[float], world: int) -> list[int]:
    """Split ``costs`` (one per unit, in order) into ``world`` consecutive stages whose largest total is as
    small as possible (the pipeline runs at the pace of its slowest stage); ties keep earlier stages
    lighter. Exact dynamic programming: units and ranks are few."""
    n = len(costs)
    if not 1 <= world <= n:
        raise ConfigError(f"a pipeline of {world} stages needs at least {world} units; the network has {n}")
    prefix = [0.0]
    for c in costs:
        prefix.append(prefix[-1] + float(c))
    inf = float("inf")
    # best[k][i]: the smallest possible largest stage when the first i units form k stages
    best = [[inf] * (n + 1) for _ in range(world + 1)]
    cut = [[0] * (n + 1) for _ in range(world + 1)]
    best[0][0] = 0.0
    for k in range(1, world + 1):
        for i in range(k, n + 1):
            for j in range(k - 1, i):
                value = max(best[k - 1][j], prefix[i] - prefix[j])
                if value < best[k][i]:
                    best[k][i], cut[k][i] = value, j
    counts, i = [], n
    for k in range(world, 0, -1):
        j = cut[k][i]
        counts.append(i - j)
        i = j
    return counts[::-1]


def stage_units(counts: Sequence[int], rank: int) -> range:
    """The 0-based indices of the units rank ``rank`` trains."""
    start = sum(counts[:rank])
    return range(start, start + counts[rank])


def unit_step_times(model, batch_size: int, device: torch.device, repeats: int = 3) -> list[float]:
    """Seconds one training step of each unit takes on a random batch of ``batch_size`` images (median of
    ``repeats`` after a warm-up), measured on a copy: the model, its optimisers and the run's generators
    are left untouched. The first unit's time includes building the step's input rows (embedding the
    labels of positives and negatives), which only the first pipeline stage does."""
    probe = copy.deepcopy(model)
    shape = probe.layer_specs()[0].in_shape
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.rand((batch_size, *shape), generator=gen, device=device)
    y = torch.randint(0, probe.num_classes, (batch_size,), generator=gen, device=device)
    rows_time, (h, n, labels) = _median_time(lambda: probe.input_rows(x, y, gen), repeats, device)
    times = []
    for unit in probe.units:
        spent, (h, _) = _median_time(lambda unit=unit, h=h: unit.train_step(h, n, labels), repeats, device)
        times.append(spent)
    times[0] += rows_time
    return times


def _median_time(fn, repeats: int, device: torch.device) -> tuple[float, object]:
    """The median seconds of ``repeats`` calls of ``fn`` after a warm-up call, and its last result."""
    spent = []
    for _ in range(repeats + 1):
        _sync(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        spent.append(time.perf_counter() - t0)
    return statistics.median(spent[1:]), out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
