"""Finite-training-statistics nuisances (issue 14 item 5): seed 003's spurious signal and the
ensemble's principal modes, on a synthetic model and on a trained mixture model of the off-shell search."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from assay.analysis.training_statistics import (
    NUISANCE,
    ensemble_modes,
    spurious_signal,
    with_training_statistics,
)

torch.set_num_threads(1)


def _synthetic(n_events: int = 4000, seed: int = 1):
    """A ProfiledMethod of a 3-process (S, SBI, B) √μ mixture with one normalisation nuisance and
    model Asimov data at μ = 1, on events that sample p_ref (the B process)."""
    from assay.analysis.profiled import ProfiledMethod
    from assay.inference.profile_terms import ProcessCoefficients, ProfileTerms
    from assay.morphing import Morpher

    rng = np.random.default_rng(seed)
    x = rng.uniform(size=n_events)
    s = np.exp(-0.5 * ((x - 0.5) / 0.08) ** 2) / 0.2
    i = -0.6 * np.sqrt(s)
    ratios = np.stack([s, s + i + 1, np.ones_like(x)])
    ratios /= ratios.mean(axis=1, keepdims=True)
    nu = np.array([60.0, 900.0, 1000.0])
    one = np.ones((1, 3, n_events))
    terms = ProfileTerms(ratios, nu, one, one, np.full((1, 3), 1.02), np.full((1, 3), 1 / 1.02), ["lumi"])
    morpher = Morpher([[0.0], [0.5], [1.0]], [[0.0], [1.0], [4.0]])
    matrix = np.array([[0.5, -1.0, 0.5], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])  # S, SBI, B of μ = 0, 1, 4
    coefficients = ProcessCoefficients(morpher, matrix)
    reference = np.full(n_events, 1.0 / n_events)
    method = ProfiledMethod("synthetic", terms, reference * nu[2], reference, coefficients,
                            model_asimov=True, theta_true=np.array([1.0]))  # fmt: skip
    return method, x


def _members(method, x, scale: float) -> np.ndarray:
    """ln r̂_j of 4 members: the true ln r_j plus scale · ε_m · h_j(x), fixed ε_m and smooth h_j."""
    eps = np.array([1.0, -0.7, 0.4, -0.2])
    h = np.stack([np.sin(6 * x), np.cos(4 * x), np.zeros_like(x)])
    return np.log(method.terms.ratios)[None] + scale * eps[:, None, None] * h[None]


def test_spurious_signal_is_zero_for_identical_members_and_linear_in_their_scatter():
    """Δμ̂(μ) = std_m(μ̂_m)/√M: 0 when every member is the mean; for members ln r + s ε_m h(x) with
    small s, μ̂_m − μ is linear in s ε_m, so Δμ̂ doubles with s (within 5 %)."""
    method, x = _synthetic()
    grid = [0.5, 1.0, 2.0]
    same = spurious_signal(method, np.exp(_members(method, x, 0.0)), grid)
    np.testing.assert_allclose(same.delta, 0.0, atol=1e-6)
    small = spurious_signal(method, np.exp(_members(method, x, 0.02)), grid).delta
    large = spurious_signal(method, np.exp(_members(method, x, 0.04)), grid).delta
    assert np.all(small > 1e-3), small
    np.testing.assert_allclose(large / small, 2.0, rtol=0.05)
    with pytest.raises(ValueError, match="M >= 2"):
        spurious_signal(method, np.exp(_members(method, x, 0.02))[:1], grid)


def test_ensemble_modes_reproduce_the_covariance_of_the_mean():
    """M members give M − 1 modes with Σ_l e_l e_lᵀ = Dᵀ D/((M − 1) M) (checked on all entries of a
    small case); identical members give none, members scattered along one function one; the
    nuisances enter as exp(±e_l) shapes."""
    rng = np.random.default_rng(4)
    logs = rng.normal(0, 0.1, (6, 3, 40))
    modes = ensemble_modes(logs)
    assert modes.shape == (5, 3, 40)
    d = (logs - logs.mean(axis=0)).reshape(6, -1)
    flat = modes.reshape(5, -1)
    np.testing.assert_allclose(flat.T @ flat, d.T @ d / 30, atol=1e-12)
    assert ensemble_modes(np.zeros((3, 2, 10))).shape == (0, 2, 10)
    method, x = _synthetic()
    members = _members(method, x, 0.05)
    with_modes = with_training_statistics(method, "ensemble", members, [1.0])
    assert with_modes.terms.names == ("lumi", f"{NUISANCE}_1")  # ε_m h(x): one direction
    assert with_modes.spurious is None
    e = ensemble_modes(members)
    np.testing.assert_allclose(with_modes.terms.shape_up[1:], np.exp(e))
    np.testing.assert_allclose(with_modes.terms.shape_down[1:], np.exp(-e))
    assert with_training_statistics(method, "none", members, [1.0]) is method
    with pytest.raises(ValueError, match="unknown kind 'bootstrap'"):
        with_training_statistics(method, "bootstrap", members, [1.0])


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """The 5 % search with five nuisances and its mixture model trained (as tests/test_search.py)."""
    from assay.config import config_from_dict
    from assay.pipeline import run_pipeline
    from assay.search_demo import search_config, search_size
    from assay.training import train

    folder = tmp_path_factory.mktemp("training_statistics") / "run"
    data = search_config(search_size(0.05), folder).model_dump(mode="json")
    data["systematics"] = {"nuisances": [
        {"name": "gg_nlo_qcd"}, {"name": "qq_nlo_ew"}, {"name": "gg_shower"}, {"name": "lepton_scale"},
        {"name": "lumi", "normalisation": 0.02},
    ]}  # fmt: skip
    data["training"] = {"nsbi": data["training"]["nsbi"]}
    data["inference"]["histograms"] = []
    cfg = config_from_dict(data)
    run_pipeline(cfg, folder, progress=False)
    train(cfg, folder, progress=False)
    return data


def _profiled(data: dict, kind: str):
    from assay.analysis.build import asimov_sample, load_models
    from assay.analysis.profiled import profiled_methods
    from assay.config import RunConfig
    from assay.rundir import RunDir

    data = json.loads(json.dumps(data))
    data["systematics"]["training_statistics"] = kind
    cfg = RunConfig.model_validate(data)
    run = RunDir(cfg.output)
    sample = asimov_sample(cfg, run)
    method = profiled_methods(cfg, run, sample, load_models(cfg, run, ["nsbi"]), {})["nsbi_profiled"]
    likelihood, fit = method.asimov_fit(sample)
    return method, likelihood, fit


def test_trained_mixture_model_gets_the_training_statistics_term(trained_run):
    """On the model's Asimov data (μ̂ = 1, α̂ = 0) the spurious signal adds Δμ̂(1) in quadrature to
    the Hessian error of μ: θ' = μ + α_s Δ(μ) has ∂θ'/∂μ = 1 at α_s = 0, so σ² = σ₀² + Δ(1)²
    exactly to second order (1 % allowed for MIGRAD's minimum), and the Hessian impact of α_s on μ
    is −Δ(1) (5 %). The ensemble's modes widen it too, by an amount of the same order (measured
    0.040 against the spurious signal's 0.030 with the config's two members: within a factor 3)."""
    _, _, plain = _profiled(trained_run, "none")
    method, likelihood, fit = _profiled(trained_run, "spurious_signal")
    assert method.terms.names[-1] == NUISANCE and method.spurious is not None
    assert fit.values[0] == pytest.approx(1.0, abs=1e-4) and fit.alpha_hat[-1] == pytest.approx(0.0, abs=1e-3)
    delta = method.spurious.numpy(1.0)[0]
    assert delta > 0.005
    sigma0, sigma = plain.errors[0], fit.errors[0]
    assert sigma**2 == pytest.approx(sigma0**2 + delta**2, rel=0.01)
    impacts = likelihood.impacts(fit)
    assert impacts.hessian[-1] == pytest.approx(-delta, rel=0.05)
    ensemble, _, fit_ensemble = _profiled(trained_run, "ensemble")
    names = [n for n in ensemble.terms.names if n.startswith(NUISANCE)]
    assert names == [f"{NUISANCE}_{i + 1}" for i in range(len(names))] and names
    extra = np.sqrt(fit_ensemble.errors[0] ** 2 - sigma0**2)
    assert delta / 3 < extra < 3 * delta, (extra, delta)


def test_training_statistics_errors(trained_run, tmp_path):
    """A model of one member cannot estimate its own scatter: one ConfigError that says what to set;
    the reserved nuisance name is refused."""
    import shutil

    from assay.analysis.build import asimov_sample, load_models
    from assay.analysis.profiled import profiled_methods
    from assay.config import RunConfig
    from assay.exceptions import ConfigError
    from assay.rundir import RunDir
    from assay.training import train

    data = json.loads(json.dumps(trained_run))
    shutil.copytree(data["output"], tmp_path / "run", ignore=shutil.ignore_patterns("models", "limits"))
    data["output"] = str(tmp_path / "run")
    data["training"]["nsbi"]["n_ensemble"] = 1
    data["systematics"]["training_statistics"] = "spurious_signal"
    cfg = RunConfig.model_validate(data)
    train(cfg, cfg.output, progress=False)
    run = RunDir(cfg.output)
    with pytest.raises(ConfigError, match=r"needs an ensemble; model 'nsbi' has n_ensemble = 1"):
        profiled_methods(cfg, run, asimov_sample(cfg, run), load_models(cfg, run, ["nsbi"]), {})
    data["systematics"]["nuisances"].append({"name": "training_statistics", "normalisation": 0.1})
    with pytest.raises(ValueError, match="reserved"):
        RunConfig.model_validate(data)
