"""Fisher information on the Gaussian toy (exact likelihood, conftest's 20k events at the SM).

References: near θ_true the exact Asimov −2Δlog L is δᵀ I δ (arXiv:1612.05261), checked by
the symmetric second difference [q(δ) + q(−δ)]/2 − q(0) = δᵀ I δ + O(δ⁴), which cancels the
linear term left by the finite sample; the information inequality I_rate ≤ I_hist ≤ I_truth.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from assay.estimators import ALICES, SALLY, Ensemble
from assay.estimators.prediction import Prediction, PredictorBase
from assay.exceptions import PredictionError
from assay.inference import (
    Binning,
    binned_scan,
    expected_scan,
    expected_uncertainties,
    fill_templates,
    fisher_table,
    histogram_fisher_information,
    information_ellipse,
    kinematic_fisher_information,
    rate_fisher_information,
    rate_only_scan,
    sally_fisher_information,
    score_binning,
    score_fisher_information,
    truth_fisher_information,
)
from assay.inference.fisher import score_values
from assay.joint import JointQuantities
from assay.training_set import TrainingSet

SM = np.zeros(2)
LUMI = 1.0  # fb⁻¹: σ(SM) = 2π pb → 6283 expected events
OPEN_EDGES = np.array([-np.inf, *np.linspace(-2.4, 2.4, 9), np.inf])  # every event counted
HISTOGRAMS = {
    "x0": Binning(("x0",), (OPEN_EDGES,)),
    "x0 x x1": Binning(("x0", "x1"), (OPEN_EDGES, OPEN_EDGES[::2])),  # refines "x0"
}


def psd(matrix: np.ndarray, scale: float) -> bool:
    return bool(np.linalg.eigvalsh(0.5 * (matrix + matrix.T)).min() >= -1e-9 * scale)


def second_differences(q_of, information: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[q(δ) + q(−δ)]/2 − q(0) along directions with δᵀ I δ = 1; returns (measured, expected = 1)."""
    directions = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, -1.0]])
    deltas = directions / np.sqrt(np.einsum("ni,ij,nj->n", directions, information, directions))[:, None]
    measured = []
    for d in deltas:
        q = q_of(np.array([SM, d, -d]))
        measured.append(0.5 * (q[1] + q[2]) - q[0])
    return np.array(measured), np.ones(len(deltas))


@pytest.fixture(scope="module")
def truth(toy, events) -> np.ndarray:
    """Detector-level truth: exact toy.score on the Asimov sample (SM weights) + rate term."""
    return score_fisher_information(
        toy.score(events.x, SM), events.weights[:, 0], LUMI, toy.cross_section_gradient(SM),
        cross_section=toy.cross_section(SM),
    )  # fmt: skip


@pytest.fixture(scope="module")
def joint(morpher, events) -> JointQuantities:
    return JointQuantities(morpher, events.weights.sum(axis=0))


def test_truth_fisher_matches_exact_asimov_curvature(toy, events, truth):
    def q_of(theta):
        log_r = toy.log_likelihood(events.x, theta).T  # log p(x|θ): θ_ref drops out
        scan = expected_scan(theta, log_r, events.weights[:, 0], toy.cross_section, LUMI,
                             xsec_true=toy.cross_section(SM))  # fmt: skip
        return scan.minus_2_delta_log_l

    measured, expected = second_differences(q_of, truth)
    np.testing.assert_allclose(measured, expected, rtol=0.03)  # 20k-event information identity: ~1.6%


def test_information_ordering(truth, joint, events, morpher):
    rate = rate_fisher_information(joint.cross_section(SM), joint.cross_section_gradient(SM), LUMI)
    scale = np.abs(truth).max()
    assert psd(truth - rate, scale)
    parton = truth_fisher_information(joint, events.weights, SM, LUMI)
    for binning in HISTOGRAMS.values():
        templates = fill_templates(events.x[:, : len(binning.edges)], events.weights, binning, morpher)
        hist = histogram_fisher_information(templates, SM, LUMI)
        assert psd(truth - hist, scale) and psd(parton - hist, scale) and psd(hist - rate, scale)
    fine = fill_templates(events.x, events.weights, HISTOGRAMS["x0 x x1"], morpher)
    coarse = fill_templates(events.x[:, :1], events.weights, HISTOGRAMS["x0"], morpher)
    assert psd(
        histogram_fisher_information(fine, SM, LUMI) - histogram_fisher_information(coarse, SM, LUMI), 1
    )


def test_parton_truth_is_sum_of_squared_weight_gradients(joint, events, morpher):
    """Kinematic + rate decomposition: L Σ w t tᵀ + L ∇σ∇σᵀ/σ = L Σ ∂w ∂wᵀ / w (exact algebra)."""
    for theta in (SM, np.array([0.3, -0.4])):
        w = events.weights @ morpher.morphing_weights(theta)
        dw = events.weights @ morpher.morphing_weight_gradients(theta).T
        reference = 1000 * LUMI * np.einsum("ei,ej->ij", dw / w[:, None], dw)
        np.testing.assert_allclose(
            truth_fisher_information(joint, events.weights, theta, LUMI), reference, rtol=1e-9
        )


def test_histogram_and_rate_fisher_match_their_scans(events, morpher, joint):
    templates = fill_templates(events.x, events.weights, HISTOGRAMS["x0 x x1"], morpher)
    hist = histogram_fisher_information(templates, SM, LUMI)
    data = templates.expected(SM, LUMI)
    measured, expected = second_differences(
        lambda th: binned_scan(templates, th, LUMI, data).minus_2_delta_log_l, hist
    )
    np.testing.assert_allclose(measured, expected, rtol=2e-3)  # O(δ²) corrections only
    grad = joint.cross_section_gradient(SM)
    rate = rate_fisher_information(joint.cross_section(SM), grad, LUMI)
    n_true = 1000 * LUMI * joint.cross_section(SM)
    d = grad / np.sqrt(grad @ rate @ grad)
    q = rate_only_scan(
        np.array([SM, d, -d]), joint.cross_section, LUMI, n_observed=n_true
    ).minus_2_delta_log_l
    assert 0.5 * (q[1] + q[2]) - q[0] == pytest.approx(1.0, rel=2e-3)


def test_fisher_table(joint, events, morpher):
    templates = {
        name: fill_templates(events.x[:, : len(b.edges)], events.weights, b, morpher)
        for name, b in HISTOGRAMS.items()
    }
    exact = joint.score(events.weights, SM)
    table = fisher_table(joint, events.weights, SM, LUMI, histograms=templates, sally_scores=exact)
    assert list(table) == ["truth", "rate", "sally", "histogram: x0", "histogram: x0 x x1"]
    np.testing.assert_allclose(table["sally"], table["truth"], rtol=1e-12)  # perfect SALLY = truth
    blind = fisher_table(joint, events.weights, SM, LUMI, sally_scores=np.zeros_like(exact))
    np.testing.assert_allclose(blind["sally"], blind["rate"], rtol=1e-12)  # t̂ = 0 keeps the rate only
    assert all(m.shape == (2, 2) for m in table.values())


class ExactSally(PredictorBase):
    """Stands in for a fitted SALLY: t̂(x) = scale · t(x|SM) of the toy."""

    predicts = frozenset({"score"})

    def __init__(self, toy, scale: float = 1.0):
        self.toy, self.scale = toy, scale

    def score(self, x, theta=None):
        return Prediction(self.scale * self.toy.score(x, SM))


def test_sally_fisher_with_a_perfect_and_a_partial_estimator(toy, events, truth):
    args = (events.x, events.weights[:, 0], LUMI, toy.cross_section_gradient(SM))
    kwargs = {"cross_section": toy.cross_section(SM)}
    np.testing.assert_allclose(sally_fisher_information(ExactSally(toy), *args, **kwargs), truth, rtol=1e-12)
    # a miscalibrated t̂ = 1.1 t: L Σ w t̂ t̂ᵀ is an estimate, not a bound
    kinematic = truth - rate_fisher_information(toy.cross_section(SM), toy.cross_section_gradient(SM), LUMI)
    np.testing.assert_allclose(
        sally_fisher_information(ExactSally(toy, 1.1), *args, **kwargs), truth + 0.21 * kinematic
    )


def test_scores_as_prediction_or_array(toy, events, truth):
    t = toy.score(events.x, SM)
    args = (events.weights[:, 0], LUMI, toy.cross_section_gradient(SM))
    from_prediction = score_fisher_information(Prediction(t, std=np.ones_like(t)), *args)
    np.testing.assert_array_equal(from_prediction, score_fisher_information(t, *args))
    np.testing.assert_array_equal(score_values(t), t)


def test_sally_fisher_of_an_ensemble(toy, events, truth):
    """Two SALLYs regressing the exact t(x|SM) on 4k events: the ensemble's information is that of the
    members' mean t̂. Measured: 1.9-2.6% below the truth on the diagonal (seeds 0-2); bound 10%."""
    x = events.x[:4000]
    data = TrainingSet(
        x=x, observables=("x0", "x1"), parameters=("c0", "c1"), kind="local_score",
        theta0=np.zeros((len(x), 2)), t0=toy.score(x, SM),
    )  # fmt: skip
    settings = dict(hidden=(32,), epochs=10, batch_size=128, lr=(1e-2, 1e-3), progress=False)
    ensemble = Ensemble.from_estimator(SALLY(**settings), 2).fit(data, n_workers=1, seed=0)
    args = (events.x, events.weights[:, 0], LUMI, toy.cross_section_gradient(SM))
    info = sally_fisher_information(ensemble, *args)
    np.testing.assert_array_equal(info, score_fisher_information(ensemble.score(events.x).mean, *args[1:]))
    np.testing.assert_allclose(np.diag(info), np.diag(truth), rtol=0.1)
    with pytest.raises(PredictionError, match="no reference point"):
        sally_fisher_information(ALICES(epochs=1, hidden=(4,), progress=False).fit(_ratio_set(x)), *args)
    with pytest.raises(PredictionError, match="does not implement the prediction methods"):
        sally_fisher_information(object(), *args)


def _ratio_set(x: np.ndarray) -> TrainingSet:
    n = len(x)
    return TrainingSet(
        x=x, observables=("x0", "x1"), parameters=("c0", "c1"), kind="ratio", theta0=np.ones((n, 2)),
        theta1=np.zeros((n, 2)), y=np.arange(n) % 2.0, log_r=np.zeros(n), t0=np.zeros((n, 2)),
    )  # fmt: skip


def test_histograms_of_the_score_are_a_lower_bound(toy, events, morpher, truth):
    """Binning t·n (seed 000: 25 quantile bins at the SM) keeps at most the information along n."""
    t = toy.score(events.x, SM)
    for direction in (np.array([1.0, 0.0]), np.array([0.0, 1.0])):
        binning = score_binning(t @ direction, events.weights[:, 0])
        templates = fill_templates((t @ direction)[:, None], events.weights, binning, morpher)
        hist = histogram_fisher_information(templates, SM, LUMI)
        assert psd(truth - hist, np.abs(truth).max())
        assert direction @ hist @ direction == pytest.approx(direction @ truth @ direction, rel=0.05)


def test_expected_uncertainties_and_ellipse(truth):
    np.testing.assert_allclose(
        expected_uncertainties(truth), np.sqrt(np.diag(np.linalg.inv(truth))), rtol=1e-10
    )
    assert np.isinf(expected_uncertainties(np.outer([1.0, 2.0], [1.0, 2.0]))).all()  # rank one: unbounded
    center = np.array([0.1, -0.2])
    for cl in (0.6827, 0.95):
        ellipse = information_ellipse(truth, cl, center=center, n_points=100)
        delta = ellipse - center
        np.testing.assert_allclose(
            np.einsum("ni,ij,nj->n", delta, truth, delta), stats.chi2.ppf(cl, 2), rtol=1e-10
        )
        np.testing.assert_array_equal(ellipse[0], ellipse[-1])
    info3 = np.array([[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]])
    block = np.linalg.inv(np.linalg.inv(info3)[np.ix_([0, 2], [0, 2])])  # profiled over θ_1
    delta = information_ellipse(info3, 0.95, params=(0, 2))
    np.testing.assert_allclose(
        np.einsum("ni,ij,nj->n", delta, block, delta), stats.chi2.ppf(0.95, 2), rtol=1e-10
    )
    with pytest.raises(ValueError, match="not positive definite"):
        information_ellipse(np.outer([1.0, 2.0], [1.0, 2.0]))


def test_bad_fisher_inputs():
    with pytest.raises(ValueError, match="scores, weights"):
        kinematic_fisher_information(np.ones((5, 2)), np.ones(4), 1.0)
    with pytest.raises(ValueError, match="luminosity"):
        kinematic_fisher_information(np.ones((5, 2)), np.ones(5), -1.0)
    with pytest.raises(ValueError, match="cross_section"):
        rate_fisher_information(0.0, np.ones(2), 1.0)
    with pytest.raises(ValueError, match="cross_section_gradient"):
        score_fisher_information(np.ones((5, 2)), np.ones(5), 1.0, np.ones(3))
    with pytest.raises(ValueError, match="positive semi-definite"):
        expected_uncertainties(np.diag([1.0, -1.0]))
