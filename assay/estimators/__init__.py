"""Machine-learning estimators of likelihood ratios and scores (seed 001 Table I; seed 000).

- :class:`SALLY`, :class:`SALLINO`: score estimators (local, near θ_ref).
- :class:`CARL`, :class:`ROLR`, :class:`ALICE`, :class:`ALICES`, :class:`RASCAL`, :class:`CASCAL`:
  likelihood-ratio estimators, singly or doubly parameterized, optionally morphing-aware.
- :class:`NDE`, :class:`SCANDAL`: density estimators p̂(x|θ) with conditional normalizing flows
  (zuko NSF or MAF); log p̂, log r̂, t̂ and samples x ~ p̂(x|θ).
- :class:`Ensemble`: members trained on resampled data (bootstrap or separate sets, in
  parallel through Dask), predictions with their spread and the expectation check.
- :class:`Prediction`, :class:`Predictor`: what every model (and BIT) returns from
  ``log_ratio(x, theta, theta_ref)`` and ``score(x, theta=None)``.
- :data:`METHODS`, :func:`method_class`: the config's method names (``"alices"``, ``"bit"``, …);
  :func:`load_estimator` reads saved estimators, ensembles and BITs.
- :class:`Trainer`: the one training loop.

Names are imported on first use, so ``assay.estimators.prediction`` (and code that only needs
:class:`Prediction`, e.g. :mod:`assay.inference` and :mod:`assay.bit`) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_SOURCES = {  # module → the names it exports here
    "base": ("Estimator",),
    "ensemble": ("Ensemble", "ExpectationCheck", "poisson_bootstrap"),
    "flows": ("NDE", "SCANDAL", "FlowEstimator"),
    "flow_columns": ("FlowColumns",),
    "flows_models": ("FLOWS", "ConditionalFlow"),
    "mixture": ("ClippedRatioWarning", "MixtureModel", "mixture_log_ratio"),
    "mixture_processes": ("ProcessClassifier", "process_coefficients", "process_matrix"),
    "nets": ("ACTIVATIONS", "MLP", "Standardizer"),
    "prediction": ("Prediction", "Predictor"),
    "ratio": ("ALICE", "ALICES", "CARL", "CASCAL", "RASCAL", "ROLR", "RatioEstimator", "RatioPrediction"),
    "ratio_models": ("MorphingRatioNet", "RatioNet"),
    "registry": ("ESTIMATORS", "METHODS", "load_estimator", "method_class"),
    "score": ("SALLINO", "SALLY", "ScoreNet"),
    "train": ("OPTIMIZERS", "History", "Trainer"),
}
_MODULE_OF = {name: module for module, names in _SOURCES.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
