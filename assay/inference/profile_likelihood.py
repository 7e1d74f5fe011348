"""Profiled extended unbinned likelihood with nuisance parameters: fits, scans, pulls, impacts (seed 003).

Seed 003 ("Final test statistic") multiplies the Poisson term, the per-event density ratios and the
constraints of the nuisance parameters α. With S_i = ν(θ, α) p(x_i|θ, α)/p_ref(x_i) =
Σ_j f_j(θ) ν_j r_j(x_i) Π_k G_jk(α_k) g_jk(x_i, α_k) (:mod:`~assay.inference.profile_terms`),

    −2 log L(θ, α) = −2 [Σ_i w_i log S_i − ν(θ, α)] + Σ_{k constrained} (α_k − a_k)²

up to a constant, with w_i = 1 for observed events or Asimov weights summing to the expected
yield (:func:`asimov_weights`), and global observables a_k (0 for data; drawn from N(α_k, 1) in
toys). Fits use iminuit's MIGRAD with the exact gradient from torch autograd; the covariance is
C = [½ ∂²λ/∂p∂p]⁻¹ of λ = −2 log L at the minimum (all free parameters; the Hessian from central
differences of the exact gradient, torch autograd at a bound), and seed 003
("Calculating pulls and impacts") gives

    pull_k = (α̂_k − α_k⁰)/√C_kk,   Γ_k = −[∂²λ/∂θ²]⁻¹ ∂²λ/∂θ∂α_k · √C_kk.

Impacts are also computed by refits (θ̂ with α_k fixed at α̂_k ± √C_kk, the others profiled).

Normalisation: seed 003's ν(θ, α) = Σ_j f_j ν_j Π_k G_jk takes the interpolated per-event shapes to be
normalised, but ∫ p_j(x) g_jk(x, α) dx ≠ 1 between α = 0 and ±1, and its α-derivative at ±1 is
∫ p_j up ln up ≈ Var(ln up)/2 ≠ 0. For ν_j ~ 1000 events and shape variations of ±25 % this moved an
Asimov fit's α̂ from 0.7 to 2.8 (tests/test_profile.py). Passing ``normalization`` (weights of events
that sample p_ref) divides each process's shape by its integral N_j(α) on that sample, which removes it.

``interpolation="gollum"`` replaces the product over nuisances by GOLLUM's log-polynomial form
g_j(x, α) = exp(Σ_A Δ_jA(x) α^A), G_j(α) = exp(Σ_A c_jA α^A) with cross terms α_k α_l
(:mod:`~assay.inference.log_polynomial`; terms :class:`~assay.inference.log_polynomial.LogPolynomialTerms`);
the normalisation and everything else are the same.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from iminuit import Minuit

from assay.estimators.prediction import RATIO_FLOOR
from assay.inference.calibration import RateCalibration
from assay.inference.interpolation import TABLES, InterpolatedFactors
from assay.inference.likelihood import Scan
from assay.inference.log_polynomial import LogPolynomialFactors, LogPolynomialTerms
from assay.inference.profile_terms import Coefficients, FitResult, Impacts, ProfileTerms
from assay.inference.spurious_signal import SpuriousSignal

__all__ = ["INTERPOLATIONS", "Coefficients", "FitResult", "Impacts", "ProfileLikelihood", "asimov_weights"]

INTERPOLATIONS = (*TABLES, "gollum")
HESSIAN_STEP = 1e-4
"""Relative step of the Hessian's central differences of the exact gradient (error ~ step²)."""
"""The valid ``interpolation`` names: one table per nuisance (:data:`~assay.inference.interpolation.TABLES`),
or GOLLUM's log-polynomial form with cross terms."""

Terms = ProfileTerms | LogPolynomialTerms


def factors(terms: Terms, interpolation: str) -> InterpolatedFactors | LogPolynomialFactors:
    """The evaluator of g and G for ``terms`` under ``interpolation`` (:data:`INTERPOLATIONS`):
    ``gollum`` takes :class:`LogPolynomialTerms` (or :class:`ProfileTerms`, made log-quadratic through
    their ±1 values without cross terms); the others take :class:`ProfileTerms`.

    Raises:
        ValueError: an unknown name (lists the valid ones), or log-polynomial terms with another
            interpolation.
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(
            f"interpolation: unknown name {interpolation!r}; valid names are {list(INTERPOLATIONS)}"
        )
    if interpolation == "gollum":
        if isinstance(terms, ProfileTerms):
            terms = LogPolynomialTerms.from_profile_terms(terms)
        return LogPolynomialFactors(terms)
    if isinstance(terms, LogPolynomialTerms):
        raise ValueError(
            f"interpolation: {interpolation!r} interpolates each nuisance from its ±1 values, but the terms "
            "are GOLLUM's log-polynomial coefficients (LogPolynomialTerms); use interpolation='gollum'"
        )
    t = terms
    shapes, yields = (t.shape_up, t.shape_down), (t.norm_up, t.norm_down)
    return InterpolatedFactors(*shapes, *yields, interpolation, t.linear_yields)


class ProfileLikelihood:
    """Seed 003's extended unbinned likelihood in (θ, α), evaluated in torch (float64).

    Args:
        terms: per-event terms :class:`~assay.inference.profile_terms.ProfileTerms` (ν_j in events), or
            :class:`~assay.inference.log_polynomial.LogPolynomialTerms` for ``interpolation="gollum"``.
        weights: w_i ``(n_events,)`` ≥ 0: 1 for observed events (None), or Asimov weights with
            Σ_i w_i = the expected number of events.
        coefficients: f_j(θ) (:class:`Coefficients`), giving the POI names and bounds.
        interpolation: name in :data:`INTERPOLATIONS` for G and g (:func:`factors`).
        global_observables: a_k ``(n_syst,)``, the centres of the Gaussian constraints; default 0.
        normalization: u_i ``(n_events,)`` ≥ 0, weights that make some of the events a sample of
            p_ref (e.g. 1/n on an Asimov pool drawn from p_ref; for observed data, append a
            reference sample with :meth:`ProfileTerms.concatenate` and give the data u = 0 and it
            w = 0). Then every process's interpolated density is renormalised,
            p_j(x|α)/p_ref = r_j(x) Π_k g_jk(x, α_k) · N_j(0)/N_j(α), N_j(α) = Σ_i u_i r_j Π_k g_jk,
            so that its yield is G alone. None: seed 003's formula as written, where
            ∫ p_j Π_k g_jk(α) dx ≠ 1 between α = 0 and ±1 (and in its α-derivative at ±1) biases the
            fit by ~ν_j Var(ln g_jk(±1))/2 events per unit α (module docstring).
        tolerance: MIGRAD's ``tol`` (stops at EDM < 0.002 · tol).
        floor: S_i is clipped below at ``floor`` · ν(θ, α).
        calibration: the rate calibration R̂(θ_p) of an estimated likelihood on data it did not
            generate (:class:`~assay.inference.calibration.RateCalibration`): −2 log L gets
            + 2 (Σ_i w_i) log R̂(θ_p).
        spurious: seed 003's spurious-signal term (:class:`~assay.inference.spurious_signal.SpuriousSignal`):
            f_j(θ) is evaluated at θ_p + α_s Δθ̂(θ_p), α_s the nuisance it names.

    Raises:
        ValueError: bad shapes or values of ``weights``/``global_observables``, an unknown
            interpolation, coefficients that do not give one f_j per process.
    """

    def __init__(
        self,
        terms: Terms,
        weights: np.ndarray | None,
        coefficients: Coefficients,
        *,
        interpolation: str = "vertical",
        global_observables: np.ndarray | None = None,
        normalization: np.ndarray | None = None,
        tolerance: float = 1e-3,
        floor: float = RATIO_FLOOR,
        spurious: SpuriousSignal | None = None,
        calibration: RateCalibration | None = None,
    ):
        self.terms, self.coefficients = terms, coefficients
        self.tolerance, self.floor = float(tolerance), float(floor)
        self.parameters = tuple(coefficients.parameters) + terms.names
        self.n_poi = len(coefficients.parameters)
        w = np.ones(terms.n_events) if weights is None else np.asarray(weights, dtype=float)
        if w.shape != (terms.n_events,) or not np.all(np.isfinite(w) & (w >= 0)):
            raise ValueError(
                f"weights: expected finite values >= 0 of shape (n_events,) = ({terms.n_events},), "
                f"got shape {w.shape}"
            )
        a = np.zeros(terms.n_syst) if global_observables is None else np.asarray(global_observables, float)
        if a.shape != (terms.n_syst,) or not np.isfinite(a).all():
            raise ValueError(
                f"global_observables: expected finite values of shape (n_syst,) = ({terms.n_syst},), "
                f"got shape {a.shape}"
            )
        self.global_observables = a
        self.spurious, self.calibration = spurious, calibration
        if calibration is not None and not 0 <= calibration.parameter < self.n_poi:
            raise ValueError(f"calibration: parameter {calibration.parameter} is not a parameter of interest")
        if spurious is not None:
            if spurious.nuisance not in terms.names or not 0 <= spurious.parameter < self.n_poi:
                raise ValueError(
                    f"spurious: nuisance {spurious.nuisance!r} (parameter {spurious.parameter}) is not among "
                    f"the nuisances {list(terms.names)} (parameters of interest {self.n_poi})"
                )
            self._spurious_index = terms.names.index(spurious.nuisance)
        if normalization is None:
            self._u = None
        else:
            u = np.asarray(normalization, dtype=float)
            if u.shape != (terms.n_events,) or not (np.all(np.isfinite(u) & (u >= 0)) and u.sum() > 0):
                raise ValueError(
                    f"normalization: expected finite values >= 0 with a positive sum, of shape "
                    f"(n_events,) = ({terms.n_events},), got shape {u.shape}"
                )
            self._u = torch.tensor(u / u.sum())
        as_tensor = lambda v: torch.tensor(np.array(v), dtype=torch.float64)  # noqa: E731
        self._w, self._a = as_tensor(w), as_tensor(a)
        self._w_numpy = self._w.numpy()
        self._constrained = as_tensor(terms.constrained)
        self._ratios, self._nu = as_tensor(terms.ratios), as_tensor(terms.nu)
        self._factors = factors(terms, interpolation)
        self._smooth = interpolation in ("vertical", "gollum")  # C² in α: a Hessian by differences
        self._norm0 = None if self._u is None else self._ratios @ self._u  # N_j(0)
        f = coefficients(as_tensor(self._default_poi()))
        if f.shape != (terms.n_proc,):
            raise ValueError(f"coefficients: f_j(θ) has shape {tuple(f.shape)}, expected ({terms.n_proc},)")

    def _default_poi(self) -> np.ndarray:
        """1 for parameters bounded below at 0 (signal strengths), else 0."""
        return np.array([1.0 if lo == 0 else 0.0 for lo, _ in self.coefficients.bounds])

    # ---- the likelihood -----------------------------------------------------------------
    def event_rates(self, poi: torch.Tensor, alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """S_i = ν(θ, α) p(x_i|θ, α)/p_ref(x_i) ``(n_events,)`` and ν(θ, α) (a scalar), in events.

        Args:
            poi: θ ``(n_poi,)``.
            alpha: α ``(n_syst,)``.
        """
        rows, norm = self._factors.torch(self._ratios, alpha)
        if self.spurious is not None:
            poi = self.spurious.shifted(poi, alpha[self._spurious_index])
        amplitudes = self.coefficients(poi) * self._nu * norm  # f_j ν_j Π_k G_jk
        shapes = (
            amplitudes if self._u is None else amplitudes * self._norm0 / (rows @ self._u)
        )  # · N_j(0)/N_j(α)
        return shapes @ rows, amplitudes.sum()

    def nll(self, poi: torch.Tensor | np.ndarray, alpha: torch.Tensor | np.ndarray) -> torch.Tensor:
        """−2 log L(θ, α) (module docstring), a differentiable torch scalar.

        Args:
            poi: θ ``(n_poi,)``.
            alpha: α ``(n_syst,)``.
        """
        poi, alpha = torch.as_tensor(poi, dtype=torch.float64), torch.as_tensor(alpha, dtype=torch.float64)
        if poi.shape != (self.n_poi,) or alpha.shape != (self.terms.n_syst,):
            raise ValueError(
                f"poi, alpha: expected shapes ({self.n_poi},) and ({self.terms.n_syst},) for "
                f"{list(self.parameters)}, got {tuple(poi.shape)} and {tuple(alpha.shape)}"
            )
        rates, total = self.event_rates(poi, alpha)
        log_rates = torch.log(torch.maximum(rates, self.floor * total))
        constraint = (self._constrained * (alpha - self._a) ** 2).sum()
        out = -2 * (self._w @ log_rates - total) + constraint
        if self.calibration is not None:  # p̂/R̂(θ_p) for all W events
            out = out + 2 * self._w.sum() * self.calibration.torch(poi[self.calibration.parameter])
        return out

    def _nll_vector(self, values: torch.Tensor) -> torch.Tensor:
        return self.nll(values[: self.n_poi], values[self.n_poi :])

    def _coefficients_jacobian(self, poi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """f_j(θ) ``(n_proc,)`` and ∂f_j/∂θ ``(n_poi, n_proc)``: numpy where the coefficients have it."""
        numpy_form = getattr(self.coefficients, "value_and_jacobian", None)
        if numpy_form is not None:
            return numpy_form(poi)
        theta = torch.as_tensor(np.asarray(poi, dtype=float))
        f = self.coefficients(theta).detach().numpy()
        jacobian = torch.autograd.functional.jacobian(self.coefficients, theta).numpy()  # (n_proc, n_poi)
        return f, jacobian.T

    def value_and_gradient(self, values: np.ndarray) -> tuple[float, np.ndarray]:
        """−2 log L and its exact gradient ``(n_par,)`` at ``values`` (POIs then nuisances), in numpy.

        The same function as :meth:`nll` with its derivatives written out (what MIGRAD calls; torch
        autograd of :meth:`nll` gives the same numbers and the Hessian). With
        rows_ji = r_j(x_i) Π_k g_jk(x_i, α_k), L_kji = ∂ln g_jk(x_i, α_k)/∂α_k, A_j = f_j ν_j Π_k G_jk,
        N_j = Σ_i u_i rows_ji (1 without ``normalization``), s_j = A_j N_j(0)/N_j and S_i = Σ_j s_j rows_ji:

            ∂S_i/∂f_j = (s_j/f_j) rows_ji,
            ∂S_i/∂α_k = Σ_j s_j rows_ji (∂ln G_jk/∂α_k − Σ_l u_l rows_jl L_kjl / N_j + L_kji),

        and ∂ν/∂α_k = Σ_j A_j ∂ln G_jk/∂α_k; events with S_i clipped at the floor count through ν.
        With ``interpolation="gollum"``, ln g_j = Σ_A Δ_jA α^A and L_kji = Σ_A Δ_jAi ∂α^A/∂α_k.
        A non-finite result (a g_jk = 0) falls back to torch autograd.
        """
        values = np.asarray(values, dtype=float)
        poi, alpha = values[: self.n_poi], values[self.n_poi :]
        calibration = (0.0, 0.0)
        if self.calibration is not None:  # + 2 W log R̂(θ_p), at the unshifted θ_p
            calibration = self.calibration.numpy(poi[self.calibration.parameter])
        if self.spurious is not None:  # θ'_p = θ_p + α_s Δ(θ_p)
            p, s_index = self.spurious.parameter, self._spurious_index
            delta, d_delta = self.spurious.numpy(poi[p])
            poi = poi.copy()
            poi[p] += alpha[s_index] * delta
        f, jacobian = self._coefficients_jacobian(poi)
        terms = self.terms
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            rows, G, d_log_G, logs = self._factors.numpy(terms.ratios, alpha)
            base = terms.nu * G  # ∂A_j/∂f_j
            amplitudes = f * base
            if self._u is None:
                scale = np.ones(terms.n_proc)
            else:
                u = self._u.numpy()
                norms = rows @ u
                scale = self._norm0.numpy() / norms
            shapes = amplitudes * scale
            rates = shapes @ rows
            total = amplitudes.sum()
            floor = self.floor * total
            clipped = rates < floor
            w = self._w_numpy
            log_rates = np.log(np.where(clipped, floor, rates))
            a, constrained = self.global_observables, self._constrained.numpy()
            value = -2 * (w @ log_rates - total) + float((constrained * (alpha - a) ** 2).sum())
            v = np.where(clipped, 0.0, w / np.where(clipped, 1.0, rates))  # ∂(Σ w ln S)/∂S_i
            outside = float(w[clipped].sum()) / total - 1.0  # clipped events and −ν: per unit ∂ν
            projected = rows @ v  # Σ_i v_i rows_ji
            grad_f = base * scale * projected + outside * base
            grad_alpha = outside * (d_log_G @ amplitudes) + (d_log_G * shapes * projected).sum(axis=1)
            for k, where, log_derivative in logs:
                weighted = rows[where] * log_derivative  # rows_ji L_kji (touched processes)
                sums = weighted @ (np.stack([v, u], axis=1) if self._u is not None else v[:, None])
                grad_alpha[k] += shapes[where] @ sums[:, 0]
                if self._u is not None:
                    grad_alpha[k] -= (shapes[where] * sums[:, 1] / norms[where]) @ projected[where]
            grad_poi = jacobian @ grad_f
            if self.spurious is not None:  # ∂θ'_p/∂θ_p = 1 + α_s Δ'(θ_p), ∂θ'_p/∂α_s = Δ(θ_p)
                grad_alpha[s_index] += delta * grad_poi[p]
                grad_poi[p] *= 1 + alpha[s_index] * d_delta
            gradient = -2 * np.concatenate([grad_poi, grad_alpha])
            gradient[self.n_poi :] += 2 * constrained * (alpha - a)
            if self.calibration is not None:
                events = float(w.sum())
                value += 2 * events * calibration[0]
                gradient[self.calibration.parameter] += 2 * events * calibration[1]
        if not (np.isfinite(value) and np.isfinite(gradient).all()):
            v_torch = torch.tensor(values, requires_grad=True)
            value_torch = self._nll_vector(v_torch)
            (grad,) = torch.autograd.grad(value_torch, v_torch)
            return value_torch.item(), grad.numpy()
        return float(value), gradient

    # ---- minimisation -------------------------------------------------------------------
    def _setup(
        self,
        fixed_poi: np.ndarray | float | None,
        start: np.ndarray | None,
        fixed_alpha: Mapping[str, float] | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(start values ``(n_par,)``, fixed mask ``(n_par,)``)."""
        n_par = len(self.parameters)
        values = np.concatenate([self._default_poi(), self.global_observables]) if start is None else (
            np.array(start, dtype=float).reshape(-1)
        )  # fmt: skip
        if values.shape != (n_par,):
            raise ValueError(
                f"start: expected shape ({n_par},) for {list(self.parameters)}, got {values.shape}"
            )
        fixed = np.zeros(n_par, dtype=bool)
        if fixed_poi is not None:
            poi = np.array(fixed_poi, dtype=float).reshape(-1)
            if poi.shape != (self.n_poi,):
                raise ValueError(
                    f"fixed_poi: expected shape ({self.n_poi},) for {list(self.parameters[: self.n_poi])}, "
                    f"got {poi.shape}"
                )
            values[: self.n_poi], fixed[: self.n_poi] = poi, True
        for name, value in (fixed_alpha or {}).items():
            if name not in self.terms.names:
                raise ValueError(
                    f"fixed_alpha: unknown nuisance {name!r}; valid names are {list(self.terms.names)}"
                )
            i = self.parameters.index(name)
            values[i], fixed[i] = float(value), True
        return values, fixed

    def _minimize(self, values: np.ndarray, fixed: np.ndarray) -> tuple[np.ndarray, float, bool, int]:
        """MIGRAD from ``values`` with ``fixed`` parameters held: (values, −2 log L, valid, calls)."""
        if fixed.all():
            return values.copy(), float(self._nll_vector(torch.as_tensor(values))), True, 1
        cache: dict[bytes, tuple[float, np.ndarray]] = {}

        def evaluate(x: np.ndarray) -> tuple[float, np.ndarray]:
            key = np.asarray(x, dtype=float).tobytes()
            if key not in cache:
                cache.clear()
                cache[key] = self.value_and_gradient(x)
                calls[0] += 1
            return cache[key]

        calls = [0]
        m = Minuit(lambda x: evaluate(x)[0], values, grad=lambda x: evaluate(x)[1], name=self.parameters)
        m.errordef, m.strategy, m.tol = Minuit.LEAST_SQUARES, 0, self.tolerance
        m.errors = np.where(np.arange(len(values)) < self.n_poi, 0.1 * np.maximum(np.abs(values), 1), 0.5)
        for name, (lo, hi) in zip(self.parameters, self.coefficients.bounds):
            m.limits[name] = (-np.inf if lo is None else lo, np.inf if hi is None else hi)
        for i in np.flatnonzero(fixed):
            m.fixed[i] = True
        m.migrad()
        return np.array(m.values), float(m.fval), bool(m.valid), calls[0]

    def hessian(self, values: np.ndarray) -> np.ndarray:
        """∂²λ/∂p∂p of λ = −2 log L at ``values (n_par,)``, ``(n_par, n_par)``.

        Under the ``vertical`` and ``gollum`` interpolations (twice differentiable in α): central
        differences of the exact gradient (:meth:`value_and_gradient`), steps :data:`HESSIAN_STEP` ×
        max(1, |p|), 2 n_par gradients, error O(step²) (5e-9 relative to torch autograd's Hessian on
        the off-shell search, which took 10× longer). Torch autograd for ``exponential`` and
        ``linear`` (their slope jumps at α = 0, where autograd takes one side), where a step would
        cross a parameter's bound, or where the differences are not finite and symmetric.
        """
        values = np.asarray(values, dtype=float)
        point = torch.as_tensor(values)
        if not self._smooth:
            return torch.autograd.functional.hessian(self._nll_vector, point).numpy()
        steps = HESSIAN_STEP * np.maximum(1.0, np.abs(values))
        lows = np.array([-np.inf] * len(values))
        highs = np.array([np.inf] * len(values))
        for k, (lo, hi) in enumerate(self.coefficients.bounds):
            lows[k] = -np.inf if lo is None else lo
            highs[k] = np.inf if hi is None else hi
        if np.all(values - steps > lows) and np.all(values + steps < highs):
            shifts = np.diag(steps)
            up = np.array([self.value_and_gradient(values + d)[1] for d in shifts])
            down = np.array([self.value_and_gradient(values - d)[1] for d in shifts])
            h = (up - down) / (2 * steps[:, None])
            if np.isfinite(h).all() and np.abs(h - h.T).max() <= 1e-5 * np.abs(h).max():
                return (h + h.T) / 2
        return torch.autograd.functional.hessian(self._nll_vector, point).numpy()

    def _covariance(self, values: np.ndarray, fixed: np.ndarray) -> tuple[np.ndarray, bool]:
        free = np.flatnonzero(~fixed)
        cov = np.zeros((len(values), len(values)))
        if not len(free):
            return cov, True
        h = self.hessian(values)[np.ix_(free, free)]  # the free parameters' block: the others held
        if not np.isfinite(h).all() or np.linalg.eigvalsh(h).min() <= 0:
            cov[np.ix_(free, free)] = np.nan
            return cov, False
        cov[np.ix_(free, free)] = np.linalg.inv(h / 2)  # C = [½ ∂²λ]⁻¹ (seed 003)
        return cov, True

    def fit(
        self,
        fixed_poi: np.ndarray | float | None = None,
        start: np.ndarray | None = None,
        *,
        fixed_alpha: Mapping[str, float] | None = None,
        covariance: bool = True,
    ) -> FitResult:
        """Minimise −2 log L over the free parameters.

        Args:
            fixed_poi: θ ``(n_poi,)`` to hold fixed (a conditional fit), or None to fit it.
            start: start values ``(n_par,)`` (POIs then nuisances); default θ = 1 for signal
                strengths (0 otherwise) and α = a.
            fixed_alpha: {nuisance name: value} held fixed; all nuisances (:meth:`FitResult.nuisances`):
                a stat-only fit; one: seed 003's "systematic fixed" table.
            covariance: compute the Hessian covariance; False (toys that need only the minimum):
                NaN covariance, ``valid`` from MIGRAD alone.

        Returns:
            :class:`FitResult` with the Hessian covariance.

        Raises:
            ValueError: wrong shapes or unknown nuisance names.
        """
        values, fixed = self._setup(fixed_poi, start, fixed_alpha)
        best, fval, valid, calls = self._minimize(values, fixed)
        skipped = (np.full((len(best), len(best)), np.nan), True)
        cov, posdef = self._covariance(best, fixed) if covariance else skipped
        return FitResult(
            self.parameters, self.n_poi, best, fval, cov, valid and posdef,
            tuple(n for n, f in zip(self.parameters, fixed) if f), calls,
        )  # fmt: skip

    def scan(
        self,
        values: np.ndarray,
        *,
        parameter: str | None = None,
        fixed_alpha: Mapping[str, float] | None = None,
        fit: FitResult | None = None,
        reference: float | None = None,
    ) -> Scan:
        """Profiled −2 log λ(p) = −2 log L(p, other p̂̂) + 2 log L(all p̂) at each value of one parameter.

        The others are re-fitted at every point, warm-started from the neighbouring point.

        Args:
            values: the scanned values ``(n_values,)``.
            parameter: a POI or nuisance name; default the first POI.
            fixed_alpha: nuisances held fixed in the scan and in the global fit.
            fit: the global fit with the same ``fixed_alpha``, if already done.
            reference: the −2 log L subtracted (default: the lower of the global fit's and the
                scan's minimum, so the scan is ≥ 0).

        Returns:
            :class:`~assay.inference.likelihood.Scan`, ``theta (n_values, 1)``; ``mle`` the global
            best fit (or the best scanned point, if lower).
        """
        name = self.parameters[0] if parameter is None else parameter
        if name not in self.parameters:
            raise ValueError(f"parameter: unknown name {name!r}; valid names are {list(self.parameters)}")
        i = self.parameters.index(name)
        points = np.asarray(values, dtype=float).reshape(-1)
        best = self.fit(fixed_alpha=fixed_alpha, covariance=False) if fit is None else fit
        start, fixed = self._setup(None, best.values, fixed_alpha)
        fixed[i] = True
        order = np.argsort(points)
        first = int(np.argmin(np.abs(points[order] - best.values[i])))
        out = np.empty(len(points))
        for walk in (order[first:], order[:first][::-1]):
            current = start.copy()
            for j in walk:
                current[i] = points[j]
                current, out[j], _, _ = self._minimize(current, fixed)
        lowest = min(best.minus_2_log_l, float(out.min()))
        mle = best.values[i] if best.minus_2_log_l <= out.min() else points[int(np.argmin(out))]
        return Scan(points[:, None], out - (lowest if reference is None else reference), np.array([mle]))

    # ---- pulls and impacts --------------------------------------------------------------
    def pulls(self, fit: FitResult, reference: np.ndarray | None = None) -> np.ndarray:
        """(α̂_k − α_k⁰)/√C_kk ``(n_syst,)`` (seed 003); NaN for fixed or unconstrained nuisances.

        Args:
            fit: a fit of this likelihood.
            reference: α⁰ ``(n_syst,)``; default the global observables a (0 for data; in toys with
                randomised a, pass the true α to get pulls ~ N(0, 1)).
        """
        ref = self.global_observables if reference is None else np.asarray(reference, dtype=float)
        sigma = fit.errors[self.n_poi :]
        usable = (sigma > 0) & np.array(self.terms.constrained)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(usable, (fit.alpha_hat - ref) / sigma, np.nan)

    def impacts(self, fit: FitResult, *, parameter: str | None = None) -> Impacts:
        """Impact of each nuisance on one POI: seed 003's Hessian formula, the covariance and ± 1σ refits.

        Args:
            fit: a fit of this likelihood (its fixed parameters stay fixed in the refits).
            parameter: the POI; default the first.

        Returns:
            :class:`Impacts`; fixed nuisances get 0.
        """
        name = self.parameters[0] if parameter is None else parameter
        if name not in self.parameters[: self.n_poi]:
            raise ValueError(
                f"parameter: expected a POI in {list(self.parameters[: self.n_poi])}, got {name!r}"
            )
        i = self.parameters.index(name)
        h = self.hessian(fit.values)
        sigma = fit.errors[self.n_poi :]
        hessian = -h[i, self.n_poi :] / h[i, i] * sigma
        fixed = np.isin(self.parameters, fit.fixed)
        shifts = np.zeros((2, self.terms.n_syst))
        for k in np.flatnonzero(sigma > 0):
            for side, sign in enumerate((1.0, -1.0)):
                values = fit.values.copy()
                values[self.n_poi + k] += sign * sigma[k]
                held = fixed.copy()
                held[self.n_poi + k] = True
                shifts[side, k] = self._minimize(values, held)[0][i] - fit.values[i]
        used = sigma > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            profiled = np.where(used, fit.covariance[i, self.n_poi :] / sigma, 0.0)
        return Impacts(name, self.terms.names, np.where(used, hessian, 0.0), profiled, shifts[0], shifts[1])


def asimov_weights(
    terms: Terms,
    coefficients: Coefficients,
    poi: np.ndarray,
    alpha: np.ndarray,
    *,
    interpolation: str = "vertical",
    normalization: np.ndarray | None = None,
) -> np.ndarray:
    """Asimov weights w_i ∝ p(x_i|θ, α)/p_ref(x_i) with Σ_i w_i = ν(θ, α), for events drawn from p_ref.

    Args:
        terms: the events' terms.
        coefficients: f_j(θ).
        poi: θ_true ``(n_poi,)``.
        alpha: α_true ``(n_syst,)``.
        interpolation, normalization: as in :class:`ProfileLikelihood`.

    Returns:
        ``(n_events,)`` in events.
    """
    model = ProfileLikelihood(
        terms, None, coefficients, interpolation=interpolation, normalization=normalization
    )
    with torch.no_grad():
        rates, total = model.event_rates(
            torch.as_tensor(np.asarray(poi, dtype=float)), torch.as_tensor(np.asarray(alpha, dtype=float))
        )
    rates = rates.numpy()
    return rates * (float(total) / rates.sum())
