"""Finite-training-statistics nuisances of a mixture model's profiled method (issue 14, item 5).

A mixture model (:mod:`assay.estimators.mixture`) trains each classifier as an ensemble of M
members, member m on the training events with weights w_i · Pois(1) (seed 003), and predicts
with the ensemble mean of r̂_j. How far that mean is from the true r_j is estimated from the
members' scatter, and ``systematics.training_statistics`` propagates it into the profiled
likelihood in one of two ways:

- ``spurious_signal`` (seed 003): one nuisance ``training_statistics`` (unit Gaussian constraint)
  shifting the parameter of interest in every f_j, f_j(μ) → f_j(μ + α_s Δμ̂(μ))
  (:class:`~assay.inference.spurious_signal.SpuriousSignal`). Δμ̂(μ) = s(μ)/√M, with s(μ) the
  standard deviation over members of μ̂_m, the stat-only fit (nuisances at 0) of member m's ratios
  to the ensemble model's Asimov data at μ (:func:`spurious_signal`), on 9 points of the
  configured scan range, linear in between;
- ``ensemble`` (an ensemble-based alternative): the members' deviations from the mean,
  D_m(j, x_i) = ln r̂_jm(x_i) − mean_m ln r̂_jm(x_i), give the covariance of the mean's log ratios
  over processes and events, C = Dᵀ D / ((M − 1) M). Its M − 1 principal modes
  e_l = S_l v_l / √((M − 1) M) (singular values S_l, right singular vectors v_l of D) satisfy
  Σ_l e_l e_lᵀ = C, so nuisances ``training_statistics_1 … _{M−1}`` with shapes
  g(±1) = exp(±e_l) reproduce that covariance to first order (:func:`ensemble_modes`). Each
  changes every process's shape coherently across events, as the members do; the likelihood's
  renormalisation keeps the yields.

Both need M ≥ 2; their size shrinks as 1/√M at fixed training statistics and as the training
statistics grow. The nuisances appear among the others in results.json's ``systematics``
(pulls, impacts, the width with them fixed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from assay.inference.profile_likelihood import ProfileLikelihood
from assay.inference.spurious_signal import SpuriousSignal

__all__ = ["NUISANCE", "ensemble_modes", "spurious_signal", "with_training_statistics"]

NUISANCE = "training_statistics"
GRID_POINTS = 9


def _normalised(ratios: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """r_j / E_ref[r_j] ``(n_proc, n)``: the normalisation the ensemble mean gets (process_terms)."""
    r = np.maximum(np.asarray(ratios, dtype=float), 0.0)
    return r / (r @ reference / reference.sum())[:, None]


def spurious_signal(method, member_ratios: np.ndarray, grid: Sequence[float]) -> SpuriousSignal:
    """Seed 003's Δμ̂(μ) = std_m(μ̂_m(μ))/√M on ``grid`` (module docstring).

    Args:
        method: the mixture model's :class:`~assay.analysis.profiled.ProfiledMethod` (model Asimov,
            one parameter of interest), without training-statistics nuisances.
        member_ratios: r̂_j of every member on the method's events ``(M, n_proc, n_events)``, M ≥ 2.
        grid: μ values, increasing.

    Returns:
        the :class:`SpuriousSignal` of nuisance :data:`NUISANCE`.

    Raises:
        ValueError: fewer than two members or a shape that does not match the method's terms.
    """
    members = np.asarray(member_ratios, dtype=float)
    if members.ndim != 3 or members.shape[0] < 2 or members.shape[1:] != method.terms.ratios.shape:
        raise ValueError(
            f"member_ratios: expected shape (M >= 2, n_proc, n_events) with (n_proc, n_events) = "
            f"{method.terms.ratios.shape}, got {members.shape}"
        )
    fixed = dict.fromkeys(method.terms.names, 0.0)
    options = {"interpolation": method.interpolation, "normalization": method.reference}
    terms = [replace(method.terms, ratios=_normalised(r, method.reference)) for r in members]
    delta = []
    for mu in grid:
        weights = method.model_weights(np.array([float(mu)]))
        fits = [
            ProfileLikelihood(t, weights, method.coefficients, **options)
            .fit(fixed_alpha=fixed, covariance=False)
            .values[0]
            for t in terms
        ]
        delta.append(float(np.std(fits, ddof=1) / np.sqrt(len(fits))))
    return SpuriousSignal(NUISANCE, np.asarray(grid, dtype=float), np.array(delta))


def ensemble_modes(
    member_log_ratios: np.ndarray, tolerance: float = 1e-10, *, projection: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """The principal modes e_l of the covariance of the ensemble mean's log ratios (module docstring).

    Args:
        member_log_ratios: ln r̂_j of every member ``(M, n_proc, n_events)``, M ≥ 2.
        tolerance: modes with S_l ≤ ``tolerance`` · S_1 are dropped (identical members: none left).

    Returns:
        ``(n_modes, n_proc, n_events)``, n_modes ≤ M − 1, largest first; with ``projection`` also
        Q ``(M, n_modes)`` = U_l / √((M − 1) M) (left singular vectors), which gives the modes at any
        events: e_l(x) = Σ_m Q_ml D_m(x) (D_m = U S Vᵀ, so Uᵀ D = S Vᵀ).

    Example:
        >>> logs = np.random.default_rng(0).normal(0, 0.1, (5, 2, 1000))
        >>> e = ensemble_modes(logs)
        >>> e.shape
        (4, 2, 1000)
        >>> d = (logs - logs.mean(axis=0)).reshape(5, -1)  # Σ_l e_l e_lᵀ = Dᵀ D / ((M − 1) M)
        >>> bool(np.allclose(np.einsum("li,lj->ij", e.reshape(4, -1)[:, :5], e.reshape(4, -1)[:, :5]),
        ...                  d[:, :5].T @ d[:, :5] / 20))
        True
    """
    logs = np.asarray(member_log_ratios, dtype=float)
    if logs.ndim != 3 or logs.shape[0] < 2:
        raise ValueError(f"member_log_ratios: expected shape (M >= 2, n_proc, n_events), got {logs.shape}")
    m = logs.shape[0]
    deviations = (logs - logs.mean(axis=0)).reshape(m, -1)
    left, singular, vectors = np.linalg.svd(deviations, full_matrices=False)
    keep = singular > tolerance * max(float(singular[0]), np.finfo(float).tiny)
    modes = (singular[keep, None] * vectors[keep] / np.sqrt((m - 1) * m)).reshape(-1, *logs.shape[1:])
    if projection:
        return modes, left[:, keep] / np.sqrt((m - 1) * m)
    return modes


def with_training_statistics(method, kind: str, member_log_ratios: np.ndarray, grid: Sequence[float]):
    """``method`` with the training-statistics nuisances of ``kind`` added (module docstring).

    Args:
        method: the mixture model's profiled method.
        kind: ``spurious_signal`` or ``ensemble`` (``none``: ``method`` unchanged).
        member_log_ratios: ln r̂_j of every member on the method's events ``(M, n_proc, n_events)``.
        grid: μ values for Δμ̂ (``spurious_signal``).

    Raises:
        ValueError: an unknown kind, or fewer than two members.
    """
    if kind == "none":
        return method
    terms = method.terms
    if kind == "spurious_signal":
        shift = spurious_signal(method, np.exp(member_log_ratios), grid)
        ones = np.ones((1, terms.n_proc, terms.n_events))
        return replace(method, terms=terms.with_nuisances([NUISANCE], ones, ones), spurious=shift)
    if kind == "ensemble":
        modes = ensemble_modes(member_log_ratios)
        names = [f"{NUISANCE}_{i + 1}" for i in range(len(modes))]
        return replace(method, terms=terms.with_nuisances(names, np.exp(modes), np.exp(-modes)))
    raise ValueError(f"training_statistics: unknown kind {kind!r}; valid: none, spurious_signal, ensemble")
