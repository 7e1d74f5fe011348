"""Tests of assay.generation: normalisation, determinism per (seed, batch), resume after an
interruption, and reuse of a finished file."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import h5py
import numpy as np
import pytest

from assay.exceptions import StoreError
from assay.generation import EventBatch, ToyBatchSimulator, generate
from assay.simulators.toys import GaussianToy
from assay.store import EventStore

# θ_gen = SM is benchmark 0; the other rows are a quadratic basis for two parameters.
BENCHMARKS = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0], [1.0, 1.0]])
NAMES = ["sm", "b1", "b2", "b3", "b4", "b5"]
N_EVENTS, BATCH = 10_000, 2_000


@pytest.fixture(scope="module")
def toy() -> GaussianToy:
    return GaussianToy.default(n_params=2)


@pytest.fixture
def simulator(toy) -> ToyBatchSimulator:
    return ToyBatchSimulator(toy, np.zeros(2), BENCHMARKS)


@dataclass
class Wrapped:
    """A simulator that counts its batches and raises ``fail`` on batch number ``fail_at`` (1-based)."""

    inner: ToyBatchSimulator
    fail_at: int | None = None
    fail: type[BaseException] = KeyboardInterrupt
    calls: list[int] = field(default_factory=list)

    @property
    def observables(self) -> list[str]:
        return self.inner.observables

    @property
    def extras_shapes(self) -> dict[str, tuple[int, ...]]:
        return self.inner.extras_shapes

    @property
    def processes(self) -> list[str]:
        return self.inner.processes

    def batch(self, n_events: int, rng: np.random.Generator) -> EventBatch:
        self.calls.append(n_events)
        if len(self.calls) == self.fail_at:
            raise self.fail("simulated interruption")
        return self.inner.batch(n_events, rng)


def run(sim, path, *, seed=5, n_events=N_EVENTS, **kwargs) -> EventStore:
    return generate(
        sim, path, n_events, seed=seed, benchmarks=NAMES, batch_size=BATCH, progress=False, **kwargs
    )


def arrays(path) -> dict[str, np.ndarray]:
    with EventStore(path) as store:
        chunk = store.read(extras=True)
    return {"x": chunk.x, "weights": chunk.weights, "z": chunk.extras["z"], "process": chunk.process}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_file_layout(simulator, tmp_path):
    with run(simulator, tmp_path / "ev.h5") as store:
        assert store.n_events == N_EVENTS
        assert store.benchmarks == NAMES
        assert store.observables == ["x0", "x1"]
        assert store.extras_shapes == {"z": (2,)}
        assert store.processes == ["toy"]
    assert not (tmp_path / "ev.h5.partial").exists()


def test_weights_sum_to_the_exact_cross_section_at_theta_gen(simulator, toy, tmp_path):
    # At θ_gen each event's weight is dσ(z|θ_gen) / (N p(z|θ_gen)) = σ(θ_gen)/N exactly, batch by
    # batch after the n_batch/N rescaling, so the file sums to σ up to float64 rounding.
    with run(simulator, tmp_path / "ev.h5") as store:
        w = store.read().weights
        sums = store.weights_sum()
    sigma = toy.cross_section(BENCHMARKS)
    np.testing.assert_allclose(w[:, 0], sigma[0] / N_EVENTS, rtol=1e-12)
    assert sums[0] == pytest.approx(sigma[0], rel=1e-10)
    # at the other benchmarks Σw is an unbiased MC estimate: within 5 standard errors
    err = np.sqrt(N_EVENTS * w[:, 1:].var(axis=0))
    assert np.all(np.abs(sums[1:] - sigma[1:]) < 5 * err), (sums, sigma, err)


def test_last_batch_may_be_short(simulator, toy, tmp_path):
    wrapped = Wrapped(simulator)
    with run(wrapped, tmp_path / "ev.h5", n_events=4_500) as store:
        assert store.n_events == 4_500
        assert store.weights_sum()[0] == pytest.approx(toy.cross_section(np.zeros(2)), rel=1e-10)
    assert wrapped.calls == [BATCH, BATCH, 500]


def test_same_seed_same_file_other_seed_other_file(simulator, tmp_path):
    a = arrays(run(simulator, tmp_path / "a.h5", seed=5).path)
    b = arrays(run(simulator, tmp_path / "b.h5", seed=5).path)
    c = arrays(run(simulator, tmp_path / "c.h5", seed=6).path)
    assert_same(a, b)
    assert not np.array_equal(a["x"], c["x"])
    assert not np.array_equal(a["weights"][:, 1:], c["weights"][:, 1:])


def test_batch_i_uses_its_own_generator(simulator, tmp_path):
    got = arrays(run(simulator, tmp_path / "ev.h5", seed=5).path)
    third = simulator.batch(BATCH, np.random.default_rng([5, 2]))
    np.testing.assert_array_equal(got["x"][2 * BATCH : 3 * BATCH], third.x)
    np.testing.assert_allclose(got["weights"][2 * BATCH : 3 * BATCH], third.weights * BATCH / N_EVENTS)


def test_resume_after_interruption_gives_the_uninterrupted_file(simulator, tmp_path):
    reference = arrays(run(simulator, tmp_path / "reference.h5").path)
    path = tmp_path / "ev.h5"
    partial = tmp_path / "ev.h5.partial"
    with pytest.raises(KeyboardInterrupt):
        run(Wrapped(simulator, fail_at=3), path)
    assert partial.exists() and not path.exists()
    with h5py.File(partial, "r") as f:
        assert f.attrs["n_committed"] == 2 * BATCH and not f.attrs["complete"]
    with pytest.raises(StoreError, match="interrupted"):
        EventStore(path)

    resumed = Wrapped(simulator)
    run(resumed, path).close()
    assert resumed.calls == [BATCH] * 3  # only the missing batches
    assert path.exists() and not partial.exists()
    assert_same(arrays(path), reference)


def test_resume_is_refused_with_another_batch_size(simulator, tmp_path):
    path = tmp_path / "ev.h5"
    with pytest.raises(KeyboardInterrupt):
        run(Wrapped(simulator, fail_at=2), path)  # 2,000 events committed
    with pytest.raises(StoreError, match="batch_size"):
        generate(simulator, path, N_EVENTS, seed=5, benchmarks=NAMES, batch_size=1_500, progress=False)


def test_error_in_simulator_propagates_and_keeps_committed_batches(simulator, tmp_path):
    path = tmp_path / "ev.h5"
    with pytest.raises(RuntimeError, match="simulated"):
        run(Wrapped(simulator, fail_at=2, fail=RuntimeError), path)
    assert not path.exists()
    with h5py.File(tmp_path / "ev.h5.partial", "r") as f:
        assert f.attrs["n_committed"] == BATCH


def test_complete_file_is_returned_without_regenerating(simulator, tmp_path):
    path = tmp_path / "ev.h5"
    meta = {"config": {"seed": 5}}
    run(simulator, path, metadata=meta).close()
    before = arrays(path)
    mtime = os.stat(path).st_mtime_ns
    never = Wrapped(simulator, fail_at=1, fail=AssertionError)
    with run(never, path, metadata=meta) as store:
        assert store.n_events == N_EVENTS
    assert never.calls == []
    assert os.stat(path).st_mtime_ns == mtime
    assert_same(arrays(path), before)


def test_complete_file_with_other_config_is_regenerated(simulator, tmp_path):
    path = tmp_path / "ev.h5"
    run(simulator, path, metadata={"config": {"seed": 5}}).close()
    counted = Wrapped(simulator)
    with run(counted, path, n_events=4_000, metadata={"config": {"seed": 5, "n_events": 4000}}) as store:
        assert store.n_events == 4_000
        assert store.config["run"] == {"seed": 5, "n_events": 4000}
        assert store.config["generation"] == {"seed": 5, "n_events": 4_000, "batch_size": BATCH}
    assert counted.calls == [BATCH, BATCH]


def test_complete_file_from_another_seed_is_not_reused(simulator, tmp_path):
    # Without config metadata the reuse check compares only n_events, so a file generated with
    # another seed comes back as if it were this seed's: not reproducible.
    run(simulator, tmp_path / "ev.h5", seed=5).close()
    got = arrays(run(simulator, tmp_path / "ev.h5", seed=6).path)
    assert_same(got, arrays(run(simulator, tmp_path / "fresh.h5", seed=6).path))


def test_resume_with_other_n_events_keeps_the_normalisation(simulator, toy, tmp_path):
    # Batches are scaled by n_batch / n_events; resuming a 10,000-event partial file as a
    # 6,000-event run must not mix the two scalings (refusing to resume is fine too).
    path = tmp_path / "ev.h5"
    with pytest.raises(KeyboardInterrupt):
        run(Wrapped(simulator, fail_at=3), path)  # 4,000 events scaled by 1/10,000
    try:
        store = run(simulator, path, n_events=6_000)
    except (ValueError, StoreError):
        return
    with store:
        assert store.weights_sum()[0] == pytest.approx(toy.cross_section(np.zeros(2)), rel=1e-10)
