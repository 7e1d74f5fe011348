"""Vectorised relativistic kinematics for event generation.

Four-momenta are arrays ``(n, 4)`` ordered (E, px, py, pz) in GeV, metric (+, −, −, −).
Frames change only through proper Lorentz transformations (boosts and rotations):
a reflection would flip the sign of every ε-tensor (CP-odd) term.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "METRIC",
    "boost",
    "breit_wigner_map",
    "dot",
    "kallen",
    "mass2",
    "two_body_decay",
    "two_body_momentum",
]

METRIC = np.diag([1.0, -1.0, -1.0, -1.0])


def dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Minkowski product a·b, ``(n,)``."""
    return a[..., 0] * b[..., 0] - np.sum(a[..., 1:] * b[..., 1:], axis=-1)


def mass2(p: np.ndarray) -> np.ndarray:
    """p², ``(n,)`` in GeV²."""
    return dot(p, p)


def kallen(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Källén function λ(a, b, c) = a² + b² + c² − 2ab − 2ac − 2bc."""
    return a * a + b * b + c * c - 2 * (a * b + a * c + b * c)


def two_body_momentum(m2: np.ndarray, m1_sq: np.ndarray | float, m2_sq: np.ndarray | float) -> np.ndarray:
    """|p*| of a two-body decay of a state with mass² ``m2`` into masses² m1_sq, m2_sq."""
    return np.sqrt(np.maximum(kallen(m2, m1_sq, m2_sq), 0.0)) / (2 * np.sqrt(m2))


def boost(p: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Boost ``p (n, 4)`` by velocity ``beta (n, 3)``: from a rest frame to one where it moves with β."""
    b2 = np.sum(beta * beta, axis=-1)
    gamma = 1.0 / np.sqrt(1.0 - b2)
    bp = np.sum(beta * p[..., 1:], axis=-1)
    coef = np.where(b2 > 0, (gamma - 1.0) / np.where(b2 > 0, b2, 1.0), 0.0)
    out = np.empty_like(p)
    out[..., 0] = gamma * (p[..., 0] + bp)
    out[..., 1:] = p[..., 1:] + (coef * bp + gamma * p[..., 0])[..., None] * beta
    return out


def two_body_decay(
    parent: np.ndarray,
    m1_sq: np.ndarray | float,
    m2_sq: np.ndarray | float,
    cos_theta: np.ndarray,
    phi: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Decay ``parent (n, 4)`` into two particles at rest-frame angles (θ, φ) of the first.

    The angles are measured in the parent rest frame with axes parallel to the lab
    axes (a pure boost connects the frames). Returns the lab momenta ``(n, 4)`` of both.
    """
    m2 = mass2(parent)
    pstar = two_body_momentum(m2, m1_sq, m2_sq)
    sin_theta = np.sqrt(np.clip(1.0 - cos_theta**2, 0.0, 1.0))
    direction = np.stack([sin_theta * np.cos(phi), sin_theta * np.sin(phi), cos_theta], axis=-1)
    e1 = np.sqrt(pstar**2 + m1_sq)
    e2 = np.sqrt(pstar**2 + m2_sq)
    p1 = np.concatenate([e1[:, None], pstar[:, None] * direction], axis=1)
    p2 = np.concatenate([e2[:, None], -pstar[:, None] * direction], axis=1)
    beta = parent[:, 1:] / parent[:, :1]
    return boost(p1, beta), boost(p2, beta)


def breit_wigner_map(
    u: np.ndarray, mass: float, width: float, low: np.ndarray, high: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Map u ∈ [0, 1] to s ∈ [low, high] (GeV²) following a Breit–Wigner; return (s, ds/du).

    s = m² + mΓ tan ρ with ρ uniform, so the Jacobian ((s − m²)² + m²Γ²)/(mΓ) · Δρ
    cancels the squared propagator.
    """
    mg = mass * width
    rho_low = np.arctan((low - mass**2) / mg)
    rho_high = np.arctan((high - mass**2) / mg)
    rho = rho_low + u * (rho_high - rho_low)
    s = mass**2 + mg * np.tan(rho)
    jac = ((s - mass**2) ** 2 + mg**2) / mg * (rho_high - rho_low)
    return s, jac
