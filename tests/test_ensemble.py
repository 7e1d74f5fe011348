"""Ensembles on the 1-parameter Gaussian toy with exact likelihood (assay.estimators.ensemble).

The set-up follows tests/test_estimators.py (minimal copy): events simulated at the SM with
exact quadratic morphing (benchmarks θ = 0, 1, −1), split by event; training sets from the
train partition, test events x ~ p(x|SM) from the test partition, compared with the toy's
exact log r(x|θ0, SM) at 10 θ0 ~ N(0, 0.8²). Members are small (hidden (32, 32), 20k
samples, 8 epochs) to keep the file fast; the ensemble statements below hold for any
member quality, the accuracy bounds are loose and say where their numbers come from.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from assay.estimators import (
    ALICES,
    SALLY,
    Ensemble,
    Prediction,
    load_estimator,
    poisson_bootstrap,
)
from assay.exceptions import NotFittedError, PredictionError, StoreError
from assay.parameters import GaussianPrior
from assay.sampling import EventSource, local_score_training_set, ratio_training_set, unweight
from assay.training_set import TrainingSet

torch.set_num_threads(1)  # 2 shared cores: torch's default thread pool collapses under contention

SM = np.zeros(1)
PRIOR = GaussianPrior(mean=0.0, std=0.8, n_params=1)
TRAINING = dict(
    hidden=(32, 32), epochs=8, batch_size=256, lr=(1e-2, 1e-4), clip_grad_norm=1.0, progress=False
)
TINY = dict(hidden=(8,), epochs=1, batch_size=256, progress=False)


# ---- data (as in tests/test_estimators.py) -------------------------------------------------------
@pytest.fixture(scope="module")
def ratio_set(source) -> TrainingSet:
    return ratio_training_set(source, PRIOR, SM, 20_000, n_theta0=1000, rng=np.random.default_rng(3))


@pytest.fixture(scope="module")
def x_sm(store1, split) -> np.ndarray:
    """5,000 events x ~ p(x|SM) from the test partition ``(5000, 1)``."""
    return unweight(EventSource(store1, events=split.test), SM, 5000, np.random.default_rng(6)).x


@pytest.fixture(scope="module")
def theta0() -> np.ndarray:
    return np.random.default_rng(7).normal(0.0, 0.8, (10, 1))


@pytest.fixture(scope="module")
def ensemble(ratio_set) -> Ensemble:
    """3 ALICES, Poisson-bootstrapped from one set, trained one after the other in this process."""
    return Ensemble.from_estimator(ALICES(**TRAINING), 3).fit(ratio_set, n_workers=1, seed=0)


def member_log_ratios(ensemble: Ensemble, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Every member's log r̂(x|θ, SM), ``(n_members, n_theta, n_events)``."""
    return np.stack([m.log_ratio(x, theta, SM).mean for m in ensemble.members_])


def mse(estimate: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean((estimate - exact) ** 2))


# ---- predictions -------------------------------------------------------------------------------
def test_members_differ_and_the_mean_beats_the_worst_member(ensemble, x_sm, theta0, toy1):
    first_layers = [m.net_.mlp[0].weight.detach().numpy() for m in ensemble.members_]
    assert not np.allclose(first_layers[0], first_layers[1]) and not np.allclose(
        first_layers[1], first_layers[2]
    )
    x = x_sm[:2000]
    exact = np.stack([toy1.log_ratio(x, th, SM) for th in theta0])
    prediction = ensemble.log_ratio(x, theta0, SM)
    assert isinstance(prediction, Prediction)
    assert prediction.mean.shape == prediction.std.shape == (10, 2000)
    members = member_log_ratios(ensemble, x, theta0)
    np.testing.assert_allclose(prediction.mean, members.mean(axis=0))
    np.testing.assert_allclose(prediction.std, members.std(axis=0))
    assert np.all(prediction.std > 0)  # θ0 ≠ θ1 everywhere: no member is exact
    member_mse = [mse(m, exact) for m in members]
    # Jensen: MSE(mean) ≤ mean of the members' MSEs ≤ the worst; a broken average would fail it
    assert mse(prediction.mean, exact) <= np.mean(member_mse) <= max(member_mse)
    # accuracy as a fraction of Var(exact log r) ≈ 0.19, as in tests/test_estimators.py. Measured with
    # ensemble seeds 0, 1, 2: mean 0.026, 0.033, 0.037; members 0.027-0.059. Bound: twice the worst mean.
    assert mse(prediction.mean, exact) / np.var(exact) < 0.08
    # the spread tracks the error: members disagree more where they are wrong (measured r = 0.78-0.84)
    error = np.abs(prediction.mean - exact).ravel()
    assert np.corrcoef(error, prediction.std.ravel())[0, 1] > 0.4


def test_expectation_check_is_one_and_calibration_restores_it(ensemble, x_sm, toy1):
    grid = np.array([[-0.6], [-0.3], [0.3], [0.6]])
    check = ensemble.expectation_check(x_sm, grid, SM)
    assert check.ratio_mean.shape == check.standard_error.shape == (4,)
    np.testing.assert_array_equal(check.theta, grid)
    # the exact ratio on the same events: E_SM[r(x|θ, SM)] = 1 up to Monte Carlo noise (4 SE)
    r_exact = np.exp(np.stack([toy1.log_ratio(x_sm, th, SM) for th in grid]))
    se_exact = r_exact.std(axis=1) / np.sqrt(len(x_sm))
    assert np.all(np.abs(r_exact.mean(axis=1) - 1) < 4 * se_exact)
    # the estimate: 4 SE of Monte Carlo noise (SE = 0.003-0.007 here) plus 0.05 for the estimator's own
    # bias (measured |R̂ − 1| ≤ 0.017 with seeds 0, 1, 2). A mis-normalised r̂, e.g. one missing the
    # σ(θ)/σ(SM) = 0.43, 0.66, 1.46, 2.03 of this toy at these θ, would be off by 34-103%.
    assert np.all(np.abs(check.ratio_mean - 1) < 4 * check.standard_error + 0.05), check
    # R̂ is computed from the events, not the estimator: a weighted call with unit weights agrees
    weighted = ensemble.expectation_check(x_sm, grid, SM, weights=np.ones(len(x_sm)))
    np.testing.assert_allclose(weighted.ratio_mean, check.ratio_mean, rtol=1e-12)
    calibrated = ensemble.calibrated_log_ratio(x_sm, check)
    np.testing.assert_allclose(np.exp(calibrated.mean).mean(axis=1), 1.0, rtol=1e-10)
    raw = ensemble.log_ratio(x_sm, grid, SM)
    np.testing.assert_array_equal(calibrated.std, raw.std)


def test_sally_ensemble_scores(source, x_sm, toy1):
    local = local_score_training_set(source, SM, 10_000, rng=np.random.default_rng(5))
    ens = Ensemble([SALLY(**TRAINING), SALLY(**TRAINING)]).fit(local, n_workers=1, seed=4)
    prediction = ens.score(x_sm[:1000])
    members = [m.score(x_sm[:1000]).mean for m in ens.members_]
    assert prediction.mean.shape == prediction.std.shape == (1000, 1)
    exact = toy1.score(x_sm[:1000], SM)
    assert mse(prediction.mean, exact) <= max(mse(m, exact) for m in members)
    assert mse(prediction.mean, exact) / np.var(exact) < 0.03  # measured 0.0075-0.011 (seeds 0, 1, 2)
    with pytest.raises(PredictionError, match=r"Ensemble of SALLY estimates the score .* no log_ratio"):
        ens.log_ratio(x_sm[:10], SM, SM)


# ---- persistence -------------------------------------------------------------------------------
def test_save_load_round_trip(ensemble, x_sm, theta0, tmp_path):
    path = ensemble.save(tmp_path / "ens")
    assert sorted(p.name for p in path.iterdir()) == ["ensemble.json", "member_0", "member_1", "member_2"]
    loaded = load_estimator(path)
    assert isinstance(loaded, Ensemble) and loaded.n_members == 3
    assert loaded.fit_seconds_ == ensemble.fit_seconds_ and loaded.resampling_ == "bootstrap"
    before = member_log_ratios(ensemble, x_sm[:500], theta0)
    np.testing.assert_array_equal(member_log_ratios(loaded, x_sm[:500], theta0), before)
    ensemble.save(path)  # replacing a saved ensemble is fine
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(StoreError, match="not a saved ensemble"):
        ensemble.save(tmp_path / "notes")


def test_load_refuses_member_paths_outside_the_directory(ensemble, tmp_path):
    path = ensemble.save(tmp_path / "ens")
    meta = json.loads((path / "ensemble.json").read_text())
    (path / "ensemble.json").write_text(json.dumps({**meta, "members": ["member_0", "../elsewhere"]}))
    with pytest.raises(StoreError, match="'members'"):
        load_estimator(path)
    (path / "ensemble.json").write_text(json.dumps({**meta, "format": "other"}))
    with pytest.raises(StoreError, match="'format'"):
        load_estimator(path)


# ---- parallel training and resampling -----------------------------------------------------------
def test_dask_cluster_gives_the_serial_result(ratio_set, x_sm):
    """Same seeds, same members: on 2 in-process Dask workers as one after the other here."""
    from dask.distributed import Client, LocalCluster

    arrays = [*ratio_set.fields_present(), "event_index"]
    small = [replace(ratio_set, **{k: getattr(ratio_set, k)[i::4] for k in arrays}) for i in range(2)]
    proto = ALICES(**TINY)
    serial = Ensemble.from_estimator(proto, 3).fit(small[0], n_workers=1, seed=3)
    by_sets = Ensemble.from_estimator(proto, 2).fit(small, resampling="sets", n_workers=1, seed=3)
    options = dict(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
    with LocalCluster(**options) as cluster, Client(cluster) as client:
        remote = Ensemble.from_estimator(proto, 3).fit(small[0], client=client, seed=3)
        remote_sets = Ensemble.from_estimator(proto, 2).fit(small, resampling="sets", client=client, seed=3)
    x = x_sm[:200]
    for a, b in ((serial, remote), (by_sets, remote_sets)):
        np.testing.assert_array_equal(
            member_log_ratios(a, x, np.array([0.5])), member_log_ratios(b, x, np.array([0.5]))
        )
    assert remote_sets.resampling_ == "sets"
    another_seed = Ensemble.from_estimator(proto, 3).fit(small[0], n_workers=1, seed=4)
    assert not np.array_equal(
        another_seed.log_ratio(x, np.array([0.5]), SM).mean, serial.log_ratio(x, np.array([0.5]), SM).mean
    )


def test_bootstrap_weights_are_poisson_one():
    n = 200_000
    sign = np.where(np.arange(n) % 10 == 0, -1.0, 1.0)  # negative-weight samples keep their sign
    data = TrainingSet(
        x=np.zeros((n, 1)), observables=("x",), parameters=("c",), kind="plain", sample_weight=sign
    )
    weights = poisson_bootstrap(data, np.random.default_rng(0)).sample_weight
    counts = weights * sign
    assert np.array_equal(counts, np.round(counts)) and counts.min() == 0
    # Poisson(1): mean 1, variance 1, P(0) = P(1) = 1/e; 5σ bounds for n = 200k
    assert abs(counts.mean() - 1) < 5 / np.sqrt(n)
    assert abs(counts.var() - 1) < 5 * np.sqrt(3 / n)  # Var of the sample variance ≈ (μ4 − σ⁴)/n = 3/n
    for k in (0, 1):
        assert abs(np.mean(counts == k) - np.exp(-1)) < 5 * np.sqrt(np.exp(-1) * (1 - np.exp(-1)) / n)
    assert data.sample_weight is sign  # the input is untouched


# ---- bad input ---------------------------------------------------------------------------------
def test_bad_input(ratio_set):
    with pytest.raises(ValueError, match="at least two estimators"):
        Ensemble([ALICES()])
    ens = Ensemble.from_estimator(ALICES(**TINY), 2)
    with pytest.raises(NotFittedError, match="not fitted"):
        ens.log_ratio(np.zeros((2, 1)), SM, SM)
    with pytest.raises(ValueError, match=r"valid names are \['bootstrap', 'sets'\]"):
        ens.fit(ratio_set, resampling="jackknife")
    with pytest.raises(ValueError, match="one set per member"):
        ens.fit(ratio_set, resampling="sets")
    with pytest.raises(ValueError, match="one TrainingSet or 2"):
        ens.fit([ratio_set] * 3, n_workers=1)
