"""``simulator: {kind: events, path: FILE}``: ``assay run`` on an existing EventStore.

The reference is a run that generated the same events: with the store's benchmarks as the basis,
the training sets must be identical, bit for bit.
"""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import yaml

from assay.analysis.limits import run_limits
from assay.config import config_from_dict, load_config
from assay.exceptions import ConfigError, StoreError
from assay.pipeline import run_pipeline
from assay.store import EventStore
from assay.training_set import TrainingSet

CONFIG = {
    "seed": 5,
    "parameters": [{"name": "theta_0", "range": [-1.0, 1.0]}, {"name": "theta_1", "range": [-1.0, 1.0]}],
    "benchmarks": [
        {"name": "sm", "theta": {}},
        {"name": "corner", "theta": {"theta_0": 1.0, "theta_1": 1.0}},
    ],
    "morphing": {"max_power": 2, "n_basis_trials": 5},
    "simulator": {"kind": "gaussian_toy", "n_events": 4_000, "batch_size": 1_000},
    "sampling": {
        "sets": [
            {"name": "sally", "kind": "local_score", "theta_ref": "sm", "n_samples": 400},
            {"name": "alices", "kind": "ratio", "theta0": {"kind": "uniform", "low": -1.0, "high": 1.0},
             "theta1": "sm", "n_theta0": 10, "n_samples": 500},
        ]
    },
    "inference": {
        "luminosity_ifb": 1.0,
        "scans": [{"parameter": "theta_0", "range": [-0.5, 0.5], "n_points": 11}],
        "histograms": [{"observables": ["x0"], "edges": [[-np.inf, -1, 0, 1, np.inf]]}],
    },
}


def _imported(path, **changes) -> dict:
    data = copy.deepcopy(CONFIG)
    data["simulator"] = {"kind": "events", "path": str(path)}
    data.update(changes)
    return data


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("generated")
    run_pipeline(config_from_dict(copy.deepcopy(CONFIG)), out, progress=False)
    return out


def test_sets_identical_to_the_generating_run(generated, tmp_path):
    cfg = config_from_dict(_imported(generated / "events.h5"))
    result = run_pipeline(cfg, tmp_path / "run", progress=False)
    assert os.path.samefile(result.events, generated / "events.h5")  # hard link: no copy
    for name, path in result.training_sets.items():
        ours, theirs = TrainingSet.load(path), TrainingSet.load(generated / "sets" / path.name)
        for field in ("x", "theta0", "theta1", "y", "log_r", "t0", "t1"):
            a, b = getattr(ours, field), getattr(theirs, field)
            assert (a is None) == (b is None), (name, field)
            if a is not None:
                np.testing.assert_array_equal(a, b, err_msg=f"{name}.{field}")
    assert result.space.benchmark_names == EventStore(generated / "events.h5").benchmarks


def test_rerun_reuses_and_copy_fallback(generated, tmp_path, monkeypatch):
    def no_link(*_):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    cfg = config_from_dict(_imported(generated / "events.h5"))
    first = run_pipeline(cfg, tmp_path, progress=False).events
    assert not os.path.samefile(first, generated / "events.h5")  # a copy
    mtime = first.stat().st_mtime_ns
    run_pipeline(cfg, tmp_path, progress=False)
    assert first.stat().st_mtime_ns == mtime  # the same source: not copied again


def test_relative_path_is_relative_to_the_config(generated, tmp_path):
    (tmp_path / "sub").mkdir()
    os.link(generated / "events.h5", tmp_path / "sub" / "mine.h5")
    config_file = tmp_path / "sub" / "run.yaml"
    config_file.write_text(yaml.safe_dump(_imported("mine.h5")))
    cfg = load_config(config_file)
    assert cfg.simulator.path == str(tmp_path / "sub" / "mine.h5")


def test_limits_on_imported_events(generated, tmp_path):
    cfg = config_from_dict(_imported(generated / "events.h5"))
    run_pipeline(cfg, tmp_path, progress=False)
    results = run_limits(cfg, tmp_path, progress=False)
    level = next(iter(results.levels.values()))
    assert level.n_events["generated"] == 4_000
    assert level.label == "events of events.h5"
    lo, hi = level.intervals["hist_x0"]["theta_0_68"]
    assert lo < 0 < hi


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"parameters": [{"name": "theta_1", "range": [-1, 1]}, {"name": "theta_0", "range": [-1, 1]}]},
         r"parameters \['theta_0', 'theta_1'\], the config \['theta_1', 'theta_0'\]; use the same names "
         "in the same order"),
        ({"benchmarks": [{"name": "corner", "theta": {"theta_0": 0.5}}]}, "'corner' is θ = "),
        ({"benchmarks": [{"name": "far", "theta": {"theta_0": 0.5}}]}, "'far' is not among the events"),
    ],
)
def test_mismatches_are_refused(generated, tmp_path, change, message):
    cfg = config_from_dict(_imported(generated / "events.h5", **change))
    with pytest.raises(ConfigError, match=message):
        run_pipeline(cfg, tmp_path, progress=False)


def test_missing_file_says_how_to_make_it(tmp_path):
    cfg = config_from_dict(_imported(tmp_path / "nothing.h5"))
    with pytest.raises(StoreError, match=r"nothing.h5: no such file; write it with `assay import-lhe`"):
        run_pipeline(cfg, tmp_path / "run", progress=False)


def test_other_events_at_the_same_path_rebuild_the_sets(generated, tmp_path):
    source = tmp_path / "events.h5"
    os.link(generated / "events.h5", source)
    cfg = config_from_dict(_imported(source))
    first = run_pipeline(cfg, tmp_path / "run", progress=False)
    before = TrainingSet.load(first.training_sets["sally_train"]).x.copy()
    with EventStore(generated / "events.h5") as store:  # the same events, observables shifted by 1
        chunk = store.read()
        source.unlink()
        with EventStore.create(source, observables=store.observables, benchmarks=store.benchmarks,
                               parameters=store.parameters, morphing=store.morphing) as writer:  # fmt: skip
            writer.append(chunk.x + 1.0, chunk.weights)
    after = run_pipeline(cfg, tmp_path / "run", progress=False)
    np.testing.assert_allclose(TrainingSet.load(after.training_sets["sally_train"]).x, before + 1.0)


def test_scans_show_progress(generated, tmp_path, capsys):
    data = _imported(generated / "events.h5")
    data["inference"] = {**data["inference"], "grids": [
        {"parameters": ["theta_0", "theta_1"], "ranges": [[-0.5, 0.5], [-0.5, 0.5]], "n_points": 5}]}
    cfg = config_from_dict(data)
    run_pipeline(cfg, tmp_path, progress=False)
    capsys.readouterr()
    run_limits(cfg, tmp_path, progress=True)
    err = capsys.readouterr().err
    assert "1D scans" in err and "2D scans" in err
    run_limits(cfg, tmp_path, progress=False)
    assert "scans" not in capsys.readouterr().err


def test_imported_events_may_carry_shape_nuisances(generated):
    data = _imported(generated / "events.h5", systematics={"nuisances": [{"name": "scale"}]})
    assert config_from_dict(data).systematics.nuisances[0].name == "scale"  # checked against the store later
    toy = copy.deepcopy(CONFIG) | {"systematics": {"nuisances": [{"name": "scale"}]}}
    with pytest.raises(ConfigError, match="provides no shape variations"):
        config_from_dict(toy)


def test_memory_budget_streams_the_builders_weights(generated, tmp_path, caplog):
    cfg = config_from_dict(_imported(generated / "events.h5", memory_gb=1e-5))  # 10 kB: below 4k events
    with caplog.at_level("INFO", logger="assay.sampling"):
        result = run_pipeline(cfg, tmp_path, progress=False)
    assert "exceed half of memory_gb 1e-05; streamed in chunks" in caplog.text
    sally = TrainingSet.load(result.training_sets["sally_train"])
    assert len(sally) == 400 and np.isfinite(sally.t0).all()
