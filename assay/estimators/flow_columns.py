"""Which columns of x a density estimator models, and how (:class:`FlowColumns`).

A normalizing flow needs a continuous density on its inputs. :meth:`FlowColumns.detect` sorts the
columns of a training set into

- *constant* columns (no spread, e.g. Q_ℓ when only W⁺ is generated): left out; their density is a
  δ-function independent of θ, so it cancels in every likelihood ratio and score;
- *discrete* columns (at most :data:`MAX_LEVELS` distinct values in at least
  :data:`MIN_SAMPLES_PER_LEVEL` × levels samples, e.g. Q_ℓ = ±1): dequantized in training by
  uniform noise of the smallest gap between levels, evaluated at the level itself, so log p̂ is
  log P(level|θ) + log p(rest|level, θ) − log(gap) up to the flow's error (the offset is
  θ-independent);
- *bounded* columns: those named in ``bounds`` with an interval, and (``detect_bounds``) those
  whose training values lie in one of :data:`KNOWN_INTERVALS` and reach both of its ends within
  :data:`BOUND_TOLERANCE` × (hi − lo)/n_samples, as a density that stays above ~5% of the uniform
  one at the ends does (a cosine filling [−1, 1], an azimuthal difference filling [0, π]); a
  Gaussian-like column essentially never does. They get the logit transform of
  :class:`~assay.estimators.flows_models.FlowInputs`;
- *positive* columns (``log_positive``): unbounded ones whose training values are all > 0 and span
  more than :data:`LOG_MIN_SPAN` (max/min; a p_T, an energy, a transverse mass) are modelled in log x,
  which turns an edge at 0 and a power-law tail into smooth exponential tails;
- every other column is modelled as it is.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "BOUND_TOLERANCE",
    "KNOWN_INTERVALS",
    "LOG_MIN_SPAN",
    "MAX_LEVELS",
    "MIN_SAMPLES_PER_LEVEL",
    "FlowColumns",
]

logger = logging.getLogger(__name__)

KNOWN_INTERVALS: tuple[tuple[float, float], ...] = (
    (-1.0, 1.0), (0.0, 1.0), (0.0, math.pi), (-math.pi, math.pi),
)  # fmt: skip
"""Intervals ``detect_bounds`` tries, narrowest first: cosines, fractions, |Δφ|, φ."""
BOUND_TOLERANCE = 20.0  # a detected end lies within 20 (hi − lo)/n of the sample's extreme value
MAX_LEVELS = 10  # at most this many distinct values make a column discrete
LOG_MIN_SPAN = 10.0  # a positive column with max/min above this is log-transformed (log_positive)
MIN_SAMPLES_PER_LEVEL = 10  # ... in at least this many samples per level
_SLACK = 1e-6  # relative slack for float rounding at an interval's ends


@dataclass(frozen=True)
class FlowColumns:
    """The roles of the columns of x (module docstring).

    Attributes:
        modelled: indices of the columns the flow models, in order.
        bounds: per modelled column, its interval (lo, hi) or None.
        constants: index → value of each left-out constant column.
        levels: index → sorted values of each discrete (dequantized) column.
        logs: per modelled column, whether it is modelled in log x (positive columns).
    """

    modelled: tuple[int, ...]
    bounds: tuple[tuple[float, float] | None, ...]
    constants: dict[int, float] = field(default_factory=dict)
    levels: dict[int, tuple[float, ...]] = field(default_factory=dict)
    logs: tuple[bool, ...] = ()

    def __post_init__(self) -> None:
        if not self.logs:  # none given (and files written before the log transform existed)
            object.__setattr__(self, "logs", (False,) * len(self.modelled))

    @classmethod
    def detect(
        cls,
        x: np.ndarray,
        names: Sequence[str],
        *,
        observables: Sequence[str] | None = None,
        bounds: Mapping[str, tuple[float, float]] | None = None,
        detect_bounds: bool = True,
        log_positive: bool = True,
    ) -> FlowColumns:
        """Sort the columns of training events x ``(n_samples, n_obs)`` named ``names``.

        Args:
            x: the training events.
            names: the column names.
            observables: the columns to model (names); None: all.
            bounds: name → (lo, hi) for columns known to be bounded.
            detect_bounds: also detect bounded columns (module docstring).
            log_positive: model positive columns spanning decades in log x (module docstring).

        Raises:
            ValueError: an unknown name in ``observables`` or ``bounds``, non-finite values, training
                values outside a given interval, or no column left to model.
        """
        names, bounds = list(names), dict(bounds or {})
        unknown = sorted(set(observables or ()) - set(names)) + sorted(set(bounds) - set(names))
        if unknown:
            raise ValueError(f"observables / bounds: unknown column(s) {unknown}; the events have {names}")
        chosen = [names.index(o) for o in observables] if observables is not None else range(len(names))
        bad = {names[j]: int(np.sum(~np.isfinite(x[:, j]))) for j in chosen if not np.isfinite(x[:, j]).all()}
        if bad:
            raise ValueError(
                f"x: non-finite values (NaN or inf) in the column(s) {bad} (name: count); a density "
                f"estimator needs finite observables: remove those events or leave the columns out"
            )
        modelled, intervals, constants, levels = [], [], {}, {}
        for j in chosen:
            values = x[:, j]
            distinct = np.unique(values)
            if len(distinct) == 1:
                constants[j] = float(distinct[0])
                continue
            modelled.append(j)
            if len(distinct) <= MAX_LEVELS and len(values) >= MIN_SAMPLES_PER_LEVEL * len(distinct):
                levels[j] = tuple(float(v) for v in distinct)
                intervals.append(None)
            elif names[j] in bounds:
                intervals.append(_checked(names[j], values, bounds[names[j]]))
            else:
                intervals.append(_detect(values) if detect_bounds else None)
        logs = [
            log_positive and b is None and j not in levels and _spans_decades(x[:, j])
            for j, b in zip(modelled, intervals)
        ]
        if not modelled:
            raise ValueError(
                f"observables: every chosen column {[names[j] for j in chosen]} is constant in the training "
                f"set; a density estimator needs at least one varying observable"
            )
        found = {names[j]: b for j, b in zip(modelled, intervals) if b is not None}
        logged = [names[j] for j, flag in zip(modelled, logs) if flag]
        logger.info("flow inputs: %d columns; constant %s; discrete %s; bounded %s; log %s", len(modelled),
                    [names[j] for j in constants], [names[j] for j in levels], found, logged)  # fmt: skip
        return cls(tuple(modelled), tuple(intervals), constants, levels, tuple(logs))

    def dequantize(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """x ``(n, n_obs)`` with uniform noise of each discrete column's smallest gap added (a copy)."""
        if not self.levels:
            return x
        x = np.array(x, dtype=float)
        for j, values in self.levels.items():
            gap = float(np.min(np.diff(values)))
            x[:, j] += gap * (rng.random(len(x)) - 0.5)
        return x

    def complete(self, modelled_x: np.ndarray, n_obs: int) -> np.ndarray:
        """Events ``(n, n_obs)`` from draws of the modelled columns ``(n, len(modelled))``: discrete
        columns snapped to their nearest level, constant columns filled in, columns not chosen NaN."""
        out = np.full((len(modelled_x), n_obs), np.nan)
        out[:, list(self.modelled)] = modelled_x
        for j, values in self.levels.items():
            grid = np.asarray(values)
            out[:, j] = grid[np.argmin(np.abs(out[:, j, None] - grid), axis=1)]
        for j, value in self.constants.items():
            out[:, j] = value
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (integer keys become lists of pairs)."""
        return {
            "modelled": list(self.modelled),
            "bounds": [None if b is None else list(b) for b in self.bounds],
            "constants": [[j, v] for j, v in self.constants.items()],
            "levels": [[j, list(v)] for j, v in self.levels.items()],
            "logs": list(self.logs),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FlowColumns:
        """Inverse of :meth:`to_dict`."""
        return cls(
            tuple(int(j) for j in data["modelled"]),
            tuple(None if b is None else (float(b[0]), float(b[1])) for b in data["bounds"]),
            {int(j): float(v) for j, v in data["constants"]},
            {int(j): tuple(float(u) for u in v) for j, v in data["levels"]},
            tuple(bool(v) for v in data.get("logs", ())),
        )


def _checked(name: str, values: np.ndarray, interval: Sequence[float]) -> tuple[float, float]:
    """A configured interval, checked against the training values."""
    lo, hi = (float(v) for v in interval)
    slack = _SLACK * (hi - lo) if hi > lo else 0.0
    if not hi > lo or values.min() < lo - slack or values.max() > hi + slack:
        raise ValueError(
            f"bounds[{name!r}]: expected lo < hi around the training values "
            f"[{values.min():.6g}, {values.max():.6g}], got [{lo}, {hi}]"
        )
    return lo, hi


def _spans_decades(values: np.ndarray) -> bool:
    """Whether all ``values`` are > 0 with max/min above :data:`LOG_MIN_SPAN`."""
    low = float(values.min())
    return low > 0 and float(values.max()) > LOG_MIN_SPAN * low


def _detect(values: np.ndarray) -> tuple[float, float] | None:
    """The first of :data:`KNOWN_INTERVALS` that ``values`` fill to both ends, else None."""
    low, high, n = float(values.min()), float(values.max()), len(values)
    for lo, hi in KNOWN_INTERVALS:
        slack, tolerance = _SLACK * (hi - lo), BOUND_TOLERANCE * (hi - lo) / n
        inside = low >= lo - slack and high <= hi + slack
        if inside and low - lo <= tolerance and hi - high <= tolerance:
            return lo, hi
    return None
