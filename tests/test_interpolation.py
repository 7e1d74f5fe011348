"""Vertical interpolation (seed 003 "Vertical interpolation"): end points, C² joins, numpy == torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from assay.inference.interpolation import (
    INTERPOLATIONS,
    TABLES,
    VERTICAL_INVERSE,
    exponential,
    interpolation,
    interpolation_table,
    linear,
    vertical,
    vertical_coefficients,
)

torch.set_num_threads(1)

RNG = np.random.default_rng(3)
UP = np.exp(RNG.normal(0.0, 0.3, size=(4, 50)))  # per-event ratios of any shape, > 0
DOWN = np.exp(RNG.normal(0.0, 0.3, size=(4, 50)))


def test_inverse_solves_the_six_conditions():
    n = np.arange(1, 7)
    conditions = np.array(
        [np.ones(6), (-1.0) ** n, n, n * (-1.0) ** (n - 1), n * (n - 1), n * (n - 1) * (-1.0) ** (n - 2)]
    )
    np.testing.assert_allclose(conditions @ VERTICAL_INVERSE, np.eye(6), atol=1e-14)


@pytest.mark.parametrize("name", sorted(INTERPOLATIONS))
def test_end_points_and_centre(name):
    g = interpolation(name)
    np.testing.assert_allclose(g(1.0, UP, DOWN), UP, rtol=1e-12)
    np.testing.assert_allclose(g(-1.0, UP, DOWN), DOWN, rtol=1e-12)
    np.testing.assert_allclose(g(0.0, UP, DOWN), np.ones_like(UP), rtol=1e-12)


def test_outside_the_unit_interval_is_exponential():
    np.testing.assert_allclose(vertical(2.5, UP, DOWN), UP**2.5, rtol=1e-12)
    np.testing.assert_allclose(vertical(-1.7, UP, DOWN), DOWN**1.7, rtol=1e-12)
    np.testing.assert_allclose(exponential(0.4, UP, DOWN), UP**0.4, rtol=1e-12)
    np.testing.assert_allclose(linear(-0.5, UP, DOWN), 1 - 0.5 * (1 - DOWN), rtol=1e-12)


def _derivatives(alpha: float) -> np.ndarray:
    """g, g', g'' at ``alpha`` by torch autograd, ``(3, 4, 50)``."""
    a = torch.tensor(alpha, dtype=torch.float64, requires_grad=True)
    up, down = torch.as_tensor(UP), torch.as_tensor(DOWN)
    values, firsts, seconds = [], [], []
    for u, d in zip(up.reshape(-1), down.reshape(-1)):
        g = vertical(a, u, d)
        (g1,) = torch.autograd.grad(g, a, create_graph=True)
        (g2,) = torch.autograd.grad(g1, a)
        values.append(g.item()), firsts.append(g1.item()), seconds.append(g2.item())
    return np.array([values, firsts, seconds]).reshape(3, *UP.shape)


@pytest.mark.parametrize("edge", [1.0, -1.0])
def test_c2_at_the_joins_by_autograd(edge):
    inside, outside = _derivatives(edge * (1 - 1e-9)), _derivatives(edge * (1 + 1e-9))
    np.testing.assert_allclose(inside, outside, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("edge", [1.0, -1.0])
def test_c2_at_the_joins_by_finite_differences(edge):
    """One-sided second-order differences of g from each side agree in value, g' and g''."""
    h = 1e-3
    sides = []
    for s in (-1.0, 1.0):  # step away from the join into each branch
        g = [vertical(edge + s * k * h, UP, DOWN) for k in range(4)]
        first = s * (-3 * g[0] + 4 * g[1] - g[2]) / (2 * h)  # O(h²)
        second = (2 * g[0] - 5 * g[1] + 4 * g[2] - g[3]) / h**2  # O(h²)
        sides.append((g[0], first, second))
    for left, right, tol in zip(*sides, (1e-12, 1e-4, 1e-3)):
        np.testing.assert_allclose(left, right, atol=tol * 10, rtol=tol)


def test_polynomial_coefficients_reproduce_the_exponential_for_symmetric_variations():
    """up · down = 1: g(α) = up^α is itself C², and its degree-6 Taylor-like fit is close inside."""
    alpha = np.linspace(-1, 1, 41)[:, None]
    np.testing.assert_allclose(vertical(alpha, UP[0], 1 / UP[0]), UP[0] ** alpha, rtol=2e-3)
    assert vertical_coefficients(UP, DOWN).shape == (6, *UP.shape)


def test_torch_equals_numpy_and_is_differentiable():
    alpha = np.linspace(-2.5, 2.5, 23)[:, None, None]
    for name, g in INTERPOLATIONS.items():
        expected = g(alpha, UP, DOWN)
        got = g(torch.as_tensor(alpha), torch.as_tensor(UP), torch.as_tensor(DOWN))
        assert isinstance(got, torch.Tensor), name
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, err_msg=name)
    a = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    vertical(a, torch.as_tensor(UP), torch.as_tensor(DOWN)).sum().backward()
    h = 1e-6
    numeric = (vertical(0.3 + h, UP, DOWN).sum() - vertical(0.3 - h, UP, DOWN).sum()) / (2 * h)
    assert a.grad.item() == pytest.approx(numeric, rel=1e-7)


@pytest.mark.parametrize("up, down", [(1.1, 0.9), (1.5, 0.7), (2.0, 0.5), (1.05, 0.99), (3.0, 0.8)])
def test_monotone_for_up_above_one_above_down(up, down):
    alpha = np.linspace(-3, 3, 601)
    g = vertical(alpha, np.array(up), np.array(down))
    assert np.all(np.diff(g) > 0)
    assert np.all(g > 0)


def test_unknown_interpolation_lists_the_valid_names():
    with pytest.raises(ValueError, match=r"valid names are.*vertical"):
        interpolation("code4")


@pytest.mark.parametrize("name", sorted(TABLES))
@pytest.mark.parametrize("alpha", [-2.2, -1.0, -0.4, 0.0, 0.7, 1.0, 1.9])
def test_precomputed_table_equals_the_function(name, alpha):
    up, down = torch.as_tensor(UP), torch.as_tensor(DOWN)
    a = torch.tensor(alpha, dtype=torch.float64, requires_grad=True)
    got = interpolation_table(name)(up, down)(a)
    np.testing.assert_allclose(got.detach().numpy(), interpolation(name)(alpha, UP, DOWN), rtol=1e-12)
    got.sum().backward()
    b = torch.tensor(alpha, dtype=torch.float64, requires_grad=True)
    interpolation(name)(b, up, down).sum().backward()
    assert a.grad.item() == pytest.approx(b.grad.item(), rel=1e-10)
