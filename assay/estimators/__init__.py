"""Machine-learning estimators of likelihood ratios and scores (seed 001 Table I; seed 000).

- :class:`SALLY`, :class:`SALLINO`: score estimators (local, near θ_ref).
- :class:`CARL`, :class:`ROLR`, :class:`ALICE`, :class:`ALICES`, :class:`RASCAL`, :class:`CASCAL`:
  likelihood-ratio estimators, singly or doubly parameterized, optionally morphing-aware.
- :class:`Ensemble`: members trained on resampled data (bootstrap or separate sets, in
  parallel through Dask), predictions with their spread and the expectation check.
- :class:`Trainer`: the one training loop; :func:`load_estimator` reads saved estimators and ensembles.
"""

from __future__ import annotations

from assay.estimators.base import Estimator
from assay.estimators.ensemble import Ensemble, EnsemblePrediction, ExpectationCheck, poisson_bootstrap
from assay.estimators.nets import ACTIVATIONS, MLP, Standardizer
from assay.estimators.ratio import (
    ALICE,
    ALICES,
    CARL,
    CASCAL,
    RASCAL,
    ROLR,
    RatioEstimator,
    RatioPrediction,
)
from assay.estimators.ratio_models import MorphingRatioNet, RatioNet
from assay.estimators.registry import ESTIMATORS, load_estimator
from assay.estimators.score import SALLINO, SALLY, ScoreNet
from assay.estimators.train import OPTIMIZERS, History, Trainer

__all__ = [
    "ACTIVATIONS",
    "ALICE",
    "ALICES",
    "CARL",
    "CASCAL",
    "ESTIMATORS",
    "MLP",
    "OPTIMIZERS",
    "RASCAL",
    "ROLR",
    "SALLINO",
    "SALLY",
    "Ensemble",
    "EnsemblePrediction",
    "Estimator",
    "ExpectationCheck",
    "History",
    "MorphingRatioNet",
    "RatioEstimator",
    "RatioNet",
    "RatioPrediction",
    "ScoreNet",
    "Standardizer",
    "Trainer",
    "load_estimator",
    "poisson_bootstrap",
]
