"""Tests of assay.pipeline and assay.demo: outputs, split hygiene, reruns, cache invalidation,
and the physics of the result checked against the Gaussian toy's exact cross sections."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from assay.config import config_from_dict
from assay.generation import ToyBatchSimulator
from assay.joint import JointQuantities
from assay.pipeline import build_basis, run_pipeline
from assay.simulators.toys import GaussianToy
from assay.store import EventStore
from assay.toy_demo import run_toy_demo as run_demo
from assay.training_set import TrainingSet

N_EVENTS = 5_000
CONFIG = {
    "seed": 3,
    "parameters": [{"name": "theta_0", "range": [-1.0, 1.0]}, {"name": "theta_1", "range": [-1.0, 1.0]}],
    "benchmarks": [
        {"name": "sm", "theta": {}},
        {"name": "corner", "theta": {"theta_0": 1.0, "theta_1": 1.0}},
    ],
    "morphing": {"max_power": 2, "n_basis_trials": 5},
    "simulator": {"kind": "gaussian_toy", "n_events": N_EVENTS, "batch_size": 1_000},
    "sampling": {
        "sets": [
            {"name": "sally", "kind": "local_score", "theta_ref": "sm", "n_samples": 500},
            {
                "name": "alices",
                "kind": "ratio",
                "theta0": {"kind": "uniform", "low": -1.0, "high": 1.0},
                "theta1": "sm",
                "n_theta0": 20,
                "n_samples": 1_000,
            },
            {"name": "plain", "kind": "plain", "theta": "corner", "n_samples": 300, "partitions": ["test"]},
        ]
    },
}
SET_FILES = {f"{s}_{p}" for s in ("sally", "alices") for p in ("train", "validation")} | {"plain_test"}


def config(**changes):
    """CONFIG with ``section={key: value}`` changes merged in (``sets`` replaced by index)."""
    data = copy.deepcopy(CONFIG)
    for section, values in changes.items():
        if isinstance(values, dict):
            data.setdefault(section, {}).update(values)
        else:
            data[section] = values
    return config_from_dict(data)


def mtimes(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in folder.rglob("*.h5")}


def no_simulation(*_args, **_kwargs):
    raise AssertionError("the simulator was called: events were regenerated")


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("pipeline")
    return run_pipeline(config(), out, progress=False)


@pytest.fixture(scope="module")
def toy() -> GaussianToy:
    return GaussianToy.default(2, 2, smearing=0.5)


def test_writes_every_output(result):
    out = result.events.parent
    assert result.events == out / "events.h5"
    for name in ("basis.json", "events.h5", "split.h5", "sets/manifest.json"):
        assert (out / name).is_file(), name
    assert set(result.training_sets) == SET_FILES
    for name, path in result.training_sets.items():
        assert path == out / "sets" / f"{name}.h5" and path.is_file()
    assert sorted(p.name for p in (out / "sets").glob("*.h5")) == sorted(f"{n}.h5" for n in SET_FILES)
    assert not list(out.rglob("*.partial")) and not list(out.rglob("*.tmp"))
    assert set(result.timings_s) == {"basis", "generation", "sampling"}


def test_training_sets_have_the_configured_content(result):
    sally = TrainingSet.load(result.training_sets["sally_train"])
    assert sally.kind == "local_score" and len(sally) == 500
    assert sally.parameters == ("theta_0", "theta_1") and sally.observables == ("x0", "x1")
    np.testing.assert_array_equal(sally.theta0, 0.0)
    assert sally.t0.shape == (500, 2)
    alices = TrainingSet.load(result.training_sets["alices_validation"])
    assert alices.kind == "ratio" and len(alices) == 1_000
    assert alices.y.sum() == 500 and np.all(np.abs(alices.theta0) <= 1.0)
    np.testing.assert_array_equal(alices.theta1, 0.0)
    plain = TrainingSet.load(result.training_sets["plain_test"])
    assert len(plain) == 300
    np.testing.assert_array_equal(plain.theta0, 1.0)  # the "corner" benchmark


def test_basis_json(result):
    basis = json.loads((result.events.parent / "basis.json").read_text())
    names = list(basis["space"]["benchmarks"])
    assert names[:2] == ["sm", "corner"]  # configured benchmarks first, in order
    assert len(names) == 6 and names == result.space.benchmark_names  # 6 quadratic components in 2D
    assert basis["space"]["benchmarks"]["corner"] == {"theta_0": 1.0, "theta_1": 1.0}
    assert basis["condition_number"] == pytest.approx(result.morpher.condition_number)
    with EventStore(result.events) as store:
        assert store.benchmarks == names
        assert store.morphing == basis["morphing"]
        assert store.config["run"]["seed"] == 3  # provenance
        assert store.config["run"]["simulator"] == config().model_dump(mode="json")["simulator"]
        assert store.config["generation"]["seed"] == 3


def test_build_basis_is_seeded():
    cfg = config()
    a, _ = build_basis(cfg, np.random.default_rng([cfg.seed, 0]))
    b, _ = build_basis(cfg, np.random.default_rng([cfg.seed, 0]))
    np.testing.assert_array_equal(a.benchmark_thetas, b.benchmark_thetas)
    assert a.benchmark_names == ["sm", "corner", "morph_2", "morph_3", "morph_4", "morph_5"]
    three = [*CONFIG["benchmarks"], {"name": "edge", "theta": {"theta_0": -1.0}}]
    linear = config(benchmarks=three, morphing={"optimize_basis": False, "max_power": 1})
    fixed, morpher = build_basis(linear, np.random.default_rng(0))
    assert fixed.benchmark_names == ["sm", "corner", "edge"] and morpher.n_components == 3


def test_split_is_disjoint_and_complete(result):
    with h5py.File(result.events.parent / "split.h5", "r") as f:
        stored = {name: f[name][()] for name in ("train", "validation", "test")}
    for name, indices in stored.items():
        np.testing.assert_array_equal(indices, result.split[name])
    everything = np.concatenate(list(stored.values()))
    np.testing.assert_array_equal(np.sort(everything), np.arange(N_EVENTS))
    assert [len(stored[n]) for n in ("train", "validation", "test")] == [3_000, 1_000, 1_000]


def test_training_sets_use_only_their_partition(result):
    events = {}
    for name, path in result.training_sets.items():
        partition = name.rsplit("_", 1)[1]
        index = TrainingSet.load(path).event_index
        assert np.all(np.isin(index, result.split[partition])), name
        events.setdefault(partition, []).append(index)
    train, validation = np.concatenate(events["train"]), np.concatenate(events["validation"])
    assert np.intersect1d(train, validation).size == 0
    assert np.intersect1d(train, np.concatenate(events["test"])).size == 0


def test_training_set_x_are_the_stored_events(result):
    sally = TrainingSet.load(result.training_sets["sally_train"])
    with EventStore(result.events) as store:
        np.testing.assert_array_equal(store.take(sally.event_index).x, sally.x)


def test_morphed_cross_sections_match_the_toy(result, toy):
    thetas = np.array([[0.0, 0.0], [0.5, -0.3], [-0.8, 0.6], [1.0, 1.0], [0.2, 0.9]])
    with EventStore(result.events) as store:
        chunk = store.read(extras=True)
        jq = JointQuantities(result.morpher, store.weights_sum())
    sigma = jq.cross_section(thetas)
    # Exact up to rounding: the toy's own reweighting of the stored latent z (generated at SM).
    z = chunk.extras["z"]
    direct = toy.dsigma(z, thetas) / toy.dsigma(z, np.zeros(2)) * toy.cross_section(np.zeros(2)) / N_EVENTS
    np.testing.assert_allclose(sigma, direct.sum(axis=0), rtol=1e-9)
    # Statistically: the analytic σ(θ), within 5 MC standard errors of the weighted sum.
    per_event = jq.weights_on_grid(chunk.weights, thetas)
    err = np.sqrt(N_EVENTS * per_event.var(axis=0)) + 1e-9
    exact = toy.cross_section(thetas)
    assert np.all(np.abs(sigma - exact) < 5 * err), (sigma, exact, err)
    assert sigma[0] == pytest.approx(exact[0], rel=1e-10)  # generated at SM: exact there


def test_rerun_regenerates_nothing_and_reuses_sets(tmp_path, monkeypatch):
    first = run_pipeline(config(), tmp_path, progress=False)
    before = mtimes(tmp_path)
    monkeypatch.setattr(ToyBatchSimulator, "batch", no_simulation)
    again = run_pipeline(config(), tmp_path, progress=False)
    assert mtimes(tmp_path) == before
    assert again.training_sets == first.training_sets
    np.testing.assert_array_equal(again.split.train, first.split.train)
    np.testing.assert_array_equal(again.space.benchmark_thetas, first.space.benchmark_thetas)


def test_changed_sampling_rebuilds_the_sets(tmp_path):
    run_pipeline(config(), tmp_path, progress=False)
    before = mtimes(tmp_path)
    sets = copy.deepcopy(CONFIG["sampling"]["sets"])
    sets[0]["n_samples"] = 200
    changed = config(sampling={"sets": sets})
    result = run_pipeline(changed, tmp_path, progress=False)
    assert len(TrainingSet.load(result.training_sets["sally_train"])) == 200
    manifest = json.loads((tmp_path / "sets" / "manifest.json").read_text())
    assert manifest["sampling"]["sets"][0]["n_samples"] == 200
    after = mtimes(tmp_path)
    assert all(after[f"sets/{name}.h5"] != before[f"sets/{name}.h5"] for name in SET_FILES)


def test_dropped_set_is_removed(tmp_path):
    run_pipeline(config(), tmp_path, progress=False)
    sets = copy.deepcopy(CONFIG["sampling"]["sets"])[:1]
    result = run_pipeline(config(sampling={"sets": sets}), tmp_path, progress=False)
    assert set(result.training_sets) == {"sally_train", "sally_validation"}
    assert sorted(p.name for p in (tmp_path / "sets").glob("*.h5")) == [
        "sally_train.h5",
        "sally_validation.h5",
    ]


def test_changed_training_settings_do_not_regenerate_events(tmp_path, monkeypatch):
    # Events depend on the parameters, basis, simulator and seed only; editing the training or
    # inference sections must not throw away (possibly hours of) generated events.
    run_pipeline(config(), tmp_path, progress=False)
    before = mtimes(tmp_path)
    monkeypatch.setattr(ToyBatchSimulator, "batch", no_simulation)
    run_pipeline(
        config(training={"a": {"method": "alices", "epochs": 3}}, inference={"luminosity_ifb": 30.0}),
        tmp_path,
        progress=False,
    )
    assert mtimes(tmp_path)["events.h5"] == before["events.h5"]


def test_changed_seed_gives_the_same_outputs_as_a_fresh_run(tmp_path):
    # Rerunning in a folder made with another seed must not keep that seed's split.
    run_pipeline(config(), tmp_path / "reused", progress=False)
    reused = run_pipeline(config(seed=4), tmp_path / "reused", progress=False)
    fresh = run_pipeline(config(seed=4), tmp_path / "fresh", progress=False)
    for partition in ("train", "validation", "test"):
        np.testing.assert_array_equal(reused.split[partition], fresh.split[partition], err_msg=partition)
    a = TrainingSet.load(reused.training_sets["sally_train"])
    b = TrainingSet.load(fresh.training_sets["sally_train"])
    np.testing.assert_array_equal(a.event_index, b.event_index)


def test_output_defaults_to_the_config_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_pipeline(config(output="here", sampling={"sets": []}), progress=False)
    assert result.events == Path("here") / "events.h5" and result.events.is_file()
    assert result.training_sets == {}


# ---- demo -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, run_demo(out, n_events=20_000, progress=False)


def test_demo_writes_its_summary(demo):
    out, summary = demo
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert summary["n_events"] == 20_000
    assert next(iter(summary["benchmarks"])) == "sm" and len(summary["benchmarks"]) == 6
    assert summary["training_sets"] == {
        "sally_train": 100_000,
        "sally_validation": 100_000,
        "alices_train": 200_000,
        "alices_validation": 200_000,
    }
    assert (out / "events.h5").is_file() and not os.path.exists(out / "summary.json.tmp")


def test_demo_checks_close_against_the_exact_toy(demo):
    checks = demo[1]["checks"]
    # The toy's dσ is exactly quadratic in θ: morphing, joint log r and joint score agree with the
    # closed forms up to float64 rounding (observed ~1e-13 with 20k events).
    assert checks["morphing_closure_max_rel"] < 1e-9
    assert checks["joint_log_r_max_abs_err"] < 1e-9
    assert checks["joint_score_max_abs_err"] < 1e-8
    # Generated at SM, every event's SM weight is σ_SM/N exactly, so Σw is σ_SM up to rounding.
    assert checks["sigma_sm_pb"] == pytest.approx(checks["sigma_sm_exact_pb"], rel=1e-9)
    assert checks["sigma_sm_exact_pb"] == pytest.approx(2 * np.pi)  # K_00 = a_0² 2π s², a_0 = s = 1
    # 20,000 events unweighted at θ0 = (0.3, -0.2): their mean is the exact E[x|θ0] within 5σ.
    assert checks["unweighted_mean_max_pull"] < 5
    assert 0 < checks["n_eff_at_theta0"] <= 0.2 * 20_000  # Kish n_eff <= events of the test split


def test_rerunning_a_finished_run_writes_nothing(tmp_path, monkeypatch):
    """A finished run rerun writes no file (issue 18: a folder that became read-only made the
    rerun fail, because basis.json and the sets' manifest were rewritten every time)."""
    import assay.saving

    run_pipeline(config(), tmp_path, progress=False)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}

    def refuse(*_args, **_kwargs):
        raise AssertionError("a finished run wrote a file")

    monkeypatch.setattr(assay.saving, "atomic_path", refuse)
    monkeypatch.setattr(ToyBatchSimulator, "batch", no_simulation)
    run_pipeline(config(), tmp_path, progress=False)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()} == before


def test_a_second_run_on_a_busy_folder_names_the_holder(tmp_path):
    """Two runs on one folder: the second stops with the holder's PID and host (it used to be
    told to delete the .partial file the first was still writing); a stale lock is taken over."""
    import json
    import os
    import socket
    import subprocess
    import sys

    from assay.exceptions import StoreError
    from assay.rundir import RunDir

    run = RunDir(tmp_path)
    with run.locked("run"):
        with pytest.raises(StoreError, match=rf"`assay run` \(pid {os.getpid()} on {socket.gethostname()}\)"):
            run_pipeline(config(), tmp_path, progress=False)
    assert not run.lock_file.exists()  # released
    # a lock whose process has ended (a finished subprocess's PID) is stale: taken over
    command = [sys.executable, "-c", "import os; print(os.getpid())"]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    stale = {"pid": int(done.stdout), "host": socket.gethostname(), "command": "run"}
    run.lock_file.write_text(json.dumps(stale))
    run_pipeline(config(), tmp_path, progress=False)
    assert (tmp_path / "events.h5").is_file() and not run.lock_file.exists()
