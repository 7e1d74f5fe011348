"""Tests of the WH helicity amplitudes (assay.simulators.wh_matrix_element).

The amplitudes are checked against symmetries they must have whatever the conventions: Lorentz
invariance of |M|² under proper transformations, parity (CP-even terms invariant, the SM × c_HW̃
interference odd), transversality of the dimension-6 vertices, current conservation and the
spin-sum identity of massless V−A currents. Random configurations are built with exact momentum
conservation q_quark + q_antiquark = ℓ + ν + h; tolerances are float64 rounding with headroom.
"""

from __future__ import annotations

import numpy as np
import pytest

from assay.simulators.phase_space import METRIC, dot, mass2, two_body_decay
from assay.simulators.wh_matrix_element import (
    LEVI_CIVITA,
    EWInputs,
    amplitude_structures,
    current,
    vertex_structures,
)

EW = EWInputs()
N = 200
PARITY = np.diag([1.0, -1.0, -1.0, -1.0])  # (E, p⃗) → (E, −p⃗): improper, det = −1


def massless(rng: np.random.Generator, n: int, e_max: float = 800.0) -> np.ndarray:
    """Massless momenta (n, 4) in GeV with isotropic directions, E ∈ [20, e_max]."""
    direction = rng.normal(size=(n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    energy = rng.uniform(20.0, e_max, n)
    return np.column_stack([energy, energy[:, None] * direction])


def configurations(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Random q q̄' → ℓ ν h momenta in a random (non-CM) frame, q + q̄' = ℓ + ν + h exactly."""
    quark, anti = massless(rng, 4 * n), massless(rng, 4 * n)
    ok = mass2(quark + anti) > (EW.m_h + 30.0) ** 2
    quark, anti = quark[ok][:n], anti[ok][:n]
    n, q = len(quark), quark + anti
    k2 = rng.uniform(10.0**2, (np.sqrt(mass2(q)) - EW.m_h) ** 2)  # W* mass² from 10 GeV to threshold
    w, higgs = two_body_decay(q, k2, EW.m_h**2, rng.uniform(-1, 1, n), rng.uniform(0, 2 * np.pi, n))
    lepton, neutrino = two_body_decay(w, 0.0, 0.0, rng.uniform(-1, 1, n), rng.uniform(0, 2 * np.pi, n))
    return {"quark": quark, "anti": anti, "lepton": lepton, "neutrino": neutrino, "higgs": higgs}


def amplitudes(config: dict[str, np.ndarray], charge: int) -> np.ndarray:
    """A_a (3, n) as documented in amplitude_structures: W⁺ ← u d̄ with the ℓ⁺ν current on the W⁻ leg
    (incoming W⁺ momentum q, incoming W⁻ momentum −p_W); W⁻ with the legs swapped."""
    quark, anti, lepton, neutrino = (config[k] for k in ("quark", "anti", "lepton", "neutrino"))
    q, w = quark + anti, lepton + neutrino
    j_quark = current(quark, anti)
    if charge > 0:
        return amplitude_structures(j_quark, current(lepton, neutrino), q, -w, EW, quark_on_w_plus=True)
    return amplitude_structures(j_quark, current(neutrino, lepton), -w, q, EW, quark_on_w_plus=False)


def transform(config: dict[str, np.ndarray], matrix: np.ndarray) -> dict[str, np.ndarray]:
    return {k: p @ matrix.T for k, p in config.items()}


def random_lorentz(rng: np.random.Generator, beta_max: float = 0.9) -> np.ndarray:
    """A proper orthochronous Lorentz matrix Λ = B(β⃗) R built by hand (Rodrigues rotation, then boost)."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = rng.uniform(0, 2 * np.pi)
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rotation = np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross
    beta = rng.normal(size=3)
    beta *= rng.uniform(0.1, beta_max) / np.linalg.norm(beta)
    gamma = 1 / np.sqrt(1 - beta @ beta)
    boost = np.eye(4)
    boost[0, 0] = gamma
    boost[0, 1:] = boost[1:, 0] = gamma * beta
    boost[1:, 1:] += (gamma - 1) * np.outer(beta, beta) / (beta @ beta)
    rot4 = np.eye(4)
    rot4[1:, 1:] = rotation
    return boost @ rot4


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240917)


@pytest.fixture
def config(rng) -> dict[str, np.ndarray]:
    return configurations(rng, N)


def msq(amps: np.ndarray, g: np.ndarray) -> np.ndarray:
    return np.abs(g @ amps) ** 2


# ---- Lorentz invariance and parity ----------------------------------------------------------------
def test_random_lorentz_matrix_is_proper(rng):
    lam = random_lorentz(rng)
    np.testing.assert_allclose(lam.T @ METRIC @ lam, METRIC, atol=1e-12)
    assert np.linalg.det(lam) == pytest.approx(1.0, abs=1e-12)
    assert lam[0, 0] >= 1.0


def test_configurations_conserve_momentum(config):
    total = config["lepton"] + config["neutrino"] + config["higgs"]
    np.testing.assert_allclose(total, config["quark"] + config["anti"], atol=1e-9)
    np.testing.assert_allclose(mass2(config["higgs"]), EW.m_h**2, rtol=1e-9)


@pytest.mark.parametrize("charge", [1, -1])
def test_msq_is_lorentz_invariant(rng, config, charge):
    couplings = np.column_stack([np.ones(5), rng.normal(0, 2, (5, 2))])  # (1, c_HW, c_HW̃) rows
    before = amplitudes(config, charge)
    for _ in range(3):
        after = amplitudes(transform(config, random_lorentz(rng)), charge)
        for g in couplings:
            # |M|² is a Lorentz scalar; spinor phases (little-group) drop out of |Σ g_a A_a|².
            # Rounding: momenta ~1e3 GeV, γ ≤ 2.3, |A|² a sum of O(10) products: ≲ 1e-12 relative
            np.testing.assert_allclose(msq(after, g), msq(before, g), rtol=1e-10)


@pytest.mark.parametrize("charge", [1, -1])
def test_parity_keeps_cp_even_terms_and_flips_cp_odd_interference(config, charge):
    amps = amplitudes(config, charge)
    mirrored = amplitudes(transform(config, PARITY), charge)
    # CP-even part: |A_SM + c A_HW|² for any c, and |A_HW̃|², are parity invariant
    for c in (-1.5, 0.0, 0.7):
        g = np.array([1.0, c, 0.0])
        np.testing.assert_allclose(msq(mirrored, g), msq(amps, g), rtol=1e-10)
    np.testing.assert_allclose(np.abs(mirrored[2]) ** 2, np.abs(amps[2]) ** 2, rtol=1e-10)
    # the interferences with the ε-tensor structure are parity odd
    for i in (0, 1):
        before = np.real(amps[i] * amps[2].conj())
        after = np.real(mirrored[i] * mirrored[2].conj())
        scale = np.abs(amps[i] * amps[2])
        assert np.median(np.abs(before) / scale) > 0.1  # the interference is not trivially zero
        np.testing.assert_allclose(after, -before, rtol=0, atol=1e-10 * scale.max())
    # equivalently, parity maps c_HW̃ → −c_HW̃
    g = np.array([1.0, 0.4, 0.9])
    np.testing.assert_allclose(msq(mirrored, g), msq(amps, g * [1, 1, -1]), rtol=1e-10)


def test_lorentz_check_sees_a_wrong_amplitude(rng, config):
    """Sanity of the invariance test itself: a frame-dependent term (E_ℓ × A_SM) is caught."""
    lam = random_lorentz(rng)
    moved = transform(config, lam)
    bad_before = np.abs(amplitudes(config, 1)[0] * config["lepton"][:, 0]) ** 2
    bad_after = np.abs(amplitudes(moved, 1)[0] * moved["lepton"][:, 0]) ** 2
    assert not np.allclose(bad_after, bad_before, rtol=1e-3)


# ---- vertex structures --------------------------------------------------------------------------
def test_dimension_six_vertices_are_transverse(rng):
    k1, k2 = rng.normal(0, 300, (N, 4)), rng.normal(0, 300, (N, 4))  # off-shell legs
    v = vertex_structures(k1, k2, EW)
    assert v.shape == (3, N, 4, 4)
    for a in (1, 2):  # c_HW and c_HW̃ (field strengths): k1_μ V^{μν} = 0 = V^{μν} k2_ν
        scale = np.abs(v[a]).max() * 1e3  # |k| V ~ 1e3 |V|; rounding ~1e-16 of that
        np.testing.assert_allclose(np.einsum("nm,nmv->nv", k1 @ METRIC, v[a]), 0.0, atol=1e-12 * scale)
        np.testing.assert_allclose(np.einsum("nmv,nv->nm", v[a], k2 @ METRIC), 0.0, atol=1e-12 * scale)
    # the SM structure is (2 m_W²/v) g^{μν}, not transverse
    np.testing.assert_allclose(v[0], np.broadcast_to(2 * EW.m_w**2 / EW.vev * METRIC, (N, 4, 4)))
    assert np.abs(np.einsum("nm,nmv->nv", k1 @ METRIC, v[0])).max() > 1.0


def test_vertices_are_bose_symmetric(rng):
    # exchanging the two W legs (μ, k1) ↔ (ν, k2) leaves each structure unchanged
    k1, k2 = rng.normal(0, 300, (N, 4)), rng.normal(0, 300, (N, 4))
    v, swapped = vertex_structures(k1, k2, EW), vertex_structures(k2, k1, EW)
    np.testing.assert_allclose(swapped, np.swapaxes(v, 2, 3), rtol=1e-12, atol=1e-14 * np.abs(v).max())


def test_vertex_normalisation_of_anomalous_structures():
    # V_HW = −(4v/Λ²)(k1·k2 g^{μν} − k2^μ k1^ν), V_HW̃ = −(4v/Λ²) ε^{μνρσ} k1_ρ k2_σ (Warsaw O_HW, O_HW̃
    # with L ⊃ (c/Λ²) O, W̃_μν = ½ ε_μνρσ W^ρσ, ε^{0123} = +1), by hand at k1 = (a, 0, 0, 0), k2 = (0, 0, 0, b)
    a, b = 100.0, 50.0
    v = vertex_structures(np.array([[a, 0, 0, 0.0]]), np.array([[0, 0, 0, b]]), EW)[:, 0]
    unit = 4 * EW.vev / EW.lambda_np**2
    assert v[1][3, 0] == pytest.approx(unit * a * b)  # −unit × (−k2^3 k1^0) = unit × b × a
    assert np.count_nonzero(v[1]) == 1  # k1·k2 = 0: no g^{μν} part
    # ε^{12ρσ} k1_ρ k2_σ = ε^{1203} k1_0 k2_3 = (+1) a (−b), times −unit; antisymmetric in μν
    assert v[2][1, 2] == pytest.approx(unit * a * b)
    assert v[2][2, 1] == pytest.approx(-unit * a * b)
    assert np.count_nonzero(v[2]) == 2


def test_levi_civita_convention():
    assert LEVI_CIVITA[0, 1, 2, 3] == 1.0
    assert LEVI_CIVITA[1, 0, 2, 3] == -1.0 and LEVI_CIVITA[3, 0, 1, 2] == -1.0
    lowered = np.einsum("ma,nb,rc,sd,abcd->mnrs", METRIC, METRIC, METRIC, METRIC, LEVI_CIVITA)
    assert lowered[0, 1, 2, 3] == -1.0  # ε_{0123} = −ε^{0123}
    assert np.sum(LEVI_CIVITA * lowered) == -24.0
    assert np.count_nonzero(LEVI_CIVITA) == 24


@pytest.mark.parametrize("charge", [1, -1])
def test_sign_of_the_cp_odd_interference(config, charge):
    """The SM × c_HW̃ term of |M|², 2 Re(A_SM A_HW̃*), has the sign of ε_{μνρσ} p_u^μ p_d^ν p_ℓ^ρ p_ν^σ
    with ε_{0123} = +1 (Warsaw), computed here as a determinant of the contravariant components:
    u the up-type and d the down-type (anti)quark, ℓ the charged lepton, ν the (anti)neutrino.
    For W⁺ (u d̄ → ℓ⁺ν) that is ε(p_u, p_d̄, p_ℓ, p_ν); for W⁻ (d ū → ℓ⁻ν̄) ε(p_ū, p_d, p_ℓ, p_ν̄)."""
    amps = amplitudes(config, charge)
    interference = 2 * np.real(amps[0] * amps[2].conj())
    up, down = (config["quark"], config["anti"]) if charge > 0 else (config["anti"], config["quark"])
    momenta = (up, down, config["lepton"], config["neutrino"])
    epsilon = np.linalg.det(np.stack(momenta, axis=1))  # rows: contravariant components of each momentum
    # the same as the explicit sum over permutations: ε_{μνρσ} with ε_{0123} = +1 has the numbers of
    # LEVI_CIVITA (whose ε^{0123} = +1 on upper indices), so contract it with upper components
    explicit = np.einsum("abcd,na,nb,nc,nd->n", LEVI_CIVITA, *momenta)
    np.testing.assert_allclose(explicit, epsilon, rtol=1e-9, atol=1e-9 * np.abs(epsilon).max())
    assert np.all(np.abs(epsilon) > 0) and np.all(np.abs(interference) > 0)
    np.testing.assert_array_equal(np.sign(interference), np.sign(epsilon))


# ---- fermion currents --------------------------------------------------------------------------
def special_directions() -> np.ndarray:
    """Massless momenta along ±z and ±x, where spinor phase conventions have branch points."""
    return np.array([[50.0, 0, 0, 50.0], [70.0, 0, 0, -70.0], [30.0, 30.0, 0, 0], [40.0, 0, -40.0, 0]])


def test_current_of_same_momentum_is_twice_momentum(rng):
    a = np.vstack([massless(rng, N), special_directions()])
    j = current(a, a)
    np.testing.assert_allclose(j, 2 * a, rtol=0, atol=1e-12 * a[:, :1].max())


def test_current_is_conserved(rng):
    a = np.vstack([massless(rng, N), special_directions()])
    b = np.vstack([massless(rng, N), special_directions()[::-1]])
    j = current(a, b)
    scale = (a[:, 0] * b[:, 0])[:, None].max() * 1e-12  # J ~ √(E_a E_b), J·a ~ E^{3/2}·√E
    np.testing.assert_allclose(dot(j, a), 0.0, atol=scale)
    np.testing.assert_allclose(dot(j, b), 0.0, atol=scale)


def test_current_spin_sum_identity(rng):
    """J^μ J^{ν*} = Tr[b̸ γ^μ a̸ γ^ν P_L] = 2(a^μb^ν + a^νb^μ − g^{μν} a·b) + 2i ε^{μνρσ} a_ρ b_σ.

    The trace uses Tr[γ^αγ^μγ^βγ^νγ⁵] = −4i ε^{αμβν} for ε^{0123} = +1 (from γ⁵ = iγ⁰γ¹γ²γ³).
    """
    a = np.vstack([massless(rng, N), special_directions()])
    b = np.vstack([massless(rng, N), special_directions()[::-1]])
    j = current(a, b)
    tensor = np.einsum("nm,nv->nmv", j, j.conj())
    metric_up = METRIC  # g^{μν} = g_{μν} numerically
    symmetric = 2 * (np.einsum("nm,nv->nmv", a, b) + np.einsum("nm,nv->nmv", b, a)
                     - dot(a, b)[:, None, None] * metric_up)  # fmt: skip
    antisymmetric = 2j * np.einsum("mvrs,nr,ns->nmv", LEVI_CIVITA, a @ METRIC, b @ METRIC)
    scale = (a[:, 0] * b[:, 0])[:, None, None]
    np.testing.assert_allclose(tensor / scale, (symmetric + antisymmetric) / scale, rtol=0, atol=1e-12)
    # the opposite ε sign (a right-handed current) is excluded: the antisymmetric part is O(1)
    assert np.abs((tensor - symmetric + antisymmetric) / scale).max() > 0.1


def test_current_is_exact_near_the_minus_z_axis():
    """Spinors of momenta a hair away from −z must stay accurate (no cancellation in |p| + p_z)."""
    angle = np.array([1e-2, 1e-3, 1e-5, 1e-7, 1e-9])  # polar distance from the −z axis
    a = 100.0 * np.column_stack([np.ones(5), np.sin(angle), np.zeros(5), -np.cos(angle)])
    # float64 allows ~1e-14 relative; 1e-12 leaves headroom. Near −z, |p| + p_z cancels: computed as
    # p_T²/(|p| − p_z) it is exact, computed directly its relative error is 1e-16/angle².
    np.testing.assert_allclose(current(a, a), 2 * a, rtol=0, atol=1e-12 * 200.0)


@pytest.mark.parametrize("quark_on_w_plus", [True, False])
def test_written_out_contractions_equal_the_vertex_tensors(quark_on_w_plus):
    # amplitude_structures writes the contractions out (determinant for ε); they must equal J·V_a·J'
    rng = np.random.default_rng(11)
    ew = EWInputs()
    j1 = rng.normal(size=(50, 4)) + 1j * rng.normal(size=(50, 4))
    j2 = rng.normal(size=(50, 4)) + 1j * rng.normal(size=(50, 4))
    k1, k2 = rng.normal(scale=100, size=(50, 4)), rng.normal(scale=100, size=(50, 4))
    got = amplitude_structures(j1, j2, k1, k2, ew, quark_on_w_plus=quark_on_w_plus)
    plus, minus = (j1, j2) if quark_on_w_plus else (j2, j1)
    expected = np.einsum("nm,anmv,nv->an", plus @ METRIC, vertex_structures(k1, k2, ew), minus @ METRIC)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10 * np.abs(expected).max())
