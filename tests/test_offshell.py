"""Physics tests of the embedded off-shell p p → (H* →) ZZ → 4ℓ simulator (assay.simulators.offshell).

References:
- q q̄ → ZZ at LO: spin-averaged |M|² = g_Z⁴ (g_L⁴ + g_R⁴)[t/u + u/t + 4m_Z²ŝ/(tu) − m_Z⁴(1/t² + 1/u²)]
  (Brown & Mikaelian, Phys. Rev. D19 (1979) 922), colour average 1/3, identical-Z factor 1/2.
- gg → H* → ZZ → 2e2μ: σ̂ = π Γ(H*→gg)(m) Γ(H*→2e2μ)(m) |D_H|²/8, Γ(H → gg) = G_F α_s² m³/(36√2π³)
  |¾ Σ_q A_{1/2}|² (Djouadi, hep-ph/0503172), Γ(H → ZZ) = G_F m³/(16√2π) √(1−4x)(1−4x+12x²).
- BR(H → 4e)/BR(H → 2e2μ) ≈ 3.2e-5/5.9e-5 at m_H = 125 GeV (LHC Higgs XS WG, arXiv:1610.07922):
  the identical-lepton interference is constructive there (+~10 %).

Monte Carlo statements use √(Σ w²) errors and fixed seeds.
"""

from __future__ import annotations

import numpy as np
import pytest

from assay.simulators.offshell import (
    COMPONENTS,
    OFFSHELL_OBSERVABLES,
    OffshellBatchSimulator,
    OffshellSimulator,
    me_discriminant,
    offshell_observables,
    weights_at,
)
from assay.simulators.offshell_amplitudes import (
    OffshellInputs,
    a_half,
    chiral_currents,
    gg_structures,
    pairing,
    qq_structures,
)
from assay.simulators.offshell_phase_space import decay_density, sample_decay
from assay.simulators.phase_space import dot, mass2
from assay.simulators.wh import GEV2_TO_PB
from assay.simulators.wh_matrix_element import current

pytest.importorskip("pythia8mc")  # the PDFs come from Pythia

MU = np.array([0.0, 0.5, 1.0, 2.0, 4.0])
S, I, B_GG, B_QQ = range(4)


@pytest.fixture(scope="module")
def pdf():
    from assay.simulators.pdf import PDFGrid

    return PDFGrid()


@pytest.fixture(scope="module")
def sim(pdf) -> OffshellSimulator:
    return OffshellSimulator(MU, pdf=pdf)


@pytest.fixture(scope="module")
def events(sim):
    return sim.simulate(100_000, np.random.default_rng(20240607))


@pytest.fixture(scope="module")
def uncut(pdf):
    """gg only, no lepton cuts: the partonic-frame angles and the line shape are LO exactly."""
    sim = OffshellSimulator(MU, pdf=pdf, lepton_cuts=False, processes=("gg",))
    return sim.simulate(150_000, np.random.default_rng(7))


def _m4l(leptons: np.ndarray) -> np.ndarray:
    return np.sqrt(mass2(leptons.sum(axis=1)))


# ---- building blocks --------------------------------------------------------------------------
def test_chiral_currents_match_wh_current_and_are_conserved():
    rng = np.random.default_rng(0)
    a, b = sample_decay(np.full(50, 300.0**2), rng.random((50, 9)), 5.0, 91.1876, 2.4952)[:, :2].transpose(
        1, 0, 2
    )
    j_l, j_r = chiral_currents(a, b)
    np.testing.assert_allclose(j_l, current(a, b), atol=1e-10)
    np.testing.assert_allclose(j_r, j_l.conj())
    np.testing.assert_allclose(dot(j_l, a + b), 0.0, atol=1e-9)


def test_a_half_limits():
    np.testing.assert_allclose(a_half(np.array([1e-6])), 4.0 / 3.0, rtol=1e-5)  # heavy-quark limit
    above = a_half(np.array([2.0, 50.0]))
    assert np.all(above.imag > 0) and np.all(np.isfinite(above))  # absorptive above threshold


def _partonic(shat: float, inputs: OffshellInputs, n: int, seed: int, identical: bool = False):
    """Decay phase space at fixed ŝ: (pairings, 1/ĝ weights) of ``n`` points in the 4ℓ frame."""
    rng = np.random.default_rng(seed)
    s = np.full(n, shat)
    lep = sample_decay(s, rng.random((n, 9)), 5.0, inputs.m_z, inputs.width_z)
    g = decay_density(lep, (0, 1, 2, 3), s, 5.0, inputs.m_z, inputs.width_z)
    pairs = [pairing(lep, (0, 1, 2, 3), 1.0, inputs)]
    if identical:
        swap = rng.random(n) < 0.5
        lep[swap] = lep[swap][:, [2, 1, 0, 3]]
        g = 0.5 * (
            decay_density(lep, (0, 1, 2, 3), s, 5.0, inputs.m_z, inputs.width_z)
            + decay_density(lep, (2, 1, 0, 3), s, 5.0, inputs.m_z, inputs.width_z)
        )
        pairs = [pairing(lep, (0, 1, 2, 3), 1.0, inputs), pairing(lep, (2, 1, 0, 3), -1.0, inputs)]
    return pairs, 1.0 / g


def _brown_mikaelian(root_s: float, inputs: OffshellInputs) -> float:
    """σ̂(u ū → ZZ) × 2 BR(Z→ee) BR(Z→μμ) in pb, on-shell Z's (Gauss–Legendre in cos θ)."""
    s, mz = root_s**2, inputs.m_z
    beta = np.sqrt(1 - 4 * mz**2 / s)
    x, wt = np.polynomial.legendre.leggauss(200)
    t = mz**2 - s / 2 * (1 - beta * x)
    u = 2 * mz**2 - s - t
    f = t / u + u / t + 4 * mz**2 * s / (t * u) - mz**4 * (1 / t**2 + 1 / u**2)
    g_l, g_r = inputs.up_couplings
    sigma = (
        0.5 * np.sum(wt * f) * (s * beta / 2) / (16 * np.pi * s**2) / 3 * inputs.g_z**4 * (g_l**4 + g_r**4)
    )
    br = inputs.width_z_to_ll() / inputs.width_z
    return GEV2_TO_PB * sigma * 2 * br**2


@pytest.mark.parametrize("root_s", [250.0, 500.0])
@pytest.mark.parametrize("width_z, tolerance", [(0.0025, 0.0), (2.4952, 0.04)])
def test_qq_to_zz_partonic_cross_section(root_s, width_z, tolerance):
    """σ̂(u ū → ZZ → 2e2μ) against Brown–Mikaelian × BR². With Γ_Z = 2.5 MeV the narrow-width limit is
    exact to O(Γ_Z/m_Z) ~ 3e-5 (only MC error allowed); at the physical width the off-shell Z's (and the
    k² range) change σ̂ by O(Γ_Z/m_Z) = 2.7 %, measured −2.3 % (250 GeV) and +2.2 % (500 GeV): 4 % allowed."""
    inputs = OffshellInputs(width_z=width_z)
    pairs, inv_g = _partonic(root_s**2, inputs, 100_000, seed=int(root_s))
    c = qq_structures(pairs, np.full(len(inv_g), root_s), inputs)
    g_l, g_r = inputs.up_couplings
    w = (
        GEV2_TO_PB
        / (2 * root_s**2)
        * inputs.g_z**4
        / 12
        * (g_l**4 * c[:, 0, 0] + g_r**4 * c[:, 0, 1])
        * inv_g
    )
    mean, err = w.mean(), w.std() / np.sqrt(len(w))
    reference = _brown_mikaelian(root_s, inputs)
    assert abs(mean - reference) < 4 * err + tolerance * reference, (mean, err, reference)


def test_identical_lepton_interference_is_constructive_at_125():
    """Γ(H → 4e) with / without the exchange interference at m = 125 GeV: BR(4e)/(½ BR(2e2μ)) ≈ 1.09
    (arXiv:1610.07922); a wrong Fermi sign gives ≈ 0.85. Same sample for both (correlated ratio); at
    300 GeV (both Z's on-shell) the interference vanishes (< 1 %)."""
    inputs = OffshellInputs()
    for root_s, low, high in ((125.0, 1.04, 1.2), (300.0, 0.99, 1.01)):
        pairs, inv_g = _partonic(root_s**2, inputs, 200_000, seed=3, identical=True)
        coherent = np.sum(gg_structures(pairs, inputs)[0] * inv_g)
        incoherent = sum(np.sum(gg_structures([p], inputs)[0] * inv_g) for p in pairs)
        assert low < coherent / incoherent < high, (root_s, coherent / incoherent)


# ---- line shape ---------------------------------------------------------------------------------
def _gamma_2e2mu(m: float, inputs: OffshellInputs, n_nodes: int = 48) -> float:
    """Γ(H* → Z*Z* → 2e2μ)(m) in GeV with Breit–Wigner Z's on the generator's k² ranges (m_ℓℓ > 5 GeV):
    (m³/16π³v²) ∫∫ dk₁² dk₂² (m_Z Γ̃)² |D₁|²|D₂|² √λ (λ + 12 x₁x₂), Γ̃ = Γ(Z→ℓℓ)/m_Z."""
    mz, gz = inputs.m_z, inputs.width_z
    nodes, wts = np.polynomial.legendre.leggauss(n_nodes)

    def bw_nodes(lo, hi):  # k² nodes and weights of ∫ dk² |D|² via ρ = arctan((k² − m²)/mΓ)
        r_lo, r_hi = np.arctan((lo - mz**2) / (mz * gz)), np.arctan((hi - mz**2) / (mz * gz))
        rho = 0.5 * (r_hi - r_lo) * nodes[..., :] + 0.5 * (r_hi + r_lo)
        return mz**2 + mz * gz * np.tan(rho), 0.5 * (r_hi - r_lo) * wts / (mz * gz)

    k1, w1 = bw_nodes(25.0, (m - 5.0) ** 2)
    total = 0.0
    for a, wa in zip(k1, w1):
        k2, w2 = bw_nodes(25.0, (m - np.sqrt(a)) ** 2)
        x1, x2 = a / m**2, k2 / m**2
        lam = np.maximum((1 - x1 - x2) ** 2 - 4 * x1 * x2, 0.0)
        total += wa * np.sum(w2 * np.sqrt(lam) * (lam + 12 * x1 * x2))
    tilde = inputs.width_z_to_ll() / mz
    return m**3 / (16 * np.pi**3 * inputs.vev**2) * (mz**2 * tilde) ** 2 * total


def _signal_dsigma_dm(m: float, pdf, inputs: OffshellInputs, narrow: bool, sqrt_s: float = 13000.0) -> float:
    """dσ_S/dm4ℓ (pb/GeV) of gg → H* → 2e2μ: 2m/s ∫dy g g σ̂; Γ_X exact or narrow-width."""
    alpha = inputs.alpha_s(m / 2)
    form = a_half(m**2 / (4 * inputs.m_t**2)) + a_half(m**2 / (4 * inputs.m_b**2))
    g_fermi = inputs.g_fermi
    gamma_gg = g_fermi * alpha**2 * m**3 / (36 * np.sqrt(2) * np.pi**3) * np.abs(0.75 * form) ** 2
    if narrow:
        x = inputs.m_z**2 / m**2
        br = inputs.width_z_to_ll() / inputs.width_z
        gamma_x = (
            2
            * g_fermi
            * m**3
            / (16 * np.sqrt(2) * np.pi)
            * np.sqrt(1 - 4 * x)
            * (1 - 4 * x + 12 * x**2)
            * br**2
        )
    else:
        gamma_x = _gamma_2e2mu(m, inputs)
    bw = 1.0 / ((m**2 - inputs.m_h**2) ** 2 + (inputs.m_h * inputs.width_h) ** 2)
    sigma_hat = np.pi * gamma_gg * gamma_x * bw / 8
    y_max = np.log(sqrt_s / m)
    y, wy = np.polynomial.legendre.leggauss(64)
    x1, x2 = m / sqrt_s * np.exp(y * y_max), m / sqrt_s * np.exp(-y * y_max)
    q2 = np.full_like(x1, m**2 / 4)
    lum = np.sum(wy * y_max * pdf.xf(21, x1, q2) * pdf.xf(21, x2, q2) / (x1 * x2))
    return GEV2_TO_PB * 2 * m / sqrt_s**2 * lum * sigma_hat


def test_signal_line_shape(pdf):
    """m4ℓ spectrum of S (2e2μ, no cuts) against the analytic width formula, bin by bin: the exact
    off-shell-Z formula within 4σ (MC only); the narrow-width Γ(H→ZZ)·BR² within 5 % (O(Γ_Z/m_Z))."""
    inputs = OffshellInputs()
    sim = OffshellSimulator(
        np.array([1.0]), pdf=pdf, channels=("2e2mu",), lepton_cuts=False, processes=("gg",)
    )
    ev = sim.simulate(150_000, np.random.default_rng(11))
    m4l = _m4l(ev.leptons)
    nodes, wts = np.polynomial.legendre.leggauss(6)
    for lo, hi in ((220, 260), (260, 330), (330, 420), (420, 600), (600, 1000)):
        sel = (m4l >= lo) & (m4l < hi)
        mc, err = ev.components[sel, S].sum(), np.sqrt((ev.components[sel, S] ** 2).sum())
        ms = 0.5 * (hi - lo) * nodes + 0.5 * (hi + lo)
        exact = 0.5 * (hi - lo) * sum(w * _signal_dsigma_dm(m, pdf, inputs, False) for m, w in zip(ms, wts))
        narrow = 0.5 * (hi - lo) * sum(w * _signal_dsigma_dm(m, pdf, inputs, True) for m, w in zip(ms, wts))
        assert abs(mc - exact) < 4 * err, (lo, hi, mc, err, exact)
        assert abs(exact / narrow - 1) < 0.05, (lo, hi, exact, narrow)


# ---- interference and shapes ---------------------------------------------------------------------
def test_interference_sign_and_size(events):
    """docs/offshell.md: with cuts, σ_I/σ_S ≈ −1.7 and σ(B_gg)/σ_S ≈ 6.6; I/S more negative at high m4ℓ."""
    c = events.components
    total = c.sum(axis=0)
    assert total[I] < 0
    assert -2.0 < total[I] / total[S] < -1.4
    assert 5.0 < total[B_GG] / total[S] < 10.0
    m4l = _m4l(events.leptons)
    low, high = m4l < 300, m4l > 500
    ratio_low = c[low, I].sum() / c[low, S].sum()
    ratio_high = c[high, I].sum() / c[high, S].sum()
    assert ratio_high < ratio_low - 0.4  # ≈ −1.9 vs −1.25
    assert c[high, I].sum() < 0 and c[low, I].sum() < 0


def test_signal_flat_in_cos_theta_star_continuum_not(uncut):
    """A scalar decays isotropically: the S share at |cos θ*| > 0.8 is 0.2; the gg continuum (J_z = ±2,
    transverse Z's) and q q̄ → ZZ (t/u-channel) peak forward."""
    x = offshell_observables(uncut.leptons, uncut.ids, np.zeros(len(uncut)))
    forward = np.abs(x[:, OFFSHELL_OBSERVABLES.index("cos_theta_star")]) > 0.8
    w = uncut.components
    share_s = w[forward, S].sum() / w[:, S].sum()
    err = np.sqrt((w[forward, S] ** 2).sum()) / w[:, S].sum()
    assert abs(share_s - 0.2) < 4 * err + 0.005, (share_s, err)
    assert w[forward, B_GG].sum() / w[:, B_GG].sum() > 0.3


def test_qq_continuum_forward(events):
    x = events.observables()
    forward = np.abs(x[:, OFFSHELL_OBSERVABLES.index("cos_theta_star")]) > 0.8
    # the |η| < 2.5 cuts remove forward Z's, so compare to the (cut) signal
    w = events.components
    assert w[forward, B_QQ].sum() / w[:, B_QQ].sum() > w[forward, S].sum() / w[:, S].sum()


# ---- weights, determinism, symmetry ----------------------------------------------------------------
def test_weights_reproduced_from_components(events):
    np.testing.assert_allclose(events.weights, weights_at(events.components, MU), rtol=1e-12, atol=0)
    for mu in (0.3, 3.0):
        w = (
            mu * events.components[:, S]
            + np.sqrt(mu) * events.components[:, I]
            + events.components[:, 2:].sum(1)
        )
        np.testing.assert_allclose(weights_at(events.components, mu)[:, 0], w, rtol=1e-12)
    assert np.all(np.isfinite(events.weights)) and np.all(np.isfinite(events.components))
    assert np.all(events.components[:, [S, B_GG, B_QQ]] >= 0)
    assert np.any(events.components[:, I] > 0)  # the interference takes both signs per event


def test_components_and_observables_are_functions_of_the_momenta(sim, events):
    ev = events
    dens = sim.dsigma(ev.leptons, ev.ids)
    ratio = ev.components / dens  # the same 1/(g · P(channel) · n) in every column
    np.testing.assert_allclose(ratio, ratio[:, :1] * np.ones((1, 4)), rtol=1e-10)
    np.testing.assert_allclose(me_discriminant(dens), ev.d_me, atol=1e-10)
    batch = OffshellBatchSimulator(sim).batch(2_000, np.random.default_rng(5))
    leptons = np.stack([batch.extras[k] for k in ("l1m", "l1p", "l2m", "l2p")], axis=1)
    ids = batch.extras["ids"].astype(int)
    again = offshell_observables(leptons, ids, me_discriminant(sim.dsigma(leptons, ids)))
    np.testing.assert_allclose(again, batch.x, atol=1e-9)


def test_identical_lepton_swap_leaves_weight_unchanged(sim, events):
    same = events.ids[:, 0] == events.ids[:, 2]
    lep, ids = events.leptons[same][:500], events.ids[same][:500]
    for perm in ([2, 1, 0, 3], [0, 3, 2, 1]):  # exchange the two ℓ⁻, or the two ℓ⁺
        swapped = lep[:, perm]
        np.testing.assert_allclose(sim.dsigma(swapped, ids), sim.dsigma(lep, ids), rtol=1e-9)
        np.testing.assert_allclose(
            sim.sampling_density(swapped, ids), sim.sampling_density(lep, ids), rtol=1e-9
        )
        np.testing.assert_allclose(offshell_observables(swapped, ids, np.zeros(500)),
                                   offshell_observables(lep, ids, np.zeros(500)), atol=1e-9)  # fmt: skip


def test_observables_ranges(events):
    x = events.observables()
    col = {name: x[:, i] for i, name in enumerate(OFFSHELL_OBSERVABLES)}
    assert np.all((col["m4l"] > 220 - 1e-9) & (col["m4l"] < 1000 + 1e-9))
    assert np.all(np.abs(col["mz1"] - 91.1876) <= np.abs(col["mz2"] - 91.1876) + 1e-9)
    for name in ("cos_theta_star", "cos_theta1", "cos_theta2"):
        assert np.all(np.abs(col[name]) <= 1 + 1e-12)
    for name in ("phi", "phi1"):
        assert np.all(np.abs(col[name]) <= np.pi + 1e-12)
    assert set(np.unique(col["same_flavour"])) == {0.0, 1.0}
    assert np.all(np.isfinite(x))


# ---- contract ---------------------------------------------------------------------------------------
def test_batch_simulator_contract(sim):
    bs = OffshellBatchSimulator(sim)
    batch = bs.batch(3_000, np.random.default_rng(1))
    n = len(batch.x)
    assert bs.processes == ["zz4l"] and bs.observables == list(OFFSHELL_OBSERVABLES)
    assert batch.x.shape == (n, len(OFFSHELL_OBSERVABLES)) and batch.weights.shape == (n, len(MU))
    assert batch.weight_like == ("components",) and len(COMPONENTS) == 4
    for name, shape in bs.extras_shapes.items():
        assert batch.extras[name].shape == (n, *shape)
    np.testing.assert_allclose(batch.weights, weights_at(batch.extras["components"], MU), rtol=1e-12)


@pytest.mark.parametrize(
    "kwargs",
    [{"mu_benchmarks": np.array([-1.0])}, {"channels": ("4tau",)}, {"processes": ("qg",)},
     {"m4l_range": (1000.0, 220.0)}],
)  # fmt: skip
def test_bad_inputs(pdf, kwargs):
    args = {"mu_benchmarks": MU, "pdf": pdf, **kwargs}
    with pytest.raises(ValueError):
        OffshellSimulator(**args)
