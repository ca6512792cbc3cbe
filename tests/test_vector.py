"""FieldVector: the one field-by-field arithmetic of Traffic, Placement, EnergyBreakdown and ActionCounts."""
from __future__ import annotations

import pytest

from ffneuro.accounting import Traffic
from ffneuro.profiler import ActionCounts, EnergyBreakdown, Placement


@pytest.mark.parametrize("cls", [Traffic, Placement, EnergyBreakdown, ActionCounts])
def test_add_scale_and_total_work_field_by_field(cls):
    names = list(cls.__dataclass_fields__)
    a = cls(**{n: i + 1 for i, n in enumerate(names)})
    b = cls(**{n: 10 * (i + 1) for i, n in enumerate(names)})
    assert a + b == cls(**{n: 11 * (i + 1) for i, n in enumerate(names)})
    assert a.scaled(0.5) == cls(**{n: 0.5 * (i + 1) for i, n in enumerate(names)})
    assert a.total == sum(range(1, len(names) + 1))
    assert cls() + a == a


def test_records_of_different_kinds_do_not_add():
    with pytest.raises(TypeError):
        Traffic(weights=1) + Placement(read_on=1)


def test_the_named_totals_are_the_field_sums():
    assert Traffic(weights=1, optimizer=2).total == 3
    assert EnergyBreakdown(compute_j=1.0, static_j=2.0).total_j == 3.0
