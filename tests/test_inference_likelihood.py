"""The extended likelihood (seed 000 "Additional formulas"): units, terms, scans and bad inputs.

References: scipy.stats.poisson for the Poisson term; the closed form
−2Δlog L = 2 [λ − N − N log(λ/N)] of an Asimov count; the toy's exact log p(x|θ).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from assay.estimators.prediction import Prediction
from assay.exceptions import PredictionError
from assay.inference import (
    PB_TO_FB,
    Scan,
    critical_value,
    expected_events,
    expected_scan,
    log_ratio_function,
    observed_scan,
    poisson_log_likelihood,
    rate_only_scan,
    theta_grid,
    weighted_log_ratio_sum,
)


def test_units():
    assert PB_TO_FB == 1000.0
    assert float(expected_events(0.05, 300.0)) == pytest.approx(15000.0)  # 50 fb × 300 fb⁻¹


def test_poisson_term_matches_scipy():
    xs = np.array([0.01, 0.02, 0.05])
    for n in (0, 7, 30):
        np.testing.assert_allclose(
            poisson_log_likelihood(n, xs, 1000.0), stats.poisson.logpmf(n, xs * 1e6), rtol=1e-12
        )


def test_rate_only_scan_closed_form():
    theta = theta_grid([(-1.0, 1.0)], 41)
    sigma = 0.02 * (1 + 0.5 * theta[:, 0] + theta[:, 0] ** 2)  # pb
    n_true = float(expected_events(0.02, 150.0))
    scan = rate_only_scan(theta, sigma, 150.0, n_observed=n_true)
    lam = expected_events(sigma, 150.0)
    np.testing.assert_allclose(
        scan.minus_2_delta_log_l, 2 * (lam - n_true - n_true * np.log(lam / n_true)), atol=1e-9
    )
    assert scan.mle[0] in (-0.5, 0.0)  # σ(−0.5) = σ(0): the rate alone cannot tell them apart


def test_scan_is_frozen_and_leaves_inputs_writable():
    theta, log_l = theta_grid([(-1.0, 1.0)], 5), -np.arange(5.0)
    scan = Scan.from_log_likelihood(theta, log_l)
    theta[0, 0] = 7.0  # the caller's arrays stay writable and the scan keeps its copy
    assert scan.theta[0, 0] == -1.0 and not scan.theta.flags.writeable
    np.testing.assert_array_equal(scan.minus_2_delta_log_l, 2 * np.arange(5.0))


def test_callable_and_array_log_r_agree(toy, events):
    theta = theta_grid([(-0.5, 0.5), (-0.5, 0.5)], 5)
    table = toy.log_likelihood(events.x[:500], theta).T
    w = events.weights[:500, 0]
    as_array = expected_scan(theta, table, w, toy.cross_section, 10.0)
    as_callable = expected_scan(
        theta, lambda t: toy.log_likelihood(events.x[:500], t).T, w, toy.cross_section, 10.0, theta_chunk=7
    )
    np.testing.assert_allclose(
        as_callable.minus_2_delta_log_l, as_array.minus_2_delta_log_l, rtol=1e-12, atol=1e-9
    )
    np.testing.assert_allclose(weighted_log_ratio_sum(table, theta), table.sum(axis=1), rtol=1e-12)


def test_expected_scan_normalisation(toy, events):
    """Subsample weights are rescaled to Σ w = L σ(θ_true) · 1000: halving the sample changes nothing."""
    theta = theta_grid([(-0.3, 0.3), (-0.3, 0.3)], 4)
    log_r = toy.log_likelihood(events.x, theta).T
    w, sigma_sm = events.weights[:, 0], toy.cross_section(np.zeros(2))
    full = expected_scan(theta, log_r, w, toy.cross_section, 2.0, xsec_true=sigma_sm)
    doubled = expected_scan(theta, log_r, 2 * w, toy.cross_section, 2.0, xsec_true=sigma_sm)
    np.testing.assert_allclose(doubled.minus_2_delta_log_l, full.minus_2_delta_log_l, rtol=1e-12)


def test_observed_scan_of_toy_data_covers_truth(toy):
    """Events drawn at θ_true: the exact observed likelihood excludes θ_true at 95% only rarely (seeded)."""
    rng = np.random.default_rng(12)
    theta_true = np.array([0.2, -0.1])
    n = rng.poisson(float(expected_events(toy.cross_section(theta_true), 0.3)))
    x = toy.simulate(n, theta_true, theta_true[None], rng).x
    theta = np.vstack([theta_true, theta_grid([(-1, 1), (-1, 1)], 11)])
    scan = observed_scan(theta, lambda t: toy.log_likelihood(x, t).T, toy.cross_section, 0.3)
    assert scan.minus_2_delta_log_l[0] < critical_value(0.95, 2)
    assert scan.minus_2_delta_log_l.min() == 0.0


def test_log_ratio_function_wraps_an_estimator():
    """Any model whose ``predicts`` holds log_ratio: θ → its Prediction's mean; others refused."""

    class Linear:
        predicts = frozenset({"log_ratio"})

        def log_ratio(self, x, theta, theta_ref):
            assert np.shape(theta_ref) == (1,)
            return Prediction(np.asarray(theta)[:, :1] * x[None, :, 0])

        def score(self, x, theta=None):
            raise NotImplementedError

    log_r = log_ratio_function(Linear(), np.ones((3, 1)), np.zeros(1))
    np.testing.assert_array_equal(log_r(np.array([[2.0], [3.0]])), [[2.0] * 3, [3.0] * 3])

    class ScoreOnly(Linear):
        predicts = frozenset({"score"})

    with pytest.raises(PredictionError, match="log_ratio"):
        log_ratio_function(ScoreOnly(), np.ones((3, 1)), np.zeros(1))


# ---- bad inputs ----------------------------------------------------------------------
THETA = np.zeros((3, 1))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: expected_scan(THETA, np.zeros((2, 4)), np.ones(4), np.ones(3), 1.0),
            r"log_r: expected shape \(3,",
        ),
        (
            lambda: expected_scan(THETA, np.zeros((3, 4)), np.ones(5), np.ones(3), 1.0),
            r"weights: expected shape \(4,\)",
        ),
        (
            lambda: expected_scan(THETA, np.zeros((3, 4)), np.ones(4), np.ones(2), 1.0),
            "cross_section: expected shape",
        ),
        (
            lambda: expected_scan(THETA, np.zeros((3, 4)), np.ones(4), np.array([1, 0, 1]), 1.0),
            "cross_section: expected finite",
        ),
        (lambda: observed_scan(THETA, np.zeros((3, 4)), -np.ones(3), 1.0), "cross_section: expected finite"),
        (lambda: expected_scan(THETA, np.zeros((3, 4)), np.ones(4), np.ones(3), 0.0), "luminosity"),
        (lambda: observed_scan(THETA, np.zeros((3, 4)), np.ones(3), -5.0), "luminosity"),
        (lambda: rate_only_scan(THETA, np.ones(3), np.nan, n_observed=3), "luminosity"),
        (lambda: expected_scan(THETA, np.zeros((3, 4)), -np.ones(4), np.ones(3), 1.0), "weights"),
        (lambda: observed_scan(THETA, np.full((3, 4), np.nan), np.ones(3), 1.0), "log_r: contains"),
        (lambda: observed_scan(np.zeros(3), np.zeros((3, 4)), np.ones(3), 1.0), "theta: expected shape"),
        (lambda: rate_only_scan(THETA, np.ones(3), 1.0, n_observed=-1), "n_observed"),
        (lambda: Scan(THETA, np.zeros(2), np.zeros(1)), "minus_2_delta_log_l: expected shape"),
        (lambda: Scan(THETA, np.zeros(3), np.zeros(2)), "mle: expected shape"),
        (lambda: theta_grid([(1.0, -1.0)], 10), "low < high"),
        (lambda: critical_value(1.5), "cl: expected"),
    ],
)
def test_bad_inputs_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_morphed_negative_cross_section_names_theta():
    theta = np.array([[0.0], [2.0]])
    with pytest.raises(ValueError, match=r"theta=\[2.0\]"):
        rate_only_scan(theta, lambda t: 1 - t[:, 0], 1.0, n_observed=1000)
