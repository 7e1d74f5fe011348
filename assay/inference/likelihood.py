"""Extended likelihood scans over a θ grid (seed 000 "Additional formulas", "Setting Limits").

The full likelihood of a data set of N events is (seed 000 "Additional formulas")

    p_full({x_i}|θ) = Pois(N | L σ(θ)) Π_i p(x_i|θ),

and dividing every p(x_i|θ) by p(x_i|θ_ref) (a θ-independent constant) gives the statistic
used for limits (seed 000 "Setting Limits"):

    −2 log λ(θ) = −2 [log Pois(N | L σ(θ)) + Σ_i w_i log r̂(x_i|θ, θ_ref)]  −  min over the scanned θ.

- observed: unweighted events, w_i = 1, N = n_events;
- expected (Asimov, seed 000 "Asymptotic limits in Madminer"): events weighted at θ_true with
  w_i = L · w_i^pb, rescaled so that Σ_i w_i = N = L σ(θ_true);
- rate only: the Poisson term alone.

Units: σ in pb, L in fb⁻¹, so N = L σ · 1000 (:data:`PB_TO_FB`). log r̂ comes as an array
``(n_theta, n_events)`` or as a callable ``θ (n, n_params) → (n, n_events)`` evaluated in chunks of
θ (memory ∝ chunk × n_events), e.g. :func:`log_ratio_function` around a fitted ratio estimator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import special

from assay.estimators.prediction import Predictor, check_predicts

__all__ = [
    "PB_TO_FB",
    "Scan",
    "check_luminosity",
    "cross_sections",
    "expected_events",
    "expected_scan",
    "log_ratio_function",
    "observed_scan",
    "poisson_log_likelihood",
    "rate_only_scan",
    "weighted_log_ratio_sum",
]

PB_TO_FB = 1000.0  # 1 pb = 1000 fb: N = L[fb⁻¹] · σ[pb] · 1000

LogRatio = np.ndarray | Callable[[np.ndarray], np.ndarray]
CrossSection = np.ndarray | Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class Scan:
    """−2 Δlog L on a set of θ points.

    Attributes:
        theta: scanned points ``(n_theta, n_params)``.
        minus_2_delta_log_l: −2 (log L(θ) − max over the scan), ``(n_theta,)``; 0 at ``mle``,
            +inf where L(θ) = 0.
        mle: the scanned point with the largest likelihood ``(n_params,)`` (grid maximum; the
            interpolated best fit is in :class:`assay.inference.asymptotic.LimitResult`).
    """

    theta: np.ndarray
    minus_2_delta_log_l: np.ndarray
    mle: np.ndarray

    def __post_init__(self) -> None:
        theta = np.atleast_2d(np.array(self.theta, dtype=float))  # copies: frozen without touching the inputs
        q = np.array(self.minus_2_delta_log_l, dtype=float)
        if theta.ndim != 2 or q.shape != (len(theta),):
            raise ValueError(
                f"minus_2_delta_log_l: expected shape ({len(theta)},) matching theta {theta.shape}, "
                f"got {q.shape}"
            )
        mle = np.array(self.mle, dtype=float).reshape(-1)
        if mle.shape != (theta.shape[1],):
            raise ValueError(f"mle: expected shape ({theta.shape[1]},), got {np.shape(self.mle)}")
        for name, value in (("theta", theta), ("minus_2_delta_log_l", q), ("mle", mle)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    @property
    def n_params(self) -> int:
        return self.theta.shape[1]

    @classmethod
    def from_log_likelihood(cls, theta: np.ndarray, log_l: np.ndarray) -> Scan:
        """Scan from log L(θ) ``(n_theta,)`` (any θ-independent offset) at ``theta (n_theta, n_params)``.

        Raises:
            ValueError: NaN in ``log_l`` or L(θ) = 0 everywhere.
        """
        log_l = np.asarray(log_l, dtype=float)
        if np.isnan(log_l).any() or not np.isfinite(log_l).any():
            raise ValueError(
                f"log likelihood: expected finite values, got {np.isnan(log_l).sum()} NaN and "
                f"{np.isfinite(log_l).sum()} finite of {log_l.size}; check log_r and the cross sections"
            )
        best = int(np.argmax(log_l))
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        return cls(theta, -2.0 * (log_l - log_l[best]), theta[best])


def check_luminosity(luminosity: float) -> float:
    """``luminosity`` in fb⁻¹ as a float; ValueError unless finite and > 0."""
    lumi = float(luminosity)
    if not np.isfinite(lumi) or lumi <= 0:
        raise ValueError(f"luminosity: expected a finite value > 0 in fb^-1, got {luminosity}")
    return lumi


def cross_sections(cross_section: CrossSection, theta: np.ndarray) -> np.ndarray:
    """σ(θ) in pb at every θ, validated.

    Args:
        cross_section: ``(n_theta,)`` in pb, or a callable ``θ (n_theta, n_params) → (n_theta,)``
            such as ``JointQuantities.cross_section`` or ``GaussianToy.cross_section``.
        theta: ``(n_theta, n_params)``.

    Returns:
        ``(n_theta,)`` in pb.

    Raises:
        ValueError: wrong shape, or σ ≤ 0 / non-finite anywhere (names the first bad θ).
    """
    xs = np.asarray(cross_section(theta) if callable(cross_section) else cross_section, dtype=float)
    if xs.shape != (len(theta),):
        raise ValueError(f"cross_section: expected shape ({len(theta)},) (one σ per θ), got {xs.shape}")
    bad = ~(np.isfinite(xs) & (xs > 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"cross_section: expected finite σ > 0 in pb, got {xs[i]} at theta={theta[i].tolist()} "
            f"({bad.sum()} bad of {len(xs)}); a negative morphed σ means θ lies outside the morphing range"
        )
    return xs


def expected_events(cross_section: np.ndarray | float, luminosity: float) -> np.ndarray:
    """N = L σ · 1000 for σ in pb and L in fb⁻¹.

    Example:
        >>> float(expected_events(0.05, 300.0))
        15000.0
    """
    return np.asarray(cross_section, dtype=float) * check_luminosity(luminosity) * PB_TO_FB


def poisson_log_likelihood(n_observed: float, cross_section: np.ndarray, luminosity: float) -> np.ndarray:
    """log Pois(N | L σ(θ)) = N log λ − λ − log Γ(N + 1), λ = L σ · 1000 (N may be non-integer: Asimov).

    Args:
        n_observed: N, observed or expected number of events (≥ 0).
        cross_section: σ(θ) ``(n_theta,)`` in pb.
        luminosity: L in fb⁻¹.

    Returns:
        ``(n_theta,)``.
    """
    n = float(n_observed)
    if not np.isfinite(n) or n < 0:
        raise ValueError(f"n_observed: expected a finite number of events >= 0, got {n_observed}")
    lam = expected_events(cross_section, luminosity)
    return special.xlogy(n, lam) - lam - special.gammaln(n + 1.0)


def weighted_log_ratio_sum(
    log_r: LogRatio, theta: np.ndarray, weights: np.ndarray | None = None, *, theta_chunk: int = 32
) -> np.ndarray:
    """Σ_i w_i log r̂(x_i|θ, θ_ref) for every θ.

    Args:
        log_r: ``(n_theta, n_events)`` or a callable ``θ (n, n_params) → (n, n_events)``.
        theta: ``(n_theta, n_params)``.
        weights: w_i ``(n_events,)``; None for unweighted events (w_i = 1).
        theta_chunk: θ points per call of a callable ``log_r``.

    Returns:
        ``(n_theta,)``.

    Raises:
        ValueError: shapes do not match, or ``log_r`` contains NaN.
    """
    if not callable(log_r):
        return _weighted_sum(np.asarray(log_r, dtype=float), len(theta), weights, "log_r")
    out = np.empty(len(theta))
    for start in range(0, len(theta), max(1, int(theta_chunk))):
        block = theta[start : start + max(1, int(theta_chunk))]
        values = np.asarray(log_r(block), dtype=float)
        out[start : start + len(block)] = _weighted_sum(values, len(block), weights, "log_r(theta)")
    return out


def _weighted_sum(values: np.ndarray, n_theta: int, weights: np.ndarray | None, name: str) -> np.ndarray:
    if values.ndim != 2 or len(values) != n_theta:
        raise ValueError(f"{name}: expected shape ({n_theta}, n_events) (one row per θ), got {values.shape}")
    if np.isnan(values).any():
        raise ValueError(f"{name}: contains {np.isnan(values).sum()} NaN values")
    if weights is None:
        return values.sum(axis=1)
    if weights.shape != (values.shape[1],):
        raise ValueError(f"weights: expected shape ({values.shape[1]},) (one per event), got {weights.shape}")
    with np.errstate(invalid="ignore"):  # 0 · (−inf) for zero-weight events with r̂ = 0
        products = np.where(weights[None, :] == 0, 0.0, values * weights[None, :])
    return products.sum(axis=1)


def _prepare(theta: np.ndarray, cross_section: CrossSection, luminosity: float) -> tuple[np.ndarray, ...]:
    thetas = np.asarray(theta, dtype=float)
    if thetas.ndim != 2:
        raise ValueError(f"theta: expected shape (n_theta, n_params), got {thetas.shape}")
    check_luminosity(luminosity)
    return thetas, cross_sections(cross_section, thetas)


def expected_scan(
    theta: np.ndarray,
    log_r: LogRatio,
    weights: np.ndarray,
    cross_section: CrossSection,
    luminosity: float,
    *,
    xsec_true: float | None = None,
    theta_chunk: int = 32,
) -> Scan:
    """Expected (Asimov) −2 Δlog L from events weighted at θ_true (seed 000 "Asymptotic limits").

    Args:
        theta: scanned points ``(n_theta, n_params)``.
        log_r: log r̂(x_i|θ, θ_ref) ``(n_theta, n_events)`` or callable (see module docstring).
        weights: event weights at θ_true ``(n_events,)`` in pb.
        cross_section: σ(θ) in pb, ``(n_theta,)`` or callable.
        luminosity: L in fb⁻¹.
        xsec_true: σ(θ_true) in pb; default Σ weights. Pass it when the events are a subsample
            (test partition): the weights are rescaled so that Σ_i w_i = N = L σ(θ_true) · 1000.
        theta_chunk: θ points per call of a callable ``log_r``.

    Returns:
        :class:`Scan`.

    Raises:
        ValueError: bad shapes, luminosity ≤ 0, σ ≤ 0, or Σ weights ≤ 0.

    Example:
        >>> theta = np.linspace(-1, 1, 5)[:, None]
        >>> scan = expected_scan(theta, np.zeros((5, 3)), np.full(3, 1 / 3), 1 + theta[:, 0] ** 2, 1e-3)
        >>> scan.mle.tolist(), round(float(scan.minus_2_delta_log_l[0]), 6)
        ([0.0], 0.613706)
    """
    thetas, xs = _prepare(theta, cross_section, luminosity)
    w = np.asarray(weights, dtype=float)
    total = float(w.sum()) if w.ndim == 1 else np.nan
    if w.ndim != 1 or not (np.isfinite(total) and total > 0):
        raise ValueError(f"weights: expected (n_events,) in pb, finite sum > 0; got {w.shape}, sum {total}")
    n_true = float(expected_events(total if xsec_true is None else xsec_true, luminosity))
    if not n_true > 0:
        raise ValueError(f"xsec_true: expected σ(θ_true) > 0 in pb, got {xsec_true}")
    asimov = w * (n_true / total)  # w_i = L w_i^pb, Σ w_i = N
    kinematic = weighted_log_ratio_sum(log_r, thetas, asimov, theta_chunk=theta_chunk)
    return Scan.from_log_likelihood(thetas, poisson_log_likelihood(n_true, xs, luminosity) + kinematic)


def observed_scan(
    theta: np.ndarray,
    log_r: LogRatio,
    cross_section: CrossSection,
    luminosity: float,
    *,
    theta_chunk: int = 32,
) -> Scan:
    """Observed −2 Δlog L of unweighted events: w_i = 1, N = n_events (seed 000 "Additional formulas").

    Args:
        theta: scanned points ``(n_theta, n_params)``.
        log_r: log r̂(x_i|θ, θ_ref) of the observed events ``(n_theta, n_events)`` or callable.
        cross_section: σ(θ) in pb, ``(n_theta,)`` or callable.
        luminosity: L in fb⁻¹ of the data set.
        theta_chunk: θ points per call of a callable ``log_r``.

    Returns:
        :class:`Scan`.
    """
    thetas, xs = _prepare(theta, cross_section, luminosity)
    seen: list[int] = []  # n_events, from the first block of log r̂

    def recording(block: np.ndarray) -> np.ndarray:
        values = np.asarray(log_r(block), dtype=float)  # type: ignore[operator]
        seen.append(values.shape[-1])
        return values

    kinematic = weighted_log_ratio_sum(
        recording if callable(log_r) else log_r, thetas, None, theta_chunk=theta_chunk
    )
    n_events = seen[0] if seen else np.shape(log_r)[-1]
    return Scan.from_log_likelihood(thetas, poisson_log_likelihood(n_events, xs, luminosity) + kinematic)


def rate_only_scan(
    theta: np.ndarray, cross_section: CrossSection, luminosity: float, *, n_observed: float
) -> Scan:
    """−2 Δlog L of the event count alone, −2 log Pois(N | L σ(θ)) + const.

    Args:
        theta: ``(n_theta, n_params)``.
        cross_section: σ(θ) in pb, ``(n_theta,)`` or callable.
        luminosity: L in fb⁻¹.
        n_observed: N; for the expected (Asimov) scan pass ``expected_events(σ(θ_true), L)``.

    Returns:
        :class:`Scan`.
    """
    thetas, xs = _prepare(theta, cross_section, luminosity)
    return Scan.from_log_likelihood(thetas, poisson_log_likelihood(n_observed, xs, luminosity))


def log_ratio_function(model: Predictor, x: np.ndarray, theta_ref: np.ndarray) -> Callable:
    """log r̂(x|θ, θ_ref) of a fitted model as the callable ``log_r`` of the scans.

    Args:
        model: anything that predicts ``"log_ratio"`` (:class:`~assay.estimators.prediction.Predictor`):
            a likelihood-ratio estimator, an :class:`~assay.estimators.Ensemble` of them (the
            members' mean), a :class:`~assay.bit.BoostedInformationTree` or a SALLINO.
        x: events ``(n_events, n_obs)``.
        theta_ref: reference point ``(n_params,)``.

    Returns:
        ``θ (n, n_params) → model.log_ratio(x, θ, theta_ref).mean``, ``(n, n_events)``.

    Raises:
        PredictionError: ``model`` does not predict log r (e.g. SALLY: histogram its score instead).
    """
    check_predicts(model, "log_ratio")
    ref = np.asarray(theta_ref, dtype=float)

    def log_r(theta: np.ndarray) -> np.ndarray:
        return model.log_ratio(x, theta, ref).mean

    return log_r
