"""Tests of assay.parameters: parameter spaces, benchmarks, their JSON form, and priors over θ."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from assay.exceptions import ConfigError
from assay.parameters import (
    Benchmark,
    FixedPrior,
    GaussianPrior,
    GridPrior,
    Parameter,
    ParameterSpace,
    UniformPrior,
)

PARAMS = [Parameter("cHW", (-1.0, 1.0), unit="TeV^-2", latex=r"$c_{HW}$"), Parameter("cHB", (-2, 3), sm=0.5)]


@pytest.fixture
def space() -> ParameterSpace:
    return ParameterSpace.from_dict(PARAMS, {"sm": {}, "w": {"cHW": 1.0}, "both": {"cHW": -0.5, "cHB": 2.0}})


# ---- parameter space ---------------------------------------------------------------------------
def test_from_dict_fills_sm_values(space):
    assert space.n_params == 2 and space.names == ["cHW", "cHB"]
    assert space.benchmark_names == ["sm", "w", "both"]
    np.testing.assert_array_equal(space.benchmark_thetas, [[0.0, 0.5], [1.0, 0.5], [-0.5, 2.0]])
    np.testing.assert_array_equal(space.theta("w"), [1.0, 0.5])
    np.testing.assert_array_equal(space.sm, [0.0, 0.5])
    np.testing.assert_array_equal(space.ranges, [[-1, 1], [-2, 3]])
    assert [p.label for p in space.parameters] == [r"$c_{HW}$", "cHB"]


def test_unknown_parameter_in_benchmark_raises():
    with pytest.raises(ConfigError, match=r"benchmark 'b1': unknown parameter\(s\) \['cWW'\]"):
        ParameterSpace.from_dict(PARAMS, {"b1": {"cHW": 1.0, "cWW": 2.0}})


def test_duplicate_parameter_names_raise():
    with pytest.raises(ConfigError, match="parameter names must be unique"):
        ParameterSpace.from_dict([PARAMS[0], Parameter("cHW", (0, 1))], {})


def test_duplicate_benchmark_names_raise():
    with pytest.raises(ConfigError, match="benchmark names must be unique"):
        ParameterSpace(tuple(PARAMS), (Benchmark("a", (0.0, 0.0)), Benchmark("a", (1.0, 0.0))))


def test_benchmark_with_wrong_length_raises():
    with pytest.raises(ConfigError, match="benchmark 'a': expected 2 values"):
        ParameterSpace(tuple(PARAMS), (Benchmark("a", (0.0,)),))


def test_empty_range_raises():
    with pytest.raises(ConfigError, match="range must have low < high"):
        Parameter("x", (1.0, 1.0))


def test_unknown_benchmark_lookup_raises(space):
    with pytest.raises(KeyError, match="unknown benchmark 'nope'"):
        space.theta("nope")


def test_json_round_trip(space):
    data = json.loads(json.dumps(space.to_dict()))
    again = ParameterSpace.from_json(data)
    assert again == space
    np.testing.assert_array_equal(again.benchmark_thetas, space.benchmark_thetas)
    assert again.parameters[0].unit == "TeV^-2" and again.parameters[1].sm == 0.5


def test_with_benchmarks_rejects_mismatched_names():
    # BUG: zip() silently drops the third point when only two names are given
    empty = ParameterSpace.from_dict(PARAMS, {})
    with pytest.raises(ConfigError, match="names"):
        empty.with_benchmarks(np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]), ["p", "q"])


def test_without_benchmarks_and_with_benchmarks():
    empty = ParameterSpace.from_dict(PARAMS, {})
    assert empty.benchmark_thetas.shape == (0, 2)
    replaced = empty.with_benchmarks(np.array([[0.1, 0.2], [0.3, 0.4]]), ["p", "q"])
    np.testing.assert_array_equal(replaced.theta("q"), [0.3, 0.4])
    assert ParameterSpace.from_json(json.loads(json.dumps(replaced.to_dict()))) == replaced


# ---- priors -----------------------------------------------------------------------------------------
def test_gaussian_prior_moments():
    n = 20_000
    mean, std = np.array([0.3, -1.0]), np.array([0.5, 2.0])
    draws = GaussianPrior(mean=mean, std=std, n_params=2).sample(n, np.random.default_rng(0))
    assert draws.shape == (n, 2)
    # standard errors of the sample mean (σ/√n) and sample std (σ/√(2n)); 5 of them
    assert np.all(np.abs(draws.mean(axis=0) - mean) < 5 * std / np.sqrt(n))
    assert np.all(np.abs(draws.std(axis=0) - std) < 5 * std / np.sqrt(2 * n))
    assert abs(np.corrcoef(draws.T)[0, 1]) < 5 / np.sqrt(n)  # independent parameters


def test_gaussian_prior_scalar_broadcast_and_seed():
    prior = GaussianPrior(mean=0.0, std=0.4, n_params=3)
    a = prior.sample(100, np.random.default_rng(1))
    np.testing.assert_array_equal(a, prior.sample(100, np.random.default_rng(1)))
    assert a.shape == (100, 3)


@pytest.mark.parametrize("std", [0.0, -1.0, [0.5, -0.5]])
def test_gaussian_prior_non_positive_std_raises(std):
    with pytest.raises(ConfigError, match=r"GaussianPrior\.std"):
        GaussianPrior(mean=0.0, std=std, n_params=2).sample(1, np.random.default_rng(0))


def test_gaussian_prior_non_finite_mean_raises():
    with pytest.raises(ConfigError, match=r"GaussianPrior\.mean: expected finite"):
        GaussianPrior(mean=np.nan, std=1.0).sample(1, np.random.default_rng(0))


def test_uniform_prior_inside_bounds_and_uniform():
    low, high = np.array([-1.0, 2.0]), np.array([1.0, 2.5])
    draws = UniformPrior(low=low, high=high, n_params=2).sample(10_000, np.random.default_rng(2))
    assert np.all(draws >= low) and np.all(draws < high)
    for a in range(2):
        assert stats.kstest(draws[:, a], stats.uniform(low[a], high[a] - low[a]).cdf).pvalue > 1e-3


def test_uniform_prior_bad_bounds_raise():
    with pytest.raises(ConfigError, match="expected low < high"):
        UniformPrior(low=1.0, high=[2.0, 0.5], n_params=2).sample(1, np.random.default_rng(0))


def test_grid_prior_points():
    prior = GridPrior(low=[-1.0, 0.0], high=[1.0, 2.0], n_points=[5, 3], n_params=2)
    pts = prior.points()
    assert pts.shape == (15, 2)
    np.testing.assert_array_equal(pts[0], [-1.0, 0.0])
    np.testing.assert_array_equal(pts[-1], [1.0, 2.0])
    np.testing.assert_allclose(np.unique(pts[:, 0]), [-1, -0.5, 0, 0.5, 1], atol=1e-15)
    np.testing.assert_allclose(np.unique(pts[:, 1]), [0, 1, 2], atol=1e-15)
    assert len(np.unique(pts, axis=0)) == 15
    # sample cycles through the grid in row-major order
    np.testing.assert_array_equal(prior.sample(17, np.random.default_rng(0)), pts[np.arange(17) % 15])


def test_fixed_prior_draws_only_its_points():
    points = ((0.0, 1.0), (2.0, 3.0), (4.0, 5.0))
    prior = FixedPrior(points)
    draws = prior.sample(3000, np.random.default_rng(3))
    assert prior.n_params == 2 and draws.shape == (3000, 2)
    counts = [np.sum(np.all(draws == p, axis=1)) for p in points]
    assert sum(counts) == 3000
    assert stats.chisquare(counts).pvalue > 1e-3  # uniform over the points
