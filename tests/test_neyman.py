"""Neyman construction and the FAIR Universe coverage score, against exact results."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from assay.inference.neyman import challenge_score, critical_values, neyman_regions


def test_critical_values_of_a_gaussian_mean_are_wilks():
    """x ~ N(μ, 1): t_μ = (x − μ)² is exactly χ²₁ at every μ, so t_c = χ²₁ quantiles."""
    rng = np.random.default_rng(1)
    mu = np.linspace(-1, 1, 5)
    t = (rng.normal(mu[:, None], 1.0, (5, 40_000)) - mu[:, None]) ** 2
    for cl in (0.6827, 0.95):
        np.testing.assert_allclose(critical_values(t, cl), stats.chi2.ppf(cl, 1), rtol=0.03)


def test_critical_values_near_a_boundary_are_below_wilks():
    """μ ≥ 0 with μ̂ = max(x, 0): at μ = 0, t = x² if x > 0 else 0, a ½χ²₁ + ½δ mixture whose 68%
    quantile is the χ²₁ quantile at 0.3654 (Chernoff), smaller than Wilks' 1."""
    x = np.random.default_rng(2).normal(0.0, 1.0, (1, 100_000))
    t = np.where(x > 0, x**2, 0.0)
    assert critical_values(t, 0.6827)[0] == pytest.approx(stats.chi2.ppf(2 * 0.6827 - 1, 1), rel=0.03)


def test_neyman_regions_are_disjoint_where_the_statistic_dips_twice():
    mu = np.linspace(0, 3, 301)
    t = 6 * (mu - 0.5) ** 2 * (mu - 2.0) ** 2
    regions = neyman_regions(mu, t, np.ones_like(mu))
    assert len(regions) == 2
    for (lo, hi), centre in zip(regions, (0.5, 2.0)):
        assert lo < centre < hi
        assert 6 * (lo - 0.5) ** 2 * (lo - 2.0) ** 2 == pytest.approx(1.0, abs=0.01)


def test_neyman_regions_reject_bad_shapes():
    with pytest.raises(ValueError, match="equal 1D shapes"):
        neyman_regions(np.arange(3.0), np.zeros(4), np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        critical_values(np.array([[1.0, np.nan]]), 0.68)


def test_challenge_score_penalises_under_coverage_more_than_over_coverage():
    n = 1000
    sigma = np.sqrt(0.6827 * 0.3173 / n)
    best = challenge_score(0.4, 0.6827, n)
    assert best == pytest.approx(-np.log(0.401))
    assert challenge_score(0.4, 0.6827 + 1.9 * sigma, n) == best  # inside the ±2σ band: no penalty
    under = challenge_score(0.4, 0.6827 - 4 * sigma, n)  # 2σ past the band edge: f = 1 + 2⁴
    over = challenge_score(0.4, 0.6827 + 4 * sigma, n)  # f = 1 + 2³
    assert under == pytest.approx(-np.log(0.401 * 17))
    assert over == pytest.approx(-np.log(0.401 * 9))
    assert challenge_score(0.3, 0.6827, n) > best  # narrower intervals score higher
