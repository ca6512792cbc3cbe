"""Records that add up like vectors: byte counts by category, bytes by place, joules by term, action counts.

A dataclass whose fields are all numbers takes :class:`FieldVector` as a base and gets ``a + b`` (field
by field), ``a.scaled(k)`` (every field times ``k``) and ``a.total`` (the sum of its fields), written
once here instead of in each record.
"""
from __future__ import annotations

from dataclasses import fields
from typing import Self


class FieldVector:
    """Field-by-field arithmetic for a dataclass of numbers (the subclass must be a dataclass)."""

    def __add__(self, other: Self) -> Self:
        if type(other) is not type(self):
            return NotImplemented
        return type(self)(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def scaled(self, factor: float) -> Self:
        """Every field times ``factor`` (e.g. per batch → per sample)."""
        return type(self)(**{f.name: getattr(self, f.name) * factor for f in fields(self)})

    @property
    def total(self) -> float:
        """The sum of the fields, in their order."""
        return sum(getattr(self, f.name) for f in fields(self))
