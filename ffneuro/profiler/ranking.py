"""Rankings across targets, and FF against BP, told apart only where the uncertainty ranges allow.

Across targets the estimates share nothing, so two targets are resolved on a workload only when their
(low, high) energy ranges do not overlap. On one target FF and BP share every constant, so their
errors move together: FF vs BP is resolved when FF is cheaper (or dearer) at the low, the nominal and
the high values alike (:mod:`.uncertainty`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .uncertainty import overlaps


@dataclass(frozen=True)
class Ranked:
    """One target's place in a workload's ranking; ``resolved_from_next``: its range does not overlap
    the next (dearer) target's."""

    target: str
    energy_j: float
    low: float
    high: float
    resolved_from_next: bool | None   # None for the last

    def to_dict(self) -> dict:
        return {"target": self.target, "energy_j": self.energy_j, "low": self.low, "high": self.high,
                "resolved_from_next": self.resolved_from_next}


def rank(reports: Sequence, workload: str) -> list[Ranked]:
    """Targets that estimate ``workload``, cheapest first (nominal energy)."""
    rows = [(r.target, r[workload]) for r in reports if workload in r.workloads and r[workload].supported
            and r[workload].energy_j is not None]
    rows.sort(key=lambda t: t[1].energy_j)
    out = []
    for i, (target, w) in enumerate(rows):
        lo, hi = w.energy_range
        nxt = rows[i + 1][1].energy_range if i + 1 < len(rows) else None
        out.append(Ranked(target, w.energy_j, lo, hi, None if nxt is None else not overlaps((lo, hi), nxt)))
    return out


@dataclass(frozen=True)
class FFvsBP:
    """FF training against BP training on one target: ``ratio`` FF / BP (nominal) and whether the order
    holds at both ends of the range."""

    target: str
    ratio: float
    ratio_low: float
    ratio_high: float
    resolved: bool

    @property
    def verdict(self) -> str:
        if not self.resolved:
            return "not resolved"
        return "FF cheaper" if self.ratio < 1 else "BP cheaper"

    def to_dict(self) -> dict:
        return {"target": self.target, "ratio": self.ratio, "ratio_low": self.ratio_low,
                "ratio_high": self.ratio_high, "resolved": self.resolved, "verdict": self.verdict}


def ff_vs_bp(report, a: str = "ff_train", b: str = "bp_train") -> FFvsBP | None:
    """``a`` against ``b`` on one report; None if either is not estimated."""
    wa, wb = report.workloads.get(a), report.workloads.get(b)
    if wa is None or wb is None or not (wa.supported and wb.supported) or not wb.energy_j:
        return None
    nominal = wa.energy_j / wb.energy_j
    low = wa.energy_range[0] / wb.energy_range[0]
    high = wa.energy_range[1] / wb.energy_range[1]
    signs = {x < 1 for x in (nominal, low, high)} if all(x != 1 for x in (nominal, low, high)) else {None}
    return FFvsBP(report.target, nominal, low, high, len(signs) == 1 and None not in signs)
