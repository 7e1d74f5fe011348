"""LO helicity amplitudes of g g → (H* →) Z Z → 4ℓ and q q̄ → Z Z → 4ℓ (Z exchange only, no γ*).

Conventions are those of :mod:`assay.simulators.wh_matrix_element`: metric (+, −, −, −), massless
fermions, Weyl spinors. All amplitudes are evaluated in the 4ℓ rest frame with the incoming partons
along ±z (``pa`` along +z). The Z → ℓℓ decays enter through the "decay vectors"

    E_i^μ = g_Z g_λ^ℓ J_λ^μ(ℓ⁺ → ℓ⁻) D_Z(k_i²),   D_Z(k²) = 1/(k² − m_Z² + i m_Z Γ_Z),

with g_Z = 2 m_Z / v, g_L = T₃ − Q sin²θ_W, g_R = −Q sin²θ_W and the chiral currents of
:func:`chiral_currents` (J_R = J_L*, both built from per-particle spinors, so the two pairings of
identical leptons have consistent phases and enter with the relative Fermi minus sign).

Gluon fusion (per gluon-helicity configuration, colour δ^{ab}); K = M_ggH(ŝ) · 2m_Z²/v:

- signal, λ₁ = λ₂:  A_S  = K D_H(ŝ) (E₁·E₂),  D_H = 1/(ŝ − m_H² + i m_H Γ_H);
- background, λ₁ = λ₂: A_Bs = −c_B K / ŝ · (E₁·E₂)_LL, the Higgs' Lorentz structure projected on
  longitudinal Z's: for c_B = 1 the longitudinal parts of A_S + A_Bs cancel at high ŝ
  (D_H − 1/ŝ ≈ m_H²/ŝ²: the unitarity cancellation between the triangle and the box, Glover &
  van der Bij, Nucl. Phys. B321 (1989) 561; Kauer & Passarino, arXiv:1206.4803), so the
  interference is destructive;
- background, λ₁ = −λ₂: A_Bt = 2 C_T (ε_±·E₁ᵀ)(ε_±·E₂ᵀ), a J_z = ±2 continuum into transverse Z's
  (Eᵀ: E without its longitudinal part), which cannot interfere with the scalar,

M_ggH(ŝ) = α_s ŝ/(8π v) Σ_q A_{1/2}(ŝ/4m_q²) (Djouadi, Phys. Rept. 457 (2008) 1, hep-ph/0503172,
eq. (3.12)), C_T = c_T α_s g_Z² / (4π).

q q̄ → Z Z (t- and u-channel quark exchange; quark helicity σ, unit quark coupling):

    A_σ = [σ-chain(E₂, pa − k₁, E₁)/(pa − k₁)² + σ-chain(E₁, pa − k₂, E₂)/(pa − k₂)²],

with the chain v̄(pb) ⧸X (⧸pa − ⧸k) ⧸Y P_σ u(pa) of :func:`quark_chain`; the physical amplitude is
g_Z² (g_σ^q)² A_σ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from assay.simulators.phase_space import mass2

__all__ = [
    "HELICITIES",
    "OffshellInputs",
    "Pairing",
    "a_half",
    "chiral_currents",
    "gg_structures",
    "helicity_couplings",
    "higgs_gluon_amplitude",
    "pairing",
    "qq_structures",
    "quark_chain",
    "spinor_minus",
]

HELICITIES = ((0, 0), (0, 1), (1, 0), (1, 1))  # (λ_a, λ_b) of the two lepton pairs, 0 = L, 1 = R
_UP_COUPLINGS = (0.5, 2.0 / 3.0)  # (T3, Q) of up-type quarks
_DOWN_COUPLINGS = (-0.5, -1.0 / 3.0)
_LEPTON = (-0.5, -1.0)


@dataclass(frozen=True)
class OffshellInputs:
    """Electroweak, QCD and model constants (G_F scheme; masses in GeV).

    Attributes:
        m_z, width_z, m_h, width_h: Z and Higgs masses and (fixed) widths.
        m_t, m_b: quark masses in the g g H loop.
        g_fermi: Fermi constant in GeV⁻²; sin2w: sin²θ_W of the Z couplings (effective angle).
        alpha_s_mz: α_s(m_Z), run at one loop (n_f = 5) to μ_R = m4ℓ/2.
        c_b: strength of the longitudinal same-helicity gg → ZZ background (1: exact cancellation
            of the Higgs' longitudinal amplitude at ŝ → ∞).
        c_t: strength of the transverse opposite-helicity gg → ZZ background, tuned so that
            σ(B_gg)/σ(S) ≈ 8 in 220 < m4ℓ < 1000 GeV (docs/offshell.md).
    """

    m_z: float = 91.1876
    width_z: float = 2.4952
    m_h: float = 125.0
    width_h: float = 4.1e-3
    m_t: float = 172.5
    m_b: float = 4.75
    g_fermi: float = 1.1663787e-5
    sin2w: float = 0.2312
    alpha_s_mz: float = 0.118
    c_b: float = 1.0
    c_t: float = 6.5

    @property
    def vev(self) -> float:
        """v = (√2 G_F)^−½ ≈ 246.2 GeV."""
        return (np.sqrt(2.0) * self.g_fermi) ** -0.5

    @property
    def g_z(self) -> float:
        """Z coupling g/cos θ_W = 2 m_Z / v."""
        return 2.0 * self.m_z / self.vev

    def chiral_couplings(self, t3: float, charge: float) -> tuple[float, float]:
        """(g_L, g_R) = (T₃ − Q s_W², −Q s_W²) of a fermion."""
        return t3 - charge * self.sin2w, -charge * self.sin2w

    @property
    def lepton_couplings(self) -> tuple[float, float]:
        return self.chiral_couplings(*_LEPTON)

    @property
    def up_couplings(self) -> tuple[float, float]:
        return self.chiral_couplings(*_UP_COUPLINGS)

    @property
    def down_couplings(self) -> tuple[float, float]:
        return self.chiral_couplings(*_DOWN_COUPLINGS)

    def width_z_to_ll(self, k2: np.ndarray | float | None = None) -> np.ndarray | float:
        """Γ(Z → ℓℓ) = g_Z² (g_L² + g_R²) √k² / (24π) at virtuality k² (default m_Z²), GeV."""
        g_l, g_r = self.lepton_couplings
        root = self.m_z if k2 is None else np.sqrt(k2)
        return self.g_z**2 * (g_l**2 + g_r**2) * root / (24 * np.pi)

    def alpha_s(self, mu: np.ndarray) -> np.ndarray:
        """One-loop α_s(μ) with n_f = 5 from α_s(m_Z)."""
        b0 = (33.0 - 2.0 * 5) / (12.0 * np.pi)
        return self.alpha_s_mz / (1.0 + self.alpha_s_mz * b0 * np.log(mu**2 / self.m_z**2))


def dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Minkowski product a·b over the last axis (no conjugation), written out for speed."""
    return a[..., 0] * b[..., 0] - a[..., 1] * b[..., 1] - a[..., 2] * b[..., 2] - a[..., 3] * b[..., 3]


# ---- spinors and currents -------------------------------------------------------------------
def spinor_minus(p: np.ndarray) -> np.ndarray:
    """Negative-helicity 2-spinor ξ₋(p̂), ``(n, 2)`` complex; the convention of wh_matrix_element."""
    pabs = np.sqrt(np.sum(p[:, 1:] ** 2, axis=1))
    pt2 = p[:, 1] ** 2 + p[:, 2] ** 2
    down = p[:, 3] < 0
    plus = np.where(down, pt2 / np.where(down, pabs - p[:, 3], 1.0), pabs + p[:, 3])
    safe = plus > 0
    denom = np.sqrt(np.where(safe, 2 * pabs * plus, 1.0))
    upper = np.where(safe, -(p[:, 1] - 1j * p[:, 2]) / denom, -1.0)
    lower = np.sqrt(np.where(safe, plus / np.where(safe, 2 * pabs, 1.0), 0.0))
    return np.stack([upper, lower], axis=1)


def chiral_currents(anti: np.ndarray, fermion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Currents ū(fermion) γ^μ P_{L,R} v(anti) of massless leptons, two ``(n, 4)`` complex arrays.

    J_L^μ = 2√(E_a E_b) ξ₋(b)† σ̄^μ ξ₋(a) (equal to ``wh_matrix_element.current(anti, fermion)``),
    J_R = J_L* (= 2√(E_a E_b) ξ₊(b)† σ^μ ξ₊(a) with ξ₊ = iσ₂ ξ₋*).
    """
    xa, xb = spinor_minus(anti), spinor_minus(fermion)
    norm = 2.0 * np.sqrt(anti[:, 0] * fermion[:, 0])
    a0, a1 = xa[:, 0], xa[:, 1]
    b0, b1 = xb[:, 0].conj(), xb[:, 1].conj()
    left = np.stack(
        [b0 * a0 + b1 * a1, -(b0 * a1 + b1 * a0), 1j * (b0 * a1 - b1 * a0), b1 * a1 - b0 * a0], axis=1
    )
    left *= norm[:, None]
    return left, left.conj()


# ---- form factors ---------------------------------------------------------------------------
def a_half(tau: np.ndarray) -> np.ndarray:
    """Spin-½ loop form factor A_{1/2}(τ) = 2[τ + (τ − 1) f(τ)]/τ², complex; → 4/3 for τ → 0.

    f(τ) = arcsin²√τ (τ ≤ 1), −¼[ln((1 + √(1 − 1/τ))/(1 − √(1 − 1/τ))) − iπ]² (τ > 1);
    Djouadi, hep-ph/0503172, eqs. (2.22)–(2.23), τ = ŝ/(4 m_q²).
    """
    tau = np.asarray(tau, dtype=float)
    below = tau <= 1.0
    f_below = np.arcsin(np.sqrt(np.where(below, tau, 0.0))) ** 2
    root = np.sqrt(1.0 - 1.0 / np.where(below, 2.0, tau))
    f_above = -0.25 * (np.log((1.0 + root) / (1.0 - root)) - 1j * np.pi) ** 2
    f = np.where(below, f_below, f_above)
    return 2.0 * (tau + (tau - 1.0) * f) / tau**2


def higgs_gluon_amplitude(shat: np.ndarray, inputs: OffshellInputs) -> np.ndarray:
    """M(g g → H*) per same-helicity configuration and colour δ^{ab}, ``(n,)`` complex, GeV.

    M_ggH = α_s(√ŝ/2) ŝ/(8π v) [A_{1/2}(τ_t) + A_{1/2}(τ_b)]; Σ_{hel, col}|M|² = 32π m Γ(H*→gg)(m)
    with Γ(H → gg) = G_F α_s² m³/(36√2 π³) |¾ Σ_q A_{1/2}|² (hep-ph/0503172, eq. (3.12)).
    """
    form = a_half(shat / (4 * inputs.m_t**2)) + a_half(shat / (4 * inputs.m_b**2))
    return inputs.alpha_s(np.sqrt(shat) / 2) * shat / (8 * np.pi * inputs.vev) * form


# ---- lepton pairs ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Pairing:
    """One assignment of the four leptons to (Z₁, Z₂), in the 4ℓ rest frame.

    E_i = g_Z g_λ D_Z(k_i²) J_λ,i factorises into a scalar and a current, so every Lorentz structure
    below is computed from the bare currents and multiplied by g_Z² g_λa g_λb D_Z(k₁²) D_Z(k₂²).

    Attributes:
        k1, k2: Z momenta ``(n, 4)``; j1, j2: currents ``(2, n, 4)`` complex (0 = left, 1 = right
        lepton helicity); d12: D_Z(k₁²) D_Z(k₂²) ``(n,)`` complex; sign: +1, or −1 for the exchanged
        identical leptons.
    """

    k1: np.ndarray
    k2: np.ndarray
    j1: np.ndarray
    j2: np.ndarray
    d12: np.ndarray
    sign: float


def pairing(
    leptons: np.ndarray, order: tuple[int, int, int, int], sign: float, inputs: OffshellInputs
) -> Pairing:
    """The :class:`Pairing` with Z₁ → (ℓ⁻ ``order[0]``, ℓ⁺ ``order[1]``), Z₂ → (``order[2]``, ``order[3]``).

    Args:
        leptons: ``(n, 4, 4)`` momenta in the 4ℓ rest frame, GeV.
    """
    l1m, l1p, l2m, l2p = (leptons[:, i] for i in order)
    k1, k2 = l1m + l1p, l2m + l2p
    mz2, mg = inputs.m_z**2, inputs.m_z * inputs.width_z
    d12 = 1.0 / ((mass2(k1) - mz2 + 1j * mg) * (mass2(k2) - mz2 + 1j * mg))
    return Pairing(
        k1, k2, np.stack(chiral_currents(l1p, l1m)), np.stack(chiral_currents(l2p, l2m)), d12, sign
    )


def helicity_couplings(inputs: OffshellInputs) -> np.ndarray:
    """g_Z² g_λa g_λb of the lepton pairs, ``(2, 2, 1)`` over (λ_a, λ_b)."""
    g = np.array(inputs.lepton_couplings)
    return (inputs.g_z**2 * np.outer(g, g))[:, :, None]


def _longitudinal(k: np.ndarray) -> np.ndarray:
    """ε_L(k) = (|k⃗|, k⁰ k̂)/√k², the longitudinal polarisation in the current frame, ``(n, 4)``."""
    kabs = np.sqrt(np.sum(k[:, 1:] ** 2, axis=1))
    mass = np.sqrt(mass2(k))
    return np.column_stack([kabs, (k[:, 0] / kabs)[:, None] * k[:, 1:]]) / mass[:, None]


def _bare_gg(p: Pairing) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(J₁·J₂, (J₁·J₂)_LL, (ε₊·J₁ᵀ)(ε₊·J₂ᵀ), (ε₋·J₁ᵀ)(ε₋·J₂ᵀ)), each ``(2, 2, n)`` over (λ_a, λ_b)."""
    j1, j2 = p.j1[:, None], p.j2[None, :]  # (2, 1, n, 4), (1, 2, n, 4)
    eps1, eps2 = _longitudinal(p.k1), _longitudinal(p.k2)
    l1, l2 = dot(eps1, p.j1), dot(eps2, p.j2)  # (2, n)
    t1 = p.j1 + eps1 * l1[..., None]  # Jᵀ = J − J_L, J_L = −ε_L (ε_L·J)
    t2 = p.j2 + eps2 * l2[..., None]
    # ε_± = (0, 1, ±i, 0)/√2:  ε_±·T = −(T_x ± i T_y)/√2
    tp1, tp2 = t1[..., 1] + 1j * t1[..., 2], t2[..., 1] + 1j * t2[..., 2]
    tm1, tm2 = t1[..., 1] - 1j * t1[..., 2], t2[..., 1] - 1j * t2[..., 2]
    ll = dot(eps1, eps2) * l1[:, None] * l2[None, :]
    return dot(j1, j2), ll, 0.5 * tp1[:, None] * tp2[None, :], 0.5 * tm1[:, None] * tm2[None, :]


_SAME = np.eye(2, dtype=bool)[:, :, None]  # λ_a = λ_b: where the exchanged pairing contributes


def gg_structures(pairings: list[Pairing], inputs: OffshellInputs) -> tuple[np.ndarray, ...]:
    """Lepton-helicity sums of the gg amplitudes' Lorentz structures.

    Returns ``(Σ|s|², Σ s l*, Σ|l|², Σ_± |t_±|²)``, each ``(n,)`` (the second complex), with
    s = E₁·E₂, l = (E₁·E₂)_LL, t_± = 2(ε_±·E₁ᵀ)(ε_±·E₂ᵀ), antisymmetrised over the pairings;
    the exchanged pairing (identical leptons) interferes only where λ_a = λ_b (:func:`_states`).
    """
    coupling = helicity_couplings(inputs)
    states = _states([[p.sign * coupling * p.d12 * t for t in _bare_gg(p)] for p in pairings])
    ss = sl = ll = tt = 0.0
    for s, l, tp, tm in states:
        ss = ss + (np.abs(s) ** 2).sum((0, 1))
        sl = sl + (s * l.conj()).sum((0, 1))
        ll = ll + (np.abs(l) ** 2).sum((0, 1))
        tt = tt + 4.0 * (np.abs(tp) ** 2 + np.abs(tm) ** 2).sum((0, 1))
    return ss, sl, ll, tt


def _states(per_pairing: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    """Group amplitudes ``(2, 2, n)`` over (λa, λb) by physical helicity state.

    Pairing A's (λa, λb) and the exchanged pairing's are the same external state only for λa = λb
    (then they add coherently); for λa ≠ λb the exchanged pairing's amplitude belongs to another state
    (ℓ⁺ helicities swapped) and adds incoherently.
    """
    coherent = per_pairing[0]
    extra = []
    for amps in per_pairing[1:]:
        coherent = [a + _SAME * b for a, b in zip(coherent, amps)]
        extra.append([~_SAME * b for b in amps])
    return [coherent, *extra]


def _light_cone(x: np.ndarray) -> tuple[np.ndarray, ...]:
    """(X⁰ + X³, X⁰ − X³, X¹ + iX², X¹ − iX²) of ``x (..., 4)`` (no conjugation)."""
    return (
        x[..., 0] + x[..., 3],
        x[..., 0] - x[..., 3],
        x[..., 1] + 1j * x[..., 2],
        x[..., 1] - 1j * x[..., 2],
    )


def quark_chain(
    x: np.ndarray, p: np.ndarray, y: np.ndarray, root_s: np.ndarray, quark_along_plus_z: bool
) -> np.ndarray:
    """v̄(pb) ⧸X ⧸P ⧸Y P_L u(pa) for a quark along ±z and the antiquark opposite, broadcast over x, y.

    = 2√(E_a E_b) ξ₋(b)† (X·σ̄)(P·σ)(Y·σ̄) ξ₋(a) with ξ₋(+ẑ) = (0, 1), ξ₋(−ẑ) = (−1, 0), written out
    in light-cone components; X·σ̄ = [[X⁺, X̄ᵗ], [Xᵗ, X⁻]], P·σ = [[P⁻, −P̄ᵗ], [−Pᵗ, P⁺]]. The
    right-handed chain is conj(chain(X*, P, Y*)) (ξ₊ = iσ₂ξ₋*).
    """
    xp, xm, xt, xtb = _light_cone(x)
    pp, pm, pt, ptb = _light_cone(p)
    yp, ym, yt, ytb = _light_cone(y)
    if quark_along_plus_z:  # −√ŝ M[0, 1]
        return -root_s * ((xp * pm - xtb * pt) * ytb + (xtb * pp - xp * ptb) * ym)
    return -root_s * ((xt * pm - xm * pt) * yp + (xm * pp - xt * ptb) * yt)  # −√ŝ M[1, 0]


def qq_structures(pairings: list[Pairing], root_s: np.ndarray, inputs: OffshellInputs) -> np.ndarray:
    """Σ_h |A_σ|² of q q̄ → ZZ → 4ℓ per (orientation, quark helicity), ``(n, 2, 2)``, GeV⁻⁴.

    Orientation 0: quark along +z; 1: along −z. Quark helicity 0 = L, 1 = R; unit quark couplings.
    With bare currents c(λa, λb) (t + u channel) per pairing, A_L = Σ_p ± g² g_λa g_λb D₁D₂ c(λa, λb)
    and A_R = Σ_p ± g² g_λa g_λb D₁D₂ conj(c(λ̄a, λ̄b)) (J_R = J_L*).
    """
    n = len(root_s)
    out = np.empty((n, 2, 2))
    zeros = np.zeros(n)
    coupling = helicity_couplings(inputs)
    for o, plus_z in enumerate((True, False)):
        pa = np.column_stack([root_s / 2, zeros, zeros, (1 if plus_z else -1) * root_s / 2])
        per_pairing = []
        for p in pairings:
            j1, j2 = p.j1[:, None], p.j2[None, :]  # (λa, λb) broadcast
            c = (quark_chain(j2, pa - p.k1, j1, root_s, plus_z) / mass2(pa - p.k1)
                 + quark_chain(j1, pa - p.k2, j2, root_s, plus_z) / mass2(pa - p.k2))  # fmt: skip
            factor = p.sign * coupling * p.d12
            per_pairing.append([factor * c, factor * c[::-1, ::-1].conj()])
        out[:, o] = sum(np.stack([(np.abs(a) ** 2).sum((0, 1)) for a in amps], axis=1)
                        for amps in _states(per_pairing))  # fmt: skip
    return out
