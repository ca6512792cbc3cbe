"""One network's estimates across targets, side by side: a row per target and workload, and the rankings.

``ffneuro compare`` prints these as a table, CSV or JSON; the rankings by energy (resolved only where
the uncertainty ranges allow) come from :mod:`.ranking`.
"""
from __future__ import annotations

from collections.abc import Sequence

from .ranking import ff_vs_bp, rank
from .report import PROFILED, ProfileReport, WorkloadEstimate

#: the fields of a comparison row, in order (the CSV columns)
ROW_FIELDS = ("target", "workload", "precision", "energy_j", "energy_low_j", "energy_high_j", "latency_s",
              "latency_low_s", "latency_high_s", "peak_memory_bytes", "cores", "chips", "binding", "synops", "macs",
              "off_core_share", "note")


def binding_limits(w: WorkloadEstimate) -> str:
    """The binding limits of the unit with the most cores (the one that sets the chip count)."""
    if not w.supported or not w.per_unit:
        return ""
    u = max(w.per_unit, key=lambda u: u.cores)
    return "" if u.limited_by == "monolithic" else f"{u.unit}: {u.limited_by}"


def comparison_rows(reports: Sequence[ProfileReport]) -> list[dict]:
    """One row (:data:`ROW_FIELDS`) per target and workload; an unsupported workload keeps a row, noted
    "not supported", with no numbers."""
    rows = []
    for rep in reports:
        for name, w in rep.workloads.items():
            er = w.energy_range or (None, None)
            lr = w.latency_range or (None, None)
            rows.append({"target": rep.target, "workload": name, "precision": w.precision or rep.executed_precision,
                         "energy_j": w.energy_j, "energy_low_j": er[0], "energy_high_j": er[1],
                         "latency_s": w.latency_s, "latency_low_s": lr[0], "latency_high_s": lr[1],
                         "peak_memory_bytes": w.peak_memory_bytes, "cores": w.cores_used or w.cores_needed,
                         "chips": w.chips_needed, "binding": binding_limits(w),
                         "synops": w.synops if w.supported else None, "macs": w.macs if w.supported else None,
                         "off_core_share": w.off_core_share, "note": "" if w.supported else "not supported"})
    return rows


def rankings(reports: Sequence[ProfileReport]) -> dict:
    """Per workload the targets cheapest first with whether each is resolved from the next, and FF vs BP
    per target (plain JSON)."""
    return {"by_workload": {w: [r.to_dict() for r in rank(reports, w)] for w in (*PROFILED, "infer")
                            if any(w in rep.workloads for rep in reports)},
            "ff_vs_bp": [c.to_dict() for c in (ff_vs_bp(rep) for rep in reports) if c is not None]}
