"""Tests of assay.sampling and assay.training_set on a toy sample written to an EventStore.

Events are drawn from one partition of the file (the sampler's discrete distribution
p_i(θ) ∝ w_i(θ) over that partition) while σ(θ) comes from the whole file, so exact
expectations below are sums over the partition's weights, never Monte Carlo estimates.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from conftest import BASIS_2D, N_EVENTS, chi2_pvalue
from scipy import stats

from assay.exceptions import SamplingError, StoreError
from assay.joint import JointQuantities
from assay.morphing import Morpher
from assay.parameters import GaussianPrior, Parameter, ParameterSpace, UniformPrior
from assay.sampling import (
    BLOCK_SAMPLES,
    EventSource,
    local_score_training_set,
    plain_training_set,
    ratio_sampler,
    ratio_training_set,
    unweight,
)
from assay.store import EventStore
from assay.training_set import ARRAYS, TrainingSet, TrainingSetWriter, validate_file
from assay.unweighting import split_events

P_MIN = 1e-3
BENCHMARKS = [f"b{k}" for k in range(len(BASIS_2D))]
EDGES = np.array([-np.inf, -1.5, -0.8, -0.3, 0.0, 0.3, 0.8, 1.5, np.inf])


@pytest.fixture(scope="module")
def space() -> ParameterSpace:
    params = [Parameter("cA", (-1.0, 1.0)), Parameter("cB", (-1.0, 1.0))]
    benchmarks = {n: dict(zip(("cA", "cB"), t)) for n, t in zip(BENCHMARKS, BASIS_2D)}
    return ParameterSpace.from_dict(params, benchmarks)


@pytest.fixture(scope="module")
def store(tmp_path_factory, events, morpher, space):
    path = tmp_path_factory.mktemp("sampling") / "toy.h5"
    with EventStore.create(
        path,
        observables=["x0", "x1"],
        benchmarks=BENCHMARKS,
        morphing=morpher.to_dict(),
        parameters=space.to_dict(),
        extras={"z": (2,)},
        chunk_events=4096,
    ) as writer:
        for part in np.array_split(np.arange(N_EVENTS), 3):
            writer.append(events.x[part], events.weights[part], extras={"z": events.z[part]})
    with EventStore(path) as opened:
        yield opened


@pytest.fixture(scope="module")
def split():
    return split_events(N_EVENTS, (0.6, 0.2, 0.2), np.random.default_rng(41))


@pytest.fixture(scope="module")
def source(store, split) -> EventSource:
    return EventSource(store, events=split.train)


@pytest.fixture(scope="module")
def jq(morpher, events) -> JointQuantities:
    """Joint quantities with σ from the whole sample, as EventSource uses."""
    return JointQuantities(morpher, events.weights.sum(axis=0))


@pytest.fixture(scope="module", params=[BLOCK_SAMPLES, 300], ids=["one-block", "blocks-of-300"])
def ratio_set(source, request) -> TrainingSet:
    """2,000 pairs drawn in one block, or in 6 blocks of 300 and one of 200 (each with its own
    generator): every property below holds either way."""
    prior = GaussianPrior(mean=0.0, std=0.4, n_params=2)
    return ratio_training_set(
        source, prior, np.zeros(2), 2000, n_theta0=10, rng=np.random.default_rng(42), block_size=request.param
    )


def morphed(events, morpher, theta, rows) -> np.ndarray:
    return events.weights[rows] @ morpher.morphing_weights(theta)


# ---- the event source --------------------------------------------------------------------------
def test_event_source_reads_partition_and_metadata(source, events, morpher, split):
    np.testing.assert_array_equal(source.weights, events.weights[split.train])
    np.testing.assert_array_equal(source.events, split.train)
    # σ uses the whole file, not the partition
    np.testing.assert_allclose(source.joint.xsec_benchmarks, events.weights.sum(axis=0), rtol=1e-12)
    np.testing.assert_array_equal(source.morpher.benchmarks, morpher.benchmarks)
    np.testing.assert_array_equal(source.morpher.components, morpher.components)
    assert source.parameters == ("cA", "cB")
    local = np.array([4, 0, 4])
    np.testing.assert_array_equal(source.observables_at(local), events.x[split.train[local]])


def test_event_source_needs_morphing(tmp_path, events, morpher):
    path = tmp_path / "plain.h5"
    with EventStore.create(path, observables=["x0", "x1"], benchmarks=BENCHMARKS) as writer:
        writer.append(events.x[:50], events.weights[:50])
    with EventStore(path) as store:
        with pytest.raises(ValueError, match="no morphing metadata; pass morpher="):
            EventSource(store)
        src = EventSource(store, morpher=morpher)  # explicit morpher works, parameter names default
        assert src.parameters == ("theta_0", "theta_1") and len(src.events) == 50


def test_unweight_single_theta(source, events, morpher, split):
    theta = np.array([0.5, -0.3])
    sample = unweight(source, theta, 500, np.random.default_rng(43))
    assert sample.x.shape == (500, 2)
    assert np.isin(sample.event_index, split.train).all()
    np.testing.assert_array_equal(sample.x, events.x[sample.event_index])
    assert np.all(sample.sign == 1)
    w = morphed(events, morpher, theta, split.train)
    assert sample.effective_sample_size == pytest.approx(w.sum() / w.max(), rel=1e-10)


# ---- local score -------------------------------------------------------------------------------------
def test_local_score_set(source, events, morpher, jq, split, toy):
    theta_ref = np.array([0.3, 0.2])
    ts = local_score_training_set(source, theta_ref, 3000, rng=np.random.default_rng(44))
    assert ts.kind == "local_score" and len(ts) == 3000
    assert ts.t0.shape == (3000, 2) and ts.theta1 is None and ts.log_r is None
    assert np.isin(ts.event_index, split.train).all()
    np.testing.assert_array_equal(ts.x, events.x[ts.event_index])
    np.testing.assert_array_equal(ts.theta0, np.tile(theta_ref, (3000, 1)))
    np.testing.assert_array_equal(ts.sample_weight, np.ones(3000))
    # t0 is the joint score of exactly the drawn events
    expected = jq.score(events.weights[ts.event_index], theta_ref)
    np.testing.assert_allclose(ts.t0, expected, rtol=1e-12, atol=1e-12)
    # ... which is the toy's exact ∇ log dσ(z|θ) with the sample's ∇σ̂/σ̂ (see test_joint)
    z = events.z[ts.event_index]
    sigma_term = 2 * (toy.K @ np.r_[1.0, theta_ref])[1:] / toy.cross_section(theta_ref)
    sample_term = jq.cross_section_gradient(theta_ref) / jq.cross_section(theta_ref)
    exact = toy.joint_score(z, theta_ref) + sigma_term - sample_term
    np.testing.assert_allclose(ts.t0, exact, rtol=1e-9, atol=1e-9)
    # mean of t over the train partition's distribution: ∇σ_train/σ_train − ∇σ̂/σ̂, exactly
    train = JointQuantities(morpher, events.weights[split.train].sum(axis=0))
    expected = train.cross_section_gradient(theta_ref) / train.cross_section(
        theta_ref
    ) - jq.cross_section_gradient(theta_ref) / jq.cross_section(theta_ref)
    assert np.all(np.abs(ts.t0.mean(axis=0) - expected) < 5 * ts.t0.std(axis=0) / np.sqrt(len(ts)))


# ---- ratio sets --------------------------------------------------------------------------------------
def test_ratio_set_structure(ratio_set, events, split):
    ts = ratio_set
    n = 2000
    assert ts.kind == "ratio" and len(ts) == n
    assert ts.x.shape == (n, 2) and ts.theta0.shape == ts.theta1.shape == ts.t0.shape == ts.t1.shape == (n, 2)
    assert ts.y.shape == ts.log_r.shape == ts.sample_weight.shape == ts.event_index.shape == (n,)
    assert np.sum(ts.y == 0) == np.sum(ts.y == 1) == n // 2
    assert set(np.unique(ts.y)) == {0.0, 1.0}
    # 10 θ0 from the prior; with n/2 = 10 × 100 the y = 0 half holds each exactly 100 times
    values, counts = np.unique(ts.theta0[ts.y == 0], axis=0, return_counts=True)
    assert len(values) == 10 and np.all(counts == 100)
    assert len(np.unique(ts.theta0, axis=0)) == 10
    np.testing.assert_array_equal(ts.theta1, np.zeros((n, 2)))
    assert np.isin(ts.event_index, split.train).all()
    np.testing.assert_array_equal(ts.x, events.x[ts.event_index])
    np.testing.assert_array_equal(ts.sample_weight, np.ones(n))
    assert 0.2 < np.mean(ts.y[:100]) < 0.8  # shuffled, not y-sorted


def test_ratio_set_augmented_data_match_event_weights(ratio_set, events, jq):
    ts = ratio_set
    w = events.weights[ts.event_index]
    np.testing.assert_allclose(ts.log_r, jq.log_ratio(w, ts.theta0, ts.theta1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ts.t0, jq.score(w, ts.theta0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ts.t1, jq.score(w, ts.theta1), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(ts.r, np.exp(ts.log_r))


def test_ratio_set_draws_y0_from_theta0_and_y1_from_theta1(ratio_set, events, morpher, split):
    """E[r(x,z|θ0,θ1)] = 1 under θ1 (the identity ALICES relies on), and 1 + χ²(p0‖p1) under θ0.

    Draws come from the train partition, so the exact expectation of r is the sum over its events
    Σ_i p_i(θ_gen) r_i with p_i(θ) = w_i(θ)/Σ_train w(θ) and r_i from the whole-file σ̂.
    """
    ts = ratio_set
    w_all = events.weights @ morpher.morphing_weights(np.unique(ts.theta0, axis=0)).T  # (n_events, 10)
    w1_all = events.weights @ morpher.morphing_weights(ts.theta1[0])
    r_train = (w_all[split.train] / w_all.sum(axis=0)) / (w1_all[split.train] / w1_all.sum())[:, None]
    p0 = w_all[split.train] / w_all[split.train].sum(axis=0)
    p1 = w1_all[split.train] / w1_all[split.train].sum()
    exact = {1: p1 @ r_train, 0: np.sum(p0 * r_train, axis=0)}  # E[r | θ0_j] for each label, (10,)
    group = np.unique(ts.theta0, axis=0, return_inverse=True)[1].ravel()
    for label in (0, 1):
        sel = ts.y == label
        r = ts.r[sel]
        stderr = r.std() / np.sqrt(sel.sum())
        assert abs(r.mean() - exact[label][group[sel]].mean()) < 5 * stderr, label
    # under θ1 the mean ratio is 1 up to the partition's MC fluctuation (σ̂ is from the whole file)
    assert abs(ts.r[ts.y == 1].mean() - 1) < 0.1
    assert abs(exact[1].mean() - 1) < 0.02
    # under θ0 it is clearly above 1, so swapped labels would fail the first check
    assert exact[0].mean() > 1.2


def test_doubly_parameterized_set(source, events, jq):
    prior0 = UniformPrior(low=-0.8, high=0.8, n_params=2)
    prior1 = GaussianPrior(mean=0.0, std=0.3, n_params=2)
    ts = ratio_training_set(source, prior0, prior1, 1000, n_theta0=5, rng=np.random.default_rng(45))
    assert ts.kind == "doubly_parameterized"
    pairs = np.unique(np.hstack([ts.theta0, ts.theta1]), axis=0)
    assert len(pairs) == 5  # each θ0 keeps its own θ1
    assert len(np.unique(ts.theta1, axis=0)) == 5 and len(np.unique(ts.theta0, axis=0)) == 5
    assert np.sum(ts.y == 1) == 500
    w = events.weights[ts.event_index]
    np.testing.assert_allclose(ts.log_r, jq.log_ratio(w, ts.theta0, ts.theta1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ts.t1, jq.score(w, ts.theta1), rtol=1e-12, atol=1e-12)


def test_ratio_set_bad_thetas(source):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="theta0: prior has n_params=1, the morphing has 2"):
        ratio_training_set(source, GaussianPrior(0.0, 1.0), np.zeros(2), 10, n_theta0=2, rng=rng)
    with pytest.raises(ValueError, match="theta1: expected one point or 3 points paired with theta0, got 2"):
        ratio_training_set(source, np.zeros((3, 2)), np.zeros((2, 2)), 10, rng=rng)
    with pytest.raises(ValueError, match="theta0"):
        ratio_training_set(source, np.zeros((3, 4)), np.zeros(2), 10, rng=rng)


def test_partitions_give_disjoint_training_sets(store, split):
    val = EventSource(store, events=split.validation)
    train = EventSource(store, events=split.train)
    sets = [
        ratio_training_set(
            s,
            GaussianPrior(0.0, 0.4, n_params=2),
            np.zeros(2),
            2000,
            n_theta0=20,
            rng=np.random.default_rng(46),
        )
        for s in (train, val)
    ]
    assert np.isin(sets[0].event_index, split.train).all()
    assert np.isin(sets[1].event_index, split.validation).all()
    assert np.intersect1d(sets[0].event_index, sets[1].event_index).size == 0


# ---- plain sets ------------------------------------------------------------------------------------
@pytest.mark.parametrize("block_size", [BLOCK_SAMPLES, 1_000])
def test_plain_set_follows_p_x_given_theta(source, events, morpher, split, block_size):
    theta = np.array([[0.5, -0.3]])
    n = 10_000
    ts = plain_training_set(source, theta, n, rng=np.random.default_rng(47), block_size=block_size)
    assert ts.kind == "plain" and len(ts) == n and ts.y is None
    np.testing.assert_array_equal(ts.theta0, np.tile(theta, (n, 1)))
    np.testing.assert_array_equal(ts.sample_weight, np.ones(n))
    np.testing.assert_array_equal(ts.x, events.x[ts.event_index])
    # exact bin probabilities of the discrete distribution over the train partition
    w = morphed(events, morpher, theta[0], split.train)
    x_train = events.x[split.train]
    probs = np.histogram2d(x_train[:, 0], x_train[:, 1], bins=[EDGES, EDGES], weights=w)[0] / w.sum()
    observed = np.histogram2d(ts.x[:, 0], ts.x[:, 1], bins=[EDGES, EDGES])[0]
    assert chi2_pvalue(observed, n * probs) > P_MIN


def test_plain_set_with_prior(source):
    ts = plain_training_set(
        source, GaussianPrior(0.0, 0.5, n_params=2), 999, n_theta=100, rng=np.random.default_rng(48)
    )
    assert len(ts) == 999 and ts.theta0.shape == (999, 2)
    values, counts = np.unique(ts.theta0, axis=0, return_counts=True)
    # 100 θ × 10 draws, 999 kept at random: nearly all θ appear, none more than 10 times
    assert 95 <= len(values) <= 100 and counts.max() <= 10
    assert stats.kstest(values[:, 0], stats.norm(0, 0.5).cdf).pvalue > P_MIN


# ---- blocks -----------------------------------------------------------------------------------------
def test_a_set_in_blocks_starts_with_the_set_of_one_block(source):
    # block 0 draws with the set's generator itself, as a set of one block does; the later blocks with
    # generators spawned from it: the first 1,000 rows of a 2,500-row set are the 1,000-row set
    prior = GaussianPrior(mean=0.0, std=0.4, n_params=2)
    whole = ratio_training_set(source, prior, np.zeros(2), 2500, n_theta0=10, rng=np.random.default_rng(5),
                               block_size=1000)  # fmt: skip
    first = ratio_training_set(source, prior, np.zeros(2), 1000, n_theta0=10, rng=np.random.default_rng(5))
    for name in (*ARRAYS, "event_index"):
        np.testing.assert_array_equal(getattr(whole, name)[:1000], getattr(first, name), err_msg=name)
    assert not np.array_equal(whole.event_index[1000:2000], first.event_index)  # other draws after
    for rows in (slice(0, 1000), slice(1000, 2000), slice(2000, 2500)):  # each block is half y = 1
        assert whole.y[rows].mean() == 0.5


def test_parts_of_any_size_give_the_same_set(source):
    def sampler():
        return ratio_sampler(source, np.array([[0.3, 0.1], [-0.2, 0.4]]), np.zeros(2), 3_333,
                             rng=np.random.default_rng(8), block_size=500)  # fmt: skip

    assert sampler().block_sizes == [500] * 6 + [333]
    collected = sampler().collect()
    for n_blocks in (1, 3):
        parts = list(sampler().parts(n_blocks))
        assert [len(p) for p in parts] == [500] * 6 + [333]
        joined = TrainingSet.concatenate(parts)
        for name in (*ARRAYS, "event_index"):
            assert np.array_equal(getattr(joined, name), getattr(collected, name)), (n_blocks, name)
    assert np.sum(collected.y == 0) == 3_333 // 2
    once = sampler()
    once.collect()
    with pytest.raises(RuntimeError, match="the set was drawn already"):
        once.collect()


def test_bad_block_sizes_and_sizes_are_refused(source):
    with pytest.raises(ValueError, match="block_size: expected >= 2 samples, got 1"):
        ratio_sampler(source, np.zeros((1, 2)), np.zeros(2), 10, rng=np.random.default_rng(0), block_size=1)
    with pytest.raises(ValueError, match="n_samples: expected >= 1, got 0"):
        ratio_sampler(source, np.zeros((1, 2)), np.zeros(2), 0, rng=np.random.default_rng(0))


# ---- training set files -----------------------------------------------------------------------------
def test_the_writer_appends_parts_atomically_and_refuses_other_parts(tmp_path, ratio_set):
    meta = dict(observables=ratio_set.observables, parameters=ratio_set.parameters, kind="ratio")
    path = tmp_path / "parts.h5"
    with TrainingSetWriter(path, **meta) as out:
        for rows in (slice(0, 700), slice(700, 701), slice(701, 2000)):
            arrays = {k: getattr(ratio_set, k)[rows] for k in (*ARRAYS, "event_index")}
            out.append(TrainingSet(**meta, **arrays))
        assert not path.exists()  # a temporary file until the block ends
    again = TrainingSet.load(path)
    for name in (*ARRAYS, "event_index"):
        np.testing.assert_array_equal(getattr(again, name), getattr(ratio_set, name), err_msg=name)
    other = TrainingSet(x=ratio_set.x[:3], observables=ratio_set.observables, parameters=ratio_set.parameters,
                        kind="ratio")  # fmt: skip
    with pytest.raises(SamplingError, match=r"a part with fields \('x',\); the first had \('x', 'theta0'"):
        with TrainingSetWriter(tmp_path / "bad.h5", **meta) as out:
            out.append(ratio_set)
            out.append(other)
    with pytest.raises(SamplingError, match="a part of kind 'plain'"):
        with TrainingSetWriter(tmp_path / "bad.h5", **meta) as out:
            out.append(TrainingSet(x=ratio_set.x[:3], observables=ratio_set.observables,
                                   parameters=ratio_set.parameters, kind="plain"))  # fmt: skip
    with pytest.raises(SamplingError, match="no part was appended; nothing written"):
        with TrainingSetWriter(tmp_path / "bad.h5", **meta):
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["parts.h5"]  # no half-written file, no temporary


def test_training_set_round_trip(tmp_path, ratio_set):
    path = ratio_set.save(tmp_path / "ratio.h5")
    again = TrainingSet.load(path)
    assert (again.kind, again.observables, again.parameters) == ("ratio", ("x0", "x1"), ("cA", "cB"))
    for name in ("x", "theta0", "theta1", "y", "log_r", "t0", "t1", "sample_weight", "event_index"):
        np.testing.assert_array_equal(getattr(again, name), getattr(ratio_set, name), err_msg=name)
    assert again.fields_present() == ratio_set.fields_present()
    assert not list(tmp_path.glob("*.tmp"))  # atomic write left no temporary file


def test_round_trip_keeps_missing_fields_missing(tmp_path, source):
    ts = local_score_training_set(source, np.zeros(2), 50, rng=np.random.default_rng(49))
    again = TrainingSet.load(ts.save(tmp_path / "sally.h5"))
    assert again.log_r is None and again.theta1 is None and again.y is None
    np.testing.assert_array_equal(again.t0, ts.t0)
    with pytest.raises(AttributeError, match="no joint ratio"):
        _ = again.r


def test_validate_file_checks_every_row_chunk_by_chunk(tmp_path, ratio_set):
    path = ratio_set.save(tmp_path / "ratio.h5")
    info = validate_file(path, chunk_size=300)
    assert (info.kind, info.n_samples, info.fields) == ("ratio", 2000, ARRAYS)
    with h5py.File(path, "r+") as f:
        f["log_r"][1234] = np.nan
    message = r"ratio\.h5: in rows 1200-1500 \(row numbers from 1200\): log_r: NaN value in row 34"
    with pytest.raises(StoreError, match=message):
        validate_file(path, chunk_size=300)
    with h5py.File(path, "r+") as f:
        del f["t1"]
        f["t1"] = np.zeros((1999, 2))
    with pytest.raises(StoreError, match=r"arrays of different lengths .*'t1': 1999"):
        validate_file(path)
    with pytest.raises(StoreError, match="no such file"):
        validate_file(tmp_path / "missing.h5")


def test_load_event_store_file_raises(store):
    with pytest.raises(StoreError, match="not an assay training set"):
        TrainingSet.load(store.path)


def test_load_truncated_file_raises(tmp_path, ratio_set):
    path = ratio_set.save(tmp_path / "full.h5")
    data = path.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreError, match=r"cut\.h5"):
        TrainingSet.load(cut)


def test_load_other_files_raise(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    with pytest.raises(StoreError, match="cannot read training set"):
        TrainingSet.load(text)
    with pytest.raises(StoreError, match="cannot read training set"):
        TrainingSet.load(tmp_path / "missing.h5")
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.zeros((3, 2))
    with pytest.raises(StoreError, match="not an assay training set"):
        TrainingSet.load(foreign)


def test_load_newer_schema_or_missing_x_raises(tmp_path, ratio_set):
    newer = ratio_set.save(tmp_path / "newer.h5")
    with h5py.File(newer, "a") as f:
        f.attrs["schema_version"] = 99
    with pytest.raises(StoreError, match="schema_version 99 is newer than 1; upgrade assay"):
        TrainingSet.load(newer)
    no_x = ratio_set.save(tmp_path / "no_x.h5")
    with h5py.File(no_x, "a") as f:
        del f["x"]
    with pytest.raises(StoreError, match="missing dataset 'x'"):
        TrainingSet.load(no_x)
    short = ratio_set.save(tmp_path / "short.h5")
    with h5py.File(short, "a") as f:
        del f["log_r"]
        f["log_r"] = np.zeros(3)
    with pytest.raises(StoreError, match="log_r: expected 2000 rows like x, got 3"):
        TrainingSet.load(short)


def test_training_set_rejects_inconsistent_lengths():
    with pytest.raises(ValueError, match="log_r: expected 3 rows like x, got 2"):
        TrainingSet(
            x=np.zeros((3, 1)), observables=("a",), parameters=("p",), kind="ratio", log_r=np.zeros(2)
        )
    with pytest.raises(ValueError, match=r"x: expected shape \(n_samples, 2\)"):
        TrainingSet(x=np.zeros((3, 1)), observables=("a", "b"), parameters=("p",), kind="plain")


def test_morpher_from_store_round_trips(store, morpher):
    again = Morpher.from_dict(store.morphing)
    np.testing.assert_array_equal(
        again.morphing_weights(np.array([0.3, 0.1])), morpher.morphing_weights(np.array([0.3, 0.1]))
    )
