"""Boosted Information Trees: the quadratic weight ratio R(x|θ) from boosted Fisher-information trees.

BIT (seed 002, "Trees & boosting" and "Learning more with trees"; arXiv:2107.10859,
arXiv:2205.12976; used by CMS for VH(bb̄), seed 004) regresses the coefficient functions of

    R(x|θ) = dσ(x|θ)/dσ(x|θ_ref) = 1 + Σ_a Δ_a R_a(x) + ½ Σ_ab Δ_a Δ_b R_ab(x),   Δ = θ − θ_ref,

on the per-event weight derivatives w_{i,a} = ∂_a w_i, w_{i,ab} = ∂_a ∂_b w_i at θ_ref. Each
tree (:mod:`assay.bit.tree`) predicts F_j = Σ_{i∈j} w_{i,k} / Σ_{i∈j} w_i in its leaves, with
splits that maximise the summed Fisher information Σ_k (Σ_{i∈j} w_{i,k})² / Σ_{i∈j} w_i.
Boosting fits each tree to the pseudo-residuals of the previous ones (seed 002, "Concrete
solution: tree boosting"): w_{i,k} → w_{i,k} − η w_i F̂_k(x_i), and the model is
F(x) = η Σ_b F̂^(b)(x). R_a(x) is the score at θ_ref up to the constant ∂_a log σ(θ_ref).

``positive=True`` is seed 002's positivity option: splits are only taken if both children's
weight polynomials Σ_{i∈j} w_i(θ) are non-negative for every θ, and the predicted polynomial is
made positive for every θ and x by :func:`~assay.bit.polynomial.positive_coefficients`
(which keeps the linear coefficients and raises the quadratic ones where needed).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from assay.bit.kernels import deferred_interrupt
from assay.bit.persistence import read_estimator, read_trees, vector, write_estimator
from assay.bit.polynomial import (
    n_coefficients,
    n_params_from_coefficients,
    positive_coefficients,
    ratio_design,
    ratio_design_gradient,
    weight_derivatives,
)
from assay.bit.tree import SortedEvents, grow_tree, predict_forest
from assay.estimators.prediction import RATIO_FLOOR, Prediction, PredictorBase, as_point
from assay.exceptions import ConfigError, NotFittedError, StoreError
from assay.morphing import Morpher, as_thetas
from assay.saving import json_field

__all__ = ["MIN_RATIO", "POSITIVE_FLOOR", "BoostedInformationTree"]

logger = logging.getLogger(__name__)

MIN_RATIO = RATIO_FLOOR  # log_ratio guard: R(x|θ) is clipped to at least this before the log
POSITIVE_FLOOR = 1e-3  # with positive=True, R(x|θ) >= POSITIVE_FLOOR for every x and θ


class BoostedInformationTree(PredictorBase):
    """Boosted Information Tree estimator of R(x|θ) (seed 002).

    Args:
        n_trees: boosting iterations.
        max_depth: depth of each tree (seed 002: 4 suffices).
        learning_rate: η, the weight of each tree, in (0, 1].
        min_size: minimal number of training events in each leaf.
        min_weight: minimal Σ w (pb) in each leaf.
        positive: seed 002's positivity option (see the module docstring).
        progress: show a progress bar while fitting.

    Training keeps each feature's sorted copy of the weights and derivatives in memory:
    about ``8 n_obs n_events (n_coef + 3)`` bytes (twice n_coef with ``positive=True``),
    e.g. 150 MB for 500k events, 3 observables and 9 coefficients.

    Raises:
        ConfigError: an invalid hyper-parameter.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.uniform(-1, 1, size=(2000, 1))
        >>> derivatives = np.column_stack([2 * x[:, 0], 2 * x[:, 0] ** 2])  # R = (1 + θ x)²
        >>> bit = BoostedInformationTree(n_trees=30, max_depth=3, min_size=20)
        >>> bit = bit.fit(x, np.ones(2000), derivatives=derivatives)
        >>> bit.predict_coefficients(np.array([[0.5]])).round(1).tolist()
        [[1.0, 0.5]]
    """

    predicts: ClassVar[frozenset[str]] = frozenset({"log_ratio", "score"})

    def __init__(
        self,
        *,
        n_trees: int = 100,
        max_depth: int = 4,
        learning_rate: float = 0.2,
        min_size: int = 50,
        min_weight: float = 0.0,
        positive: bool = False,
        progress: bool = False,
    ):
        checks = {
            "n_trees": (n_trees, isinstance(n_trees, int) and n_trees >= 1, "an int >= 1"),
            "max_depth": (
                max_depth,
                isinstance(max_depth, int) and 1 <= max_depth <= 14,
                "an int in [1, 14]",
            ),
            "learning_rate": (learning_rate, 0 < float(learning_rate) <= 1, "a float in (0, 1]"),
            "min_size": (min_size, isinstance(min_size, int) and min_size >= 1, "an int >= 1"),
            "min_weight": (min_weight, float(min_weight) >= 0, "a float >= 0 (pb)"),
        }
        for name, (value, ok, expected) in checks.items():
            if not ok or isinstance(value, bool):
                raise ConfigError(f"BoostedInformationTree: {name}={value!r}, expected {expected}")
        self.n_trees, self.max_depth, self.min_size = n_trees, max_depth, min_size
        self.learning_rate, self.min_weight = float(learning_rate), float(min_weight)
        self.positive, self.progress = bool(positive), bool(progress)

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments: ``BoostedInformationTree(**bit.get_params())`` is an unfitted copy."""
        names = ("n_trees", "max_depth", "learning_rate", "min_size", "min_weight", "positive", "progress")
        return {name: getattr(self, name) for name in names}

    def __repr__(self) -> str:
        return f"BoostedInformationTree({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"

    # ---- fitting ----------------------------------------------------------------------
    def fit(
        self,
        x: np.ndarray,
        weights: np.ndarray,
        *,
        morpher: Morpher | None = None,
        theta_ref: np.ndarray | None = None,
        derivatives: np.ndarray | None = None,
    ) -> BoostedInformationTree:
        """Boost ``n_trees`` information trees.

        Either benchmark weights and their morpher, or weights at θ_ref and their derivatives.

        Args:
            x: observables ``(n_events, n_obs)``.
            weights: with ``morpher``: benchmark weights ``(n_events, n_benchmarks)`` in pb;
                with ``derivatives``: w_i(θ_ref) ``(n_events,)`` in pb.
            morpher: morphing basis of the benchmark weights (derivatives then follow exactly,
                :func:`~assay.bit.polynomial.weight_derivatives`).
            theta_ref: expansion point ``(n_params,)``; zeros (the SM) by default.
            derivatives: w_{i,a}, w_{i,ab} ``(n_events, n_coef)`` in the layout of
                :func:`~assay.bit.polynomial.coefficient_pairs`.

        Returns:
            ``self``, fitted.

        Raises:
            ValueError: both or neither of ``morpher`` / ``derivatives``, mismatched shapes,
                non-finite values, or Σ w <= 0.
        """
        x = _as_matrix(x, "x")
        w, dw, theta_ref = self._derivatives(weights, morpher, theta_ref, derivatives, len(x))
        n_params = n_params_from_coefficients(dw.shape[1])
        start = time.perf_counter()
        events = SortedEvents(x, w, dw, constraint=dw if self.positive else None)
        trees, history, loss = [], [], 0.0
        with deferred_interrupt() as check_interrupt:
            for _ in _progress(range(self.n_trees), self.progress):
                check_interrupt()  # Ctrl-C between trees, never inside numba (see assay.bit.kernels)
                fit = grow_tree(
                    events, max_depth=self.max_depth, min_size=self.min_size, min_weight=self.min_weight
                )
                events.subtract(fit.leaves, fit.tree.value, self.learning_rate)
                trees.append(fit.tree)
                # seed 002 MSE minus its constant: each tree lowers it by η(2 − η) Σ_j W_j |F_j|²
                loss -= self.learning_rate * (2 - self.learning_rate) * fit.tree.information
                history.append(loss)
        self.trees_ = trees
        self.history_ = np.array(history)
        self.n_obs_, self.n_params_, self.theta_ref_ = x.shape[1], n_params, theta_ref
        self.cross_section_ = float(w.sum())
        self.cross_section_coefficients_ = dw.sum(axis=0) / self.cross_section_
        logger.info(
            "BIT: %d trees (depth %d) on %d events, %d coefficients in %.1f s",
            self.n_trees, self.max_depth, len(x), dw.shape[1], time.perf_counter() - start,
        )  # fmt: skip
        return self

    @staticmethod
    def _derivatives(weights, morpher, theta_ref, derivatives, n_events):
        """(w (n,), dw (n, n_coef), theta_ref (n_params,)) from either form of input, checked."""
        if (morpher is None) == (derivatives is None):
            raise ValueError(
                "pass either morpher= with benchmark weights (n_events, n_benchmarks), or derivatives= "
                "(n_events, n_coef) with weights at theta_ref (n_events,); got "
                f"{'both' if morpher is not None else 'neither'}"
            )
        if morpher is not None:
            w, dw = weight_derivatives(_as_matrix(weights, "weights"), morpher, theta_ref)
        else:
            w, dw = np.asarray(weights, dtype=float), _as_matrix(derivatives, "derivatives")
            if w.ndim != 1:
                raise ValueError(
                    f"weights: with derivatives=, expected w(theta_ref) (n_events,), got {w.shape}"
                )
            n_params_from_coefficients(dw.shape[1])
        if len(w) != n_events or len(dw) != n_events:
            raise ValueError(f"x has {n_events} events but the weights have {len(w)}")
        if not np.all(np.isfinite(w)) or w.sum() <= 0:
            raise ValueError(f"weights must be finite with a positive sum, got sum {w.sum():.6g} pb")
        n_params = n_params_from_coefficients(dw.shape[1])
        ref = np.zeros(n_params) if theta_ref is None else np.asarray(theta_ref, dtype=float).reshape(-1)
        if ref.shape != (n_params,):
            raise ValueError(f"theta_ref: expected shape ({n_params},), got {np.shape(theta_ref)}")
        return w, dw, ref

    # ---- prediction -------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "trees_"):
            raise NotFittedError(
                "this BoostedInformationTree is not fitted yet: call fit(x, weights, ...) or "
                "BoostedInformationTree.load(path)"
            )

    def predict_coefficients(self, x: np.ndarray) -> np.ndarray:
        """R_a(x), R_ab(x): ``(n_events, n_coef)`` in the layout of
        :func:`~assay.bit.polynomial.coefficient_pairs`; x: ``(n_events, n_obs)``."""
        self._check_fitted()
        x = _as_matrix(x, "x")
        if x.shape[1] != self.n_obs_:
            raise ValueError(f"x: expected shape (n_events, {self.n_obs_}), got {x.shape}")
        scale = np.full(len(self.trees_), self.learning_rate)
        coefficients = predict_forest(self.trees_, x, scale)
        return (
            positive_coefficients(coefficients, self.n_params_, POSITIVE_FLOOR)
            if self.positive
            else coefficients
        )

    def linear_coefficients(self, x: np.ndarray) -> np.ndarray:
        """R_a(x) = ∂_a R(x|θ) at θ_ref, ``(n_events, n_params)``; x: ``(n_events, n_obs)``.

        The score at θ_ref is t(x|θ_ref) = R_a(x) − ∂_a σ(θ_ref)/σ(θ_ref) (:meth:`score`).
        """
        return self.predict_coefficients(x)[:, : self.n_params_]

    def log_weight_ratio(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """log R(x|θ) = log dσ(x|θ)/dσ(x|θ_ref), with R clipped to at least :data:`MIN_RATIO`.

        Not normalised: :meth:`log_ratio` subtracts log σ(θ)/σ(θ_ref).

        Args:
            x: ``(n_events, n_obs)``.
            theta: ``(n_params,)`` or ``(n_theta, n_params)``.

        Returns:
            ``(n_theta, n_events)``.
        """
        self._check_fitted()
        return self._log_ratio_of(self.predict_coefficients(x), as_thetas(theta, self.n_params_))

    def _ratio_of(self, coefficients: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """R(x|θ) ``(n_theta, n_events)``; coefficients ``(n_events, n_coef)``, θ ``(n_theta, n_params)``."""
        return 1.0 + ratio_design(theta, self.n_params_, self.theta_ref_) @ coefficients.T

    def _log_ratio_of(self, coefficients: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """log max(R(x|θ), MIN_RATIO) ``(n_theta, n_events)`` (seed 002's polynomial R)."""
        ratio = self._ratio_of(coefficients, theta)
        n_clipped = int(np.sum(ratio < MIN_RATIO))
        if n_clipped:
            logger.debug(
                "BIT log_ratio: %d values of R <= %g clipped (use positive=True)", n_clipped, MIN_RATIO
            )
        return np.log(np.maximum(ratio, MIN_RATIO))

    def log_ratio(self, x: np.ndarray, theta: np.ndarray, theta_ref: np.ndarray) -> Prediction:
        """The normalised log r̂(x|θ, θ_ref) = log p̂(x|θ) − log p̂(x|θ_ref), for any θ_ref.

        With R(x|θ) = dσ(x|θ)/dσ(x|θ_BIT) relative to BIT's own θ_BIT = ``theta_ref_`` (seed 002
        "Learning more with trees", the polynomial of the module docstring) and σ(θ)/σ(θ_BIT) from
        :meth:`cross_section_ratio`, log p̂(x|θ) − log p̂(x|θ_BIT) = log R(x|θ) − log σ(θ)/σ(θ_BIT), so

            log r̂(x|θ, θ_ref) = log R(x|θ) − log R(x|θ_ref) − log(σ(θ)/σ(θ_ref)).

        The coefficients are predicted once for all θ; R is clipped at :data:`MIN_RATIO`.

        Args:
            x: events ``(n_events, n_obs)``.
            theta: ``(n_theta, n_params)`` or ``(n_params,)``.
            theta_ref: one point ``(n_params,)``.

        Returns:
            :class:`~assay.estimators.prediction.Prediction` with ``mean (n_theta, n_events)``, ``std`` None.

        Raises:
            NotFittedError: before ``fit``.
            ValueError: shapes that do not match the fitted observables / parameters, or a θ where
                the training sample's σ(θ) ≤ 0 (outside the range of the quadratic σ).
        """
        coefficients = self.predict_coefficients(x)
        thetas = as_thetas(theta, self.n_params_, "theta")
        ref = as_point(theta_ref, self.n_params_, "theta_ref")[None]
        to_bit = self._normalised_log_ratio(coefficients, thetas)
        return Prediction(to_bit - self._normalised_log_ratio(coefficients, ref))

    def _normalised_log_ratio(self, coefficients: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """log R(x|θ) − log σ(θ)/σ(θ_BIT) ``(n_theta, n_events)``."""
        sigma = self._positive_cross_section_ratio(theta)
        return self._log_ratio_of(coefficients, theta) - np.log(sigma)[:, None]

    def score(self, x: np.ndarray, theta: np.ndarray | None = None) -> Prediction:
        """The normalised score t̂(x|θ) = ∇θ log p̂(x|θ) = ∇R(x|θ)/R(x|θ) − ∇σ(θ)/σ(θ).

        ∂_a R = R_a + Σ_b R_ab Δ_b (0 where R is clipped); σ(θ)/σ(θ_BIT) is BIT's own
        :meth:`cross_section_ratio`, learned from the training weights (exact for the training
        sample), so at θ_BIT the score is R_a(x) − Σ_i w_{i,a} / Σ_i w_i (the training sample's
        ∂_a σ/σ, ``cross_section_coefficients_[:n_params]``).

        Args:
            x: events ``(n_events, n_obs)``.
            theta: one point ``(n_params,)``; None: BIT's ``theta_ref_``.

        Returns:
            :class:`~assay.estimators.prediction.Prediction` with ``mean (n_events, n_params)``, ``std`` None.

        Raises:
            NotFittedError: before ``fit``.
            ValueError: a θ of the wrong shape, or where the training sample's σ(θ) ≤ 0.
        """
        coefficients = self.predict_coefficients(x)
        point = self.theta_ref_ if theta is None else as_point(theta, self.n_params_, "theta")
        sigma = self._positive_cross_section_ratio(point[None])
        return Prediction(self._score_of(coefficients, point[None], sigma)[0])

    def _positive_cross_section_ratio(self, theta: np.ndarray) -> np.ndarray:
        """σ(θ)/σ(θ_ref) ``(n_theta,)`` for θ ``(n_theta, n_params)``; ValueError where it is ≤ 0."""
        ratio = self.cross_section_ratio(theta)
        bad = ~(ratio > 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"theta={theta[i].tolist()}: the training sample's sigma(theta)/sigma(theta_ref) = "
                f"{ratio[i]:.6g} <= 0; log r is undefined there"
            )
        return ratio

    def _score_of(self, coefficients: np.ndarray, theta: np.ndarray, sigma_ratio: np.ndarray) -> np.ndarray:
        """t̂(x|θ) = ∇R/R − ∇σ/σ ``(n_theta, n_events, n_params)``; ∇ log R = 0 where R is clipped."""
        gradient = ratio_design_gradient(theta, self.n_params_, self.theta_ref_)  # (n_θ, n_params, n_coef)
        ratio = self._ratio_of(coefficients, theta)
        clipped = ratio < MIN_RATIO
        safe = np.where(clipped, 1.0, ratio)[..., None]
        kinematic = np.einsum("tac,nc->tna", gradient, coefficients) / safe
        kinematic[clipped] = 0.0
        rate = gradient @ self.cross_section_coefficients_ / sigma_ratio[:, None]  # (n_theta, n_params)
        return kinematic - rate[:, None, :]

    def cross_section_ratio(self, theta: np.ndarray) -> np.ndarray:
        """σ(θ)/σ(θ_ref) from the training weights (exact for the training sample), ``(n_theta,)``
        or a scalar array for one θ ``(n_params,)``."""
        self._check_fitted()
        out = 1.0 + ratio_design(theta, self.n_params_, self.theta_ref_) @ self.cross_section_coefficients_
        return out[0] if np.ndim(theta) == 1 else out

    def fisher_information(self, x: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """I_ab = Σ_i w_i R_a(x_i) R_b(x_i) at θ_ref, in pb (× luminosity in pb⁻¹ for events).

        With R_a = t_a + ∂_a σ/σ and Σ_i w_i t_i ≈ 0 this is the kinematic information plus the
        rate term ∂_a σ ∂_b σ / σ.

        Args:
            x: ``(n_events, n_obs)``.
            weights: w_i(θ_ref) ``(n_events,)`` in pb.

        Returns:
            ``(n_params, n_params)``.
        """
        score = self.linear_coefficients(x)
        return np.einsum("i,ia,ib->ab", np.asarray(weights, dtype=float), score, score)

    # ---- persistence ------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``estimator.json`` (format tag, version, hyper-parameters, trees) into directory ``path``.

        The directory is written next to ``path`` and then moved into place; an existing
        ``path`` is replaced only if it is a saved estimator or empty.

        Raises:
            NotFittedError: before ``fit``.
            StoreError: ``path`` exists and is not a saved estimator.
        """
        self._check_fitted()
        state = {
            "n_obs": self.n_obs_,
            "n_params": self.n_params_,
            "theta_ref": self.theta_ref_.tolist(),
            "cross_section": self.cross_section_,
            "cross_section_coefficients": self.cross_section_coefficients_.tolist(),
            "history": self.history_.tolist(),
            "trees": [tree.to_dict() for tree in self.trees_],
        }
        return write_estimator(Path(path), type(self).__name__, self.get_params(), state)

    @classmethod
    def load(cls, path: str | os.PathLike) -> BoostedInformationTree:
        """Read an estimator written by :meth:`save`.

        Raises:
            StoreError: naming the file and the field: missing or corrupt JSON, another format,
                a newer schema, or state that does not describe valid trees.
        """
        saved = read_estimator(Path(path))
        source, state = saved.source, saved.state
        try:
            est = cls(**saved.params)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"{source}: field 'params' does not fit {cls.__name__}: {exc}") from exc
        n_obs = json_field(state, "n_obs", source, int, "state.")
        n_params = json_field(state, "n_params", source, int, "state.")
        if min(n_obs, n_params) < 1:
            raise StoreError(f"{source}: fields 'state.n_obs' and 'state.n_params' must be >= 1")
        est.trees_ = read_trees(state, source, n_obs, n_coefficients(n_params))
        est.n_obs_, est.n_params_ = n_obs, n_params
        est.theta_ref_ = vector(state, "theta_ref", (n_params,), source)
        est.cross_section_ = float(json_field(state, "cross_section", source, float, "state."))
        est.cross_section_coefficients_ = vector(
            state, "cross_section_coefficients", (n_coefficients(n_params),), source
        )
        est.history_ = vector(state, "history", (len(est.trees_),), source)
        return est


def _as_matrix(array: np.ndarray, name: str) -> np.ndarray:
    out = np.asarray(array, dtype=float)
    if out.ndim != 2 or not np.all(np.isfinite(out)):
        raise ValueError(f"{name}: expected a finite 2-d array (n_events, ...), got shape {out.shape}")
    return out


def _progress(iterable, enabled: bool):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc="BIT", unit="tree")
