"""Units and :class:`Quantity`: every number of a profile, converted to SI and carrying its source.

Every number in a file is an inline table ``{ value, unit, source, basis[, note] }``. The unit is
checked against the field's dimension and converted to SI (J, W, bytes, op/s, Hz, B/s, s). ``basis``
says where the number comes from (see :data:`BASES`); anything not measured or specified needs a
``note`` saying how it was derived or why it was assumed. A ``fitted`` number also names its
``fit_set``: the measurements (ids in benchmarks/data/silicon_measurements.toml) it was fitted on,
so a validation can keep those out of its held-out table.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import _need

BASES = ("measured", "specified", "modelled", "scaled", "assumed", "derived", "fitted")
# derived: arithmetic on measurements, shown in the note; fitted: chosen to match named measurements
# (the note names the fit set, which may then not be used to validate it)
BASES_NEEDING_NOTE = ("modelled", "scaled", "assumed", "derived", "fitted")

_B = 1.0
_KI = 1024.0
# dimension -> (SI unit, {accepted unit: factor to SI}). Unit strings are matched exactly (mW ≠ MW).
UNITS: dict[str, tuple[str, dict[str, float]]] = {
    "energy": ("J", {"J": 1.0, "mJ": 1e-3, "uJ": 1e-6, "µJ": 1e-6, "nJ": 1e-9, "pJ": 1e-12, "fJ": 1e-15}),
    "power": ("W", {"kW": 1e3, "W": 1.0, "mW": 1e-3, "uW": 1e-6, "µW": 1e-6, "nW": 1e-9}),
    "bytes": ("B", {
        "B": _B, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
        "KiB": _KI, "MiB": _KI ** 2, "GiB": _KI ** 3, "TiB": _KI ** 4,
        "bit": 1 / 8, "kbit": 1e3 / 8, "Kibit": _KI / 8, "Mbit": 1e6 / 8, "Mibit": _KI ** 2 / 8,
        "Gbit": 1e9 / 8, "Gibit": _KI ** 3 / 8,
    }),
    # One op is one arithmetic operation; a MAC is two (so "MAC/s" units count double).
    "rate": ("op/s", {
        "op/s": 1.0, "ops/s": 1.0, "OP/s": 1.0, "OPS": 1.0, "kOPS": 1e3, "MOPS": 1e6, "GOPS": 1e9,
        "TOPS": 1e12, "POPS": 1e15,
        "FLOP/s": 1.0, "kFLOP/s": 1e3, "MFLOP/s": 1e6, "GFLOP/s": 1e9, "TFLOP/s": 1e12, "PFLOP/s": 1e15,
        "FLOPS": 1.0, "GFLOPS": 1e9, "TFLOPS": 1e12, "PFLOPS": 1e15,
        "MAC/s": 2.0, "kMAC/s": 2e3, "MMAC/s": 2e6, "GMAC/s": 2e9, "TMAC/s": 2e12,
    }),
    "frequency": ("Hz", {"Hz": 1.0, "kHz": 1e3, "MHz": 1e6, "GHz": 1e9}),
    "bandwidth": ("B/s", {
        "B/s": 1.0, "kB/s": 1e3, "KB/s": 1e3, "MB/s": 1e6, "GB/s": 1e9, "TB/s": 1e12,
        "KiB/s": _KI, "MiB/s": _KI ** 2, "GiB/s": _KI ** 3, "TiB/s": _KI ** 4,
        "bit/s": 1 / 8, "Mbit/s": 1e6 / 8, "Gbit/s": 1e9 / 8, "Tbit/s": 1e12 / 8,
    }),
    "time": ("s", {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9, "ps": 1e-12}),
    "count": ("1", {"1": 1.0, "count": 1.0}),
    "voltage": ("V", {"V": 1.0, "mV": 1e-3}),
    # roofline constants (ffneuro.profiler.roofline): per core cycle, so they hold at any clock
    "macs_per_cycle": ("MAC/cycle", {"MAC/cycle": 1.0, "op/cycle": 0.5}),
    "bytes_per_cycle": ("B/cycle", {"B/cycle": 1.0}),
    "cycles": ("cycle", {"cycle": 1.0, "kcycle": 1e3}),
    # a dimensionless multiplier on another number of the profile (a software stack's kernel speed)
    "factor": ("factor", {"factor": 1.0}),
}
#: Every number of a profile, in SI units, lies in [MIN_SI, MAX_SI]: 15 orders of magnitude beyond any real
#: chip (fJ to kJ, bytes to TB, Hz to PFLOP/s), so that the products and sums an estimate makes of them
#: (a count of operations up to ~1e30 times an energy, over a rate) stay finite, and no value is a
#: subnormal float that rounds to 0 once converted (5e-324 pJ).
MIN_SI = 1e-30
MAX_SI = 1e30


def range_problem(value_si: float) -> str | None:
    """Why a number (in SI units) cannot be used, or None if it lies within [MIN_SI, MAX_SI]."""
    if MIN_SI <= value_si <= MAX_SI:
        return None
    return (f"outside the range ffneuro computes with safely ({MIN_SI:g} to {MAX_SI:g} in SI units: a larger "
            "value overflows the estimates, a smaller one underflows to 0)")


SI_UNITS = {si: dim for dim, (si, _) in UNITS.items()}
_UNIT_DIMENSION = {u: dim for dim, (_, table) in UNITS.items() for u in table}


@dataclass(frozen=True)
class Quantity:
    """One number in SI units, with where it came from.

    ``value_si`` is in ``unit`` (one of J, W, B, op/s, Hz, B/s, s, 1); ``given_value``/``given_unit``
    keep what the file said (e.g. 23.6 pJ). ``basis`` is one of :data:`BASES`. A ``"fitted"`` number
    names its ``fit_set``: the ids of the measurements it was fitted to (ffneuro.profiler.calibration),
    which a validation must never count as held out.
    """

    value_si: float
    unit: str
    source: str
    basis: str
    note: str = ""
    given_value: float | None = None
    given_unit: str = ""
    fit_set: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "fit_set", tuple(self.fit_set))
        _need(self.unit in SI_UNITS, f"unit {self.unit!r} is not an SI unit; valid: {', '.join(SI_UNITS)}")
        _need(isinstance(self.value_si, (int, float)) and not isinstance(self.value_si, bool),
              f"value must be a number, got {self.value_si!r}")
        _need(math.isfinite(self.value_si) and self.value_si > 0, f"value must be finite and > 0, got {self.value_si}")
        problem = range_problem(self.value_si)
        _need(problem is None, f"value {self.value_si:g} {self.unit} is {problem}")
        _need(isinstance(self.source, str) and bool(self.source.strip()), "source must be a non-empty string")
        _need(self.basis in BASES, f"unknown basis {self.basis!r}; valid: {', '.join(BASES)}")
        _need(isinstance(self.note, str), "note must be a string")
        _need(self.basis not in BASES_NEEDING_NOTE or bool(self.note.strip()),
              f"basis {self.basis!r} needs a note saying how the number was derived or why it was assumed")
        if self.unit == "1":
            _need(float(self.value_si).is_integer(), f"a count must be a whole number, got {self.value_si}")
        _need(isinstance(self.fit_set, tuple) and all(isinstance(i, str) and i.strip() for i in self.fit_set),
              "fit_set must be a list of measurement ids (non-empty strings)")
        _need((self.basis == "fitted") == bool(self.fit_set),
              "a fitted number needs its fit_set (the measurement ids it was fitted to)" if self.basis == "fitted"
              else f"fit_set is only for basis 'fitted', not {self.basis!r}")
        object.__setattr__(self, "value_si", float(self.value_si))
        if self.given_value is None:
            object.__setattr__(self, "given_value", self.value_si)
            object.__setattr__(self, "given_unit", self.unit)

    @classmethod
    def of(cls, value: float, unit: str, *, source: str, basis: str, note: str = "",
           fit_set: tuple[str, ...] = ()) -> Quantity:
        """Build from a value in any accepted unit, e.g. ``Quantity.of(23.6, "pJ", ...)``."""
        dim = _UNIT_DIMENSION.get(unit)
        _need(dim is not None, f"unknown unit {unit!r}")
        si, table = UNITS[dim]
        _need(isinstance(value, (int, float)) and not isinstance(value, bool), f"value must be a number, got {value!r}")
        return cls(_to_si(value, table[unit]), si, source, basis, note, given_value=value, given_unit=unit,
                   fit_set=tuple(fit_set))

    @property
    def dimension(self) -> str:
        return SI_UNITS[self.unit]

    def __float__(self) -> float:
        return self.value_si

    def __int__(self) -> int:
        return int(self.value_si)

    def to_dict(self) -> dict:
        d = {"value": self.given_value, "unit": self.given_unit, "value_si": self.value_si, "unit_si": self.unit,
             "source": self.source, "basis": self.basis}
        if self.note:
            d["note"] = self.note
        if self.fit_set:
            d["fit_set"] = list(self.fit_set)
        return d

    def __str__(self) -> str:
        return f"{self.given_value:g} {self.given_unit}"


def _to_si(value: float, factor: float) -> float:
    """``value × factor`` rounded to 15 significant digits, so 0.23 pJ is 2.3e-13 J, not 2.3000000000000003e-13."""
    return float(f"{value * factor:.15g}")


@dataclass(frozen=True)
class Fact:
    """A named choice of a profile (e.g. how conv weights are stored), with where it comes from: the
    same ``{ value, source, basis[, note] }`` form as a number, with a string value from a fixed set."""

    value: str
    source: str
    basis: str
    note: str = ""

    def __post_init__(self) -> None:
        _need(isinstance(self.value, str) and bool(self.value.strip()), "a fact's value must be a non-empty string")
        _need(isinstance(self.source, str) and bool(self.source.strip()), "source must be a non-empty string")
        _need(self.basis in BASES and self.basis != "fitted",
              f"unknown basis {self.basis!r} for a choice; valid: {', '.join(b for b in BASES if b != 'fitted')}")
        _need(self.basis not in BASES_NEEDING_NOTE or bool(self.note.strip()),
              f"basis {self.basis!r} needs a note saying how the choice was derived or why it was assumed")

    def to_dict(self) -> dict:
        d = {"value": self.value, "source": self.source, "basis": self.basis}
        if self.note:
            d["note"] = self.note
        return d

    def __str__(self) -> str:
        return self.value
