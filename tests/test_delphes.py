"""Tests of assay.io.delphes on small hand-made Delphes-like ROOT files written with uproot.

uproot cannot write Delphes' nested TClonesArray branches (``Jet`` with sub-branch ``Jet.PT``). It
writes the same names as flat jagged branches (``Jet.PT``, style "dotted") or, for a record written
with ``ak.zip``, as ``Jet_PT`` (style "zipped"); the reader accepts both and both are tested here.
"""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot

from assay.exceptions import StoreError
from assay.io import DelphesEvents, read_delphes

# Six events: 0, 3 and 5 pass (≥1 lepton, ≥2 jets with BTag & 1); 1 has no lepton, 2 one b-jet
# (BTag 2 has bit 0 unset), 4 is empty. Event 0: the muon (50 GeV) beats the electron and BTag 3
# counts as b-tagged; event 3: electrons and b-jets out of p_T order.
EVENTS = {
    "Electron": dict(
        PT=[[30.0], [], [25.0], [20.0, 45.0], [], []],
        Eta=[[0.5], [], [1.0], [-0.3, 1.2], [], []],
        Phi=[[0.1], [], [2.0], [1.0, -2.5], [], []],
        Charge=[[1], [], [1], [1, -1], [], []],
    ),
    "Muon": dict(
        PT=[[50.0], [], [], [], [], [100.0]],
        Eta=[[-1.0], [], [], [], [], [0.0]],
        Phi=[[3.0], [], [], [], [], [-1.0]],
        Charge=[[-1], [], [], [], [], [1]],
    ),
    "Jet": dict(
        PT=[[60.0, 40.0, 35.0], [70.0, 50.0], [55.0, 45.0], [30.0, 80.0, 50.0, 20.0], [], [120.0, 90.0]],
        Eta=[[0.1, 0.2, -2.0], [0.0, 0.0], [1.0, 1.0], [0.5, -0.5, 1.5, 0.0], [], [0.3, -0.3]],
        Phi=[[0.0, 1.0, 2.0], [0.0, 1.0], [0.0, 1.0], [1.0, 2.0, -3.0, 0.0], [], [1.5, -1.5]],
        Mass=[[10.0, 5.0, 8.0], [1.0, 1.0], [1.0, 1.0], [4.0, 12.0, 9.0, 2.0], [], [15.0, 11.0]],
        BTag=[[1, 0, 3], [1, 1], [2, 1], [1, 1, 1, 0], [], [1, 1]],
    ),
    "MissingET": dict(
        MET=[[20.0], [10.0], [5.0], [40.0], [0.0], [60.0]], Phi=[[0.5], [0], [0], [-1.0], [0], [3.0]]
    ),
    "Event": dict(Weight=[[0.1], [0.2], [0.3], [0.4], [0.5], [0.6]]),
}
SELECTED = [True, False, False, True, False, True]


def p4(pt: float, eta: float, phi: float, m: float) -> list[float]:
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return [np.sqrt(px**2 + py**2 + pz**2 + m**2), px, py, pz]


# Expected objects, written out by hand from EVENTS (electron mass 0.000511, muon 0.10566 GeV).
LEPTON = [p4(50.0, -1.0, 3.0, 0.10566), p4(45.0, 1.2, -2.5, 0.000511), p4(100.0, 0.0, -1.0, 0.10566)]
CHARGE = [-1, -1, 1]
B1 = [p4(60.0, 0.1, 0.0, 10.0), p4(80.0, -0.5, 2.0, 12.0), p4(120.0, 0.3, 1.5, 15.0)]
B2 = [p4(35.0, -2.0, 2.0, 8.0), p4(50.0, 1.5, -3.0, 9.0), p4(90.0, -0.3, -1.5, 11.0)]
MET = [
    [20 * np.cos(0.5), 20 * np.sin(0.5)],
    [40 * np.cos(-1.0), 40 * np.sin(-1.0)],
    [60 * np.cos(3.0), 60 * np.sin(3.0)],
]


def write(path, style: str = "dotted", drop: tuple[str, ...] = (), **replace: list):
    """A Delphes-like file; ``drop`` removes branches ("Muon.Charge") or collections ("Event"),
    ``replace`` swaps a branch's values (``Jet_BTag=[...]``)."""
    data = {}
    for coll, fields in EVENTS.items():
        fields = {k: replace.get(f"{coll}_{k}", v) for k, v in fields.items()}
        fields = {k: ak.Array(v) for k, v in fields.items() if coll not in drop and f"{coll}.{k}" not in drop}
        if style == "dotted":
            data |= {f"{coll}.{k}": v for k, v in fields.items()}
        elif fields:
            data[coll] = ak.zip(fields)
    with uproot.recreate(path) as f:
        f.mktree("Delphes", {k: v.type for k, v in data.items()})
        f["Delphes"].extend(data)
    return path


@pytest.mark.parametrize("style", ["dotted", "zipped"])
def test_selects_leading_lepton_and_b_jets(tmp_path, style):
    events = read_delphes(write(tmp_path / "delphes.root", style))
    assert isinstance(events, DelphesEvents)
    assert events.n_read == 6 and events.selected.tolist() == SELECTED
    np.testing.assert_allclose(events.lepton, LEPTON, rtol=1e-12)
    np.testing.assert_allclose(events.b1, B1, rtol=1e-12)
    np.testing.assert_allclose(events.b2, B2, rtol=1e-12)
    np.testing.assert_allclose(events.met_xy, MET, rtol=1e-12)
    assert events.charge.tolist() == CHARGE
    assert events.weight.tolist() == [0.1, 0.4, 0.6]  # Event.Weight of events 0, 3, 5
    assert events.lepton.dtype == np.float64 and events.lepton.shape == (3, 4)


def test_streaming_in_small_steps_gives_the_same(tmp_path):
    path = write(tmp_path / "delphes.root")
    whole, steps = read_delphes(path), read_delphes(path, step_size=2)
    for name in ("lepton", "charge", "b1", "b2", "met_xy", "weight", "selected"):
        assert np.array_equal(getattr(whole, name), getattr(steps, name)), name


def test_without_event_weight_each_event_weighs_one_over_n(tmp_path):
    events = read_delphes(write(tmp_path / "delphes.root", "zipped", drop=("Event",)))
    assert events.weight.tolist() == [1 / 6] * 3


def test_lepton_masses_are_used(tmp_path):
    events = read_delphes(write(tmp_path / "delphes.root"), lepton_mass=(0.0, 0.0))
    np.testing.assert_allclose(events.lepton[:, 0], np.linalg.norm(events.lepton[:, 1:], axis=1), rtol=1e-14)


def test_no_event_passes(tmp_path):
    untagged = [[0] * len(jets) for jets in EVENTS["Jet"]["PT"]]
    events = read_delphes(write(tmp_path / "delphes.root", Jet_BTag=untagged))
    assert events.n_read == 6 and not events.selected.any()
    assert events.lepton.shape == (0, 4) and events.met_xy.shape == (0, 2) and events.weight.shape == (0,)


@pytest.mark.parametrize("style", ["dotted", "zipped"])
@pytest.mark.parametrize("branch", ["Muon.Charge", "Jet.BTag", "MissingET.Phi"])
def test_missing_branch_names_file_and_branch(tmp_path, style, branch):
    path = write(tmp_path / "delphes.root", style, drop=(branch,))
    alt = branch.replace(".", "_")
    with pytest.raises(
        StoreError, match=rf"delphes\.root: tree 'Delphes' has no branch '{branch}' \(nor '{alt}'\)"
    ):
        read_delphes(path)


def test_missing_file_tree_or_not_root(tmp_path):
    with pytest.raises(StoreError, match=r"nothing\.root does not exist"):
        read_delphes(tmp_path / "nothing.root")
    with pytest.raises(StoreError, match=r"delphes\.root has no tree 'Events'; keys: \['Delphes'\]"):
        read_delphes(write(tmp_path / "delphes.root"), tree="Events")
    (tmp_path / "text.root").write_text("not ROOT")
    with pytest.raises(StoreError, match=r"text\.root is not a readable ROOT file"):
        read_delphes(tmp_path / "text.root")
