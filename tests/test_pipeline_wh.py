"""The WH simulator through the config pipeline: parton level, detector level, shower + backgrounds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from assay.config import config_from_dict
from assay.exceptions import StoreError
from assay.generation import ToyBatchSimulator, generate, merge_stores
from assay.pipeline import generate_events, run_pipeline
from assay.simulators.toys import GaussianToy
from assay.store import EventStore
from assay.training_set import TrainingSet


def wh_config(**simulator) -> dict:
    return {
        "seed": 3,
        "parameters": [{"name": "cHW", "range": [-1, 1]}, {"name": "cHWtilde", "range": [-1.2, 1.2]}],
        "morphing": {"n_basis_trials": 20},
        "simulator": {"kind": "wh", "n_events": 4000, "batch_size": 2000, **simulator},
        "sampling": {
            "sets": [{"name": "sally", "kind": "local_score", "n_samples": 500, "partitions": ["train"]}]
        },
    }


def test_parton_level_run_has_exact_truth(tmp_path):
    result = run_pipeline(config_from_dict(wh_config()), tmp_path, progress=False)
    with EventStore(result.events) as store:
        chunk = store.read()
        assert store.n_events == 4000 and store.processes == ["wh"]
        # the stored dσ polynomial reproduces the benchmark weights exactly (θ-monomials of the basis)
        c, ct = result.morpher.benchmarks.T  # monomials of morphing_components(2, 2): 1, c̃, c, c̃², c c̃, c²
        phi = np.column_stack([np.ones_like(c), ct, c, ct**2, c * ct, c**2])
        np.testing.assert_allclose(chunk.extras["components"] @ phi.T, chunk.weights, rtol=1e-10)
    sally = TrainingSet.load(result.training_sets["sally_train"])
    assert sally.t0.shape == (500, 2) and np.all(np.isfinite(sally.t0))
    assert result.cut_flow is None  # parton level: no selection


def test_detector_level_applies_the_selection(tmp_path):
    result = generate_events(config_from_dict(wh_config(detector={})), tmp_path, progress=False)
    flow = result.cut_flow
    assert flow.n_total == 4000 and result.store.n_events == flow.n_pass[-1] < 4000
    assert np.all(np.diff(flow.efficiency) <= 1e-12)  # cumulative (rounding of different sums aside)
    x = result.store.read().x
    m_bb = x[:, result.store.observables.index("m_bb")]
    assert m_bb.min() > 80 and m_bb.max() < 160  # seed 000's m_bb window
    # σ before cuts, not the sum of the two batches' estimates: W± h → e/μ ν b b̄ ≈ 138 fb at LO (TOOLCHAIN)
    sigma = json.loads((tmp_path / "cutflow.json").read_text())["total_weight_pb"]
    assert 0.12 < sigma < 0.16


def test_shower_and_backgrounds_are_merged_with_process_labels(tmp_path):
    pytest.importorskip("fastjet")
    ttbar = {"process": "ttbar", "n_events": 300, "batch_size": 300, "level": "shower"}
    cfg = wh_config(n_events=600, batch_size=600, shower={"mpi": False}, backgrounds=[ttbar])
    result = generate_events(config_from_dict(cfg), tmp_path, progress=False)
    with EventStore(tmp_path / "events.h5") as store:
        chunk = store.read()
        assert store.processes[:2] == ["wh", "ttbar"]
        for label, name in enumerate(["wh", "ttbar"]):
            with EventStore(tmp_path / f"events_{name}.h5") as part:
                merged = chunk.weights[chunk.process == label].sum(0)
                np.testing.assert_allclose(merged, part.weights_sum(), rtol=1e-12)
        # backgrounds do not depend on θ: identical weights in every benchmark column
        bkg = chunk.weights[chunk.process == 1]
        np.testing.assert_array_equal(bkg, np.repeat(bkg[:, :1], bkg.shape[1], axis=1))
    assert "pT(light jets) < 30 GeV" in result.cut_flow.names


def test_merge_refuses_different_layouts(tmp_path):
    toy = GaussianToy.default(2)
    bench = np.array([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1], [1, 1.0]])
    a = generate(ToyBatchSimulator(toy, np.zeros(2), bench), tmp_path / "a.h5", 100, seed=1,
                 benchmarks=[f"b{i}" for i in range(6)], progress=False)  # fmt: skip
    toy3 = GaussianToy.default(2, n_obs=3)
    b = generate(ToyBatchSimulator(toy3, np.zeros(2), bench), tmp_path / "b.h5", 100, seed=1,
                 benchmarks=[f"b{i}" for i in range(6)], progress=False)  # fmt: skip
    a.close(), b.close()
    with pytest.raises(StoreError, match=r"b\.h5.*cannot merge"):
        merge_stores([tmp_path / "a.h5", tmp_path / "b.h5"], tmp_path / "m.h5", processes=["toy"])
    merged = merge_stores([tmp_path / "a.h5", tmp_path / "a.h5"], tmp_path / "m.h5", processes=["toy"])
    assert merged.n_events == 200
