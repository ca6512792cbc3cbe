"""Honest calibration: fit named constants of a hardware profile to measurements in the open, and
validate only on measurements the fit never saw.

A fitted constant carries ``basis = "fitted"`` and its fit set (the ids of the measurements it was
fitted to) in its profile. The functions here are pure: the caller passes a ``predict(values, obs)``
callback that returns the model's prediction for one observation with the named constants set to
``values`` (SI units, keyed by the constant's dotted path, e.g. ``"neuro.synaptic_op"``), so the
module knows nothing about networks or profiles beyond those names.

- :func:`fit`: bounded least squares on ``log(predicted / measured)`` over the log of each constant,
  reporting the fitted values and every residual.
- :func:`validate`: predictions for observations outside every fit set of the constants they use; it
  refuses (raises :class:`CalibrationError`) an observation inside one.
- :func:`leave_one_out`: where data is scarce, refit without each point and predict it; a point whose
  prediction the other points do not determine (it moves along a direction of the constants they leave
  free, so the refit's answer would be its start value, the file's, which saw the point) is not
  predicted but returned as undetermined.
- :func:`summarize`: per target and metric, and over all targets, the mean and maximum of
  ``|log2(predicted / measured)|``. The mean is the log2 of the geometric-mean error factor
  (0.5 = a typical error of 2^0.5 = 1.41x).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares

from ..errors import FFNeuroError

METRICS = ("energy", "latency", "cores")
ALL_TARGETS = "all"


class CalibrationError(FFNeuroError):
    """A calibration request that would not be honest (a fit-set row counted as held out) or cannot be met."""


@dataclass(frozen=True)
class Observation:
    """One measured number: which measurement (``id``), on which target profile, of which metric.

    ``spread`` is the measurement's run-to-run range (low, high) in the same unit, its error bar;
    None where the source gives one run only.
    """

    id: str
    target: str
    metric: str
    measured: float
    spread: tuple[float, float] | None = None
    label: str = ""

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise CalibrationError(f"{self.id}: unknown metric {self.metric!r}; valid: {', '.join(METRICS)}")
        if not (math.isfinite(self.measured) and self.measured > 0):
            raise CalibrationError(f"{self.id}: measured {self.metric} must be finite and > 0, got {self.measured}")
        if self.spread is not None:
            lo, hi = self.spread
            if not (0 < lo <= hi and math.isfinite(hi)):
                raise CalibrationError(f"{self.id}: spread must be 0 < low <= high, got {self.spread}")

    @property
    def key(self) -> str:
        return f"{self.id}:{self.metric}"


@dataclass(frozen=True)
class Constant:
    """A constant to fit: its target profile, dotted path, starting value and bounds (SI units, > 0)."""

    target: str
    path: str
    initial: float
    low: float
    high: float

    def __post_init__(self) -> None:
        if not (0 < self.low <= self.initial <= self.high and math.isfinite(self.high)):
            raise CalibrationError(f"{self.target}:{self.path}: need 0 < low <= initial <= high, got "
                                   f"{self.low:g} <= {self.initial:g} <= {self.high:g}")


@dataclass(frozen=True)
class FittedConstant:
    """A fitted value and the ids of the measurements it was fitted to (its fit set)."""

    target: str
    path: str
    value: float
    fit_set: tuple[str, ...]
    at_bound: bool = False

    def __post_init__(self) -> None:
        if not self.fit_set:
            raise CalibrationError(f"{self.target}:{self.path}: a fitted constant needs a non-empty fit set")


@dataclass(frozen=True)
class Row:
    """One prediction against one measurement. ``kind``: ``fit`` (its measurement is in the fit set),
    ``held-out`` (outside every fit set) or ``leave-one-out`` (predicted by a refit without it)."""

    obs: Observation
    predicted: float | None
    kind: str
    constants: tuple[FittedConstant, ...] = ()

    @property
    def ratio(self) -> float | None:
        return None if self.predicted is None or self.predicted <= 0 else self.predicted / self.obs.measured

    @property
    def log2_ratio(self) -> float | None:
        r = self.ratio
        return None if r is None else math.log2(r)

    @property
    def error_bar_log2(self) -> tuple[float, float] | None:
        """The measurement's spread as log2 of (low, high) / measured: how far the truth may sit."""
        if self.obs.spread is None:
            return None
        lo, hi = self.obs.spread
        return math.log2(lo / self.obs.measured), math.log2(hi / self.obs.measured)

    @property
    def within_spread(self) -> bool | None:
        if self.obs.spread is None or self.predicted is None:
            return None
        return self.obs.spread[0] <= self.predicted <= self.obs.spread[1]


@dataclass(frozen=True)
class FitResult:
    """What :func:`fit` found: the fitted constants (each naming its fit set) and the fit-set rows."""

    constants: tuple[FittedConstant, ...]
    rows: tuple[Row, ...]
    success: bool
    message: str
    jacobian: np.ndarray | None = field(default=None, compare=False, repr=False)   # d residual / d log constant

    @property
    def values(self) -> dict[str, float]:
        return {c.path: c.value for c in self.constants}


@dataclass(frozen=True)
class Summary:
    """Error statistics of a group of rows: ``mean_abs_log2`` (log2 of the geometric-mean error
    factor) and ``max_abs_log2``; ``within_2x`` counts rows with a ratio in [0.5, 2]."""

    target: str
    metric: str
    n: int
    mean_abs_log2: float
    max_abs_log2: float
    within_2x: int

    @property
    def typical_factor(self) -> float:
        return 2.0 ** self.mean_abs_log2

    @property
    def worst_factor(self) -> float:
        return 2.0 ** self.max_abs_log2


Predict = Callable[[Mapping[str, float], Observation], "float | None"]


def _check_unique(observations: Sequence[Observation]) -> None:
    keys = [o.key for o in observations]
    dup = {k for k in keys if keys.count(k) > 1}
    if dup:
        raise CalibrationError(f"observations given twice: {', '.join(sorted(dup))}")


def fit(constants: Sequence[Constant], observations: Sequence[Observation], predict: Predict) -> FitResult:
    """Fit ``constants`` to ``observations``: bounded least squares on the natural log of predicted /
    measured, in the log of each constant (so a constant moves by factors, and stays > 0).

    Every observation must be of a target one of the constants belongs to; its residual counts once.
    """
    if not constants:
        raise CalibrationError("nothing to fit: no constants given")
    if not observations:
        raise CalibrationError("nothing to fit to: no observations given")
    _check_unique(observations)
    paths = [c.path for c in constants]
    if len(set(paths)) != len(paths):
        raise CalibrationError("a constant is named twice")
    targets = {c.target for c in constants}
    for o in observations:
        if o.target not in targets:
            raise CalibrationError(f"{o.key}: target {o.target!r} has no constant being fitted")

    def values_of(x: np.ndarray) -> dict[str, float]:
        return {c.path: float(math.exp(v)) for c, v in zip(constants, x, strict=True)}

    def residuals(x: np.ndarray) -> np.ndarray:
        vals = values_of(x)
        out = []
        for o in observations:
            p = predict(vals, o)
            if p is None or not (p > 0 and math.isfinite(p)):
                raise CalibrationError(f"{o.key}: the model gives no positive prediction to fit to")
            out.append(math.log(p / o.measured))
        return np.asarray(out)

    x0 = np.log([c.initial for c in constants])
    lo = np.log([c.low for c in constants])
    hi = np.log([c.high for c in constants])
    jac = None
    if np.all(lo == hi):   # nothing free: the "fit" is the given value
        x, ok, msg = x0, True, "all constants pinned by their bounds"
    else:
        free_lo = np.where(lo == hi, lo - 1e-12, lo)   # least_squares needs low < high
        free_hi = np.where(lo == hi, hi + 1e-12, hi)
        res = least_squares(residuals, x0, bounds=(free_lo, free_hi), method="trf", x_scale=1.0,
                            xtol=1e-12, ftol=1e-12, gtol=1e-12)
        x, ok, msg, jac = res.x, bool(res.success), str(res.message), np.asarray(res.jac)
        jac[:, lo == hi] = 0.0   # a pinned constant is not free to explain anything
    vals = values_of(x)
    fit_set = tuple(sorted({o.id for o in observations}))
    fitted = tuple(FittedConstant(c.target, c.path, vals[c.path], fit_set,
                                  at_bound=bool(np.isclose(v, l_, rtol=0, atol=1e-9) or np.isclose(v, h, rtol=0, atol=1e-9)))
                   for c, v, l_, h in zip(constants, x, lo, hi, strict=True))
    rows = tuple(Row(o, predict(vals, o), "fit", fitted) for o in observations)
    return FitResult(fitted, rows, ok, msg, jac)


def determined(result: FitResult, obs: Observation, predict: Predict, *, step: float = 1e-4,
               tol: float = 1e-3) -> bool:
    """Whether the fit's observations determine ``obs``'s prediction: the gradient of log(prediction)
    in the log constants must lie in the row space of the fit's Jacobian (else some change of the
    constants moves the prediction without moving any residual, and the fit's value along it is just its
    start). Forward differences of relative ``step``; ``tol``: the relative size of the gradient's part
    outside that row space that still counts as none."""
    if result.jacobian is None:
        return True   # nothing free: the prediction is the given constants'
    vals = {c.path: c.value for c in result.constants}
    base = predict(vals, obs)
    if base is None or not base > 0:
        return False
    grad = np.zeros(len(result.constants))
    for k, c in enumerate(result.constants):
        p = predict({**vals, c.path: c.value * math.exp(step)}, obs)
        grad[k] = (math.log(p) - math.log(base)) / step if p and p > 0 else 0.0
    norm = float(np.linalg.norm(grad))
    if norm == 0.0:
        return True   # the prediction does not depend on the fitted constants at all
    jac = result.jacobian
    coef, *_ = np.linalg.lstsq(jac.T, grad, rcond=1e-10)   # grad ≈ Jᵀ c: a combination of the residuals' gradients
    return float(np.linalg.norm(jac.T @ coef - grad)) <= tol * norm


def constants_used(obs: Observation, fitted: Iterable[FittedConstant]) -> tuple[FittedConstant, ...]:
    """The fitted constants a prediction for ``obs`` uses: every fitted constant of its target's profile."""
    return tuple(c for c in fitted if c.target == obs.target)


def in_fit_set(obs: Observation, fitted: Iterable[FittedConstant]) -> bool:
    """Whether ``obs``'s measurement is in the fit set of a constant its prediction uses."""
    return any(obs.id in c.fit_set for c in constants_used(obs, fitted))


def split(observations: Sequence[Observation],
          fitted: Sequence[FittedConstant]) -> tuple[list[Observation], list[Observation]]:
    """(in some fit set, held out): the observations a fit saw, and those it never saw."""
    seen = [o for o in observations if in_fit_set(o, fitted)]
    held = [o for o in observations if not in_fit_set(o, fitted)]
    return seen, held


def validate(observations: Sequence[Observation], fitted: Sequence[FittedConstant], predict: Predict,
             kind: str = "held-out") -> list[Row]:
    """Predict each observation with the fitted values; refuse any observation in the fit set of a
    constant it uses (a fitted row is not evidence of anything but the fit)."""
    _check_unique(observations)
    rows = []
    for o in observations:
        used = constants_used(o, fitted)
        seen_by = [f"{c.target}:{c.path}" for c in used if o.id in c.fit_set]
        if seen_by:
            raise CalibrationError(f"{o.key} is in the fit set of {', '.join(seen_by)}: it cannot be counted as "
                                   "held out (use leave_one_out to refit without it)")
        rows.append(Row(o, predict({c.path: c.value for c in used}, o), kind, used))
    return rows


def leave_one_out(constants: Sequence[Constant], observations: Sequence[Observation],
                  predict: Predict, undetermined: list[Observation] | None = None) -> list[Row]:
    """For each observation: refit ``constants`` on the others (every observation of another
    measurement), then predict it (through :func:`validate`, so a row whose refit saw it cannot slip
    through). An observation the others do not :func:`determined` is left out and appended to
    ``undetermined`` (when given). Needs two observations or more."""
    if len(observations) < 2:
        raise CalibrationError("leave-one-out needs at least two observations (one to fit, one to predict)")
    rows = []
    for o in observations:
        rest = [p for p in observations if p.id != o.id]
        if not rest:
            raise CalibrationError(f"{o.key}: no observation of another measurement left to refit on")
        refit = fit(constants, rest, predict)
        if not determined(refit, o, predict):
            if undetermined is not None:
                undetermined.append(o)
            continue
        rows.extend(validate([o], refit.constants, predict, kind="leave-one-out"))
    return rows


def summarize(rows: Iterable[Row]) -> list[Summary]:
    """Per (target, metric) and per metric over all targets (target ``"all"``): n, mean and maximum
    |log2(predicted / measured)|, and how many ratios lie in [0.5, 2]. Rows without a prediction are left out."""
    groups: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        lr = r.log2_ratio
        if lr is None:
            continue
        groups.setdefault((r.obs.target, r.obs.metric), []).append(abs(lr))
        groups.setdefault((ALL_TARGETS, r.obs.metric), []).append(abs(lr))
    out = []
    for (target, metric), vals in sorted(groups.items(), key=lambda kv: (kv[0][0] == ALL_TARGETS, kv[0])):
        out.append(Summary(target, metric, len(vals), sum(vals) / len(vals), max(vals),
                           sum(1 for v in vals if v <= 1.0 + 1e-12)))
    return out


__all__ = ["ALL_TARGETS", "METRICS", "CalibrationError", "Constant", "FitResult", "FittedConstant", "Observation",
           "Predict", "Row", "Summary", "constants_used", "determined", "fit", "in_fit_set", "leave_one_out", "split",
           "summarize", "validate"]
