"""Joint likelihood ratio and joint score from morphed event weights.

For an event with benchmark weights W_k(z) (pb), morphing gives w(z|θ) = Σ_k c_k(θ) W_k(z)
and the cross section σ(θ) = Σ_k c_k(θ) σ_k with σ_k = Σ_events W_k. Then (seed 000
backup "Additional formulas"; arXiv:1805.00013 eqs. 14–15)

    log r(x,z|θ0,θ1) = log w(z|θ0) − log w(z|θ1) − log σ(θ0) + log σ(θ1)
    t(x,z|θ)         = ∇θ w(z|θ) / w(z|θ) − ∇θ σ(θ) / σ(θ)

with ∇θ w(z|θ) = Σ_k ∇θ c_k(θ) W_k(z) exact through the morphing polynomial.
Everything is vectorised over events; θ is either one point ``(n_params,)`` shared by
all events or one point per event ``(n_events, n_params)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from assay.morphing import Morpher, as_thetas

__all__ = ["IndexedThetas", "JointQuantities"]


@dataclass(frozen=True)
class IndexedThetas:
    """One θ per event given as distinct ``points (m, n_params)`` and ``index (n_events,)``.

    Equivalent to ``points[index]`` but lets morphing coefficients be computed once per point.
    """

    points: np.ndarray
    index: np.ndarray

    def dense(self) -> np.ndarray:
        return np.asarray(self.points)[self.index]


ThetaArg = np.ndarray | IndexedThetas


def _per_event(values_fn, theta: ThetaArg, n_events: int, n_params: int, name: str = "theta") -> np.ndarray:
    """Evaluate a θ → array function once per distinct θ and spread it over events."""
    if isinstance(theta, IndexedThetas):
        if len(theta.index) != n_events:
            raise ValueError(f"{name}: expected an index for {n_events} events, got {len(theta.index)}")
        return values_fn(as_thetas(theta.points, n_params, name))[theta.index]
    theta = np.asarray(theta, dtype=float)
    if theta.ndim == 1:
        value = values_fn(as_thetas(theta, n_params, name))[0]
        return np.broadcast_to(value, (n_events, *value.shape))
    thetas = as_thetas(theta, n_params, name)
    if len(thetas) != n_events:
        raise ValueError(
            f"{name}: expected (n_params,) or ({n_events}, {n_params}) per event, got {theta.shape}"
        )
    unique, inverse = np.unique(thetas, axis=0, return_inverse=True)
    return values_fn(unique)[inverse.ravel()]


@dataclass(frozen=True)
class JointQuantities:
    """Morphed weights, cross sections, joint log r and joint score.

    Args:
        morpher: the morphing basis of the benchmark weights.
        xsec_benchmarks: σ_k = Σ_events W_k over the *whole* sample, ``(n_benchmarks,)`` in pb.

    Example:
        >>> from assay.morphing import morphing_components
        >>> m = Morpher(morphing_components(1, 2), np.array([[0.0], [1.0], [-1.0]]))
        >>> jq = JointQuantities(m, np.array([1.0, 2.0, 1.0]))
        >>> round(float(jq.cross_section(np.array([0.0]))), 12)
        1.0
    """

    morpher: Morpher
    xsec_benchmarks: np.ndarray

    def __post_init__(self) -> None:
        xs = np.asarray(self.xsec_benchmarks, dtype=float)
        if xs.shape != (self.morpher.n_benchmarks,):
            n_bench = self.morpher.n_benchmarks
            raise ValueError(f"xsec_benchmarks: expected shape ({n_bench},), got {xs.shape}")
        object.__setattr__(self, "xsec_benchmarks", xs)

    @property
    def n_params(self) -> int:
        return self.morpher.n_params

    def _check_weights(self, weights: np.ndarray) -> np.ndarray:
        w = np.asarray(weights, dtype=float)
        if w.ndim != 2 or w.shape[1] != self.morpher.n_benchmarks:
            raise ValueError(
                f"weights: expected shape (n_events, {self.morpher.n_benchmarks}), got {w.shape}"
            )
        return w

    # ---- cross sections ----------------------------------------------------------
    def cross_section(self, theta: np.ndarray) -> np.ndarray:
        """σ(θ) in pb, scalar array or ``(n_theta,)``."""
        return self.morpher.morphing_weights(theta) @ self.xsec_benchmarks

    def cross_section_gradient(self, theta: np.ndarray) -> np.ndarray:
        """∇θ σ(θ) in pb, ``(n_params,)`` or ``(n_theta, n_params)``."""
        return self.morpher.morphing_weight_gradients(theta) @ self.xsec_benchmarks

    # ---- per-event quantities ----------------------------------------------------
    def weights(self, weights: np.ndarray, theta: ThetaArg) -> np.ndarray:
        """w(z|θ) in pb, ``(n_events,)``; θ shared ``(n_params,)``, per event, or :class:`IndexedThetas`."""
        w = self._check_weights(weights)
        coeffs = _per_event(self.morpher.morphing_weights, theta, len(w), self.n_params)
        return np.einsum("nk,nk->n", w, coeffs)

    def weights_on_grid(self, weights: np.ndarray, thetas: np.ndarray) -> np.ndarray:
        """w(z|θ_j) for every event and every θ_j: ``(n_events, n_theta)`` in pb."""
        w = self._check_weights(weights)
        return w @ self.morpher.morphing_weights(as_thetas(thetas, self.n_params)).T

    def log_ratio(self, weights: np.ndarray, theta0: ThetaArg, theta1: ThetaArg) -> np.ndarray:
        """Joint log r(x,z|θ0,θ1), ``(n_events,)`` (seed 000 backup)."""
        w = self._check_weights(weights)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(self._density(w, theta0, "theta0")) - np.log(self._density(w, theta1, "theta1"))

    def _density(self, w: np.ndarray, theta: ThetaArg, name: str) -> np.ndarray:
        """w(z|θ)/σ(θ) per event, ``(n_events,)`` (the θ-dependence of p(x,z|θ))."""

        def normalised(thetas: np.ndarray) -> np.ndarray:
            return self.morpher.morphing_weights(thetas) / self.cross_section(thetas)[:, None]

        return np.einsum("nk,nk->n", w, _per_event(normalised, theta, len(w), self.n_params, name))

    def score(self, weights: np.ndarray, theta: ThetaArg) -> np.ndarray:
        """Joint score t(x,z|θ), ``(n_events, n_params)`` (seed 000 backup)."""
        w = self._check_weights(weights)
        n = len(w)
        grads = _per_event(self.morpher.morphing_weight_gradients, theta, n, self.n_params)
        dsig = _per_event(
            lambda t: self.cross_section_gradient(t) / self.cross_section(t)[:, None], theta, n, self.n_params
        )  # ∇σ/σ
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.einsum("nak,nk->na", grads, w) / self.weights(w, theta)[:, None] - dsig
