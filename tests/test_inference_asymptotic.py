"""Scans, splines, intervals and contours on Gaussian models with known likelihood.

For x_i ~ N(θ, 1) the exact log r(x|θ, θ_ref) = −(x − θ)²/2 + (x − θ_ref)²/2 gives
q(θ) = −2 Σ_i log r + const = n (θ − x̄)²: the MLE is x̄ and the CL interval is
x̄ ± sqrt(F⁻¹_χ²(CL|1) / n), i.e. ± 1/√n (68.27%) and ± 1.95996/√n (95%). A quadratic q is
reproduced exactly by the cubic / bicubic splines, so the references hold to rounding.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.polynomial import hermite_e
from scipy import stats

from assay.inference import (
    ONE_SIGMA,
    ContourResult,
    LimitResult,
    Scan,
    asimov_limits,
    contours_2d,
    critical_value,
    expected_scan,
    grid_axes,
    limits_1d,
    observed_scan,
    p_value,
    profile,
    spline_1d,
    theta_grid,
)
from assay.inference.asymptotic import open_ends, scan_p_values  # not yet exported by assay.inference
from assay.simulators.wh_analysis import SEED_POINTS_1D, SEED_POINTS_2D, SEED_RANGES

N_EVENTS = 400


def gaussian_log_r(x: np.ndarray, theta_ref: np.ndarray):
    """Exact log r(x|θ, θ_ref) of x ~ N(θ, I): θ (n_theta, d), x (n_events, d) → (n_theta, n_events)."""

    def log_r(theta: np.ndarray) -> np.ndarray:
        d_theta = np.sum((x[None, :, :] - theta[:, None, :]) ** 2, axis=-1)
        d_ref = np.sum((x - theta_ref) ** 2, axis=-1)
        return -0.5 * d_theta + 0.5 * d_ref[None, :]

    return log_r


@pytest.fixture(scope="module")
def sample_1d() -> np.ndarray:
    return np.random.default_rng(7).normal(0.1, 1.0, size=(N_EVENTS, 1))


@pytest.fixture(scope="module")
def scan_1d(sample_1d: np.ndarray) -> Scan:
    theta = theta_grid([SEED_RANGES[1]], SEED_POINTS_1D)  # seed 000: 303 points over [-1.2, 1.2]
    # constant σ: the Poisson term does not depend on θ
    return observed_scan(theta, gaussian_log_r(sample_1d, np.zeros(1)), np.ones(len(theta)), 1.0)


def test_seed_grids():
    assert theta_grid([SEED_RANGES[0]], SEED_POINTS_1D).shape == (303, 1)
    grid = theta_grid(SEED_RANGES, SEED_POINTS_2D)
    assert grid.shape == (35 * 35, 2)
    ax0, ax1 = grid_axes(grid)
    assert (ax0[0], ax0[-1], ax1[0], ax1[-1]) == (-1.0, 1.0, -1.2, 1.2)
    assert np.array_equal(grid[1], [-1.0, -1.2 + 2.4 / 34])  # last parameter fastest ("ij")


def test_gaussian_1d_intervals_exact(scan_1d: Scan, sample_1d: np.ndarray):
    xbar, n = float(sample_1d.mean()), N_EVENTS
    result = limits_1d(scan_1d, (ONE_SIGMA, 0.95, 0.68))
    assert isinstance(result, LimitResult)
    assert result.best_fit[0] == pytest.approx(xbar, abs=1e-9)
    assert result.q_min <= 0
    for cl, half_width in ((ONE_SIGMA, 1.0), (0.95, 1.959963984540054), (0.68, np.sqrt(0.988946481478023))):
        ((lo, hi),) = result.intervals[cl]
        assert (hi - lo) / 2 == pytest.approx(half_width / np.sqrt(n), rel=1e-6)
        assert (lo + hi) / 2 == pytest.approx(xbar, abs=1e-9)
        assert result.spans[cl] == (lo, hi)
        assert result.open[cl] == (False, False)
        assert result.bounds(cl) == (lo, hi)
    assert result.critical_values[0.95] == pytest.approx(3.841458820694124)
    # the spec's 1e-3 relative check on the rounded 1/√n and 1.96/√n
    assert result.intervals[0.95][0][1] - xbar == pytest.approx(1.96 / np.sqrt(n), rel=1e-3)


def test_gaussian_1d_expected_asimov_exact():
    """Asimov data of N(θ_true, 1) by Gauss–Hermite quadrature (exact second moments)."""
    nodes, gh_weights = hermite_e.hermegauss(20)
    x = 0.3 + nodes[:, None]
    weights_pb = gh_weights / gh_weights.sum() * 0.2  # σ = 0.2 pb, L = 0.5 fb⁻¹: N = 100
    theta = theta_grid([(-1.0, 1.0)], 101)
    scan = expected_scan(theta, gaussian_log_r(x, np.zeros(1)), weights_pb, np.full(101, 0.2), 0.5)
    np.testing.assert_allclose(scan.minus_2_delta_log_l, 100 * (theta[:, 0] - 0.3) ** 2, atol=1e-9)
    result = asimov_limits(scan)
    np.testing.assert_allclose(result.intervals[ONE_SIGMA], [(0.2, 0.4)], rtol=1e-9)


def test_wilks_p_values(scan_1d: Scan):
    q = np.linspace(0, 20, 41)
    for dof in (1, 2, 3):
        np.testing.assert_allclose(p_value(q, dof=dof), 1 - stats.chi2.cdf(q, dof), rtol=1e-12, atol=1e-15)
    result = limits_1d(scan_1d)
    spline = spline_1d(scan_1d)
    for cl in (ONE_SIGMA, 0.95):
        for edge in result.intervals[cl][0]:
            assert p_value(spline(edge) - result.q_min, dof=1) == pytest.approx(1 - cl, rel=1e-8)


def test_dof_is_required_and_follows_the_scan():
    """p_value has no default dof; a 2D scan's p-values use 2 dof (q = 5.99 ↦ 0.05), a 1D one 1."""
    with pytest.raises(TypeError):
        p_value(1.0)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        p_value(1.0, 2)  # type: ignore[misc]
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="dof: expected an integer >= 1"):
            p_value(1.0, dof=bad)
    q_95_2d = stats.chi2.ppf(0.95, 2)  # 5.991
    theta = theta_grid([(-1, 1), (-1, 1)], 5)
    scan_2d = Scan(theta, np.full(len(theta), q_95_2d), theta[0])
    np.testing.assert_allclose(scan_p_values(scan_2d), 0.05, rtol=1e-12)
    assert scan_p_values(scan_2d, dof=1)[0] == pytest.approx(0.0144, abs=1e-4)  # the 1-dof p, too small
    scan_1d = Scan(theta[:5, 1:], np.full(5, 3.841458820694124), theta[0, 1:])
    np.testing.assert_allclose(scan_p_values(scan_1d), 0.05, rtol=1e-12)


def test_contour_dof_defaults_to_two():
    theta = theta_grid(SEED_RANGES, SEED_POINTS_2D)
    scan = Scan(theta, np.sum(theta**2, axis=1) / 0.04, np.zeros(2))
    result = contours_2d(scan, (0.95,))
    assert result.critical_values[0.95] == pytest.approx(5.991464547107979)
    assert result.profiles[0].critical_values[0.95] == pytest.approx(3.841458820694124)  # profiled: 1 dof
    assert contours_2d(scan, (0.95,), dof=1).critical_values[0.95] == pytest.approx(3.841458820694124)
    assert limits_1d(profile(scan, 0), (0.95,)).critical_values[0.95] == pytest.approx(3.841458820694124)


def test_disjoint_intervals_and_merge():
    """q = 100 (θ² − 1/4)²: two intervals ±[√(1/4 − a), √(1/4 + a)] with a = sqrt(q_crit/100)."""
    theta = theta_grid([(-1.0, 1.0)], SEED_POINTS_1D)
    q = 100 * (theta[:, 0] ** 2 - 0.25) ** 2
    result = limits_1d(Scan(theta, q, theta[0]), (ONE_SIGMA, 0.95, 0.999))
    for cl in (ONE_SIGMA, 0.95):
        a = np.sqrt(critical_value(cl) / 100)
        inner, outer = np.sqrt(0.25 - a), np.sqrt(0.25 + a)
        np.testing.assert_allclose(result.intervals[cl], [(-outer, -inner), (inner, outer)], rtol=1e-5)
        np.testing.assert_allclose(result.spans[cl], (-outer, outer), rtol=1e-5)
    outer = np.sqrt(0.25 + np.sqrt(critical_value(0.999) / 100))  # the wells merge: one interval
    np.testing.assert_allclose(result.intervals[0.999], [(-outer, outer)], rtol=1e-5)
    assert abs(result.best_fit[0]) == pytest.approx(0.5, abs=1e-6)


def test_parabola_inside_the_scan_is_closed():
    """q = ((θ − 0.1)/0.2)²: 0.1 ± 0.2 and 0.1 ± 0.392, well inside [−1, 1]; nothing is open."""
    theta = theta_grid([(-1.0, 1.0)], 41)
    result = limits_1d(Scan(theta, ((theta[:, 0] - 0.1) / 0.2) ** 2, theta[22]))
    assert result.open == {ONE_SIGMA: (False, False), 0.95: (False, False)}
    np.testing.assert_allclose(result.bounds(ONE_SIGMA), (-0.1, 0.3), rtol=1e-9)
    np.testing.assert_allclose(result.bounds(0.95), 0.1 + np.array([-1, 1]) * 0.2 * 1.959963984540054)
    assert result.scan_range == (-1.0, 1.0)
    assert open_ends(result, "c") == []


def test_open_end_is_reported_not_clipped():
    """q = 16 (θ − 0.9)² on [−1, 1]: the upper ends (0.9 + 0.25, 0.9 + 0.49) lie outside the scan;
    the lower ends 0.65 and 0.41 are exact."""
    theta = theta_grid([(-1.0, 1.0)], 51)
    result = limits_1d(Scan(theta, 16 * (theta[:, 0] - 0.9) ** 2, theta[-5]))
    assert result.intervals[0.95][0][1] == 1.0  # the region found inside the scan ends at its edge
    for cl, half_width in ((ONE_SIGMA, 0.25), (0.95, 1.959963984540054 / 4)):
        assert result.open[cl] == (False, True)
        lo, hi = result.bounds(cl)
        assert hi is None and lo == pytest.approx(0.9 - half_width, rel=1e-9)
    messages = open_ends(result, "c_HW")
    assert len(messages) == 2 and all("c_HW" in m and "upper end of the scan (1)" in m for m in messages)
    mirrored = limits_1d(Scan(theta, 16 * (theta[:, 0] + 0.9) ** 2, theta[4]), (0.95,))
    assert mirrored.open[0.95] == (True, False)
    assert mirrored.bounds(0.95) == (None, pytest.approx(-0.9 + 1.959963984540054 / 4, rel=1e-9))


def test_open_on_both_sides():
    """A flat-ish q that stays below q_crit everywhere: both ends open, neither is a limit."""
    theta = theta_grid([(-1.0, 1.0)], 21)
    result = limits_1d(Scan(theta, theta[:, 0] ** 2, theta[10]), (0.95,))
    assert result.open[0.95] == (True, True) and result.bounds(0.95) == (None, None)
    assert len(open_ends(result)) == 2


@pytest.fixture(scope="module")
def sample_2d() -> np.ndarray:
    return np.random.default_rng(11).normal([0.1, -0.2], 1.0, size=(100, 2))


def test_gaussian_2d_circle_and_profiles(sample_2d: np.ndarray):
    """Uncorrelated N(θ, I₂): q = n |θ − x̄|², a circle of radius sqrt(F⁻¹_χ²(CL|2)/n)."""
    n, xbar = len(sample_2d), sample_2d.mean(axis=0)
    theta = theta_grid(SEED_RANGES, SEED_POINTS_2D)
    scan = observed_scan(theta, gaussian_log_r(sample_2d, np.zeros(2)), np.ones(len(theta)), 1.0)
    result = asimov_limits(scan)
    assert isinstance(result, ContourResult)
    np.testing.assert_allclose(result.best_fit, xbar, atol=1e-7)
    for cl in (ONE_SIGMA, 0.95):
        (contour,) = result.contours[cl]
        radius = np.sqrt(stats.chi2.ppf(cl, 2) / n)
        np.testing.assert_allclose(np.linalg.norm(contour - xbar, axis=1), radius, rtol=1e-3)
        np.testing.assert_array_equal(contour[0], contour[-1])  # closed
    for a in (0, 1):  # profiling gives the 1D result x̄_a ± 1/√n
        ((lo, hi),) = result.profiles[a].intervals[ONE_SIGMA]
        np.testing.assert_allclose([lo, hi], [xbar[a] - n**-0.5, xbar[a] + n**-0.5], rtol=1e-7)


def test_correlated_profile_matches_marginal_variance():
    """q = δᵀ C⁻¹ δ: profiling over θ_1 leaves δ_0² / C_00, so the 1D interval is ± sqrt(C_00)."""
    theta = theta_grid(SEED_RANGES, SEED_POINTS_2D)
    cov = np.array([[0.04, 0.03], [0.03, 0.09]])
    delta = theta - [0.1, -0.2]
    scan = Scan(theta, np.einsum("ni,ij,nj->n", delta, np.linalg.inv(cov), delta), theta[0])
    for keep in (0, 1):
        prof = profile(scan, keep)
        expected = (prof.theta[:, 0] - [0.1, -0.2][keep]) ** 2 / cov[keep, keep]
        np.testing.assert_allclose(prof.minus_2_delta_log_l, expected - expected.min(), atol=1e-9)
    result = contours_2d(scan, (0.95,))
    ((lo, hi),) = result.profiles[1].intervals[0.95]
    np.testing.assert_allclose([lo, hi], -0.2 + np.array([-1, 1]) * 1.959963984540054 * 0.3, rtol=1e-7)


def test_contours_cut_by_the_edge_are_open():
    theta = theta_grid([(-1, 1), (-1, 1)], 21)
    scan = Scan(theta, 10 * np.sum((theta - [0.9, 0.0]) ** 2, axis=1), theta[0])
    (contour,) = contours_2d(scan, (0.95,)).contours[0.95]
    assert not np.array_equal(contour[0], contour[-1])
