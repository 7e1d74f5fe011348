"""Tests of assay.joint: joint log r and joint score from morphed weights vs the toy's closed forms.

JointQuantities takes σ(θ) from the sample (σ̂ = Σ_events w(θ)), so the per-event
quantities are compared with the toy's exact dσ(z|θ) terms combined with σ̂; σ̂ itself
is compared with the exact σ(θ) within its Monte Carlo error.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import N_EVENTS

from assay.joint import IndexedThetas, JointQuantities

# θ with positive components: the amplitude A(z|θ) has no zeros, so log w(z|θ) is well conditioned
# (the morphed weight's relative rounding error is ~1e-16 × Σ_k|c_k W_k| / w ≲ 1e-14)
THETA0 = np.array([0.5, 0.8])
THETA1 = np.array([0.2, 0.4])


@pytest.fixture(scope="module")
def jq(morpher, events) -> JointQuantities:
    return JointQuantities(morpher, events.weights.sum(axis=0))


def exact_grad_sigma(toy, theta: np.ndarray) -> np.ndarray:
    """∇θ σ(θ) = 2 (K θ̃)_{1:} for σ = θ̃ᵀ K θ̃."""
    return 2 * (toy.K @ np.concatenate([[1.0], theta]))[1:]


def expected_log_ratio(toy, jq, z, theta0, theta1) -> np.ndarray:
    """log dσ(z|θ0)/dσ(z|θ1) from the toy plus log σ̂(θ1)/σ̂(θ0) from the sample."""
    return np.log(toy.dsigma(z, theta0)[:, 0] / toy.dsigma(z, theta1)[:, 0]) + np.log(
        jq.cross_section(theta1) / jq.cross_section(theta0)
    )


def expected_score(toy, jq, z, theta) -> np.ndarray:
    """∇θ log dσ(z|θ) from the toy minus ∇σ̂/σ̂ from the sample."""
    exact_sigma_term = exact_grad_sigma(toy, theta) / toy.cross_section(theta)
    return (
        toy.joint_score(z, theta)
        + exact_sigma_term
        - jq.cross_section_gradient(theta) / jq.cross_section(theta)
    )


# ---- cross sections ----------------------------------------------------------------------
@pytest.mark.parametrize("theta", [[0.2, -0.1], [0.5, 0.8], [0.5, -0.3], [-1.0, 1.0]])
def test_cross_section_is_sample_sum_and_matches_exact_within_mc_error(toy, events, jq, theta):
    theta = np.array(theta)
    w = jq.weights(events.weights, theta)
    assert jq.cross_section(theta) == pytest.approx(w.sum(), rel=1e-12)  # σ̂ = Σ_events w(θ) exactly
    mc_error = np.sqrt(N_EVENTS) * w.std()  # std of a sum of N i.i.d. importance weights
    assert abs(jq.cross_section(theta) - toy.cross_section(theta)) < 5 * mc_error
    assert mc_error < 0.05 * toy.cross_section(theta)  # and the check is not vacuous


def test_cross_section_gradient(toy, events, jq):
    thetas = np.array([[0.0, 0.0], [0.5, 0.8], [-1.0, 0.3]])
    grads = jq.cross_section_gradient(thetas)
    assert grads.shape == (3, 2)
    h = 1e-3  # σ̂ is quadratic in θ: central differences are exact up to rounding ~1e-16 σ/h
    fd = np.stack(
        [(jq.cross_section(thetas + h * e) - jq.cross_section(thetas - h * e)) / (2 * h) for e in np.eye(2)],
        axis=1,
    )
    np.testing.assert_allclose(grads, fd, rtol=1e-9, atol=1e-9)
    # ∇σ̂ = Σ_events ∇w is an MC estimate of the exact 2 (K θ̃)_{1:}
    for theta, grad in zip(thetas, grads):
        per_event = np.einsum("ak,nk->na", jq.morpher.morphing_weight_gradients(theta), events.weights)
        mc_error = np.sqrt(N_EVENTS) * per_event.std(axis=0)
        assert np.all(np.abs(grad - exact_grad_sigma(toy, theta)) < 5 * mc_error)


# ---- per-event quantities vs the toy -----------------------------------------------------------
def test_weights_equal_direct_reweighting(toy, events, jq):
    w = jq.weights(events.weights, THETA0)
    direct = (
        toy.dsigma(events.z, THETA0)[:, 0]
        / toy.dsigma(events.z, np.zeros(2))[:, 0]
        * (toy.cross_section(np.zeros(2)) / N_EVENTS)
    )
    np.testing.assert_allclose(w, direct, rtol=1e-10)  # exact morphing; rounding only (no zeros at THETA0)
    grid = jq.weights_on_grid(events.weights, np.array([THETA0, THETA1]))
    assert grid.shape == (N_EVENTS, 2)
    np.testing.assert_allclose(grid[:, 0], w, rtol=1e-13)


def test_log_ratio_matches_toy(toy, events, jq):
    log_r = jq.log_ratio(events.weights, THETA0, THETA1)
    assert log_r.shape == (N_EVENTS,)
    expected = expected_log_ratio(toy, jq, events.z, THETA0, THETA1)
    np.testing.assert_allclose(log_r, expected, rtol=0, atol=1e-10)
    # and the difference to the toy's fully exact log r is one constant, log(σ̂/σ) at θ1 over θ0
    offset = log_r - toy.joint_log_ratio(events.z, THETA0, THETA1)
    np.testing.assert_allclose(offset, offset[0], rtol=0, atol=1e-10)


def test_score_matches_toy(toy, events, jq):
    t = jq.score(events.weights, THETA0)
    assert t.shape == (N_EVENTS, 2)
    expected = expected_score(toy, jq, events.z, THETA0)
    # ∇w/w and 2 ∂A/A agree to rounding relative to the size of the score itself
    np.testing.assert_allclose(t, expected, rtol=1e-9, atol=1e-9)


def test_per_event_thetas_match_toy(toy, events, jq):
    rng = np.random.default_rng(12)
    points = rng.uniform(0.1, 1.0, size=(5, 2))  # positive: no amplitude zeros (see THETA0)
    index0, index1 = rng.integers(0, 5, N_EVENTS), rng.integers(0, 5, N_EVENTS)
    log_r = jq.log_ratio(events.weights, IndexedThetas(points, index0), IndexedThetas(points[::-1], index1))
    t = jq.score(events.weights, IndexedThetas(points, index0))
    for a in range(5):
        for b in range(5):
            sel = (index0 == a) & (index1 == b)
            exp_r = expected_log_ratio(toy, jq, events.z[sel], points[a], points[::-1][b])
            np.testing.assert_allclose(log_r[sel], exp_r, rtol=0, atol=1e-10)
        sel = index0 == a
        expected = expected_score(toy, jq, events.z[sel], points[a])
        np.testing.assert_allclose(t[sel], expected, rtol=1e-9, atol=1e-9)


# ---- θ arguments ---------------------------------------------------------------------------------
def test_shared_dense_and_indexed_thetas_agree(events, jq):
    w = events.weights
    n = len(w)
    dense0, dense1 = np.tile(THETA0, (n, 1)), np.tile(THETA1, (n, 1))
    idx0, idx1 = IndexedThetas(THETA0[None], np.zeros(n, int)), IndexedThetas(THETA1[None], np.zeros(n, int))
    for fn, args in (
        (jq.weights, ((THETA0,), (dense0,), (idx0,))),
        (jq.score, ((THETA0,), (dense0,), (idx0,))),
        (jq.log_ratio, ((THETA0, THETA1), (dense0, dense1), (idx0, idx1))),
    ):
        shared, dense, indexed = (fn(w, *a) for a in args)
        np.testing.assert_allclose(dense, shared, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(indexed, shared, rtol=1e-13, atol=1e-13)


def test_many_per_event_thetas_equal_indexed(events, jq):
    rng = np.random.default_rng(13)
    points = rng.uniform(-1, 1, size=(40, 2))
    index = rng.integers(0, 40, len(events.weights))
    indexed, dense = IndexedThetas(points, index), points[index]
    w = events.weights
    np.testing.assert_allclose(jq.weights(w, dense), jq.weights(w, indexed), rtol=1e-13)
    t = jq.score(w, dense)
    np.testing.assert_allclose(t, jq.score(w, indexed), rtol=1e-12, atol=1e-12)
    # each event really used its own θ
    for i in (0, 17, 999):
        np.testing.assert_allclose(t[i], jq.score(w[i : i + 1], points[index[i]])[0], rtol=1e-12)


# ---- bad input -----------------------------------------------------------------------------------
def test_bad_weights_shape_raises(events, jq):
    for bad in (events.weights[:, :5], events.weights[:, 0]):
        with pytest.raises(ValueError, match=r"weights: expected shape \(n_events, 6\)"):
            jq.weights(bad, THETA0)
        with pytest.raises(ValueError, match="weights"):
            jq.score(bad, THETA0)


def test_bad_theta_shape_raises(events, jq):
    w = events.weights[:10]
    with pytest.raises(ValueError, match="theta"):
        jq.weights(w, np.zeros(3))
    with pytest.raises(ValueError, match=r"theta: expected \(n_params,\) or \(10, 2\)"):
        jq.score(w, np.zeros((9, 2)))  # per event, but the wrong number of events
    with pytest.raises(ValueError, match="theta: expected an index for 10 events"):
        jq.weights(w, IndexedThetas(np.zeros((2, 2)), np.zeros(9, int)))


def test_bad_xsec_benchmarks_raises(morpher):
    with pytest.raises(ValueError, match=r"xsec_benchmarks: expected shape \(6,\)"):
        JointQuantities(morpher, np.ones(5))


@pytest.mark.parametrize("bad", ["theta0", "theta1"])
def test_log_ratio_error_names_the_bad_argument(events, jq, bad):
    thetas = {"theta0": THETA0, "theta1": THETA1, bad: np.zeros(3)}
    with pytest.raises(ValueError, match=bad):
        jq.log_ratio(events.weights[:10], **thetas)
