"""Tests of assay.morphing: closure on the quadratic toy, exact gradients, bases and their errors."""

from __future__ import annotations

import json
import math
import re
import warnings

import numpy as np
import pytest
from conftest import BASIS_2D, N_EVENTS, THETA_GEN

from assay.exceptions import MorphingError
from assay.morphing import (
    IllConditionedMorphingWarning,
    Morpher,
    _monomials,
    expected_squared_weights,
    morphing_components,
    optimize_basis,
)

RANGES_2D = np.array([[-1.0, 1.0], [-1.0, 1.0]])


# ---- components ----------------------------------------------------------------------
def test_components_order_quadratic_2d():
    # docstring contract: sorted by total degree, then lexicographically; constant first
    assert morphing_components(2, 2).tolist() == [[0, 0], [0, 1], [1, 0], [0, 2], [1, 1], [2, 0]]


@pytest.mark.parametrize(
    ("n_params", "max_power", "overall", "expected"),
    [
        (1, 2, None, 3),
        (2, 2, None, 6),
        (3, 2, None, 10),
        (2, 3, None, 10),
        (3, 3, None, 20),
        (4, 2, None, 15),
        (2, 2, 4, 9),  # no overall limit beyond the per-parameter one: full 3x3 tensor product
        (3, 2, 1, 4),  # linear only
    ],
)
def test_component_counts(n_params, max_power, overall, expected):
    comps = morphing_components(n_params, max_power, overall)
    assert comps.shape == (expected, n_params)
    if overall is None:  # all monomials of total degree <= d in n variables: C(n + d, d)
        assert expected == math.comb(n_params + max_power, max_power)
    assert len({tuple(c) for c in comps}) == expected  # no duplicates
    limit = max_power if overall is None else overall
    assert comps.sum(axis=1).max() <= limit and comps.max() <= max_power


def test_components_per_parameter_powers_and_overall_limit():
    # θ1 up to θ1², θ2 only linear, total degree ≤ 2: θ1²θ2 (degree 3) is excluded
    comps = morphing_components(2, (2, 1), max_overall_power=2)
    assert comps.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1], [2, 0]]


def test_components_negative_power_raises():
    with pytest.raises(MorphingError, match="max_power"):
        morphing_components(2, (2, -1))


def test_components_max_power_of_wrong_length_raises():
    # BUG: a raw numpy broadcast error instead of a MorphingError naming max_power
    with pytest.raises(MorphingError, match="max_power"):
        morphing_components(3, (2, 1))


def test_components_zero_parameters_error_names_n_params():
    # BUG: the message blames max_power ("max_power must be >= 0 per parameter, got 2")
    with pytest.raises(MorphingError, match="n_params"):
        morphing_components(0, 2)


# ---- closure -------------------------------------------------------------------------
def test_one_parameter_docstring_weights_are_lagrange_polynomials():
    # benchmarks 0, 1, -1: c_k(θ) are the Lagrange polynomials, at θ = 0.5:
    # (1 - θ², θ(θ + 1)/2, θ(θ - 1)/2) = (0.75, 0.375, -0.125), exactly
    m = Morpher(morphing_components(1, 2), np.array([[0.0], [1.0], [-1.0]]))
    np.testing.assert_allclose(m.morphing_weights(np.array([0.5])), [0.75, 0.375, -0.125], rtol=1e-14)
    # at a benchmark the weights select that benchmark
    np.testing.assert_allclose(m.morphing_weights(m.benchmarks), np.eye(3), atol=1e-14)


def test_morphing_closure_on_toy_weights(toy, morpher, events):
    rng = np.random.default_rng(11)
    thetas = rng.uniform(-1.5, 1.5, size=(1000, 2))
    coeffs = morpher.morphing_weights(thetas)  # (1000, 6)
    weights, z = events.weights[:5000], events.z[:5000]  # a subset keeps the (n, 1000) arrays small
    w_morph = weights @ coeffs.T  # (n, 1000)
    # direct reweighting from the single generation point
    w_direct = toy.dsigma(z, thetas) / toy.dsigma(z, THETA_GEN) * toy.cross_section(THETA_GEN) / N_EVENTS
    # morphing is exact for the quadratic dσ; what is left is float64 rounding of the sum
    # Σ_k c_k W_k (~1e-16 of Σ_k |c_k W_k|, measured max 2e-14) and of the direct amplitude
    # near its zeros. 1e-10 relative plus a floor at 1e-12 of the morphing's own scale.
    scale = np.abs(weights) @ np.abs(coeffs).T  # Σ_k |c_k W_k|
    err = np.abs(w_morph - w_direct)
    assert np.all(err <= 1e-10 * np.abs(w_direct) + 1e-12 * scale)
    # away from the amplitude zeros (scale comparable to the weight) it is plain 1e-10 relative
    clean = scale < 10 * np.abs(w_direct)
    assert clean.mean() > 0.5
    np.testing.assert_allclose(w_morph[clean], w_direct[clean], rtol=1e-10)
    # the morphed MC cross section equals the reweighted one (same events) to 1e-10
    np.testing.assert_allclose(w_morph.sum(axis=0), w_direct.sum(axis=0), rtol=1e-10)


def test_morphing_reproduces_random_quadratic_polynomial(morpher):
    rng = np.random.default_rng(3)
    coefficients = rng.normal(size=(6, 4))  # 4 independent polynomials f(θ) = φ(θ)·A
    at_benchmarks = _monomials(morpher.benchmarks, morpher.components) @ coefficients
    thetas = rng.uniform(-2, 2, size=(1000, 2))
    exact = _monomials(thetas, morpher.components) @ coefficients
    morphed = morpher.morphing_weights(thetas) @ at_benchmarks
    # cond(M) ≈ 8 and |θ| ≤ 2: rounding ~1e-14 of the terms, far below 1e-10
    np.testing.assert_allclose(morphed, exact, rtol=1e-10, atol=1e-10 * np.abs(exact).max())
    np.testing.assert_allclose(morpher.component_values(at_benchmarks.T), coefficients.T, atol=1e-12)


def test_least_squares_morphing_with_extra_benchmarks_is_exact():
    comps = morphing_components(2, 2)
    bench = np.vstack([BASIS_2D, [[-1.0, -1.0], [0.5, -0.7]]])  # 8 benchmarks, 6 components
    m = Morpher(comps, bench)
    rng = np.random.default_rng(4)
    coefficients = rng.normal(size=6)
    thetas = rng.uniform(-1, 1, size=(200, 2))
    morphed = m.morphing_weights(thetas) @ (_monomials(bench, comps) @ coefficients)
    # consistent overdetermined system: the pseudo-inverse solution is exact up to rounding
    np.testing.assert_allclose(morphed, _monomials(thetas, comps) @ coefficients, rtol=1e-10, atol=1e-12)


def test_morphing_weight_shapes_and_bad_theta(morpher):
    assert morpher.morphing_weights(np.array([0.1, 0.2])).shape == (6,)
    assert morpher.morphing_weights(np.zeros((5, 2))).shape == (5, 6)
    assert morpher.morphing_weight_gradients(np.array([0.1, 0.2])).shape == (2, 6)
    assert morpher.morphing_weight_gradients(np.zeros((5, 2))).shape == (5, 2, 6)
    for bad in (np.zeros(3), np.zeros((4, 3)), np.zeros((2, 2, 2))):
        with pytest.raises(ValueError, match="theta"):
            morpher.morphing_weights(bad)


# ---- gradients -----------------------------------------------------------------------
@pytest.mark.filterwarnings("error::assay.morphing.IllConditionedMorphingWarning")
@pytest.mark.parametrize(
    ("n_params", "max_power", "overall"),
    [
        (1, 2, None),
        (1, 4, None),
        (2, 2, None),
        (2, (3, 1), 3),
        (2, 2, 4),
        (3, 2, None),
        (3, (2, 1, 2), 2),
    ],
)
def test_gradients_match_central_differences(n_params, max_power, overall):
    comps = morphing_components(n_params, max_power, overall)
    rng = np.random.default_rng(len(comps))
    bench = optimize_basis(
        comps,
        rng.uniform(-1, 1, (200, n_params)),
        np.tile([-1.0, 1.0], (n_params, 1)),
        n_trials=30,
        n_refine=0,
        rng=rng,
    )
    m = Morpher(comps, bench)
    thetas = np.vstack([np.zeros(n_params), np.eye(n_params), rng.uniform(-1.2, 1.2, (20, n_params))])
    grads = m.morphing_weight_gradients(thetas)  # (n_theta, n_params, n_benchmarks)
    h = 1e-4
    fd = np.stack(
        [
            (m.morphing_weights(thetas + h * e) - m.morphing_weights(thetas - h * e)) / (2 * h)
            for e in np.eye(n_params)
        ],
        axis=1,
    )
    # central differences: truncation h²/6 |∂³c| (zero for powers ≤ 2; ≲ 1e-8 |c| for degree 4
    # at |θ| ≤ 1.2) plus rounding ~1e-16 |c| / h = 1e-12 |c|; 1e-6 of the coefficient scale
    # leaves two orders of margin and still catches any wrong exponent or factor.
    scale = 1 + np.abs(m.morphing_weights(thetas)).max()
    np.testing.assert_allclose(grads, fd, rtol=0, atol=1e-6 * scale)
    # one θ gives the same as the batch
    np.testing.assert_allclose(m.morphing_weight_gradients(thetas[3]), grads[3], rtol=1e-14, atol=0)


def test_gradient_of_linear_term_at_zero():
    # d/dθ of c(θ) for benchmarks 0, 1 (linear morphing): c = (1 - θ, θ), gradient (-1, 1) everywhere,
    # including θ = 0 where 0**0 must count as 1
    m = Morpher(morphing_components(1, 1), np.array([[0.0], [1.0]]))
    np.testing.assert_allclose(
        m.morphing_weight_gradients(np.array([[0.0], [0.3]])), [[[-1.0, 1.0]], [[-1.0, 1.0]]], atol=1e-15
    )


# ---- bad bases -----------------------------------------------------------------------
def test_duplicate_benchmarks_raise():
    bench = BASIS_2D.copy()
    bench[5] = bench[1]
    with pytest.raises(MorphingError, match="singular morphing basis"):
        Morpher(morphing_components(2, 2), bench)


def test_benchmarks_on_a_line_raise():
    # on θ1 = θ2 the monomials θ1², θ1θ2, θ2² coincide: rank 3 < 6
    t = np.linspace(-1, 1, 6)
    with pytest.raises(MorphingError, match="singular morphing basis"):
        Morpher(morphing_components(2, 2), np.stack([t, t], axis=1))


def test_too_few_benchmarks_raise():
    with pytest.raises(MorphingError, match=r"at least 6 benchmarks .* got 5"):
        Morpher(morphing_components(2, 2), BASIS_2D[:5])


def test_ill_conditioned_basis_warns_with_condition_number():
    bench = np.array([[0.0], [1e-3], [2e-3]])  # Vandermonde with spacing 1e-3: cond ≈ 2e6
    expected = np.linalg.cond(_monomials(bench, morphing_components(1, 2)))
    assert 1e6 < expected < 1e13
    message = re.escape(f"condition number {expected:.3g}")
    with pytest.warns(IllConditionedMorphingWarning, match=message) as record:
        m = Morpher(morphing_components(1, 2), bench)
    assert m.condition_number == pytest.approx(expected, rel=1e-6)
    assert record[0].filename == __file__  # stacklevel points at the caller
    # a raised threshold silences it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Morpher(morphing_components(1, 2), bench, warn_condition=1e7)


def test_wrong_benchmark_width_raises(morpher):
    with pytest.raises(ValueError, match="benchmarks"):
        Morpher(morphing_components(2, 2), np.zeros((6, 3)))


def test_to_dict_round_trip(morpher):
    again = Morpher.from_dict(json.loads(json.dumps(morpher.to_dict())))
    np.testing.assert_array_equal(again.components, morpher.components)
    np.testing.assert_array_equal(again.benchmarks, morpher.benchmarks)
    theta = np.array([0.3, -0.7])
    np.testing.assert_array_equal(again.morphing_weights(theta), morpher.morphing_weights(theta))


# ---- basis optimisation ----------------------------------------------------------------
def test_expected_squared_weights_definition_and_singular_basis(morpher):
    thetas = np.random.default_rng(5).uniform(-1, 1, (50, 2))
    direct = np.mean(np.sum(morpher.morphing_weights(thetas) ** 2, axis=1))
    assert expected_squared_weights(BASIS_2D, morpher.components, thetas) == pytest.approx(direct, rel=1e-12)
    bench = BASIS_2D.copy()
    bench[5] = bench[1]
    assert expected_squared_weights(bench, morpher.components, thetas) == np.inf


def test_optimize_basis_beats_random_and_poor_bases():
    comps = morphing_components(2, 2)
    rng = np.random.default_rng(7)
    prior = rng.uniform(-1, 1, (400, 2))
    fixed = np.array([[0.0, 0.0]])
    basis = optimize_basis(
        comps, prior, RANGES_2D, fixed=fixed, n_trials=100, n_refine=3, rng=np.random.default_rng(8)
    )
    assert basis.shape == (6, 2)
    np.testing.assert_array_equal(basis[0], fixed[0])
    assert np.all(basis >= RANGES_2D[:, 0]) and np.all(basis <= RANGES_2D[:, 1])
    best = expected_squared_weights(basis, comps, prior)
    # every one of 20 independent random bases in the same ranges is worse
    other = np.random.default_rng(9)
    random_scores = [
        expected_squared_weights(np.vstack([fixed, other.uniform(-1, 1, (5, 2))]), comps, prior)
        for _ in range(20)
    ]
    assert best < min(random_scores)
    # a clustered basis (all points within 0.1 of the SM) needs huge cancelling weights
    poor = np.vstack([fixed, 0.1 * BASIS_2D[1:]])
    assert best < 1e-3 * expected_squared_weights(poor, comps, prior)
    assert best < expected_squared_weights(BASIS_2D, comps, prior)  # and beats the hand-chosen one
    Morpher(comps, basis)  # usable


def test_optimize_basis_fixed_points():
    comps = morphing_components(1, 2)
    prior = np.linspace(-1, 1, 11)[:, None]
    fixed = np.array([[0.0], [1.0], [-1.0]])
    result = optimize_basis(comps, prior, [[-1, 1]], fixed=fixed, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(result, fixed)
    with pytest.raises(MorphingError, match="4 fixed benchmarks but only 3 components"):
        optimize_basis(comps, prior, [[-1, 1]], fixed=np.zeros((4, 1)), rng=np.random.default_rng(0))


# ---- half-integer exponents: a signal strength with interference, w(μ) = μ S + √μ I + B ----------
def _mu_weights(mu: np.ndarray, s: np.ndarray, i: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.multiply.outer(mu, s) + np.multiply.outer(np.sqrt(mu), i) + b


def test_half_integer_morphing_is_exact_for_a_signal_strength_with_interference():
    rng = np.random.default_rng(3)
    s, b = rng.random(50), rng.random(50) + 1
    i = -2 * np.sqrt(s * b) * rng.random(50)  # |I| ≤ 2√(SB): every w(μ) ≥ 0
    comps = morphing_components(1, 1, power_step=0.5)
    assert comps.tolist() == [[0.0], [0.5], [1.0]]
    m = Morpher(comps, np.array([[0.0], [1.0], [4.0]]))
    bench = _mu_weights(np.array([0.0, 1.0, 4.0]), s, i, b).T  # (n_events, 3)
    mus = np.array([[0.0], [0.3], [1.7], [9.0]])
    np.testing.assert_allclose(m.morphing_weights(mus) @ bench.T, _mu_weights(mus[:, 0], s, i, b), rtol=1e-10)
    grad = m.morphing_weight_gradients(np.array([2.0]))[0] @ bench.T  # d w / d μ = S + I / (2 √μ)
    np.testing.assert_allclose(grad, s + i / (2 * np.sqrt(2.0)), rtol=1e-10)
    assert Morpher.from_dict(m.to_dict()).components.tolist() == comps.tolist()


def test_half_integer_morphing_refuses_negative_signal_strength():
    m = Morpher(morphing_components(1, 1, power_step=0.5), np.array([[0.0], [1.0], [4.0]]))
    with pytest.raises(ValueError, match="square root"):
        m.morphing_weights(np.array([-0.1]))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"power_step": 0.3}, "power_step must be 1 or 0.5"), ({"max_power": 1.5}, "not a multiple")],
)
def test_morphing_components_rejects_bad_steps(kwargs, match):
    with pytest.raises(MorphingError, match=match):
        morphing_components(1, **kwargs)


def test_morphing_aware_net_coefficients_follow_half_integer_morphing():
    torch = pytest.importorskip("torch")
    from assay.estimators.ratio_models import MorphingRatioNet

    m = Morpher(morphing_components(1, 1, power_step=0.5), np.array([[0.0], [1.0], [4.0]]))
    net = MorphingRatioNet(2, m, (4,), "tanh")
    mus = np.array([[0.0], [0.25], [2.0]])
    got = net.coefficients(torch.tensor(mus, dtype=torch.float32)).detach().numpy()
    np.testing.assert_allclose(got, m.morphing_weights(mus), atol=1e-6)
