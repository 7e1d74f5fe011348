"""Reconstruction of lepton, b-jets and MET from hand-built particle lists (assay.simulators.jets).

Every event is built so that the answer is known exactly: anti-k_T with the E-scheme sums the four-momenta
of a collimated spray, MET is minus the visible p_T sum, and isolation / b-labels follow from ΔR alone.
"""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from assay.simulators.detector import Selection
from assay.simulators.jets import JetReconstruction, Reconstructed, is_b_hadron, reconstruct

pytest.importorskip("fastjet")


def particle(
    pt: float, eta: float, phi: float, pdg_id: int, *, final: bool = True, mass: float = 0.0
) -> dict:
    """One particle record from (p_T, η, φ) in GeV and radians."""
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    energy = np.sqrt(px**2 + py**2 + pz**2 + mass**2)
    return {"px": px, "py": py, "pz": pz, "E": energy, "id": pdg_id, "final": final}


def spray(pt: float, eta: float, phi: float, n: int = 6, spread: float = 0.1) -> list[dict]:
    """``n`` massless pions sharing ``pt`` within ``spread`` of the axis (well inside R = 0.4)."""
    offsets = np.linspace(-spread, spread, n)
    return [particle(pt / n, eta + d, phi - d / 2, 211 if i % 2 else -211) for i, d in enumerate(offsets)]


def four(records: list[dict]) -> np.ndarray:
    """Summed (E, px, py, pz) of particle records."""
    return np.sum([[r["E"], r["px"], r["py"], r["pz"]] for r in records], axis=0)


def balanced(visible: list[dict], invisible_id: int = 14) -> list[dict]:
    """``visible`` plus a neutrino carrying minus their transverse momentum."""
    p = four([r for r in visible if r["final"]])
    nu = {
        "px": -p[1],
        "py": -p[2],
        "pz": 10.0,
        "E": np.sqrt(p[1] ** 2 + p[2] ** 2 + 100.0),
        "id": invisible_id,
    }
    return [*visible, {**nu, "final": True}]


JET_A, JET_B = (80.0, 0.5, 0.3), (50.0, -1.0, 2.5)  # (p_T, η, φ) of the two sprays


def wh_like(muon_at=(40.0, 0.2, -1.5), muon_id: int = 13, b_hadrons=(JET_A, JET_B)) -> list[dict]:
    """Two sprays, one muon, b-hadrons (non-final) along the given axes, and the balancing neutrino."""
    parts = [*spray(*JET_A), *spray(*JET_B), particle(*muon_at, muon_id)]
    parts += [particle(0.5 * pt, eta, phi, 511, final=False, mass=5.28) for pt, eta, phi in b_hadrons]
    return balanced(parts)


@pytest.fixture(scope="module")
def reco() -> Reconstructed:
    events = [
        wh_like(),  # 0: complete
        wh_like(muon_at=(40.0, JET_A[1] + 0.1, JET_A[2])),  # 1: muon inside spray A: not isolated
        wh_like(b_hadrons=(JET_A,)),  # 2: only one b-labelled jet
        wh_like(b_hadrons=((3.0, *JET_A[1:]), JET_B)),  # 3: b-hadron of jet A below 5 GeV
        wh_like(muon_id=-11),  # 4: a positron instead of the muon
        wh_like(muon_at=(40.0, 2.7, -1.5)),  # 5: muon outside |η| < 2.5
        [],  # 6: empty event
    ]
    return reconstruct(ak.Array(events))


def test_two_sprays_give_two_jets_with_the_summed_momenta(reco):
    jets = reco.jets[0]
    p = np.column_stack([ak.to_numpy(jets[f]) for f in ("E", "px", "py", "pz")])
    np.testing.assert_allclose(p, [four(spray(*JET_A)), four(spray(*JET_B))], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(reco.b1[0], four(spray(*JET_A)), rtol=1e-12)
    np.testing.assert_allclose(reco.b2[0], four(spray(*JET_B)), rtol=1e-12)


def test_isolated_muon_found_and_met_is_the_neutrino(reco):
    event = wh_like()
    np.testing.assert_allclose(reco.lepton[0], four([event[12]]), rtol=1e-12)
    assert reco.charge[0] == -1 and reco.n_leptons[0] == 1 and reco.complete[0]
    neutrino = event[-1]
    np.testing.assert_allclose(reco.met_xy[0], [neutrino["px"], neutrino["py"]], atol=1e-9)


def test_non_isolated_lepton_rejected_and_clustered_into_the_jet(reco):
    assert reco.n_leptons[1] == 0 and not reco.complete[1] and reco.charge[1] == 0
    np.testing.assert_array_equal(reco.lepton[1], np.zeros(4))
    muon = particle(40.0, JET_A[1] + 0.1, JET_A[2], 13)
    np.testing.assert_allclose(reco.b1[1], four([*spray(*JET_A), muon]), rtol=1e-12)


def test_b_label_needs_a_b_hadron_above_threshold_near_the_jet(reco):
    assert ak.to_list(reco.jet_is_b[0]) == [True, True]
    assert ak.to_list(reco.jet_is_b[2]) == [True, False]
    assert ak.to_list(reco.jet_is_b[3]) == [False, True]
    assert not reco.complete[2] and not reco.complete[3]
    np.testing.assert_array_equal(reco.b2[2], np.zeros(4))


def test_positron_charge_and_lepton_acceptance(reco):
    assert reco.charge[4] == 1 and reco.complete[4]
    assert reco.n_leptons[5] == 0 and not reco.complete[5]


def test_events_missing_objects_are_incomplete_zero_placeholders(reco):
    assert reco.complete.tolist() == [True, False, False, False, True, False, False]
    for array in (reco.lepton, reco.b1, reco.b2, reco.met_xy, reco.charge):
        assert np.isfinite(array).all()
    np.testing.assert_array_equal(np.concatenate([reco.lepton[6], reco.b1[6], reco.met_xy[6]]), 0.0)
    assert len(reco.jets[6]) == 0


def test_detector_events_go_through_the_selection(reco):
    mask, flow = Selection(met_min=0.0, m_bb_min=0.0, m_bb_max=1e4).apply(reco.detector_events())
    assert mask.tolist() == reco.complete.tolist()
    assert flow.n_total == len(reco)


def test_concatenate_keeps_event_order(reco):
    both = Reconstructed.concatenate([reco, reco])
    assert len(both) == 2 * len(reco)
    np.testing.assert_array_equal(both.lepton[len(reco) :], reco.lepton)
    assert ak.to_list(both.jet_is_b[len(reco) :]) == ak.to_list(reco.jet_is_b)
    with pytest.raises(ValueError, match="at least one"):
        Reconstructed.concatenate([])


def test_final_flag_optional_and_jet_threshold():
    """Without ``final`` every particle is final; jets below jet_pt_min are dropped."""
    events = ak.Array([[{k: v for k, v in r.items() if k != "final"} for r in spray(15.0, 0.0, 0.0)]])
    assert len(reconstruct(events).jets[0]) == 0
    assert len(JetReconstruction(jet_pt_min=10.0).reconstruct(events).jets[0]) == 1


def test_missing_field_is_named():
    with pytest.raises(ValueError, match=r"missing fields \['id'\]"):
        reconstruct(ak.Array([[{"px": 1.0, "py": 0.0, "pz": 0.0, "E": 1.0}]]))


@pytest.mark.parametrize(
    ("pdg_id", "expected"),
    [(511, True), (-521, True), (531, True), (541, True), (553, True), (10513, True), (5122, True),
     (-5332, True), (5, False), (5101, False), (5503, False), (411, False), (13, False), (2212, False)],
)  # fmt: skip
def test_is_b_hadron(pdg_id, expected):
    assert bool(is_b_hadron(np.array([pdg_id]))[0]) is expected
