"""What every estimator predicts, in one type: :class:`Prediction` (torch-free).

Every model — the neural estimators (SALLY and the likelihood-ratio family), an
:class:`~assay.estimators.ensemble.Ensemble` and a :class:`~assay.bit.BoostedInformationTree` —
answers the same two calls (the :class:`Predictor` protocol):

- ``log_ratio(x, theta, theta_ref)``: log r̂(x|θ, θ_ref) = log p̂(x|θ) − log p̂(x|θ_ref),
  ``mean (n_theta, n_events)``;
- ``score(x, theta=None)``: t̂(x|θ) = ∇θ log p̂(x|θ), ``mean (n_events, n_params)``; None is the
  model's own reference point (SALLY's and BIT's θ_ref; a likelihood-ratio model has none).

``predicts`` says which of the two a model can make; asking for the other raises one
:class:`~assay.exceptions.PredictionError` that names the model, the request and what to use
instead (:func:`cannot_predict`). An ensemble fills ``std`` with the spread over its members.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np

from assay.exceptions import PredictionError
from assay.morphing import as_thetas

__all__ = [
    "PREDICTIONS",
    "Prediction",
    "Predictor",
    "PredictorBase",
    "as_point",
    "cannot_predict",
    "check_predicts",
]

PREDICTIONS = ("log_ratio", "score")
"""The names a model's ``predicts`` may hold."""

_ESTIMATES = {"log_ratio": "the likelihood ratio log r(x|θ, θ_ref)", "score": "the score t(x|θ)"}
_INSTEAD = {
    "log_ratio": "use a likelihood-ratio method (alices, alice, rascal, cascal, carl, rolr) or bit, "
    "or histogram its score (assay.inference.histograms.score_binning)",
    "score": "use sally, a likelihood-ratio method (its score at any θ) or bit",
}


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class Prediction:
    """An estimate and, for an ensemble, its spread.

    Attributes:
        mean: the estimate: log r̂ ``(n_theta, n_events)`` or t̂ ``(n_events, n_params)``, float64,
            read-only.
        std: standard deviation over an ensemble's members (``np.std``, ddof = 0), shaped like
            ``mean``, read-only; None for a single model.

    Raises:
        ValueError: ``mean`` is not 2-d, or ``std`` is shaped differently.

    Example:
        >>> p = Prediction(np.zeros((2, 3)), std=np.ones((2, 3)))
        >>> p, p.mean.flags.writeable
        (Prediction(mean (2, 3), std (2, 3)), False)
    """

    mean: np.ndarray
    std: np.ndarray | None = None

    def __post_init__(self) -> None:
        mean = _read_only(self.mean)
        if mean.ndim != 2:
            raise ValueError(
                f"mean: expected a 2-d array, log r (n_theta, n_events) or t (n_events, n_params), "
                f"got shape {mean.shape}"
            )
        object.__setattr__(self, "mean", mean)
        if self.std is not None:
            std = _read_only(self.std)
            if std.shape != mean.shape:
                raise ValueError(f"std: expected the shape of mean {mean.shape}, got {std.shape}")
            object.__setattr__(self, "std", std)

    @classmethod
    def from_members(cls, members: Sequence[np.ndarray]) -> Prediction:
        """Mean and standard deviation (ddof = 0) over the members' estimates, each shaped like ``mean``.

        Example:
            >>> Prediction.from_members([np.zeros((1, 2)), np.full((1, 2), 2.0)]).std.tolist()
            [[1.0, 1.0]]
        """
        stacked = np.stack([np.asarray(m, dtype=float) for m in members])
        return cls(stacked.mean(axis=0), stacked.std(axis=0))

    def __repr__(self) -> str:
        std = None if self.std is None else self.std.shape
        return f"Prediction(mean {self.mean.shape}, std {std})"


def _read_only(array: np.ndarray) -> np.ndarray:
    """A float64 read-only view (the caller's array stays writeable; no copy for float64 input)."""
    view = np.asarray(array, dtype=float).view()
    view.flags.writeable = False
    return view


@runtime_checkable
class Predictor(Protocol):
    """What :func:`assay.inference.likelihood.log_ratio_function` and the Fisher functions accept."""

    predicts: frozenset[str]

    def log_ratio(self, x: np.ndarray, theta: np.ndarray, theta_ref: np.ndarray) -> Prediction:
        """log r̂(x|θ, θ_ref): x ``(n_events, n_obs)``, θ ``(n_theta, n_params)``, θ_ref ``(n_params,)``."""
        ...

    def score(self, x: np.ndarray, theta: np.ndarray | None = None) -> Prediction:
        """t̂(x|θ) ``(n_events, n_params)`` at one θ ``(n_params,)``; None: the model's reference point."""
        ...


class PredictorBase:
    """Base of the models: both calls refuse with :func:`cannot_predict`; subclasses override
    the ones listed in their ``predicts``."""

    predicts: ClassVar[frozenset[str]] = frozenset()

    def log_ratio(self, x: np.ndarray, theta: np.ndarray, theta_ref: np.ndarray) -> Prediction:
        """log r̂(x|θ, θ_ref) ``(n_theta, n_events)``; here: PredictionError (not in ``predicts``)."""
        raise cannot_predict(self, "log_ratio")

    def score(self, x: np.ndarray, theta: np.ndarray | None = None) -> Prediction:
        """t̂(x|θ) ``(n_events, n_params)``; here: PredictionError (not in ``predicts``)."""
        raise cannot_predict(self, "score")


def cannot_predict(model: Predictor, what: str, *, name: str | None = None) -> PredictionError:
    """The error for asking ``model`` for ``what`` ("log_ratio" or "score") outside its ``predicts``.

    Args:
        model: the model asked.
        what: the request.
        name: how to call the model in the message; default its class name.

    Example:
        >>> from types import SimpleNamespace
        >>> print(cannot_predict(SimpleNamespace(predicts=frozenset({"score"})), "log_ratio", name="SALLY"))
        SALLY estimates the score t(x|θ) only; it has no log_ratio; use a likelihood-ratio method \
(alices, alice, rascal, cascal, carl, rolr) or bit, or histogram its score \
(assay.inference.histograms.score_binning)
    """
    if what not in PREDICTIONS:
        raise ValueError(f"what: unknown prediction {what!r}; valid names are {list(PREDICTIONS)}")
    name = type(model).__name__ if name is None else name
    have = " and ".join(_ESTIMATES[p] for p in PREDICTIONS if p in model.predicts) or "nothing"
    return PredictionError(f"{name} estimates {have} only; it has no {what}; {_INSTEAD[what]}")


def check_predicts(model: object, what: str) -> None:
    """Raise unless ``model`` implements :class:`Predictor` and lists ``what`` in ``predicts``.

    Raises:
        PredictionError: ``model`` has not the prediction methods, or cannot predict ``what``.
    """
    if not isinstance(model, Predictor):
        raise PredictionError(
            f"{type(model).__name__} does not implement the prediction methods (predicts, log_ratio, "
            f"score); pass a fitted estimator, an Ensemble or a BoostedInformationTree"
        )
    if what not in model.predicts:
        raise cannot_predict(model, what)


def as_point(theta: np.ndarray, n_params: int, name: str = "theta") -> np.ndarray:
    """One parameter point ``(n_params,)`` from ``(n_params,)`` or ``(1, n_params)``.

    Raises:
        ValueError: another shape, or several points (the message names ``name``).
    """
    points = as_thetas(theta, n_params, name)
    if len(points) != 1:
        raise ValueError(
            f"{name}: expected one point (n_params,) with n_params={n_params}, got {len(points)} points"
        )
    return points[0]
