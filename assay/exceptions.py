"""Named exceptions of assay.

Every error raised on bad input is one of these (or a built-in ``ValueError`` /
``TypeError`` subclass of them), says what was received, what was expected and,
where possible, how to fix it.
"""

from __future__ import annotations

__all__ = [
    "AssayError",
    "ConfigError",
    "ExportError",
    "MorphingError",
    "NotFittedError",
    "PredictionError",
    "SamplingError",
    "StoreError",
    "TrainingError",
]


class AssayError(Exception):
    """Base class of every error assay raises on purpose."""


class ConfigError(AssayError, ValueError):
    """A configuration file or object is malformed (names the file and the key)."""


class StoreError(AssayError, OSError):
    """An event file is missing, truncated, or does not follow the EventStore schema."""


class MorphingError(AssayError, ValueError):
    """A morphing basis is singular or does not match the parameter space."""


class SamplingError(AssayError, ValueError):
    """Unweighting or training-set construction cannot proceed (e.g. negative weights)."""


class NotFittedError(AssayError, RuntimeError):
    """An estimator was used before ``fit``."""


class PredictionError(AssayError, ValueError):
    """A model was asked for a prediction it cannot make (names the model, the request, what it predicts)."""


class TrainingError(AssayError, RuntimeError):
    """Training stopped because the loss or the weights stopped being finite (names the likely cause:
    non-finite inputs, with the array and first bad row, or a diverging optimisation)."""


class ExportError(AssayError, ValueError):
    """A model or a limits folder cannot be exported (names it, says what can be and how to fix it),
    or the ``export`` extra is missing."""
