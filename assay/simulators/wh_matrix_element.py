"""Exact LO helicity amplitude for q q̄' → W* → W h, W → ℓ ν with anomalous HWW couplings.

Conventions: metric (+, −, −, −), chiral γ matrices and σ̄^μ = (1, −σ⃗) as in Peskin &
Schroeder. :data:`LEVI_CIVITA` is ε^{μνρσ} with ε^{0123} = +1 (P&S use −1), so its lowered
ε_{μνρσ} has ε_{0123} = −1. With it the spin-summed current obeys
J^μ J^{ν*} = 2(a^μ b^ν + a^ν b^μ − g^{μν} a·b) + 2i ε^{μνρσ} a_ρ b_σ (tested).

What the code computes for the CP-odd structure: det[J₊; J₋; k1; k2] of the covariant (lowered)
components, i.e. ε^{μνρσ} J₊_μ J₋_ν k1_ρ k2_σ with ε^{0123} = +1, which is the same number as
−ε_{μνρσ} J₊^μ J₋^ν k1^ρ k2^σ with ε_{0123} = +1 (the Warsaw basis's convention). An independent
derivation from O_HW̃ (recorded in issue 15) found the resulting amplitudes to be those of the Warsaw
c_HW̃ with ε_{0123} = +1; the vertex formula below is this code's, written with :data:`LEVI_CIVITA`.
The sign of the physics is pinned by a test: the SM × c_HW̃ interference in |M|² has the sign of
ε_{μνρσ} p_u^μ p_d^ν p_ℓ^ρ p_ν^σ (ε_{0123} = +1; u, d the up- and down-type (anti)quark, ℓ the
charged lepton, ν the (anti)neutrino) for both W charges (tests/test_wh_matrix_element.py).
Fermions are massless and couple V−A, so for each process exactly one helicity
configuration contributes and the spin sum is one amplitude squared.

Fermion currents (``current``): J^μ(a → b) = 2√(E_a E_b) ξ₋(p̂_b)† σ̄^μ ξ₋(p̂_a), the
spinor sandwich ū(b) γ^μ P_L u(a) (or with v spinors for antiparticles); ξ₋ is the
negative-helicity 2-spinor. J^μ(a → a) = 2 p_a^μ.

HWW vertex (arXiv:1001.3396 / 1309.4819 structures, SMEFT normalisation of the Warsaw
operators O_HW = H†H W^I_μν W^{Iμν} and O_HW̃ = H†H W̃^I_μν W^{Iμν}, W̃_μν = ½ ε_μνρσ W^ρσ,
with coefficients c/Λ²): for incoming W⁺ (index μ, momentum k1) and W⁻ (index ν, k2),

    V^{μν} = (2 m_W²/v) g^{μν}
             − (4 v/Λ²) [ c_HW (k1·k2 g^{μν} − k2^μ k1^ν) + c_HW̃ ε^{μνρσ} k1_ρ k2_σ ]   (ε^{0123} = +1)

(v h W⁺_μν W^{−μν} from H†H → v h, and W^I W^I → 2 W⁺W⁻; common factor i dropped).
The O(v²/Λ²) rescaling of the SM-like g^{μν} term by the kinetic-term redefinition is
not included: the model is the SM vertex plus the two anomalous Lorentz structures.
|M|² is then an exact quadratic polynomial in (c_HW, c_HW̃).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from assay.simulators.phase_space import METRIC, dot

__all__ = ["LEVI_CIVITA", "EWInputs", "amplitude_structures", "current", "vertex_structures"]


@dataclass(frozen=True)
class EWInputs:
    """Electroweak inputs (G_F scheme). Defaults: PDG / Pythia 8.3 default masses.

    Attributes:
        m_w, width_w, m_h: W mass and width, Higgs mass in GeV.
        g_fermi: Fermi constant in GeV⁻².
        lambda_np: new-physics scale Λ in GeV (Wilson coefficients are c/Λ²).
    """

    m_w: float = 80.385
    width_w: float = 2.085
    m_h: float = 125.0
    g_fermi: float = 1.1663787e-5
    lambda_np: float = 1000.0

    @property
    def vev(self) -> float:
        """v = (√2 G_F)^−½ ≈ 246.2 GeV."""
        return (np.sqrt(2.0) * self.g_fermi) ** -0.5

    @property
    def g_weak(self) -> float:
        """SU(2) coupling g = 2 m_W / v."""
        return 2.0 * self.m_w / self.vev

    def width_w_to_lnu(self) -> float:
        """Γ(W → ℓν) = g² m_W / (48π) for one massless lepton flavour, GeV."""
        return self.g_weak**2 * self.m_w / (48 * np.pi)


def _levi_civita() -> np.ndarray:
    eps = np.zeros((4, 4, 4, 4))
    for perm in np.array(np.meshgrid(*[range(4)] * 4, indexing="ij")).reshape(4, -1).T:
        if len(set(perm)) == 4:
            inversions = sum(perm[i] > perm[j] for i in range(4) for j in range(i + 1, 4))
            eps[tuple(perm)] = -1.0 if inversions % 2 else 1.0
    return eps


_LOWER = np.array([1.0, -1.0, -1.0, -1.0])
LEVI_CIVITA = _levi_civita()  # ε^{μνρσ} with upper indices, ε^{0123} = +1

_SIGMA_BAR = np.array(
    [
        [[1, 0], [0, 1]],
        [[0, -1], [-1, 0]],  # −σ_x
        [[0, 1j], [-1j, 0]],  # −σ_y
        [[-1, 0], [0, 1]],  # −σ_z
    ],
    dtype=complex,
)


def _xi_minus(p: np.ndarray) -> np.ndarray:
    """Negative-helicity 2-spinor along p⃗, ``(n, 2)`` complex (phase convention arbitrary)."""
    pabs = np.sqrt(np.sum(p[:, 1:] ** 2, axis=1))
    pt2 = p[:, 1] ** 2 + p[:, 2] ** 2
    # |p| + p_z without cancellation near the −z axis: (|p|² − p_z²)/(|p| − p_z) there
    plus = np.where(p[:, 3] >= 0, pabs + p[:, 3], pt2 / np.where(p[:, 3] < 0, pabs - p[:, 3], 1.0))
    safe = plus > 0
    denom = np.sqrt(np.where(safe, 2 * pabs * plus, 1.0))
    upper = np.where(safe, -(p[:, 1] - 1j * p[:, 2]) / denom, -1.0)
    lower = np.where(safe, np.sqrt(np.where(safe, plus / (2 * pabs), 0.0)), 0.0)
    return np.stack([upper, lower], axis=1)


def current(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Left-handed current J^μ(a → b) of massless fermions, ``(n, 4)`` complex, upper index."""
    norm = 2.0 * np.sqrt(a[:, 0] * b[:, 0])
    xa, xb = _xi_minus(a), _xi_minus(b)
    return norm[:, None] * np.einsum("ni,mij,nj->nm", xb.conj(), _SIGMA_BAR, xa)


def vertex_structures(k1: np.ndarray, k2: np.ndarray, ew: EWInputs) -> np.ndarray:
    """The three HWW Lorentz structures V_a^{μν}, ``(3, n, 4, 4)``: SM, c_HW, c_HW̃ (per unit coefficient)."""
    n = len(k1)
    g_up = np.broadcast_to(METRIC, (n, 4, 4))
    k1_low, k2_low = k1 @ METRIC, k2 @ METRIC
    sm = (2 * ew.m_w**2 / ew.vev) * g_up
    scale = -4.0 * ew.vev / ew.lambda_np**2
    even = scale * (dot(k1, k2)[:, None, None] * g_up - np.einsum("nm,nv->nmv", k2, k1))
    odd = scale * np.einsum("mvrs,nr,ns->nmv", LEVI_CIVITA, k1_low, k2_low)
    return np.stack([sm, even, odd])


def amplitude_structures(
    j_quark: np.ndarray,
    j_lepton: np.ndarray,
    k1: np.ndarray,
    k2: np.ndarray,
    ew: EWInputs,
    *,
    quark_on_w_plus: bool,
) -> np.ndarray:
    """Reduced amplitudes A_a = J_μ V_a^{μν} J'_ν for the three structures, ``(3, n)`` complex.

    The contractions are written out (equal to contracting :func:`vertex_structures`, tested):
    A_SM = (2m_W²/v) J·J', A_HW = s [(k1·k2)(J·J') − (J·k2)(J'·k1)], A_HW̃ = s ε^{μνρσ} J_μ J'_ν k1_ρ k2_σ
    with s = −4v/Λ², J on the W⁺ leg (index μ) and J' on the W⁻ leg.

    Args:
        j_quark, j_lepton: currents ``(n, 4)`` (upper index).
        k1, k2: incoming momenta of the W⁺ and W⁻ legs at the vertex, ``(n, 4)``.
        ew: electroweak inputs.
        quark_on_w_plus: True if the quark current attaches to the W⁺ leg (index μ),
            i.e. W⁺ production; False for W⁻ production.
    """
    j_plus, j_minus = (j_quark, j_lepton) if quark_on_w_plus else (j_lepton, j_quark)
    scale = -4.0 * ew.vev / ew.lambda_np**2
    jj = dot(j_plus, j_minus)
    sm = (2 * ew.m_w**2 / ew.vev) * jj
    even = scale * (dot(k1, k2) * jj - dot(j_plus, k2) * dot(j_minus, k1))
    rows = np.stack([j_plus, j_minus, k1, k2], axis=1) * _LOWER  # lower indices: (n, 4 vectors, 4)
    odd = scale * np.linalg.det(rows)  # ε^{μνρσ} a_μ b_ν c_ρ d_σ = det[a; b; c; d] for ε^{0123} = +1
    return np.stack([sm, even, odd])
