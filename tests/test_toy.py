"""Tests of the Gaussian-amplitude toy: its closed forms, and that its sampler follows them.

Every exact quantity is cross-checked against an independent evaluation (numerical
integrals, finite differences, Gaussian-mixture CDFs); the sampler is checked with
goodness-of-fit tests at fixed seeds with a p-value threshold of 1e-3.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import chi2_pvalue
from scipy import special, stats

from assay.simulators.toys import GaussianToy

THETA = np.array([0.5, -0.3])  # negative θ2: the amplitude has zeros, the hardest case for the sampler
P_MIN = 1e-3


def grid(half_width: float = 9.0, n: int = 361) -> tuple[np.ndarray, float]:
    """2-D grid points (n², 2) and the cell area. Centres are within 1.2 of the origin, widths ≤ 1.12,
    so beyond 9 the densities are < exp(-(7.8/1.12)²/2) ≈ 3e-11; the trapezoid rule on a smooth,
    rapidly decaying integrand converges faster than any power of the 0.05 spacing."""
    axis = np.linspace(-half_width, half_width, n)
    xx, yy = np.meshgrid(axis, axis, indexing="ij")
    return np.stack([xx.ravel(), yy.ravel()], axis=1), (axis[1] - axis[0]) ** 2


def mixture_cdf(toy: GaussianToy, theta: np.ndarray, dim: int, sd: float):
    """CDF of one coordinate of the exact mixture Σ_ij θ̃_iθ̃_j K_ij N(μ_ij, sd²)/σ(θ)."""
    tt = np.concatenate([[1.0], theta])
    coef = np.outer(tt, tt) * toy.K / toy.cross_section(theta)
    mu = 0.5 * (toy.means[:, None, dim] + toy.means[None, :, dim])

    def cdf(v):
        v = np.asarray(v, dtype=float)
        return np.einsum("ij,...ij->...", coef, special.ndtr((v[..., None, None] - mu) / sd))

    return cdf


@pytest.fixture(scope="module")
def sample(toy):
    """20,000 events drawn at THETA, weighted at THETA and at the SM."""
    return toy.simulate(20_000, THETA, np.array([THETA, [0.0, 0.0]]), np.random.default_rng(2024))


# ---- closed forms ----------------------------------------------------------------------
@pytest.mark.parametrize("theta", [[0.0, 0.0], [0.5, -0.3], [-1.0, 2.0]])
def test_cross_section_is_integral_of_dsigma(toy, theta):
    pts, area = grid()
    numeric = toy.dsigma(pts, np.array(theta))[:, 0].sum() * area
    # trapezoid on a Gaussian integrand with spacing 0.05 ≪ width 1: error far below 1e-9 (see grid)
    assert numeric == pytest.approx(toy.cross_section(np.array(theta)), rel=1e-9)


@pytest.mark.parametrize("theta", [[0.0, 0.0], [0.5, -0.3], [-1.0, 2.0]])
def test_likelihood_is_normalised(toy, theta):
    pts, area = grid()
    total = np.exp(toy.log_likelihood(pts, np.array(theta))).sum() * area
    assert total == pytest.approx(1.0, abs=1e-9)  # same quadrature argument as above


def test_cross_section_shapes_and_quadratic_form(toy):
    thetas = np.random.default_rng(0).normal(size=(7, 2))
    many = toy.cross_section(thetas)
    assert many.shape == (7,) and np.ndim(toy.cross_section(thetas[0])) == 0
    tt = np.concatenate([np.ones((7, 1)), thetas], axis=1)
    np.testing.assert_allclose(many, np.einsum("ti,ij,tj->t", tt, toy.K, tt), rtol=1e-14)
    # K at the SM: a_0² (2π s²)^{d/2} = 2π for a_0 = s = 1, d = 2
    assert toy.cross_section(np.zeros(2)) == pytest.approx(2 * np.pi, rel=1e-14)


def test_score_matches_finite_differences(toy):
    x = np.random.default_rng(1).normal(scale=1.5, size=(200, 2))
    h = 1e-5
    fd = np.stack(
        [
            (toy.log_likelihood(x, THETA + h * e) - toy.log_likelihood(x, THETA - h * e)) / (2 * h)
            for e in np.eye(2)
        ],
        axis=1,
    )
    # central differences: truncation h²/6 |∂³ log p| ~ 1e-10 × O(10), rounding 1e-16·|log p|/h ~ 1e-10
    np.testing.assert_allclose(toy.score(x, THETA), fd, rtol=1e-6, atol=1e-6)


def test_joint_score_and_ratio_match_direct_formulas(toy):
    z = np.random.default_rng(2).normal(size=(200, 2))
    theta1 = np.array([0.2, 0.4])

    def log_p(th):  # log p(z|θ) = log dσ(z|θ) − log σ(θ)
        return np.log(toy.dsigma(z, th)[:, 0]) - np.log(toy.cross_section(th))

    np.testing.assert_allclose(
        toy.joint_log_ratio(z, THETA, theta1), log_p(THETA) - log_p(theta1), rtol=1e-12, atol=1e-12
    )
    h = 1e-5
    fd = np.stack([(log_p(THETA + h * e) - log_p(THETA - h * e)) / (2 * h) for e in np.eye(2)], axis=1)
    np.testing.assert_allclose(toy.joint_score(z, THETA), fd, rtol=1e-6, atol=1e-6)  # as for the score
    np.testing.assert_allclose(
        toy.log_ratio(z, THETA, theta1),
        toy.log_likelihood(z, THETA) - toy.log_likelihood(z, theta1),
        rtol=1e-14,
    )


# ---- the sampler -------------------------------------------------------------------------
def test_simulate_shapes_and_labels(toy, sample):
    assert sample.x.shape == sample.z.shape == (20_000, 2)
    assert sample.weights.shape == (20_000, 2)
    assert np.all(sample.generator == 0)
    assert np.all(sample.weights > 0)


@pytest.mark.parametrize("dim", [0, 1])
def test_latent_and_observed_marginals_follow_exact_cdf(toy, sample, dim):
    # z ~ p(z|θ): mixture with width s; x = z + N(0, δ²): width sqrt(s² + δ²)
    p_z = stats.kstest(sample.z[:, dim], mixture_cdf(toy, THETA, dim, toy.width)).pvalue
    p_x = stats.kstest(
        sample.x[:, dim], mixture_cdf(toy, THETA, dim, np.hypot(toy.width, toy.smearing))
    ).pvalue
    assert p_z > P_MIN and p_x > P_MIN


def test_observed_2d_histogram_follows_exact_bin_probabilities(toy, sample):
    # the mixture components are isotropic, so a rectangle's probability factorises per component
    edges = np.array([-np.inf, -2.0, -1.2, -0.6, -0.2, 0.2, 0.6, 1.2, 2.0, np.inf])
    sd = np.hypot(toy.width, toy.smearing)
    tt = np.concatenate([[1.0], THETA])
    coef = np.outer(tt, tt) * toy.K / toy.cross_section(THETA)
    mu = 0.5 * (toy.means[:, None, :] + toy.means[None, :, :])  # (3, 3, 2)
    mass = [np.diff(special.ndtr((edges[:, None, None] - mu[None, :, :, d]) / sd), axis=0) for d in (0, 1)]
    probs = np.einsum("ij,aij,bij->ab", coef, mass[0], mass[1])
    assert probs.sum() == pytest.approx(1.0, abs=1e-12)
    observed, _, _ = np.histogram2d(sample.x[:, 0], sample.x[:, 1], bins=[edges, edges])
    expected = probs * len(sample.x)
    assert chi2_pvalue(observed, expected) > P_MIN


def test_weights_sum_to_cross_section(toy, sample):
    # importance-sampling estimate Σ_i w_i of σ(θ_k); its MC error is sqrt(n) × std(w)
    for k, theta in enumerate([THETA, np.zeros(2)]):
        w = sample.weights[:, k]
        mc_error = np.sqrt(len(w)) * w.std()
        assert abs(w.sum() - toy.cross_section(theta)) < 5 * mc_error
    # at the generation point itself the weights are constant σ/N
    np.testing.assert_allclose(sample.weights[:, 0], toy.cross_section(THETA) / 20_000, rtol=1e-12)


def test_multichannel_generation(toy):
    gens = np.array([[0.0, 0.0], [1.0, 1.0]])
    bench = np.array([[0.0, 0.0], [1.0, 1.0], [-0.5, 0.5]])
    ev = toy.simulate([3000, 5000], gens, bench, np.random.default_rng(5))
    assert np.bincount(ev.generator).tolist() == [3000, 5000]
    # z ~ (3000 p(z|θ_a) + 5000 p(z|θ_b)) / 8000: marginal CDF is the same mixture of CDFs
    mix = lambda v: (3 * mixture_cdf(toy, gens[0], 0, 1.0)(v) + 5 * mixture_cdf(toy, gens[1], 0, 1.0)(v)) / 8  # noqa: E731
    assert stats.kstest(ev.z[:, 0], mix).pvalue > P_MIN
    for k in range(3):
        w = ev.weights[:, k]
        assert abs(w.sum() - toy.cross_section(bench[k])) < 5 * np.sqrt(len(w)) * w.std()


def test_joint_score_has_zero_mean(toy, sample):
    # E_{z ~ p(z|θ)}[∇θ log p(z|θ)] = ∇θ ∫ p = 0; same for the observed score
    for t in (toy.joint_score(sample.z, THETA), toy.score(sample.x, THETA)):
        stderr = t.std(axis=0) / np.sqrt(len(t))
        assert np.all(np.abs(t.mean(axis=0)) < 5 * stderr)


def test_expected_ratio_under_denominator_is_one(toy, sample):
    # E_{z ~ p(z|θ1)}[p(z|θ0)/p(z|θ1)] = 1 with θ1 = THETA (the sampling point)
    theta0 = np.array([0.1, 0.2])
    joint_r = np.exp(toy.joint_log_ratio(sample.z, theta0, THETA))
    observed_r = np.exp(toy.log_ratio(sample.x, theta0, THETA))
    for r in (joint_r, observed_r):
        assert abs(r.mean() - 1) < 5 * r.std() / np.sqrt(len(r))


def test_invalid_configuration_raises():
    with pytest.raises(ValueError, match="amplitudes"):
        GaussianToy(np.zeros((3, 2)), np.ones(2))
    with pytest.raises(ValueError, match="width"):
        GaussianToy(np.zeros((3, 2)), np.ones(3), width=0.0)
    with pytest.raises(ValueError, match="theta_gen"):
        GaussianToy.default(2).simulate(10, np.zeros(3), np.zeros((1, 2)), np.random.default_rng(0))
