"""Morphing: event weights at any θ from weights at a few benchmarks.

The squared matrix element is a polynomial in the couplings (seed 000, backup
"Morphing Technique"; MadMiner, arXiv:1907.10621 sec. II.C):

    |M|²(z|θ) = Σ_c φ_c(θ) A_c(z),   φ_c(θ) = Π_a θ_a^{p_ca}

Evaluating it at benchmarks θ_k gives W_k(z) = Σ_c M_kc A_c(z) with the morphing
matrix M_kc = φ_c(θ_k). Inverting, any θ follows from the benchmark weights,

    w(z|θ) = Σ_k c_k(θ) W_k(z),   c_k(θ) = Σ_c φ_c(θ) (M⁻¹)_ck      (seed 000 eq. w_j(c))

and its gradient ∇θ c_k(θ) = Σ_c ∇θ φ_c(θ) (M⁻¹)_ck is exact, which gives the joint
score analytically. :func:`optimize_basis` picks the benchmarks that minimise the
expected sum of squared morphing weights over a prior (seed 000: "optimized morphing
basis points"; MadMiner's basis optimisation), which keeps the statistical noise of
morphed weights small.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from assay.exceptions import MorphingError

__all__ = [
    "IllConditionedMorphingWarning",
    "Morpher",
    "as_components",
    "as_thetas",
    "expected_squared_weights",
    "morphing_components",
    "optimize_basis",
    "power_steps",
]

logger = logging.getLogger(__name__)


class IllConditionedMorphingWarning(UserWarning):
    """The morphing matrix is close to singular: morphed weights will be noisy."""


def morphing_components(
    n_params: int,
    max_power: float | Sequence[float] = 2,
    max_overall_power: float | None = None,
    power_step: float | Sequence[float] = 1,
) -> np.ndarray:
    """All monomials allowed by the power limits.

    Args:
        n_params: number of parameters.
        max_power: maximal power of each parameter (one number, or one per parameter).
        max_overall_power: maximal total degree; defaults to ``max(max_power)``.
        power_step: step of the exponents per parameter: 1 (a polynomial) or 0.5 (a polynomial in
            √θ, e.g. a signal strength μ with interference: w(μ) = μ w_S + √μ w_I + w_B, seed 001).

    Returns:
        Exponents, shape ``(n_components, n_params)`` (integers, or multiples of ½ as floats),
        sorted by total degree then lexicographically; row 0 is the constant term.

    Example:
        >>> morphing_components(2, 2).tolist()
        [[0, 0], [0, 1], [1, 0], [0, 2], [1, 1], [2, 0]]
        >>> morphing_components(1, 1, power_step=0.5).tolist()
        [[0.0], [0.5], [1.0]]
    """
    if n_params < 1:
        raise MorphingError(f"n_params must be >= 1, got {n_params}")
    powers = _per_parameter(max_power, n_params, "max_power")
    steps = _per_parameter(power_step, n_params, "power_step")
    if np.any(powers < 0):
        raise MorphingError(f"max_power must be >= 0 per parameter, got {max_power}")
    if not np.all(np.isin(steps, (0.5, 1.0))):
        raise MorphingError(f"power_step must be 1 or 0.5 per parameter, got {power_step}")
    if np.any(np.abs(powers / steps - np.round(powers / steps)) > 1e-12):
        raise MorphingError(f"max_power {max_power} is not a multiple of power_step {power_step}")
    overall = float(powers.max()) if max_overall_power is None else float(max_overall_power)
    ranges = [np.arange(round(p / st) + 1) * st for p, st in zip(powers, steps)]
    combos = [c for c in itertools.product(*ranges) if sum(c) <= overall + 1e-12]
    combos.sort(key=lambda c: (sum(c), c))
    integer = bool(np.all(steps == 1.0))
    return np.array(combos, dtype=int if integer else float).reshape(-1, n_params)


def _per_parameter(value: float | Sequence[float], n_params: int, name: str) -> np.ndarray:
    """One float per parameter from one number or a list of ``n_params``."""
    arr = np.asarray(value, dtype=float)
    if arr.ndim > 1 or (arr.ndim == 1 and len(arr) != n_params):
        raise MorphingError(f"{name}: expected one number or {n_params} (one per parameter), got {value}")
    return np.broadcast_to(arr, (n_params,)).astype(float)


def as_components(components: np.ndarray | Sequence) -> np.ndarray:
    """Exponents as an int array, or as floats where some are half-integers (multiples of ½, ≥ 0).

    Raises:
        MorphingError: a negative exponent or one that is not a multiple of ½.
    """
    comps = np.atleast_2d(np.asarray(components, dtype=float))
    if np.any(comps < 0) or np.any(np.abs(2 * comps - np.round(2 * comps)) > 1e-9):
        raise MorphingError(f"morphing exponents must be multiples of 1/2 and >= 0, got {comps.tolist()}")
    comps = np.round(2 * comps) / 2
    return comps.astype(int) if np.all(comps == np.round(comps)) else comps


def power_steps(components: np.ndarray) -> np.ndarray:
    """Per parameter 1.0 (integer exponents) or 0.5 (some half-integer ones), shape ``(n_params,)``."""
    comps = np.asarray(components, dtype=float)
    return np.where(np.any(comps != np.round(comps), axis=0), 0.5, 1.0)


def as_thetas(theta: np.ndarray | Sequence, n_params: int, name: str = "theta") -> np.ndarray:
    """θ as a float array ``(n_theta, n_params)``; one point ``(n_params,)`` becomes one row.

    Raises:
        ValueError: any other shape (the message names ``name``).

    Example:
        >>> as_thetas([0.1, 0.2], 2).shape
        (1, 2)
    """
    arr = np.asarray(theta, dtype=float)
    arr2 = arr.reshape(1, -1) if arr.ndim == 1 else arr
    if arr2.ndim != 2 or arr2.shape[1] != n_params:
        raise ValueError(
            f"{name}: expected shape (n_params,) or (n_theta, n_params) with n_params={n_params}, "
            f"got {arr.shape}"
        )
    return arr2


def _monomials(thetas: np.ndarray, components: np.ndarray) -> np.ndarray:
    """φ_c(θ) for many θ: (n_theta, n_params), (n_comp, n_params) → (n_theta, n_comp)."""
    return np.prod(thetas[:, None, :] ** components[None, :, :], axis=-1)


def _monomial_gradients(thetas: np.ndarray, components: np.ndarray) -> np.ndarray:
    """∂φ_c/∂θ_a, shape (n_theta, n_params, n_comp); p θ^(p−1) is infinite at θ = 0 for p = ½."""
    n_theta, n_params = thetas.shape
    grads = np.empty((n_theta, n_params, len(components)))
    for a in range(n_params):  # loop over parameters, not events
        lowered = components.astype(float)
        lowered[:, a] = np.where(components[:, a] > 0, components[:, a] - 1.0, 0.0)
        with np.errstate(divide="ignore"):
            grads[:, a, :] = components[None, :, a] * _monomials(thetas, lowered)
    return grads


@dataclass(frozen=True)
class Morpher:
    """Morphing from benchmark weights to any θ.

    Args:
        components: exponents ``(n_components, n_params)`` from :func:`morphing_components`.
        benchmarks: benchmark points ``(n_benchmarks, n_params)`` with
            ``n_benchmarks >= n_components`` (more benchmarks: least-squares morphing).
        warn_condition: warn if the condition number of the morphing matrix exceeds this.

    Raises:
        MorphingError: fewer benchmarks than components, or a singular basis.

    Example:
        >>> m = Morpher(morphing_components(1, 2), np.array([[0.0], [1.0], [-1.0]]))
        >>> m.morphing_weights(np.array([0.5])).round(3).tolist()
        [0.75, 0.375, -0.125]
    """

    components: np.ndarray
    benchmarks: np.ndarray
    warn_condition: float = 1e6

    def __post_init__(self) -> None:
        comps = as_components(self.components)
        bench = as_thetas(self.benchmarks, comps.shape[1], "benchmarks")
        object.__setattr__(self, "components", comps)
        object.__setattr__(self, "benchmarks", bench)
        if len(bench) < len(comps):
            raise MorphingError(
                f"morphing needs at least {len(comps)} benchmarks for {len(comps)} components "
                f"(exponents {comps.tolist()}), got {len(bench)}"
            )
        matrix = _monomials(bench, comps)
        sv = np.linalg.svd(matrix, compute_uv=False)
        cond = float(sv[0] / sv[-1]) if sv[-1] > 0 else np.inf
        if not np.isfinite(cond) or cond > 1e13:
            raise MorphingError(
                f"singular morphing basis (condition number {cond:.3g}): benchmarks {bench.tolist()} "
                f"do not determine the {len(comps)} components {comps.tolist()}; choose benchmarks "
                f"with distinct values (or run optimize_basis)"
            )
        if cond > self.warn_condition:
            warnings.warn(
                f"ill-conditioned morphing basis: condition number {cond:.3g} > {self.warn_condition:.3g}; "
                f"morphed weights will be noisy. Consider optimize_basis.",
                IllConditionedMorphingWarning,
                stacklevel=3,
            )
        object.__setattr__(self, "_matrix", matrix)
        object.__setattr__(self, "_inverse", np.linalg.pinv(matrix))
        object.__setattr__(self, "_cond", cond)

    @property
    def n_params(self) -> int:
        return self.components.shape[1]

    @property
    def n_components(self) -> int:
        return len(self.components)

    @property
    def n_benchmarks(self) -> int:
        return len(self.benchmarks)

    @property
    def matrix(self) -> np.ndarray:
        """Morphing matrix M_kc = φ_c(θ_k), shape ``(n_benchmarks, n_components)``."""
        return self._matrix  # type: ignore[attr-defined]

    @property
    def condition_number(self) -> float:
        return self._cond  # type: ignore[attr-defined]

    def morphing_weights(self, theta: np.ndarray) -> np.ndarray:
        """c_k(θ) such that w(z|θ) = Σ_k c_k(θ) W_k(z).

        Args:
            theta: ``(n_params,)`` or ``(n_theta, n_params)``.

        Returns:
            ``(n_benchmarks,)`` or ``(n_theta, n_benchmarks)`` matching the input.
        """
        thetas = self._in_domain(as_thetas(theta, self.n_params))
        out = _monomials(thetas, self.components) @ self._inverse  # type: ignore[attr-defined]
        return out[0] if np.ndim(theta) == 1 else out

    def morphing_weight_gradients(self, theta: np.ndarray) -> np.ndarray:
        """∇θ c_k(θ), shape ``(n_params, n_benchmarks)`` or ``(n_theta, n_params, n_benchmarks)``."""
        thetas = self._in_domain(as_thetas(theta, self.n_params))
        out = _monomial_gradients(thetas, self.components) @ self._inverse  # type: ignore[attr-defined]
        return out[0] if np.ndim(theta) == 1 else out

    def _in_domain(self, thetas: np.ndarray) -> np.ndarray:
        """``thetas``, checked ≥ 0 for parameters with half-integer exponents (√θ is real only there)."""
        roots = power_steps(self.components) < 1
        if np.any(thetas[:, roots] < 0):
            bad = np.unique(np.nonzero(thetas[:, roots] < 0)[1])
            raise ValueError(
                f"theta: parameter(s) {np.flatnonzero(roots)[bad].tolist()} enter the morphing through "
                f"their square root (half-integer exponents) and must be >= 0, got "
                f"min {float(thetas[:, roots].min()):g}"
            )
        return thetas

    def component_values(self, benchmark_values: np.ndarray) -> np.ndarray:
        """Polynomial coefficients A_c ``(..., n_components)`` from ``(..., n_benchmarks)`` values."""
        return np.asarray(benchmark_values) @ self._inverse.T  # type: ignore[attr-defined]

    def to_dict(self) -> dict:
        """JSON-able description."""
        return {"components": self.components.tolist(), "benchmarks": self.benchmarks.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> Morpher:
        return cls(as_components(data["components"]), np.asarray(data["benchmarks"], dtype=float))


def expected_squared_weights(benchmarks: np.ndarray, components: np.ndarray, thetas: np.ndarray) -> float:
    """Mean over ``thetas`` of Σ_k c_k(θ)², the objective of basis optimisation.

    Args:
        benchmarks: ``(n_benchmarks, n_params)``.
        components: ``(n_components, n_params)``.
        thetas: points drawn from the prior, ``(n_theta, n_params)``.

    Returns:
        The expected squared morphing weight sum (``inf`` for a singular basis).
    """
    matrix = _monomials(np.asarray(benchmarks, dtype=float), components)
    sv = np.linalg.svd(matrix, compute_uv=False)
    if sv[-1] <= 1e-12 * sv[0]:
        return np.inf
    coeffs = _monomials(np.asarray(thetas, dtype=float), components) @ np.linalg.pinv(matrix)
    return float(np.mean(np.sum(coeffs**2, axis=1)))


def optimize_basis(
    components: np.ndarray,
    prior_thetas: np.ndarray,
    ranges: np.ndarray,
    *,
    fixed: np.ndarray | None = None,
    n_trials: int = 200,
    n_refine: int = 5,
    rng: np.random.Generator,
) -> np.ndarray:
    """Benchmarks minimising the expected Σ_k c_k(θ)² over a prior (seed 000 backup).

    A random search over ``n_trials`` bases drawn uniformly inside ``ranges`` is
    followed by bounded L-BFGS-B refinement of the ``n_refine`` best.

    Args:
        components: exponents ``(n_components, n_params)``.
        prior_thetas: θ sampled from the prior, ``(n_theta, n_params)``.
        ranges: allowed region per parameter, ``(n_params, 2)``.
        fixed: benchmarks that must be in the basis (e.g. the SM), ``(n_fixed, n_params)``.
        n_trials: random starting bases.
        n_refine: best starts refined by local optimisation.
        rng: random generator.

    Returns:
        Benchmarks ``(n_components, n_params)``; the fixed ones first.
    """
    components = as_components(components)
    ranges = np.asarray(ranges, dtype=float)
    n_params = components.shape[1]
    fixed = np.zeros((0, n_params)) if fixed is None else as_thetas(fixed, n_params, "fixed")
    n_free = len(components) - len(fixed)
    if n_free < 0:
        raise MorphingError(f"{len(fixed)} fixed benchmarks but only {len(components)} components")
    if n_free == 0:
        return fixed.copy()
    low, high = np.tile(ranges[:, 0], n_free), np.tile(ranges[:, 1], n_free)

    def objective(flat: np.ndarray) -> float:
        value = expected_squared_weights(
            np.vstack([fixed, flat.reshape(n_free, n_params)]), components, prior_thetas
        )
        return min(value, 1e30)

    starts = low + (high - low) * rng.random((n_trials, len(low)))
    scores = np.array([objective(s) for s in starts])
    best_x, best_f = starts[np.argmin(scores)], scores.min()
    for start in starts[np.argsort(scores)[:n_refine]]:
        res = optimize.minimize(objective, start, method="L-BFGS-B", bounds=list(zip(low, high)))
        if res.fun < best_f:
            best_x, best_f = res.x, res.fun
    logger.info("optimised morphing basis: E[sum c_k^2] = %.4g", best_f)
    return np.vstack([fixed, best_x.reshape(n_free, n_params)])
