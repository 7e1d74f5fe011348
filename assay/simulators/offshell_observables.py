"""Observables of p p → 4ℓ events: masses, the Higgs decay angles, the 4ℓ recoil and d_ME.

Z₁ is the same-flavour opposite-sign pair closest to m_Z (any of the four such pairs in 4e/4μ),
Z₂ the other two leptons. Angles follow Gao et al., arXiv:1001.3396, in the explicit form of
Bolognesi et al., arXiv:1208.4018, eqs. (A1)–(A5), with the beam axis the lab z axis seen from the 4ℓ
rest frame (reached by the pure boost −Q⃗/Q⁰):

- cos θ* = ẑ · q̂₁ in the 4ℓ frame;  cos θ₁ = −q̂₂ · q̂₁₁ in the Z₁ frame (q₁₁: Z₁'s ℓ⁻),
  cos θ₂ = −q̂₁ · q̂₂₁ in the Z₂ frame;
- Φ = sgn(q⃗₁·(n̂₁ × n̂₂)) arccos(−n̂₁·n̂₂), Φ₁ = sgn(q⃗₁·(n̂₁ × n̂_sc)) arccos(n̂₁·n̂_sc), with
  n̂_i = (q⃗_i1 × q⃗_i2)/|…| (ℓ⁻ × ℓ⁺) and n̂_sc = (ẑ × q⃗₁)/|…|, all in the 4ℓ frame.

Example:
    >>> p = np.array([[[50., 0, 30, 40], [50., 0, -30, -40], [50., 40, 0, 30], [50., -40, 0, -30]]])
    >>> x = offshell_observables(p, np.array([[11, -11, 13, -13]]), np.zeros(1))
    >>> print(x[0, 0].round(3), x[0, 10])
    200.0 0.0
"""

from __future__ import annotations

import numpy as np

from assay.simulators.phase_space import boost, mass2

__all__ = ["M_Z", "OFFSHELL_OBSERVABLES", "offshell_observables", "z_candidates"]

OFFSHELL_OBSERVABLES: tuple[str, ...] = (
    "m4l", "mz1", "mz2", "cos_theta_star", "cos_theta1", "cos_theta2", "phi", "phi1",
    "pt4l", "y4l", "same_flavour", "d_me",
)  # fmt: skip
"""Columns of :func:`offshell_observables`: GeV, cosines, radians in (−π, π], 0/1 and log10."""

M_Z = 91.1876  # GeV, the pairing target
_ORDERS = np.array([(0, 1, 2, 3), (2, 3, 0, 1), (0, 3, 2, 1), (2, 1, 0, 3)])  # (Z1⁻, Z1⁺, Z2⁻, Z2⁺)


def _unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(norm > 0, norm, 1.0)


def _signed_angle(q1: np.ndarray, a: np.ndarray, b: np.ndarray, cos_ab: np.ndarray) -> np.ndarray:
    """sgn(q⃗₁·(a × b)) arccos(cos_ab); sign +1 where the triple product vanishes."""
    triple = np.sum(q1 * np.cross(a, b), axis=-1)
    return np.where(triple < 0, -1.0, 1.0) * np.arccos(np.clip(cos_ab, -1.0, 1.0))


def z_candidates(leptons: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Leptons reordered as (Z₁ ℓ⁻, Z₁ ℓ⁺, Z₂ ℓ⁻, Z₂ ℓ⁺), ``(n, 4, 4)``.

    Args:
        leptons: ``(n, 4, 4)`` lab momenta (ℓ_a⁻, ℓ_a⁺, ℓ_b⁻, ℓ_b⁺), GeV.
        ids: ``(n, 4)`` PDG ids; the exchanged pairings (0, 3), (2, 1) are SFOS where ids[:, 0] == ids[:, 2].
    """
    identical = ids[:, 0] == ids[:, 2]
    dist = np.stack([np.abs(np.sqrt(np.maximum(mass2(leptons[:, o[0]] + leptons[:, o[1]]), 0.0)) - M_Z)
                     for o in _ORDERS], axis=1)  # fmt: skip
    dist[:, 2:] = np.where(identical[:, None], dist[:, 2:], np.inf)
    order = _ORDERS[np.argmin(dist, axis=1)]
    return np.take_along_axis(leptons, order[:, :, None], axis=1)


def offshell_observables(leptons: np.ndarray, ids: np.ndarray, d_me: np.ndarray) -> np.ndarray:
    """The :data:`OFFSHELL_OBSERVABLES` of 4ℓ events, ``(n, 12)``.

    Args:
        leptons: ``(n, 4, 4)`` lab momenta (E, px, py, pz) in GeV, ordered (ℓ_a⁻, ℓ_a⁺, ℓ_b⁻, ℓ_b⁺).
        ids: ``(n, 4)`` PDG ids of the four leptons.
        d_me: ``(n,)`` the matrix-element discriminant (from :class:`OffshellSimulator`).

    Returns:
        ``(n, 12)`` float array in GeV, cosines, radians, 0/1 and log10 units.
    """
    leptons = np.asarray(leptons, dtype=float)
    ids = np.asarray(ids)
    z = z_candidates(leptons, ids)
    q = z.sum(axis=1)
    beta = -q[:, 1:] / q[:, :1]
    rest = np.stack([boost(z[:, i], beta) for i in range(4)], axis=1)  # 4ℓ rest frame
    q1, q2 = rest[:, 0] + rest[:, 1], rest[:, 2] + rest[:, 3]
    v1, v2 = q1[:, 1:], q2[:, 1:]
    z_axis = np.broadcast_to(np.array([0.0, 0.0, 1.0]), v1.shape)
    n1 = _unit(np.cross(rest[:, 0, 1:], rest[:, 1, 1:]))
    n2 = _unit(np.cross(rest[:, 2, 1:], rest[:, 3, 1:]))
    nsc = _unit(np.cross(z_axis, v1))
    phi = _signed_angle(v1, n1, n2, -np.sum(n1 * n2, axis=1))
    phi1 = _signed_angle(v1, n1, nsc, np.sum(n1 * nsc, axis=1))
    in_z1 = boost(rest[:, 0], -v1 / q1[:, :1])[:, 1:]  # Z1's ℓ⁻ in the Z1 frame
    z2_in_z1 = boost(q2, -v1 / q1[:, :1])[:, 1:]
    in_z2 = boost(rest[:, 2], -v2 / q2[:, :1])[:, 1:]
    z1_in_z2 = boost(q1, -v2 / q2[:, :1])[:, 1:]
    cos1 = -np.sum(_unit(z2_in_z1) * _unit(in_z1), axis=1)
    cos2 = -np.sum(_unit(z1_in_z2) * _unit(in_z2), axis=1)
    columns = [
        np.sqrt(mass2(q)), np.sqrt(np.maximum(mass2(q1), 0.0)), np.sqrt(np.maximum(mass2(q2), 0.0)),
        _unit(v1)[:, 2], cos1, cos2, phi, phi1,
        np.hypot(q[:, 1], q[:, 2]), 0.5 * np.log((q[:, 0] + q[:, 3]) / (q[:, 0] - q[:, 3])),
        (ids[:, 0] == ids[:, 2]).astype(float), np.asarray(d_me, dtype=float),
    ]  # fmt: skip
    return np.column_stack(columns)
