"""Per-event terms of the profiled methods beyond the weights (assay/analysis/profiled.py).

- :func:`rate_calibration`: R̂(μ) of an estimated model on the events' exact weights at θ_true
  (:mod:`assay.inference.calibration`);
- :class:`ObservedTerms`: a mixture model's terms of observed events, from x alone;
- :func:`learned_shapes`: a mixture model's learned g_jk (or GOLLUM's Δ_jA) on the Asimov events;
- :func:`gollum_terms`, :func:`binned_gollum_terms`: GOLLUM's exact coefficients of events and bins.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from assay.analysis.systematics import SHAPE_FLOOR, log_polynomial_terms, point_weights
from assay.estimators.mixture import MixtureModel
from assay.estimators.nuisance_ratios import NuisanceRatios
from assay.exceptions import StoreError
from assay.inference.calibration import RateCalibration
from assay.inference.log_polynomial import LogPolynomialTerms
from assay.inference.profile_likelihood import ProfileLikelihood
from assay.inference.profile_terms import ProfileTerms
from assay.monomials import variation_points

if TYPE_CHECKING:  # profiled.py imports this module
    from assay.analysis.profiled import ProfiledMethod, VariedWeights

__all__ = [
    "CALIBRATION_POINTS",
    "ObservedTerms",
    "binned_gollum_terms",
    "gollum_terms",
    "learned_shapes",
    "rate_calibration",
]


CALIBRATION_POINTS = 61


def rate_calibration(method: ProfiledMethod, theta_true: np.ndarray, grid: np.ndarray) -> RateCalibration:
    """R̂(μ) = E_{p(x|θ_true)}[p̂(x|μ)/p̂(x|θ_true)] of ``method``'s model at α = 0 on its events with
    their exact weights at θ_true (``method.weights``), at the points ``grid`` of the (single)
    parameter of interest (:mod:`assay.inference.calibration`)."""
    model = ProfileLikelihood(method.terms, method.weights, method.coefficients, **method.options)
    zero = torch.zeros(method.terms.n_syst, dtype=torch.float64)

    def density(theta: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            rates, total = model.event_rates(torch.as_tensor(theta, dtype=torch.float64), zero)
        return rates.numpy() / float(total)

    w = method.weights
    at_true = np.maximum(density(np.asarray(theta_true, dtype=float)), 1e-300)
    log_r = [np.log(w @ (density(np.array([m])) / at_true) / w.sum()) for m in grid]
    return RateCalibration(np.asarray(grid, dtype=float), np.array(log_r))


@dataclass(frozen=True, eq=False)
class ObservedTerms:
    """The terms of observed events for a mixture model's profiled method with learned g_jk: the
    model's r̂_j(x) divided by the reference events' E_ref[r̂_j] (as :func:`process_terms` does),
    g_jk(x, ±1) from the nuisance ratios, the ensemble's modes at x (e_l(x) = Σ_m Q_ml D_m(x),
    :func:`~assay.analysis.training_statistics.ensemble_modes`), 1 for a spurious-signal nuisance;
    yields, names and processes of ``template`` (the method's terms on the reference events).

    Args:
        model: the mixture model.
        ratios: its learned nuisance ratios (the first nuisances of ``template``).
        template: the method's terms.
        scale: E_ref[r̂_j] on the reference events ``(n_proc,)``.
        projection: Q ``(M, n_modes)`` of ensemble modes (the nuisances after the learned ones), or None.
    """

    model: MixtureModel
    ratios: NuisanceRatios
    template: ProfileTerms
    scale: np.ndarray
    projection: np.ndarray | None = None

    def __call__(self, x: np.ndarray) -> ProfileTerms:
        """The terms of the events x ``(n, n_obs)``."""
        t, n = self.template, len(x)
        r = np.maximum(self.model.process_ratios(x).mean / self.scale[:, None], 0.0)
        up, down = np.ones((t.n_syst, t.n_proc, n)), np.ones((t.n_syst, t.n_proc, n))
        k = len(self.ratios.names_)
        g = np.maximum(self.ratios.shape_ratios(x), SHAPE_FLOOR)
        up[:k], down[:k] = g[:, 0], g[:, 1]
        if self.projection is not None:
            logs = self.model.member_log_ratios(x)
            e = np.einsum("ml,mjn->ljn", self.projection, logs - logs.mean(axis=0))
            up[k : k + len(e)], down[k : k + len(e)] = np.exp(e), np.exp(-e)
        return ProfileTerms(r, t.nu, up, down, t.norm_up, t.norm_down, t.names, t.constrained, t.processes,
                            t.linear_yields)  # fmt: skip


def learned_shapes(
    terms: ProfileTerms | LogPolynomialTerms, ratios: NuisanceRatios, x: np.ndarray, model: MixtureModel
) -> ProfileTerms | LogPolynomialTerms:
    """``terms`` with the shapes learned by ``ratios`` (same nuisances and processes): g_jk(x, ±1), or
    GOLLUM's Δ_jA(x) (cross terms included) for log-polynomial terms.

    Raises:
        StoreError: other nuisances or processes, or GOLLUM's terms from a model without cross terms.
    """
    if ratios.names_ != terms.names or ratios.processes_ != tuple(model.processes_):
        raise StoreError(
            f"the learned nuisance ratios are for nuisances {list(ratios.names_)} and processes "
            f"{list(ratios.processes_)}, the config has {list(terms.names)}; retrain it (`assay train`)"
        )
    if isinstance(terms, LogPolynomialTerms):
        if not ratios.cross_terms:
            raise StoreError(
                "systematics.interpolation gollum needs nuisance ratios learned with cross terms α_k α_l; "
                "these were trained without (another interpolation): retrain the model (`assay train`)"
            )
        return replace(terms, shape=ratios.log_coefficients(x))
    g = np.maximum(ratios.shape_ratios(x), SHAPE_FLOOR)  # (n_syst, 2, n_proc, n)
    return replace(terms, shape_up=g[:, 0], shape_down=g[:, 1])


def gollum_terms(
    terms: ProfileTerms, weights: VariedWeights, matrix: np.ndarray, *, chunk: int = 20_000
) -> LogPolynomialTerms:
    """GOLLUM's exact coefficients (:func:`~assay.analysis.systematics.log_polynomial_terms`) of the
    processes W_j = Σ_k P_jk W_k on the events of ``weights``, in chunks of ``chunk`` events.

    Args:
        terms: :func:`~assay.analysis.systematics.process_terms` of the same processes and events.
        weights: the events' varied weights (with their components and factors).
        matrix: P ``(n_proc, K)`` (the identity for the benchmarks).
    """
    points = variation_points(terms.n_syst)
    mixing = np.asarray(matrix, dtype=float) @ weights.mixing  # (n_proc, C)
    nominal = weights.nominal @ np.asarray(matrix, dtype=float).T
    chunks = [slice(start, start + chunk) for start in range(0, len(nominal), chunk)]

    def at(rows: slice) -> np.ndarray:
        return point_weights(weights.components[rows], weights.factors[rows], mixing, points)

    totals = nominal.sum(axis=0), sum(at(rows).sum(axis=0) for rows in chunks)
    index = np.arange(len(nominal))
    parts = [
        log_polynomial_terms(terms.subset(index[rows]), nominal[rows], at(rows), points, totals=totals)
        for rows in chunks
    ]
    return LogPolynomialTerms.concatenate(*parts)


def binned_gollum_terms(
    terms: ProfileTerms, weights: VariedWeights, bins: np.ndarray, n_bins: int, kept: np.ndarray,
    chunk: int = 20_000,
) -> LogPolynomialTerms:  # fmt: skip
    """GOLLUM's exact coefficients of the benchmarks' histograms (bins ``kept`` as the events)."""
    points = variation_points(terms.n_syst)
    sums = np.zeros((n_bins, len(points), weights.nominal.shape[1]))
    for start in range(0, len(bins), chunk):
        rows = slice(start, start + chunk)
        inside = bins[rows] >= 0
        at = point_weights(weights.components[rows], weights.factors[rows], weights.mixing, points)
        np.add.at(sums, bins[rows][inside], at[inside])
    nominal = np.zeros((n_bins, weights.nominal.shape[1]))
    np.add.at(nominal, bins[bins >= 0], weights.nominal[bins >= 0])
    return log_polynomial_terms(terms, nominal[kept], sums[kept], points)
