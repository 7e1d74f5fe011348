"""AsimovSample: one weighted partition, every method's expected scan (toy and WH parton level).

The WH test is issue 6's "at small θ the exact truth-level Asimov −2Δlog L of the WH model
agrees with the truth-level Fisher-information quadratic form".
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from functools import partial

import numpy as np
import pytest
from conftest import BASIS_2D, RSS_GROWTH

from assay.inference import Binning, rate_only_scan, score_fisher_information
from assay.inference.asimov import AsimovSample, interval_summary
from assay.inference.likelihood import PB_TO_FB, Scan, expected_events
from assay.morphing import Morpher, morphing_components
from assay.parameters import Parameter, ParameterSpace
from assay.simulators.toys import GaussianToy
from assay.store import EventStore

LUMI = 100.0  # fb⁻¹


def write_toy_store(path, n_events: int, seed: int = 7):
    """A 2-parameter toy store (observables x0, x1; six benchmarks of BASIS_2D) and its morpher."""
    toy = GaussianToy.default(n_params=2)
    ev = toy.simulate(n_events, np.zeros(2), BASIS_2D, np.random.default_rng(seed))
    morpher = Morpher(morphing_components(2, 2), BASIS_2D)
    names = [f"b{k}" for k in range(len(BASIS_2D))]
    space = ParameterSpace.from_dict(
        [Parameter("a", (-1, 1)), Parameter("b", (-1, 1))],
        {n: {"a": t[0], "b": t[1]} for n, t in zip(names, BASIS_2D)},
    )
    with EventStore.create(path, observables=["x0", "x1"], benchmarks=names, morphing=morpher.to_dict(),
                           parameters=space.to_dict()) as writer:  # fmt: skip
        writer.append(ev.x, ev.weights)
    return path, morpher


@pytest.fixture(scope="module")
def toy_files(tmp_path_factory):
    """A 2-parameter toy store of 20k events, its morpher, and a random third of its events."""
    path, morpher = write_toy_store(tmp_path_factory.mktemp("asimov") / "toy.h5", 20_000)
    return path, morpher, np.random.default_rng(8).permutation(20_000)[:6_000]


@pytest.fixture(scope="module")
def toy_sample(toy_files):
    """The Asimov sample: a random third of the toy store."""
    path, morpher, events = toy_files
    return AsimovSample.from_store(path, events, morpher, theta_true=np.zeros(2), luminosity=LUMI)


def test_partition_is_scaled_to_the_whole_yield(toy_sample):
    s = toy_sample
    sigma_true = float(s.joint.cross_section(s.theta_true))
    assert s.cross_section(s.theta_true[None])[0] == pytest.approx(sigma_true, rel=1e-12)
    assert s.scale == pytest.approx(20_000 / 6_000, rel=0.05)  # a third of the events, up to fluctuations
    templates = s.templates(Binning(("x0",), (np.linspace(-5, 5, 11),)))
    inside = np.abs(s.column("x0")) < 5
    expected = LUMI * PB_TO_FB * s.scale * s.weights[inside].sum()
    assert templates.expected(s.theta_true, LUMI).sum() == pytest.approx(expected, rel=1e-12)


def test_truth_scan_is_self_consistent(toy_sample):
    """With the partition's own σ(θ) the exact Asimov q is minimal at θ_true with zero gradient, and
    E_true[r(x|θ, θ_true)] = 1 exactly."""
    s = toy_sample
    theta = np.array([[0.0, 0.0], [1e-4, 0.0], [-1e-4, 0.0], [0.0, 1e-4], [0.0, -1e-4]])
    q = s.ratio_scan(theta, s.truth_log_ratio(theta)).minus_2_delta_log_l
    assert q[0] == 0.0 and np.all(q[1:] >= 0)
    # symmetric to second order: a linear term would make q(+h) − q(−h) = O(h), here O(h³)
    assert abs(q[1] - q[2]) < 1e-3 * q[1] and abs(q[3] - q[4]) < 1e-3 * q[3]
    grid = np.random.default_rng(0).normal(0, 0.5, (20, 2))
    np.testing.assert_allclose(s.expectation_check(s.truth_log_ratio(grid)), 1.0, rtol=1e-10)


def test_one_bin_histogram_is_the_rate_only_scan(toy_sample):
    s = toy_sample
    theta = np.column_stack([np.linspace(-1, 1, 21), np.zeros(21)])
    one_bin = s.templates(Binning(("x0",), (np.array([-np.inf, np.inf]),)))
    n_true = expected_events(s.cross_section(s.theta_true[None])[0], LUMI)
    rate = rate_only_scan(theta, s.cross_section, LUMI, n_observed=n_true)
    np.testing.assert_allclose(
        s.binned_scan(theta, one_bin).minus_2_delta_log_l, rate.minus_2_delta_log_l, rtol=1e-9, atol=1e-9
    )


# ---- streamed under memory_gb ------------------------------------------------------------------
def toy_log_ratio(sample: AsimovSample, shift: float = 1.0):
    """The toy's exact log r(x|θ, θ_true) of a chunk with θ scaled by ``shift`` (1.1: an estimator
    whose R̂(θ) ≠ 1), as :data:`~assay.inference.asimov.ChunkLogRatio`."""
    toy = GaussianToy.default(n_params=2)

    def log_ratio(x, _, theta):
        reference = toy.log_likelihood(x, shift * sample.theta_true)[:, None]
        return (toy.log_likelihood(x, shift * theta) - reference).T

    return log_ratio


def test_a_streamed_sample_scans_as_the_loaded_one(toy_files, toy_sample, caplog):
    # 6,000 events × (2 observables + 6 weights) × 8 B = 384 kB > half of 100 kB: in chunks of 1,024
    import logging

    from assay.inference.asimov import normalised

    path, morpher, events = toy_files
    loaded = toy_sample
    with caplog.at_level(logging.INFO, logger="assay.inference.asimov"):
        streamed = AsimovSample.from_store(path, events, morpher, theta_true=np.zeros(2), luminosity=LUMI,
                                           memory_gb=1e-4)  # fmt: skip
        assert streamed.streamed and not loaded.streamed and streamed.partition.chunk_size == 1024
        assert streamed.n_events == loaded.n_events == 6_000
        np.testing.assert_allclose(streamed.benchmark_sums, loaded.benchmark_sums, rtol=1e-15)
        assert streamed.scale == pytest.approx(loaded.scale, rel=1e-15)
        grid = np.random.default_rng(1).normal(0, 0.3, (50, 2))
        np.testing.assert_allclose(streamed.cross_section(grid), loaded.cross_section(grid), rtol=1e-15)
        theta = np.column_stack([np.linspace(-0.4, 0.4, 41), np.linspace(0.3, -0.3, 41)])
        for shift, normalise in ((1.0, False), (1.1, True)):
            log_ratio = toy_log_ratio(loaded, shift)
            values = partial(log_ratio, loaded.x, None)
            scan = loaded.ratio_scan(theta, normalised(loaded, values) if normalise else values)
            q = scan.minus_2_delta_log_l
            q_streamed = streamed.streamed_ratio_scan(theta, log_ratio, normalise=normalise, theta_chunk=7)
            assert q.max() > 10
            np.testing.assert_allclose(q_streamed.minus_2_delta_log_l, q, rtol=1e-10, atol=1e-10 * q.max())
        binning = Binning(("x1", "x0"), (np.linspace(-3, 3, 7), np.array([-np.inf, 0.0, np.inf])))
        np.testing.assert_allclose(streamed.streamed_templates(binning).benchmark_sums,
                                   loaded.templates(binning).benchmark_sums, rtol=1e-12)  # fmt: skip
        with pytest.raises(ValueError, match=r"observables \['z'\]: not in the sample"):
            streamed.streamed_templates(Binning(("z",), (np.linspace(-1, 1, 3),)))
        assert "reading all" not in caplog.text  # nothing above loaded x
        np.testing.assert_array_equal(streamed.x, loaded.x)  # on demand: read in full, and said so
    assert "reading all 6000 events" in caplog.text


ASIMOV_PEAK = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from assay.inference.asimov import AsimovSample
    from assay.inference.histograms import Binning
    from assay.morphing import Morpher
    from assay.simulators.toys import GaussianToy
    from assay.store import EventStore
    path, memory_gb = sys.argv[1], float(sys.argv[2])
    toy = GaussianToy.default(n_params=2)
    with EventStore(path) as store:
        morpher, n_events = Morpher.from_dict(store.morphing), store.n_events
    """
) + RSS_GROWTH + textwrap.dedent(
    """
    theta = np.column_stack([np.linspace(-0.3, 0.3, 32), np.zeros(32)])
    binning = Binning(("x0",), (np.linspace(-3, 3, 13),))
    def log_r(x, _, block):
        return (toy.log_likelihood(x, block) - toy.log_likelihood(x, np.zeros(2))[:, None]).T

    def scans(budget, rows):
        s = AsimovSample.from_store(path, rows, morpher, theta_true=np.zeros(2), luminosity=100.0,
                                    memory_gb=budget)
        q = s.streamed_ratio_scan(theta, log_r, normalise=True).minus_2_delta_log_l
        return s.streamed, q, s.streamed_templates(binning).benchmark_sums

    rows = np.arange(n_events)
    scans(1e-4, rows[:70_000])  # imports, HDF5 caches
    streamed, (was_streamed, q_streamed, sums_streamed) = growth(lambda: scans(memory_gb, rows))
    loaded, (was_loaded, q_loaded, sums_loaded) = growth(lambda: scans(None, rows))
    close = np.allclose(q_streamed, q_loaded, rtol=1e-10, atol=1e-10 * q_loaded.max())
    print(json.dumps({"streamed": streamed, "loaded": loaded, "was_streamed": was_streamed, "q_close": close,
                      "sums_close": bool(np.allclose(sums_streamed, sums_loaded, rtol=1e-12))}))
    """
)


def test_streamed_asimov_memory_is_bounded_by_the_budget(tmp_path):
    # 500,000 events × (2 observables + 6 weights) × 8 B = 32 MB of events, over half of memory_gb
    # 0.06: served in chunks of 5,514 events (their x, weights and a block of 32 θ of predictions:
    # 10% of the budget) for 32 θ; the whole scan (R̂, q, a histogram) grows the process by less than
    # the budget (measured 19 MB, much of it EventStore.take's reads of 8 MB blocks per dataset).
    # Loaded, x, the weights and a (32, 500k) block of log r̂ and its temporaries grow it by > 5
    # times that (measured 540 MB). Both give the same q and templates.
    path, _ = write_toy_store(tmp_path / "big.h5", 500_000, seed=2)
    out = subprocess.run([sys.executable, "-c", ASIMOV_PEAK, str(path), "0.06"], capture_output=True,
                         text=True, check=True, timeout=300)  # fmt: skip
    measured = json.loads(out.stdout.strip().splitlines()[-1])
    assert measured["was_streamed"] and measured["q_close"] and measured["sums_close"], measured
    assert measured["streamed"] < 0.06e9, measured
    assert measured["loaded"] > 5 * measured["streamed"], measured


def test_interval_summary_of_a_parabola():
    theta = np.linspace(-1, 1, 41)[:, None]
    scan = Scan(theta, (theta[:, 0] / 0.2) ** 2, np.zeros(1))  # σ = 0.2
    summary = interval_summary({"c": scan})
    assert list(summary) == ["c_68", "c_95"]
    np.testing.assert_allclose(summary["c_68"], [-0.2, 0.2], atol=1e-9)
    np.testing.assert_allclose(summary["c_95"], [-0.2 * 1.959964, 0.2 * 1.959964], atol=1e-6)


def test_interval_summary_reports_open_ends_as_none():
    """A σ = 0.1 parabola centred at 0.05, scanned over [−0.15, 0.14]: the upper ends (0.15 and
    0.246) lie outside the scan and are null, never the edge 0.14; the lower ends are exact."""
    theta = np.linspace(-0.15, 0.14, 30)[:, None]
    scan = Scan(theta, ((theta[:, 0] - 0.05) / 0.1) ** 2, np.array([0.05]))
    summary = interval_summary({"c": scan})
    assert summary["c_68"] == [pytest.approx(-0.05, abs=1e-9), None]
    assert summary["c_95"] == [pytest.approx(0.05 - 0.1959964, abs=1e-6), None]
    assert json.loads(json.dumps(summary))["c_68"][1] is None  # null in JSON


def test_wh_truth_asimov_matches_the_fisher_quadratic_form(tmp_path):
    """WH parton level (both parameters): q_truth(δ u) ≈ δ² uᵀ I u for small δ (issue 6).

    The difference is of third order in δ (the CP-even c_HW has a linear term in the rate, so q
    is not exactly quadratic): at q = 1 and 4 it is below 3% (measured ≤ 1.1% at q = 4).
    """
    pytest.importorskip("pythia8mc")  # PDFs
    from assay.observables import WH_OBSERVABLES, wh_observables
    from assay.simulators.wh import WHSimulator

    basis = np.array([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1], [1, 1.0]]) * 0.5
    sim = WHSimulator(basis, vegas_seed=3)
    ev = sim.simulate(20_000, np.random.default_rng(3))
    x = wh_observables(ev.lepton, ev.b, ev.bbar, ev.neutrino, ev.charge)
    morpher = Morpher(morphing_components(2, 2), basis)
    names = [f"b{k}" for k in range(len(basis))]
    space = ParameterSpace.from_dict(
        [Parameter("cHW", (-1, 1)), Parameter("cHWtilde", (-1, 1))],
        {n: {"cHW": t[0], "cHWtilde": t[1]} for n, t in zip(names, basis)},
    )
    with EventStore.create(tmp_path / "wh.h5", observables=list(WH_OBSERVABLES), benchmarks=names,
                           morphing=morpher.to_dict(), parameters=space.to_dict()) as writer:  # fmt: skip
        writer.append(x, ev.weights)
    s = AsimovSample.from_store(tmp_path / "wh.h5", np.arange(20_000), morpher, theta_true=np.zeros(2),
                                luminosity=300.0)  # fmt: skip
    sigma, grad = s.cross_section(np.zeros((1, 2)))[0], s.cross_section_gradient(np.zeros(2))
    t = s.truth_score()
    np.testing.assert_allclose(s.weights @ t, 0.0, atol=1e-9 * np.abs(s.weights @ np.abs(t)).max())
    info = score_fisher_information(t, s.weights * s.scale, 300.0, grad, cross_section=sigma)
    directions = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, -2.0]])
    directions /= np.sqrt(np.einsum("na,ab,nb->n", directions, info, directions))[:, None]  # uᵀ I u = 1
    for q_target in (1.0, 4.0):
        theta = np.vstack([np.zeros(2), directions * np.sqrt(q_target)])
        q = s.ratio_scan(theta, s.truth_log_ratio(theta)).minus_2_delta_log_l[1:]
        np.testing.assert_allclose(q, q_target, rtol=0.03)
