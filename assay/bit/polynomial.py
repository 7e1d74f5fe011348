"""The quadratic weight ratio R(x|θ) of Boosted Information Trees and its coefficient layout.

Around a reference point θ_ref (the SM), the differential cross-section ratio is a quadratic
polynomial with coefficient functions of x (seed 002, "How to parametrize?"; arXiv:2205.12976),

    R(x|θ) = dσ(x|θ)/dσ(x|θ_ref) = 1 + Σ_a Δ_a R_a(x) + ½ Σ_ab Δ_a Δ_b R_ab(x),    Δ = θ − θ_ref.

Coefficients are stored in one layout everywhere (``n_coef = n_params + n_params (n_params + 1) / 2``):
the ``n_params`` linear ones R_a first, then the quadratic ones R_ab for a ≤ b in row-major
order; :func:`coefficient_pairs` lists them. Per event, the training targets are the weight
derivatives of seed 002's polynomial weights w_i(θ) = w_i + Σ_a w_{i,a} Δ_a + ½ Σ_ab w_{i,ab} Δ_a Δ_b,
i.e. w_{i,a} = ∂_a w_i and w_{i,ab} = ∂_a ∂_b w_i at θ_ref, obtained exactly from morphing by
:func:`weight_derivatives`.
"""

from __future__ import annotations

import warnings

import numpy as np

from assay.morphing import Morpher, as_thetas

__all__ = [
    "coefficient_pairs",
    "n_coefficients",
    "n_params_from_coefficients",
    "positive_coefficients",
    "ratio_design",
    "ratio_design_gradient",
    "weight_derivatives",
]


def n_coefficients(n_params: int) -> int:
    """Number of coefficient functions: ``n_params`` linear + ``n_params (n_params + 1) / 2`` quadratic."""
    return n_params + n_params * (n_params + 1) // 2


def n_params_from_coefficients(n_coef: int) -> int:
    """Inverse of :func:`n_coefficients`.

    Raises:
        ValueError: ``n_coef`` is not ``n_params + n_params (n_params + 1) / 2`` for any n_params.
    """
    for n_params in range(1, n_coef + 1):
        if n_coefficients(n_params) == n_coef:
            return n_params
    valid = [n_coefficients(p) for p in range(1, 6)]
    raise ValueError(
        f"{n_coef} coefficients do not form a quadratic polynomial; expected n_params linear + "
        f"n_params (n_params + 1) / 2 quadratic ones, i.e. one of {valid}, ..."
    )


def coefficient_pairs(n_params: int) -> list[tuple[int, ...]]:
    """Parameter indices of each coefficient: ``(a,)`` for R_a, ``(a, b)`` with a ≤ b for R_ab.

    Example:
        >>> coefficient_pairs(2)
        [(0,), (1,), (0, 0), (0, 1), (1, 1)]
    """
    linear = [(a,) for a in range(n_params)]
    return linear + [(a, b) for a in range(n_params) for b in range(a, n_params)]


def _quadratic_index(n_params: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column (a, b), a ≤ b, of each quadratic coefficient, two ``(n_quad,)`` int arrays."""
    pairs = coefficient_pairs(n_params)[n_params:]
    return np.array([p[0] for p in pairs], dtype=np.int64), np.array([p[1] for p in pairs], dtype=np.int64)


def ratio_design(theta: np.ndarray, n_params: int, theta_ref: np.ndarray | None = None) -> np.ndarray:
    """The monomials Φ(θ) such that R(x|θ) = 1 + Φ(θ) · coefficients(x).

    Args:
        theta: ``(n_params,)`` or ``(n_theta, n_params)``.
        n_params: number of parameters.
        theta_ref: expansion point ``(n_params,)``; zeros by default.

    Returns:
        ``(n_theta, n_coef)``: Δ_a for the linear coefficients, ½ Δ_a² for R_aa and Δ_a Δ_b for
        R_ab with a < b (the ½ of the symmetric double sum cancels against the two orderings).
    """
    thetas = as_thetas(theta, n_params)
    delta = thetas - (0.0 if theta_ref is None else np.asarray(theta_ref, dtype=float))
    rows, cols = _quadratic_index(n_params)
    quad = delta[:, rows] * delta[:, cols] * np.where(rows == cols, 0.5, 1.0)
    return np.concatenate([delta, quad], axis=1)


def ratio_design_gradient(
    theta: np.ndarray, n_params: int, theta_ref: np.ndarray | None = None
) -> np.ndarray:
    """∂Φ(θ)/∂θ_a, so that ∂_a R(x|θ) = R_a(x) + Σ_b R_ab(x) Δ_b = ``gradient[:, a] · coefficients(x)``.

    Args:
        theta: ``(n_params,)`` or ``(n_theta, n_params)``.
        n_params: number of parameters.
        theta_ref: expansion point ``(n_params,)``; zeros by default.

    Returns:
        ``(n_theta, n_params, n_coef)``: δ_ac for the linear coefficients R_c, δ_ab Δ_b for R_bb
        and δ_ab Δ_c + δ_ac Δ_b for R_bc with b < c (derivatives of :func:`ratio_design`).

    Example:
        >>> ratio_design_gradient(np.array([2.0]), 1)[0].tolist()  # Φ = (Δ, ½ Δ²)
        [[1.0, 2.0]]
    """
    thetas = as_thetas(theta, n_params)
    delta = thetas - (0.0 if theta_ref is None else np.asarray(theta_ref, dtype=float))
    rows, cols = _quadratic_index(n_params)
    scale = np.where(rows == cols, 0.5, 1.0)
    eye = np.eye(n_params)
    quad = scale * (eye[:, rows] * delta[:, None, cols] + eye[:, cols] * delta[:, None, rows])
    linear = np.broadcast_to(eye, (len(thetas), n_params, n_params))
    return np.concatenate([linear, quad], axis=2)


def _monomial_derivatives(theta: np.ndarray, components: np.ndarray) -> tuple[np.ndarray, ...]:
    """φ_c, ∂_a φ_c and ∂_a ∂_b φ_c (a ≤ b) at one θ: (n_comp,), (n_params, n_comp), (n_quad, n_comp)."""
    n_params = components.shape[1]
    shifts = [np.zeros(n_params, dtype=int)] + [np.eye(n_params, dtype=int)[a] for a in range(n_params)]
    rows, cols = _quadratic_index(n_params)
    shifts += [np.eye(n_params, dtype=int)[a] + np.eye(n_params, dtype=int)[b] for a, b in zip(rows, cols)]
    out = []
    for shift in shifts:  # d^k/dθ^k θ^p = p (p-1) ... θ^(p-k): falling factorials per parameter
        factor = np.ones(len(components))
        for a in range(n_params):
            for k in range(shift[a]):
                factor = factor * (components[:, a] - k)
        lowered = np.where(factor[:, None] != 0, components - shift, 0)  # half-integer p: θ^(p−k)
        out.append(factor * np.prod(theta[None, :] ** lowered, axis=1))
    values = np.array(out)
    return values[0], values[1 : 1 + n_params], values[1 + n_params :]


def weight_derivatives(
    weights: np.ndarray, morpher: Morpher, theta_ref: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-event weights and weight derivatives at θ_ref from benchmark weights (exact morphing).

    With w_i(θ) = Σ_c φ_c(θ) A_ic (A from :meth:`Morpher.component_values`), the derivatives of
    the monomials give w_i(θ_ref), ∂_a w_i and ∂_a ∂_b w_i (seed 002's w_{i,0}, w_{i,a}, w_{i,ab}).
    For morphing components of total degree > 2 the quadratic R is the second-order Taylor
    expansion around θ_ref (a warning says so).

    Args:
        weights: benchmark weights ``(n_events, n_benchmarks)`` in pb.
        morpher: morphing basis of those benchmarks.
        theta_ref: expansion point ``(n_params,)``; zeros (the SM) by default.

    Returns:
        ``(w_ref, derivatives)``: ``(n_events,)`` in pb and ``(n_events, n_coef)`` in pb per unit
        θ (per unit θ² for the quadratic ones), in the layout of :func:`coefficient_pairs`.

    Raises:
        ValueError: ``weights`` does not have ``morpher.n_benchmarks`` columns.
    """
    weights = np.asarray(weights, dtype=float)
    if weights.ndim != 2 or weights.shape[1] != morpher.n_benchmarks:
        raise ValueError(
            f"weights: expected shape (n_events, {morpher.n_benchmarks}) for the morpher's benchmarks, "
            f"got {weights.shape}"
        )
    comps = morpher.components
    if comps.sum(axis=1).max() > 2 or np.any(comps != np.round(comps)):
        warnings.warn(
            "morphing components of total degree > 2 or with half-integer exponents: BIT learns the "
            "quadratic Taylor expansion of R(x|theta) around theta_ref",
            UserWarning,
            stacklevel=2,
        )
    ref = np.zeros(morpher.n_params) if theta_ref is None else as_thetas(theta_ref, morpher.n_params)[0]
    phi, grad, hess = _monomial_derivatives(ref, morpher.components)
    amplitudes = morpher.component_values(weights)  # (n_events, n_components)
    return amplitudes @ phi, amplitudes @ np.concatenate([grad, hess]).T


def positive_coefficients(coefficients: np.ndarray, n_params: int, floor: float = 1e-3) -> np.ndarray:
    """Coefficients with the same linear part (the score) whose R(x|θ) ≥ ``floor`` for every θ.

    R = 1 + Δ·F + ½ Δᵀ H Δ is bounded below iff H ⪰ 0 and F lies in the range of H; then
    min_Δ R = 1 − ½ Fᵀ H⁺ F (seed 002 "NB #2: R is positive"). Per event, in the eigenbasis
    of H (eigenvalues λ_k, F_k the components of F), negative λ_k are set to zero and the
    eigenvalues are raised to λ_k' = max(λ_k, τ |F_k|) with the smallest τ ≥ 0 (bisection)
    that gives ½ Σ_k F_k² / λ_k' ≤ 1 − floor. The linear coefficients are never changed;
    events that already satisfy min R ≥ floor are returned unchanged.

    Args:
        coefficients: ``(n_events, n_coef)`` in the layout of :func:`coefficient_pairs`.
        n_params: number of parameters.
        floor: the guaranteed lower bound of R, in (0, 1).

    Returns:
        ``(n_events, n_coef)`` coefficients of a positive R.

    Example:
        >>> positive_coefficients(np.array([[2.0, 1.0]]), 1).round(3).tolist()  # 1 + 2θ + θ²/2
        [[2.0, 2.002]]
    """
    coefficients = np.asarray(coefficients, dtype=float)
    lam, vec = np.linalg.eigh(_hessian(coefficients, n_params))
    proj = np.abs(np.einsum("nba,nb->na", vec, coefficients[:, :n_params]))  # |F_k| in the eigenbasis
    budget = 1.0 - floor
    bad = (lam.min(axis=1) < 0) | (_min_ratio_deficit(np.maximum(lam, 0.0), proj, 0.0) > budget)
    if not bad.any():
        return coefficients.copy()
    lam, vec, proj = np.maximum(lam[bad], 0.0), vec[bad], proj[bad]
    low, high = np.zeros(len(lam)), 0.5 * proj.sum(axis=1) / budget  # q(high) <= budget always
    for _ in range(64):  # q(τ) decreases monotonically in τ
        mid = 0.5 * (low + high)
        ok = _min_ratio_deficit(lam, proj, mid) <= budget
        high, low = np.where(ok, mid, high), np.where(ok, low, mid)
    lam = np.maximum(lam, high[:, None] * proj)
    new_hess = np.einsum("nab,nb,ncb->nac", vec, lam, vec)
    rows, cols = _quadratic_index(n_params)
    out = coefficients.copy()
    out[bad, n_params:] = new_hess[:, rows, cols]
    return out


def _min_ratio_deficit(lam: np.ndarray, proj: np.ndarray, tau: np.ndarray | float) -> np.ndarray:
    """q = ½ Σ_k F_k² / max(λ_k, τ |F_k|) = 1 − min_Δ R (inf if some λ' = 0 with F_k ≠ 0), ``(n_events,)``."""
    raised = np.maximum(lam, np.reshape(tau, (-1, 1)) * proj)
    safe = np.where(raised > 0, raised, 1.0)
    terms = np.where(proj > 0, np.where(raised > 0, proj**2 / safe, np.inf), 0.0)
    return 0.5 * terms.sum(axis=1)


def _hessian(coefficients: np.ndarray, n_params: int) -> np.ndarray:
    """H_ab = R_ab (symmetric), ``(n_events, n_params, n_params)``."""
    rows, cols = _quadratic_index(n_params)
    hess = np.zeros((len(coefficients), n_params, n_params))
    hess[:, rows, cols] = coefficients[:, n_params:]
    hess[:, cols, rows] = coefficients[:, n_params:]
    return hess
