"""Fisher information of the extended likelihood: truth, SALLY, histograms, rate only.

For N ~ Pois(L σ(θ)) events with density p(x|θ) (seed 000 "Additional formulas") the Fisher
information is (arXiv:1612.05261; MadMiner, arXiv:1907.10621)

    I_ij(θ) = L Σ_events w_e t_i(x_e|θ) t_j(x_e|θ)  +  L ∂_iσ ∂_jσ / σ        (kinematic + rate)

with w_e the event weights at θ in pb (Σ w = σ) and t the score (seed 002 "Learning the score
function"). At parton level the joint score is the true score, so the joint scores give the
truth-level information; a SALLY estimate t̂ in the same formula estimates the detector-level
information (valid at the θ where SALLY was trained; an estimate, not a bound, exact only for
t̂ = t(x|θ)). A histogram with expectations ν_b(θ) has the Poisson information
(seed 002 "Learning the score function": I^(λ_j) summed over the bins)

    I_ij = Σ_b ∂_i ν_b ∂_j ν_b / ν_b,

and the rate alone I = L ∂σ ∂σᵀ / σ. Every coarse-graining loses information, so
I_rate ≤ I_hist ≤ I_truth as matrices. The expected Asimov −2Δlog L near θ is δᵀ I δ: the
1σ uncertainty is sqrt((I⁻¹)_ii) and the CL ellipse is θᵀ I θ = F⁻¹_χ²(CL | 2).
L is in fb⁻¹ and σ in pb (factor 1000).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from assay.estimators.prediction import Prediction, Predictor, check_predicts
from assay.inference.asymptotic import ONE_SIGMA, critical_value
from assay.inference.histograms import BinnedTemplates
from assay.inference.likelihood import PB_TO_FB, check_luminosity
from assay.joint import JointQuantities

__all__ = [
    "expected_uncertainties",
    "fisher_table",
    "histogram_fisher_information",
    "information_ellipse",
    "kinematic_fisher_information",
    "rate_fisher_information",
    "sally_fisher_information",
    "score_fisher_information",
    "score_values",
    "truth_fisher_information",
]


Scores = Prediction | np.ndarray
"""Per-event scores ``(n_events, n_params)``: an estimator's :class:`~assay.estimators.prediction.Prediction`
(its ``mean`` is used) or a plain array (e.g. exact joint scores)."""


def score_values(scores: Scores) -> np.ndarray:
    """The score array ``(n_events, n_params)`` of ``scores``: a Prediction's ``mean``, or the array itself.

    Example:
        >>> score_values(Prediction(np.ones((2, 1)), std=np.zeros((2, 1)))).tolist()
        [[1.0], [1.0]]
    """
    return scores.mean if isinstance(scores, Prediction) else np.asarray(scores, dtype=float)


def kinematic_fisher_information(scores: Scores, weights: np.ndarray, luminosity: float) -> np.ndarray:
    """L Σ_e w_e t_e t_eᵀ, the information in the shape of the distribution.

    Args:
        scores: t(x_e|θ) ``(n_events, n_params)``, an array or a
            :class:`~assay.estimators.prediction.Prediction` (its mean).
        weights: event weights at θ ``(n_events,)`` in pb.
        luminosity: L in fb⁻¹.

    Returns:
        ``(n_params, n_params)``.
    """
    t = score_values(scores)
    w = np.asarray(weights, dtype=float)
    if t.ndim != 2 or w.shape != (len(t),):
        raise ValueError(
            f"scores, weights: expected (n_events, n_params) and (n_events,), got {t.shape} and {w.shape}"
        )
    if not np.isfinite(t).all():
        raise ValueError(f"scores: {(~np.isfinite(t)).any(axis=1).sum()} events with non-finite scores")
    return check_luminosity(luminosity) * PB_TO_FB * np.einsum("e,ei,ej->ij", w, t, t)


def rate_fisher_information(
    cross_section: float, cross_section_gradient: np.ndarray, luminosity: float
) -> np.ndarray:
    """L ∂σ ∂σᵀ / σ, the information in the event count (rank one).

    Args:
        cross_section: σ(θ) in pb (> 0).
        cross_section_gradient: ∇θ σ ``(n_params,)`` in pb.
        luminosity: L in fb⁻¹.

    Returns:
        ``(n_params, n_params)``.

    Example:
        >>> rate_fisher_information(2.0, np.array([1.0, 0.0]), 1.0).tolist()
        [[500.0, 0.0], [0.0, 0.0]]
    """
    sigma = float(cross_section)
    grad = np.asarray(cross_section_gradient, dtype=float).reshape(-1)
    if not sigma > 0:
        raise ValueError(f"cross_section: expected σ > 0 in pb, got {cross_section}")
    return check_luminosity(luminosity) * PB_TO_FB * np.outer(grad, grad) / sigma


def score_fisher_information(
    scores: Scores,
    weights: np.ndarray,
    luminosity: float,
    cross_section_gradient: np.ndarray,
    *,
    cross_section: float | None = None,
) -> np.ndarray:
    """Kinematic + rate information from per-event scores (exact t: truth; t̂: SALLY).

    Args:
        scores: t or t̂ at θ ``(n_events, n_params)``, an array or a
            :class:`~assay.estimators.prediction.Prediction` (its mean, e.g. ``sally.score(x)``).
        weights: event weights at θ ``(n_events,)`` in pb.
        luminosity: L in fb⁻¹.
        cross_section_gradient: ∇θ σ(θ) ``(n_params,)`` in pb.
        cross_section: σ(θ) in pb; default Σ weights.

    Returns:
        ``(n_params, n_params)``.
    """
    sigma = float(np.sum(weights)) if cross_section is None else cross_section
    kinematic = kinematic_fisher_information(scores, weights, luminosity)
    grad = np.asarray(cross_section_gradient, dtype=float)
    if grad.shape != (kinematic.shape[0],):
        raise ValueError(f"cross_section_gradient: expected shape ({kinematic.shape[0]},), got {grad.shape}")
    return kinematic + rate_fisher_information(sigma, grad, luminosity)


def truth_fisher_information(
    joint: JointQuantities, benchmark_weights: np.ndarray, theta: np.ndarray, luminosity: float
) -> np.ndarray:
    """Parton-level truth information from joint scores (= true scores at parton level).

    Args:
        joint: :class:`assay.joint.JointQuantities` of the sample (its σ_k are the benchmark sums).
        benchmark_weights: ``(n_events, n_benchmarks)`` in pb, the whole sample.
        theta: ``(n_params,)``.
        luminosity: L in fb⁻¹.

    Returns:
        ``(n_params, n_params)``, equal to L Σ_e ∂w_e ∂w_eᵀ / w_e.
    """
    theta = np.asarray(theta, dtype=float)
    return score_fisher_information(
        joint.score(benchmark_weights, theta),
        joint.weights(benchmark_weights, theta),
        luminosity,
        joint.cross_section_gradient(theta),
        cross_section=float(joint.cross_section(theta)),
    )


def sally_fisher_information(
    model: Predictor,
    x: np.ndarray,
    weights: np.ndarray,
    luminosity: float,
    cross_section_gradient: np.ndarray,
    *,
    cross_section: float | None = None,
    theta: np.ndarray | None = None,
) -> np.ndarray:
    """Information of an estimated score: :func:`score_fisher_information` with ``model.score(x, theta)``.

    Args:
        model: a fitted model that predicts ``"score"``: :class:`~assay.estimators.score.SALLY`, an
            :class:`~assay.estimators.ensemble.Ensemble` of them (the members' mean t̂), a
            :class:`~assay.bit.BoostedInformationTree`, or a likelihood-ratio estimator (with ``theta``).
        x: events ``(n_events, n_obs)``.
        weights: event weights at θ ``(n_events,)`` in pb.
        luminosity: L in fb⁻¹.
        cross_section_gradient: ∇θ σ(θ) ``(n_params,)`` in pb.
        cross_section: σ(θ) in pb; default Σ weights.
        theta: θ ``(n_params,)``; None: the model's reference point (SALLY's and BIT's θ_ref).

    Returns:
        ``(n_params, n_params)``: the truth-level information when t̂ = t(x|θ_ref). For an imperfect
        t̂ it is an estimate, not a bound (a t̂ too large by 10% overstates the kinematic part by
        21%); the information of the binned t̂ (:func:`assay.inference.histograms.score_binning` +
        :func:`histogram_fisher_information`) is a true lower bound.

    Raises:
        PredictionError: ``model`` does not predict the score (at ``theta``).
    """
    check_predicts(model, "score")
    t_hat = model.score(x, theta)
    return score_fisher_information(
        t_hat, weights, luminosity, cross_section_gradient, cross_section=cross_section
    )


def histogram_fisher_information(
    templates: BinnedTemplates, theta: np.ndarray, luminosity: float
) -> np.ndarray:
    """Σ_b ∂ν_b ∂ν_bᵀ / ν_b with ν and ∂ν from morphing (bins with ν_b ≤ 0 carry none).

    Args:
        templates: :class:`assay.inference.histograms.BinnedTemplates`.
        theta: ``(n_params,)``.
        luminosity: L in fb⁻¹.

    Returns:
        ``(n_params, n_params)``.
    """
    nu = templates.expected(np.asarray(theta, dtype=float).reshape(1, -1), luminosity)[0]
    grad = templates.expected_gradient(theta, luminosity)
    filled = nu > 0
    return (grad[:, filled] / nu[filled]) @ grad[:, filled].T


def fisher_table(
    joint: JointQuantities,
    benchmark_weights: np.ndarray,
    theta: np.ndarray,
    luminosity: float,
    *,
    histograms: Mapping[str, BinnedTemplates] | None = None,
    sally_scores: Scores | None = None,
) -> dict[str, np.ndarray]:
    """Fisher information of several analyses at one θ, for comparison.

    Args:
        joint: :class:`assay.joint.JointQuantities` of the sample.
        benchmark_weights: ``(n_events, n_benchmarks)`` in pb.
        theta: ``(n_params,)``.
        luminosity: L in fb⁻¹.
        histograms: name → templates, each giving ``"histogram: <name>"``.
        sally_scores: t̂(x_e) of the same events ``(n_events, n_params)`` (array or
            :class:`~assay.estimators.prediction.Prediction`), giving ``"sally"``.

    Returns:
        name → ``(n_params, n_params)``: ``"truth"``, ``"rate"``, then the optional entries.
    """
    theta = np.asarray(theta, dtype=float)
    sigma, grad = float(joint.cross_section(theta)), joint.cross_section_gradient(theta)
    table = {
        "truth": truth_fisher_information(joint, benchmark_weights, theta, luminosity),
        "rate": rate_fisher_information(sigma, grad, luminosity),
    }
    if sally_scores is not None:
        weights = joint.weights(benchmark_weights, theta)
        sally = score_fisher_information(sally_scores, weights, luminosity, grad, cross_section=sigma)
        table["sally"] = sally
    for name, templates in (histograms or {}).items():
        table[f"histogram: {name}"] = histogram_fisher_information(templates, theta, luminosity)
    return table


def _symmetric(information: np.ndarray) -> np.ndarray:
    info = np.asarray(information, dtype=float)
    if info.ndim != 2 or info.shape[0] != info.shape[1] or not np.isfinite(info).all():
        raise ValueError(f"information: expected a finite square matrix, got shape {info.shape}")
    return 0.5 * (info + info.T)


def expected_uncertainties(information: np.ndarray, *, rtol: float = 1e-12) -> np.ndarray:
    """Expected (profiled) 1σ uncertainties sqrt((I⁻¹)_ii), the Cramér–Rao bound.

    Args:
        information: I ``(n_params, n_params)``, positive semi-definite.
        rtol: eigenvalues below ``rtol`` × the largest count as zero.

    Returns:
        ``(n_params,)``; inf for parameters touching an unconstrained direction.

    Example:
        >>> expected_uncertainties(np.diag([4.0, 0.0])).tolist()
        [0.5, inf]
    """
    values, vectors = np.linalg.eigh(_symmetric(information))
    scale = max(values.max(), 0.0)
    if values.min() < -1e-8 * scale:
        raise ValueError(f"information: expected positive semi-definite, got eigenvalues {values.tolist()}")
    keep = values > rtol * scale
    cov = (vectors[:, keep] / values[keep]) @ vectors[:, keep].T
    sigma = np.sqrt(np.diag(cov))
    sigma[np.any(np.abs(vectors[:, ~keep]) > 1e-9, axis=1)] = np.inf
    return sigma


def information_ellipse(
    information: np.ndarray,
    cl: float = ONE_SIGMA,
    *,
    center: np.ndarray | None = None,
    params: Sequence[int] = (0, 1),
    n_points: int = 200,
) -> np.ndarray:
    """Vertices of the expected CL ellipse δᵀ I δ = F⁻¹_χ²(cl | 2) of two parameters.

    Other parameters are profiled: the 2 × 2 information is ((I⁻¹)[params, params])⁻¹.

    Args:
        information: I ``(n_params, n_params)``, positive definite.
        cl: confidence level (χ² with 2 dof: 2.30 for 1σ, 5.99 for 95%).
        center: θ at the centre ``(2,)``; default 0.
        params: the two parameter indices.
        n_points: vertices; the first is repeated at the end (closed path).

    Returns:
        ``(n_points + 1, 2)``.

    Raises:
        ValueError: I (or the profiled block) is not positive definite.
    """
    info = _symmetric(information)
    idx = list(params)
    try:
        block = info[np.ix_(idx, idx)]
        if len(info) > 2:  # profile the other parameters
            block = np.linalg.inv(np.linalg.inv(info)[np.ix_(idx, idx)])
        chol = np.linalg.cholesky(_symmetric(block))
    except np.linalg.LinAlgError as err:
        raise ValueError(f"information: not positive definite, the ellipse is unbounded ({err})") from err
    angles = np.linspace(0.0, 2 * np.pi, n_points + 1)
    circle = np.stack([np.cos(angles), np.sin(angles)])
    delta = np.sqrt(critical_value(cl, 2)) * np.linalg.solve(chol.T, circle).T
    delta[-1] = delta[0]  # exactly closed
    return delta + (np.zeros(2) if center is None else np.asarray(center, dtype=float))
