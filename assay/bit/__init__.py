"""Boosted Information Trees (seed 002; arXiv:2107.10859, arXiv:2205.12976).

- :class:`BoostedInformationTree`: the estimator of R(x|θ) = 1 + Δ·R_a(x) + ½ Δᵀ R_ab(x) Δ;
  ``log_ratio`` and ``score`` give the normalised log r̂(x|θ, θ_ref) and t̂(x|θ) like every
  estimator (:class:`~assay.estimators.prediction.Prediction`).
- :func:`fit_tree`, :class:`RegressionTree`: the Fisher-information regression tree it boosts.
- :func:`weight_derivatives`: the per-event training targets from benchmark weights (morphing).
"""

from __future__ import annotations

from assay.bit.boosting import MIN_RATIO, POSITIVE_FLOOR, BoostedInformationTree
from assay.bit.polynomial import (
    coefficient_pairs,
    n_coefficients,
    n_params_from_coefficients,
    positive_coefficients,
    ratio_design,
    ratio_design_gradient,
    weight_derivatives,
)
from assay.bit.tree import RegressionTree, SortedEvents, TreeFit, fit_tree, grow_tree, predict_forest

__all__ = [
    "MIN_RATIO",
    "POSITIVE_FLOOR",
    "BoostedInformationTree",
    "RegressionTree",
    "SortedEvents",
    "TreeFit",
    "coefficient_pairs",
    "fit_tree",
    "grow_tree",
    "n_coefficients",
    "n_params_from_coefficients",
    "positive_coefficients",
    "predict_forest",
    "ratio_design",
    "ratio_design_gradient",
    "weight_derivatives",
]
