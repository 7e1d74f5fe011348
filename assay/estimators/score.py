"""Score estimators: SALLY and SALLINO (seed 000 "SALLY"; seed 001 Table I; arXiv:1805.00020).

SALLY regresses the joint score t(x,z|θ_ref) on x with a mean squared error; the
minimiser is the score t(x|θ_ref) = E[t(x,z|θ_ref) | x] (seed 001, "Marginalise z by
minimising L"). Near θ_ref, t̂(x) is a sufficient statistic (an "optimal observable").

SALLINO turns it into a likelihood ratio: for each θ it histograms the scalar
h_θ(x) = t̂(x)·(θ − θ_ref) of weighted calibration events at θ and at θ_ref and takes
log r̂(x|θ, θ_ref) = log P̂_θ(bin of h_θ(x)) − log P̂_ref(bin of h_θ(x)) (MadMiner's SALLINO).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from assay.estimators.base import Estimator
from assay.estimators.nets import MLP, Standardizer
from assay.estimators.prediction import RATIO_FLOOR, Prediction, PredictorBase, as_point
from assay.exceptions import NotFittedError, PredictionError
from assay.morphing import as_thetas
from assay.training_set import TrainingSet

__all__ = ["SALLINO", "SALLY", "ScoreNet"]

_MIN_PROBABILITY = RATIO_FLOOR  # floor of a bin's probability in SALLINO (empty bins)


class ScoreNet(nn.Module):
    """t̂(x): an MLP on standardized x with one output per parameter."""

    def __init__(self, n_obs: int, n_params: int, hidden: Sequence[int], activation: str):
        super().__init__()
        self.x_scaler = Standardizer(n_obs)
        self.mlp = MLP(n_obs, n_params, hidden, activation)

    def fit_scalers(self, data: TrainingSet) -> None:
        self.x_scaler.fit(data.x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """t̂ ``(n, n_params)`` for x ``(n, n_obs)``."""
        return self.mlp(self.x_scaler(x))


class SALLY(Estimator):
    """Score Approximates Likelihood LocallY: x → t̂(x|θ_ref) (seed 000 "SALLY"; seed 001 local_score_mse).

    Loss: mean over samples of the sample weight times the mean over parameters of
    (t̂(x) − t(x,z|θ_ref))² (MSELoss of seed 001 ``local_score_mse``).

    Args:
        **kwargs: see :class:`~assay.estimators.base.Estimator`.

    Attributes:
        theta_ref_: the reference point of the training set ``(n_params,)`` (None if the set
            has no θ0 column).

    Example:
        >>> SALLY(hidden=(50,), activation="relu", epochs=50).hidden
        (50,)
    """

    required_fields: ClassVar[tuple[str, ...]] = ("x", "t0")
    predicts: ClassVar[frozenset[str]] = frozenset({"score"})

    def _prepare(self, train_set: TrainingSet) -> None:
        theta = train_set.theta0
        self.theta_ref_ = None if theta is None or np.any(theta != theta[:1]) else theta[0].astype(float)

    def _fitted_state(self) -> dict[str, Any]:
        return {"theta_ref": None if self.theta_ref_ is None else self.theta_ref_.tolist()}

    def _restore_state(self, state: Mapping[str, Any]) -> None:
        ref = state["theta_ref"]
        self.theta_ref_ = None if ref is None else np.asarray(ref, dtype=float)

    def _build(self, n_obs: int, n_params: int) -> nn.Module:
        return ScoreNet(n_obs, n_params, self.hidden, self.activation)

    def _arrays(self, data: TrainingSet) -> dict[str, np.ndarray]:
        weight = data.sample_weight if data.sample_weight is not None else np.ones(len(data))
        return {"x": data.x, "t0": data.t0, "w": weight}

    def _loss(self, net: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        mse = (batch["w"] * ((net(batch["x"]) - batch["t0"]) ** 2).mean(-1)).mean()
        return mse, {"score_mse": mse}

    def score(
        self, x: np.ndarray, theta: np.ndarray | None = None, *, chunk_size: int = 1_000_000
    ) -> Prediction:
        """Estimated score t̂(x|θ_ref).

        Args:
            x: events ``(n_events, n_obs)``.
            theta: None or θ_ref ``(n_params,)``: SALLY estimates the score at its θ_ref only.
            chunk_size: events per forward pass.

        Returns:
            :class:`~assay.estimators.prediction.Prediction` with ``mean (n_events, n_params)``, ``std`` None.

        Raises:
            NotFittedError: before ``fit``.
            PredictionError: ``theta`` is not θ_ref (or SALLY was trained without a single θ_ref).
        """
        self._fitted_net()
        if theta is not None:
            self._check_reference(as_point(theta, len(self.parameters_), "theta"))
        return Prediction(self.evaluate_score(x, chunk_size=chunk_size))

    def _check_reference(self, theta: np.ndarray) -> None:
        if self.theta_ref_ is None:
            raise PredictionError(
                f"SALLY estimates the score where it was trained, but its training set had no single "
                f"θ_ref (θ0 varies); call score(x) without theta (got theta = {theta.tolist()})"
            )
        if not np.allclose(theta, self.theta_ref_, rtol=0.0, atol=1e-12):
            raise PredictionError(
                f"SALLY estimates the score t(x|θ_ref) at its θ_ref = {self.theta_ref_.tolist()} only, got "
                f"theta = {theta.tolist()}; train SALLY at that point, or use a likelihood-ratio method "
                f"(alices, ...) or bit for the score at any θ"
            )

    def evaluate_score(self, x: np.ndarray, *, chunk_size: int = 1_000_000) -> np.ndarray:
        """Estimated score t̂(x|θ_ref).

        Args:
            x: events ``(n_events, n_obs)``.
            chunk_size: events per forward pass.

        Returns:
            ``(n_events, n_params)``, float64.

        Raises:
            NotFittedError: before ``fit``.
        """
        net = self._fitted_net()
        x = self._check_x(x)
        out = np.empty((len(x), len(self.parameters_)))
        with torch.no_grad():
            for start in range(0, len(x), chunk_size):
                out[start : start + chunk_size] = (
                    net(self._tensor(x[start : start + chunk_size])).double().cpu()
                )
        return out


class SALLINO(PredictorBase):
    """Likelihood ratio from one-dimensional histograms of the SALLY observable (MadMiner's SALLINO).

    For each θ, h_θ(x) = t̂(x)·(θ − θ_ref) of the calibration events is histogrammed
    with weights w(θ) and w(θ_ref) into ``n_bins`` bins whose edges are quantiles of h_θ
    under the equal mixture of both (so both histograms populate every bin; the two
    outer bins are open). Bin widths cancel in the ratio, so

        log r̂(x|θ, θ_ref) = log P̂_θ(b) − log P̂_ref(b),   b = bin of h_θ(x),

    with P̂ the weighted bin fractions (floored at 1e-12 for empty bins). It is exact in
    the local (linear) approximation around θ_ref, given enough calibration events.

    It predicts ``log_ratio`` only (relative to any θ_ref: the two ratios to its own θ_ref subtract).

    Args:
        sally: a fitted :class:`SALLY`.
        n_bins: histogram bins per θ (seed 000 uses 25 for SALLY histograms).
        theta_ref: reference point ``(n_params,)``; defaults to ``sally.theta_ref_``.

    Example:
        >>> SALLINO(SALLY(), n_bins=25).n_bins
        25
    """

    predicts: ClassVar[frozenset[str]] = frozenset({"log_ratio"})

    def __init__(self, sally: SALLY, *, n_bins: int = 25, theta_ref: np.ndarray | None = None):
        if n_bins < 2:
            raise ValueError(f"n_bins: expected >= 2, got {n_bins}")
        self.sally = sally
        self.n_bins = int(n_bins)
        self.theta_ref = theta_ref

    def fit(self, x: np.ndarray, weights: Callable[[np.ndarray], np.ndarray]) -> SALLINO:
        """Store the calibration events.

        Args:
            x: calibration events ``(n_events, n_obs)`` (not the training events).
            weights: ``weights(theta (n_params,)) -> (n_events,)`` event weights at θ in pb,
                e.g. ``lambda th: W @ morpher.morphing_weights(th)``.

        Returns:
            ``self``.
        """
        ref = self.theta_ref if self.theta_ref is not None else getattr(self.sally, "theta_ref_", None)
        if ref is None:
            raise ValueError("theta_ref: the SALLY training set has no single θ_ref; pass theta_ref=")
        self.t_ = self.sally.evaluate_score(x)
        self.theta_ref_ = as_thetas(ref, self.t_.shape[1], "theta_ref")[0]
        self.weights_ = weights
        self.reference_weights_ = np.asarray(weights(self.theta_ref_), dtype=float)
        return self

    def log_ratio(self, x: np.ndarray, theta: np.ndarray, theta_ref: np.ndarray) -> Prediction:
        """log r̂(x|θ, θ_ref) = log r̂(x|θ, θ_SALLY) − log r̂(x|θ_ref, θ_SALLY) (one histogram pair per point).

        Args:
            x: events ``(n_events, n_obs)``.
            theta: ``(n_theta, n_params)`` or ``(n_params,)``.
            theta_ref: one point ``(n_params,)``.

        Returns:
            :class:`~assay.estimators.prediction.Prediction` with ``mean (n_theta, n_events)``, ``std`` None.
        """
        self._check_fitted()
        ref = as_point(theta_ref, self.t_.shape[1], "theta_ref")
        t_x = self.sally.evaluate_score(x)
        thetas = as_thetas(theta, self.t_.shape[1], "theta")
        to_ref = self._log_ratio_at(t_x, ref)
        return Prediction(np.stack([self._log_ratio_at(t_x, th) - to_ref for th in thetas]))

    def _check_fitted(self) -> None:
        if not hasattr(self, "t_"):
            raise NotFittedError("this SALLINO is not fitted yet: call fit(x, weights)")

    def evaluate_log_ratio(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """log r̂(x|θ, θ_ref) for each θ (one histogram pair per θ: a loop over θ).

        Args:
            x: events ``(n_events, n_obs)``.
            theta: ``(n_theta, n_params)`` or ``(n_params,)``.

        Returns:
            ``(n_theta, n_events)``; exactly 0 at θ = θ_ref.
        """
        self._check_fitted()
        t_x = self.sally.evaluate_score(x)
        thetas = as_thetas(theta, self.t_.shape[1], "theta")
        return np.stack([self._log_ratio_at(t_x, th) for th in thetas])

    def _log_ratio_at(self, t_x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        delta = theta - self.theta_ref_
        if not np.any(delta):
            return np.zeros(len(t_x))
        h_cal, h_x = self.t_ @ delta, t_x @ delta
        w_theta = np.asarray(self.weights_(theta), dtype=float)
        w_ref = self.reference_weights_
        mixture = 0.5 * (w_theta / w_theta.sum() + w_ref / w_ref.sum())
        inner = np.unique(_weighted_quantiles(h_cal, mixture, np.linspace(0, 1, self.n_bins + 1)[1:-1]))
        bins_cal, bins_x = np.searchsorted(inner, h_cal), np.searchsorted(inner, h_x)
        p_theta = _bin_fractions(bins_cal, w_theta, len(inner) + 1)
        p_ref = _bin_fractions(bins_cal, w_ref, len(inner) + 1)
        return np.log(p_theta[bins_x]) - np.log(p_ref[bins_x])


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Quantiles ``q`` of ``values (n,)`` under non-negative ``weights (n,)``."""
    order = np.argsort(values)
    cdf = np.cumsum(np.clip(weights[order], 0, None))
    return np.interp(q * cdf[-1], cdf, values[order])


def _bin_fractions(bins: np.ndarray, weights: np.ndarray, n_bins: int) -> np.ndarray:
    """Weighted fraction per bin ``(n_bins,)``, floored at a tiny positive value."""
    counts = np.bincount(bins, weights=weights, minlength=n_bins)
    return np.clip(counts / weights.sum(), _MIN_PROBABILITY, None)
