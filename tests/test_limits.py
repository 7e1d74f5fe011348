"""assay.analysis as a library: :func:`run_limits` and :func:`expected_limits` on one tiny run.

The run is the 2-parameter Gaussian toy (6,000 events, 1,200 of them in the test partition) with
two named models, ALICES and a Boosted Information Tree. At L = 0.02 fb⁻¹ the Asimov data hold
L σ(SM) ≈ 126 events, so the 68% intervals on cHW are about ±0.06 wide.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from assay.analysis import expected_limits, run_limits
from assay.analysis.expected import ImplausibleLuminosityWarning
from assay.config import config_from_dict
from assay.estimators import load_estimator
from assay.inference.asymptotic import theta_grid
from assay.inference.histograms import Binning
from assay.pipeline import run_pipeline
from assay.simulators.toys import GaussianToy
from assay.store import EventStore
from assay.training import train

torch.set_num_threads(1)  # 2 shared cores: torch's default thread pool collapses under contention

MODEL = {"hidden": [16], "epochs": 2, "batch_size": 128, "threads": 1}
EDGES = [float("-inf"), -1.0, 0.0, 1.0, float("inf")]
SCAN = {"parameter": "cHW", "range": [-0.8, 0.8], "n_points": 41}
LUMINOSITY = 0.02  # fb⁻¹
CONFIG = {
    "seed": 4,
    "parameters": [{"name": "cHW", "range": [-1.0, 1.0]}, {"name": "cHWtilde", "range": [-1.0, 1.0]}],
    "morphing": {"max_power": 2, "n_basis_trials": 5},
    "simulator": {"kind": "gaussian_toy", "n_events": 6_000, "batch_size": 3_000},
    "sampling": {
        "sets": [
            {
                "name": "alices",
                "kind": "ratio",
                "theta0": {"kind": "gaussian", "std": 0.4},
                "n_samples": 2_000,
                "n_theta0": 100,
            }
        ]
    },
    "training": {"alices": {"method": "alices", **MODEL}, "trees": {"method": "bit", "n_trees": 10}},
    "inference": {
        "luminosity_ifb": LUMINOSITY,
        "scans": [SCAN],
        "histograms": [{"observables": ["x0"], "edges": [EDGES]}],
    },
}
METHODS = ["truth", "alices", "trees", "hist_x0", "rate"]


def config(**inference):
    """The run's config with ``inference`` settings replaced."""
    data = json.loads(json.dumps(CONFIG))
    data["inference"].update(inference)
    return config_from_dict(data)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """``assay run`` and ``assay train`` once, through the library; returns the run folder."""
    out = tmp_path_factory.mktemp("limits") / "run"
    cfg = config()
    run_pipeline(cfg, out, progress=False)
    train(cfg, out, progress=False)
    return out


@pytest.fixture(scope="module")
def asimov(run):
    """``run_limits`` on the Asimov data of the configured scan (well inside every 95% interval)."""
    return run_limits(config(), run, progress=False).levels["run"]


def test_every_method_has_closed_intervals_on_asimov_data(asimov):
    assert list(asimov.intervals) == METHODS and asimov.data == "asimov" and asimov.warnings == ()
    assert asimov.n_events["test_events"] == 1_200
    for method in METHODS:
        (lo68, hi68), (lo95, hi95) = asimov.intervals[method]["cHW_68"], asimov.intervals[method]["cHW_95"]
        assert -0.8 < lo95 < lo68 < 0.0 < hi68 < hi95 < 0.8, (method, asimov.intervals[method])


# ---- (a) run_limits and expected_limits agree --------------------------------------------------
def test_expected_limits_gives_the_intervals_of_run_limits(run, asimov):
    """Same events (the whole test partition: 1,200 < inference.events.max_events), same θ points,
    same luminosity, same default confidence levels (one σ, χ²₁(1) = 0.682689…, and 95%): the
    one-call API reproduces ``assay limits`` for a model given by name,
    a loaded estimator, a histogram and the rate (float rounding only)."""
    grid = np.zeros((SCAN["n_points"], 2))
    grid[:, 0] = np.linspace(*SCAN["range"], SCAN["n_points"])
    trees = load_estimator(run / "models" / "trees")
    methods = {"alices": "alices", "trees": trees, "hist_x0": Binning(("x0",), (EDGES,)), "rate": "rate"}
    for name, method in methods.items():
        result = expected_limits(run, method, grid, LUMINOSITY, max_events=None)
        assert result.dof == 1 and result.p_values.shape == (SCAN["n_points"],)
        assert result.n_expected == pytest.approx(LUMINOSITY * 1000 * 2 * np.pi)  # σ(SM) = 2π pb
        for tag in ("68", "95"):
            np.testing.assert_allclose(
                result.intervals[f"cHW_{tag}"],  # named like the store's parameters
                asimov.intervals[name][f"cHW_{tag}"],
                rtol=1e-6,
                err_msg=name,
            )


# ---- (b) observed data ---------------------------------------------------------------------
def test_observed_data_recover_the_injected_theta(run, tmp_path):
    """Events drawn at θ = (0.3, 0), as many as L σ(θ) expects at L = 0.2 fb⁻¹: the exact
    likelihood's best fit lies within one 68%-interval width of 0.3, and so does every model's."""
    injected, luminosity = np.array([0.3, 0.0]), 0.2
    toy = GaussianToy.default(2, 2)
    n_events = round(float(toy.cross_section(injected)) * luminosity * 1000)
    events = toy.simulate(n_events, injected, np.zeros((1, 2)), np.random.default_rng(17))
    data = tmp_path / "observed.h5"
    with EventStore.create(data, observables=["x0", "x1"], benchmarks=["sm"]) as writer:
        writer.append(events.x, events.weights)

    cfg = config(luminosity_ifb=luminosity, scans=[{**SCAN, "range": [-0.2, 0.8]}])
    level = run_limits(cfg, run, data=data, progress=False).levels["run"]
    assert level.data == f"observed: {data}" and level.n_events["observed"] == n_events
    lo, hi = level.intervals["truth"]["cHW_68"]
    assert abs(level.best_fit["truth"]["cHW"] - 0.3) < hi - lo, (level.best_fit["truth"], lo, hi)
    assert lo < level.best_fit["truth"]["cHW"] < hi and lo > 0.0  # SM excluded at 68% CL
    for method in METHODS:
        lo, hi = level.intervals[method]["cHW_68"]
        assert abs(level.best_fit[method]["cHW"] - 0.3) < hi - lo, (method, level.best_fit[method], lo, hi)


# ---- (c) intervals beyond the configured scan ----------------------------------------------
NARROW = {"parameter": "cHW", "range": [-0.02, 0.02], "n_points": 41}


def test_an_interval_reaching_the_scan_edge_is_found_by_extending_it(run, asimov):
    """The 95% intervals (±0.12) are six times as wide as the scan (±0.02): four doublings reach
    them; the interval is closed, wider than the configured range and close to the one of a wide
    scan (the extended scan has 41 points over ±0.32, coarser than the wide scan's)."""
    results = run_limits(config(scans=[NARROW], max_extensions=5), run, models=[], progress=False)
    level = results.levels["run"]
    assert list(level.intervals) == ["truth", "hist_x0", "rate"] and level.warnings == ()
    for method, intervals in level.intervals.items():
        lo, hi = intervals["cHW_95"]
        assert lo is not None and hi is not None and lo < -0.02 and hi > 0.02
        np.testing.assert_allclose((lo, hi), asimov.intervals[method]["cHW_95"], atol=0.01, err_msg=method)
    np.testing.assert_allclose(results.levels["run"].scans_1d["cHW"].theta, np.linspace(-0.02, 0.02, 41))


def test_without_extensions_an_open_end_is_none_with_a_warning(run):
    level = run_limits(config(scans=[NARROW], max_extensions=0), run, models=[], progress=False).levels["run"]
    for method, intervals in level.intervals.items():
        assert intervals["cHW_95"] == (None, None), method
        assert any(w.startswith(f"{method}:") and "cHW" in w for w in level.warnings), level.warnings
    summary = json.loads((run / "limits" / "summary.json").read_text())
    assert summary["run"]["truth"]["cHW_95"] == [None, None] and summary["warnings"] == list(level.warnings)


# ---- (d) coverage in pseudo-experiments ----------------------------------------------------------
def test_toys_fill_the_coverage_of_every_method(run):
    level = run_limits(config(), run, toys=30, progress=False).levels["run"]
    coverage = level.coverage
    assert coverage is not None and coverage.n_toys == 30 and list(coverage.coverage) == METHODS
    np.testing.assert_array_equal(coverage.theta_true, [0.0, 0.0])
    for method, fractions in coverage.coverage.items():
        assert set(fractions) == {"cHW_68", "cHW_95"}
        assert all(0.0 <= f <= 1.0 and f * 30 == pytest.approx(round(f * 30)) for f in fractions.values())
        assert fractions["cHW_68"] <= fractions["cHW_95"], method
    # the exact likelihood covers about as stated: 68% ± 3 binomial errors (0.085) of 30 toys
    assert 0.68 - 0.26 < coverage.coverage["truth"]["cHW_68"] <= 1.0


def test_toys_at_another_point(run):
    level = run_limits(config(), run, models=[], toys=5, theta_toys={"cHW": 0.1}, progress=False).levels[
        "run"
    ]
    np.testing.assert_array_equal(level.coverage.theta_true, [0.1, 0.0])


# ---- (e) expected_limits: degrees of freedom and the luminosity check -----------------------------
def test_dof_follows_the_varying_grid_columns(run):
    grid = theta_grid([(-0.3, 0.3), (-0.3, 0.3)], 7)
    result = expected_limits(run, "trees", grid, LUMINOSITY)
    assert result.dof == 2 and result.intervals == {} and result.p_values.shape == (49,)
    assert np.all((result.p_values >= 0) & (result.p_values <= 1))
    assert expected_limits(run, "trees", grid, LUMINOSITY, dof=1).dof == 1
    line = np.stack([np.linspace(-0.3, 0.3, 13), np.full(13, 0.2)], axis=1)  # cHWtilde fixed at 0.2
    result = expected_limits(run, "rate", line, LUMINOSITY)
    assert result.dof == 1 and set(result.intervals) == {"cHW_68", "cHW_95"}


def test_implausible_luminosity_warns(run):
    grid = np.linspace(-0.1, 0.1, 11)[:, None] * [1.0, 0.0]
    with pytest.warns(ImplausibleLuminosityWarning, match="fb\\^-1"):
        result = expected_limits(run, "rate", grid, 3e4)  # pb⁻¹ passed as fb⁻¹: 1.9e8 events
    assert result.n_expected > 1e8
    with warnings.catch_warnings():
        warnings.simplefilter("error", ImplausibleLuminosityWarning)
        expected_limits(run, "rate", grid, 300.0)  # the HL-LHC's luminosity: no warning


# ---- coverage through `assay limits --toys` (slow) ------------------------------------------------
@pytest.mark.slow
def test_toy_coverage_of_the_exact_likelihood_through_run_limits(tmp_path):
    """examples/toy.yaml (no models: truth, a histogram, the rate) with 2,000 pseudo-experiments
    drawn from the 40k Asimov events at the SM: the exact likelihood's 68% intervals cover θ_true
    in 68.3% ± 3% of the toys and the 95% intervals in 95% ± 2%. The binomial SE is 1.0% (68%)
    and 0.5% (95%), so the bounds are 3σ and 4σ; with 500 toys (SE 2.1%) a ±3% bound would fail
    by chance for one key in three (tests/test_pseudo_experiments.py has the 500-toy version).
    Measured: 68% 0.687 / 0.682, 95% 0.957 / 0.949 (θ_0 / θ_1)."""
    from assay.demo import example_config

    data = example_config("toy") | {"output": str(tmp_path / "run"), "training": {}}
    data["sampling"]["sets"] = []
    cfg = config_from_dict(data)
    run_pipeline(cfg, progress=False)
    results = run_limits(cfg, toys=2000, progress=False)
    coverage = results.levels["run"].coverage
    assert coverage.n_toys == 2000
    for parameter in ("theta_0", "theta_1"):
        assert abs(coverage.coverage["truth"][f"{parameter}_68"] - 0.6827) < 0.03, coverage.coverage
        assert abs(coverage.coverage["truth"][f"{parameter}_95"] - 0.95) < 0.02, coverage.coverage


# ---- observed WH data from LHE -------------------------------------------------------------------
def test_lhe_data_at_parton_level(tmp_path):
    """`--data FILE.lhe.gz` on the WH parton config: the observables are computed from the LHE
    final state; the truth, which needs the events' benchmark weights, is left out with a warning;
    the other methods fit the 300 observed events."""
    pytest.importorskip("pythia8mc")  # the PDFs come from Pythia
    from assay.demo import example_config
    from assay.io.lhe import write_lhe
    from assay.io.wh_lhe import wh_to_lhe
    from assay.simulators.wh import WHSimulator

    data = example_config("wh_parton") | {"output": str(tmp_path / "run"), "training": {}}
    data["simulator"] |= {"n_events": 4_000, "batch_size": 2_000}
    data["sampling"]["sets"] = []
    data["inference"] |= {"grids": [], "luminosity_ifb": 3.0}
    data["inference"]["scans"] = [{**s, "n_points": 21} for s in data["inference"]["scans"]]
    cfg = config_from_dict(data)
    run_pipeline(cfg, progress=False)
    events = WHSimulator(np.zeros((1, 2))).simulate(300, np.random.default_rng(8))
    lhe, init = wh_to_lhe(events)
    path = write_lhe(tmp_path / "data.lhe.gz", lhe, init)
    level = run_limits(cfg, data=path, progress=False).levels["run"]
    assert level.data == f"observed: {path}" and level.n_events["observed"] == 300
    assert "truth" not in level.intervals
    assert any(w.startswith("truth: left out") for w in level.warnings), level.warnings
    assert {"rate", "hist_mt_tot", "hist_ql_cos_delta_plus"} <= set(level.intervals)
    lo, hi = level.intervals["rate"]["cHW_95"]
    assert lo is None or hi is None or lo < hi


def test_an_estimator_with_extreme_ratios_is_flagged(run):
    """An estimated log r̂ that reaches |log r̂| ≫ the exact one on a few Asimov events (the failure of
    the NDE at WH: such events decide the scan) gets a warning naming the method and the events."""
    from assay.analysis.build import asimov_sample, build_methods
    from assay.analysis.limits import _extreme_ratios
    from assay.analysis.methods import RatioMethod
    from assay.analysis.scans import one_d_scans
    from assay.rundir import RunDir

    cfg = config()
    sample = asimov_sample(cfg, RunDir(run))
    methods = build_methods(cfg, sample, {})  # truth, the histogram, the rate
    scans = one_d_scans(cfg, sample.theta_true)
    assert _extreme_ratios(methods, sample, scans) == []  # the exact ratio is not flagged

    def spiky(data, theta):
        exact = methods["truth"].log_ratio(data, theta)
        exact[:, :3] += 1e3 * theta[:, :1]  # three events with r̂ = e^±1000 θ
        return exact

    methods["spiky"] = RatioMethod("spiky", spiky)
    (warning,) = _extreme_ratios(methods, sample, scans)
    assert warning.startswith("spiky: |log r̂| reaches") and "on 3 of" in warning, warning
