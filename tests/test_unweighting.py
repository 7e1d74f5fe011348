"""Tests of assay.unweighting: the batched rejection sampler draws events exactly ∝ w(z|θ).

The sampler draws (with replacement) from the discrete distribution p_i(θ) = w_i(θ)/Σ_j w_j(θ)
over the weighted events, so binned goodness-of-fit tests use bin probabilities summed from
the same weights, which are exact for that distribution (no Monte Carlo error in the reference).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import chi2_pvalue
from scipy import stats

from assay.exceptions import SamplingError
from assay.morphing import Morpher, morphing_components
from assay.unweighting import Unweighter, split_events

THETA = np.array([0.5, -0.3])  # away from θ_gen = SM; the amplitude has zeros here
P_MIN = 1e-3
EDGES = np.array([-np.inf, -1.8, -1.2, -0.7, -0.3, 0.0, 0.3, 0.7, 1.2, 1.8, np.inf])


def binned(z: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """2-D histogram of the latent z on EDGES × EDGES, flattened (100 bins)."""
    return np.histogram2d(z[:, 0], z[:, 1], bins=[EDGES, EDGES], weights=weights)[0].ravel()


@pytest.fixture(scope="module")
def unweighter(events, morpher) -> Unweighter:
    return Unweighter(events.weights, morpher)


def test_draw_follows_target_distribution(events, morpher, unweighter):
    n = 20_000
    draw = unweighter.draw(THETA[None], n, np.random.default_rng(31))
    assert draw.indices.shape == draw.sign.shape == (1, n)
    assert draw.indices.min() >= 0 and draw.indices.max() < len(events.weights)
    assert np.all(draw.sign == 1)
    w = events.weights @ morpher.morphing_weights(THETA)
    probs = binned(events.z, w) / w.sum()
    observed = binned(events.z[draw.indices[0]])
    assert chi2_pvalue(observed, n * probs) > P_MIN
    # the test has power: the same draws are incompatible with the generation distribution (SM)
    probs_sm = binned(events.z, events.weights[:, 0]) / events.weights[:, 0].sum()
    assert chi2_pvalue(observed, n * probs_sm) < 1e-20


def test_draw_many_thetas_at_once(events, morpher, unweighter):
    rng = np.random.default_rng(32)
    thetas = rng.uniform(-1, 1, size=(50, 2))
    n = 400
    draw = unweighter.draw(thetas, n, rng)
    assert draw.indices.shape == (50, n)
    w = events.weights @ morpher.morphing_weights(thetas).T  # (n_events, 50)
    p = w / w.sum(axis=0)
    for dim in (0, 1):
        mean = p.T @ events.z[:, dim]
        var = p.T @ events.z[:, dim] ** 2 - mean**2
        drawn_mean = events.z[draw.indices, dim].mean(axis=1)
        # each row's mean of n draws with replacement has variance var/n exactly; the 50 rows are
        # independent, so Σ pulls² ~ chi2(50)
        pulls = (drawn_mean - mean) / np.sqrt(var / n)
        assert stats.chi2.sf(np.sum(pulls**2), df=50) > P_MIN
        assert np.abs(pulls).max() < 5


def test_draw_is_reproducible(unweighter):
    thetas = np.array([[0.1, 0.2], [-0.4, 0.6]])
    a = unweighter.draw(thetas, 100, np.random.default_rng(5))
    b = unweighter.draw(thetas, 100, np.random.default_rng(5))
    np.testing.assert_array_equal(a.indices, b.indices)
    assert not np.array_equal(a.indices[0], a.indices[1])


def test_docstring_example_draws_only_the_event_with_weight():
    m = Morpher(morphing_components(1, 1), np.array([[0.0], [1.0]]))
    u = Unweighter(np.array([[1.0, 1.0], [0.0, 3.0]]), m)
    assert u.draw(np.array([[0.0]]), 50, np.random.default_rng(0)).indices.tolist() == [[0] * 50]
    # at θ = 1 the weights are (1, 3): event 1 three times as often (binomial, 4000 draws, 5 sigma)
    frac = u.draw(np.array([[1.0]]), 4000, np.random.default_rng(1)).indices.mean()
    assert abs(frac - 0.75) < 5 * np.sqrt(0.75 * 0.25 / 4000)


def test_effective_sample_size(events, morpher, unweighter):
    thetas = np.random.default_rng(33).uniform(-1, 1, (10, 2))
    w = events.weights @ morpher.morphing_weights(thetas).T
    direct = w.sum(axis=0) / w.max(axis=0)
    # the sampler sums Σ_k c_k (Σ_i W_ik), this test Σ_i (Σ_k c_k W_ik): with cancelling c_k the two
    # orders differ by ~n_events·eps·Σ|c_k σ_k|/σ ~ 1e-12 relative; 1e-10 is far from any real error
    np.testing.assert_allclose(unweighter.effective_sample_size(thetas), direct, rtol=1e-10)
    np.testing.assert_allclose(unweighter.effective_sample_size(thetas, chunk_size=777), direct, rtol=1e-10)
    # at the generation point all weights are equal: n_eff = n_events
    assert unweighter.effective_sample_size(np.zeros((1, 2)))[0] == pytest.approx(len(w), rel=1e-9)


# ---- negative and bad weights ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def flipped(events):
    """Events with z0 > 0.7 get negative weights at every benchmark."""
    return events.z[:, 0] > 0.7


def test_negative_weights_raise_by_default(events, morpher, flipped):
    weights = np.where(flipped[:, None], -events.weights, events.weights)
    with pytest.raises(SamplingError, match="allow_negative_weights=True"):
        Unweighter(weights, morpher)


def test_negative_weights_carry_sign_and_reproduce_signed_target(events, morpher, flipped):
    weights = np.where(flipped[:, None], -events.weights, events.weights)
    with pytest.warns(UserWarning, match=f"{flipped.mean():.2%} of events have negative weights"):
        u = Unweighter(weights, morpher, allow_negative_weights=True)
    n = 40_000
    draw = u.draw(THETA[None], n, np.random.default_rng(34))
    idx, sign = draw.indices[0], draw.sign[0]
    np.testing.assert_array_equal(sign, np.where(flipped[idx], -1, 1))
    assert 0.05 < np.mean(sign == -1) < 0.95
    # signed histogram: E[S_b] = n Σ_{i∈b} w_i / Σ|w|, Var[S_b] = n (q_b - m_b²), q_b = Σ_{i∈b} |w_i| / Σ|w|
    w = weights @ morpher.morphing_weights(THETA)
    m_b = binned(events.z, w) / np.abs(w).sum()
    q_b = binned(events.z, np.abs(w)) / np.abs(w).sum()
    signed = binned(events.z[idx], sign.astype(float))
    ok = q_b * n > 5
    pulls = (signed[ok] - n * m_b[ok]) / np.sqrt(n * (q_b[ok] - m_b[ok] ** 2))
    # multinomial correlations make Σ pulls² slightly smaller than chi2(n_bins): a conservative test
    assert stats.chi2.sf(np.sum(pulls**2), df=ok.sum()) > P_MIN
    # the target is the signed one: normalised signed counts per bin match it
    assert np.abs(pulls).max() < 5


def test_negative_morphed_weight_raises_in_draw():
    # positive benchmark weights, but θ = 2 lies outside the region where morphing keeps them positive:
    # w(θ) = (1 - θ) W_0 + θ W_1 = (-1, 2)
    m = Morpher(morphing_components(1, 1), np.array([[0.0], [1.0]]))
    u = Unweighter(np.array([[1.0, 0.0], [0.0, 1.0]]), m)
    message = r"negative morphed weight .* theta=\[2.0\].*allow_negative_weights"
    with pytest.raises(SamplingError, match=message):
        u.draw(np.array([[2.0]]), 100, np.random.default_rng(0))


def test_non_positive_cross_section_raises():
    m = Morpher(morphing_components(1, 1), np.array([[0.0], [1.0]]))
    u = Unweighter(np.array([[2.0, 0.0], [0.0, 1.0]]), m)  # σ(θ) = 2 - θ
    with pytest.raises(SamplingError, match=r"not positive at theta=\[3.0\]"):
        u.draw(np.array([[0.5], [3.0]]), 10, np.random.default_rng(0))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_raise(events, morpher, value):
    weights = events.weights[:20].copy()
    weights[3, 2] = value
    with pytest.raises(SamplingError, match=f"non-finite value {value} at event 3, benchmark 2"):
        Unweighter(weights, morpher)


@pytest.mark.parametrize("shape", [(0, 6), (10, 5), (10,)])
def test_bad_weight_shape_raises(morpher, shape):
    with pytest.raises(SamplingError, match=r"weights: expected shape \(n_events > 0, 6\)"):
        Unweighter(np.ones(shape), morpher)


# ---- split -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("n_events", "fractions"),
    [(1000, (0.6, 0.2, 0.2)), (999, (0.5, 0.25, 0.25)), (10, (1.0, 0.0, 0.0)), (7, (0.0, 0.5, 0.5))],
)
def test_split_events_partitions(n_events, fractions):
    split = split_events(n_events, fractions, np.random.default_rng(0))
    parts = [split.train, split.validation, split.test]
    joined = np.concatenate(parts)
    # disjoint and covering
    assert len(joined) == n_events and np.array_equal(np.sort(joined), np.arange(n_events))
    assert all(np.all(np.diff(p) > 0) for p in parts)  # sorted
    bounds = np.round(np.cumsum(fractions) * n_events).astype(int)
    assert [len(p) for p in parts] == np.diff(np.r_[0, bounds]).tolist()
    assert all(abs(len(p) - f * n_events) <= 1 for p, f in zip(parts, fractions))
    np.testing.assert_array_equal(split["validation"], split.validation)


def test_split_is_random_but_seeded():
    a = split_events(1000, (0.6, 0.2, 0.2), np.random.default_rng(1))
    b = split_events(1000, (0.6, 0.2, 0.2), np.random.default_rng(1))
    np.testing.assert_array_equal(a.train, b.train)
    assert not np.array_equal(a.train, np.arange(600))


@pytest.mark.parametrize("fractions", [(0.5, 0.2, 0.2), (0.7, 0.4, -0.1), (0.5, 0.5), (0.5, 0.5, 0.0, 0.0)])
def test_split_bad_fractions_raise(fractions):
    with pytest.raises(SamplingError, match="fractions: expected three non-negative numbers summing to 1"):
        split_events(100, fractions, np.random.default_rng(0))


def test_split_unknown_partition_name():
    with pytest.raises(KeyError, match="unknown partition 'training'"):
        split_events(10, (0.6, 0.2, 0.2), np.random.default_rng(0))["training"]
