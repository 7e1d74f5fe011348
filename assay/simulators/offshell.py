"""Embedded LO simulator of p p → (H* →) Z Z → 4ℓ with exact per-event weights at any signal strength μ.

Seed 001 ("off-shell": N_exp = μ S + √μ I + B) and seed 003 (the ATLAS off-shell H → 4ℓ NSBI
measurement): every event carries the four components of its differential cross section, in pb,

    w(μ) = μ w_S + √μ w_I + w_Bgg + w_qq,

S = |A_S|², I = 2 Re(A_S A_Bgg*) (both g g), B_gg = |A_Bgg|², B_qq = q q̄ → ZZ, each summed over the
unobserved initial states (gg; q q̄ and q̄ q of every flavour) and helicities at the observed lepton
momenta, so w(μ)/w(μ') = p(x|μ)σ(μ)/(p(x|μ')σ(μ')) exactly. The amplitudes and the g g → ZZ model are
in :mod:`assay.simulators.offshell_amplitudes`, the phase space in
:mod:`assay.simulators.offshell_phase_space`; docs/offshell.md documents the model and its numbers.

Differential cross section (x1 x2 = ŝ/s, y the 4ℓ rapidity, dx1 dx2 = dŝ dy / s):

    dσ_c = Σ_i f_i(x1) f_ī(x2) (1/2ŝ) |M_{c,i}|² ρ_i(p_T²) dŝ/s dy dp_T² dφ/2π dΦ₄,

with the analytic recoil density ρ_gg or ρ_qq (:class:`~offshell_phase_space.Recoil`), which leaves the
LO distribution of everything in the 4ℓ rest frame unchanged (it integrates to 1). Weights are
dσ_c / (g(x) · P(channel) · n_events) with the generator's density g computed from the momenta, the
identical-lepton channels sampled from both pairings (multi-channel, g = ½(g_A + g_B)).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from assay.simulators.base import EventBatch
from assay.simulators.offshell_amplitudes import (
    OffshellInputs,
    gg_structures,
    higgs_gluon_amplitude,
    pairing,
    qq_structures,
)
from assay.simulators.offshell_observables import OFFSHELL_OBSERVABLES, offshell_observables
from assay.simulators.offshell_phase_space import (
    PowerMap,
    RapidityTable,
    Recoil,
    decay_density,
    sample_decay,
    to_lab,
    to_rest_frame,
)
from assay.simulators.offshell_systematics import check_variations, variation_factors
from assay.simulators.pdf import FLAVOURS, PDFGrid
from assay.simulators.phase_space import mass2
from assay.simulators.wh import GEV2_TO_PB

__all__ = [
    "CHANNELS",
    "COMPONENTS",
    "OFFSHELL_EXTRAS",
    "OFFSHELL_OBSERVABLES",
    "OffshellBatchSimulator",
    "OffshellEvents",
    "OffshellSimulator",
    "me_discriminant",
    "offshell_observables",
    "weights_at",
]

COMPONENTS = ("S", "I", "B_gg", "B_qq")
CHANNELS = {"2e2mu": (11, 13), "4e": (11, 11), "4mu": (13, 13)}  # flavours of (pair a, pair b)
_CHANNEL_SHARE = {"2e2mu": 0.5, "4e": 0.25, "4mu": 0.25}  # sampling probabilities before normalising
_EXCHANGED = (2, 1, 0, 3)  # the other pairing of identical leptons: (ℓ_b⁻, ℓ_a⁺, ℓ_a⁻, ℓ_b⁺)
_UP, _DOWN = (2, 4), (1, 3, 5)


@dataclass(frozen=True)
class OffshellEvents:
    """Parton-level 4ℓ events (lab frame).

    Attributes:
        leptons: ``(n, 4, 4)`` momenta (E, px, py, pz) in GeV of (ℓ_a⁻, ℓ_a⁺, ℓ_b⁻, ℓ_b⁺).
        ids: ``(n, 4)`` PDG ids. x1, x2: ``(n,)`` momentum fractions (x1 x2 = m4ℓ²/s).
        components: ``(n, 4)`` pb, columns :data:`COMPONENTS` (S, I, B_gg, B_qq).
        weights: ``(n, n_benchmarks)`` pb, μ_k S + √μ_k I + B_gg + B_qq.
        variations: ``(n, n_syst, 2, 4)`` dimensionless factors F_c^± of the simulator's
            ``systematics`` (:mod:`~assay.simulators.offshell_systematics`), None without.
    """

    leptons: np.ndarray
    ids: np.ndarray
    x1: np.ndarray
    x2: np.ndarray
    components: np.ndarray
    weights: np.ndarray
    variations: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x1)

    @property
    def d_me(self) -> np.ndarray:
        """log10(w_S / (w_Bgg + w_qq)) at μ = 1, ``(n,)``: the matrix-element discriminant."""
        return me_discriminant(self.components)

    def observables(self) -> np.ndarray:
        """:data:`OFFSHELL_OBSERVABLES` ``(n, 12)``."""
        return offshell_observables(self.leptons, self.ids, self.d_me)


def me_discriminant(components: np.ndarray) -> np.ndarray:
    """d_ME = log10(S / (B_gg + B_qq)) of components ``(n, 4)``, ``(n,)`` (finite: floors at 1e-300)."""
    return np.log10(
        np.maximum(components[:, 0], 1e-300) / np.maximum(components[:, 2] + components[:, 3], 1e-300)
    )


def weights_at(components: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """w(μ) = μ S + √μ I + B_gg + B_qq, ``(n, len(mu))`` pb."""
    mu = np.atleast_1d(np.asarray(mu, dtype=float))
    basis = np.stack([mu, np.sqrt(mu), np.ones_like(mu), np.ones_like(mu)])  # (4, n_mu)
    return components @ basis


@dataclass
class OffshellSimulator:
    """Generator of weighted p p → 4ℓ events with exact components S, I, B_gg, B_qq.

    Args:
        mu_benchmarks: signal strengths where weights are stored, ``(n_benchmarks,)``, μ ≥ 0.
        sqrt_s: collider energy in GeV.
        m4l_range: generated m4ℓ window in GeV.
        channels: subset of ``CHANNELS``.
        lepton_cuts: drop events with a lepton of p_T < ``lepton_pt_min`` GeV or |η| > ``lepton_eta_max``.
        processes: ``"gg"`` (S, I, B_gg) and/or ``"qq"`` (B_qq); a missing process has zero components.
        recoil: multiply in the analytic p_T⁴ℓ density (None: p_T⁴ℓ = 0).
        mll_min: every same-flavour opposite-sign pair has m_ℓℓ > mll_min GeV (part of the model).
        inputs: physics constants; m4l_power: the ŝ^−a exponent of the m4ℓ sampling map.
        pdf: a :class:`PDFGrid` (built from Pythia if None).
        systematics: names from :data:`~assay.simulators.offshell_systematics.VARIATIONS`; each event
            then carries their exact factors F_c^± (``OffshellEvents.variations``).

    Example:
        >>> sim = OffshellSimulator(np.array([0.0, 1.0]))  # doctest: +SKIP
        >>> ev = sim.simulate(10_000, np.random.default_rng(1))  # doctest: +SKIP
    """

    mu_benchmarks: np.ndarray
    sqrt_s: float = 13000.0
    m4l_range: tuple[float, float] = (220.0, 1000.0)
    channels: tuple[str, ...] = ("2e2mu", "4e", "4mu")
    lepton_cuts: bool = True
    processes: tuple[str, ...] = ("gg", "qq")
    recoil: Recoil | None = field(default_factory=Recoil)
    mll_min: float = 5.0
    lepton_pt_min: float = 7.0
    lepton_eta_max: float = 2.5
    inputs: OffshellInputs = field(default_factory=OffshellInputs)
    m4l_power: float = 1.0
    pdf: PDFGrid | None = None
    systematics: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.systematics = check_variations(self.systematics)
        self.mu_benchmarks = np.atleast_1d(np.asarray(self.mu_benchmarks, dtype=float))
        if self.mu_benchmarks.ndim != 1 or np.any(self.mu_benchmarks < 0):
            raise ValueError(
                f"mu_benchmarks: expected non-negative (n_benchmarks,), got {self.mu_benchmarks}"
            )
        if not self.channels or not set(self.channels) <= set(CHANNELS):
            raise ValueError(
                f"channels: expected a non-empty subset of {sorted(CHANNELS)}, got {self.channels}"
            )
        if not self.processes or not set(self.processes) <= {"gg", "qq"}:
            raise ValueError(f"processes: expected a non-empty subset of ('gg', 'qq'), got {self.processes}")
        low, high = self.m4l_range
        if not 2 * self.mll_min < low < high < self.sqrt_s:
            raise ValueError(f"m4l_range: expected 2·mll_min < low < high < sqrt_s, got {self.m4l_range}")
        if self.pdf is None:
            self.pdf = PDFGrid()
        self._mass_map = PowerMap(low, high, self.m4l_power)
        self._rapidity = RapidityTable.from_luminosity(
            self._luminosity_shapes, (low**2, high**2), self.sqrt_s
        )
        share = np.array([_CHANNEL_SHARE[c] for c in self.channels])
        self._channel_probs = share / share.sum()

    # ---- parton luminosities ----------------------------------------------------------------
    def _parton_densities(self, shat: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x1, x2, f(x, Q) for beams 1 and 2 as ``(2, n, 11)``) at Q = √ŝ/2; f = xf/x."""
        tau_root = np.sqrt(shat) / self.sqrt_s
        x1, x2 = tau_root * np.exp(y), tau_root * np.exp(-y)
        q2 = shat / 4.0
        return (
            x1,
            x2,
            np.stack([self.pdf.xf_all(x1, q2) / x1[:, None], self.pdf.xf_all(x2, q2) / x2[:, None]]),
        )

    def _luminosity_shapes(self, shat: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(L_gg, L_qq̄) at (ŝ, y), ``(n, 2)``: the rapidity table's shapes."""
        _, _, f = self._parton_densities(shat, y)
        quarks = [FLAVOURS.index(q) for q in (*_UP, *_DOWN)]
        anti = [FLAVOURS.index(-q) for q in (*_UP, *_DOWN)]
        qq = (f[0][:, quarks] * f[1][:, anti] + f[0][:, anti] * f[1][:, quarks]).sum(axis=1)
        g = FLAVOURS.index(21)
        return np.column_stack([f[0][:, g] * f[1][:, g], qq])

    # ---- the exact differential cross section -------------------------------------------------
    def dsigma(self, leptons: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """dσ_c / (dŝ dy dp_T² dφ/2π dΦ₄) in pb per unit measure, ``(n, 4)`` columns :data:`COMPONENTS`.

        A function of the lab momenta only (initial states, helicities and, for identical leptons,
        both pairings are summed inside).

        Args:
            leptons: ``(n, 4, 4)`` lab momenta (ℓ_a⁻, ℓ_a⁺, ℓ_b⁻, ℓ_b⁺) in GeV; ids: ``(n, 4)`` PDG ids.
        """
        return self._dsigma(to_rest_frame(leptons), ids)

    def _dsigma(self, frame: tuple[np.ndarray, ...], ids: np.ndarray) -> np.ndarray:
        rest, shat, y, pt2 = frame
        identical = ids[:, 0] == ids[:, 2]
        out = np.zeros((len(shat), 4))
        for same in (False, True):  # 2e2μ-like and identical-flavour events
            sel = np.nonzero(identical == same)[0]
            if len(sel):
                out[sel] = self._dsigma_subset(rest[sel], shat[sel], y[sel], pt2[sel], same)
        return out

    def _dsigma_subset(self, rest, shat, y, pt2, identical: bool) -> np.ndarray:
        inp = self.inputs
        pairs = [pairing(rest, (0, 1, 2, 3), 1.0, inp)]
        if identical:
            pairs.append(pairing(rest, _EXCHANGED, -1.0, inp))
        _, _, f = self._parton_densities(shat, y)
        flux = GEV2_TO_PB / (2 * shat) / self.sqrt_s**2 * (0.25 if identical else 1.0)
        out = np.zeros((len(shat), 4))
        if "gg" in self.processes:
            ss, sl, ll, tt = gg_structures(pairs, inp)
            k2 = np.abs(higgs_gluon_amplitude(shat, inp) * 2 * inp.m_z**2 / inp.vev) ** 2
            d_h = 1.0 / (shat - inp.m_h**2 + 1j * inp.m_h * inp.width_h)
            c_t = inp.c_t * inp.alpha_s(np.sqrt(shat) / 2) * inp.g_z**2 / (4 * np.pi)
            g = FLAVOURS.index(21)
            lum = f[0][:, g] * f[1][:, g] * flux * self._recoil_pdf(pt2, "gg")
            out[:, 0] = lum * k2 * np.abs(d_h) ** 2 * ss / 16
            out[:, 1] = -lum * inp.c_b * k2 * np.real(d_h * sl) / (8 * shat)
            out[:, 2] = lum * (inp.c_b**2 * k2 * ll / (16 * shat**2) + c_t**2 * tt / 32)
        if "qq" in self.processes:
            c = qq_structures(pairs, np.sqrt(shat), inp)  # (n, orientation, quark helicity)
            total = np.zeros(len(shat))
            for flavours, (g_l, g_r) in ((_UP, inp.up_couplings), (_DOWN, inp.down_couplings)):
                q = [FLAVOURS.index(i) for i in flavours]
                qb = [FLAVOURS.index(-i) for i in flavours]
                lum_plus = (f[0][:, q] * f[1][:, qb]).sum(axis=1)  # quark from beam 1 (+z)
                lum_minus = (f[0][:, qb] * f[1][:, q]).sum(axis=1)
                total += lum_plus * (g_l**4 * c[:, 0, 0] + g_r**4 * c[:, 0, 1])
                total += lum_minus * (g_l**4 * c[:, 1, 0] + g_r**4 * c[:, 1, 1])
            out[:, 3] = total * inp.g_z**4 / 12 * flux * self._recoil_pdf(pt2, "qq")
        return out

    def _recoil_pdf(self, pt2: np.ndarray, initial: str) -> np.ndarray | float:
        if self.recoil is None:
            return 1.0
        return self.recoil.pdf(pt2, self.recoil.q_gg if initial == "gg" else self.recoil.q_qq)

    def sampling_density(self, leptons: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """The generator's density g(x) per (dŝ dy dp_T² dφ/2π dΦ₄), ``(n,)`` (channel choice excluded)."""
        return self._sampling_density(to_rest_frame(leptons), ids)

    def _sampling_density(self, frame: tuple[np.ndarray, ...], ids: np.ndarray) -> np.ndarray:
        rest, shat, y, pt2 = frame
        inp = self.inputs
        g = decay_density(rest, (0, 1, 2, 3), shat, self.mll_min, inp.m_z, inp.width_z)
        identical = ids[:, 0] == ids[:, 2]
        if identical.any():
            other = decay_density(rest, _EXCHANGED, shat, self.mll_min, inp.m_z, inp.width_z)
            g = np.where(identical, 0.5 * (g + other), g)
        g = g * self._mass_map.density(shat) * self._rapidity.density(shat, y)
        return g * (self.recoil.density(pt2) if self.recoil is not None else 1.0)

    # ---- generation -------------------------------------------------------------------------
    def _sample(self, n_events: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lab leptons ``(n, 4, 4)``, ids ``(n, 4)``, channel index ``(n,)``)."""
        inp = self.inputs
        channel = rng.choice(len(self.channels), size=n_events, p=self._channel_probs)
        flavours = np.array([CHANNELS[c] for c in self.channels])[channel]  # (n, 2)
        ids = np.column_stack([flavours[:, 0], -flavours[:, 0], flavours[:, 1], -flavours[:, 1]])
        u = rng.random((n_events, 16))
        shat = self._mass_map.sample(u[:, 0])
        y = self._rapidity.sample(shat, u[:, 1:3])
        pt2 = self.recoil.sample(u[:, 3:5]) if self.recoil is not None else np.zeros(n_events)
        rest = sample_decay(shat, u[:, 6:15], self.mll_min, inp.m_z, inp.width_z)
        swap = (ids[:, 0] == ids[:, 2]) & (u[:, 15] < 0.5)  # identical leptons: the other pairing
        rest[swap] = rest[swap][:, list(_EXCHANGED)]
        return to_lab(rest, shat, y, pt2, 2 * np.pi * u[:, 5]), ids, channel

    def passes_mll(self, leptons: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Mask ``(n,)``: m_ℓℓ > mll_min for every SFOS pair (the model's phase space)."""
        keep = np.ones(len(leptons), dtype=bool)
        identical = ids[:, 0] == ids[:, 2]
        for a, b, always in ((0, 1, True), (2, 3, True), (0, 3, False), (2, 1, False)):
            keep &= (mass2(leptons[:, a] + leptons[:, b]) > self.mll_min**2) | ~(identical | always)
        return keep

    def passes_cuts(self, leptons: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Mask ``(n,)``: :meth:`passes_mll` and, with ``lepton_cuts``, the lepton cuts."""
        keep = self.passes_mll(leptons, ids)
        if self.lepton_cuts:
            pt = np.hypot(leptons[..., 1], leptons[..., 2])
            pabs = np.linalg.norm(leptons[..., 1:], axis=-1)
            eta = np.arctanh(np.clip(leptons[..., 3] / np.maximum(pabs, 1e-300), -1 + 1e-15, 1 - 1e-15))
            keep &= np.all((pt > self.lepton_pt_min) & (np.abs(eta) < self.lepton_eta_max), axis=1)
        return keep

    def simulate(self, n_events: int, rng: np.random.Generator) -> OffshellEvents:
        """Generate ``n_events`` weighted events and keep those passing the cuts (Σ weights = σ_fid, pb)."""
        leptons, ids, channel = self._sample(n_events, rng)
        keep = self.passes_cuts(leptons, ids)
        leptons, ids, channel = leptons[keep], ids[keep], channel[keep]
        frame = to_rest_frame(leptons)
        scale = 1.0 / (self._sampling_density(frame, ids) * self._channel_probs[channel] * n_events)
        dsigma = self._dsigma(frame, ids)
        components = dsigma * scale[:, None]
        _, shat, y, _ = frame
        tau_root = np.sqrt(shat) / self.sqrt_s
        variations = None
        if self.systematics:
            variations = variation_factors(self, leptons, ids, self.systematics, nominal=dsigma)
        return OffshellEvents(leptons, ids, tau_root * np.exp(y), tau_root * np.exp(-y), components,
                              weights_at(components, self.mu_benchmarks), variations)  # fmt: skip


OFFSHELL_EXTRAS: dict[str, tuple[int, ...]] = {
    "l1m": (4,), "l1p": (4,), "l2m": (4,), "l2p": (4,),  # lab momenta (ℓ_a⁻, ℓ_a⁺, ℓ_b⁻, ℓ_b⁺), GeV
    "ids": (4,),  # their PDG ids
    "x1_x2": (2,),  # momentum fractions
    "components": (4,),  # S, I, B_gg, B_qq in pb per event
}  # fmt: skip


@dataclass
class OffshellBatchSimulator:
    """Batches of parton-level 4ℓ events for :func:`assay.generation.generate` (:class:`BatchSimulator`).

    x holds :data:`OFFSHELL_OBSERVABLES`; the components travel as weight-like extras, so the exact
    w(μ) at any μ stays available after normalisation. With ``simulator.systematics`` the extra
    ``"variations"`` ``(n_syst, 2, 4)`` holds the dimensionless factors F_c^± (not weight-like).
    """

    simulator: OffshellSimulator
    processes: list[str] = field(default_factory=lambda: ["zz4l"])

    @property
    def observables(self) -> list[str]:
        return list(OFFSHELL_OBSERVABLES)

    @property
    def extras_shapes(self) -> dict[str, tuple[int, ...]]:
        n_syst = len(self.simulator.systematics)
        return dict(OFFSHELL_EXTRAS) | ({"variations": (n_syst, 2, 4)} if n_syst else {})

    def batch(self, n_events: int, rng: np.random.Generator) -> EventBatch:
        ev = self.simulator.simulate(n_events, rng)
        extras = {name: ev.leptons[:, i] for i, name in enumerate(("l1m", "l1p", "l2m", "l2p"))}
        extras |= {"ids": ev.ids.astype(float), "x1_x2": np.column_stack([ev.x1, ev.x2]),
                   "components": ev.components}  # fmt: skip
        if ev.variations is not None:
            extras["variations"] = ev.variations
        return EventBatch(ev.observables(), ev.weights, extras=extras, weight_like=("components",))
