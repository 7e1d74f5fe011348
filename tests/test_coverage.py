"""The coverage harness of profiled intervals (`assay coverage`, issue 14 item 7).

The run: the 5 % off-shell search with five nuisances (as tests/test_search.py's ``systematics_run``,
no model trained). The toys are drawn at μ_true = 4: at μ = 1 the rate N(μ) = μS + √μ I + B takes
the same value at μ ≈ 0.52 (destructive interference, docs/search.md), the profiled −2Δlog L of a
toy has two minima and the span of its 68% region over-covers (0.91 in 100 toys, measured), so
Wilks' coverage is not expected there; for μ ≥ (I/S)² ≈ 3 that second solution is gone and the
likelihood is close to Gaussian.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

N_TOYS = 100
POINTS = 7  # over [2.5, 5.5]: spacing 0.5 for σ_μ ≈ 0.33; the spline of a near-parabola is enough
MU_TRUE = 4.0
NUISANCES = ("gg_nlo_qcd", "qq_nlo_ew", "gg_shower", "lepton_scale", "lumi")


def _config(folder):
    from assay.config import config_from_dict
    from assay.search_demo import search_config, search_size

    data = search_config(search_size(0.05), folder).model_dump(mode="json")
    data["systematics"] = {"nuisances": [{"name": n} for n in NUISANCES[:-1]]
                           + [{"name": "lumi", "normalisation": 0.02}]}  # fmt: skip
    data["training"] = {}
    data["inference"]["models"] = []
    data["inference"]["scans"] = [{"parameter": "mu", "range": [2.5, 5.5], "n_points": 121}]
    return config_from_dict(data)


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    from assay.pipeline import run_pipeline

    folder = tmp_path_factory.mktemp("coverage") / "run"
    cfg = _config(folder)
    run_pipeline(cfg, folder, progress=False)
    return cfg, folder


def _copy(run_folder, tmp_path):
    from assay.config import RunConfig

    cfg, folder = run_folder
    target = tmp_path / "run"
    shutil.copytree(folder, target, ignore=shutil.ignore_patterns("limits"))
    return RunConfig.model_validate({**cfg.model_dump(mode="json"), "output": str(target)}), target


@pytest.fixture(scope="module")
def on_cluster(run_folder):
    """100 toys of truth_profiled at μ = 4 on a 2-worker local Dask cluster."""
    from assay.analysis.coverage import run_coverage
    from assay.cluster import local_client

    cfg, folder = run_folder
    with local_client(2) as client:
        out = run_coverage(cfg, folder, mu=[MU_TRUE], methods=["truth_profiled"], n_toys=N_TOYS,
                           points=POINTS, client=client, progress=False)  # fmt: skip
    return out


def test_truth_profiled_covers_and_pulls_are_standard_normal(on_cluster):
    """Coverage within 3 binomial standard errors of 0.683 (σ = √(0.683 · 0.317/100) = 0.047:
    [0.54, 0.82], a false alarm 0.3 % of the time); pulls of μ with |mean| < 0.3 (3 × 1/√100) and
    std in [0.75, 1.25] (3.5 × the 0.071 standard error of a std from 100 values), those of every α
    (randomised global observables) with |mean| < 0.35 and std in [0.7, 1.3]; no failed fit."""
    (r,) = on_cluster["results"]
    assert r["method"] == "truth_profiled" and r["mu"] == MU_TRUE and r["n_toys"] == N_TOYS
    assert r["n_failed"] == 0
    assert 0.54 <= r["coverage_68"] <= 0.82, r
    assert abs(r["pull_mu_mean"]) < 0.3 and 0.75 <= r["pull_mu_std"] <= 1.25, r
    for name in NUISANCES:
        pull = r["pulls_alpha"][name]
        assert abs(pull["mean"]) < 0.35 and 0.7 <= pull["std"] <= 1.3, (name, pull)
    assert 0.3 < r["mean_width_68"] < 1.2  # ≈ 2σ_μ
    from assay.inference.neyman import challenge_score

    assert r["challenge_score"] == pytest.approx(
        challenge_score(r["mean_width_68"], r["coverage_68"], N_TOYS)
    )


def test_same_toys_in_process_and_finished_points_are_skipped(on_cluster, run_folder, tmp_path, monkeypatch):
    """Toy i draws from its own seed: 10 toys in this process equal the cluster's first 10; a
    rerun with the same settings reads the finished point (the fitter is never called); other
    settings recompute it."""
    import json

    from assay.analysis import coverage as module

    cfg, folder = run_folder
    copy_cfg, copy = _copy(run_folder, tmp_path)
    module.run_coverage(copy_cfg, copy, mu=[MU_TRUE], methods=["truth_profiled"], n_toys=10, points=POINTS,
                        progress=False)  # fmt: skip
    name = "truth_profiled__mu=4.json"
    here = json.loads((copy / "limits" / "coverage" / name).read_text())["toys"]
    there = json.loads((folder / "limits" / "coverage" / name).read_text())["toys"]
    assert len(here) == 10 and len(there) == N_TOYS
    for a, b in zip(here, there):
        assert a["n_events"] == b["n_events"] and a["valid"] == b["valid"]
        mine = [a["mu_hat"], a["lo"], a["hi"], *a["alpha_hat"]]
        theirs = [b["mu_hat"], b["lo"], b["hi"], *b["alpha_hat"]]
        np.testing.assert_allclose(mine, theirs, rtol=1e-9, atol=1e-9)

    def refuse(*args, **kwargs):
        raise AssertionError("a finished point was fitted again")

    monkeypatch.setattr(module, "fit_pseudo_experiments", refuse)
    lines = []
    again = module.run_coverage(cfg, folder, mu=[MU_TRUE], methods=["truth_profiled"], n_toys=N_TOYS,
                                points=POINTS, progress=False, log=lines.append)  # fmt: skip
    assert again["results"] == on_cluster["results"]
    assert any("skipped" in line for line in lines)
    written = json.loads((folder / "limits" / "coverage.json").read_text())
    assert written["results"] == on_cluster["results"]
    lines.clear()
    with pytest.raises(AssertionError, match="fitted again"):
        module.run_coverage(copy_cfg, copy, mu=[MU_TRUE], methods=["truth_profiled"], n_toys=10,
                            points=POINTS + 2, progress=False, log=lines.append)  # fmt: skip
    assert any("settings changed (scan)" in line for line in lines)


def test_counts_likelihood_equals_the_methods_toy_likelihood(run_folder):
    """The harness fits a toy as counts on the pool's terms; ProfiledMethod.likelihood slices the
    terms by the toy's rows and appends the pool as reference: the same −2 log L."""
    from assay.analysis.build import asimov_sample
    from assay.analysis.coverage import Point, _likelihood, toy_tasks
    from assay.analysis.methods import Dataset
    from assay.analysis.profiled import profiled_methods
    from assay.rundir import RunDir

    cfg, folder = run_folder
    run = RunDir(folder)
    sample = asimov_sample(cfg, run)
    method = profiled_methods(cfg, run, sample, {}, {})["truth_profiled"]
    ((events, counts, _),) = toy_tasks(method, Point(1.0, (0.0,) * 5), 1, cfg.seed, NUISANCES)
    weights = np.zeros(method.terms.n_events)
    np.add.at(weights, events, counts)
    mine = _likelihood(method, weights, None)
    theirs = method.likelihood(Dataset.from_sample(sample).take(np.repeat(events, counts)))
    for mu, alpha in ((1.0, np.zeros(5)), (0.6, np.array([0.3, -0.5, 1.2, 0.1, -0.8]))):
        expected = float(theirs.nll(np.array([mu]), alpha))
        assert float(mine.nll(np.array([mu]), alpha)) == pytest.approx(expected, rel=1e-10)


def test_errors(run_folder, tmp_path):
    """No systematics section, an unknown method or nuisance, a negative μ: one ConfigError each;
    the CLI turns them into a red line and exit code 2."""
    from typer.testing import CliRunner

    from assay.analysis.coverage import run_coverage
    from assay.cli import app
    from assay.config import RunConfig
    from assay.exceptions import ConfigError

    cfg, folder = run_folder
    bare = RunConfig.model_validate({**cfg.model_dump(mode="json"), "systematics": None})
    with pytest.raises(ConfigError, match="no `systematics` section"):
        run_coverage(bare, folder, n_toys=1)
    with pytest.raises(ConfigError, match=r"unknown profiled method\(s\) \['nsbi_profiled'\]"):
        run_coverage(cfg, folder, methods=["nsbi_profiled"], n_toys=1)
    with pytest.raises(ConfigError, match=r"unknown nuisance\(s\) \['jes'\]"):
        run_coverage(cfg, folder, alpha={"jes": [1.0]}, n_toys=1)
    with pytest.raises(ConfigError, match="lower bound"):
        run_coverage(cfg, folder, mu=[-1.0], methods=["truth_profiled"], n_toys=1)
    config = tmp_path / "config.yaml"
    import yaml

    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    result = CliRunner().invoke(app, ["coverage", str(config), "--method", "nope", "-q"])
    assert result.exit_code == 2 and "unknown profiled method" in result.output
    result = CliRunner().invoke(app, ["coverage", str(config), "--alpha", "lumi"])
    assert result.exit_code != 0 and "NAME=VALUE" in result.output


def test_cli_grid_over_alpha(run_folder, tmp_path):
    """`assay coverage` on a grid of μ and α_true: one row per point, coverage.json written."""
    import json

    import yaml
    from typer.testing import CliRunner

    from assay.cli import app

    cfg, copy = _copy(run_folder, tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    args = ["coverage", str(config), "--toys", "2", "--mu", "4", "--alpha", "lumi=1", "--alpha", "lumi=-1",
            "--method", "truth_profiled", "--points", "5", "-q"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "lumi=1" in result.output and "lumi=-1" in result.output
    found = json.loads((copy / "limits" / "coverage.json").read_text())
    assert [r["alpha"]["lumi"] for r in found["results"]] == [1.0, -1.0]
    assert found["settings"]["n_toys"] == 2
    assert (copy / "limits" / "coverage" / "truth_profiled__mu=4__lumi=-1.json").is_file()


@pytest.mark.slow  # 52 s: keeps the default suite under 10 minutes
def test_neyman_critical_value_corrects_wilks_over_coverage_at_mu_1(run_folder, tmp_path, monkeypatch):
    """At μ = 1 the profiled likelihood has two minima (module docstring): Wilks' threshold t = 1
    over-covers (0.92 in 200 toys with a 17-point scan, measured; a 13-point scan here). The Neyman belt at
    μ = 1 (100 toys) gives t_c < 1 (measured 0.53 in 200 toys), and the Neyman interval
    {t(μ_true) ≤ t_c} of 100 independent toys covers 0.683 within 3σ, σ = √2 · √(0.683 · 0.317/100)
    = 0.066 (the binomial error of the coverage and, about as large, that of the estimated
    quantile): [0.49, 0.88]. t_c is the 68.27% quantile of the belt's t, written to the belt file,
    and a rerun reuses the belt and the toys."""
    import json

    from assay.analysis import coverage as module
    from assay.analysis import coverage_neyman as neyman_module
    from assay.cluster import local_client
    from assay.config import RunConfig
    from assay.inference.asymptotic import ONE_SIGMA

    cfg, copy = _copy(run_folder, tmp_path)
    data = cfg.model_dump(mode="json")
    data["inference"]["scans"] = [{"parameter": "mu", "range": [0.0, 3.0], "n_points": 121}]
    cfg = RunConfig.model_validate(data)
    options = {"mu": [1.0], "methods": ["truth_profiled"], "n_toys": 100, "points": 13, "neyman": 100,
               "neyman_grid": [1.0], "progress": False}  # fmt: skip
    with local_client(2) as client:
        out = module.run_coverage(cfg, copy, client=client, **options)
    (r,) = out["results"]
    assert r["n_failed"] == 0 and r["coverage_68"] >= 0.8, r
    n = r["neyman"]
    assert n["n_valid"] == 100 and n["n_toys_belt"] == 100 and n["n_failed_belt"] == 0
    assert 0.2 < n["t_c"] < 1.0, n
    assert 0.49 <= n["coverage_68"] <= 0.88, n
    assert n["mean_width_68"] is None  # a one-point belt gives the coverage only
    belt = json.loads((copy / "limits" / "coverage" / "truth_profiled__neyman.json").read_text())
    assert belt["grid"] == [1.0] and len(belt["t_toys"][0]) == 100
    assert n["t_c"] == pytest.approx(np.quantile(belt["t_toys"][0], ONE_SIGMA), rel=1e-12)
    toys = json.loads((copy / "limits" / "coverage" / "truth_profiled__mu=1.json").read_text())["toys"]
    assert n["coverage_68"] == np.mean([t["t_true"] <= n["t_c"] for t in toys])

    def refuse(*args, **kwargs):
        raise AssertionError("a finished belt or point was fitted again")

    monkeypatch.setattr(module, "fit_pseudo_experiments", refuse)
    monkeypatch.setattr(neyman_module, "fit_pseudo_experiments", refuse)
    assert module.run_coverage(cfg, copy, **options)["results"] == out["results"]
