"""Neyman critical values for the coverage harness: a profile construction in pseudo-experiments.

Wilks' χ²₁ threshold (t = 1 for 68%) fails for the off-shell search at μ ≈ 1, where destructive
interference gives the rate N(μ) twice and the profiled likelihood two minima (the harness
measured a coverage of 0.92 there, docs/systematics.md). The Neyman construction (seed 003
"Neyman Construction"; :mod:`assay.inference.neyman`) measures the threshold instead:

- **statistic**: t(μ) = −2 log L(μ, α̂̂(μ)) − min −2 log L, where the minimum is the lowest of a
  global fit from the default start (μ = 1, α = a), a global fit started at (μ, α̂̂(μ)) and the
  conditional fit itself (:func:`profiled_statistic`): two starts find the lower of the two minima
  that the interference creates. Belt toys and coverage toys use this same function, so their
  t are the same random variable;
- **belt**: at each μ_k of a grid, ``n_toys`` pseudo-experiments drawn from the method's model at
  (μ_k, α = 0) with global observables a ~ N(0, 1) (as the coverage toys:
  :func:`~assay.analysis.coverage.toy_tasks`, with their own seeds), t(μ_k) of each, and
  t_c(μ_k) = their 68.27% quantile (:func:`~assay.inference.neyman.critical_values`);
- **nuisances**: the belt is built at the nominal α = 0 with randomised global observables, the
  "profile construction" at α̂̂ of the nominal model. Profiling makes t's distribution nearly
  independent of the true α, which the harness checks by drawing coverage toys at α_true ≠ 0
  (tests/test_coverage_neyman.py);
- **interval** of a coverage toy: {μ : t(μ) ≤ t_c(μ)}. It contains μ_true iff
  t(μ_true) ≤ t_c(μ_true), with t_c linearly interpolated between grid points (exact on a grid
  point); its width, where the belt covers the toy's scan grid, is the span of the Neyman regions
  (:func:`~assay.inference.neyman.neyman_regions`) of the toy's scanned t.

The belt is written atomically to ``limits/coverage/<method>__neyman.json`` with its settings
and every toy's t, and reused by a rerun with the same settings.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assay.analysis.profiled import ProfiledMethod
from assay.inference.asymptotic import ONE_SIGMA
from assay.inference.neyman import challenge_score, neyman_regions
from assay.inference.profile_likelihood import ProfileLikelihood
from assay.inference.pseudo_experiments import binomial_standard_error, fit_pseudo_experiments

__all__ = ["BELT_TAG", "Belt", "BeltToy", "neyman_belt", "neyman_summary", "profiled_statistic"]

BELT_TAG = 19  # belt toys at grid point k, toy i: np.random.default_rng([seed, 19, crc32(point), i])


def profiled_statistic(likelihood: ProfileLikelihood, mu: float, best=None) -> tuple[float, float]:
    """(t(μ), min −2 log L) of one data set (module docstring); ``best``: a global fit already done."""
    conditional = likelihood.fit(fixed_poi=[mu], covariance=False)
    default = likelihood.fit(covariance=False) if best is None else best
    near = likelihood.fit(start=conditional.values, covariance=False)
    lowest = min(default.minus_2_log_l, near.minus_2_log_l, conditional.minus_2_log_l)
    return max(conditional.minus_2_log_l - lowest, 0.0), lowest


@dataclass(frozen=True, eq=False)
class BeltToy:
    """t(μ_k) of one belt toy ``(k, (events, counts, a))``: a float, NaN for a failed fit. Picklable."""

    method: ProfiledMethod
    grid: tuple[float, ...]
    likelihood: Callable[[ProfiledMethod, np.ndarray, np.ndarray], ProfileLikelihood]

    def __call__(self, task: tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> float:
        k, (events, counts, a) = task
        weights = np.zeros(self.method.terms.n_events)
        np.add.at(weights, events, counts)
        try:
            return profiled_statistic(self.likelihood(self.method, weights, a), self.grid[k])[0]
        except (ValueError, RuntimeError, FloatingPointError, np.linalg.LinAlgError):
            return float("nan")


@dataclass(frozen=True, eq=False)
class Belt:
    """Critical values t_c(μ) of one method on a grid of μ.

    Attributes:
        grid: μ_k ``(n_grid,)``, increasing.
        t_toys: t(μ_k) of the belt toys drawn at μ_k ``(n_grid, n_toys)``; NaN for failed fits.
        critical: t_c(μ_k) at ``cl`` ``(n_grid,)``, from the valid toys.
        cl: the confidence level.
    """

    grid: np.ndarray
    t_toys: np.ndarray
    critical: np.ndarray
    cl: float = ONE_SIGMA

    @classmethod
    def from_toys(cls, grid: Sequence[float], t_toys: np.ndarray, cl: float = ONE_SIGMA) -> Belt:
        t = np.asarray(t_toys, dtype=float)
        grid = np.asarray(grid, dtype=float)
        if t.ndim != 2 or t.shape[0] != len(grid):
            raise ValueError(f"t_toys: expected shape (n_grid, n_toys) = ({len(grid)}, n), got {t.shape}")
        if np.isnan(t).all(axis=1).any():
            raise ValueError("t_toys: every toy of a grid point failed; no critical value there")
        return cls(grid, t, np.nanquantile(t, cl, axis=1), cl)

    def critical_at(self, mu: float) -> float:
        """t_c(μ), linear between grid points; NaN outside the grid."""
        if not self.grid[0] - 1e-12 <= mu <= self.grid[-1] + 1e-12:
            return float("nan")
        return float(np.interp(mu, self.grid, self.critical))

    def on_grid(self, values: np.ndarray) -> bool:
        """The belt's grid is ``values`` (so a toy's scan can be cut at t_c point by point)."""
        return len(values) == len(self.grid) and bool(np.allclose(values, self.grid, atol=1e-12))


def neyman_belt(
    method: ProfiledMethod,
    grid: Sequence[float],
    tasks: Callable[[float], list],
    likelihood: Callable[[ProfiledMethod, np.ndarray, np.ndarray], ProfileLikelihood],
    *,
    cl: float = ONE_SIGMA,
    client: Any = None,
    progress: bool = True,
) -> Belt:
    """The belt of ``method``: ``tasks(μ_k)`` gives the toys drawn at μ_k (module docstring).

    Args:
        method: the profiled method.
        grid: μ_k ``(n_grid,)``, increasing.
        tasks: μ → the toys ``(events, counts, a)`` drawn at (μ, α = 0).
        likelihood: (method, counts, a) → the toy's :class:`ProfileLikelihood`.
        cl: confidence level of t_c.
        client: a ``dask.distributed.Client`` or None (this process).
        progress: a progress bar.
    """
    grid = [float(m) for m in grid]
    if any(b <= a for a, b in itertools.pairwise(grid)):
        raise ValueError(f"grid: expected increasing values of μ, got {grid}")
    all_tasks = [(k, task) for k, mu in enumerate(grid) for task in tasks(mu)]
    n_toys = len(all_tasks) // len(grid)
    fitter = BeltToy(method, tuple(grid), likelihood)
    t = np.array(fit_pseudo_experiments(all_tasks, fitter, client=client, progress=progress), dtype=float)
    return Belt.from_toys(grid, t.reshape(len(grid), n_toys), cl)


def toy_statistics(likelihood: ProfileLikelihood, mu_true: float, best, values: np.ndarray) -> dict[str, Any]:
    """A coverage toy's t(μ_true) and its t on the scan grid ``values`` (for the Neyman regions)."""
    t_true, lowest = profiled_statistic(likelihood, mu_true, best)
    scan = likelihood.scan(values, fit=best, reference=lowest)
    return {"t_true": t_true, "t_scan": np.maximum(scan.minus_2_delta_log_l, 0.0).tolist()}


def neyman_summary(
    toys: Sequence[Mapping[str, Any]], mu_true: float, belt: Belt, scan_values: np.ndarray
) -> dict[str, Any]:
    """Coverage of the Neyman 68% interval over ``toys`` (those with a valid t(μ_true)), its error, the
    belt's t_c(μ_true) and, where the belt covers the scan grid, the mean width and challenge score."""
    critical = belt.critical_at(mu_true)
    ok = [t for t in toys if t.get("t_true") is not None and math.isfinite(t["t_true"])]
    out: dict[str, Any] = {"t_c": critical, "n_toys_belt": int(belt.t_toys.shape[1]),
                           "n_failed_belt": int(np.isnan(belt.t_toys).sum()), "n_valid": len(ok)}  # fmt: skip
    if not ok or not math.isfinite(critical):
        return out | {"coverage_68": None, "mean_width_68": None, "challenge_score": None}
    c = float(np.mean([t["t_true"] <= critical for t in ok]))
    out |= {"coverage_68": c, "coverage_68_error": binomial_standard_error(c, len(ok))}
    if not belt.on_grid(scan_values):
        return out | {"mean_width_68": None, "challenge_score": None}
    widths = []
    for t in ok:
        regions = neyman_regions(belt.grid, np.asarray(t["t_scan"]), belt.critical)
        widths.append(regions[-1][1] - regions[0][0] if regions else 0.0)
    w = float(np.mean(widths))
    return out | {"mean_width_68": w, "challenge_score": challenge_score(w, c, len(ok))}


def belt_path(folder: Path, method: str) -> Path:
    """Where the belt of ``method`` is written."""
    return folder / f"{method}__neyman.json"
