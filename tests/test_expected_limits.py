"""expected_limits() on an EventStore: closure against formulas, and one error per bad input.

The store is the session's 1-parameter Gaussian toy (``store1``: 60,000 events generated at
θ = 0, weighted at three benchmarks, with its morphing basis). From the weights alone the exact
(joint) likelihood, the rate and any histogram are known, so the Asimov scans can be checked
against closed forms: the Poisson rate term, the minimum at θ_true, the Fisher information.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from assay.analysis import expected_limits
from assay.analysis.expected import ExpectedLimits
from assay.exceptions import ConfigError, StoreError
from assay.inference.histograms import Binning
from assay.morphing import Morpher
from assay.store import EventStore

LUMINOSITY = 3.0  # fb⁻¹: L σ(0) = 3,000 pb⁻¹ × 2.51 pb ≈ 7,500 events, 68% intervals ≈ ±0.01
GRID = np.linspace(-0.05, 0.05, 101)[:, None]


@pytest.fixture(scope="module")
def store(store1):
    """Path of the toy store and its morphing: (path, morpher, Σ_events weights per benchmark)."""
    return store1.path, Morpher.from_dict(store1.morphing), store1.weights_sum()


@pytest.fixture(scope="module")
def truth(store) -> ExpectedLimits:
    return expected_limits(store[0], "truth", GRID, LUMINOSITY)


def half_width(result: ExpectedLimits, tag: str = "68") -> float:
    lo, hi = result.intervals[f"c_{tag}"]
    return 0.5 * (hi - lo)


def test_rate_is_the_poisson_term(store):
    """q(θ) = 2 [L σ(θ) − N + N log(N / L σ(θ))] with N = L σ(θ_true), σ(θ) morphed from the
    store's benchmark cross sections (Σ_events w_ik)."""
    path, morpher, sigma_k = store
    theta_true = np.array([0.02])
    result = expected_limits(path, "rate", GRID, LUMINOSITY, theta_true=theta_true)
    sigma = morpher.morphing_weights(GRID) @ sigma_k
    n = 1000.0 * LUMINOSITY * float(morpher.morphing_weights(theta_true) @ sigma_k)
    mu = 1000.0 * LUMINOSITY * sigma
    np.testing.assert_allclose(result.scan.minus_2_delta_log_l, 2 * (mu - n + n * np.log(n / mu)), atol=1e-8)
    assert result.n_expected == pytest.approx(n) and result.dof == 1


@pytest.mark.parametrize("theta_true", [0.0, 0.02])
def test_truth_on_asimov_data_is_minimal_at_theta_true(store, theta_true):
    """The Asimov sample is weighted at θ_true and the weights' ratio is normalised on it, so
    q(θ) ≥ 0 with q(θ_true) = 0 (Gibbs' inequality), whatever the sample."""
    result = expected_limits(store[0], "truth", GRID, LUMINOSITY, theta_true=np.array([theta_true]))
    q = result.scan.minus_2_delta_log_l
    assert np.all(q > -1e-9) and q[np.argmin(np.abs(GRID[:, 0] - theta_true))] == pytest.approx(0, abs=1e-9)
    assert result.scan.mle[0] == pytest.approx(theta_true, abs=1e-4)
    lo, hi = result.intervals["c_68"]
    assert lo < theta_true < hi
    np.testing.assert_allclose(result.p_values, stats.chi2.sf(q, 1), rtol=1e-12)


def test_truth_interval_follows_the_fisher_information(store, truth):
    """Near θ_true q(θ) ≈ L I (θ − θ_true)², so the 68% half-width is 1/√(L I), with
    I = Σ_i w_i t_i² + σ'²/σ (shape + rate; seed 000's Fisher information in pb), t_i the
    joint score ∇w_i/w_i − σ'/σ from the weights."""
    path, morpher, _ = store
    with EventStore(path) as s:
        weights = s.take(np.arange(s.n_events), fields=("weights",)).weights
    w = weights @ morpher.morphing_weights(np.zeros(1))
    dw = weights @ morpher.morphing_weight_gradients(np.zeros(1))[0]
    sigma, dsigma = w.sum(), dw.sum()
    t = dw / w - dsigma / sigma
    information = 1000.0 * LUMINOSITY * (np.sum(w * t**2) + dsigma**2 / sigma)
    assert half_width(truth) == pytest.approx(1 / np.sqrt(information), rel=0.01)  # measured: 1e-5


def test_less_information_gives_wider_intervals(store, truth):
    """The joint truth ≤ a histogram of x ≤ the rate alone (the histogram's bins cover every event)."""
    path = store[0]
    histogram = Binning(("x",), (np.array([-np.inf, -1.0, 0.0, 1.0, np.inf]),))
    binned = expected_limits(path, histogram, GRID, LUMINOSITY)
    rate = expected_limits(path, "rate", GRID, LUMINOSITY)
    assert half_width(truth) < half_width(binned) < half_width(rate)
    assert half_width(truth, "95") < half_width(binned, "95") < half_width(rate, "95")


def test_an_interval_beyond_the_grid_is_open(store):
    result = expected_limits(store[0], "truth", np.linspace(-0.005, 0.005, 21)[:, None], LUMINOSITY)
    assert result.intervals["c_95"] == (None, None)


def test_max_events_takes_a_seeded_subset(store):
    path = store[0]
    first = expected_limits(path, "truth", GRID, LUMINOSITY, max_events=5_000, seed=1)
    again = expected_limits(path, "truth", GRID, LUMINOSITY, max_events=5_000, seed=1)
    other = expected_limits(path, "truth", GRID, LUMINOSITY, max_events=5_000, seed=2)
    np.testing.assert_array_equal(first.scan.minus_2_delta_log_l, again.scan.minus_2_delta_log_l)
    assert not np.allclose(first.scan.minus_2_delta_log_l, other.scan.minus_2_delta_log_l)


def test_explicit_dof(store):
    result = expected_limits(store[0], "rate", GRID, LUMINOSITY, dof=2)
    q = result.scan.minus_2_delta_log_l
    assert result.dof == 2 and np.allclose(result.p_values, stats.chi2.sf(q, 2))


# ---- bad input ---------------------------------------------------------------------------------
def test_unknown_method_name(store):
    with pytest.raises(ConfigError, match=r"method: 'nope' is not 'truth', 'rate' or a trained model"):
        expected_limits(store[0], "nope", GRID, LUMINOSITY)


def test_grid_of_the_wrong_width(store):
    with pytest.raises(ValueError, match="grid"):
        expected_limits(store[0], "rate", np.zeros((5, 2)), LUMINOSITY)


def test_store_without_a_morphing_basis(tmp_path):
    path = tmp_path / "plain.h5"
    with EventStore.create(path, observables=["x"], benchmarks=["sm"]) as writer:
        writer.append(np.zeros((3, 1)), np.ones((3, 1)))
    with pytest.raises(StoreError, match="no morphing basis; pass the run folder"):
        expected_limits(path, "rate", GRID, LUMINOSITY)


def test_run_folder_without_a_split(tmp_path):
    with pytest.raises(StoreError, match=r"split\.h5: no event split .*assay run CONFIG"):
        expected_limits(tmp_path, "rate", GRID, LUMINOSITY)


# ---- under a memory budget: the test events read chunk by chunk ----------------------------------
class ShiftRatio:
    """An estimator stand-in: log r̂(x|θ, θ_ref) of a unit Gaussian shifted by 0.9 θ (not the truth:
    its R̂(θ) ≠ 1, so the normalisation enters the scan)."""

    predicts = frozenset({"log_ratio"})
    observables_, parameters_ = ("x",), ("c",)

    def log_ratio(self, x, theta, theta_ref):
        from assay.estimators.prediction import Prediction

        t, t_ref = 0.9 * np.atleast_2d(theta)[:, :1], 0.9 * np.asarray(theta_ref)[0]
        return Prediction(t * x[None, :, 0] - 0.5 * t**2 - (t_ref * x[:, 0] - 0.5 * t_ref**2))


class LinearScore:
    """A score-model stand-in (SALLY): t̂(x) = x, histogrammed in quantile bins."""

    predicts = frozenset({"score"})
    observables_, parameters_ = ("x",), ("c",)

    def score(self, x, theta=None):
        from assay.estimators.prediction import Prediction

        return Prediction(np.asarray(x[:, :1], dtype=float))


@pytest.mark.parametrize(
    "method",
    ["truth", "rate", Binning(("x",), (np.array([-np.inf, -1.0, 0.0, 1.0, np.inf]),)), ShiftRatio(),
     LinearScore()],
    ids=["truth", "rate", "histogram", "estimator", "score"],
)  # fmt: skip
def test_a_budget_streams_the_events_and_gives_the_same_scan(store, method, caplog):
    # 60,000 events × (1 observable + 3 weights) × 8 B = 1.9 MB > half of 100 kB: read in chunks of
    # 1,024 events (59 chunks); the sums run in another order, q(θ) agrees to 1e-10 relative
    import logging

    loaded = expected_limits(store[0], method, GRID, LUMINOSITY)
    with caplog.at_level(logging.INFO, logger="assay.inference.asimov"):
        streamed = expected_limits(store[0], method, GRID, LUMINOSITY, memory_gb=1e-4)
    assert "streamed in chunks of 1024" in caplog.text
    assert "reading all" not in caplog.text  # x was never loaded
    q_loaded, q_streamed = loaded.scan.minus_2_delta_log_l, streamed.scan.minus_2_delta_log_l
    assert q_loaded.max() > 1  # a real scan
    np.testing.assert_allclose(q_streamed, q_loaded, rtol=1e-10, atol=1e-10 * q_loaded.max())
    assert streamed.intervals.keys() == loaded.intervals.keys()
    for key, bounds in loaded.intervals.items():
        np.testing.assert_allclose(streamed.intervals[key], bounds, rtol=1e-8)
