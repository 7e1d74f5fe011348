"""Histogram baselines: exact morphing of bin expectations, binned scans, and the pyhf export.

References: the Gaussian toy's weights at any θ by direct reweighting,
w(z|θ) = w(z|θ_gen) dσ(z|θ)/dσ(z|θ_gen) (seed 000 "LO reweighting"), independent of morphing;
and pyhf 0.7.6's own ``model.logpdf`` on the exported workspace.
"""

from __future__ import annotations

import numpy as np
import pytest

from assay.inference import (
    BinnedTemplates,
    Binning,
    binned_log_likelihood,
    binned_scan,
    fill_templates,
    pyhf_parameters,
    pyhf_scan,
    pyhf_workspace,
    score_binning,
    templates_from_store,
    theta_grid,
    to_pyhf_spec,
)
from assay.simulators.wh_analysis import SEED_BINNINGS
from assay.store import EventStore

LUMI = 0.3  # fb⁻¹; σ(SM) of the toy is 2π pb → ~1900 events
BIN_1D = Binning(("x0",), (np.linspace(-3.0, 3.0, 13),))
BIN_2D = Binning(("x0", "x1"), (np.array([-np.inf, -1.0, 0.0, 1.0, np.inf]), np.linspace(-2.5, 2.5, 6)))


def direct_weights(toy, events, theta: np.ndarray) -> np.ndarray:
    """w(z|θ) by reweighting the SM weights with the exact dσ ratio (no morphing)."""
    ratio = toy.dsigma(events.z, theta)[:, 0] / toy.dsigma(events.z, np.zeros(2))[:, 0]
    return events.weights[:, 0] * ratio


def test_seed_binnings():
    assert SEED_BINNINGS["ql_cos_delta_plus"].n_bins == 25
    np.testing.assert_array_equal(SEED_BINNINGS["mt_tot"].edges[0], [0, 400, 800, np.inf])
    np.testing.assert_array_equal(SEED_BINNINGS["pt_w"].edges[0], [0, 75, 150, 250, 400, 600, np.inf])
    assert SEED_BINNINGS["ql_cos_delta_plus x mt_tot"].shape == (25, 3)


def test_bin_index_matches_histogramdd():
    values = np.random.default_rng(1).normal(0, 1.5, size=(5000, 2))
    index = BIN_2D.bin_index(values)
    counts = np.bincount(index[index >= 0], minlength=BIN_2D.n_bins)
    reference, _ = np.histogramdd(values, bins=[np.clip(e, -1e300, 1e300) for e in BIN_2D.edges])
    np.testing.assert_array_equal(counts, reference.ravel())  # C order: last observable fastest
    special = np.array([[np.nan, 0.0], [-1.0, 2.5], [np.inf, 0.0], [0.0, 2.6], [-2.0, -2.5]])
    # NaN and beyond a finite edge: out; the last finite edge closes the last bin; ±inf in open bins
    assert BIN_2D.bin_index(special).tolist() == [-1, 1 * 5 + 4, 3 * 5 + 2, -1, 0]


@pytest.mark.parametrize("binning", [BIN_1D, BIN_2D], ids=["1d", "2d"])
def test_morphed_bin_expectations_equal_direct_weighting(toy, events, morpher, binning):
    templates = fill_templates(events.x[:, : len(binning.edges)], events.weights, binning, morpher)
    index = binning.bin_index(events.x[:, : len(binning.edges)])
    for theta in np.random.default_rng(3).uniform(-1.5, 1.5, size=(5, 2)):
        w = direct_weights(toy, events, theta)
        direct = np.bincount(index[index >= 0], w[index >= 0], minlength=binning.n_bins) * LUMI * 1000
        np.testing.assert_allclose(
            templates.expected(theta, LUMI), direct, rtol=1e-10, atol=1e-10 * direct.max()
        )
    many = templates.expected(np.zeros((3, 2)), LUMI)
    assert many.shape == (3, binning.n_bins)


def test_templates_from_store_equal_in_memory(tmp_path, events, morpher):
    path = tmp_path / "toy.h5"
    names = [f"b{k}" for k in range(morpher.n_benchmarks)]
    with EventStore.create(path, observables=["x0", "x1"], benchmarks=names) as writer:
        writer.append(events.x, events.weights)
    with EventStore(path) as store:
        streamed = templates_from_store(store, BIN_2D, morpher, chunk_size=3000)
        with pytest.raises(ValueError, match="not in the store"):
            templates_from_store(store, SEED_BINNINGS["pt_w"], morpher)
    direct = fill_templates(events.x, events.weights, BIN_2D, morpher)
    np.testing.assert_allclose(streamed.benchmark_sums, direct.benchmark_sums, rtol=1e-12)


def test_score_binning_quantiles(events):
    t = events.x[:, 0] + 0.3 * events.x[:, 1]
    w = np.random.default_rng(2).uniform(0.5, 1.5, len(t))
    binning = score_binning(t, w, n_bins=25)
    assert binning.n_bins == 25 and binning.edges[0][0] == -np.inf and binning.edges[0][-1] == np.inf
    fractions = np.bincount(binning.bin_index(t[:, None]), w, minlength=25) / w.sum()
    np.testing.assert_allclose(fractions, 1 / 25, atol=2e-3)  # equally populated up to one event
    # balanced: each bin holds 1/25 of w (1 + t²/⟨t²⟩): half events, half Fisher information
    balanced = score_binning(t, w, n_bins=25, balance="information")
    mixed = w * (1 + t**2 / np.average(t**2, weights=w))
    fractions = np.bincount(balanced.bin_index(t[:, None]), mixed, minlength=25) / mixed.sum()
    np.testing.assert_allclose(fractions, 1 / 25, atol=2e-3)
    with pytest.raises(ValueError, match="balance"):
        score_binning(t, w, balance="fisher")


def test_binned_scan_asimov(events, morpher):
    templates = fill_templates(events.x[:, :1], events.weights, BIN_1D, morpher)
    theta_true = np.array([0.2, -0.1])
    data = templates.expected(theta_true, LUMI)
    theta = np.vstack([theta_true, theta_grid([(-1, 1), (-1, 1)], 9)])
    scan = binned_scan(templates, theta, LUMI, data)
    assert scan.minus_2_delta_log_l[0] == 0 and np.all(scan.minus_2_delta_log_l[1:] > 0)
    np.testing.assert_array_equal(scan.mle, theta_true)
    nu = templates.expected(theta, LUMI)  # −2Δ log L = 2 Σ_b [ν − n − n log(ν/n)] for Asimov data
    reference = 2 * np.sum(nu - data - data * np.log(nu / data), axis=1)
    np.testing.assert_allclose(scan.minus_2_delta_log_l, reference, rtol=1e-9, atol=1e-9)


def test_binned_log_likelihood_edge_cases():
    nu = np.array([[1.0, 0.0], [1.0, -0.5], [2.0, 1.0]])
    out = binned_log_likelihood(np.array([3.0, 0.0]), nu)
    assert out[0] == pytest.approx(-1 - np.log(6)) and out[1] == -np.inf
    assert binned_log_likelihood(np.array([3.0, 1.0]), nu)[0] == -np.inf  # ν = 0 < n


@pytest.fixture(scope="module")
def asimov_analysis(events, morpher):
    templates = fill_templates(events.x, events.weights, BIN_2D, morpher)
    return templates, templates.expected(np.array([0.1, 0.05]), LUMI)


@pytest.mark.filterwarnings("ignore:jsonschema.RefResolver is deprecated:DeprecationWarning")
def test_pyhf_workspace_reproduces_expectations(asimov_analysis, morpher):
    templates, data = asimov_analysis
    spec = to_pyhf_spec(templates, LUMI, data)
    workspace = pyhf_workspace(spec)  # JSON-schema validation
    model = workspace.model()
    assert model.config.npars == morpher.n_benchmarks
    for theta in np.random.default_rng(4).uniform(-1, 1, size=(4, 2)):
        pars = pyhf_parameters(model, morpher, theta)[0]
        np.testing.assert_allclose(
            model.expected_actualdata(pars), templates.expected(theta, LUMI), rtol=1e-10
        )


def test_pyhf_and_assay_give_the_same_scan(asimov_analysis, morpher):
    templates, data = asimov_analysis
    theta = np.vstack([[0.1, 0.05], np.random.default_rng(5).uniform(-1, 1, size=(8, 2))])
    ours = binned_scan(templates, theta, LUMI, data)
    theirs = pyhf_scan(to_pyhf_spec(templates, LUMI, data), morpher, theta)
    assert ours.minus_2_delta_log_l[1:].min() > 1  # non-trivial values
    np.testing.assert_allclose(theirs.minus_2_delta_log_l, ours.minus_2_delta_log_l, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(theirs.mle, ours.mle)


def test_pyhf_observed_integer_data(asimov_analysis, morpher):
    templates, data = asimov_analysis
    observed = np.random.default_rng(6).poisson(data).astype(float)
    theta = theta_grid([(-0.6, 0.6), (-0.6, 0.6)], 5)
    ours = binned_scan(templates, theta, LUMI, observed)
    theirs = pyhf_scan(to_pyhf_spec(templates, LUMI, observed), morpher, theta)
    np.testing.assert_allclose(theirs.minus_2_delta_log_l, ours.minus_2_delta_log_l, rtol=1e-6, atol=1e-9)


def test_invalid_pyhf_spec_is_reported(asimov_analysis):
    templates, data = asimov_analysis
    spec = to_pyhf_spec(templates, LUMI, data)
    spec["channels"][0]["samples"][0]["modifiers"][0]["type"] = "quadratic"
    with pytest.raises(ValueError, match="not a valid pyhf workspace"):
        pyhf_workspace(spec)


def test_bad_template_inputs(morpher):
    with pytest.raises(ValueError, match="benchmark_sums"):
        BinnedTemplates(BIN_1D, np.ones((3, morpher.n_benchmarks)), morpher)
    with pytest.raises(ValueError, match="weights"):
        fill_templates(np.zeros((4, 1)), np.ones((4, 2)), BIN_1D, morpher)
    with pytest.raises(ValueError, match="edges of 'x'"):
        Binning(("x",), ([0.0, 2.0, 1.0],))
    templates = BinnedTemplates(BIN_1D, np.ones((12, morpher.n_benchmarks)), morpher)
    with pytest.raises(ValueError, match="luminosity"):
        templates.expected(np.zeros(2), 0.0)
    with pytest.raises(ValueError, match="data"):
        binned_scan(templates, np.zeros((1, 2)), 1.0, np.ones(3))
    with pytest.raises(ValueError, match="data"):
        to_pyhf_spec(templates, 1.0, np.ones(5))
