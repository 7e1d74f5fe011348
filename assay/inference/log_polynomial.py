"""GOLLUM's log-polynomial nuisance model: log g_j(x, α) = Σ_A Δ_jA(x) α^A (arXiv:2505.05544).

HEPHY's GOLLUM (joint winner of the FAIR Universe HiggsML Uncertainty Challenge) models the effect of
all nuisances α on a process j's density ratio at once,

    g_j(x, α) = p_j(x|α)/p_j(x) = exp(Σ_A Δ_jA(x) α^A),     G_j(α) = ν_j(α)/ν_j = exp(Σ_A c_jA α^A),

with the monomials A = α_k, α_k², α_k α_l (k < l) (:class:`Monomials`). Unlike seed 003's product of
one interpolation per nuisance (:mod:`~assay.inference.interpolation`), the cross terms Δ_kl let
two nuisances act together (e.g. on a process that mixes components each of them varies
differently). The yield coefficients c_jA are fitted in closed form, by least squares on the log
of the varied totals at the variation points (GOLLUM's "inclusive cross-section parametrisation");
here the per-event Δ_jA are fitted the same way where exact per-event ratios exist
(:func:`least_squares`), or learned (:class:`~assay.estimators.nuisance_ratios.NuisanceRatios`).

The variation points (:func:`variation_points`) are α_k = ±1 alone and (α_k, α_l) = (±1, ±1) for
every pair: 2K + 2K(K − 1) points for K nuisances, which determine the 2K + K(K − 1)/2 coefficients
(the cross term of a pair is ¼ Σ s t log g(s, t) over its four corners, exactly).

:class:`LogPolynomialTerms` holds the coefficients per event next to r_j and ν_j (the sibling of
:class:`~assay.inference.profile_terms.ProfileTerms`); :class:`LogPolynomialFactors` evaluates them
for :class:`~assay.inference.profile_likelihood.ProfileLikelihood` (``interpolation="gollum"``): one
matrix product of the monomial vector, in torch (differentiable) and in numpy with the derivatives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import torch

from assay.inference.profile_terms import ProfileTerms, checked_array, nuisance_labels

__all__ = ["LogPolynomialFactors", "LogPolynomialTerms", "Monomials", "least_squares", "variation_points"]

Array = Any  # np.ndarray or torch.Tensor


@dataclass(frozen=True)
class Monomials:
    """The monomials α^A of K nuisances: α_1..α_K, α_1²..α_K², then α_k α_l for k < l (row-major).

    Example:
        >>> m = Monomials(3)
        >>> m.n_mono, m.labels(("a", "b", "c"))
        (9, ('a', 'b', 'c', 'a^2', 'b^2', 'c^2', 'a*b', 'a*c', 'b*c'))
        >>> m(np.array([1.0, 2.0, 3.0])).tolist()
        [1.0, 2.0, 3.0, 1.0, 4.0, 9.0, 2.0, 3.0, 6.0]
    """

    n_syst: int

    @cached_property
    def pairs(self) -> np.ndarray:
        """(k, l), k < l, ``(n_pairs, 2)``."""
        k, l = np.triu_indices(self.n_syst, 1)
        return np.stack([k, l], axis=1)

    @property
    def n_mono(self) -> int:
        return 2 * self.n_syst + len(self.pairs)

    def labels(self, names: Sequence[str]) -> tuple[str, ...]:
        """``a``, ``a^2``, ``a*b`` for nuisances named ``names``."""
        return (*names, *(f"{n}^2" for n in names), *(f"{names[k]}*{names[l]}" for k, l in self.pairs))

    def __call__(self, alpha: Array) -> Array:
        """α^A ``(..., n_mono)`` for α ``(..., n_syst)``; numpy or torch like ``alpha``."""
        k, l = self.pairs.T
        if isinstance(alpha, torch.Tensor):
            return torch.cat([alpha, alpha**2, alpha[..., k] * alpha[..., l]], dim=-1)
        return np.concatenate([alpha, alpha**2, alpha[..., k] * alpha[..., l]], axis=-1)

    def jacobian(self, alpha: np.ndarray) -> np.ndarray:
        """∂α^A/∂α_k ``(n_syst, n_mono)`` at α ``(n_syst,)``."""
        n = self.n_syst
        out = np.zeros((n, self.n_mono))
        out[np.arange(n), np.arange(n)] = 1.0
        out[np.arange(n), n + np.arange(n)] = 2 * alpha
        columns = 2 * n + np.arange(len(self.pairs))
        k, l = self.pairs.T
        out[k, columns] = alpha[l]
        out[l, columns] = alpha[k]
        return out

    def depends(self) -> np.ndarray:
        """``(n_syst, n_mono)`` bool: monomial A contains α_k."""
        return self.jacobian(np.ones(self.n_syst)) != 0

    def embed(self, n_new: int) -> np.ndarray:
        """Index of each of these monomials among those of ``n_syst + n_new`` nuisances ``(n_mono,)``
        (the first ``n_syst`` keep their indices)."""
        bigger = Monomials(self.n_syst + n_new)
        where = {(int(k), int(l)): i for i, (k, l) in enumerate(bigger.pairs)}
        n, m = self.n_syst, bigger.n_syst
        cross = [2 * m + where[(int(k), int(l))] for k, l in self.pairs]
        return np.array([*range(n), *(m + np.arange(n)), *cross], dtype=int)


def variation_points(n_syst: int) -> np.ndarray:
    """GOLLUM's variation points ``(2K + 2K(K − 1), K)``: +e_k, −e_k for each k, then for each pair
    k < l (row-major) the corners (+, +), (+, −), (−, +), (−, −) on (α_k, α_l).

    Example:
        >>> variation_points(2).tolist()
        [[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0], [1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]]
    """
    singles = np.concatenate([np.eye(n_syst)[:, None] * s for s in (1.0, -1.0)], axis=1).reshape(-1, n_syst)
    corners = np.array([(1.0, 1.0), (1.0, -1.0), (-1.0, 1.0), (-1.0, -1.0)])
    pairs = np.zeros((len(Monomials(n_syst).pairs), 4, n_syst))
    for i, (k, l) in enumerate(Monomials(n_syst).pairs):
        pairs[i][:, [k, l]] = corners
    return np.concatenate([singles, pairs.reshape(-1, n_syst)])


def least_squares(points: np.ndarray) -> np.ndarray:
    """The closed-form least-squares map from log values at ``points (n_points, K)`` to the
    coefficients of the monomials ``(n_mono, n_points)``: Δ = (XᵀX)⁻¹ Xᵀ y, X_pA = α_p^A.

    Raises:
        ValueError: the points do not determine every coefficient (X has rank < n_mono).
    """
    design = Monomials(points.shape[1])(np.asarray(points, dtype=float))
    if np.linalg.matrix_rank(design) < design.shape[1]:
        raise ValueError(
            f"points: {len(points)} variation points do not determine the {design.shape[1]} coefficients"
        )
    return np.linalg.pinv(design)


@dataclass(frozen=True, eq=False)  # holds arrays
class LogPolynomialTerms:
    """The (μ, α)-independent terms of the likelihood in GOLLUM's form, per event (module docstring).

    Attributes:
        ratios: r_j(x_i) = p_j(x_i)/p_ref(x_i) ``(n_proc, n_events)``, ≥ 0.
        nu: ν_j at α = 0, in events ``(n_proc,)``.
        shape: Δ_jA(x_i) ``(n_mono, n_proc, n_events)`` in the order of :class:`Monomials`.
        norm: c_jA ``(n_mono, n_proc)``.
        names, constrained, processes: as in :class:`~assay.inference.profile_terms.ProfileTerms`.

    Raises:
        ValueError: a wrong shape (names the field), NaN or infinite entries, negative ratios,
            duplicate names.
    """

    ratios: np.ndarray
    nu: np.ndarray
    shape: np.ndarray
    norm: np.ndarray
    names: tuple[str, ...]
    constrained: tuple[bool, ...] | None = None
    processes: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        ratios = np.asarray(self.ratios, dtype=float)
        if ratios.ndim != 2:
            raise ValueError(f"ratios: expected shape (n_proc, n_events), got {ratios.shape}")
        n_proc, n_events = ratios.shape
        names, constrained, processes = nuisance_labels(self.names, self.constrained, self.processes, n_proc)
        n_mono = Monomials(len(names)).n_mono
        fields = {
            "ratios": (self.ratios, (n_proc, n_events), "(n_proc, n_events)"),
            "nu": (self.nu, (n_proc,), "(n_proc,)"),
            "shape": (self.shape, (n_mono, n_proc, n_events), "(n_mono, n_proc, n_events)"),
            "norm": (self.norm, (n_mono, n_proc), "(n_mono, n_proc)"),
        }
        for name, (value, shape, meaning) in fields.items():
            object.__setattr__(self, name, checked_array(value, name, shape, meaning))
        if np.any(self.ratios < 0):
            raise ValueError(f"ratios: r_j = p_j/p_ref must be >= 0, got min {self.ratios.min():.4g}")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "constrained", constrained)
        object.__setattr__(self, "processes", processes)

    @classmethod
    def from_profile_terms(cls, terms: ProfileTerms) -> LogPolynomialTerms:
        """GOLLUM's form through the ±1 values of ``terms``, without cross terms: Δ_k = (ln up − ln
        down)/2, Δ_kk = (ln up + ln down)/2 (exact at α_k = ±1), Δ_kl = 0; the same for c."""
        shape = _through_plus_minus_one(terms.shape_up, terms.shape_down)
        norm = _through_plus_minus_one(terms.norm_up, terms.norm_down)
        return cls(terms.ratios, terms.nu, shape, norm, terms.names, terms.constrained, terms.processes)

    @property
    def n_proc(self) -> int:
        return self.ratios.shape[0]

    @property
    def n_events(self) -> int:
        return self.ratios.shape[1]

    @property
    def n_syst(self) -> int:
        return len(self.names)

    @property
    def monomials(self) -> Monomials:
        return Monomials(self.n_syst)

    def log_shape(self, alpha: np.ndarray) -> np.ndarray:
        """log g_j(x_i, α) = Σ_A Δ_jA α^A ``(n_proc, n_events)`` at α ``(n_syst,)``."""
        return np.tensordot(self.monomials(np.asarray(alpha, dtype=float)), self.shape, 1)

    def log_norm(self, alpha: np.ndarray) -> np.ndarray:
        """log G_j(α) = Σ_A c_jA α^A ``(n_proc,)`` at α ``(n_syst,)``."""
        return self.monomials(np.asarray(alpha, dtype=float)) @ self.norm

    def subset(self, events: np.ndarray) -> LogPolynomialTerms:
        """The terms of the events ``events`` (indices ``(n,)``, repeats allowed, or a boolean mask)."""
        index = np.asarray(events)
        return LogPolynomialTerms(self.ratios[:, index], self.nu, self.shape[:, :, index], self.norm,
                                  self.names, self.constrained, self.processes)  # fmt: skip

    @classmethod
    def concatenate(cls, *parts: LogPolynomialTerms) -> LogPolynomialTerms:
        """The events of ``parts`` one after the other (same processes, ν_j, c_jA and nuisances).

        Raises:
            ValueError: the parts differ in ν_j, c_jA, nuisance names, constraints or processes.
        """
        first = parts[0]
        for other in parts[1:]:
            labels = (other.names, other.constrained, other.processes)
            same = labels == (first.names, first.constrained, first.processes)
            if not (same and np.array_equal(other.nu, first.nu) and np.array_equal(other.norm, first.norm)):
                raise ValueError(
                    "concatenate: the parts must share nu, norm, names, constrained and processes"
                )
        ratios = np.concatenate([p.ratios for p in parts], axis=1)
        shape = np.concatenate([p.shape for p in parts], axis=2)
        return cls(ratios, first.nu, shape, first.norm, first.names, first.constrained, first.processes)

    def with_nuisances(
        self,
        names: Sequence[str],
        shape_up: np.ndarray,
        shape_down: np.ndarray,
        norm_up: np.ndarray | None = None,
        norm_down: np.ndarray | None = None,
    ) -> LogPolynomialTerms:
        """These terms with constrained nuisances ``names`` appended, given by their ±1 values as in
        :meth:`ProfileTerms.with_nuisances <assay.inference.profile_terms.ProfileTerms.with_nuisances>`
        (log-quadratic through them, no cross terms with any other nuisance)."""
        n_new = len(names)
        unit = np.ones((n_new, self.n_proc))
        new_shape = _through_plus_minus_one(np.asarray(shape_up), np.asarray(shape_down))
        new_norm = _through_plus_minus_one(unit if norm_up is None else norm_up,
                                           unit if norm_down is None else norm_down)  # fmt: skip
        bigger = Monomials(self.n_syst + n_new)
        old = self.monomials.embed(n_new)
        new = self.n_syst + np.arange(n_new)
        offset = np.concatenate([new, bigger.n_syst + new])  # the new α_k and α_k²
        shape = np.zeros((bigger.n_mono, self.n_proc, self.n_events))
        norm = np.zeros((bigger.n_mono, self.n_proc))
        shape[old], norm[old] = self.shape, self.norm
        shape[offset], norm[offset] = new_shape[: 2 * n_new], new_norm[: 2 * n_new]
        return LogPolynomialTerms(self.ratios, self.nu, shape, norm, (*self.names, *names),
                                  (*self.constrained, *(True,) * n_new), self.processes)  # fmt: skip


def _through_plus_minus_one(up: np.ndarray, down: np.ndarray) -> np.ndarray:
    """Δ_k = (ln up − ln down)/2, Δ_kk = (ln up + ln down)/2, cross terms 0: ``(n_mono, ...)`` from
    ``up``/``down`` ``(n_syst, ...)`` (> 0)."""
    log_up, log_down = np.log(up), np.log(down)
    n = len(log_up)
    cross = np.zeros((len(Monomials(n).pairs), *log_up.shape[1:]))
    return np.concatenate([(log_up - log_down) / 2, (log_up + log_down) / 2, cross])


class LogPolynomialFactors:
    """rows_ji = r_j(x_i) g_j(x_i, α) and G_j(α) of :class:`LogPolynomialTerms` for one α at a time.

    The fast path of :class:`~assay.inference.profile_likelihood.ProfileLikelihood`: monomials whose
    coefficients are 0 for every process and event are dropped once, and a call is one product
    ``(n_active,) @ (n_active, n_proc · n_events)``.

    Args:
        terms: the coefficients.
    """

    def __init__(self, terms: LogPolynomialTerms):
        self.monomials = terms.monomials
        self.n_proc, self.n_events = terms.n_proc, terms.n_events
        self.active = np.flatnonzero(np.any(terms.shape != 0, axis=(1, 2)))
        self._shape = np.ascontiguousarray(terms.shape[self.active].reshape(len(self.active), -1))
        self._norm = np.array(terms.norm)
        # nuisances that change some shape: their per-event log derivative enters the gradient
        self.shaped = np.flatnonzero(self.monomials.depends()[:, self.active].any(axis=1))
        self._torch = torch.from_numpy(self._shape), torch.from_numpy(self._norm)
        self._active_torch = torch.as_tensor(self.active)

    def torch(self, ratios: torch.Tensor, alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(rows ``(n_proc, n_events)``, G ``(n_proc,)``), differentiable in α ``(n_syst,)``."""
        shape, norm = self._torch
        monomials = self.monomials(alpha)
        exponent = (monomials[self._active_torch] @ shape).reshape(self.n_proc, self.n_events)
        return ratios * torch.exp(exponent), torch.exp(monomials @ norm)

    def numpy(self, ratios: np.ndarray, alpha: np.ndarray) -> tuple:
        """(rows, G, ∂ln G/∂α ``(n_syst, n_proc)``, [(k, processes, ∂ln g_jk/∂α_k ``(n_proc, n_events)``)]
        for the nuisances that change a shape), at α ``(n_syst,)``."""
        monomials, jacobian = self.monomials(alpha), self.monomials.jacobian(alpha)
        exponent = (monomials[self.active] @ self._shape).reshape(self.n_proc, self.n_events)
        rows = ratios * np.exp(exponent)
        log_g = monomials @ self._norm
        slopes = (jacobian[np.ix_(self.shaped, self.active)] @ self._shape).reshape(
            len(self.shaped), self.n_proc, self.n_events
        )  # fmt: skip
        logs = [(int(k), slice(None), slopes[i]) for i, k in enumerate(self.shaped)]
        return rows, np.exp(log_g), jacobian @ self._norm, logs
