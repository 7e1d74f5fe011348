"""Observed data in the profiled methods (issue 14: "Asimov and observed"): a mixture model with
learned nuisance ratios computes every per-event term from x alone; methods whose g_jk come from the
simulator's per-event components are left out of an observed fit with a note."""

from __future__ import annotations

import numpy as np
import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The 5 % search with three nuisances, a 3-member mixture model with learned nuisance ratios
    (short training: these tests check the bookkeeping, not the model's accuracy) and the
    ensemble's training-statistics modes."""
    from assay.config import config_from_dict
    from assay.pipeline import run_pipeline
    from assay.search_demo import search_config, search_size
    from assay.training import train

    folder = tmp_path_factory.mktemp("observed") / "run"
    data = search_config(search_size(0.05), folder).model_dump(mode="json")
    data["systematics"] = {"training_statistics": "ensemble", "nuisances": [
        {"name": "gg_nlo_qcd"}, {"name": "gg_shower"}, {"name": "lumi", "normalisation": 0.02}]}  # fmt: skip
    tiny = {"nuisances": True, "max_events": 6000, "epochs": 5, "n_ensemble": 3}
    data["training"] = {"nsbi": data["training"]["nsbi"] | tiny}
    data["inference"]["histograms"] = data["inference"]["histograms"][:1]  # m4ℓ
    cfg = config_from_dict(data)
    run_pipeline(cfg, folder, progress=False)
    train(cfg, folder, progress=False)
    return cfg, folder


def _methods(cfg, folder):
    from assay.analysis.build import asimov_sample, build_methods, load_models
    from assay.analysis.profiled import profiled_methods
    from assay.rundir import RunDir

    run = RunDir(folder)
    sample = asimov_sample(cfg, run)
    models = load_models(cfg, run, ["nsbi"])
    return sample, profiled_methods(cfg, run, sample, models, build_methods(cfg, sample, models))


def test_terms_from_x_equal_the_reference_events_terms(trained):
    """Events of the Asimov sample given as observed x (no rows) get the same likelihood as the same
    events given as a toy's rows of the precomputed terms: r̂_j/E_ref[r̂_j], the learned g_jk and the
    ensemble modes e_l(x) = Σ_m Q_ml D_m(x) (a projection, not the SVD's vectors) all agree, to 1e-8."""
    from assay.analysis.methods import Dataset

    cfg, folder = trained
    sample, methods = _methods(cfg, folder)
    method = methods["nsbi_profiled"]
    assert method.accepts_observed and method.observed is not None
    names = method.terms.names
    assert names[:3] == ("gg_nlo_qcd", "gg_shower", "lumi") and names[3] == "training_statistics_1"
    rows = np.random.default_rng(5).choice(len(sample.x), 400, replace=False)
    as_toy = method.likelihood(Dataset.from_sample(sample).take(rows))
    as_data = method.likelihood(Dataset(sample.x[rows], None, False, "observed"))
    for mu, alpha in ((1.0, np.zeros(len(names))), (0.6, np.linspace(-0.8, 1.1, len(names)))):
        expected = float(as_toy.nll(np.array([mu]), alpha))
        assert float(as_data.nll(np.array([mu]), alpha)) == pytest.approx(expected, rel=1e-8, abs=1e-8)
    for name in ("truth_profiled", "nsbi_profiled_exact_g"):
        assert not methods[name].accepts_observed
        with pytest.raises(ValueError, match="observed data lack the simulator's per-event components"):
            methods[name].likelihood(Dataset(sample.x[rows], None, False, "observed"))


def test_assay_limits_on_observed_events_fits_the_methods_that_can(trained, tmp_path):
    """`run_limits(data=...)` on events drawn at μ = 1 (Poisson, as many as expected): the mixture
    model's and the histogram's profiled methods fit them (their 68% intervals lie inside the scan
    and contain their best fit), the exact-g methods are left out with a note naming why. (The
    bookkeeping only: this 5-epoch model's profiled fit of data drawn from the truth is biased,
    docs/systematics.md "Observed data".)"""
    from assay.analysis import run_limits
    from assay.analysis.build import asimov_sample
    from assay.config import config_from_dict
    from assay.rundir import RunDir
    from assay.store import EventStore

    cfg, folder = trained
    # 300 fb⁻¹ instead of 3000 and 31 scan points instead of 121: every evaluation of a profiled
    # likelihood sums over the observed events, and every point is a fit (this test checks which
    # methods fit observed data, not the intervals' size; 4.5 × faster)
    data = cfg.model_dump(mode="json")
    data["inference"]["luminosity_ifb"] = 300
    data["inference"]["scans"] = [{**s, "n_points": 31} for s in data["inference"]["scans"]]
    cfg = config_from_dict(data)
    sample = asimov_sample(cfg, RunDir(folder))
    rng = np.random.default_rng(11)
    p = np.clip(sample.weights, 0, None)
    n = int(rng.poisson(float(sample.weights.sum()) * sample.scale * sample.luminosity * 1000))
    rows = rng.choice(len(p), n, p=p / p.sum())
    path = tmp_path / "observed.h5"
    with EventStore.create(path, observables=list(sample.observables), benchmarks=["data"]) as writer:
        writer.append(sample.x[rows], np.ones((n, 1)))
    level = run_limits(cfg, folder, data=path, progress=False).levels["run"]
    assert level.n_events["observed"] == n
    for method in ("nsbi_profiled", "hist_m4l_profiled"):
        lo, hi = level.intervals[method]["mu_68"]
        assert lo is not None and hi is not None and lo <= level.best_fit[method]["mu"] <= hi, method
    for method in ("truth_profiled", "nsbi_profiled_exact_g"):
        assert method not in level.intervals
    notes = " ".join(level.warnings)
    assert "truth_profiled: left out" in notes and "per-event components" in notes


def test_mixture_profiled_with_exact_ratios_is_the_profiled_truth(trained):
    """Issue 14: with the exact densities (r_j = p_j/p_ref from the event weights) and the exact
    variation ratios, the mixture model's profiled likelihood (processes S, SBI, B, reference B) is
    the truth's (benchmark processes) in another basis: the same 68% interval on the Asimov data
    (within 1 % of the width; the issue asks 10 %), and the same −2Δlog L of a toy drawn from the
    truth at α = 0 (1e-6). With the nuisances profiled a toy's scans differ: the interpolation acts
    per process, so two process bases are two models away from α ∈ {0, ±1} (measured: q(3) = 19.9
    in the S/SBI/B basis against 7.4 in the benchmark basis for this toy; docs/systematics.md)."""
    from dataclasses import replace

    from assay.analysis.build import load_models
    from assay.analysis.methods import Dataset
    from assay.analysis.profiled import _in_events, _processes, _reference, varied_weights
    from assay.analysis.systematics import process_terms
    from assay.estimators.mixture_processes import process_matrix
    from assay.inference.asymptotic import limits_1d
    from assay.rundir import RunDir

    cfg, folder = trained
    sample, methods = _methods(cfg, folder)
    model = load_models(cfg, RunDir(folder), ["nsbi"])["nsbi"]
    weights = varied_weights(cfg, RunDir(folder), sample)
    _, matrix = process_matrix(model.processes, model.benchmarks_)
    nominal = weights.nominal @ matrix.T
    reference = _reference(model, nominal)
    exact_r = (nominal / nominal.sum(axis=0)).T / (reference / reference.sum())
    terms = process_terms(nominal, _processes(weights.varied, matrix), weights.names,
                          to_events=_in_events(sample), reference=reference, ratios=exact_r)  # fmt: skip
    mixture = replace(methods["nsbi_profiled_exact_g"], terms=terms, model_asimov=False, spurious=None,
                      calibration=None, weights=methods["truth_profiled"].weights)  # fmt: skip
    truth = methods["truth_profiled"]
    values = np.linspace(0.0, 3.0, 31)[:, None]
    data = Dataset.from_sample(sample)
    scans = [m.scan(data, sample, values, (0,)) for m in (mixture, truth)]
    spans = [limits_1d(scan, (0.6827,)).bounds(0.6827) for scan in scans]
    width = spans[1][1] - spans[1][0]
    np.testing.assert_allclose(spans[0], spans[1], atol=0.01 * width)
    rng = np.random.default_rng(3)
    p = np.clip(sample.weights, 0, None)
    toy = data.take(rng.choice(len(p), 20_000, p=p / p.sum()))
    fixed = dict.fromkeys(terms.names, 0.0)
    scans = [m.likelihood(toy).scan(values[:, 0], fixed_alpha=fixed) for m in (mixture, truth)]
    q = [scan.minus_2_delta_log_l for scan in scans]
    np.testing.assert_allclose(q[0], q[1], rtol=1e-6, atol=1e-6)  # the toy's −2Δlog L at α = 0


def test_rate_calibration_removes_the_score_bias_on_data_from_the_truth(trained):
    """On data following the truth (the events with their exact weights at μ = 1), an estimated
    likelihood's score at (μ, α) = (1, 0) is off by W E_true[∂ ln p̂/∂μ]; the rate calibration
    + 2 W ln R̂(μ) removes exactly that term (R̂'(1) = E_true[∂ ln p̂/∂μ]), so the Newton step
    −g/H of μ̂ (nuisances held at 0) becomes < 0.05 σ (the spline of ln R̂ on 61 points; measured
    3·10⁻⁶ σ) while the uncalibrated one of this 5-epoch model is over 0.3 σ (measured 24 σ). The
    toys and observed data of nsbi_profiled get the calibration; its model Asimov data (its own
    prediction) do not."""
    from dataclasses import replace

    from assay.analysis.methods import Dataset
    from assay.inference.profile_likelihood import ProfileLikelihood

    cfg, folder = trained
    sample, methods = _methods(cfg, folder)
    method = methods["nsbi_profiled"]
    assert method.calibration is not None
    values = np.zeros(1 + method.terms.n_syst)
    values[0] = 1.0
    shifts = {}
    for label, calibration in (("calibrated", method.calibration), ("plain", None)):
        likelihood = ProfileLikelihood(method.terms, method.weights, method.coefficients,
                                       **method.options, calibration=calibration)  # fmt: skip
        _, gradient = likelihood.value_and_gradient(values)
        curvature = likelihood.hessian(values)[0, 0]  # of −2 ln L in μ, nuisances held at 0
        shifts[label] = abs(gradient[0] / curvature) / np.sqrt(2 / curvature)  # Newton step / σ_μ
    assert shifts["calibrated"] < 0.05 and shifts["plain"] > 0.3, shifts
    toy = Dataset.from_sample(sample).take(np.arange(50))
    assert method.likelihood(toy).calibration is method.calibration
    assert method.likelihood(Dataset.from_sample(sample)).calibration is None
    assert replace(method, calibration=None).likelihood(toy).calibration is None
