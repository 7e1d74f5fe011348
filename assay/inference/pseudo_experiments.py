"""Pseudo-experiments: toy data sets drawn from a weighted pool, fitted one by one, and their coverage.

A pseudo-experiment at θ is a data set of N ~ Pois(L σ(θ)) events from p(x|θ) (seed 000
"Additional formulas": p_full = Pois(N | L σ(θ)) Π_i p(x_i|θ)). Here its events are drawn with
replacement from a pool of weighted events (e.g. the test partition) with probability ∝ w_i(θ):
the pool's weighted distribution stands in for p(x|θ). A toy then follows the pool's empirical
distribution, whose deviation from p(x|θ) is common to all toys and of relative size
~ sqrt(N / n_eff) in units of the toy's statistical error (n_eff = (Σw)² / Σw²); keep the pool's
n_eff ≫ N so that this shared offset and repeated events do not bias the coverage.

Each data set is fitted like observed data (:func:`fit_observed`: unweighted events, extended
likelihood, Wilks intervals by :func:`~assay.inference.asymptotic.limits_1d`), in-process or on a
``dask.distributed.Client`` (:func:`fit_pseudo_experiments`), and :func:`coverage` counts how
often the intervals contain the θ the toys were drawn at: by Wilks' theorem a fraction CL
asymptotically (seed 000 "Setting Limits").
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from tqdm.auto import tqdm

from assay.inference.asymptotic import DEFAULT_CLS, cl_tag, limits_1d
from assay.inference.likelihood import CrossSection, Scan, check_luminosity, observed_scan

__all__ = [
    "ObservedFit",
    "SubsetFit",
    "binomial_standard_error",
    "coverage",
    "draw_pseudo_experiments",
    "fit_observed",
    "fit_pseudo_experiments",
]

Bounds = tuple[float | None, float | None]
_Fit = TypeVar("_Fit")


def draw_pseudo_experiments(
    weights: np.ndarray, n_expected: float, n_toys: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Event indices of ``n_toys`` pseudo-experiments drawn from a weighted pool.

    Args:
        weights: w_i(θ) ≥ 0 of the pool's events at the θ the toys are drawn at, ``(n_events,)``
            (any units; only the proportions matter), e.g. the test partition's weights at θ_true.
        n_expected: expected events per toy, L σ(θ) (:func:`~assay.inference.likelihood.expected_events`).
        n_toys: number of pseudo-experiments, ≥ 1.
        rng: random generator.

    Returns:
        One sorted index array per toy, ``(N_k,)`` with N_k ~ Pois(n_expected); indices are drawn
        with replacement with probability w_i / Σw and may repeat. Take ``x[indices]`` (and the
        benchmark weights) of the pool for each toy.

    Raises:
        ValueError: weights not 1D, negative, non-finite or all zero; n_expected ≤ 0 or not
            finite; n_toys < 1.
        TypeError: rng is not a ``numpy.random.Generator``.

    Example:
        >>> toys = draw_pseudo_experiments(np.array([0.0, 1.0, 3.0]), 100.0, 2, np.random.default_rng(0))
        >>> len(toys), bool(all(np.isin(t, [1, 2]).all() for t in toys))
        (2, True)
    """
    w = np.asarray(weights, dtype=float)
    if w.ndim != 1 or len(w) == 0:
        raise ValueError(f"weights: expected shape (n_events,) with n_events >= 1, got {w.shape}")
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"weights: expected finite weights >= 0, got {int(bad.sum())} bad of {len(w)} (first: event {i}, "
            f"{w[i]}); draw toys at a θ where every weight is defined, or drop negative-weight events first"
        )
    if not w.sum() > 0:
        raise ValueError(f"weights: expected a positive sum, got all {len(w)} weights zero")
    n_exp = float(n_expected)
    if not (np.isfinite(n_exp) and n_exp > 0):
        raise ValueError(f"n_expected: expected a finite number of events > 0 (L σ(θ)), got {n_expected}")
    if isinstance(n_toys, bool) or not isinstance(n_toys, (int, np.integer)) or n_toys < 1:
        raise ValueError(f"n_toys: expected an integer >= 1, got {n_toys!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng: expected a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng)}"
        )
    cdf = np.cumsum(w)
    last = int(np.flatnonzero(w)[-1])  # u · Σw rounding up to Σw must not pick a trailing zero weight
    return [
        np.sort(np.minimum(np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right"), last))
        for n in rng.poisson(n_exp, size=int(n_toys))
    ]


@dataclass(frozen=True, eq=False)  # holds scans: compare fields explicitly
class ObservedFit:
    """The fit of one data set, one 1D scan per parameter.

    Attributes:
        best_fit: parameter → θ̂ (minimum of the spline of q).
        intervals: ``"<param>_<tag>"`` (tag from :func:`~assay.inference.asymptotic.cl_tag`:
            "68", "95") → (lo, hi), the span of the CL region; ``None`` for an end where the
            region reaches the edge of the scan (the limit lies outside it).
        scans: parameter → the 1D :class:`~assay.inference.likelihood.Scan` the limits come from.
    """

    best_fit: dict[str, float]
    intervals: dict[str, Bounds]
    scans: dict[str, Scan]

    def contains(self, key: str, value: float) -> bool:
        """Whether ``intervals[key]`` contains ``value``; an open end contains everything on its side."""
        if key not in self.intervals:
            raise KeyError(f"{key!r}: not an interval of this fit; it has {sorted(self.intervals)}")
        lo, hi = self.intervals[key]
        return (lo is None or lo <= value) and (hi is None or value <= hi)


def _varying_axis(theta: np.ndarray, parameter: str) -> int:
    """The one column of a 1D scan's θ points ``(n, n_params)`` that varies."""
    if theta.ndim != 2 or len(theta) < 4:
        raise ValueError(
            f"scans_1d[{parameter!r}]: expected θ points of shape (n >= 4, n_params), got {theta.shape}"
        )
    varying = np.flatnonzero(np.ptp(theta, axis=0) > 0)
    if len(varying) != 1:
        raise ValueError(
            f"scans_1d[{parameter!r}]: expected θ points along one parameter with the others fixed, got "
            f"{len(varying)} varying columns {varying.tolist()}"
        )
    return int(varying[0])


def fit_observed(
    log_r: Callable[[np.ndarray], np.ndarray],
    cross_section: CrossSection,
    luminosity: float,
    scans_1d: Mapping[str, np.ndarray],
    *,
    cls: Sequence[float] = DEFAULT_CLS,
    theta_chunk: int = 32,
) -> ObservedFit:
    """Fit one data set: an observed 1D scan per parameter and its Wilks intervals.

    Args:
        log_r: log r̂(x_i|θ, θ_ref) of the data set's events, ``θ (n, n_params) → (n, n_events)``.
        cross_section: σ(θ) in pb, a callable ``θ (n, n_params) → (n,)``.
        luminosity: L in fb⁻¹ of the data set.
        scans_1d: parameter → θ points ``(n, n_params)`` varying that parameter only (the others
            fixed, e.g. at their true values), n ≥ 4.
        cls: confidence levels.
        theta_chunk: θ points per call of ``log_r``.

    Returns:
        :class:`ObservedFit`; intervals use the extended likelihood of unweighted events
        (:func:`~assay.inference.likelihood.observed_scan`, N = n_events) and
        :func:`~assay.inference.asymptotic.limits_1d` (1 dof).

    Raises:
        ValueError: empty ``scans_1d``, θ points not along exactly one parameter, and the scans'
            own errors (luminosity ≤ 0, σ ≤ 0, NaN in log r̂).
    """
    if not scans_1d:
        raise ValueError("scans_1d: expected at least one parameter → θ points, got none")
    check_luminosity(luminosity)
    best_fit: dict[str, float] = {}
    intervals: dict[str, Bounds] = {}
    scans: dict[str, Scan] = {}
    for parameter, points in scans_1d.items():
        theta = np.asarray(points, dtype=float)
        axis = _varying_axis(theta, parameter)
        full = observed_scan(theta, log_r, cross_section, luminosity, theta_chunk=theta_chunk)
        scans[parameter] = Scan(theta[:, [axis]], full.minus_2_delta_log_l, full.mle[[axis]])
        result = limits_1d(scans[parameter], cls)
        best_fit[parameter] = float(result.best_fit[0])
        for cl in cls:
            intervals[f"{parameter}_{cl_tag(cl)}"] = result.bounds(cl)
    return ObservedFit(best_fit, intervals, scans)


@dataclass(frozen=True, eq=False)  # holds arrays
class SubsetFit:
    """A picklable ``fit_one`` for :func:`fit_pseudo_experiments`: :func:`fit_observed` on ``x[indices]``.

    Attributes:
        x: the pool's observables ``(n_events, n_obs)``.
        log_r: ``(x (n, n_obs), θ (n_theta, n_params)) → (n_theta, n)``, log r̂(x|θ, θ_ref) of
            any events; a module-level function or picklable object (it travels to Dask workers).
        cross_section: σ(θ) in pb, a picklable callable.
        luminosity: L in fb⁻¹ of one data set.
        scans_1d: as in :func:`fit_observed`.
        cls: confidence levels.
    """

    x: np.ndarray
    log_r: Callable[[np.ndarray, np.ndarray], np.ndarray]
    cross_section: Callable[[np.ndarray], np.ndarray]
    luminosity: float
    scans_1d: Mapping[str, np.ndarray]
    cls: Sequence[float] = DEFAULT_CLS

    def __call__(self, indices: np.ndarray) -> ObservedFit:
        """Fit the events ``indices`` of the pool (from :func:`draw_pseudo_experiments`)."""
        log_r = functools.partial(self.log_r, self.x[np.asarray(indices)])
        return fit_observed(log_r, self.cross_section, self.luminosity, self.scans_1d, cls=self.cls)


def _apply(fit_one: Callable[[Any], _Fit], experiment: Any) -> _Fit:
    return fit_one(experiment)


def fit_pseudo_experiments(
    experiments: Iterable[Any],
    fit_one: Callable[[Any], _Fit],
    *,
    client: Any = None,
    progress: bool = True,
) -> list[_Fit]:
    """Fit every pseudo-experiment, in-process or on a Dask cluster.

    Args:
        experiments: one item per toy, e.g. the index arrays of :func:`draw_pseudo_experiments`.
        fit_one: ``experiment → ObservedFit`` (e.g. a :class:`SubsetFit`; any result type
            works); with a client it must be picklable (it is sent once to every worker, with
            the pool it holds).
        client: a ``dask.distributed.Client`` (e.g. :func:`assay.cluster.local_client`): one task
            per toy, the experiments scattered; None: in this process.
        progress: show a tqdm progress bar.

    Returns:
        The fits, in the order of ``experiments``; the same with or without a client.
    """
    experiments = list(experiments)
    bar = functools.partial(
        tqdm, total=len(experiments), unit="toy", desc="pseudo-experiments", disable=not progress
    )
    if client is None:
        return [fit_one(experiment) for experiment in bar(experiments)]
    if not experiments:
        return []
    from dask.distributed import as_completed

    remote_fit = client.scatter(fit_one, broadcast=True, hash=False)
    remote_data = client.scatter(experiments, hash=False)
    futures = client.map(_apply, [remote_fit] * len(remote_data), remote_data, pure=False)
    try:
        for _ in bar(as_completed(futures)):
            pass
        return client.gather(futures)
    finally:
        client.cancel([*futures, *remote_data, remote_fit])


def coverage(
    fits: Sequence[ObservedFit], theta_true: Sequence[float], parameters: Sequence[str]
) -> dict[str, float]:
    """Fraction of fits whose interval contains θ_true, per ``"<param>_<tag>"`` key.

    Args:
        fits: the fits of pseudo-experiments drawn at ``theta_true``.
        theta_true: the true value of each of ``parameters``, ``(len(parameters),)``.
        parameters: names, as in the fits' scans.

    Returns:
        ``{"<param>_<tag>": fraction}`` for every interval of those parameters; an open end
        counts as containing θ_true on its side (:meth:`ObservedFit.contains`). With disjoint
        CL regions the span is tested, which over-covers. Its statistical error is
        :func:`binomial_standard_error` of the fraction and ``len(fits)``.

    Raises:
        ValueError: no fits, ``theta_true`` not one value per parameter, or a parameter without
            intervals.
    """
    if not fits:
        raise ValueError("fits: expected at least one ObservedFit, got none")
    values = np.asarray(theta_true, dtype=float).reshape(-1)
    if len(values) != len(parameters):
        raise ValueError(
            f"theta_true: expected one value per parameter {list(parameters)}, got {len(values)} values"
        )
    out: dict[str, float] = {}
    for parameter, value in zip(parameters, values):
        keys = [k for k in fits[0].intervals if k.rsplit("_", 1)[0] == parameter]
        if not keys:
            raise ValueError(
                f"parameters: {parameter!r} has no intervals in the fits; they have "
                f"{sorted(fits[0].intervals)}"
            )
        for key in keys:
            out[key] = float(np.mean([fit.contains(key, float(value)) for fit in fits]))
    return out


def binomial_standard_error(fraction: float, n: int) -> float:
    """sqrt(p (1 − p) / n), the standard error of a fraction p measured on n independent trials.

    Example:
        >>> round(binomial_standard_error(0.6827, 500), 4)
        0.0208
    """
    if n < 1 or not 0 <= fraction <= 1:
        raise ValueError(f"expected 0 <= fraction <= 1 and n >= 1, got fraction {fraction}, n {n}")
    return float(np.sqrt(fraction * (1 - fraction) / n))
