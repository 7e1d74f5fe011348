"""WH events → LHE with MadGraph <rwgt> weights → EventStore: the same events, weights and observables."""

from __future__ import annotations

import numpy as np
import pytest

from assay.exceptions import AssayError
from assay.io.lhe import LHEError, read_lhe, write_lhe
from assay.io.wh_lhe import import_lhe, wh_final_state, wh_to_lhe
from assay.morphing import Morpher, morphing_components
from assay.observables import wh_observables
from assay.parameters import Parameter, ParameterSpace
from assay.simulators.wh import WHSimulator

BENCHMARKS = np.array([[0.0, 0.0], [0.5, 0.0], [0.0, 0.5], [-0.5, 0.0], [0.0, -0.5], [0.5, 0.5]])
NAMES = ["sm", "b1", "b2", "b3", "b4", "b5"]


@pytest.fixture(scope="module")
def events():
    return WHSimulator(BENCHMARKS).simulate(300, np.random.default_rng(4))


@pytest.fixture(scope="module")
def space():
    params = [Parameter("cHW", (-1.0, 1.0)), Parameter("cHWtilde", (-1.0, 1.0))]
    return ParameterSpace.from_dict(
        params, {n: {"cHW": t[0], "cHWtilde": t[1]} for n, t in zip(NAMES, BENCHMARKS)}
    )


def test_round_trip_through_lhe_into_the_store(events, space, tmp_path):
    lhe, init = wh_to_lhe(events, benchmark_names=NAMES)
    path = write_lhe(tmp_path / "wh.lhe.gz", lhe, init)
    store = import_lhe([path], tmp_path / "wh.h5", space, Morpher(morphing_components(2, 2), BENCHMARKS))
    chunk = store.read()
    # written with %.17g: bit-exact momenta and weights; Σ XWGTUP = σ(init) so no rescaling
    np.testing.assert_allclose(chunk.weights, events.weights, rtol=1e-12)
    expected = wh_observables(events.lepton, events.b, events.bbar, events.neutrino, events.charge)
    np.testing.assert_allclose(chunk.x, expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(chunk.extras["lepton"], events.lepton)
    np.testing.assert_array_equal(chunk.extras["p1"], events.p1)
    assert store.benchmarks == NAMES and store.morphing["benchmarks"] == BENCHMARKS.tolist()


def test_weights_are_normalised_to_the_init_cross_section(events, space, tmp_path):
    # MadGraph's event_norm=average writes σ on every event: the store must still sum to σ
    lhe, init = wh_to_lhe(events, benchmark_names=NAMES)
    n = lhe.n_events
    average = type(lhe)(**{**lhe.__dict__, "weight": lhe.weight * n, "rwgt": lhe.rwgt * n})
    path = write_lhe(tmp_path / "avg.lhe", average, init)
    store = import_lhe([path], tmp_path / "avg.h5", space, Morpher(morphing_components(2, 2), BENCHMARKS))
    np.testing.assert_allclose(store.weights_sum(), events.weights.sum(0), rtol=1e-12)


def test_final_state_charge_and_momenta(events):
    lhe, _ = wh_to_lhe(events)
    fs = wh_final_state(lhe)
    np.testing.assert_array_equal(fs["charge"], events.charge)
    for name in ("lepton", "neutrino", "b", "bbar", "p1", "p2"):
        np.testing.assert_array_equal(fs[name], getattr(events, name))


def test_missing_rwgt_id_names_the_file(events, space, tmp_path):
    lhe, init = wh_to_lhe(events, benchmark_names=["sm", "x1", "x2", "x3", "x4", "x5"])
    path = write_lhe(tmp_path / "other.lhe", lhe, init)
    with pytest.raises(LHEError, match=r"other\.lhe.*b1"):
        import_lhe([path], tmp_path / "o.h5", space, Morpher(morphing_components(2, 2), BENCHMARKS))


def test_event_without_a_lepton_is_refused(events, tmp_path):
    lhe, init = wh_to_lhe(events)
    pdg = lhe.pdgid.copy()
    pdg[7, 4] = 22  # the lepton of event 7 becomes a photon
    broken = type(lhe)(**{**lhe.__dict__, "pdgid": pdg})
    path = write_lhe(tmp_path / "broken.lhe", broken, init)
    with pytest.raises(AssayError, match="event 7: expected exactly one charged lepton"):
        wh_final_state(read_lhe(path)[0], path)
