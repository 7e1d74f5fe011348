"""Pythia shower of WH LHE events, hadron-level WH and background batches (assay.simulators.pythia).

Kept small (tens to a few hundred events, MPI off): the whole module runs in a few seconds per test.
"""

from __future__ import annotations

import importlib.util
import pickle

import awkward as ak
import numpy as np
import pytest

from assay.io.lhe import write_lhe
from assay.io.wh_lhe import wh_to_lhe
from assay.observables import WH_OBSERVABLES
from assay.simulators import pythia as pythia_module
from assay.simulators.pythia import (
    BACKGROUNDS,
    PROCESSES,
    BackgroundBatchSimulator,
    PythiaWHBatchSimulator,
    shower_lhe,
    showered_wh_batch,
)
from assay.simulators.wh import WHSimulator
from assay.simulators.wh_batch import WH_EXTRAS

needs_fastjet = pytest.mark.skipif(importlib.util.find_spec("fastjet") is None, reason="install assay[jets]")
BENCHMARKS = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0], [1.0, 1.0]])
N_LHE = 20
# The lepton leaves the hard process untouched when nothing can recoil against it or radiate from it.
NO_RECOIL = ("PartonLevel:ISR = off", "BeamRemnants:primordialKT = off", "TimeShower:QEDshowerByL = off")


@pytest.fixture(scope="module")
def wh_simulator() -> WHSimulator:
    return WHSimulator(BENCHMARKS)


@pytest.fixture(scope="module")
def wh_events(wh_simulator):
    return wh_simulator.simulate(N_LHE, np.random.default_rng(7))


@pytest.fixture(scope="module")
def lhe_path(tmp_path_factory, wh_events):
    return write_lhe(tmp_path_factory.mktemp("lhe") / "wh.lhe", *wh_to_lhe(wh_events))


def _final(particles: ak.Array) -> ak.Array:
    return particles[particles.final]


def test_wh_to_lhe_colour_flow_mothers_and_momentum_conservation(wh_events):
    lhe, init = wh_to_lhe(wh_events)
    quark_first = wh_events.id1 > 0
    incoming_colour = np.where(quark_first, lhe.colors[:, 0, 0], lhe.colors[:, 1, 0])
    incoming_anticolour = np.where(quark_first, lhe.colors[:, 1, 1], lhe.colors[:, 0, 1])
    assert (incoming_colour == 501).all() and (incoming_anticolour == 501).all()
    assert (lhe.colors[:, 6] == [502, 0]).all() and (lhe.colors[:, 7] == [0, 502]).all()
    assert (lhe.colors[:, 2:6] == 0).all()
    np.testing.assert_array_equal(
        lhe.mothers[0], [[0, 0], [0, 0], [1, 2], [1, 2], [3, 3], [3, 3], [4, 4], [4, 4]]
    )
    p = lhe.momenta
    np.testing.assert_allclose(p[:, 0] + p[:, 1], p[:, 2] + p[:, 3], atol=1e-8)
    np.testing.assert_allclose(p[:, 2], p[:, 4] + p[:, 5], atol=1e-8)
    np.testing.assert_allclose(p[:, 3], p[:, 6] + p[:, 7], atol=1e-8)
    np.testing.assert_allclose(lhe.masses[:, 3], 125.0, rtol=1e-9)
    # W charge = lepton charge; ℓ ν pairs: ids of opposite signs, |id_ν| = |id_ℓ| + 1
    assert (np.sign(lhe.pdgid[:, 2]) == wh_events.charge).all()
    assert (lhe.pdgid[:, 4] + lhe.pdgid[:, 5] == np.sign(lhe.pdgid[:, 5])).all()
    assert list(init.beam_energies) == [6500.0, 6500.0]


def test_shower_keeps_lhe_order_and_each_event_its_lepton(lhe_path, wh_events):
    batches = list(shower_lhe(lhe_path, N_LHE, seed=11, mpi=False, batch_size=7, settings=NO_RECOIL))
    assert [len(b.index) for b in batches] == [7, 7, 6]
    index = np.concatenate([b.index for b in batches])
    np.testing.assert_array_equal(index, np.arange(N_LHE))
    particles = _final(ak.concatenate([b.particles for b in batches]))
    lepton, lepton_id = wh_events.lepton, wh_events.lepton_id

    def distance(shift: int) -> np.ndarray:
        """Smallest |Δp| / E between LHE lepton i + shift and a final lepton of showered event i."""
        ref, ids = np.roll(lepton, -shift, axis=0), np.roll(lepton_id, -shift)
        same = particles[particles.id == ids[:, None]]
        diff = sum(abs(same[f] - ref[:, k, None]) for k, f in enumerate(("E", "px", "py", "pz")))
        return ak.to_numpy(ak.fill_none(ak.min(diff, axis=1), np.inf)) / ref[:, 0]

    assert distance(0).max() < 1e-3  # QED-off lepton: equal up to tiny kinematic reshuffles (~1e-4 at worst)
    assert (distance(1) > 1e-3).all()  # the check above would catch an event shifted by one


def test_shower_conserves_energy_momentum_and_charge_and_stops_at_end_of_file(lhe_path):
    import pythia8mc

    batches = list(shower_lhe(lhe_path, N_LHE + 10, seed=3, mpi=False, batch_size=N_LHE + 10))
    assert len(batches) == 1 and batches[0].index.tolist() == list(range(N_LHE))
    final = _final(batches[0].particles)
    total = np.column_stack([ak.to_numpy(ak.sum(final[f], axis=1)) for f in ("E", "px", "py", "pz")])
    np.testing.assert_allclose(total, np.tile([13000.0, 0, 0, 0], (N_LHE, 1)), atol=1e-6 * 13000.0)
    data = pythia8mc.Pythia("", False).particleData
    ids = ak.to_numpy(ak.flatten(final.id))
    charges = {i: data.charge(int(i)) for i in np.unique(ids)}
    charge = ak.sum(ak.unflatten(np.vectorize(charges.get)(ids), ak.num(final)), axis=1)
    np.testing.assert_allclose(ak.to_numpy(charge), 2.0, atol=1e-9)  # p p


def test_shower_without_hadronization_ends_in_partons(lhe_path):
    (batch,) = shower_lhe(lhe_path, 5, seed=5, mpi=False, hadronize=False)
    ids = np.abs(ak.to_numpy(ak.flatten(_final(batch.particles).id)))
    assert len(ids) and not np.isin(ids, [111, 211, 130, 310, 321, 2212, 2112]).any()
    assert np.isin(ids, [1, 2, 3, 4, 5, 21]).any()


class FakePythia:
    """Stands in for pythia8mc.Pythia: returns prepared batches and process-level counters."""

    def __init__(self, batches, tried):
        self.batches, self.tried, self.n_tried = list(batches), list(tried), 0

    def nextBatch(self, n, mode):
        assert mode == "none"
        self.n_tried = self.tried.pop(0)
        return self.batches.pop(0)

    def infoPython(self):
        n_tried = self.n_tried
        return type("Info", (), {"nTried": lambda _: n_tried, "atEndOfFile": lambda _: False})()


def _fake_events(valid: list[bool]) -> ak.Array:
    prt = {"id": 13, "status": 1, "p": {"px": 1.0, "py": 0.0, "pz": 0.0, "e": 1.0}}
    return ak.Array([{"prt": [prt]} if ok else None for ok in valid])


def test_failed_events_are_dropped_by_index_not_shifted(monkeypatch):
    fake = FakePythia([_fake_events([True, False, True])], [3])
    monkeypatch.setattr(pythia_module, "_pythia", lambda settings, seed: fake)
    (batch,) = shower_lhe("unused.lhe", 3, seed=1)
    assert batch.index.tolist() == [0, 2] and batch.failed.tolist() == [1]
    assert len(batch.particles) == 2


def test_lost_correspondence_raises(monkeypatch):
    fake = FakePythia([_fake_events([True, True])], [3])  # Pythia read 3 LHE events for 2 entries
    monkeypatch.setattr(pythia_module, "_pythia", lambda settings, seed: fake)
    with pytest.raises(RuntimeError, match="correspondence is lost"):
        next(shower_lhe("unused.lhe", 2, seed=1))


@pytest.mark.parametrize(
    ("options", "match"),
    [({"seed": -1}, "seed"), ({"seed": 1, "settings": ["Nonsense:flag = on"]}, "rejected")],
)
def test_bad_pythia_options(lhe_path, options, match):
    with pytest.raises(ValueError, match=match):
        next(shower_lhe(lhe_path, 1, **options))


@needs_fastjet
def test_showered_wh_batch_keeps_every_event_and_its_charge(wh_events):
    reco, index = showered_wh_batch(wh_events, seed=2, mpi=False)
    np.testing.assert_array_equal(index, np.arange(N_LHE))
    one = reco.n_leptons == 1
    assert one.sum() >= N_LHE // 2  # ~2/3 of WH leptons are isolated in the acceptance
    assert np.mean(reco.charge[one] == wh_events.charge[one]) >= 0.9


@pytest.fixture(scope="module")
def signal_batch(wh_simulator):
    simulator = PythiaWHBatchSimulator(wh_simulator, mpi=False)
    return simulator, simulator.batch(200, np.random.default_rng(5))


@needs_fastjet
def test_pythia_wh_batch_simulator(signal_batch, wh_simulator):
    simulator, batch = signal_batch
    assert pickle.loads(pickle.dumps(simulator)).mpi is False  # Dask ships simulators to workers
    assert simulator.processes == ["wh"] and simulator.observables == list(WH_OBSERVABLES)
    assert batch.x.shape == (len(batch.weights), len(WH_OBSERVABLES)) and np.isfinite(batch.x).all()
    assert set(batch.extras) == set(WH_EXTRAS)
    assert 0.02 < batch.cut_flow.efficiency[-1] < 0.3  # ~8% measured (b-tags 0.77², b-jet p_T > 35 GeV)
    # the shower leaves the parton weights alone: each selected event keeps its row of weights
    parton = wh_simulator.simulate(200, np.random.default_rng(5))
    rows = [int(np.flatnonzero(parton.x1 == x1)[0]) for x1 in batch.extras["x1_x2_q"][:, 0]]
    np.testing.assert_allclose(batch.weights, parton.weights[rows], rtol=1e-12)
    np.testing.assert_allclose(batch.extras["components"], parton.components[rows], rtol=1e-12)
    again = simulator.batch(200, np.random.default_rng(5))
    np.testing.assert_array_equal(again.x, batch.x)


@pytest.fixture(scope="module")
def ttbar_batch():
    return BackgroundBatchSimulator("ttbar", n_benchmarks=len(BENCHMARKS)).batch(
        200, np.random.default_rng(1)
    )


@needs_fastjet
def test_ttbar_background_weights_cross_section_and_labels(ttbar_batch):
    sigma = ttbar_batch.cut_flow.total_weight
    # TOOLCHAIN.md: σ(gg + qq̄ → tt̄) = 508 pb (Pythia LO, 13 TeV); both W forced to e/μ ν or quarks,
    # i.e. τν switched off: × (1 − BR(W → τν))², BR = 0.1138 (PDG). Measured: 408 pb.
    assert 508.0 * (1 - 0.1138) ** 2 / 1.3 < sigma < 508.0 * (1 - 0.1138) ** 2 * 1.3
    np.testing.assert_allclose(ttbar_batch.weights, sigma / 200, rtol=1e-12)
    assert ttbar_batch.weights.shape == (len(ttbar_batch.x), len(BENCHMARKS))
    assert ttbar_batch.process == PROCESSES.index("ttbar") and np.isfinite(ttbar_batch.x).all()
    components = ttbar_batch.extras["components"]
    np.testing.assert_allclose(components[:, 0], sigma / 200, rtol=1e-12)
    assert not components[:, 1:].any() and not ttbar_batch.extras["lepton"].any()


@needs_fastjet
def test_wjets_selected_far_less_than_signal(signal_batch):
    """Seed 000 cut flow: W + jets 0.46% vs signal 34%; two b-tags remove W + light jets."""
    _, signal = signal_batch
    wjets = BackgroundBatchSimulator("wjets", n_benchmarks=1).batch(300, np.random.default_rng(2))
    assert wjets.cut_flow.efficiency[-1] < 0.25 * signal.cut_flow.efficiency[-1]
    assert wjets.cut_flow.total_weight > 1000.0  # σ(W → eν/μν + jet, p̂_T > 20 GeV) ≈ 7.5 nb measured


@needs_fastjet
def test_background_is_reproducible_from_the_rng():
    simulator = BackgroundBatchSimulator("single_top_s", n_benchmarks=2)
    first, second = (simulator.batch(100, np.random.default_rng(4)) for _ in range(2))
    np.testing.assert_array_equal(first.x, second.x)
    np.testing.assert_array_equal(first.weights, second.weights)


def test_background_configuration_errors():
    with pytest.raises(ValueError, match="expected one of"):
        BackgroundBatchSimulator("zjets", n_benchmarks=1)
    with pytest.raises(ValueError, match="must contain"):
        BackgroundBatchSimulator("ttbar", n_benchmarks=1, processes=["wh"])
    assert set(BACKGROUNDS) == {"ttbar", "single_top_s", "single_top_t", "wjets"}


@needs_fastjet
def test_background_batches_fill_an_event_store(tmp_path):
    """generate() accepts the simulator: labels, every WH extra, weights summing to σ × efficiency."""
    from assay.generation import generate

    simulator = BackgroundBatchSimulator("single_top_s", n_benchmarks=2)
    assert pickle.loads(pickle.dumps(simulator)).process == "single_top_s"
    flows = []
    store = generate(simulator, tmp_path / "st.h5", 200, seed=3, benchmarks=["sm", "bsm"], batch_size=100,
                     progress=False, on_batch=lambda b: flows.append(b.cut_flow))  # fmt: skip
    chunk = store.read(extras=True)
    assert store.processes == list(PROCESSES) and (chunk.process == PROCESSES.index("single_top_s")).all()
    assert set(store.extras_names) == set(WH_EXTRAS)
    expected = np.mean([f.total_weight * f.efficiency[-1] for f in flows])  # each batch estimates σ × eff
    np.testing.assert_allclose(store.weights_sum(), [expected, expected], rtol=1e-12)
    store.close()
