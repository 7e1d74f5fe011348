"""Tests of assay.store: round trips, streaming, atomic and resumable writes, validation."""

from __future__ import annotations

import gc
import pickle
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from assay import store_layout
from assay.exceptions import StoreError
from assay.store import EventStore

OBS = ["pt_j1", "eta_j1", "m_jj"]
BENCH = ["sm", "bsm1", "bsm2"]
PROCS = ["signal", "ttbar"]
PARAMS = {"names": ["cHW", "cHWtil"], "ranges": [[-1.0, 1.0], [-2.0, 2.0]]}
META = dict(
    observables=OBS,
    benchmarks=BENCH,
    processes=PROCS,
    parameters=PARAMS,
    morphing={"max_power": 2},
    config={"seed": 7},
)


def batch(rng: np.random.Generator, n: int) -> dict:
    """One append's worth of random events (negative weights included)."""
    return dict(
        x=rng.normal(size=(n, len(OBS))),
        weights=rng.normal(1.0, 1.0, size=(n, len(BENCH))),
        process=rng.integers(0, len(PROCS), n),
        benchmark=rng.integers(-1, len(BENCH), n),
        extras={"truth": rng.normal(size=(n, 2, 4))},
    )


def concat(batches: list[dict]) -> dict:
    out = {k: np.concatenate([b[k] for b in batches]) for k in ("x", "weights", "process", "benchmark")}
    out["truth"] = np.concatenate([b["extras"]["truth"] for b in batches])
    return out


def write(path, batches: list[dict], **kwargs) -> None:
    with EventStore.create(path, **META, extras={"truth": (2, 4)}, **kwargs) as writer:
        for b in batches:
            writer.append(**b)


@pytest.fixture
def data():
    rng = np.random.default_rng(1)
    return [batch(rng, n) for n in (40, 25, 35)]


@pytest.fixture
def events(tmp_path, data):
    path = tmp_path / "events.h5"
    write(path, data, chunk_events=16)
    return path


# --- round trips and streaming -------------------------------------------------------------


def test_round_trip_exact(events, data):
    expected = concat(data)
    with EventStore(events) as store:
        chunk = store.read()
        assert store.n_events == 100 == len(chunk) and chunk.start == 0
        np.testing.assert_array_equal(chunk.x, expected["x"])
        np.testing.assert_array_equal(chunk.weights, expected["weights"])
        np.testing.assert_array_equal(chunk.process, expected["process"])
        np.testing.assert_array_equal(chunk.benchmark, expected["benchmark"])
        np.testing.assert_array_equal(chunk.extras["truth"], expected["truth"])
        assert chunk.x.dtype == np.float64 and chunk.process.dtype == np.int32
        assert (store.observables, store.benchmarks, store.processes) == (OBS, BENCH, PROCS)
        assert store.parameters == PARAMS and store.morphing == {"max_power": 2}
        assert store.config == {"seed": 7} and store.schema_version == EventStore.SCHEMA_VERSION
        assert (store.n_obs, store.n_benchmarks, store.extras_names) == (3, 3, ["truth"])
        assert store.extras_shapes == {"truth": (2, 4)}
        # streamed sum vs numpy's pairwise sum: equal up to float64 rounding
        np.testing.assert_allclose(store.weights_sum(), expected["weights"].sum(axis=0), rtol=1e-12)
        assert "n_events=100" in repr(store) and "'bsm1'" in repr(store)


def test_read_range_and_bounds(events, data):
    expected = concat(data)
    with EventStore(events) as store:
        chunk = store.read(30, 70, extras=False)
        np.testing.assert_array_equal(chunk.x, expected["x"][30:70])
        assert chunk.start == 30 and chunk.extras == {}
        assert len(store.read(100, 100)) == 0
        with pytest.raises(IndexError, match="n_events = 100"):
            store.read(50, 101)


def test_iter_chunks_covers_every_event_once_in_order(events, data):
    expected = concat(data)
    with EventStore(events) as store:
        chunks = list(store.iter_chunks(chunk_size=7, extras=True))
    assert [c.start for c in chunks] == list(range(0, 100, 7))
    assert [len(c) for c in chunks] == [7] * 14 + [2]
    np.testing.assert_array_equal(np.concatenate([c.x for c in chunks]), expected["x"])
    np.testing.assert_array_equal(np.concatenate([c.extras["truth"] for c in chunks]), expected["truth"])
    for c in chunks:  # each chunk is the right slice, not merely the right concatenation
        np.testing.assert_array_equal(c.weights, expected["weights"][c.start : c.start + len(c)])


@pytest.mark.parametrize("block_bytes", [64, 8 * 2**20])  # many small blocks / one block
def test_take_matches_fancy_indexing(events, data, monkeypatch, block_bytes):
    monkeypatch.setattr(store_layout, "_BLOCK_BYTES", block_bytes)
    expected = concat(data)
    idx = np.random.default_rng(2).integers(0, 100, size=500)  # unsorted, repeated
    with EventStore(events) as store:
        got = store.take(idx, fields=("x", "weights", "process", "benchmark", "extras"))
        only_x = store.take(idx[::-1])
    np.testing.assert_array_equal(got.indices, idx)
    for key in ("x", "weights", "process", "benchmark"):
        np.testing.assert_array_equal(getattr(got, key), expected[key][idx])
    np.testing.assert_array_equal(got.extras["truth"], expected["truth"][idx])
    np.testing.assert_array_equal(only_x.x, expected["x"][idx[::-1]])
    assert only_x.weights is None and only_x.extras == {}


def test_take_edge_cases(events, data):
    with EventStore(events) as store:
        assert len(store.take(np.array([], dtype=int)).x) == 0
        sel = store.take([99, 0, 99], fields=["truth"])
        np.testing.assert_array_equal(sel.extras["truth"], concat(data)["truth"][[99, 0, 99]])
        with pytest.raises(IndexError, match=r"\[0, 100\)"):
            store.take([0, 100])
        with pytest.raises(StoreError, match="unknown field 'y'"):
            store.take([0], fields=("y",))


def test_take_many_random_indices_across_chunks(tmp_path):
    # spans several HDF5 chunks (chunk_events=4096); timing is measured in benchmarks/sampling.py
    n = 50_000
    rng = np.random.default_rng(3)
    x = rng.normal(size=(n, 4))
    with EventStore.create(
        tmp_path / "big.h5", observables=list("abcd"), benchmarks=["sm"], chunk_events=4096
    ) as writer:
        writer.append(x, np.ones((n, 1)))
    idx = rng.integers(0, n, size=3 * n)
    with EventStore(tmp_path / "big.h5") as store:
        got = store.take(idx)
    np.testing.assert_array_equal(got.x, x[idx])


def test_closed_store_and_pickle(events):
    store = EventStore(events)
    clone = pickle.loads(pickle.dumps(store))
    np.testing.assert_array_equal(clone.read(0, 5).x, store.read(0, 5).x)
    store.close()
    clone.close()
    with pytest.raises(StoreError, match="closed"):
        store.read()


# --- atomic writes -------------------------------------------------------------------------


def test_final_path_appears_only_on_finalize(tmp_path, data):
    path = tmp_path / "events.h5"
    writer = EventStore.create(path, **META, extras={"truth": (2, 4)})
    writer.append(**data[0])
    assert not path.exists() and (tmp_path / "events.h5.partial").exists()
    assert writer.n_events == 40
    store = writer.finalize()
    assert path.exists() and not (tmp_path / "events.h5.partial").exists()
    assert store.n_events == 40
    store.close()
    with pytest.raises(StoreError, match="closed"):
        writer.append(**data[1])


def test_exception_inside_with_leaves_no_file(tmp_path, data):
    path = tmp_path / "events.h5"
    with pytest.raises(RuntimeError, match="boom"):
        with EventStore.create(path, **META, extras={"truth": (2, 4)}) as writer:
            writer.append(**data[0])
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_keyboard_interrupt_keeps_partial_for_resume(tmp_path, data):
    path = tmp_path / "events.h5"
    with pytest.raises(KeyboardInterrupt):
        with EventStore.create(path, **META, extras={"truth": (2, 4)}) as writer:
            writer.append(**data[0])
            raise KeyboardInterrupt
    assert not path.exists() and (tmp_path / "events.h5.partial").exists()
    with EventStore.create(path, **META, extras={"truth": (2, 4)}, resume=True) as writer:
        assert writer.n_events == 40


def test_existing_path_needs_overwrite(events, data):
    with pytest.raises(StoreError, match=r"events\.h5 already exists.*overwrite=True"):
        EventStore.create(events, **META)
    with EventStore.create(events, **META, overwrite=True) as writer:
        writer.append(np.zeros((2, 3)), np.ones((2, 3)))
    with EventStore(events) as store:
        assert store.n_events == 2 and store.extras_names == []


# --- resume --------------------------------------------------------------------------------


def test_resume_after_writer_dropped(tmp_path, data):
    path = tmp_path / "events.h5"
    writer = EventStore.create(path, **META, extras={"truth": (2, 4)}, chunk_events=16)
    writer.append(**data[0])
    writer.append(**data[1])
    del writer  # crash stand-in: never finalized
    gc.collect()
    with pytest.raises(StoreError, match=r"events\.h5\.partial exists.*resume=True"):
        EventStore.create(path, **META, extras={"truth": (2, 4)})
    with pytest.raises(StoreError, match=r"no such file.*partial.*resume=True"):
        EventStore(path)
    with EventStore.create(path, **META, extras={"truth": (2, 4)}, resume=True) as writer:
        assert writer.n_events == 65
        writer.append(**data[2])
    with EventStore(path) as store:
        np.testing.assert_array_equal(store.read().x, concat(data)["x"])
        np.testing.assert_array_equal(store.read().extras["truth"], concat(data)["truth"])


def test_resume_after_hard_kill_truncates_to_last_append(tmp_path, data):
    """A process killed by os._exit leaves a partial file with every flushed append."""
    path = tmp_path / "events.h5"
    np.savez(
        tmp_path / "data.npz", x0=data[0]["x"], w0=data[0]["weights"], x1=data[1]["x"], w1=data[1]["weights"]
    )
    script = f"""
        import os, numpy as np
        from assay.store import EventStore
        d = np.load({str(tmp_path / "data.npz")!r})
        w = EventStore.create({str(path)!r}, observables={OBS!r}, benchmarks={BENCH!r})
        w.append(d["x0"], d["w0"])
        w.append(d["x1"], d["w1"])
        os._exit(3)
    """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], check=False)
    assert result.returncode == 3 and not path.exists()
    with h5py.File(tmp_path / "events.h5.partial", "a") as f:  # a torn third append
        f["observables"].resize(70, axis=0)
    writer = EventStore.create(path, observables=OBS, benchmarks=BENCH, resume=True)
    assert writer.n_events == 65
    with writer.finalize() as store:
        assert store.n_events == 65
        np.testing.assert_array_equal(store.read().x, np.concatenate([data[0]["x"], data[1]["x"]]))


def test_resume_with_different_metadata_fails(tmp_path, data):
    path = tmp_path / "events.h5"
    writer = EventStore.create(path, **META, extras={"truth": (2, 4)})
    writer.append(**data[0])
    writer.close()
    changed = {**META, "benchmarks": ["sm", "bsm1", "bsm3"]}
    with pytest.raises(StoreError, match=r"events\.h5\.partial: cannot resume: benchmarks differs"):
        EventStore.create(path, **changed, extras={"truth": (2, 4)}, resume=True)
    with pytest.raises(StoreError, match="cannot resume: config differs"):
        EventStore.create(path, **{**META, "config": {"seed": 8}}, extras={"truth": (2, 4)}, resume=True)
    with pytest.raises(StoreError, match="cannot resume: extras differs"):
        EventStore.create(path, **META, extras={"truth": (3,)}, resume=True)


def test_resume_without_partial_starts_fresh(tmp_path):
    with EventStore.create(tmp_path / "e.h5", **META, resume=True) as writer:
        assert writer.n_events == 0
        writer.append(np.zeros((1, 3)), np.ones((1, 3)))
    assert EventStore(tmp_path / "e.h5").n_events == 1


# --- bad input to append / create ----------------------------------------------------------


@pytest.fixture
def writer(tmp_path):
    w = EventStore.create(tmp_path / "events.h5", **META, extras={"truth": (2, 4)})
    yield w
    w.abort()


def good(n=5, **changes):
    args = dict(x=np.zeros((n, 3)), weights=np.ones((n, 3)), extras={"truth": np.zeros((n, 2, 4))})
    return {**args, **changes}


def test_nan_weight_names_row_and_benchmark(writer):
    w = np.ones((5, 3))
    w[3, 1] = np.nan
    with pytest.raises(StoreError, match=r"weights: non-finite value nan in row 3 .*'bsm1'"):
        writer.append(**good(weights=w))
    assert writer.n_events == 0  # nothing written


def test_inf_observable_names_row_and_observable(writer):
    writer.append(**good(n=10))
    x = np.zeros((5, 3))
    x[2, 2] = -np.inf
    with pytest.raises(StoreError, match=r"x: non-finite value -inf in row 2 \(event 12 .*'m_jj'"):
        writer.append(**good(x=x))


def test_wrong_shape_of_x(writer):
    with pytest.raises(
        StoreError,
        match=r"x: expected shape \(n_events, 3\) for observables "
        r"\['pt_j1', 'eta_j1', 'm_jj'\], got \(5, 4\)",
    ):
        writer.append(**good(x=np.zeros((5, 4))))
    with pytest.raises(StoreError, match=r"x: expected shape .*got \(15,\)"):
        writer.append(**good(x=np.zeros(15)))


def test_wrong_shape_of_weights(writer):
    with pytest.raises(
        StoreError,
        match=r"weights: expected shape \(n_events, 3\) for "
        r"benchmarks \['sm', 'bsm1', 'bsm2'\], got \(5, 2\)",
    ):
        writer.append(**good(weights=np.ones((5, 2))))
    with pytest.raises(StoreError, match=r"x and weights: .*same number of rows.*got 5 and 4"):
        writer.append(**good(weights=np.ones((4, 3))))


def test_bad_labels(writer):
    with pytest.raises(StoreError, match=r"process: label 2 in row 1 is outside \[0, 1\]"):
        writer.append(**good(process=np.array([0, 2, 0, 0, 0])))
    with pytest.raises(StoreError, match=r"benchmark: label -2 .*\[-1, 2\] for benchmarks"):
        writer.append(**good(benchmark=-2))
    with pytest.raises(StoreError, match=r"process: expected an integer .*shape \(5,\)"):
        writer.append(**good(process=np.zeros(5)))


def test_bad_extras(writer):
    with pytest.raises(StoreError, match=r"extras: expected exactly .*\['truth'\], got \[\]"):
        writer.append(**good(extras=None))
    with pytest.raises(StoreError, match=r"extras\['truth'\]: expected shape \(5, 2, 4\)"):
        writer.append(**good(extras={"truth": np.zeros((5, 8))}))


def test_bad_create_arguments(tmp_path):
    with pytest.raises(StoreError, match="benchmarks: expected a non-empty list of distinct"):
        EventStore.create(tmp_path / "a.h5", observables=OBS, benchmarks=["sm", "sm"])
    with pytest.raises(StoreError, match="config: not JSON-serialisable"):
        EventStore.create(tmp_path / "a.h5", observables=OBS, benchmarks=BENCH, config={"f": object()})
    with pytest.raises(StoreError, match="extras: expected name"):
        EventStore.create(tmp_path / "a.h5", observables=OBS, benchmarks=BENCH, extras={"a/b": (2,)})
    assert list(tmp_path.iterdir()) == []


# --- bad files on open ---------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(StoreError, match=r"nope\.h5: no such file") as info:
        EventStore(tmp_path / "nope.h5")
    assert isinstance(info.value, OSError)


def test_truncated_file(events):
    raw = events.read_bytes()
    events.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(StoreError, match=r"events\.h5: not a readable HDF5 file") as info:
        EventStore(events)
    assert isinstance(info.value.__cause__, OSError)


def test_text_file(tmp_path):
    path = tmp_path / "notes.h5"
    path.write_text("observables,weights\n1,2\n")
    with pytest.raises(StoreError, match=r"notes\.h5: not a readable HDF5 file"):
        EventStore(path)


def test_foreign_hdf5_file(tmp_path):
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as f:
        f["observables"] = np.zeros((3, 2))
    with pytest.raises(StoreError, match=r"foreign\.h5: not an assay event file \(no 'format'"):
        EventStore(path)


def edit(path, fn) -> None:
    with h5py.File(path, "a") as f:
        fn(f)


def test_missing_dataset(events):
    edit(events, lambda f: f.__delitem__("labels/benchmark"))
    with pytest.raises(StoreError, match=r"events\.h5: missing dataset 'labels/benchmark'"):
        EventStore(events)


def test_length_mismatch(events):
    edit(events, lambda f: f["weights"].resize(99, axis=0))
    with pytest.raises(
        StoreError,
        match=r"events\.h5: length mismatch: dataset 'weights' has "
        r"99 events but 'observables' has 100",
    ):
        EventStore(events)


def test_extras_length_mismatch(events):
    edit(events, lambda f: f["extras/truth"].resize(101, axis=0))
    with pytest.raises(StoreError, match="'extras/truth' has 101 events"):
        EventStore(events)


def test_future_schema_version(events):
    edit(events, lambda f: f.attrs.__setitem__("schema_version", 2))
    with pytest.raises(StoreError, match=r"events\.h5: schema_version 2 is newer .*upgrade"):
        EventStore(events)


def test_unfinished_file(events):
    edit(events, lambda f: f.attrs.__setitem__("complete", False))
    with pytest.raises(StoreError, match=r"events\.h5: unfinished write.*resume=True"):
        EventStore(events)


def test_malformed_json_metadata(events):
    edit(events, lambda f: f.attrs.__setitem__("parameters", "{'names': [cHW"))
    with pytest.raises(
        StoreError,
        match=r"events\.h5: metadata attribute 'parameters' is not "
        r"valid JSON",
    ):
        EventStore(events)


def test_metadata_length_mismatch(events):
    edit(events, lambda f: f.attrs.__setitem__("observables", '["pt_j1", "eta_j1"]'))
    with pytest.raises(
        StoreError,
        match=r"dataset 'observables' has 3 columns but metadata "
        r"'observables' has 2 names",
    ):
        EventStore(events)


def test_wrong_dtype(events):
    def replace(f):
        del f["labels/process"]
        f["labels/process"] = np.zeros(100, dtype=np.float32)

    edit(events, replace)
    with pytest.raises(
        StoreError,
        match=r"dataset 'labels/process' has dtype float32 .*"
        r"expected int32",
    ):
        EventStore(events)
