"""Tests of assay.simulators.detector: the resolutions and efficiencies a DetectorModel is configured with
are the ones it produces (statistical checks at fixed seeds, 5σ tolerances), and Selection reproduces
seed 000's cuts on events built to sit just inside or just outside each of them.
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import vector
from rich.console import Console
from rich.table import Table
from scipy import stats
from test_observables import wh_events

from assay.simulators.detector import CutFlow, DetectorEvents, DetectorModel, EnergyResolution, Selection

N_COPIES = 100_000
EPS = 1e-5


def copies(p: list[float], n: int = N_COPIES) -> np.ndarray:
    return np.tile(np.asarray(p, dtype=float), (n, 1))


def from_pt_eta_phi(pt, eta, phi, m=0.0) -> np.ndarray:
    pt, eta, phi = np.broadcast_arrays(*(np.atleast_1d(np.asarray(x, dtype=float)) for x in (pt, eta, phi)))
    p = np.column_stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)])
    return np.column_stack([np.sqrt(m**2 + (p**2).sum(1)), p])


def unit(p: np.ndarray) -> np.ndarray:
    return p[:, 1:] / np.linalg.norm(p[:, 1:], axis=1, keepdims=True)


def model(**changes) -> DetectorModel:
    """The ideal detector with some settings changed."""
    return dataclasses.replace(DetectorModel.ideal(), **changes)


@pytest.fixture(scope="module")
def truth() -> dict[str, np.ndarray]:
    return wh_events(np.random.default_rng(77), n=20_000)


def simulate(detector: DetectorModel, ev: dict[str, np.ndarray], seed: int = 1) -> DetectorEvents:
    return detector.simulate(ev["l"], ev["b1"], ev["b2"], ev["nu"], ev["q"], rng=seed)


# --- resolutions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "p", "expected"),
    [
        ("lepton", [200.0, 120.0, 0.0, 160.0], np.hypot(0.01, 1e-4 * 120.0)),  # 1% ⊕ 0.01%·p_T (not E)
        ("b", [100.0, 0.0, 80.0, np.sqrt(100.0**2 - 80.0**2 - 4.7**2)], np.hypot(0.1, 0.05)),  # 100%/√E ⊕ 5%
    ],
)
def test_energy_resolution_is_as_configured(obj, p, expected):
    p = copies(p)
    ev = DetectorModel().simulate(p, p, p, copies([30.0, 30.0, 0.0, 0.0]), np.ones(N_COPIES), rng=3)
    energy = ev.lepton[:, 0] if obj == "lepton" else np.concatenate([ev.b1[:, 0], ev.b2[:, 0]])
    relative = energy / p[0, 0] - 1
    # sample std has relative standard error 1/√(2n); the mean is unbiased (no clipping this far from 0)
    assert relative.std() == pytest.approx(expected, rel=5 / np.sqrt(2 * len(relative)))
    assert abs(relative.mean()) < 5 * expected / np.sqrt(len(relative))


def test_energy_resolution_formula():
    res = EnergyResolution(stochastic=0.5, constant=0.03, linear=2e-4)
    energy = np.array([4.0, 100.0, 2500.0])
    expected = np.sqrt((0.5 / np.sqrt(energy)) ** 2 + 0.03**2 + (2e-4 * energy) ** 2)
    np.testing.assert_allclose(res.relative(energy), expected, rtol=1e-14)


def test_zero_resolution_is_the_identity(truth):
    ev = simulate(DetectorModel.ideal(), truth)
    swap = (np.hypot(*truth["b2"][:, 1:3].T) > np.hypot(*truth["b1"][:, 1:3].T))[:, None]
    np.testing.assert_array_equal(ev.lepton, truth["l"])
    np.testing.assert_array_equal(ev.b1, np.where(swap, truth["b2"], truth["b1"]))
    np.testing.assert_array_equal(ev.b2, np.where(swap, truth["b1"], truth["b2"]))
    np.testing.assert_array_equal(ev.met_xy, truth["nu"][:, 1:3])
    assert ev.identified.all() and np.array_equal(ev.charge, truth["q"])


def test_energy_smearing_keeps_direction_and_mass(truth):
    resolutions = {
        "lepton_resolution": EnergyResolution(constant=0.1),
        "jet_resolution": EnergyResolution(constant=0.2),
    }
    ev = simulate(model(**resolutions), truth)
    assert not np.allclose(ev.lepton, truth["l"]) and not np.allclose(ev.b1[:, 0], truth["b1"][:, 0])
    np.testing.assert_allclose(unit(ev.lepton), unit(truth["l"]), atol=1e-12)
    b = np.concatenate([ev.b1, ev.b2])
    mass = vector.array({"E": b[:, 0], "px": b[:, 1], "py": b[:, 2], "pz": b[:, 3]}).mass
    np.testing.assert_allclose(mass, 4.7, rtol=1e-6)
    for b in (ev.b1, ev.b2):  # same direction as either true b (the smeared ones are re-ordered by p_T)
        off = [np.abs(unit(b) - unit(truth[k])).max(axis=1) for k in ("b1", "b2")]
        np.testing.assert_array_less(np.minimum(*off), 1e-12)


def test_objects_fluctuating_below_their_mass_are_lost():
    # With σ_E/E = 50%, a soft b (E = 10 GeV, m = 4.7 GeV) drops below its mass with probability Φ(−1.06),
    # a hard one (E = 100 GeV) with Φ(−1.906), mostly to E' < 0 (which must not come back as E'² > m²).
    soft, hard = (
        copies([10.0, 0.0, 6.0, np.sqrt(100 - 36 - 4.7**2)]),
        copies([100.0, 0.0, -60.0, np.sqrt(6400 - 4.7**2)]),
    )
    lepton = copies([50.0, 30.0, 40.0, 0.0])
    ev = model(jet_resolution=EnergyResolution(constant=0.5)).simulate(
        lepton, soft, hard, lepton, np.ones(N_COPIES), rng=6
    )
    p_soft, p_hard = (stats.norm.cdf(-(1 - 4.7 / e) / 0.5) for e in (10.0, 100.0))
    expected = 1 - (1 - p_soft) * (1 - p_hard)
    assert abs((~ev.identified).mean() - expected) < 5 * np.sqrt(expected * (1 - expected) / N_COPIES)
    # a lost b keeps its direction with |p| = 1e-6 |p_true| and E = m, so every observable stays finite
    b = np.concatenate([ev.b1, ev.b2])
    lost = np.linalg.norm(b[:, 1:], axis=1) < 1e-3
    assert lost.sum() == pytest.approx(N_COPIES * (p_soft + p_hard), rel=0.05)
    np.testing.assert_allclose(b[lost, 0], 4.7, rtol=1e-9)
    true_direction = [unit(p)[0] for p in (soft, hard)]
    assert all(
        np.allclose(u, true_direction[0]) or np.allclose(u, true_direction[1]) for u in unit(b[lost])[:50]
    )
    assert np.all(b[:, 0] > 0) and np.isfinite(ev.observables()).all()


def test_jet_angular_smearing_is_as_configured():
    p = copies([100.0, 0.0, 80.0, np.sqrt(100.0**2 - 80.0**2)])  # massless, η = asinh(60/80), φ = π/2
    ev = model(jet_eta_resolution=0.02, jet_phi_resolution=0.05).simulate(
        p, p, p, p, np.ones(N_COPIES), rng=4
    )
    pooled = np.concatenate([ev.b1, ev.b2])  # pooled: ordering by p_T would bias b1 alone
    b = vector.array({"E": pooled[:, 0], "px": pooled[:, 1], "py": pooled[:, 2], "pz": pooled[:, 3]})
    d_eta, d_phi = b.eta - np.arcsinh(0.75), b.phi - np.pi / 2
    tolerance = 5 / np.sqrt(2 * len(pooled))
    assert d_eta.std() == pytest.approx(0.02, rel=tolerance) and d_phi.std() == pytest.approx(
        0.05, rel=tolerance
    )
    np.testing.assert_allclose(pooled[:, 0], 100.0)  # energy (and mass) untouched


# --- missing transverse momentum and efficiencies ----------------------------------------------


def test_met_follows_the_neutrino_on_average(truth):
    ev = simulate(DetectorModel(), truth)
    diff = ev.met_xy - truth["nu"][:, 1:3]
    np.testing.assert_array_less(np.abs(diff.mean(axis=0)), 5 * diff.std(axis=0) / np.sqrt(len(diff)))
    # relative MET resolution is a few tens of % at these momenta, not more
    assert np.median(np.abs(np.hypot(*ev.met_xy.T) / np.hypot(*truth["nu"][:, 1:3].T) - 1)) < 0.3


def test_met_soft_term_and_balance(truth):
    soft_only = simulate(model(met_soft_resolution=10.0), truth).met_xy - truth["nu"][:, 1:3]
    assert soft_only.std(axis=0) == pytest.approx([10.0, 10.0], rel=5 / np.sqrt(2 * len(soft_only)))
    # p_T-balanced (LO) events without soft term: MET = −Σ smeared visible p_T
    ev = simulate(DetectorModel(met_soft_resolution=0.0), truth)
    np.testing.assert_allclose(ev.met_xy, -(ev.lepton + ev.b1 + ev.b2)[:, 1:3], atol=1e-8)


@pytest.mark.parametrize(("lepton_efficiency", "expected"), [(1.0, 0.77**2), (0.95, 0.95 * 0.77**2)])
def test_identification_efficiency(lepton_efficiency, expected):
    p = copies([50.0, 30.0, 40.0, 0.0])
    ev = DetectorModel(lepton_efficiency=lepton_efficiency).simulate(p, p, p, p, np.ones(N_COPIES), rng=5)
    binomial = np.sqrt(expected * (1 - expected) / N_COPIES)
    assert abs(ev.identified.mean() - expected) < 5 * binomial


def test_b_jets_are_ordered_by_pt_and_simulation_is_reproducible(truth):
    a, b, c = (
        simulate(DetectorModel(), truth, 9),
        simulate(DetectorModel(), truth, 9),
        simulate(DetectorModel(), truth, 10),
    )
    assert np.all(np.hypot(*a.b1[:, 1:3].T) >= np.hypot(*a.b2[:, 1:3].T))
    for name in ("lepton", "b1", "b2", "met_xy", "identified"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.allclose(a.met_xy, c.met_xy)
    from_generator = DetectorModel().simulate(
        truth["l"], truth["b1"], truth["b2"], truth["nu"], truth["q"], rng=np.random.default_rng(9)
    )
    np.testing.assert_array_equal(from_generator.lepton, a.lepton)


# --- selection and cut flow --------------------------------------------------------------------

# Baseline: ℓ (p_T 50, η 0.5, φ 0); b's (100, 0, 2) and (100, 0, 2 + 1.2870) with m_bb = 120 GeV,
# since m² = 2 p_T1 p_T2 (cosh Δη − cos Δφ); MET (−40, 0).
DPHI_120 = np.arccos(1 - 120.0**2 / 20000.0)
ID, PT_L, MET, PT_B, ETA, DR, M_BB = range(7)  # cut indices, in Selection's order


def hand_made_events() -> tuple[DetectorEvents, list[int | None]]:
    """One event per row, each moving one quantity just inside (passes) or just outside (fails) a cut.
    Returns the events and, per row, the index of the one cut it fails (None: passes all)."""
    base = {"lepton": (50.0, 0.5, 0.0), "b1": (100.0, 0.0, 2.0), "b2": (100.0, 0.0, 2.0 + DPHI_120)}
    base |= {"met": 40.0, "identified": True}
    rows = [({}, None), ({"identified": False}, ID)]
    for sign in (1, -1):  # +1: just inside every cut (passes), −1: just outside one cut (fails it)

        def add(cut, sign=sign, **changes):
            rows.append((changes, cut if sign < 0 else None))

        add(PT_L, lepton=(10.0 + sign * EPS, 0.5, 0.0))
        add(MET, met=25.0 + sign * EPS)
        # b2 at 35 GeV and Δφ = π: cosh Δη = 120²/(2·100·35) − 1 keeps m_bb = 120 GeV
        add(PT_B, b2=(35.0 + sign * EPS, np.arccosh(14400 / 7000 - 1), 2.0 - np.pi))
        add(ETA, lepton=(50.0, 2.5 - sign * EPS, 0.0))
        eta_b = -(2.5 - sign * EPS)  # both b's equally forward: m_bb stays 120 GeV
        add(ETA, b1=(100.0, eta_b, 2.0), b2=(100.0, eta_b, 2.0 + DPHI_120))
        # ΔR(b, b) = 0.4 at p_T = 300 GeV: m_bb = 300·√(2(1 − cos 0.4)) ≈ 119 GeV
        add(DR, b1=(300.0, 0.0, 2.0), b2=(300.0, 0.0, 2.4 + sign * EPS))
        add(DR, lepton=(50.0, 0.0, 1.6 - sign * EPS))  # ΔR(ℓ, b1) = 0.4
        for m in (80.0 + sign * EPS, 160.0 - sign * EPS):
            add(M_BB, b2=(100.0, 0.0, 2.0 + np.arccos(1 - m**2 / 20000.0)))
    events = [base | changes for changes, _ in rows]
    lepton, b1, b2 = (
        np.concatenate([from_pt_eta_phi(*e[k]) for e in events]) for k in ("lepton", "b1", "b2")
    )
    met = np.column_stack([[-e["met"] for e in events], np.zeros(len(events))])
    identified = np.array([e["identified"] for e in events])
    return DetectorEvents(lepton, b1, b2, met, np.ones(len(events)), identified), [cut for _, cut in rows]


def test_selection_on_events_at_the_cut_boundaries():
    events, failing = hand_made_events()
    expected = np.array([f is None for f in failing])
    assert 0 < expected.sum() < len(expected)
    mask, flow = Selection().apply(events)
    np.testing.assert_array_equal(mask, expected)
    cuts = np.array(list(Selection().cuts(events).values()))  # (n_cuts, n_events)
    for i, f in enumerate(failing):  # each row fails exactly the cut it was built to fail
        assert np.flatnonzero(~cuts[:, i]).tolist() == ([] if f is None else [f]), i
    assert flow.n_pass[-1] == expected.sum()


def test_selection_names_follow_seed_000():
    events, _ = hand_made_events()
    assert list(Selection().cuts(events)) == [
        "identified (lepton ID, 2 b-tags)",
        "pT(l) > 10 GeV",
        "MET > 25 GeV",
        "pT(b1), pT(b2) > 35 GeV",
        "|eta(l, b1, b2)| < 2.5",
        "dR(bb), dR(bl) > 0.4",
        "80 < m_bb < 160 GeV",
    ]


def test_selection_equals_direct_evaluation_on_simulated_events(truth):
    ev = simulate(DetectorModel(), truth)
    lep, b1, b2 = (
        vector.array({"E": p[:, 0], "px": p[:, 1], "py": p[:, 2], "pz": p[:, 3]})
        for p in (ev.lepton, ev.b1, ev.b2)
    )
    m_bb = (b1 + b2).mass
    direct = ev.identified & (lep.pt > 10) & (np.hypot(*ev.met_xy.T) > 25) & (b1.pt > 35) & (b2.pt > 35)
    direct &= (np.abs(lep.eta) < 2.5) & (np.abs(b1.eta) < 2.5) & (np.abs(b2.eta) < 2.5)
    direct &= (
        (b1.deltaR(b2) > 0.4) & (lep.deltaR(b1) > 0.4) & (lep.deltaR(b2) > 0.4) & (m_bb > 80) & (m_bb < 160)
    )
    mask, _ = Selection().apply(ev)
    np.testing.assert_array_equal(mask, direct)
    assert 0.1 < mask.mean() < 0.9


def test_cut_flow_is_monotone_and_weighted(truth):
    ev = simulate(DetectorModel(), truth)
    weights = np.random.default_rng(8).exponential(1e-3, len(ev))  # pb
    mask, flow = Selection().apply(ev, weights)
    cumulative = np.logical_and.accumulate(np.array(list(Selection().cuts(ev).values())), axis=0)
    np.testing.assert_allclose(
        flow.efficiency, [weights[c].sum() / weights.sum() for c in cumulative], rtol=1e-12
    )
    np.testing.assert_array_equal(flow.n_pass, cumulative.sum(axis=1))
    assert np.all(np.diff(flow.efficiency) <= 0) and np.all(np.diff(flow.n_pass) <= 0)
    assert flow.efficiency[-1] == pytest.approx(weights[mask].sum() / weights.sum())
    assert (flow.n_total, flow.total_weight) == (len(ev), pytest.approx(weights.sum()))
    _, unweighted = Selection().apply(ev)
    np.testing.assert_allclose(unweighted.efficiency, unweighted.n_pass / len(ev))


def test_cut_flow_tables():
    flow = CutFlow(("a > 1", "b < 2"), np.array([8, 5]), np.array([0.8, 0.4567]), 10, 2.0)
    assert str(flow).splitlines() == [
        "cut        | events | cumulative efficiency %",
        "-----------+--------+------------------------",
        "all events |     10 |                  100.00",
        "a > 1      |      8 |                   80.00",
        "b < 2      |      5 |                   45.67",
    ]
    table = flow.table()
    assert isinstance(table, Table) and table.row_count == 3
    console = Console(file=io.StringIO(), width=100)
    console.print(table)
    assert "45.67" in console.file.getvalue()


# --- bad input ---------------------------------------------------------------------------------

P4 = copies([10.0, 1.0, 2.0, 3.0], 3)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: DetectorModel(b_tag_efficiency=1.2), "b_tag_efficiency"),
        (lambda: DetectorModel(met_soft_resolution=-1.0), "met_soft_resolution"),
        (lambda: EnergyResolution(stochastic=-0.1), "stochastic"),
        (lambda: DetectorModel().simulate(P4, P4, P4[:, :3], P4, np.ones(3), rng=0), "b2"),
        (lambda: DetectorModel().simulate(P4, P4, P4, P4[:2], np.ones(3), rng=0), "neutrino"),
        (lambda: DetectorModel().simulate(P4, P4, P4, P4, np.zeros(3), rng=0), "charge"),
        (lambda: DetectorEvents(P4, P4, P4, np.ones((3, 3)), np.ones(3), np.ones(3, bool)), "met_xy"),
        (lambda: DetectorEvents(P4, P4, P4, np.ones((3, 2)), np.ones(3), np.ones(2, bool)), "identified"),
        (lambda: DetectorEvents(P4, P4[:2], P4, np.ones((3, 2)), np.ones(3), np.ones(3, bool)), "b1"),
    ],
)
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


@pytest.mark.parametrize("weights", [np.ones(2), np.full(3, -1.0), np.array([1.0, np.nan, 1.0])])
def test_bad_weights(weights):
    events = DetectorEvents(P4, P4, P4, np.ones((3, 2)), np.ones(3), np.ones(3, bool))
    with pytest.raises(ValueError, match="weights"):
        Selection().apply(events, weights)


def test_tag_probability_by_flavour_and_mistag_validation():
    from assay.simulators.detector import EfficiencyScale

    model = DetectorModel(b_tag_scale=EfficiencyScale(low=0.0, high=0.1, pt_low=100.0, pt_high=200.0))
    p = model.tag_probability(np.array([[5, 5], [4, 0]]), np.array([[50.0, 200.0], [200.0, 200.0]]))
    np.testing.assert_allclose(p, [[0.77, 0.77 * 1.1], [0.125, 1 / 380]])
    assert DetectorModel.ideal().tag_probability(np.array([5, 4, 0]), np.full(3, 50.0)).tolist() == [1, 0, 0]
    with pytest.raises(ValueError, match="c_mistag"):
        DetectorModel(c_mistag=1.5)


def test_smear_jets_has_the_configured_resolution():
    """The background jets are smeared like the signal's b-jets: σ_E/E = 100%/√E ⊕ 5% (0.112 at 100 GeV),
    mass kept, η and φ by 0.02."""
    model = DetectorModel()
    jets = np.tile([100.0, 60.0, 0.0, 79.0], (40_000, 1))
    smeared, lost = model.smear_jets(jets, np.random.default_rng(4))
    assert not lost.any()
    np.testing.assert_allclose(np.std(smeared[:, 0] / 100.0 - 1), 0.1118, rtol=0.02)
    mass2 = smeared[:, 0] ** 2 - (smeared[:, 1:] ** 2).sum(1)
    np.testing.assert_allclose(mass2, 100.0**2 - 60.0**2 - 79.0**2, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.std(np.arctan2(smeared[:, 2], smeared[:, 1])), 0.02, rtol=0.03)
    truth = np.tile([50.0, 30.0, 0.0, 40.0], (40_000, 1))
    leptons, _ = model.smear_leptons(truth, np.random.default_rng(5))
    np.testing.assert_allclose(np.std(leptons[:, 0] / 50.0 - 1), np.hypot(0.01, 1e-4 * 30.0), rtol=0.03)
