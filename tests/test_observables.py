"""Tests of assay.observables: kinematics against scikit-hep vector, the neutrino p_z reconstruction
on on-shell W events, and the discrete and continuous symmetries of the CP-odd angles cos δ±.

Events come from :func:`wh_events`: on-shell W(→ℓν) H(→bb̄) pairs with isotropic decays, built with
scikit-hep vector's boosts (an implementation independent of the one under test).
"""

from __future__ import annotations

import numpy as np
import pytest
import vector

from assay import observables as obs
from assay.observables import M_W, WH_OBSERVABLES

M_H, M_B = 125.0, 4.7
PARITY = np.array([1.0, -1.0, -1.0, -1.0])
N = 2000


def as_vector(p: np.ndarray):
    return vector.array({"E": p[:, 0], "px": p[:, 1], "py": p[:, 2], "pz": p[:, 3]})


def as_numpy(v) -> np.ndarray:
    return np.column_stack([v.E, v.px, v.py, v.pz])


def two_body(rng, m_parent, m1: float, m2: float) -> tuple[np.ndarray, np.ndarray]:
    """Isotropic two-body decays at rest: daughters (n, 4) with masses m1, m2."""
    n = len(m_parent)
    p = np.sqrt((m_parent**2 - (m1 + m2) ** 2) * (m_parent**2 - (m1 - m2) ** 2)) / (2 * m_parent)
    cos, azimuth = rng.uniform(-1, 1, n), rng.uniform(-np.pi, np.pi, n)
    sin = np.sqrt(1 - cos**2)
    d = p[:, None] * np.column_stack([sin * np.cos(azimuth), sin * np.sin(azimuth), cos])
    return np.column_stack([np.hypot(m1, p), d]), np.column_stack([np.hypot(m2, p), -d])


def wh_events(rng: np.random.Generator, n: int = N) -> dict[str, np.ndarray]:
    """On-shell WH → ℓνbb̄ (massless ℓ, ν; m_b = 4.7 GeV), √ŝ ∈ [250, 1000] GeV, isotropic production and
    decays, WH rapidity uniform in [-1.5, 1.5], no transverse recoil; charges ±1 at random."""
    w, h = two_body(rng, rng.uniform(250.0, 1000.0, n), M_W, M_H)
    lepton, neutrino = (as_vector(p).boost_p4(as_vector(w)) for p in two_body(rng, np.full(n, M_W), 0, 0))
    b1, b2 = (as_vector(p).boost_p4(as_vector(h)) for p in two_body(rng, np.full(n, M_H), M_B, M_B))
    beta = vector.array({"x": np.zeros(n), "y": np.zeros(n), "z": np.tanh(rng.uniform(-1.5, 1.5, n))})
    out = {
        k: as_numpy(v.boost_beta3(beta)) for k, v in zip(("l", "nu", "b1", "b2"), (lepton, neutrino, b1, b2))
    }
    out["q"] = rng.choice([-1.0, 1.0], n)
    return out


@pytest.fixture(scope="module")
def ev() -> dict[str, np.ndarray]:
    return wh_events(np.random.default_rng(20240607))


def random_p4(rng, n: int = 500) -> np.ndarray:
    p3 = rng.normal(0, 100, (n, 3))
    return np.column_stack([np.sqrt((p3**2).sum(1) + rng.uniform(0, 50, n) ** 2), p3])


def reference_cos_deltas(lepton, neutrino, higgs) -> tuple[np.ndarray, np.ndarray]:
    """cos δ± written as in the reference code of arXiv:2308.02882, with scikit-hep vector."""
    lep, nu, h = as_vector(lepton), as_vector(neutrino), as_vector(higgs)
    w = lep + nu
    lep_w, n = lep.boost_beta3(-w.to_beta3()), h.to_Vector3D().cross(w.to_Vector3D())
    plus = lep_w.to_Vector3D().dot(n) / (lep_w.p * n.mag)
    c = lep.boost_beta3(h.to_beta3()).to_Vector3D().cross(nu.boost_beta3(h.to_beta3()).to_Vector3D())
    return plus, c.dot(w.to_Vector3D()) / (c.mag * w.p)


# --- elementary kinematics ---------------------------------------------------------------------


def test_kinematics_match_vector():
    rng = np.random.default_rng(1)
    a, b = random_p4(rng), random_p4(rng)
    va, vb = as_vector(a), as_vector(b)
    np.testing.assert_allclose(obs.pt(a), va.pt, rtol=1e-12)
    np.testing.assert_allclose(obs.eta(a), va.eta, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(obs.phi(a), va.phi, rtol=1e-12)
    np.testing.assert_allclose(obs.mass(a), va.mass, rtol=1e-9)
    np.testing.assert_allclose(obs.delta_phi(a, b), va.deltaphi(vb), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(obs.delta_r(a, b), va.deltaR(vb), rtol=1e-10)
    np.testing.assert_allclose(obs.mt_of_sum(a, b), (va + vb).mt, rtol=1e-10)


def test_delta_phi_wraps_around():
    def at(azimuth):
        return np.column_stack(
            [np.full(len(azimuth), 10.0), np.cos(azimuth), np.sin(azimuth), np.zeros(len(azimuth))]
        )

    a, b = at(np.array([3.0, -3.0, 0.0, 0.5])), at(np.array([-3.0, 3.0, np.pi, -0.5]))
    np.testing.assert_allclose(
        obs.delta_phi(a, b), [6.0 - 2 * np.pi, 2 * np.pi - 6.0, np.pi, 1.0], atol=1e-12
    )
    d = obs.delta_phi(random_p4(np.random.default_rng(2)), random_p4(np.random.default_rng(3)))
    assert np.all((d > -np.pi) & (d <= np.pi))


def test_boost_to_rest_frame_gives_frame_at_rest_and_preserves_invariants():
    rng = np.random.default_rng(4)
    p, frame = random_p4(rng), random_p4(rng)
    at_rest = obs.boost_to_rest_frame(frame, frame)
    # masses from E² − |p|² lose ~1e-13·E²/m in absolute precision: compare with an absolute tolerance
    np.testing.assert_allclose(at_rest[:, 0], obs.mass(frame), rtol=1e-10, atol=1e-7)
    np.testing.assert_allclose(at_rest[:, 1:], 0.0, atol=1e-9)
    moved = obs.boost_to_rest_frame(p, frame)
    np.testing.assert_allclose(obs.mass(moved), obs.mass(p), rtol=1e-8, atol=1e-7)
    np.testing.assert_allclose(obs.mass(moved + at_rest), obs.mass(p + frame), rtol=1e-9, atol=1e-7)
    # same as vector's boost into the rest frame, and undone by the opposite boost
    np.testing.assert_allclose(
        moved, as_numpy(as_vector(p).boostCM_of_p4(as_vector(frame))), rtol=1e-9, atol=1e-9
    )
    np.testing.assert_allclose(obs.boost(moved, frame[:, 1:] / frame[:, :1]), p, rtol=1e-9, atol=1e-9)


def test_boost_rejects_velocities_at_or_above_c_and_light_like_frames_give_nan():
    p = np.array([[10.0, 0.0, 0.0, 1.0], [10.0, 1.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="beta"):
        obs.boost(p, np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]))
    frame = np.array([[1.0, 0.0, 0.0, 1.0], [2.0, 0.0, 0.0, 0.0]])  # light-like (no rest frame), at rest
    np.testing.assert_array_equal(obs.boost_to_rest_frame(p, frame), [[np.nan] * 4, p[1]])


def test_transverse_masses_on_known_values():
    lepton = np.array([[50.0, 30.0, 0.0, 40.0], [20.0, 0.0, 20.0, 0.0]])
    neutrino = np.array([[30.0, -30.0, 0.0, 0.0], [20.0, 20.0, 0.0, 0.0]])
    # massless: m_T² = 2 p_T^ℓ p_T^ν (1 − cos Δφ) → back-to-back 2·30, perpendicular √(2·20·20)
    np.testing.assert_allclose(obs.transverse_mass(lepton, neutrino), [60.0, np.sqrt(800.0)], rtol=1e-12)
    # vector-style: √((E_ℓ + |MET|)² − p_z²) = √(80² − 40²)
    assert obs.mt_of_sum(lepton[:1], obs.met_four_vector(neutrino[:1, 1:3]))[0] == pytest.approx(
        np.sqrt(4800.0)
    )


def test_mt_of_sum_bounds_transverse_mass(ev):
    met = obs.met_four_vector(ev["nu"][:, 1:3])
    args = (ev["l"], ev["b1"], ev["b2"], met)
    assert np.all(obs.mt_of_sum(*args) >= obs.transverse_mass(*args) * (1 - 1e-12))
    assert obs.transverse_mass(ev["l"], ev["nu"]).max() <= M_W * (1 + 1e-9)  # Jacobian edge


# --- neutrino p_z ------------------------------------------------------------------------------


def test_neutrino_pz_recovers_true_pz_for_on_shell_w(ev):
    solutions = obs.neutrino_pz_solutions(ev["l"], ev["nu"][:, 1:3])
    error = np.abs(solutions - ev["nu"][:, 3:4]).min(axis=1)
    np.testing.assert_array_less(error, 1e-6 * (1 + np.abs(ev["nu"][:, 3])))


def test_neutrino_pz_picks_the_solution_closest_to_the_higgs_in_beta_z(ev):
    higgs, true_pz = ev["b1"] + ev["b2"], ev["nu"][:, 3]
    solutions = obs.neutrino_pz_solutions(ev["l"], ev["nu"][:, 1:3])
    true_index = np.argmin(np.abs(solutions - true_pz[:, None]), axis=1)
    other = solutions[np.arange(N), 1 - true_index]

    def beta_z(pz):  # W candidate with this neutrino p_z, β_z = p_z/√(p_z² + M²)
        w = ev["l"] + obs.neutrino_from_met(ev["nu"][:, 1:3], pz)
        return w[:, 3] / np.sqrt(w[:, 3] ** 2 + obs.mass(w) ** 2)

    h_beta = higgs[:, 3] / np.sqrt(higgs[:, 3] ** 2 + M_H**2)
    true_closest = np.abs(beta_z(true_pz) - h_beta) < np.abs(beta_z(other) - h_beta)
    chosen = obs.neutrino_pz(ev["l"], ev["nu"][:, 1:3], higgs)
    np.testing.assert_allclose(chosen[true_closest], true_pz[true_closest], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(chosen[~true_closest], other[~true_closest], rtol=1e-6, atol=1e-6)
    # W and H share the WH boost, so the criterion beats a coin toss (57% here for isotropic production)
    assert true_closest.mean() > 0.52


def test_neutrino_pz_hand_built_case():
    # Both solutions give an on-shell W (Δ > 0), so β_z of the W candidate grows with p_z: a Higgs flying
    # forward (β_z ≈ 0.998) selects the larger p_z, a backward one the smaller.
    lepton, met = np.array([[50.0, 40.0, 0.0, 30.0]]), np.array([[-10.0, 25.0]])
    pz = obs.neutrino_pz_solutions(lepton, met)[0]
    assert pz[0] > pz[1]
    for w_candidate in (lepton + obs.neutrino_from_met(met, pz[i : i + 1]) for i in (0, 1)):
        assert obs.mass(w_candidate)[0] == pytest.approx(M_W)
    forward = np.array([[np.sqrt(125.0**2 + 30.0**2 + 2000.0**2), -30.0, -25.0, 2000.0]])
    assert obs.neutrino_pz(lepton, met, forward)[0] == pz[0]
    assert obs.neutrino_pz(lepton, met, forward * [1.0, 1.0, 1.0, -1.0])[0] == pz[1]


def test_neutrino_pz_negative_discriminant_iff_mt_above_mw(ev):
    # MET scaled by 1.5: many events get m_T^W > m_W, where Δ < 0 and both solutions merge
    met = 1.5 * ev["nu"][:, 1:3]
    mt = obs.transverse_mass(ev["l"], obs.met_four_vector(met))
    solutions = obs.neutrino_pz_solutions(ev["l"], met)
    clear = np.abs(mt - M_W) > 1e-3
    above = mt > M_W
    assert 0.1 < above.mean() < 0.9
    merged = solutions[:, 0] == solutions[:, 1]
    np.testing.assert_array_equal(merged[clear], above[clear])
    pt2 = obs.pt(ev["l"]) ** 2
    centre = (0.5 * M_W**2 + (ev["l"][:, 1:3] * met).sum(1)) * ev["l"][:, 3] / pt2
    np.testing.assert_allclose(solutions[above, 0], centre[above], rtol=1e-12)
    assert np.all(np.isfinite(obs.neutrino_pz(ev["l"], met, ev["b1"] + ev["b2"])))


# --- cos δ± ------------------------------------------------------------------------------------


def test_cos_deltas_match_reference_code_and_lie_in_range(ev):
    higgs = ev["b1"] + ev["b2"]
    plus, minus = obs.cos_delta_plus(ev["l"], ev["nu"], higgs), obs.cos_delta_minus(ev["l"], ev["nu"], higgs)
    ref_plus, ref_minus = reference_cos_deltas(ev["l"], ev["nu"], higgs)
    np.testing.assert_allclose(plus, ref_plus, atol=1e-9)
    np.testing.assert_allclose(minus, ref_minus, atol=1e-9)
    for c in (plus, minus):
        assert np.all(np.abs(c) <= 1) and c.std() > 0.3
    rng = np.random.default_rng(5)  # also for arbitrary (non-WH) momenta
    assert np.all(np.abs(obs.cos_delta_minus(random_p4(rng), random_p4(rng), random_p4(rng))) <= 1)


CP_EVEN = ("l_pt", "b1_pt", "b2_pt", "met", "pt_w", "pt_h", "m_bb", "mt_w", "mt_tot", "q_l")
CP_EVEN += ("dr_bb", "dr_lb1", "dr_lb2")
DPHI = ("dphi_lnu", "dphi_bb", "dphi_wh", "dphi_lb1", "dphi_lb2")
P_ODD = ("l_px", "l_pz", "b1_py", "b1_eta")


@pytest.mark.parametrize(
    "reflection",
    [PARITY, np.array([1.0, 1.0, 1.0, -1.0]), np.array([1.0, -1.0, 1.0, 1.0])],
    ids=["parity", "z-mirror", "x-mirror"],
)
def test_reflections_flip_cos_deltas_and_keep_cp_even_observables(ev, reflection):
    # Any improper transformation (parity, or one mirrored axis = parity × a rotation by π) flips triple
    # products; p_T, masses, m_T, ΔR and |Δφ| do not change.
    args = (ev["l"], ev["b1"], ev["b2"], ev["nu"])
    before = obs.wh_observables(*args, ev["q"])
    after = obs.wh_observables(*(a * reflection for a in args), ev["q"])
    col = {name: i for i, name in enumerate(WH_OBSERVABLES)}

    def cols(names):
        return [col[n] for n in names]

    np.testing.assert_allclose(after[:, cols(CP_EVEN)], before[:, cols(CP_EVEN)], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(np.abs(after[:, cols(DPHI)]), np.abs(before[:, cols(DPHI)]), atol=1e-9)
    cp_odd = cols(("ql_cos_delta_plus", "ql_cos_delta_minus"))
    np.testing.assert_allclose(after[:, cp_odd], -before[:, cp_odd], atol=1e-9)
    if reflection is PARITY:
        np.testing.assert_allclose(after[:, cols(P_ODD)], -before[:, cols(P_ODD)], atol=1e-9)


def test_rotations_leave_cos_deltas_invariant(ev):
    higgs = ev["b1"] + ev["b2"]
    rotation, _ = np.linalg.qr(np.random.default_rng(6).normal(size=(3, 3)))  # random orthogonal matrix
    rotation[:, 0] *= np.sign(np.linalg.det(rotation))  # proper rotation: det = +1

    def rotate(p):
        return np.column_stack([p[:, 0], p[:, 1:] @ rotation.T])

    for f in (obs.cos_delta_plus, obs.cos_delta_minus):
        np.testing.assert_allclose(
            f(rotate(ev["l"]), rotate(ev["nu"]), rotate(higgs)), f(ev["l"], ev["nu"], higgs), atol=1e-9
        )


def test_longitudinal_boosts(ev):
    """For p_T-balanced WH, a z-boost only flips cos δ⁺ where it reverses the WH p_z: n = p⃗_H × p⃗_W is
    normal to the production plane with sign(ΣE p_z), and the Wigner rotation of the W rest frame is
    about n. cos δ⁻ (boost by β_H measured in the lab) has no such invariance."""
    higgs, total_pz = ev["b1"] + ev["b2"], (ev["l"] + ev["nu"] + ev["b1"] + ev["b2"])[:, 3]
    beta = np.column_stack([np.zeros(N), np.zeros(N), np.full(N, -0.6)])
    moved = [obs.boost(p, beta) for p in (ev["l"], ev["nu"], higgs)]
    flipped = np.sign(total_pz) != np.sign(moved[0][:, 3] + moved[1][:, 3] + moved[2][:, 3])
    assert 0.05 < flipped.mean() < 0.95
    plus, plus_moved = obs.cos_delta_plus(ev["l"], ev["nu"], higgs), obs.cos_delta_plus(*moved)
    np.testing.assert_allclose(plus_moved, np.where(flipped, -plus, plus), atol=1e-6)
    minus, minus_moved = obs.cos_delta_minus(ev["l"], ev["nu"], higgs), obs.cos_delta_minus(*moved)
    assert np.abs(minus_moved - minus).max() > 0.1


# --- the observable table ----------------------------------------------------------------------


def test_wh_observables_on_a_hand_built_event():
    e_b = np.hypot(M_B, 60.0)
    b_soft, b_hard = np.array([[e_b, -60.0, 0.0, 0.0]]), np.array([[np.hypot(M_B, 61.0), 61.0, 0.0, 0.0]])
    lepton, neutrino = np.array([[40.0, 0.0, 40.0, 0.0]]), np.array([[30.0, 0.0, -30.0, 0.0]])
    x = dict(zip(WH_OBSERVABLES, obs.wh_observables(lepton, b_soft, b_hard, neutrino, [-1])[0]))
    assert x["b1_pt"] == 61.0 and x["b2_pt"] == 60.0  # ordered by p_T
    assert x["dphi_bb"] == pytest.approx(np.pi) and x["dr_bb"] == pytest.approx(np.pi)
    assert x["m_bb"] == pytest.approx(np.sqrt((e_b + np.hypot(M_B, 61.0)) ** 2 - 1.0))
    assert x["pt_h"] == pytest.approx(1.0) and x["pt_w"] == pytest.approx(10.0)
    assert x["mt_w"] == pytest.approx(2 * np.sqrt(40.0 * 30.0))  # back-to-back massless
    assert (x["met_x"], x["met_y"], x["met"], x["pz_nu"]) == (0.0, -30.0, 30.0, 0.0)
    assert x["dphi_lb1"] == pytest.approx(np.pi / 2) and x["dr_lb2"] == pytest.approx(np.pi / 2)
    assert x["q_l"] == -1.0 and x["l_phi"] == pytest.approx(np.pi / 2)


def test_wh_observables_columns(ev):
    x = obs.wh_observables(ev["l"], ev["b1"], ev["b2"], ev["nu"], ev["q"])
    assert x.shape == (N, len(WH_OBSERVABLES)) == (N, 43) and len(set(WH_OBSERVABLES)) == 43
    assert np.all(np.isfinite(x))
    col = {name: i for i, name in enumerate(WH_OBSERVABLES)}
    np.testing.assert_allclose(x[:, col["m_bb"]], M_H, rtol=1e-9)
    x_flipped = obs.wh_observables(ev["l"], ev["b2"], ev["b1"], ev["nu"], -ev["q"])
    np.testing.assert_allclose(x_flipped[:, col["ql_cos_delta_plus"]], -x[:, col["ql_cos_delta_plus"]])
    np.testing.assert_array_equal(
        np.delete(x_flipped, [col["q_l"], col["ql_cos_delta_plus"], col["ql_cos_delta_minus"]], 1),
        np.delete(x, [col["q_l"], col["ql_cos_delta_plus"], col["ql_cos_delta_minus"]], 1),
    )


def test_detector_observables_equal_truth_when_reconstruction_is_right(ev):
    higgs = ev["b1"] + ev["b2"]
    right = np.isclose(
        obs.neutrino_pz(ev["l"], ev["nu"][:, 1:3], higgs), ev["nu"][:, 3], rtol=1e-6, atol=1e-6
    )
    truth = obs.wh_observables(ev["l"], ev["b1"], ev["b2"], ev["nu"], ev["q"])
    reco = obs.wh_detector_observables(ev["l"], ev["b1"], ev["b2"], ev["nu"][:, 1:3], ev["q"])
    np.testing.assert_allclose(reco[right], truth[right], rtol=1e-6, atol=1e-6)
    assert not np.allclose(reco[~right], truth[~right])


# --- bad input ---------------------------------------------------------------------------------

P4 = np.ones((3, 4)) * [10.0, 1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: obs.pt(np.ones(4)), "p"),
        (lambda: obs.delta_phi(P4, np.ones((3, 3))), "b"),
        (lambda: obs.boost(P4, np.zeros((3, 4))), "beta"),
        (lambda: obs.boost(P4, np.zeros((2, 3))), "same number of events"),
        (lambda: obs.neutrino_pz(P4, np.ones((3, 3)), P4), "met_xy"),
        (lambda: obs.neutrino_pz(P4, np.ones((3, 2)), P4[:2]), "higgs"),
        (lambda: obs.neutrino_from_met(np.ones((3, 2)), np.ones(2)), "pz"),
        (lambda: obs.cos_delta_plus(P4, P4.T, P4), "neutrino"),
        (lambda: obs.wh_observables(P4, P4, P4[:, :3], P4, np.ones(3)), "b2"),
        (lambda: obs.wh_observables(P4, P4, P4, P4, np.array([1.0, 0.0, -1.0])), "charge"),
        (lambda: obs.wh_observables(P4, P4, P4, P4, np.ones(2)), "charge"),
        (lambda: obs.wh_detector_observables(P4, P4, P4, np.ones(3), np.ones(3)), "met_xy"),
        (lambda: obs.transverse_mass(P4, P4[:, :2]), r"momenta\[1\]"),
    ],
)
def test_bad_shapes_name_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()
