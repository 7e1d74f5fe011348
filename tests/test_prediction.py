"""One prediction type: the log_ratio / score contract of every estimator (assay.estimators.prediction).

The contract test runs every kind of model — the six likelihood-ratio estimators, the morphing-aware
one, SALLY, SALLINO, the density estimators NDE (NSF and MAF) and SCANDAL, ensembles of ALICES, of SALLY
and of NDE, and a Boosted Information Tree — fitted tiny
on random data (its numbers are meaningless; only shapes, identities and errors are checked). The
physics tests train small models on the Gaussian toy and compare with its exact log r and score.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import BASIS_2D

from assay.bit import BoostedInformationTree
from assay.estimators import (
    ALICE,
    ALICES,
    CARL,
    CASCAL,
    NDE,
    RASCAL,
    ROLR,
    SALLINO,
    SALLY,
    SCANDAL,
    Ensemble,
    Prediction,
    Predictor,
)
from assay.estimators.prediction import check_predicts
from assay.exceptions import NotFittedError, PredictionError
from assay.inference.likelihood import log_ratio_function
from assay.morphing import Morpher, morphing_components
from assay.parameters import GaussianPrior
from assay.sampling import EventSource, local_score_training_set, ratio_training_set, unweight
from assay.training_set import TrainingSet

torch.set_num_threads(1)  # 2 shared cores: torch's default thread pool collapses under contention

REF = np.zeros(2)
THETAS = np.array([[0.3, -0.2], [0.0, 0.0], [-0.4, 0.1]])
TINY = dict(hidden=(8,), epochs=1, batch_size=128, seed=0, progress=False)
N_TRAIN = 400


def _ratio_set(rng: np.random.Generator) -> TrainingSet:
    n = N_TRAIN
    return TrainingSet(
        x=rng.normal(size=(n, 2)), observables=("a", "b"), parameters=("c", "d"), kind="ratio",
        theta0=rng.normal(0, 0.5, (n, 2)), theta1=np.zeros((n, 2)), y=rng.integers(0, 2, n).astype(float),
        log_r=rng.normal(0, 0.3, n), t0=rng.normal(size=(n, 2)),
    )  # fmt: skip


def _local_set(rng: np.random.Generator) -> TrainingSet:
    x = rng.normal(size=(N_TRAIN, 2))
    return TrainingSet(
        x=x, observables=("a", "b"), parameters=("c", "d"), kind="local_score",
        theta0=np.zeros((N_TRAIN, 2)), t0=np.sin(x),
    )  # fmt: skip


def _plain_set(rng: np.random.Generator) -> TrainingSet:
    n = N_TRAIN
    return TrainingSet(
        x=rng.normal(size=(n, 2)), observables=("a", "b"), parameters=("c", "d"), kind="plain",
        theta0=rng.normal(0, 0.5, (n, 2)), t0=rng.normal(size=(n, 2)),
    )  # fmt: skip


def _bit(rng: np.random.Generator) -> BoostedInformationTree:
    """A few trees on R(x|θ) = (1 + θ·u)², u = x/2: coefficients (2 u_a, 2 u_a u_b) times w."""
    x = rng.uniform(-1, 1, size=(N_TRAIN, 2))
    w = np.full(N_TRAIN, 1.0 / N_TRAIN)
    u = 0.5 * x
    hessian = 2 * np.column_stack([u[:, 0] ** 2, u[:, 0] * u[:, 1], u[:, 1] ** 2])
    derivatives = w[:, None] * np.column_stack([2 * u, hessian])
    return BoostedInformationTree(n_trees=3, max_depth=2, min_size=20).fit(x, w, derivatives=derivatives)


def _sallino(sally: SALLY, rng: np.random.Generator) -> SALLINO:
    x = rng.normal(size=(300, 2))
    return SALLINO(sally, n_bins=5).fit(x, lambda theta: np.exp(0.5 * x @ theta))


BUILDERS = {
    **{
        cls.__name__: (lambda rng, cls=cls: cls(**TINY).fit(_ratio_set(rng)))
        for cls in (CARL, ROLR, ALICE, ALICES, RASCAL, CASCAL)
    },
    "ALICES-morphing": lambda rng: ALICES(morphing=Morpher(morphing_components(2, 2), BASIS_2D), **TINY).fit(
        _ratio_set(rng)
    ),
    "SALLY": lambda rng: SALLY(**TINY).fit(_local_set(rng)),
    "SALLINO": lambda rng: _sallino(SALLY(**TINY).fit(_local_set(rng)), rng),
    "Ensemble-ALICES": lambda rng: Ensemble.from_estimator(ALICES(**TINY), 3).fit(
        _ratio_set(rng), n_workers=1
    ),
    "Ensemble-SALLY": lambda rng: Ensemble.from_estimator(SALLY(**TINY), 2).fit(_local_set(rng), n_workers=1),
    "NDE": lambda rng: NDE(**TINY).fit(_plain_set(rng)),
    "NDE-maf": lambda rng: NDE(flow="maf", **TINY).fit(_plain_set(rng)),
    "SCANDAL": lambda rng: SCANDAL(**TINY).fit(_plain_set(rng)),
    "Ensemble-NDE": lambda rng: Ensemble.from_estimator(NDE(**TINY), 2).fit(_plain_set(rng), n_workers=1),
    "BIT": _bit,
}
PREDICTS = {
    **{name: {"log_ratio", "score"} for name in ("CARL", "ROLR", "ALICE", "ALICES", "RASCAL", "CASCAL")},
    "ALICES-morphing": {"log_ratio", "score"},
    "SALLY": {"score"},
    "SALLINO": {"log_ratio"},
    "Ensemble-ALICES": {"log_ratio", "score"},
    "Ensemble-SALLY": {"score"},
    **{
        name: {"log_ratio", "score", "log_likelihood"}
        for name in ("NDE", "NDE-maf", "SCANDAL", "Ensemble-NDE")
    },
    "BIT": {"log_ratio", "score"},
}
HAS_REFERENCE = {"SALLY", "Ensemble-SALLY", "BIT"}  # score(x) without θ works


@pytest.fixture(scope="module")
def fitted():
    cache: dict[str, object] = {}

    def get(name: str):
        if name not in cache:
            cache[name] = BUILDERS[name](np.random.default_rng(1))
        return cache[name]

    return get


@pytest.fixture(scope="module")
def x_test() -> np.ndarray:
    return np.random.default_rng(2).uniform(-1, 1, size=(50, 2))


# ---- the contract -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(BUILDERS))
def test_prediction_contract(name, fitted, x_test):
    model = fitted(name)
    assert isinstance(model, Predictor) and model.predicts == PREDICTS[name]
    ensemble = isinstance(model, Ensemble)
    if "log_ratio" in model.predicts:
        check_predicts(model, "log_ratio")
        log_r = model.log_ratio(x_test, THETAS, REF)
        assert isinstance(log_r, Prediction) and log_r.mean.shape == (3, 50)
        assert (log_r.std is not None) == ensemble
        if ensemble:
            assert log_r.std.shape == (3, 50) and np.all(log_r.std[[0, 2]] > 0)
        assert not log_r.mean.flags.writeable
        one = model.log_ratio(x_test, THETAS[2], REF).mean
        np.testing.assert_allclose(one, log_r.mean[2:], rtol=1e-5, atol=1e-6)  # float32 summation order
        np.testing.assert_allclose(model.log_ratio(x_test, REF, REF).mean, 0.0, atol=1e-6)
        np.testing.assert_allclose(model.log_ratio(x_test, THETAS[0], THETAS[0]).mean, 0.0, atol=1e-6)
        # any θ_ref: log r̂(θ, θ') = log r̂(θ, ref) − log r̂(θ', ref)
        shifted = model.log_ratio(x_test, THETAS[0], THETAS[2]).mean[0]
        np.testing.assert_allclose(shifted, log_r.mean[0] - log_r.mean[2], atol=1e-5)
        with pytest.raises(ValueError, match="theta_ref: expected one point"):
            model.log_ratio(x_test, THETAS, THETAS)
    else:
        with pytest.raises(PredictionError, match=r"it has no log_ratio; use a likelihood-ratio method"):
            model.log_ratio(x_test, THETAS, REF)
        with pytest.raises(PredictionError, match="no log_ratio"):
            check_predicts(model, "log_ratio")
    if "score" in model.predicts:
        score = model.score(x_test, REF)
        assert isinstance(score, Prediction) and score.mean.shape == (50, 2)
        assert (score.std is not None) == ensemble and not score.mean.flags.writeable
        if name in HAS_REFERENCE:
            np.testing.assert_array_equal(model.score(x_test).mean, score.mean)
        else:
            with pytest.raises(PredictionError, match="no reference point: call score"):
                model.score(x_test)
            assert model.score(x_test, THETAS[0]).mean.shape == (50, 2)
    else:
        with pytest.raises(PredictionError, match=rf"{name} estimates .* only; it has no score"):
            model.score(x_test, REF)


@pytest.mark.parametrize("name", ["Ensemble-ALICES", "Ensemble-SALLY", "Ensemble-NDE"])
def test_ensemble_is_the_mean_and_std_of_its_members(name, fitted, x_test):
    ens = fitted(name)
    if "log_ratio" in ens.predicts:
        members = [m.log_ratio(x_test, THETAS, REF).mean for m in ens.members_]
        prediction = ens.log_ratio(x_test, THETAS, REF)
    else:
        members = [m.score(x_test).mean for m in ens.members_]
        prediction = ens.score(x_test)
    assert ens.members_[0].score(x_test, REF).std is None
    np.testing.assert_allclose(prediction.mean, np.mean(members, axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(prediction.std, np.std(members, axis=0), rtol=1e-12, atol=1e-12)


def test_sally_predicts_only_at_its_reference_point(fitted, x_test):
    sally = fitted("SALLY")
    np.testing.assert_array_equal(sally.theta_ref_, REF)
    np.testing.assert_array_equal(sally.score(x_test, REF[None]).mean, sally.evaluate_score(x_test))
    with pytest.raises(PredictionError, match=r"at its θ_ref = \[0.0, 0.0\] only, got theta = \[0.3, -0.2\]"):
        sally.score(x_test, THETAS[0])
    with pytest.raises(PredictionError, match=r"SALLY estimates the score t\(x\|θ\) only; it has no log_"):
        sally.log_ratio(x_test, THETAS, REF)
    with pytest.raises(PredictionError, match=r"at its θ_ref .* only"):
        fitted("Ensemble-SALLY").score(x_test, THETAS[0])


@pytest.mark.parametrize(
    "model",
    [
        ALICES(**TINY),
        SALLY(**TINY),
        NDE(**TINY),
        Ensemble.from_estimator(CARL(**TINY), 2),
        BoostedInformationTree(),
    ],
    ids=lambda m: type(m).__name__,
)
def test_not_fitted(model, x_test):
    if "log_ratio" in model.predicts:
        with pytest.raises(NotFittedError, match="not fitted"):
            model.log_ratio(x_test, THETAS, REF)
    with pytest.raises(NotFittedError, match="not fitted"):
        model.score(x_test, REF)


def test_sallino_not_fitted(x_test):
    with pytest.raises(NotFittedError, match="SALLINO is not fitted"):
        SALLINO(SALLY(**TINY)).log_ratio(x_test, THETAS, REF)


# ---- the Prediction type ----------------------------------------------------------------------
def test_prediction_validates_and_is_read_only():
    mean = np.zeros((2, 3))
    p = Prediction(mean, std=np.ones((2, 3)))
    assert mean.flags.writeable and not p.mean.flags.writeable and not p.std.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        p.mean[0, 0] = 1.0
    with pytest.raises(ValueError, match=r"std: expected the shape of mean \(2, 3\), got \(3, 2\)"):
        Prediction(mean, std=np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"mean: expected a 2-d array.* got shape \(3,\)"):
        Prediction(np.zeros(3))
    with pytest.raises(AttributeError):
        p.mean = mean  # frozen
    members = [np.full((1, 2), v) for v in (1.0, 2.0, 6.0)]
    both = Prediction.from_members(members)
    np.testing.assert_array_equal(both.mean, [[3.0, 3.0]])
    np.testing.assert_allclose(both.std, np.std([1.0, 2.0, 6.0]))
    assert repr(both) == "Prediction(mean (1, 2), std (1, 2))"


def test_objects_without_the_prediction_methods_are_refused():
    class Legacy:
        def evaluate_log_ratio(self, x, theta0, theta1, score=False):
            return np.zeros((len(theta0), len(x)))

    with pytest.raises(PredictionError, match="Legacy does not implement the prediction methods"):
        log_ratio_function(Legacy(), np.zeros((3, 2)), REF)


def test_log_ratio_function_wraps_any_predictor(fitted, x_test):
    for name in ("ALICES", "Ensemble-ALICES", "BIT", "SALLINO", "SCANDAL"):
        model = fitted(name)
        log_r = log_ratio_function(model, x_test, REF)
        np.testing.assert_array_equal(log_r(THETAS), model.log_ratio(x_test, THETAS, REF).mean)
    with pytest.raises(PredictionError, match=r"SALLY estimates the score .* no log_ratio"):
        log_ratio_function(fitted("SALLY"), x_test, REF)


# ---- physics: predictions against the Gaussian toy's exact log r and score ----------------------
SM1 = np.zeros(1)
TOY_TRAINING = dict(
    hidden=(32, 32), epochs=8, batch_size=256, lr=(1e-2, 1e-4), clip_grad_norm=1.0, seed=0, progress=False
)


@pytest.fixture(scope="module")
def toy_x(store1, split) -> np.ndarray:
    """2,000 test events x ~ p(x|SM) of the 1-parameter toy ``(2000, 1)``."""
    return unweight(EventSource(store1, events=split.test), SM1, 2000, np.random.default_rng(6)).x


def test_alices_prediction_follows_the_exact_likelihood(source, toy_x, toy1):
    """Measured (training seeds 0-2): corr(log r̂, log r) = 0.972-0.978, corr(t̂(x|θ), t) = 0.958-0.992."""
    prior = GaussianPrior(mean=0.0, std=0.8, n_params=1)
    data = ratio_training_set(source, prior, SM1, 20_000, n_theta0=1000, rng=np.random.default_rng(3))
    alices = ALICES(**TOY_TRAINING).fit(data)
    thetas = np.array([[-0.8], [-0.3], [0.4], [0.9]])
    log_r = alices.log_ratio(toy_x, thetas, SM1).mean
    exact = np.stack([toy1.log_ratio(toy_x, th, SM1) for th in thetas])
    assert np.corrcoef(log_r.ravel(), exact.ravel())[0, 1] > 0.93
    for theta in (SM1, thetas[2]):
        t_hat = alices.score(toy_x, theta).mean
        assert np.corrcoef(t_hat[:, 0], toy1.score(toy_x, theta)[:, 0])[0, 1] > 0.9


def test_sally_prediction_follows_the_exact_score(source, toy_x, toy1):
    """Measured (training seeds 0-2): corr(t̂, t) = 0.980-0.982."""
    local = local_score_training_set(source, SM1, 10_000, rng=np.random.default_rng(5))
    sally = SALLY(**TOY_TRAINING).fit(local)
    t_hat = sally.score(toy_x).mean
    assert np.corrcoef(t_hat[:, 0], toy1.score(toy_x, SM1)[:, 0])[0, 1] > 0.95


def test_bit_score_is_normalised(toy, morpher, events):
    """BIT's score subtracts its own ∇σ/σ, so it is the exact score t(x|SM) (mean zero under SM),
    not the linear coefficients R_a = t + ∇σ/σ. Measured on three test samples (seeds 5-7): relative
    MSE 0.9-1.1% (300% for R_a), |E_SM[t̂]| <= 0.013 (R_a: 0.95-1.34), the training sample's ∇σ/σ
    within 0.011 of the exact one, relative MSE of log r̂ 1.0-1.3%."""
    bit = BoostedInformationTree(n_trees=100, min_size=50).fit(events.x, events.weights, morpher=morpher)
    test = toy.simulate(20_000, REF, BASIS_2D, np.random.default_rng(5))
    exact = toy.score(test.x, REF)
    t_hat = bit.score(test.x).mean
    shift = toy.cross_section_gradient(REF) / toy.cross_section(REF)
    np.testing.assert_allclose(bit.cross_section_coefficients_[:2], shift, atol=0.03)  # the sample's ∇σ/σ
    assert np.mean((t_hat - exact) ** 2) / np.var(exact) < 0.025
    linear = bit.linear_coefficients(test.x)
    assert np.abs(t_hat.mean(axis=0)).max() < 0.05 < np.abs(linear.mean(axis=0)).max()
    thetas = np.array([[0.5, -0.3], [-0.4, 0.4]])
    log_r = bit.log_ratio(test.x, thetas, REF).mean
    exact_log_r = toy.log_likelihood(test.x, thetas).T - toy.log_likelihood(test.x, REF)[None]
    assert np.mean((log_r - exact_log_r) ** 2) / np.var(exact_log_r) < 0.05
