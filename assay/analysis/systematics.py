"""Per-event (or per-bin) terms of the profiled likelihood of seed 003, from a run's events.

With nuisances α_k (``config.systematics``), seed 003 writes

    p(x|μ, α)/p_ref(x) = Σ_j f_j(μ) ν_j r_j(x) Π_k G_jk(α_k) g_jk(x, α_k) / ν(μ, α),

G_jk = ν_j(α_k)/ν_j the rate and g_jk = p_j(x|α_k)/p_j(x) the shape of process j under nuisance k,
interpolated between their values at α_k = ±1. Here everything at α = ±1 follows from weights:
the simulator's variations are exact per-event, per-component weight factors F_c^±(x)
(:mod:`assay.simulators.offshell_systematics`), a normalisation uncertainty u is F_c^± = (1 + u)^±1
on its components, and the benchmark weights at α = ±1 are W_k^±(x) = Σ_c a_kc F_c^±(x) w_c(x) with
a_kc the components' coefficients at benchmark k (μ_k, √μ_k, 1, 1 for S, I, B_gg, B_qq).

:func:`process_terms` turns nominal and varied process weights of "events" into r_j, ν_j, G and g
(:class:`~assay.inference.profile_terms.ProfileTerms`);
the events are the Asimov events (exact terms: the truth), or histogram bins (their summed
weights: a binned likelihood), or the Asimov events with r_j from a trained mixture model.

GOLLUM's form (``interpolation: gollum``, :mod:`assay.inference.log_polynomial`) also needs the
weights at the pairwise points (α_k, α_l) = (±1, ±1): :func:`point_weights` takes them as the product
of the two nuisances' factors on each component, W_j(α) = Σ_c m_jc w_c Π_k (F_c^{sign α_k})^{|α_k|}
(independent effects; a process that mixes components then has log-ratio cross terms), and
:func:`log_polynomial_terms` fits the coefficients of log g_j and log G_j in closed form.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from assay.config import NuisanceConfig
from assay.inference.log_polynomial import LogPolynomialTerms
from assay.inference.profile_terms import ProfileTerms
from assay.monomials import least_squares

__all__ = [
    "SHAPE_FLOOR", "component_factors", "log_polynomial_terms", "point_weights", "process_terms",
    "varied_benchmark_weights",
]  # fmt: skip

SHAPE_FLOOR = 1e-6  # g at ±1 where a variation empties an event (a lepton pair below the model's m_ℓℓ)


def component_factors(
    nuisances: Sequence[NuisanceConfig],
    variations: np.ndarray | None,
    variation_names: Sequence[str],
    component_names: Sequence[str],
    n_events: int,
) -> np.ndarray:
    """F_c^± per event, nuisance and component ``(n_events, n_syst, 2, n_components)``.

    Args:
        nuisances: the config's nuisances, in order.
        variations: the simulator's factors ``(n_events, n_var, 2, n_components)`` for
            ``variation_names`` (None when no nuisance needs one).
        variation_names: the names of the stored variations, in order.
        component_names: the simulator's components (``S, I, B_gg, B_qq``).
        n_events: number of events.

    Raises:
        ValueError: a nuisance whose variation is not stored, or an unknown component name.
    """
    out = np.ones((n_events, len(nuisances), 2, len(component_names)))
    for k, n in enumerate(nuisances):
        if n.is_normalisation:
            chosen = n.components or list(component_names)
            unknown = [c for c in chosen if c not in component_names]
            if unknown:
                raise ValueError(
                    f"systematics.nuisances[{k}].components: unknown {unknown}; the simulator's components "
                    f"are {list(component_names)}"
                )
            columns = [list(component_names).index(c) for c in chosen]
            out[:, k, 0, columns] = 1.0 + n.normalisation
            gaussian = n.constraint == "gaussian"  # linear 1 + u α; log-normal (1 + u)^α
            out[:, k, 1, columns] = 1.0 - n.normalisation if gaussian else 1.0 / (1.0 + n.normalisation)
            continue
        name = n.simulator_variation
        if variations is None or name not in variation_names:
            raise ValueError(
                f"systematics.nuisances[{k}]: variation {name!r} is not in the events (they hold "
                f"{list(variation_names)}); rerun `assay run CONFIG` to generate it"
            )
        out[:, k] = variations[:, list(variation_names).index(name)]
    return out


def varied_benchmark_weights(
    components: np.ndarray, factors: np.ndarray, coefficients: np.ndarray
) -> np.ndarray:
    """W_k^± = Σ_c a_kc F_c^± w_c, ``(n_events, n_syst, 2, n_benchmarks)``.

    Args:
        components: w_c per event ``(n_events, n_components)`` (pb).
        factors: F_c^± ``(n_events, n_syst, 2, n_components)``.
        coefficients: a_kc ``(n_benchmarks, n_components)``: W_k = Σ_c a_kc w_c.
    """
    return np.einsum("nsvc,kc->nsvk", factors * components[:, None, None, :], coefficients)


def process_terms(
    nominal: np.ndarray,
    varied: np.ndarray,
    names: Sequence[str],
    *,
    to_events: float = 1.0,
    reference: np.ndarray | None = None,
    ratios: np.ndarray | None = None,
) -> ProfileTerms:
    """r_j, ν_j, G_jk and g_jk from process weights of "events" (events or bins).

    Args:
        nominal: W_j per event ``(n_events, n_proc)``, > 0 where events have weight.
        varied: W_j at α_k = ±1 ``(n_events, n_syst, 2, n_proc)``.
        names: the nuisances.
        to_events: ν_j in expected events per unit of the weights (L · 1000 · the sample's scale).
        reference: W_ref per event ``(n_events,)``; default the sum of the processes.
        ratios: r̂_j ``(n_proc, n_events)`` to use instead of the exact ones (a trained model); they
            are normalised so that E_ref[r̂_j] = 1 on the events weighted by W_ref (a classifier's r̂_j
            can be off by a few per cent in scale, which ν_j ~ 10⁴ events would turn into a shift of
            hundreds in −2 log L; the exact r_j satisfy it already).

    Returns:
        :class:`~assay.inference.profile_terms.ProfileTerms`: g_jk = (W_j^±/ν_j^±)/(W_j/ν_j) (at least
        :data:`SHAPE_FLOOR`), G_jk = ν_j^±/ν_j and r_j = (W_j/ν_j)/(W_ref/ν_ref).

    Raises:
        ValueError: a process or variation with Σ W ≤ 0, or a negative varied/nominal ratio.
    """
    nominal, varied = np.asarray(nominal, dtype=float), np.asarray(varied, dtype=float)
    nu = nominal.sum(axis=0)
    nu_varied = varied.sum(axis=0)  # (n_syst, 2, n_proc)
    if np.any(nu <= 0) or np.any(nu_varied <= 0):
        raise ValueError("process_terms: every process needs Σ W > 0, nominal and varied")
    ref = nominal.sum(axis=1) if reference is None else np.asarray(reference, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        shape = (varied / nu_varied) / (nominal / nu)[:, None, None, :]  # (n, n_syst, 2, n_proc)
    shape = np.where(np.isfinite(shape), shape, 1.0)  # a process without weight at x: no shape effect
    if np.any(shape < 0):
        raise ValueError("process_terms: a varied weight has the opposite sign of the nominal one")
    g = np.maximum(np.transpose(shape, (1, 2, 3, 0)), SHAPE_FLOOR)  # (n_syst, 2, n_proc, n_events)
    if ratios is None:
        with np.errstate(divide="ignore", invalid="ignore"):
            r = (nominal / nu).T / (ref / ref.sum())
    else:
        r = np.asarray(ratios, dtype=float)
        r = r / (r @ ref / ref.sum())[:, None]
    norm = nu_varied / nu  # (n_syst, 2, n_proc)
    return ProfileTerms(
        ratios=np.maximum(r, 0.0), nu=nu * to_events, shape_up=g[:, 0], shape_down=g[:, 1],
        norm_up=norm[:, 0], norm_down=norm[:, 1], names=tuple(names),
    )  # fmt: skip


def point_weights(
    components: np.ndarray, factors: np.ndarray, mixing: np.ndarray, points: np.ndarray
) -> np.ndarray:
    """Process weights at variation points α ∈ {−1, 0, 1}^K: W_j(α) = Σ_c m_jc w_c Π_k F_c^{sign α_k}.

    Args:
        components: w_c per event ``(n_events, n_components)`` (pb).
        factors: F_c^± ``(n_events, n_syst, 2, n_components)`` (:func:`component_factors`).
        mixing: m_jc ``(n_proc, n_components)``: the nominal W_j = Σ_c m_jc w_c.
        points: α ``(n_points, n_syst)``, entries −1, 0 or 1
            (:func:`~assay.monomials.variation_points`).

    Returns:
        ``(n_events, n_points, n_proc)``.
    """
    varied = np.repeat(np.asarray(components, dtype=float)[:, None, :], len(points), axis=1)
    for k in range(points.shape[1]):
        for side, chosen in ((0, points[:, k] > 0), (1, points[:, k] < 0)):
            varied[:, chosen] *= factors[:, k, side][:, None, :]
    return varied @ np.asarray(mixing, dtype=float).T


def log_polynomial_terms(
    terms: ProfileTerms,
    nominal: np.ndarray,
    at_points: np.ndarray,
    points: np.ndarray,
    *,
    totals: tuple[np.ndarray, np.ndarray] | None = None,
) -> LogPolynomialTerms:
    """GOLLUM's coefficients of log g_j and log G_j, fitted in closed form to the variation points.

    Per event and process, log g_j(x, α_p) = log[(W_j(α_p)/ν_j(α_p))/(W_j/ν_j)] (at least
    :data:`SHAPE_FLOOR`, 1 where the process has no weight) at every point p, and
    Δ_jA(x) = Σ_p L_Ap log g_j(x, α_p) with L = (XᵀX)⁻¹Xᵀ, X_pA = α_p^A
    (:func:`~assay.monomials.least_squares`); c_jA the same from log ν_j(α_p)/ν_j.

    Args:
        terms: :func:`process_terms` of the same events (r_j, ν_j, names, processes).
        nominal: W_j per event ``(n_events, n_proc)``.
        at_points: W_j at the points ``(n_events, n_points, n_proc)`` (:func:`point_weights`).
        points: the points α_p ``(n_points, n_syst)``.
        totals: (ν_j ``(n_proc,)``, ν_j(α_p) ``(n_points, n_proc)``) in the units of the weights, when
            the events are a slice of the sample; default their sums over these events.

    Returns:
        :class:`~assay.inference.log_polynomial.LogPolynomialTerms` (ratios, ν_j and names of ``terms``).

    Raises:
        ValueError: a varied weight of the opposite sign of the nominal one, or ν_j(α_p) ≤ 0.
    """
    nominal, at_points = np.asarray(nominal, dtype=float), np.asarray(at_points, dtype=float)
    nu, nu_points = (nominal.sum(axis=0), at_points.sum(axis=0)) if totals is None else totals
    if np.any(nu_points <= 0):
        raise ValueError("log_polynomial_terms: every process needs Σ W > 0 at every variation point")
    with np.errstate(divide="ignore", invalid="ignore"):
        shape = (at_points / nu_points) / (nominal / nu)[:, None, :]  # (n, n_points, n_proc)
    shape = np.where(np.isfinite(shape), shape, 1.0)
    if np.any(shape < 0):
        raise ValueError("log_polynomial_terms: a varied weight has the opposite sign of the nominal one")
    fit = least_squares(points)  # (n_mono, n_points)
    log_g = np.log(np.maximum(shape, SHAPE_FLOOR))
    coefficients = np.einsum("ap,npj->ajn", fit, log_g)  # (n_mono, n_proc, n_events)
    norm = fit @ np.log(nu_points / nu)
    return LogPolynomialTerms(terms.ratios, terms.nu, coefficients, norm, terms.names, terms.constrained,
                              terms.processes)  # fmt: skip
