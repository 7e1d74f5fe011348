"""Issue 18, items 1, 3 and 6: NaN/inf and negative weights refused on write and on read (naming the
file, dataset and row), a full disk is one "no space left" error with resumable output, and damaged
run-folder files (split.h5, sets/manifest.json, a training set, cutflow.json) give named errors or are
made anew, never a raw traceback or a silent success."""

from __future__ import annotations

import copy
import errno
import json
import os
import resource
import subprocess
import sys

import h5py
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from assay import saving
from assay.cli import app
from assay.config import config_from_dict
from assay.exceptions import SamplingError, StoreError
from assay.generation import ToyBatchSimulator, generate
from assay.pipeline import generate_events, run_pipeline
from assay.rundir import RunDir
from assay.simulators.toys import GaussianToy
from assay.store import EventStore
from assay.training_set import TrainingSet

OBS, BENCH = ["pt", "eta"], ["sm", "bsm"]


def write_store(path, n=20, *, negative_weights=None, weights=None, extras=None):
    rng = np.random.default_rng(0)
    shapes = {name: value.shape[1:] for name, value in (extras or {}).items()}
    with EventStore.create(
        path, observables=OBS, benchmarks=BENCH, extras=shapes, negative_weights=negative_weights
    ) as writer:
        w = np.abs(rng.normal(1, 1, (n, 2))) if weights is None else weights
        writer.append(rng.normal(size=(n, 2)), w, extras=extras)
    return path


def tamper(path, dataset, row, col, value):
    with h5py.File(path, "r+") as f:
        f[dataset][row, col] = value


# ---- item 3: values checked on write and on read ------------------------------------------------


def test_nan_written_by_hand_is_named_on_every_read(tmp_path):
    path = write_store(tmp_path / "events.h5")
    tamper(path, "observables", 5, 1, np.nan)
    with EventStore(path) as store:  # the structure is fine: opening works
        message = r"events\.h5: dataset 'observables': non-finite value nan in row 5, column 1 \('eta'\)"
        with pytest.raises(StoreError, match=message):
            store.read()
        with pytest.raises(StoreError, match=message):
            store.take(np.array([7, 5, 1]))
        with pytest.raises(StoreError, match=message):
            store.validate()
        np.testing.assert_equal(store.read(0, 5).x.shape, (5, 2))  # rows before it are fine
        assert store.take(np.array([0, 19])).x.shape == (2, 2)


def test_inf_weight_stops_the_cross_section(tmp_path):
    path = write_store(tmp_path / "events.h5")
    tamper(path, "weights", 12, 0, np.inf)
    message = r"'weights': non-finite value inf in row 12"
    with EventStore(path) as store, pytest.raises(StoreError, match=message):
        store.weights_sum()


def test_inspect_never_prints_sigma_nan(tmp_path):
    path = write_store(tmp_path / "events.h5")
    tamper(path, "weights", 3, 1, np.nan)
    result = CliRunner().invoke(app, ["inspect", str(path)])
    assert result.exit_code == 2
    assert "row 3" in result.output and "events.h5" in result.output and "'bsm'" in result.output
    assert "Traceback" not in result.output and "σ" not in result.output


def test_label_out_of_range_on_read(tmp_path):
    path = write_store(tmp_path / "events.h5")
    with h5py.File(path, "r+") as f:
        f["labels/process"][4] = 3
    with EventStore(path) as store, pytest.raises(StoreError, match=r"'labels/process': label 3 in row 4"):
        store.read()


def test_write_errors_name_the_file_and_event(tmp_path):
    writer = EventStore.create(tmp_path / "events.h5", observables=OBS, benchmarks=BENCH)
    writer.append(np.zeros((10, 2)), np.ones((10, 2)))
    x = np.zeros((8, 2))
    x[5, 0] = np.nan
    with pytest.raises(StoreError, match=r"events\.h5\.partial: x: non-finite value nan in row 5 \(event 15"):
        writer.append(x, np.ones((8, 2)))
    writer.abort()


def test_negative_weights_refused_unless_declared(tmp_path):
    weights = np.ones((6, 2))
    weights[4, 1] = -0.5
    message = r"events\.h5\.partial: weights: negative value -0\.5 in row 4 .*'bsm'.*allow_negative_weights"
    with pytest.raises(StoreError, match=message):
        write_store(tmp_path / "events.h5", 6, negative_weights=False, weights=weights)
    assert not (tmp_path / "events.h5").exists()
    allowed = write_store(tmp_path / "nlo.h5", 6, negative_weights=True, weights=weights)
    with EventStore(allowed) as store:
        assert store.negative_weights is True
        assert store.weights_sum()[1] == pytest.approx(4.5)


def test_negative_weight_in_a_file_declared_without_them(tmp_path):
    path = write_store(tmp_path / "events.h5", negative_weights=False)
    tamper(path, "weights", 9, 0, -2.0)
    with EventStore(path) as store:
        assert store.negative_weights is False
        with pytest.raises(StoreError, match=r"'weights': negative value -2\.0 in row 9, column 0 \('sm'\)"):
            store.weights_sum()


def test_interference_components_may_be_negative_in_extras(tmp_path):
    # the off-shell simulator stores S, I, B_gg, B_qq as a weight-like extra; I changes sign
    components = np.tile([1.0, -0.3, 0.5, 0.2], (20, 1))
    path = write_store(tmp_path / "events.h5", negative_weights=False, extras={"components": components})
    with EventStore(path) as store:
        np.testing.assert_array_equal(store.validate().read(extras=True).extras["components"], components)
    nan = components.copy()
    nan[2, 1] = np.nan
    with pytest.raises(StoreError, match=r"extras\['components'\]: non-finite value in row 2"):
        write_store(tmp_path / "bad.h5", extras={"components": nan})


def test_training_set_refuses_nan_observables(tmp_path):
    x = np.zeros((5, 2))
    x[3, 1] = np.inf
    with pytest.raises(SamplingError, match=r"x: non-finite value in row 3"):
        TrainingSet(x=x, observables=("a", "b"), parameters=("c",), kind="plain")
    with pytest.raises(SamplingError, match=r"y: expected labels 0 or 1"):
        TrainingSet(
            x=np.zeros((2, 2)), observables=("a", "b"), parameters=("c",), kind="ratio", y=np.array([0, 2])
        )


# ---- the toy pipeline ---------------------------------------------------------------------------

CONFIG = {
    "seed": 5,
    "parameters": [{"name": "theta_0", "range": [-1.0, 1.0]}],
    "benchmarks": [
        {"name": "sm", "theta": {}},
        {"name": "plus", "theta": {"theta_0": 1.0}},
        {"name": "minus", "theta": {"theta_0": -1.0}},
    ],
    "morphing": {"max_power": 2, "optimize_basis": False},
    "simulator": {"kind": "gaussian_toy", "n_events": 3_000, "batch_size": 500},
    "sampling": {"sets": [{"name": "sally", "kind": "local_score", "theta_ref": "sm", "n_samples": 200}]},
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    run_pipeline(config_from_dict(copy.deepcopy(CONFIG)), out, progress=False)
    return out


def copy_run(finished, tmp_path):
    out = tmp_path / "run"
    subprocess.run(["cp", "-r", str(finished), str(out)], check=True)
    return out


def test_nan_in_events_is_named_before_any_training_set(finished, tmp_path):
    out = copy_run(finished, tmp_path)
    run = RunDir(out)
    tamper(run.events, "observables", 1234, 0, np.nan)
    for old in run.sets.glob("*.h5"):
        old.unlink()
    message = r"events\.h5: dataset 'observables': non-finite value nan in row 1234"
    with pytest.raises(StoreError, match=message):
        run_pipeline(config_from_dict(copy.deepcopy(CONFIG)), out, progress=False)


# ---- item 6: damaged run-folder files -----------------------------------------------------------


def test_random_bytes_in_split_are_a_named_error(finished, tmp_path):
    out = copy_run(finished, tmp_path)
    RunDir(out).split.write_bytes(np.random.default_rng(1).bytes(3000))
    with pytest.raises(StoreError, match=r"split\.h5: cannot read the event split .*delete it to split anew"):
        run_pipeline(config_from_dict(copy.deepcopy(CONFIG)), out, progress=False)


def test_split_rows_that_do_not_cover_the_events(finished, tmp_path):
    out = copy_run(finished, tmp_path)
    with h5py.File(RunDir(out).split, "r+") as f:
        f["test"][0] = f["train"][0]  # one event twice, another never
    with pytest.raises(StoreError, match=r"split\.h5: .* exactly once"):
        run_pipeline(config_from_dict(copy.deepcopy(CONFIG)), out, progress=False)


def test_garbled_manifest_rebuilds_the_sets_with_a_warning(finished, tmp_path, caplog):
    out = copy_run(finished, tmp_path)
    run = RunDir(out)
    before = TrainingSet.load(run.training_set("sally", "train"))
    run.sets_manifest.write_text('{"seed": 5, "parame')
    result = run_pipeline(config_from_dict(copy.deepcopy(CONFIG)), out, progress=False)
    assert "manifest.json: not valid JSON" in caplog.text
    json.loads(run.sets_manifest.read_text())  # rewritten
    after = TrainingSet.load(result.training_sets["sally_train"])
    np.testing.assert_array_equal(after.x, before.x)  # the same deterministic set


def test_truncated_training_set_is_made_anew_not_reported_done(finished, tmp_path, caplog):
    out = copy_run(finished, tmp_path)
    path = RunDir(out).training_set("sally", "validation")
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    result = run_pipeline(config_from_dict(copy.deepcopy(CONFIG)), out, progress=False)
    assert "sally_validation.h5: cannot read training set" in caplog.text and "making it anew" in caplog.text
    assert path.read_bytes() != good[: len(good) // 2]
    assert len(TrainingSet.load(result.training_sets["sally_validation"])) > 0


def test_garbled_cut_flow_is_named(tmp_path):
    from assay.pipeline import _read_cut_flow

    path = tmp_path / "cutflow.json"
    path.write_text('{"names": ["a"], "n_pass": "x"}')
    with pytest.raises(StoreError, match=r"cutflow\.json: not a cut flow"):
        _read_cut_flow(path)
    path.write_text("{]")
    with pytest.raises(StoreError, match=r"cutflow\.json: cannot read the cut flow"):
        _read_cut_flow(path)


# ---- item 1: full disk --------------------------------------------------------------------------


def toy_simulator():
    return ToyBatchSimulator(GaussianToy.default(1, 2), np.zeros(1), np.array([[0.0], [1.0]]))


def test_failed_hdf5_write_is_no_space_left_and_rerun_restarts_damaged_file(tmp_path, monkeypatch, caplog):
    path = tmp_path / "events.h5"
    reference = generate(
        toy_simulator(),
        tmp_path / "ref.h5",
        4000,
        seed=1,
        benchmarks=["a", "b"],
        batch_size=1000,
        progress=False,
    )
    calls = {"n": 0}
    original = h5py.Dataset.__setitem__

    def failing(self, key, value):
        calls["n"] += 1
        if calls["n"] > 9:  # 4 datasets + extras per batch: the third batch fails
            raise RuntimeError("Can't write data (file write failed: errno = 28, error message = 'No space')")
        return original(self, key, value)

    monkeypatch.setattr(h5py.Dataset, "__setitem__", failing)
    with pytest.raises(StoreError, match=r"events\.h5\.partial: no space left .*rerun the same command"):
        generate(toy_simulator(), path, 4000, seed=1, benchmarks=["a", "b"], batch_size=1000, progress=False)
    monkeypatch.undo()
    assert not path.exists()
    path.with_name("events.h5.partial").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))  # as HDF5 leaves it
    store = generate(
        toy_simulator(), path, 4000, seed=1, benchmarks=["a", "b"], batch_size=1000, progress=False
    )
    assert "cannot be continued" in caplog.text and "starting it over" in caplog.text
    np.testing.assert_array_equal(store.read().x, reference.read().x)


def test_atomic_write_on_a_full_disk_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "basis.json"
    saving.write_json(path, {"old": 1})

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(type(path), "write_text", full)
    with pytest.raises(StoreError, match=r"basis\.json: no space left .*left as it was"):
        saving.write_json(path, {"new": 2})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"old": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["basis.json"]


def test_require_space_reads_the_file_size_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(saving.resource, "getrlimit", lambda _: (3 * 2**20, saving.resource.RLIM_INFINITY))
    saving.require_space(tmp_path / "a.h5", 2**20)
    with pytest.raises(StoreError, match=r"a\.h5: no space left .*4\.0 MiB needed, 3\.0 MiB .*ulimit -f"):
        saving.require_space(tmp_path / "a.h5", 3 * 2**20)


def limited(n_bytes: int):
    """A ``preexec_fn`` that sets the file-size limit of the child, as ``ulimit -f`` would."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, n_bytes))


def test_generate_under_ulimit_f_then_resume(tmp_path):
    """A real file-size limit (``ulimit -f``) in a subprocess: one message, exit 2, no crash; the
    rerun without the limit resumes after the kept batches and gives the uninterrupted result."""
    cfg = copy.deepcopy(CONFIG)
    cfg["simulator"].update(n_events=100_000, batch_size=10_000)
    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump(cfg))
    out, ref = tmp_path / "out", tmp_path / "ref"
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "COLUMNS": "250"}

    def run(folder, limit):
        command = [
            sys.executable,
            "-c",
            "from assay.cli import app; app()",
            "generate",
            str(config),
            "-o",
            str(folder),
            "-q",
        ]
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            preexec_fn=limited(limit) if limit else None,
        )

    full = run(out, 8 * 2**20)
    assert full.returncode == 2, full.stdout + full.stderr
    text = " ".join((full.stdout + full.stderr).split())
    assert "events.h5.partial: no space left" in text and "Traceback" not in text
    kept = h5py.File(out / "events.h5.partial", "r").attrs["n_committed"]
    assert 0 < kept < 100_000
    assert json.loads((out / "basis.json").read_text())["space"]  # earlier output intact
    again = run(out, 0)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resuming" in again.stderr and f"({kept} events kept)" in again.stderr
    assert run(ref, 0).returncode == 0
    with EventStore(out / "events.h5") as a, EventStore(ref / "events.h5") as b:
        np.testing.assert_array_equal(a.read().x, b.read().x)
        np.testing.assert_array_equal(a.read().weights, b.read().weights)


def test_generate_events_passes_the_config_negative_weight_policy(tmp_path):
    cfg = copy.deepcopy(CONFIG)
    cfg["sampling"]["allow_negative_weights"] = True
    store = generate_events(config_from_dict(cfg), tmp_path, progress=False).store
    assert store.negative_weights is True
    store.close()
    with EventStore(
        generate_events(config_from_dict(copy.deepcopy(CONFIG)), tmp_path / "b", progress=False).store.path
    ) as plain:
        assert plain.negative_weights is False


@pytest.mark.parametrize(
    "value",
    [np.zeros((2, 2)), np.array(["a", "b"], dtype=h5py.string_dtype()), np.zeros(3, dtype="complex64")],
    ids=["2-d", "string array", "complex"],
)
def test_attribute_of_an_unexpected_type_is_refused_before_it_is_read(tmp_path, value):
    """Every root attribute is checked through h5py.h5a (type class, shape, stored bytes) before h5py
    reads it: a damaged header gives one StoreError naming the file and attribute, never a libhdf5
    crash (a bit flip making the 1-byte `complete` flag variable-length crashed the reader)."""
    path = tmp_path / "events.h5"
    with EventStore.create(path, observables=["a"], benchmarks=["sm"]) as writer:
        writer.append(np.zeros((3, 1)), np.ones((3, 1)))
    with h5py.File(path, "r+") as f:
        del f.attrs["complete"]
        f.attrs["complete"] = value
    with pytest.raises(StoreError, match=r"events\.h5: attribute 'complete' has an unexpected type or size"):
        EventStore(path)


def test_a_chunk_damaged_by_a_kill_is_found_before_resuming(tmp_path, caplog):
    """A SIGKILL in the middle of an append can leave the compressed chunk that holds the last
    committed rows half-written; appending into it later failed with "filter returned failure during
    read" (seen in benchmarks/reliability.py's resume test). The partial file is read back near
    n_committed on resume: a damaged chunk starts it over, with a warning, instead."""
    path = tmp_path / "events.h5"
    writer = EventStore.create(path, observables=["a"], benchmarks=["sm"], chunk_events=100,
                               compression="lzf")
    writer.append(np.arange(150.0)[:, None], np.ones((150, 1)))  # chunk [100, 200) holds rows 100-149
    writer.close()  # as a killed run leaves it: <file>.partial, n_committed = 150
    partial = path.with_name(path.name + ".partial")
    with h5py.File(partial, "r") as f:
        info = f["observables"].id.get_chunk_info_by_coord((100, 0))
    with open(partial, "r+b") as raw:  # garble the chunk's compressed bytes
        raw.seek(info.byte_offset)
        raw.write(bytes(255 - b for b in raw.read(info.size)))
    with pytest.raises(StoreError, match=r"dataset '\w+' cannot be read back near event 150"):
        EventStore.create(path, observables=["a"], benchmarks=["sm"], resume=True)
    with caplog.at_level("WARNING"):
        writer = EventStore.create(path, observables=["a"], benchmarks=["sm"], resume=True, overwrite=True)
    assert "cannot be continued" in caplog.text and "starting it over" in caplog.text
    with writer:
        writer.append(np.zeros((5, 1)), np.ones((5, 1)))
    assert EventStore(path).n_events == 5
