"""Which units run on which pipeline stage: consecutive units per rank, given or balanced by cost."""
from __future__ import annotations

from collections.abc import Sequence

from ..errors import ConfigError


def parse_placement(text: str, units: int, world: int) -> list[int]:
    """``"1,1,2"``: how many consecutive units each rank trains (rank 0 first); one count per rank,
    each at least 1, summing to the number of units."""
    try:
        counts = [int(v) for v in text.split(",")]
    except ValueError:
        raise ConfigError(f"--placement {text!r}: give one unit count per rank, e.g. 1,1,2") from None
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
