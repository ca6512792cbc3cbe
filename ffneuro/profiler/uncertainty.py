"""Uncertainty ranges from each number's basis: measured numbers narrow, modelled wider, assumed widest.

Every number of a profile says how it is known (``basis``). An estimate is computed three times with
the same counts and the same mapping: at the nominal values, at the *low* end (every energy, power and
time divided by its basis's spread factor, every rate and bandwidth multiplied by it) and at the *high*
end (the reverse). Energy and latency grow monotonically with each energy and time and shrink with
each rate, so the low and high runs bound the estimate, under the assumption that every input sits at
the same end of its range at once (the widest, correlated case). docs/hw-profiles.md states the spreads.

Two targets are *resolved* on a workload when their ranges do not overlap. On one target, FF against
BP is resolved when the sign of the difference is the same at the low, nominal and high values: the
two share every constant, so their errors move together.
"""
from __future__ import annotations

from .hardware import Quantity

# multiplicative half-width: the true value is taken to lie in [value / f, value × f]
# (derived: arithmetic on measurements; fitted: as measured; its held-out error is what benchmarks/silicon.py reports)
SPREAD = {"specified": 1.0, "measured": 1.2, "modelled": 1.5, "scaled": 2.0, "assumed": 3.0, "derived": 1.3,
          "fitted": 1.2}
SCENARIOS = ("nominal", "low", "high")


def factor(q: Quantity, scenario: str, *, rate: bool = False) -> float:
    """The multiplier that moves ``q`` to its end of the range: costs (energy, power, time) go down in
    the low scenario and up in the high one; rates and bandwidths the other way (faster is cheaper)."""
    if scenario == "nominal":
        return 1.0
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; valid: {', '.join(SCENARIOS)}")
    f = SPREAD[q.basis]
    up = (scenario == "high") != rate
    return f if up else 1.0 / f


def value(q: Quantity | None, scenario: str = "nominal", *, rate: bool = False) -> float | None:
    """``q`` in SI units at ``scenario``; None stays None (a number the profile does not give)."""
    return None if q is None else q.value_si * factor(q, scenario, rate=rate)


def overlaps(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether two (low, high) ranges share any value."""
    return a[0] <= b[1] and b[0] <= a[1]
