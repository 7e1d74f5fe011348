"""Inputs and results of seed 003's profiled likelihood: per-event terms, f_j(θ), fits and impacts.

Seed 003 ("Probability density ratio including nuisance parameters") writes

    p(x_i|μ, α)/p_ref(x_i) = (1/ν(μ, α)) Σ_j f_j(μ) ν_j r_j(x_i) Π_k G_jk(α_k) g_jk(x_i, α_k),
    ν(μ, α) = Σ_j f_j(μ) ν_j Π_k G_jk(α_k),

with r_j = p_j/p_ref (the mixture model's classifiers), g_jk(x, α_k) = p_j(x|α_k)/p_j(x) and
G_jk(α_k) = ν_j(α_k)/ν_j interpolated from their values at α_k = ±1
(:mod:`~assay.inference.interpolation`). :class:`ProfileTerms` holds everything that does not
depend on (μ, α), evaluated once per event; :class:`ProcessCoefficients` gives f_j(θ) = c(θ) P⁻¹
in torch (seed 003 "Search-Oriented Mixture Model"; :func:`~assay.estimators.mixture_processes.
process_coefficients` is the numpy form). :class:`FitResult` and :class:`Impacts` are what
:class:`~assay.inference.profile_likelihood.ProfileLikelihood` returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from assay.morphing import Morpher, power_steps

__all__ = [
    "Coefficients", "FitResult", "Impacts", "ProcessCoefficients", "ProfileTerms", "checked_array",
    "nuisance_labels",
]  # fmt: skip


def checked_array(value: np.ndarray, name: str, shape: tuple[int, ...], meaning: str) -> np.ndarray:
    """``value`` as a read-only float array of ``shape``; ValueError naming ``name`` otherwise."""
    array = np.array(value, dtype=float)
    if array.shape != shape:
        raise ValueError(f"{name}: expected shape {meaning} = {shape}, got {array.shape}")
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise ValueError(f"{name}: {bad} of {array.size} entries are NaN or infinite; fix the inputs")
    array.setflags(write=False)
    return array


def nuisance_labels(
    names: Sequence[str], constrained: Sequence[bool] | None, processes: Sequence[str] | None, n_proc: int
) -> tuple[tuple[str, ...], tuple[bool, ...], tuple[str, ...]]:
    """Checked (names, constrained, processes) of per-event terms: unique nuisance names, one flag per
    nuisance (default all True: unit Gaussian constraints), ``n_proc`` process names (default ``p0``, ...).

    Raises:
        ValueError: duplicate names, or a wrong number of flags or process names.
    """
    names = tuple(str(n) for n in names)
    n_syst = len(names)
    if len(set(names)) != n_syst:
        raise ValueError(f"names: nuisance names must be unique, got {list(names)}")
    flags = (True,) * n_syst if constrained is None else tuple(bool(c) for c in constrained)
    if len(flags) != n_syst:
        raise ValueError(f"constrained: expected {n_syst} flags (one per nuisance), got {flags}")
    labels = tuple(f"p{j}" for j in range(n_proc)) if processes is None else tuple(str(p) for p in processes)
    if len(labels) != n_proc:
        raise ValueError(f"processes: expected {n_proc} names (one per row of ratios), got {labels}")
    return names, flags, labels


def _positive(array: np.ndarray, name: str) -> None:
    if not np.all(array > 0):
        index = np.unravel_index(int(np.argmin(array)), array.shape)
        raise ValueError(
            f"{name}: ratios at α = ±1 must be > 0 (they are interpolated in log), got "
            f"{array[index]:.4g} at index {tuple(int(i) for i in index)} "
            f"({int((array <= 0).sum())} entries ≤ 0)"
        )


@dataclass(frozen=True, eq=False)  # holds arrays
class ProfileTerms:
    """The (μ, α)-independent terms of seed 003's likelihood with nuisance parameters, per event.

    Attributes:
        ratios: r_j(x_i) = p_j(x_i)/p_ref(x_i) ``(n_proc, n_events)``, ≥ 0.
        nu: ν_j, expected events of each process at the nominal α = 0 ``(n_proc,)``.
        shape_up: g_jk(x_i, +1) = p_j(x_i|α_k = +1)/p_j(x_i), normalised densities
            ``(n_syst, n_proc, n_events)``, > 0; 1 where nuisance k does not change process j's shape.
        shape_down: g_jk(x_i, −1), the same.
        norm_up: G_jk(+1) = ν_j(α_k = +1)/ν_j ``(n_syst, n_proc)``, > 0; 1 where k leaves ν_j alone.
        norm_down: G_jk(−1), the same.
        names: nuisance names ``(n_syst,)``, unique.
        constrained: per nuisance, True for a unit Gaussian constraint (α in units of its ±1σ
            variation), False for a free (unconstrained) one; default all True.
        processes: process names ``(n_proc,)``; default ``("p0", "p1", ...)``.
        linear_yields: per nuisance, True where its yield factor is linear in α, G(α) = 1 + α (G(±1) − 1)
            on each side (a normalisation with a Gaussian constraint, pyhf's ``lumi``), whatever the
            interpolation; default all False.

    Raises:
        ValueError: a wrong shape (names the field and the expected shape), NaN or infinite
            entries, negative ratios, up/down ratios ≤ 0, duplicate names.
    """

    ratios: np.ndarray
    nu: np.ndarray
    shape_up: np.ndarray
    shape_down: np.ndarray
    norm_up: np.ndarray
    norm_down: np.ndarray
    names: tuple[str, ...]
    constrained: tuple[bool, ...] | None = None
    processes: tuple[str, ...] | None = None
    linear_yields: tuple[bool, ...] | None = None

    def __post_init__(self) -> None:
        ratios = np.asarray(self.ratios, dtype=float)
        if ratios.ndim != 2:
            raise ValueError(f"ratios: expected shape (n_proc, n_events), got {ratios.shape}")
        n_proc, n_events = ratios.shape
        names, constrained, processes = nuisance_labels(self.names, self.constrained, self.processes, n_proc)
        n_syst = len(names)
        fields = {
            "ratios": (self.ratios, (n_proc, n_events), "(n_proc, n_events)"),
            "nu": (self.nu, (n_proc,), "(n_proc,)"),
            "shape_up": (self.shape_up, (n_syst, n_proc, n_events), "(n_syst, n_proc, n_events)"),
            "shape_down": (self.shape_down, (n_syst, n_proc, n_events), "(n_syst, n_proc, n_events)"),
            "norm_up": (self.norm_up, (n_syst, n_proc), "(n_syst, n_proc)"),
            "norm_down": (self.norm_down, (n_syst, n_proc), "(n_syst, n_proc)"),
        }
        for name, (value, shape, meaning) in fields.items():
            object.__setattr__(self, name, checked_array(value, name, shape, meaning))
        if np.any(self.ratios < 0):
            raise ValueError(f"ratios: r_j = p_j/p_ref must be >= 0, got min {self.ratios.min():.4g}")
        for name in ("shape_up", "shape_down", "norm_up", "norm_down"):
            _positive(getattr(self, name), name)
        flags = self.linear_yields
        linear = (False,) * n_syst if flags is None else tuple(bool(f) for f in flags)
        if len(linear) != n_syst:
            raise ValueError(f"linear_yields: expected {n_syst} flags (one per nuisance), got {linear}")
        object.__setattr__(self, "linear_yields", linear)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "constrained", constrained)
        object.__setattr__(self, "processes", processes)

    @classmethod
    def nominal(
        cls, ratios: np.ndarray, nu: np.ndarray, processes: Sequence[str] | None = None
    ) -> ProfileTerms:
        """Terms without nuisance parameters: ``ratios (n_proc, n_events)``, ``nu (n_proc,)``."""
        n_proc, n_events = np.shape(ratios)
        empty = np.ones((0, n_proc, n_events))
        return cls(ratios, nu, empty, empty, np.ones((0, n_proc)), np.ones((0, n_proc)), (), None,
                   None if processes is None else tuple(processes))  # fmt: skip

    @property
    def n_proc(self) -> int:
        return self.ratios.shape[0]

    @property
    def n_events(self) -> int:
        return self.ratios.shape[1]

    @property
    def n_syst(self) -> int:
        return len(self.names)

    def subset(self, events: np.ndarray) -> ProfileTerms:
        """The terms of the events ``events`` (indices ``(n,)``, repeats allowed, or a boolean mask)."""
        index = np.asarray(events)
        return ProfileTerms(
            self.ratios[:, index], self.nu, self.shape_up[:, :, index], self.shape_down[:, :, index],
            self.norm_up, self.norm_down, self.names, self.constrained, self.processes, self.linear_yields,
        )  # fmt: skip

    @classmethod
    def concatenate(cls, *parts: ProfileTerms) -> ProfileTerms:
        """The events of ``parts`` one after the other (same processes, ν_j and nuisances).

        Raises:
            ValueError: the parts differ in ν_j, G, nuisance names, constraints or processes.
        """
        first = parts[0]
        for other in parts[1:]:
            same = (other.names, other.constrained, other.processes, other.linear_yields) == (
                first.names, first.constrained, first.processes, first.linear_yields)  # fmt: skip
            fields = ("nu", "norm_up", "norm_down")
            arrays = all(np.array_equal(getattr(other, f), getattr(first, f)) for f in fields)
            if not (same and arrays):
                raise ValueError(
                    "concatenate: the parts must share nu, norm_up/down, names, constrained and processes"
                )
        join = lambda field, axis: np.concatenate([getattr(p, field) for p in parts], axis=axis)  # noqa: E731
        return cls(join("ratios", 1), first.nu, join("shape_up", 2), join("shape_down", 2), first.norm_up,
                   first.norm_down, first.names, first.constrained, first.processes,
                   first.linear_yields)  # fmt: skip

    def with_nuisances(
        self,
        names: Sequence[str],
        shape_up: np.ndarray,
        shape_down: np.ndarray,
        norm_up: np.ndarray | None = None,
        norm_down: np.ndarray | None = None,
    ) -> ProfileTerms:
        """These terms with constrained nuisances ``names`` appended: shapes ``(n_new, n_proc, n_events)``,
        yields ``(n_new, n_proc)`` (default 1: shape only)."""
        n_new = len(names)
        unit = np.ones((n_new, self.n_proc))
        up_n = unit if norm_up is None else norm_up
        down_n = unit if norm_down is None else norm_down
        return ProfileTerms(
            self.ratios, self.nu, np.concatenate([self.shape_up, shape_up]),
            np.concatenate([self.shape_down, shape_down]), np.concatenate([self.norm_up, up_n]),
            np.concatenate([self.norm_down, down_n]), (*self.names, *names),
            (*self.constrained, *(True,) * n_new), self.processes, (*self.linear_yields, *(False,) * n_new),
        )  # fmt: skip

    def shape_touches(self) -> np.ndarray:
        """``(n_syst, n_proc)`` bool: nuisance k changes the shape of process j somewhere."""
        return np.any((self.shape_up != 1) | (self.shape_down != 1), axis=2)

    def norm_touches(self) -> np.ndarray:
        """``(n_syst, n_proc)`` bool: nuisance k changes the yield of process j."""
        return (self.norm_up != 1) | (self.norm_down != 1)


class ProcessCoefficients:
    """f_j(θ) = Σ_k c_k(θ) (P⁻¹)_kj in torch, differentiable in θ (seed 003 mixture model).

    c_k(θ) are the morphing weights of ``morpher`` (monomials of θ, half-integer exponents allowed:
    then the parameter enters through √θ and must be ≥ 0), P the process matrix
    (:func:`~assay.estimators.mixture_processes.process_matrix`).

    Args:
        morpher: morphing of the benchmarks.
        matrix: P ``(n_proc, n_benchmarks)``, invertible.
        parameters: names of θ's components ``(n_params,)``; default ``("mu",)`` or ``theta_a``.

    Example:
        >>> m = Morpher([[0.0], [0.5], [1.0]], [[0.0], [1.0], [4.0]])
        >>> p = np.array([[0.5, -1.0, 0.5], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])  # S, SBI, B
        >>> f = ProcessCoefficients(m, p)(torch.tensor([4.0], dtype=torch.float64))
        >>> f.numpy().round(6).tolist()  # (μ − √μ, √μ, 1 − √μ)
        [2.0, 2.0, -1.0]
    """

    def __init__(self, morpher: Morpher, matrix: np.ndarray, parameters: Sequence[str] | None = None):
        matrix = np.asarray(matrix, dtype=float)
        if matrix.shape != (morpher.n_benchmarks, morpher.n_benchmarks):
            raise ValueError(
                f"matrix: expected shape (n_proc, n_benchmarks) = {(morpher.n_benchmarks,) * 2}, "
                f"got {matrix.shape}"
            )
        default = ("mu",) if morpher.n_params == 1 else tuple(f"theta_{a}" for a in range(morpher.n_params))
        self.parameters = default if parameters is None else tuple(parameters)
        if len(self.parameters) != morpher.n_params:
            raise ValueError(f"parameters: expected {morpher.n_params} names, got {list(self.parameters)}")
        steps = power_steps(morpher.components)
        self.roots = torch.as_tensor(steps < 1)
        exponents = np.round(morpher.components / steps).astype(int)  # of √θ or θ
        self.exponents = torch.as_tensor(exponents)  # (n_comp, n_params)
        linear = np.linalg.pinv(morpher.matrix) @ np.linalg.inv(matrix)  # c = φ M⁺, f = c P⁻¹
        self.linear = torch.as_tensor(linear, dtype=torch.float64)

    @classmethod
    def from_mixture(cls, model: object) -> ProcessCoefficients:
        """The coefficients of a fitted :class:`~assay.estimators.mixture.MixtureModel`."""
        return cls(model.morpher_, model.process_matrix_, model.parameters_)  # type: ignore[attr-defined]

    @property
    def n_params(self) -> int:
        return len(self.parameters)

    @property
    def bounds(self) -> tuple[tuple[float | None, float | None], ...]:
        """Per parameter (lower, upper): (0, None) where θ enters through √θ, else (None, None)."""
        return tuple((0.0, None) if bool(r) else (None, None) for r in self.roots)

    def value_and_jacobian(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """f_j(θ) ``(n_proc,)`` and ∂f_j/∂θ_a ``(n_params, n_proc)`` in numpy, for θ ``(n_params,)``.

        Where θ_a enters through √θ_a its derivative at θ_a = 0 is taken at θ_a = 10⁻³⁰⁰ (finite;
        a fit reaches 0 only as a bound or a fixed point of a scan), and below 0 (where the torch form
        clamps θ_a to 0) it is 0.
        """
        theta = np.asarray(theta, dtype=float)
        roots, exponents = self.roots.numpy(), self.exponents.numpy()  # (n_params,), (n_comp, n_params)
        base = np.where(roots, np.sqrt(np.clip(theta, 0.0, None)), theta)
        d_root = np.where(theta < 0, 0.0, 0.5 / np.sqrt(np.clip(theta, 1e-300, None)))  # √ of θ clipped at 0
        d_base = np.where(roots, d_root, 1.0)
        powers = base**exponents  # (n_comp, n_params); 0⁰ = 1
        d_powers = exponents * base ** np.maximum(exponents - 1, 0) * d_base
        monomials = powers.prod(axis=1)
        jacobian = np.stack([
            d_powers[:, a] * np.prod(np.delete(powers, a, axis=1), axis=1) for a in range(len(theta))
        ])  # fmt: skip
        linear = self.linear.numpy()
        return monomials @ linear, jacobian @ linear

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        """f_j(θ) ``(n_proc,)`` for θ ``(n_params,)`` (float64)."""
        # Π_a base_a^n by repeated products: pow(0, 0)'s gradient is NaN, and √θ's is infinite at 0
        # only where θ is differentiated (a fixed μ = 0 in a profile scan is fine).
        rooted = torch.where(self.roots, theta, torch.ones_like(theta))  # √1 elsewhere: no NaN gradient at 0
        base = torch.where(self.roots, rooted.clamp_min(0).sqrt(), theta)
        monomials = torch.ones(len(self.exponents), dtype=theta.dtype)
        for a in range(len(self.parameters)):
            powers = [torch.ones_like(base[a])]
            for _ in range(int(self.exponents[:, a].max())):
                powers.append(powers[-1] * base[a])
            monomials = monomials * torch.stack(powers)[self.exponents[:, a]]
        return monomials @ self.linear


class Coefficients(Protocol):
    """f_j(θ) in torch, e.g. :class:`~assay.inference.profile_terms.ProcessCoefficients`."""

    parameters: tuple[str, ...]

    @property
    def bounds(self) -> tuple[tuple[float | None, float | None], ...]: ...

    def __call__(self, theta: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True, eq=False)  # holds arrays
class FitResult:
    """A minimum of −2 log L(θ, α).

    Attributes:
        parameters: names, the POIs θ then the nuisances α ``(n_par,)``.
        n_poi: number of POIs.
        values: best-fit values ``(n_par,)`` (fixed ones at their fixed value).
        minus_2_log_l: −2 log L at the minimum (the constant of the module docstring dropped).
        covariance: ``(n_par, n_par)`` = [½ ∂²λ/∂p∂p]⁻¹ over the free parameters, 0 in the rows and
            columns of fixed ones; NaN if the Hessian is not positive definite.
        valid: MIGRAD converged and the Hessian is positive definite.
        fixed: names of the fixed parameters.
        n_calls: likelihood evaluations (value and gradient together).
    """

    parameters: tuple[str, ...]
    n_poi: int
    values: np.ndarray
    minus_2_log_l: float
    covariance: np.ndarray
    valid: bool
    fixed: tuple[str, ...]
    n_calls: int

    @property
    def poi_hat(self) -> np.ndarray:
        """θ̂ ``(n_poi,)``."""
        return self.values[: self.n_poi]

    @property
    def alpha_hat(self) -> np.ndarray:
        """α̂ ``(n_syst,)``."""
        return self.values[self.n_poi :]

    @property
    def errors(self) -> np.ndarray:
        """√C_pp ``(n_par,)`` (0 for fixed parameters)."""
        return np.sqrt(np.diag(self.covariance))

    def nuisances(self, names: Sequence[str] | None = None) -> dict[str, float]:
        """{name: α̂} of ``names`` (all nuisances by default): ``fixed_alpha`` for a stat-only fit."""
        fitted = dict(zip(self.parameters[self.n_poi :], self.alpha_hat.tolist()))
        return {n: fitted[n] for n in (fitted if names is None else names)}


@dataclass(frozen=True, eq=False)  # holds arrays
class Impacts:
    """Post-fit impacts of the nuisances on one POI (seed 003 "Calculating pulls and impacts").

    Attributes:
        parameter: the POI's name.
        names: nuisance names ``(n_syst,)``.
        hessian: Γ_k = −[∂²λ/∂θ²]⁻¹ ∂²λ/∂θ∂α_k · √C_kk ``(n_syst,)`` (0 for fixed nuisances), seed
            003's formula: ∂θ̂/∂α_k with the other nuisances held at α̂.
        covariance: C_θk/√C_kk ``(n_syst,)``: ∂θ̂/∂α_k · √C_kk with the other nuisances profiled, to
            first order (up − down)/2; it differs from ``hessian`` where nuisances are correlated.
        up: θ̂(α_k = α̂_k + √C_kk) − θ̂, others profiled ``(n_syst,)``.
        down: θ̂(α_k = α̂_k − √C_kk) − θ̂ ``(n_syst,)``.
    """

    parameter: str
    names: tuple[str, ...]
    hessian: np.ndarray
    covariance: np.ndarray
    up: np.ndarray
    down: np.ndarray
