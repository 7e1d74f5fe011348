"""Embedded LO simulator of p p → W± h → ℓ± ν b b̄ with the exact SMEFT likelihood.

Seed 000's signal: CP-even (c_HW) and CP-odd (c_HW̃) dimension-6 HWW couplings at
Λ = 1 TeV. Each event carries

- parton momenta (lab frame, √s = 13 TeV), flavours, x1, x2 and the factorisation scale;
- ``components``: the coefficients C_c(x) of dσ(x|θ) = Σ_c φ_c(θ) C_c(x) in the monomial
  basis φ = (1, c̃, c, c̃², c c̃, c²) of :func:`assay.morphing.morphing_components` (2, 2),
  per event in pb — the exact likelihood: p(x|θ) = φ(θ)·C(x) / σ(θ);
- ``weights``: dσ at every benchmark, evaluated directly from the amplitudes.

Differential cross section (seed 000 backup "Parton-level event weights"):

    dσ = Σ_o L_o(x1, x2, Q²) · (1/2ŝ) · |M_o|² · BR(h → bb̄) dΦ₃ dτ dy,
    |M_o|² = (1/12) (g²/2)² |D_W(ŝ)|² |D_W(k²)|² |Σ_a g_a(θ) A_{a,o}|²,

summed over both orientations o (quark from beam 1 or 2) and, inside L_o, over quark
flavours with CKM factors; spins (1/4) and colours (1/3) averaged. h → bb̄ is
isotropic in the narrow-width limit. Phase space is sampled through a VEGAS map.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from assay.simulators.pdf import FLAVOURS, PDFGrid
from assay.simulators.phase_space import boost, breit_wigner_map, mass2, two_body_decay
from assay.simulators.vegas import VegasMap
from assay.simulators.wh_matrix_element import EWInputs, amplitude_structures, current

__all__ = ["CKM", "GEV2_TO_PB", "WHEvents", "WHSimulator"]

logger = logging.getLogger(__name__)

GEV2_TO_PB = 0.3893794e9  # (ħc)² in GeV² pb
CKM = {  # |V_ij| of the PDG 2022 CKM review (R.L. Workman et al., PTEP 2022, 083C01, Sec. 12.2: the
    # individual measurements). Not Pythia 8.3's defaults (StandardModel:Vud 0.97383, Vus 0.2272,
    # Vub 0.00396, Vcd 0.2271, Vcs 0.97296, Vcb 0.04221): Pythia's own PDFs and backgrounds use those.
    (2, 1): 0.97373, (2, 3): 0.2243, (2, 5): 0.00382,
    (4, 1): 0.221, (4, 3): 0.975, (4, 5): 0.0408,
}  # fmt: skip
_STRUCTURE_EXPONENTS = ((0, 0), (1, 0), (0, 1))  # SM, c_HW, c_HW̃ → exponents of (cHW, cHWtilde)
_COMPONENTS = ((0, 0), (0, 1), (1, 0), (0, 2), (1, 1), (2, 0))  # morphing_components(2, 2)
SCALES = {  # factorisation scale Q² from (ŝ, k², m_h², p_T²)
    "shat": lambda shat, k2, mh2, pt2: shat,  # Pythia's choice for its s-channel f f̄ → h W
    "mt_min": lambda shat, k2, mh2, pt2: np.minimum(k2 + pt2, mh2 + pt2),  # Pythia's 2 → 2 default
    "ht_half": lambda shat, k2, mh2, pt2: (0.5 * (np.sqrt(k2 + pt2) + np.sqrt(mh2 + pt2))) ** 2,  # MadGraph
}


@dataclass(frozen=True)
class WHEvents:
    """Parton-level events. Momenta ``(n, 4)`` (E, px, py, pz) GeV in the lab frame.

    Attributes:
        p1, p2: incoming partons from beam 1 (+z) and beam 2 (−z); id1, id2 their PDG ids.
        lepton, neutrino, b, bbar: final state; charge (n,) = lepton charge = W charge.
        lepton_id: PDG id of the charged lepton.
        x1, x2: momentum fractions; scale: factorisation scale Q in GeV.
        components: dσ coefficients C (n, 6) in pb, monomial basis of (cHW, cHWtilde).
        weights: dσ in pb at each benchmark, ``(n, n_benchmarks)``.
    """

    p1: np.ndarray
    p2: np.ndarray
    id1: np.ndarray
    id2: np.ndarray
    lepton: np.ndarray
    neutrino: np.ndarray
    b: np.ndarray
    bbar: np.ndarray
    charge: np.ndarray
    lepton_id: np.ndarray
    x1: np.ndarray
    x2: np.ndarray
    scale: np.ndarray
    components: np.ndarray
    weights: np.ndarray

    def __len__(self) -> int:
        return len(self.x1)

    @property
    def w_boson(self) -> np.ndarray:
        return self.lepton + self.neutrino

    @property
    def higgs(self) -> np.ndarray:
        return self.b + self.bbar


def couplings(theta: np.ndarray) -> np.ndarray:
    """g_a(θ) of the structures (SM, c_HW, c_HW̃), ``(n_theta, 3)``; θ = (cHW, cHWtilde)."""
    theta = np.atleast_2d(np.asarray(theta, dtype=float))
    return np.column_stack([np.ones(len(theta)), theta[:, 0], theta[:, 1]])


@dataclass(frozen=True)
class _Kinematics:
    """Partonic-frame kinematics of one batch plus the θ-independent weight factor."""

    pa: np.ndarray
    pb: np.ndarray
    lepton: np.ndarray
    neutrino: np.ndarray
    higgs: np.ndarray
    x1: np.ndarray
    x2: np.ndarray
    q2: np.ndarray
    factor: np.ndarray  # everything but Σ_o L_o |A_o|², in pb


@dataclass
class WHSimulator:
    """Generator of weighted W h → ℓ ν b b̄ events with exact weights at any (c_HW, c_HW̃).

    Args:
        benchmarks: points where weights are stored, ``(n_benchmarks, 2)`` (cHW, cHWtilde).
        theta_gen: point the VEGAS map is adapted to, ``(2,)``.
        sqrt_s: collider energy in GeV.
        charges: W charges to generate (+1, −1).
        lepton_flavours: |PDG| of the charged lepton (11, 13).
        ud_only: only u d̄ → W⁺ (d ū → W⁻) initial states (seed 000's validation set-up).
        ew: electroweak inputs; br_h_bb: BR(h → bb̄) (LHCHWG, m_h = 125 GeV); m_b in GeV.
        scale: factorisation scale choice, a key of ``SCALES``.
        pdf: a :class:`PDFGrid` (built from Pythia if None).
        vegas_seed: seed of the VEGAS adaptation.
    """

    benchmarks: np.ndarray
    theta_gen: np.ndarray = field(default_factory=lambda: np.zeros(2))
    sqrt_s: float = 13000.0
    charges: tuple[int, ...] = (1, -1)
    lepton_flavours: tuple[int, ...] = (11, 13)
    ud_only: bool = False
    ew: EWInputs = field(default_factory=EWInputs)
    br_h_bb: float = 0.5824
    m_b: float = 4.7
    scale: str = "shat"
    pdf: PDFGrid | None = None
    vegas_seed: int = 0
    parameters: tuple[str, str] = ("cHW", "cHWtilde")

    def __post_init__(self) -> None:
        self.benchmarks = np.atleast_2d(np.asarray(self.benchmarks, dtype=float))
        if self.benchmarks.shape[1] != 2:
            raise ValueError(f"benchmarks: expected shape (n_benchmarks, 2), got {self.benchmarks.shape}")
        if self.scale not in SCALES:
            raise ValueError(f"scale: expected one of {sorted(SCALES)}, got {self.scale!r}")
        if not set(self.charges) <= {1, -1} or not set(self.lepton_flavours) <= {11, 13}:
            raise ValueError(
                f"charges ⊂ (1, -1), lepton_flavours ⊂ (11, 13); got {self.charges}, {self.lepton_flavours}"
            )
        if self.pdf is None:
            self.pdf = PDFGrid()
        self._vegas = VegasMap(n_dim=7)
        rng = np.random.default_rng([self.vegas_seed, 7])
        theta = np.asarray(self.theta_gen, dtype=float)
        self._vegas.train(lambda u: self._integrand(u, theta, charge=1), rng)

    # ---- kinematics ---------------------------------------------------------------
    def _kinematics(self, u: np.ndarray, charge: int) -> _Kinematics:
        """Map VEGAS points ``(n, 7)`` to momenta in the partonic CM frame and the weight factor."""
        ew, s = self.ew, self.sqrt_s**2
        tau_min = ew.m_h**2 / s
        tau = tau_min ** (1.0 - u[:, 0])
        half_log = 0.5 * np.log(tau)
        y = half_log * (1.0 - 2.0 * u[:, 1])
        x1, x2 = np.sqrt(tau) * np.exp(y), np.sqrt(tau) * np.exp(-y)
        shat = tau * s
        k2, jac_k2 = breit_wigner_map(u[:, 2], ew.m_w, ew.width_w, np.zeros_like(shat),
                                      (np.sqrt(shat) - ew.m_h) ** 2)  # fmt: skip
        rs = np.sqrt(shat)
        zeros = np.zeros_like(rs)
        pa = np.column_stack([rs / 2, zeros, zeros, rs / 2])
        pb = np.column_stack([rs / 2, zeros, zeros, -rs / 2])
        q = pa + pb
        w, higgs = two_body_decay(q, k2, ew.m_h**2, 2 * u[:, 3] - 1, 2 * np.pi * u[:, 4])
        lepton, neutrino = two_body_decay(w, 0.0, 0.0, 2 * u[:, 5] - 1, 2 * np.pi * u[:, 6])
        pt2 = w[:, 1] ** 2 + w[:, 2] ** 2
        q2 = SCALES[self.scale](shat, k2, ew.m_h**2, pt2)
        p_prod = np.sqrt(np.maximum((shat - k2 - ew.m_h**2) ** 2 - 4 * k2 * ew.m_h**2, 0.0)) / (2 * rs)
        phase_space = (
            (p_prod / (16 * np.pi**2 * rs))
            * (4 * np.pi)
            * (jac_k2 / (2 * np.pi))
            * (np.sqrt(k2) / 2 / (16 * np.pi**2 * np.sqrt(k2)) * (4 * np.pi))
        )  # dΦ2(q; W, h) · dk²/2π · dΦ2(W; ℓ, ν), solid angles integrated by the map
        jac_tau_y = tau * (-np.log(tau_min)) * (-2 * half_log)
        prop = 1.0 / (((shat - ew.m_w**2) ** 2 + (ew.m_w * ew.width_w) ** 2)
                      * ((k2 - ew.m_w**2) ** 2 + (ew.m_w * ew.width_w) ** 2))  # fmt: skip
        me_const = (1.0 / 12.0) * (ew.g_weak**2 / 2) ** 2 * prop * self.br_h_bb
        factor = GEV2_TO_PB * me_const / (2 * shat) * phase_space * jac_tau_y  # dx1 dx2 = dτ dy
        return _Kinematics(pa, pb, lepton, neutrino, higgs, x1, x2, q2, factor)

    # ---- matrix element and luminosities ------------------------------------------
    def _flavour_pairs(self, charge: int) -> list[tuple[int, int, float]]:
        """(quark, antiquark, |V|²) of the initial states producing a W of this charge."""
        pairs = [(2, 1, CKM[(2, 1)] ** 2)] if self.ud_only else [(u, d, v**2) for (u, d), v in CKM.items()]
        if charge > 0:
            return [(u, -d, v2) for u, d, v2 in pairs]
        return [(d, -u, v2) for u, d, v2 in pairs]

    def _luminosities(self, x1, x2, q2, charge: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-flavour luminosities (n, n_pairs) for orientations A (quark from beam 1) and B."""
        pairs = self._flavour_pairs(charge)
        f1 = self.pdf.xf_all(x1, q2) / x1[:, None]
        f2 = self.pdf.xf_all(x2, q2) / x2[:, None]
        iq = [FLAVOURS.index(q) for q, _, _ in pairs]
        iqb = [FLAVOURS.index(qb) for _, qb, _ in pairs]
        v2 = np.array([v for _, _, v in pairs])
        return v2 * f1[:, iq] * f2[:, iqb], v2 * f1[:, iqb] * f2[:, iq]

    def _amplitudes(self, quark, antiquark, lepton, neutrino, charge: int) -> np.ndarray:
        """A_a for the three structures, ``(3, n)`` complex (momenta in any frame)."""
        j_quark = current(quark, antiquark)
        w_momentum = lepton + neutrino
        q = quark + antiquark
        if charge > 0:
            return amplitude_structures(j_quark, current(lepton, neutrino), q, -w_momentum, self.ew,
                                        quark_on_w_plus=True)  # fmt: skip
        return amplitude_structures(j_quark, current(neutrino, lepton), -w_momentum, q, self.ew,
                                    quark_on_w_plus=False)  # fmt: skip

    def _orientation_amplitudes(self, pa, pb, lepton, neutrino, charge: int) -> tuple[np.ndarray, np.ndarray]:
        return (self._amplitudes(pa, pb, lepton, neutrino, charge),
                self._amplitudes(pb, pa, lepton, neutrino, charge))  # fmt: skip

    def _integrand(self, u: np.ndarray, theta: np.ndarray, charge: int) -> np.ndarray:
        kin = self._kinematics(u, charge)
        lum_a, lum_b = self._luminosities(kin.x1, kin.x2, kin.q2, charge)
        amp_a, amp_b = self._orientation_amplitudes(kin.pa, kin.pb, kin.lepton, kin.neutrino, charge)
        g = couplings(theta)[0]
        msq_a = np.abs(g @ amp_a) ** 2
        msq_b = np.abs(g @ amp_b) ** 2
        return kin.factor * (lum_a.sum(1) * msq_a + lum_b.sum(1) * msq_b)

    # ---- generation -----------------------------------------------------------------
    def simulate(self, n_events: int, rng: np.random.Generator) -> WHEvents:
        """Generate ``n_events`` weighted events (Σ weights = σ at each benchmark, in pb)."""
        charges = rng.choice(np.array(self.charges), size=n_events)
        flavours = rng.choice(np.array(self.lepton_flavours), size=n_events)
        x, jac, _ = self._vegas.map(rng.random((n_events, 7)))
        out = [self._simulate_charge(x[charges == c], jac[charges == c], c, rng) for c in (1, -1)]
        order = np.argsort(np.concatenate([np.nonzero(charges == c)[0] for c in (1, -1)]), kind="stable")
        fields = {k: np.concatenate([o[k] for o in out])[order] for k in out[0]}
        select = len(self.charges) * len(self.lepton_flavours) / n_events
        fields["components"] *= select
        fields["weights"] *= select
        sign = np.where(charges > 0, -1, 1)  # ℓ⁺ has negative PDG id
        return WHEvents(charge=charges, lepton_id=sign * flavours, **fields)

    def _simulate_charge(self, x: np.ndarray, jac: np.ndarray, charge: int, rng) -> dict[str, np.ndarray]:
        n = len(x)
        kin = self._kinematics(x, charge)
        lum_a, lum_b = self._luminosities(kin.x1, kin.x2, kin.q2, charge)
        amp_a, amp_b = self._orientation_amplitudes(kin.pa, kin.pb, kin.lepton, kin.neutrino, charge)
        factor = kin.factor * jac
        components = np.zeros((n, len(_COMPONENTS)))
        for i in range(3):  # loop over coupling structures, not events
            for j in range(i, 3):
                expo = tuple(np.add(_STRUCTURE_EXPONENTS[i], _STRUCTURE_EXPONENTS[j]))
                interference_a = np.real(amp_a[i] * amp_a[j].conj())
                interference_b = np.real(amp_b[i] * amp_b[j].conj())
                term = (1 if i == j else 2) * (lum_a.sum(1) * interference_a + lum_b.sum(1) * interference_b)
                components[:, _COMPONENTS.index(expo)] += factor * term
        g = couplings(self.benchmarks)  # (n_bench, 3)
        weights = factor[:, None] * (lum_a.sum(1)[:, None] * np.abs(amp_a.T @ g.T) ** 2
                                     + lum_b.sum(1)[:, None] * np.abs(amp_b.T @ g.T) ** 2)  # fmt: skip
        id1, id2 = self._choose_flavours(lum_a, lum_b, amp_a, amp_b, charge, rng)
        beta = ((kin.x1 - kin.x2) / (kin.x1 + kin.x2))[:, None] * np.array([0.0, 0.0, 1.0])
        b, bbar = two_body_decay(kin.higgs, self.m_b**2, self.m_b**2, 2 * rng.random(n) - 1,
                                 2 * np.pi * rng.random(n))  # fmt: skip
        e_beam = self.sqrt_s / 2
        zeros = np.zeros(n)
        return {
            "p1": np.column_stack([kin.x1 * e_beam, zeros, zeros, kin.x1 * e_beam]),
            "p2": np.column_stack([kin.x2 * e_beam, zeros, zeros, -kin.x2 * e_beam]),
            "id1": id1, "id2": id2,
            "lepton": boost(kin.lepton, beta), "neutrino": boost(kin.neutrino, beta),
            "b": boost(b, beta), "bbar": boost(bbar, beta),
            "x1": kin.x1, "x2": kin.x2, "scale": np.sqrt(kin.q2),
            "components": components, "weights": weights,
        }  # fmt: skip

    def _choose_flavours(self, lum_a, lum_b, amp_a, amp_b, charge, rng) -> tuple[np.ndarray, np.ndarray]:
        """Pick the initial state of each event ∝ its share of dσ at θ_gen (bookkeeping for LHE/shower)."""
        g = couplings(self.theta_gen)[0]
        shares = np.concatenate([lum_a * (np.abs(g @ amp_a) ** 2)[:, None],
                                 lum_b * (np.abs(g @ amp_b) ** 2)[:, None]], axis=1)  # fmt: skip
        cdf = np.cumsum(shares, axis=1)
        pick = (rng.random(len(cdf))[:, None] * cdf[:, -1:] > cdf).sum(axis=1)
        pick = np.minimum(pick, cdf.shape[1] - 1)
        pairs = self._flavour_pairs(charge)
        quark = np.array([q for q, _, _ in pairs] * 2)
        anti = np.array([qb for _, qb, _ in pairs] * 2)
        from_beam1 = pick < len(pairs)
        return np.where(from_beam1, quark[pick], anti[pick]), np.where(from_beam1, anti[pick], quark[pick])

    # ---- exact likelihood -------------------------------------------------------------
    def log_density(self, events: WHEvents, theta: np.ndarray) -> np.ndarray:
        """log dσ(x|θ) up to a θ-independent function of x, recomputed from the momenta, ``(n,)``.

        p(x|θ) = exp(log_density) / σ(θ) × (θ-independent); used to check the stored components.
        """
        g = couplings(theta)[0]
        out = np.empty(len(events))
        for c in (1, -1):
            sel = events.charge == c
            lum_a, lum_b = self._luminosities(events.x1[sel], events.x2[sel], events.scale[sel] ** 2, c)
            amp_a, amp_b = self._orientation_amplitudes(events.p1[sel], events.p2[sel], events.lepton[sel],
                                                        events.neutrino[sel], c)  # fmt: skip
            k2 = mass2(events.lepton[sel] + events.neutrino[sel])
            prop = 1.0 / ((k2 - self.ew.m_w**2) ** 2 + (self.ew.m_w * self.ew.width_w) ** 2)
            out[sel] = np.log(
                prop * (lum_a.sum(1) * np.abs(g @ amp_a) ** 2 + lum_b.sum(1) * np.abs(g @ amp_b) ** 2)
            )
        return out

    # ---- validation helper --------------------------------------------------------------
    def partonic_cross_section(
        self, sqrt_shat: float, theta: np.ndarray, *, charge: int = 1, n_nodes: int = 16
    ) -> float:
        """σ̂(q q̄' → W h → ℓ ν h) in pb at one √ŝ, W in the narrow-width limit, BR(h → bb̄) = 1.

        Integrates the exact |M|² over the production and decay angles with Gauss–Legendre
        (cos θ) and trapezoid (φ) rules, exact for the low-degree trigonometric polynomial
        |M|² is. With the u d̄ (d ū) initial state and |V_ud|²; divide by BR(W → ℓν) for σ̂(W h).
        """
        ew = self.ew
        nodes, wts = np.polynomial.legendre.leggauss(n_nodes)
        phis = 2 * np.pi * np.arange(n_nodes) / n_nodes
        c1, p1, c2, p2 = (a.ravel() for a in np.meshgrid(nodes, phis, nodes, phis, indexing="ij"))
        weight = np.einsum("i,j,k,l->ijkl", wts, np.full(n_nodes, 2 * np.pi / n_nodes), wts,
                           np.full(n_nodes, 2 * np.pi / n_nodes)).ravel()  # fmt: skip
        n = len(c1)
        shat = np.full(n, sqrt_shat**2)
        rs = np.sqrt(shat)
        zeros = np.zeros(n)
        pa = np.column_stack([rs / 2, zeros, zeros, rs / 2])
        pb = np.column_stack([rs / 2, zeros, zeros, -rs / 2])
        w, _ = two_body_decay(pa + pb, np.full(n, ew.m_w**2), ew.m_h**2, c1, p1)
        lepton, neutrino = two_body_decay(w, 0.0, 0.0, c2, p2)
        quark, anti = (pa, pb)
        amps = self._amplitudes(quark, anti, lepton, neutrino, charge)
        msq = np.abs(couplings(theta)[0] @ amps) ** 2
        p_prod = np.sqrt((shat[0] - ew.m_w**2 - ew.m_h**2) ** 2 - 4 * ew.m_w**2 * ew.m_h**2) / (2 * rs[0])
        prop_s = 1.0 / ((shat[0] - ew.m_w**2) ** 2 + (ew.m_w * ew.width_w) ** 2)
        me_const = (1.0 / 12.0) * (ew.g_weak**2 / 2) ** 2 * prop_s * CKM[(2, 1)] ** 2
        dphi2_prod = p_prod / (16 * np.pi**2 * rs[0])
        dphi2_decay = 1.0 / (32 * np.pi**2)  # |p*|/(16π²√k²) with |p*| = √k²/2
        narrow_width = 1.0 / (2 * ew.m_w * ew.width_w)  # ∫dk²/(2π) |D_W(k²)|²
        integral = np.sum(weight * msq) * me_const * dphi2_prod * dphi2_decay * narrow_width
        return float(GEV2_TO_PB * integral / (2 * shat[0]))
