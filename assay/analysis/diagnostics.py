"""Diagnostics of estimated density ratios r̂(x) = p̂_1(x)/p̂_0(x) (seed 003, "Re-weight closures",
"Calibration curves of probability density ratios", "High-Dim Classifier Test").

Every function takes weighted events (weights in any unit, per event; a sample is its weights'
distribution) and returns a small frozen dataclass with a ``to_dict`` for JSON:

- :func:`reliability_curve`: per bin of the classifier score s = r̂/(1 + r̂) (class weights
  balanced, :func:`balance_classes`), the mean predicted s against the observed class-1 fraction,
  with errors from the weights; a calibrated estimator lies on the diagonal.
  :class:`HistogramCalibrator` and :class:`IsotonicCalibrator` (weighted pool-adjacent-violators)
  map a score to the observed fraction, and so a ratio to a calibrated ratio;
- :func:`reweighting_closure`: per observable, the histogram of the p_0 sample reweighted by r̂
  against that of the p_1 sample, their ratio and χ²/ndf;
- :func:`ensemble_spread`: the relative spread of an ensemble per event; :func:`weighted_histogram`
  summarises any per-event quantity (the spread, −2 log r̂).

The classifier two-sample test is :mod:`assay.analysis.two_sample`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numba import njit

__all__ = [
    "Closure",
    "HistogramCalibrator",
    "IsotonicCalibrator",
    "ReliabilityCurve",
    "WeightedHistogram",
    "as_dict",
    "balance_classes",
    "ensemble_spread",
    "quantile_edges",
    "reliability_curve",
    "reweighting_closure",
    "weighted_histogram",
]

_EPS = 1e-12  # calibrated scores are kept in [ε, 1 − ε], so that s/(1 − s) is finite


def as_dict(obj: Any) -> dict[str, Any]:
    """A dataclass of arrays and numbers as a JSON-able dict (arrays as lists)."""
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in asdict(obj).items()}


def _weights(weights: np.ndarray | None, n: int) -> np.ndarray:
    return np.ones(n) if weights is None else np.asarray(weights, dtype=float).reshape(n)


def quantile_edges(values: np.ndarray, weights: np.ndarray | None = None, n_bins: int = 10) -> np.ndarray:
    """Bin edges holding equal weight of ``values`` (negative weights count as 0), from min to max.

    Args:
        values: ``(n_events,)``.
        weights: ``(n_events,)``; None: 1.
        n_bins: the number of bins wanted; fewer where values repeat (discrete observables).

    Returns:
        Increasing edges ``(n ≤ n_bins + 1,)``.

    Example:
        >>> quantile_edges(np.arange(10.0), n_bins=2).tolist()
        [0.0, 4.5, 9.0]
    """
    values = np.asarray(values, dtype=float)
    w = np.maximum(_weights(weights, len(values)), 0.0)
    order = np.argsort(values)
    cum = np.cumsum(w[order]) - 0.5 * w[order]
    inner = np.interp(np.linspace(0, w.sum(), n_bins + 1)[1:-1], cum, values[order])
    return np.unique(np.concatenate([[values.min()], inner, [values.max()]]))


def balance_classes(y: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Weights rescaled so that each class sums to half the number of events, the prior for which
    the score of an exact ratio is s = r/(1 + r).

    Args:
        y: labels 0/1 ``(n_events,)``.
        weights: ``(n_events,)``; None: 1. Each class must have a positive sum.

    Example:
        >>> balance_classes(np.array([1, 0, 0, 0]), np.array([2.0, 1, 1, 2])).tolist()
        [2.0, 0.5, 0.5, 1.0]
    """
    y = np.asarray(y)
    w = _weights(weights, len(y))
    out = w.copy()
    for label in (0, 1):
        total = w[y == label].sum()
        if not total > 0:
            raise ValueError(f"weights: class {label} must have a positive sum of weights, got {total:.4g}")
        out[y == label] *= 0.5 * len(y) / total
    return out


# --- reliability and calibration -------------------------------------------------------------------


@dataclass(frozen=True)
class ReliabilityCurve:
    """Per score bin: ``predicted`` (weighted mean s), ``observed`` (class-1 fraction of the weight)
    and its ``error``, ``weight`` (sum); χ² = Σ ((observed − predicted)/error)² over ``ndf`` bins."""

    edges: np.ndarray
    predicted: np.ndarray
    observed: np.ndarray
    error: np.ndarray
    weight: np.ndarray
    chi2: float
    ndf: int

    def to_dict(self) -> dict[str, Any]:
        return as_dict(self)


def reliability_curve(
    score: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None, *, bins: int | np.ndarray = 10
) -> ReliabilityCurve:
    """The reliability (calibration) curve of a classifier score s ∈ [0, 1].

    In a bin with class-1 weight a (variance Σw², Poisson) and class-0 weight b, the observed
    fraction is f = a/(a + b) with σ_f² = (b² Σ_1 w² + a² Σ_0 w²)/(a + b)⁴. For a calibrated score
    (balanced classes, s = p_1/(p_1 + p_0)) f equals the mean s in the bin, and χ² ~ χ²(ndf).

    Args:
        score: s per event ``(n_events,)``.
        y: labels 0/1 ``(n_events,)``.
        weights: ``(n_events,)``, balanced (:func:`balance_classes`); None: 1.
        bins: the number of equal-weight bins (:func:`quantile_edges`), or edges.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> s = rng.random(20_000); y = (rng.random(20_000) < s).astype(float)
        >>> c = reliability_curve(s, y, bins=5); bool(np.all(np.abs(c.observed - c.predicted) < 4 * c.error))
        True
    """
    score, y = np.asarray(score, dtype=float), np.asarray(y)
    w = _weights(weights, len(score))
    edges = quantile_edges(score, w, bins) if np.ndim(bins) == 0 else np.asarray(bins, dtype=float)
    index = np.clip(np.searchsorted(edges, score, side="right") - 1, 0, len(edges) - 2)
    n = len(edges) - 1

    def total(values: np.ndarray) -> np.ndarray:
        return np.bincount(index, values, minlength=n)

    one = y == 1
    a, b = total(np.where(one, w, 0.0)), total(np.where(one, 0.0, w))
    var_a, var_b = total(np.where(one, w**2, 0.0)), total(np.where(one, 0.0, w**2))
    weight = a + b
    with np.errstate(divide="ignore", invalid="ignore"):
        predicted = total(w * score) / weight
        observed = a / weight
        error = np.sqrt(b**2 * var_a + a**2 * var_b) / weight**2
        pull = (observed - predicted) / error
    used = np.isfinite(pull)
    return ReliabilityCurve(edges, predicted, observed, error, weight, float(np.sum(pull[used] ** 2)),
                            int(used.sum()))  # fmt: skip


class _Calibrator:
    """Shared part of the calibrators: the fitted map score → calibrated score, and ratios."""

    def _map(self, score: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict(self, score: np.ndarray) -> np.ndarray:
        """The calibrated score ``(n_events,)`` in [ε, 1 − ε] of scores ``(n_events,)``.

        Raises:
            NotFittedError: before ``fit``.
        """
        from assay.exceptions import NotFittedError

        if not hasattr(self, "x_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit(score, y, weights)")
        return np.clip(self._map(np.asarray(score, dtype=float)), _EPS, 1.0 - _EPS)

    def ratio(self, r: np.ndarray) -> np.ndarray:
        """The calibrated ratio s'/(1 − s') of ratios r̂ ``(n_events,)`` (s = r̂/(1 + r̂))."""
        r = np.asarray(r, dtype=float)
        s = self.predict(r / (1.0 + r))
        return s / (1.0 - s)


class HistogramCalibrator(_Calibrator):
    """Calibration by histogram: a score maps to the observed class-1 fraction of its bin.

    Args:
        bins: equal-weight bins of the training scores.

    Example:
        >>> rng = np.random.default_rng(1)
        >>> s = rng.random(50_000); y = (rng.random(50_000) < s).astype(float)
        >>> cal = HistogramCalibrator(bins=10).fit(s**3, y)
        >>> bool(abs(cal.predict(np.array([0.125]))[0] - 0.5) < 0.06)
        True
    """

    def __init__(self, *, bins: int = 20):
        self.bins = int(bins)

    def fit(self, score: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> HistogramCalibrator:
        """Fit on scores, labels and weights ``(n_events,)`` each (balanced classes); returns ``self``."""
        curve = reliability_curve(score, y, weights, bins=self.bins)
        ok = np.isfinite(curve.observed)
        self.x_, self.y_ = curve.edges, np.interp(np.arange(len(ok)), np.flatnonzero(ok), curve.observed[ok])
        return self

    def _map(self, score: np.ndarray) -> np.ndarray:
        return self.y_[np.clip(np.searchsorted(self.x_, score, side="right") - 1, 0, len(self.y_) - 1)]


@njit(cache=True)
def _pool_adjacent_violators(y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Block means and block sizes of the weighted non-decreasing least-squares fit to y (w > 0)."""
    means, weights, sizes = np.empty(len(y)), np.empty(len(y)), np.empty(len(y), dtype=np.int64)
    k = -1
    for i in range(len(y)):
        k += 1
        means[k], weights[k], sizes[k] = y[i], w[i], 1
        while k > 0 and means[k - 1] >= means[k]:
            total = weights[k - 1] + weights[k]
            means[k - 1] = (weights[k - 1] * means[k - 1] + weights[k] * means[k]) / total
            weights[k - 1], sizes[k - 1] = total, sizes[k - 1] + sizes[k]
            k -= 1
    return means[: k + 1], sizes[: k + 1]


class IsotonicCalibrator(_Calibrator):
    """Isotonic calibration: the non-decreasing map score → class-1 probability that best fits the
    labels in weighted least squares (pool-adjacent-violators), interpolated linearly between the
    weighted mean scores of its blocks (constant beyond them).

    Example:
        >>> cal = IsotonicCalibrator().fit(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0, 1, 0, 1]))
        >>> cal.predict(np.array([0.1, 0.25, 0.4])).round(6).tolist()
        [0.0, 0.5, 1.0]
    """

    def fit(self, score: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> IsotonicCalibrator:
        """Fit on scores, labels and weights ``(n_events,)`` each (balanced classes); returns ``self``.

        Raises:
            ValueError: negative weights (the least-squares fit needs w ≥ 0).
        """
        score, y = np.asarray(score, dtype=float), np.asarray(y, dtype=float)
        w = _weights(weights, len(score))
        if np.any(w < 0):
            raise ValueError(
                f"weights: isotonic calibration needs weights >= 0, got {int((w < 0).sum())} < 0"
            )
        unique, inverse = np.unique(score[w > 0], return_inverse=True)  # ties pooled first
        sw = np.bincount(inverse, w[w > 0])
        sy = np.bincount(inverse, (w * y)[w > 0]) / sw
        means, sizes = _pool_adjacent_violators(sy, sw)
        block = np.repeat(np.arange(len(sizes)), sizes)
        self.x_ = np.bincount(block, sw * unique) / np.bincount(block, sw)
        self.y_ = means
        return self

    def _map(self, score: np.ndarray) -> np.ndarray:
        return np.interp(score, self.x_, self.y_)


# --- reweighting closure ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Closure:
    """One observable's closure: per bin the normalised weight of the reweighted and the target
    samples with errors, their ``ratio`` (reweighted / target) and its error; χ² over ``ndf``."""

    observable: str
    edges: np.ndarray
    reweighted: np.ndarray
    reweighted_error: np.ndarray
    target: np.ndarray
    target_error: np.ndarray
    ratio: np.ndarray
    ratio_error: np.ndarray
    chi2: float
    ndf: int

    def to_dict(self) -> dict[str, Any]:
        return as_dict(self)


def _fractions(values: np.ndarray, w: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per bin Σw/Σw_all and its error √(Σw²)/Σw_all; values outside the edges go to the end bins."""
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    n = len(edges) - 1
    return np.bincount(index, w, n) / w.sum(), np.sqrt(np.bincount(index, w**2, n)) / abs(w.sum())


def reweighting_closure(
    x_source: np.ndarray,
    w_source: np.ndarray,
    ratio: np.ndarray,
    x_target: np.ndarray,
    w_target: np.ndarray,
    *,
    observables: tuple[str, ...] | list[str],
    bins: int = 20,
) -> list[Closure]:
    """The source sample (p_0) reweighted by r̂ against the target sample (p_1), per observable.

    Both histograms are normalised to unit weight, so the closure tests the shape (the overall
    scale of r̂ is E_0[r̂], reported separately). Bins hold equal target weight
    (:func:`quantile_edges`). With independent samples and the exact ratio,
    χ² = Σ_b (a_b − t_b)²/(σ_a,b² + σ_t,b²) follows χ²(ndf), ndf = bins used − 1 (Pearson's test
    of two normalised weighted histograms).

    Args:
        x_source: source events ``(n_source, n_obs)``.
        w_source: their weights ``(n_source,)`` (any unit).
        ratio: r̂(x) = p_1/p_0 of the source events ``(n_source,)``.
        x_target: target events ``(n_target, n_obs)``.
        w_target: their weights ``(n_target,)``.
        observables: names of the columns ``(n_obs,)``.
        bins: bins per observable.

    Returns:
        One :class:`Closure` per observable.
    """
    x_source, x_target = np.asarray(x_source, dtype=float), np.asarray(x_target, dtype=float)
    reweighted = np.asarray(w_source, dtype=float) * np.asarray(ratio, dtype=float)
    w_target = np.asarray(w_target, dtype=float)
    out = []
    for column, name in enumerate(observables):
        edges = quantile_edges(x_target[:, column], w_target, bins)
        if len(edges) < 2:  # a constant observable: one bin
            edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
        a, sa = _fractions(x_source[:, column], reweighted, edges)
        t, st = _fractions(x_target[:, column], w_target, edges)
        with np.errstate(divide="ignore", invalid="ignore"):
            pull = (a - t) / np.hypot(sa, st)
            ratio_b = a / t
            ratio_error = np.abs(ratio_b) * np.hypot(sa / a, st / t)
        used = np.isfinite(pull)
        out.append(Closure(name, edges, a, sa, t, st, ratio_b, ratio_error, float(np.sum(pull[used] ** 2)),
                           max(int(used.sum()) - 1, 0)))  # fmt: skip
    return out


# --- per-event distributions -----------------------------------------------------------------------


def ensemble_spread(mean: np.ndarray, std: np.ndarray, n_members: int) -> tuple[np.ndarray, np.ndarray]:
    """Per event, the ensemble's relative spread std/|mean| and the relative error of the mean.

    Args:
        mean: the ensemble mean ``(..., n_events)``, e.g. r̂_j.
        std: the members' standard deviation with ddof 0 (as
            :meth:`~assay.estimators.prediction.Prediction.from_members`), same shape.
        n_members: M ≥ 2.

    Returns:
        (std/|mean|, std/√(M − 1)/|mean|, the standard error of the mean from the unbiased
        variance), each shaped like ``mean``.

    Example:
        >>> spread, sem = ensemble_spread(np.array([2.0]), np.array([0.2]), 5)
        >>> spread.tolist(), sem.tolist()
        ([0.1], [0.05])
    """
    if n_members < 2:
        raise ValueError(f"n_members: the spread needs an ensemble of >= 2 members, got {n_members}")
    mean, std = np.abs(np.asarray(mean, dtype=float)), np.asarray(std, dtype=float)
    relative = std / np.maximum(mean, np.finfo(float).tiny)
    return relative, relative / np.sqrt(n_members - 1)


@dataclass(frozen=True)
class WeightedHistogram:
    """A per-event quantity's distribution: ``counts`` (Σw per bin, normalised to 1) over ``edges``,
    and the weighted ``quantiles`` at ``levels``."""

    edges: np.ndarray
    counts: np.ndarray
    levels: np.ndarray
    quantiles: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return as_dict(self)


def weighted_histogram(
    values: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    bins: int = 40,
    levels: tuple[float, ...] = (0.01, 0.16, 0.5, 0.84, 0.99),
) -> WeightedHistogram:
    """The normalised histogram (equal-width bins between the 0.1 and 99.9 % quantiles, the rest in
    the end bins) and weighted quantiles of ``values`` ``(n_events,)`` with ``weights`` (≥ 0 count).

    Example:
        >>> h = weighted_histogram(np.arange(101.0), bins=4, levels=(0.5,))
        >>> h.quantiles.tolist(), round(float(h.counts.sum()), 12)
        ([50.0], 1.0)
    """
    values = np.asarray(values, dtype=float)
    w = np.maximum(_weights(weights, len(values)), 0.0)
    order = np.argsort(values)
    cum = np.cumsum(w[order]) - 0.5 * w[order]
    q = np.interp(np.asarray(levels) * w.sum(), cum, values[order])
    lo, hi = np.interp(np.array([0.001, 0.999]) * w.sum(), cum, values[order])
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    counts, _ = _fractions(values, w, edges)
    return WeightedHistogram(edges, counts, np.asarray(levels, dtype=float), q)
