"""GOLLUM's log-polynomial nuisance model: log g_j(x, α) = Σ_A Δ_jA(x) α^A (arXiv:2505.05544).

HEPHY's GOLLUM (joint winner of the FAIR Universe HiggsML Uncertainty Challenge) models the effect of
all nuisances α on a process j's density ratio at once,

    g_j(x, α) = p_j(x|α)/p_j(x) = exp(Σ_A Δ_jA(x) α^A),     G_j(α) = ν_j(α)/ν_j = exp(Σ_A c_jA α^A),

with the monomials A = α_k, α_k², α_k α_l (k < l) (:class:`~assay.monomials.Monomials`). Unlike seed
003's product of one interpolation per nuisance (:mod:`~assay.inference.interpolation`), the cross
terms Δ_kl let two nuisances act together (e.g. on a process that mixes components each of them
varies differently). The yield coefficients c_jA are fitted in closed form, by least squares on the
log of the varied totals at the variation points (GOLLUM's "inclusive cross-section
parametrisation"); here the per-event Δ_jA are fitted the same way where exact per-event ratios
exist (:func:`~assay.monomials.least_squares`, :func:`assay.analysis.systematics.log_polynomial_terms`),
or learned (:class:`~assay.estimators.nuisance_ratios.NuisanceRatios`). The variation points
(:func:`~assay.monomials.variation_points`) are α_k = ±1 alone and (α_k, α_l) = (±1, ±1) for every pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from assay.inference.profile_terms import ProfileTerms, checked_array, nuisance_labels
from assay.monomials import Monomials

__all__ = ["LogPolynomialFactors", "LogPolynomialTerms"]


@dataclass(frozen=True, eq=False)  # holds arrays
class LogPolynomialTerms:
    """The (μ, α)-independent terms of the likelihood in GOLLUM's form, per event (module docstring).

    Attributes:
        ratios: r_j(x_i) = p_j(x_i)/p_ref(x_i) ``(n_proc, n_events)``, ≥ 0.
        nu: ν_j at α = 0, in events ``(n_proc,)``.
        shape: Δ_jA(x_i) ``(n_mono, n_proc, n_events)`` in the order of :class:`~assay.monomials.Monomials`.
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
        if any(terms.linear_yields):
            raise ValueError(
                "interpolation gollum: a yield linear in α (a normalisation with a Gaussian constraint) is "
                "not log-polynomial; use constraint: lognormal or another interpolation"
            )
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
