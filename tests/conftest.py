"""Shared fixtures: the 2-parameter Gaussian toy, a quadratic morphing basis and a weighted sample.

The toy's dσ(z|θ) is exactly quadratic in θ, so morphing with all monomials of total
degree ≤ 2 reproduces its weights up to float64 rounding; most physics tests below
compare against its closed-form likelihood.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from scipy import stats

from assay.morphing import Morpher, morphing_components
from assay.parameters import Parameter, ParameterSpace
from assay.sampling import EventSource
from assay.simulators.toys import GaussianToy, ToyEvents
from assay.store import EventStore
from assay.unweighting import split_events

# Hand-chosen quadratic basis for 2 parameters: the four axis points fix the linear and
# square terms, (1, 1) fixes the mixed term; condition number ≈ 8.
BASIS_2D = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0], [1.0, 1.0]])
THETA_GEN = np.zeros(2)
N_EVENTS = 20_000


def readonly(*arrays: np.ndarray) -> None:
    """Guard session fixtures against tests that modify them in place."""
    for a in arrays:
        a.setflags(write=False)


@pytest.fixture(scope="session")
def toy() -> GaussianToy:
    return GaussianToy.default(n_params=2)


@pytest.fixture(scope="session")
def morpher() -> Morpher:
    return Morpher(morphing_components(2, 2), BASIS_2D)


@pytest.fixture(scope="session")
def events(toy: GaussianToy) -> ToyEvents:
    """N_EVENTS events drawn at θ_gen = SM, weighted at the BASIS_2D benchmarks (pb)."""
    ev = toy.simulate(N_EVENTS, THETA_GEN, BASIS_2D, np.random.default_rng(20240601))
    readonly(ev.x, ev.z, ev.weights, ev.generator)
    return ev


def chi2_pvalue(observed: np.ndarray, expected: np.ndarray, min_expected: float = 5.0) -> float:
    """Pearson chi2 goodness-of-fit p-value; bins expecting fewer than ``min_expected`` are pooled
    (the chi2 approximation needs a few counts per bin)."""
    observed, expected = np.ravel(observed).astype(float), np.ravel(expected).astype(float)
    keep = expected >= min_expected
    if not keep.all():
        observed = np.append(observed[keep], observed[~keep].sum())
        expected = np.append(expected[keep], expected[~keep].sum())
    return float(stats.chisquare(observed, expected).pvalue)


BASIS_1D = np.array([[0.0], [1.0], [-1.0]])  # sm, plus, minus: a well-conditioned 1-parameter basis


def write_toy_store_1d(path, toy: GaussianToy, n_events: int, seed: int):
    """A 1-parameter toy EventStore (generated at θ = 0, weights at BASIS_1D) for estimator tests."""
    events = toy.simulate(n_events, np.zeros(1), BASIS_1D, np.random.default_rng(seed))
    names = ["sm", "plus", "minus"]
    space = ParameterSpace.from_dict(
        [Parameter("c", (-1.0, 1.0))], {n: {"c": t[0]} for n, t in zip(names, BASIS_1D)}
    )
    morpher = Morpher(morphing_components(1, 2), BASIS_1D)
    with EventStore.create(
        path, observables=["x"], benchmarks=names, morphing=morpher.to_dict(), parameters=space.to_dict()
    ) as writer:
        writer.append(events.x, events.weights)
    return path


TOY1_EVENTS = 60_000  # the 1-parameter toy store shared by the estimator and ensemble tests


@pytest.fixture(scope="session")
def toy1() -> GaussianToy:
    """The 1-parameter, 1-observable Gaussian toy of the estimator tests."""
    return GaussianToy.default(n_params=1, n_obs=1)


@pytest.fixture(scope="session")
def store1(tmp_path_factory, toy1):
    """:data:`TOY1_EVENTS` toy events (generated at θ = 0, weights at BASIS_1D), opened once per session."""
    path = write_toy_store_1d(tmp_path_factory.mktemp("toy1") / "toy1.h5", toy1, TOY1_EVENTS, seed=1)
    with EventStore(path) as store:
        yield store


@pytest.fixture(scope="session")
def split():
    """80% train, 20% test of the toy1 store."""
    return split_events(TOY1_EVENTS, (0.8, 0.0, 0.2), np.random.default_rng(2))


@pytest.fixture(scope="session")
def source(store1, split) -> EventSource:
    """The train partition of the toy1 store."""
    return EventSource(store1, events=split.train)


def small_toy_run(*, seed: int, n_events: int, n_theta0: int = 1000) -> dict:
    """A run config (as parsed YAML) of the 1-parameter toy with a SALLY and an ALICES set, small
    enough for CLI tests: add ``training`` and ``inference`` to it."""
    return {
        "seed": seed,
        "parameters": [{"name": "c", "range": [-1.0, 1.0]}],
        "morphing": {"max_power": 2, "n_basis_trials": 5},
        "simulator": {"kind": "gaussian_toy", "n_events": n_events, "n_obs": 2, "batch_size": n_events // 2},
        "sampling": {
            "sets": [
                {"name": "sally", "kind": "local_score", "n_samples": 1_000},
                {
                    "name": "alices",
                    "kind": "ratio",
                    "theta0": {"kind": "gaussian", "std": 0.4},
                    "n_samples": 2_000,
                    "n_theta0": n_theta0,
                },
            ]
        },
    }


RSS_GROWTH = textwrap.dedent(
    """
    def growth(work):
        # (the highest resident set size while ``work`` runs, sampled every 5 ms, minus the one
        # before; work's result)
        import threading, time
        import psutil
        process = psutil.Process()
        before, peak, done = process.memory_info().rss, [0], threading.Event()
        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], process.memory_info().rss)
                time.sleep(0.005)
        thread = threading.Thread(target=sample)
        thread.start()
        try:
            result = work()
        finally:
            done.set()
            thread.join()
        return max(peak[0], process.memory_info().rss) - before, result
    """
)
"""The peak-RSS measurement of the memory tests' child scripts (include it in their source)."""
