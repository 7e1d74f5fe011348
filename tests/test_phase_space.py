"""Tests of assay.simulators.phase_space: Minkowski products, boosts, two-body decays, Breit–Wigner map.

Every check is an exact kinematic identity (mass shell, momentum conservation, group property of
boosts, a Jacobian against a numerical derivative), so tolerances are float64 rounding with headroom.
"""

from __future__ import annotations

import numpy as np
import pytest

from assay.simulators.phase_space import (
    METRIC,
    boost,
    breit_wigner_map,
    dot,
    kallen,
    mass2,
    two_body_decay,
    two_body_momentum,
)

N = 500


def random_momenta(rng: np.random.Generator, n: int, mass: float) -> np.ndarray:
    """On-shell momenta (n, 4) in GeV with random directions and |p⃗| up to 1 TeV."""
    p3 = rng.normal(size=(n, 3)) * rng.uniform(0.0, 1000.0, (n, 1)) / np.sqrt(3)
    return np.column_stack([np.sqrt(mass**2 + np.sum(p3**2, axis=1)), p3])


def random_velocities(rng: np.random.Generator, n: int, beta_max: float = 0.95) -> np.ndarray:
    direction = rng.normal(size=(n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    return direction * rng.uniform(0.0, beta_max, (n, 1))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(11)


# ---- Minkowski products ------------------------------------------------------------------
def test_dot_uses_mostly_minus_metric(rng):
    a, b = rng.normal(size=(N, 4)), rng.normal(size=(N, 4))
    np.testing.assert_allclose(dot(a, b), np.einsum("ni,ij,nj->n", a, METRIC, b), rtol=1e-12, atol=1e-12)
    assert mass2(np.array([[5.0, 3.0, 0.0, 0.0]]))[0] == pytest.approx(16.0)


def test_kallen_and_two_body_momentum():
    # λ(s, m1², m2²) closed forms: λ(s, 0, 0) = s², λ(s, m², 0) = (s − m²)²; |p*| = √λ / (2√s)
    s, m2 = np.array([1e4, 4e4]), np.array([100.0, 900.0])
    np.testing.assert_allclose(kallen(s, 0.0, 0.0), s**2)
    np.testing.assert_allclose(kallen(s, m2, 0.0), (s - m2) ** 2)
    np.testing.assert_allclose(kallen(s, m2, 2 * m2), kallen(2 * m2, s, m2))  # symmetric
    np.testing.assert_allclose(two_body_momentum(s, 0.0, 0.0), np.sqrt(s) / 2)
    np.testing.assert_allclose(two_body_momentum(s, m2, 0.0), (s - m2) / (2 * np.sqrt(s)))


# ---- boosts ------------------------------------------------------------------------------
def test_boost_of_particle_at_rest():
    # a particle of mass m at rest, boosted by β, has E = γm and p⃗ = γmβ⃗
    beta = np.array([[0.3, -0.4, 0.5], [0.0, 0.0, 0.0]])
    m = 125.0
    gamma = 1 / np.sqrt(1 - np.sum(beta**2, axis=1))
    out = boost(np.tile([m, 0.0, 0.0, 0.0], (2, 1)), beta)
    np.testing.assert_allclose(out[:, 0], gamma * m, rtol=1e-14)
    np.testing.assert_allclose(out[:, 1:], (gamma * m)[:, None] * beta, rtol=1e-14, atol=1e-12)


def test_boost_preserves_products_and_inverts(rng):
    a, b = random_momenta(rng, N, 80.0), random_momenta(rng, N, 0.0)
    beta = random_velocities(rng, N)
    # Lorentz invariance of a·b; the products are ~1e5–1e6 GeV², rounding grows with γ² ≲ 10
    np.testing.assert_allclose(dot(boost(a, beta), boost(b, beta)), dot(a, b), rtol=1e-10)
    np.testing.assert_allclose(boost(boost(a, beta), -beta), a, rtol=1e-10, atol=1e-9)


def test_boost_to_rest_frame(rng):
    p = random_momenta(rng, N, 80.0)
    rest = boost(p, -p[:, 1:] / p[:, :1])
    np.testing.assert_allclose(rest[:, 0], 80.0, rtol=1e-10)
    np.testing.assert_allclose(rest[:, 1:], 0.0, atol=1e-9 * p[:, :1].max())


# ---- two-body decays -----------------------------------------------------------------------
@pytest.mark.parametrize(("m1", "m2"), [(0.0, 0.0), (80.4, 125.0), (4.7, 4.7)])
def test_two_body_decay_conserves_momentum_and_is_on_shell(rng, m1, m2):
    parent = random_momenta(rng, N, 400.0)
    d1, d2 = two_body_decay(parent, m1**2, m2**2, rng.uniform(-1, 1, N), rng.uniform(0, 2 * np.pi, N))
    scale = parent[:, :1]  # energies up to ~1 TeV: rounding ~1e-13 × E
    np.testing.assert_allclose(d1 + d2, parent, rtol=0, atol=1e-12 * scale.max())
    np.testing.assert_allclose(mass2(d1), m1**2, atol=1e-10 * scale.max() ** 2)
    np.testing.assert_allclose(mass2(d2), m2**2, atol=1e-10 * scale.max() ** 2)


def test_two_body_decay_angles_are_rest_frame_angles(rng):
    parent = random_momenta(rng, N, 300.0)
    cos_theta, phi = rng.uniform(-1, 1, N), rng.uniform(0, 2 * np.pi, N)
    d1, _ = two_body_decay(parent, 0.0, 125.0**2, cos_theta, phi)
    rest = boost(d1, -parent[:, 1:] / parent[:, :1])  # back to the parent rest frame (pure boost)
    direction = rest[:, 1:] / np.linalg.norm(rest[:, 1:], axis=1, keepdims=True)
    sin_theta = np.sqrt(1 - cos_theta**2)
    expected = np.column_stack([sin_theta * np.cos(phi), sin_theta * np.sin(phi), cos_theta])
    np.testing.assert_allclose(direction, expected, atol=1e-9)
    np.testing.assert_allclose(rest[:, 0], (300.0**2 - 125.0**2) / (2 * 300.0), rtol=1e-10)


# ---- Breit–Wigner map --------------------------------------------------------------------------
M_W, WIDTH_W = 80.385, 2.085


def test_breit_wigner_map_endpoints_and_range():
    low, high = np.array([0.0, 5000.0]), np.array([1e5, 7000.0])
    for u, edge in ((0.0, low), (1.0, high)):
        s, _ = breit_wigner_map(np.full(2, u), M_W, WIDTH_W, low, high)
        np.testing.assert_allclose(s, edge, rtol=1e-12, atol=1e-8)
    s, _ = breit_wigner_map(np.linspace(0, 1, 101)[:, None] * np.ones(2), M_W, WIDTH_W, low, high)
    tol = 1e-12 * high  # rounding of m² + mΓ tan ρ near ρ → π/2
    assert np.all(np.diff(s, axis=0) > 0)
    assert np.all((s >= low - tol) & (s <= high + tol))


def test_breit_wigner_jacobian_is_derivative_and_flattens_propagator():
    u = np.linspace(0.01, 0.99, 99)
    low, high = np.zeros_like(u), np.full_like(u, 200.0**2)
    s, jac = breit_wigner_map(u, M_W, WIDTH_W, low, high)
    h = 1e-6  # central difference: truncation h² s'''/6 ≲ 1e-7 relative for this smooth tan map
    s_plus, _ = breit_wigner_map(u + h, M_W, WIDTH_W, low, high)
    s_minus, _ = breit_wigner_map(u - h, M_W, WIDTH_W, low, high)
    np.testing.assert_allclose(jac, (s_plus - s_minus) / (2 * h), rtol=1e-6)
    # jac × |propagator|² is constant: the map makes the Breit–Wigner flat in u
    flat = jac / ((s - M_W**2) ** 2 + (M_W * WIDTH_W) ** 2)
    np.testing.assert_allclose(flat, flat[0], rtol=1e-12)
