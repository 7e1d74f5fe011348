"""Neyman construction and the coverage score of the FAIR Universe challenge.

Wilks' theorem gives the critical value of t_μ = −2 log λ(μ) asymptotically (χ²₁: 1 for 68%);
near a boundary (μ ≥ 0), with few events or with a degenerate likelihood (interference, seed 001)
it fails. The Neyman construction (seed 003 "Neyman Construction: Throwing toys") measures it:
at each μ on a grid, the distribution of t_μ over pseudo-experiments drawn at μ gives the critical
value t_c(μ) = its CL quantile; the confidence set of observed data is {μ : t_μ(obs) ≤ t_c(μ)}.

The FAIR Universe HiggsML Uncertainty Challenge (arXiv:2410.02867) scores a method's 68%
intervals by their mean width w and coverage c over N pseudo-experiments,

    score = −ln((w + 10⁻³) · f(c)),   σ₆₈ = √(0.6827 · 0.3173 / N),
    f(c) = 1                                   for |c − 0.6827| ≤ 2σ₆₈,
         = 1 + |(c − 0.6827 + 2σ₆₈)/σ₆₈|⁴      for c < 0.6827 − 2σ₆₈ (under-coverage),
         = 1 + |(c − 0.6827 − 2σ₆₈)/σ₆₈|³      for c > 0.6827 + 2σ₆₈ (over-coverage).
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = ["ONE_SIGMA_COVERAGE", "challenge_score", "critical_values", "neyman_regions"]

ONE_SIGMA_COVERAGE = 0.6827


def critical_values(t_toys: np.ndarray, cl: float) -> np.ndarray:
    """t_c(μ): the ``cl`` quantile of t_μ over the toys drawn at each μ.

    Args:
        t_toys: t_μ of the toys ``(n_mu, n_toys)`` (each row: toys drawn at that μ, fitted at it).
        cl: confidence level in (0, 1).

    Returns:
        ``(n_mu,)``.

    Raises:
        ValueError: a non-2D array, NaN values, or ``cl`` outside (0, 1).

    Example:
        >>> t = np.random.default_rng(0).chisquare(1, (2, 100_000))
        >>> np.round(critical_values(t, 0.6827), 1).tolist()  # Wilks: 1 for χ²₁
        [1.0, 1.0]
    """
    t = np.asarray(t_toys, dtype=float)
    if t.ndim != 2 or t.shape[1] < 1:
        raise ValueError(f"t_toys: expected shape (n_mu, n_toys), got {t.shape}")
    if np.isnan(t).any():
        raise ValueError(f"t_toys: {int(np.isnan(t).sum())} NaN values (failed fits?); drop or refit them")
    if not 0 < cl < 1:
        raise ValueError(f"cl: expected a number in (0, 1), got {cl}")
    return np.quantile(t, cl, axis=1)


def neyman_regions(
    mu: np.ndarray, t_observed: np.ndarray, t_critical: np.ndarray
) -> list[tuple[float, float]]:
    """The confidence set {μ : t_μ(obs) ≤ t_c(μ)} on the grid, as disjoint intervals.

    The ends are interpolated linearly in t_obs − t_c between neighbouring grid points; a set
    reaching the first or last point ends there.

    Args:
        mu: the grid ``(n_mu,)``, increasing.
        t_observed: t_μ of the data at each grid point ``(n_mu,)``.
        t_critical: t_c(μ) ``(n_mu,)`` (:func:`critical_values`, or Wilks' constant).

    Example:
        >>> mu = np.linspace(0, 2, 21)
        >>> [(round(a, 3), round(b, 3)) for a, b in neyman_regions(mu, 4 * (mu - 1) ** 2, np.ones(21))]
        [(0.5, 1.5)]
    """
    arrays = [np.asarray(a, dtype=float) for a in (mu, t_observed, t_critical)]
    shapes = [a.shape for a in arrays]
    if arrays[0].ndim != 1 or len(set(shapes)) > 1:
        raise ValueError(f"mu, t_observed, t_critical: expected equal 1D shapes, got {shapes}")
    mu, d = arrays[0], arrays[1] - arrays[2]
    inside = d <= 0
    regions: list[tuple[float, float]] = []
    for accepted, run in itertools.groupby(range(len(mu)), key=lambda i: inside[i]):
        if not accepted:
            continue
        idx = list(run)
        lo, hi = idx[0], idx[-1]
        a = mu[lo] if lo == 0 else mu[lo - 1] + (mu[lo] - mu[lo - 1]) * d[lo - 1] / (d[lo - 1] - d[lo])
        b = mu[hi] if hi == len(mu) - 1 else mu[hi] + (mu[hi + 1] - mu[hi]) * d[hi] / (d[hi] - d[hi + 1])
        regions.append((float(a), float(b)))
    return regions


def challenge_score(mean_width: float, coverage: float, n_toys: int) -> float:
    """The FAIR Universe challenge score of 68% intervals (module docstring).

    Args:
        mean_width: mean width w of the intervals (in μ).
        coverage: fraction c of pseudo-experiments whose interval contains the true μ.
        n_toys: number N of pseudo-experiments.

    Example:
        >>> round(challenge_score(0.5, 0.6827, 1000), 4)  # perfect coverage: −ln(w + 0.001)
        0.6911
        >>> challenge_score(0.5, 0.5, 1000) < challenge_score(0.5, 0.6827, 1000)
        True
    """
    if n_toys < 1:
        raise ValueError(f"n_toys: expected >= 1, got {n_toys}")
    sigma = np.sqrt(ONE_SIGMA_COVERAGE * (1 - ONE_SIGMA_COVERAGE) / n_toys)
    if coverage < ONE_SIGMA_COVERAGE - 2 * sigma:
        f = 1 + abs((coverage - ONE_SIGMA_COVERAGE + 2 * sigma) / sigma) ** 4
    elif coverage > ONE_SIGMA_COVERAGE + 2 * sigma:
        f = 1 + abs((coverage - ONE_SIGMA_COVERAGE - 2 * sigma) / sigma) ** 3
    else:
        f = 1.0
    return float(-np.log((mean_width + 1e-3) * f))
