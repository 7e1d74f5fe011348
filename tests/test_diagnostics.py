"""Diagnostics of estimated density ratios (seed 003's closure, C2ST, calibration curves; issue 14 item 6).

The statistics are checked on a Gaussian toy with a known ratio: p_0 = N(0, 1₂), p_1 = N(δ, 1₂),
δ = (0.5, 0), so r = p_1/p_0 = exp(δ·x − |δ|²/2) and the Bayes-optimal classifier's score is
s = r/(1 + r); its best possible AUC is Φ(|δ|/√2) = 0.638. The command is checked on a tiny
off-shell run (12k events, a 2-member mixture model trained for 5 epochs), whose simulator gives
the exact ratios from the event weights.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from scipy.stats import norm

from assay.analysis.diagnostics import (
    HistogramCalibrator,
    IsotonicCalibrator,
    balance_classes,
    reliability_curve,
    reweighting_closure,
)
from assay.analysis.two_sample import two_sample_test, weighted_auc

torch.set_num_threads(1)

DELTA = np.array([0.5, 0.0])
N = 20_000  # events per sample


def _log_r(x: np.ndarray) -> np.ndarray:
    return x @ DELTA - DELTA @ DELTA / 2


def _samples(seed: int, n: int = N) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 2)), rng.normal(size=(n, 2)) + DELTA


def _labelled(seed: int, n: int = N, power: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Scores s^power of the exact classifier on n events of each class, and the labels."""
    x0, x1 = _samples(seed, n)
    score = 1.0 / (1.0 + np.exp(-_log_r(np.concatenate([x1, x0]))))
    return score**power, np.repeat([1.0, 0.0], n)


def test_reliability_of_the_exact_score_is_diagonal_a_distorted_one_is_not_and_calibration_restores_it():
    """10 bins: the exact score's χ² follows χ²(10), below 25 with probability 99.5 %; s³ (0.125 where
    s = 0.5) is off by far more than the ~0.01 errors (χ² > 1000). Calibrators fitted on 2 × 40k other
    events and evaluated on fresh ones: their fitted fractions carry half the evaluation's
    variance, so χ² ≈ 1.5 ndf = 15 is expected; below 35 (χ²/ndf < 3.5) leaves room for the
    isotonic fit's extra freedom (measured 8.3 and 11.0; 14-26 with 20k fit events per class)."""
    score, y = _labelled(0)
    exact = reliability_curve(score, y, balance_classes(y))
    assert exact.ndf == 10 and exact.chi2 < 25, exact.chi2
    assert np.all(np.abs(exact.observed - exact.predicted) < 4 * exact.error)
    cubed = reliability_curve(score**3, y)
    assert cubed.chi2 > 1000
    fit_score, fit_y = _labelled(1, 2 * N, power=3.0)
    for calibrator in (HistogramCalibrator(bins=20), IsotonicCalibrator()):
        calibrator.fit(fit_score, fit_y)
        curve = reliability_curve(calibrator.predict(score**3), y)
        assert curve.chi2 / curve.ndf < 3.5, (type(calibrator).__name__, curve.chi2, curve.ndf)
        # and the calibrated ratio of the distorted one is the exact ratio: median |Δ log r| measured
        # 0.034 (histogram: steps of 20 bins) and 0.016 (isotonic), against > 0.5 uncalibrated
        distorted = score**3 / (1.0 - score**3)
        exact_r = score / (1.0 - score)
        assert np.median(np.abs(np.log(calibrator.ratio(distorted) / exact_r))) < 0.06
    assert np.median(np.abs(np.log(distorted / exact_r))) > 0.5


def test_isotonic_fit_equals_scipys_weighted_isotonic_regression():
    """The numba pool-adjacent-violators against SciPy's (≥ 1.12) on noisy weighted data: the same
    blocks (strictly increasing values), each predicted at its weighted mean score."""
    from scipy import optimize

    if not hasattr(optimize, "isotonic_regression"):
        pytest.skip("scipy < 1.12 has no isotonic_regression")
    rng = np.random.default_rng(3)
    x = np.sort(rng.random(500))
    y, w = (rng.random(500) < x).astype(float), rng.exponential(size=500)
    cal = IsotonicCalibrator().fit(x, y, w)
    reference = optimize.isotonic_regression(y, weights=w).x
    np.testing.assert_allclose(cal.y_, np.unique(reference), atol=1e-12)
    np.testing.assert_allclose(cal.predict(cal.x_), np.clip(cal.y_, 1e-12, 1 - 1e-12), atol=1e-12)


def test_weighted_auc_is_the_pairwise_statistic_and_its_error_the_spread_over_replicas():
    """AUC against the O(n²) double sum with ties and weights; DeLong's error against the standard
    deviation of the AUC of 400 independent weighted replicas (its relative precision is
    1/√(2 · 400) = 3.5 %: agreement within 15 % is > 4σ)."""
    rng = np.random.default_rng(4)
    s = np.round(rng.normal(size=300), 1)  # ties
    y, w = (rng.random(300) < 0.4).astype(float), rng.exponential(size=300)
    s1, w1, s0, w0 = s[y == 1], w[y == 1], s[y == 0], w[y == 0]
    pairs = (s1[:, None] > s0[None]) + 0.5 * (s1[:, None] == s0[None])
    assert weighted_auc(s, y, w)[0] == pytest.approx(w1 @ pairs @ w0 / (w1.sum() * w0.sum()), rel=1e-12)
    aucs, errors = [], []
    for _ in range(400):
        x0, x1 = rng.normal(size=200), rng.normal(size=200) + 0.3
        auc, error = weighted_auc(np.concatenate([x1, x0]), np.repeat([1, 0], 200), rng.exponential(size=400))
        aucs.append(auc), errors.append(error)
    assert np.mean(errors) == pytest.approx(np.std(aucs), rel=0.15)


def test_closure_and_two_sample_test_pass_with_the_exact_ratio_and_fail_with_wrong_ones():
    """p_0 reweighted by the exact r against an independent p_1 sample: every observable's χ² (19
    ndf) below 38 (P = 0.6 % each), the C2ST AUC within 3 errors of 0.5. Without reweighting
    (r = 1) the shifted observable's closure fails (χ²/ndf > 10) and the AUC is the best possible,
    Φ(0.354) = 0.638, to within the training's shortfall (0.02); half the log ratio (r^½) sits in
    between, > 5 errors above 0.5 (measured: exact 0.503 ± 0.004, r^½ 0.556, r = 1 0.625)."""
    x0, x1 = _samples(5)
    ones, observables = np.ones(N), ("x1", "x2")
    exact = np.exp(_log_r(x0))
    for closure in reweighting_closure(x0, ones, exact, x1, ones, observables=observables):
        assert closure.ndf == 19 and closure.chi2 < 38, (closure.observable, closure.chi2)
    test = two_sample_test(x0, exact, x1, ones, observables=observables, seed=1)
    assert abs(test.auc - 0.5) < 3 * test.auc_error, test
    assert 0.003 < test.auc_error < 0.006  # ≈ √(1/12 · (1/n_eff,0 + 1/n_eff,1)) for n_eff ~ 8-10k
    shifted, flat = reweighting_closure(x0, ones, ones, x1, ones, observables=observables)
    assert shifted.chi2 / shifted.ndf > 10 and flat.chi2 < 38
    wrong = two_sample_test(x0, ones, x1, ones, observables=observables, seed=1)
    assert wrong.z > 10 and wrong.auc == pytest.approx(norm.cdf(0.5 / np.sqrt(2)), abs=0.02)
    half = two_sample_test(x0, np.sqrt(exact), x1, ones, observables=observables, seed=1)
    assert half.z > 5 and half.auc < wrong.auc


# ---- the command on a tiny off-shell run ----------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """12k off-shell events (2k test events after the cuts), the mixture model S, SBI against
    B with 2 members of (32, 32) trained 5 epochs: about 2 s on one core."""
    import yaml

    from assay.config import config_from_dict
    from assay.pipeline import run_pipeline
    from assay.search_demo import search_config, search_size
    from assay.training import train

    folder = tmp_path_factory.mktemp("diagnostics") / "run"
    data = search_config(search_size(0.05), folder).model_dump(mode="json")
    data["simulator"] |= {"n_events": 12_000, "batch_size": 12_000}
    data["sampling"]["sets"] = []
    nsbi = data["training"]["nsbi"] | {"epochs": 5, "n_ensemble": 2, "hidden": [32, 32], "batch_size": 256}
    data["training"] = {"nsbi": nsbi}
    data["inference"]["events"]["max_events"] = None
    cfg = config_from_dict(data)
    run_pipeline(cfg, folder, progress=False)
    train(cfg, folder, progress=False)
    config = folder.parent / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    return cfg, folder, config


def test_cli_writes_diagnostics_and_the_report_section(tiny_run):
    """`assay diagnostics CONFIG`: diagnostics.json with every check, the figures, the report's
    section. The exact ratios close: χ² < 45 per observable (19 ndf; 4.1σ of χ²(19)) and the AUC
    within 3 errors of 0.5; without reweighting the S sample (a peak in m4ℓ and D_ME) is told
    from the B sample (z > 10; measured 0.89 ± 0.01). The 5-epoch model itself is only recorded."""
    from typer.testing import CliRunner

    from assay.cli import app
    from assay.results import Results

    _, folder, config = tiny_run
    (folder / "limits").mkdir(exist_ok=True)
    Results(title="t", parameters=("mu",), parameter_labels=("μ",), luminosity_ifb=1.0,
            levels={}).to_json(folder / "limits" / "results.json")  # fmt: skip
    result = CliRunner().invoke(app, ["diagnostics", str(config), "-q", "--epochs", "10"])
    assert result.exit_code == 0, result.output
    assert "C2ST AUC" in result.output and "diagnostics.json" in result.output
    data = json.loads((folder / "limits" / "diagnostics.json").read_text())
    assert data["model"] == "nsbi" and data["exact"] and data["n_events"] > 1500
    assert set(data["processes"]) == {"S", "SBI"} and set(data["log_ratio"]) == {"b_only", "mu4"}
    for process, checks in data["processes"].items():
        assert set(checks) == {"model", "exact", "unit", "spread"}
        assert set(checks["model"]["reliability"]) == {"raw", "histogram", "isotonic"}
        exact = checks["exact"]
        assert exact["normalisation"] == pytest.approx(1.0, abs=0.05)
        for observable, closure in exact["closure"].items():
            assert closure["chi2"] < 45, (process, observable, closure["chi2"])
        assert abs(exact["c2st"]["z"]) < 3, (process, exact["c2st"])
    assert data["processes"]["S"]["unit"]["c2st"]["z"] > 10
    assert data["log_ratio"]["b_only"]["rms_difference"] > 0
    html = (folder / "limits" / "report.html").read_text()
    assert "Diagnostics of the mixture model" in html and "diagnostics_closure_S.png" in html
    assert (folder / "limits" / "plots" / "diagnostics_reliability_S.png").is_file()


def test_errors_name_what_to_run(tiny_run, tmp_path):
    """No mixture model in the config, an unknown --model, an untrained model: one error each,
    naming the config section or the command to run; the CLI turns them into exit code 2."""
    import yaml
    from typer.testing import CliRunner

    from assay.analysis.mixture_diagnostics import run_diagnostics
    from assay.cli import app
    from assay.config import RunConfig
    from assay.exceptions import ConfigError, StoreError

    cfg, folder, config = tiny_run
    bare = RunConfig.model_validate({**cfg.model_dump(mode="json"), "training": {}})
    with pytest.raises(
        ConfigError, match=r"training: the config has no model with method: mixture.*assay train"
    ):
        run_diagnostics(bare, folder)
    with pytest.raises(ConfigError, match=r"--model: 'alices' is not a mixture model"):
        run_diagnostics(cfg, folder, model="alices")
    copy = tmp_path / "run"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("models", "limits"))
    with pytest.raises(StoreError, match=r"model 'nsbi' is not trained; run `assay train CONFIG` first"):
        run_diagnostics(cfg, copy)
    moved = tmp_path / "config.yaml"
    moved.write_text(yaml.safe_dump({**yaml.safe_load(config.read_text()), "output": str(copy)}))
    result = CliRunner().invoke(app, ["diagnostics", str(moved)])
    assert result.exit_code == 2 and "assay train CONFIG" in result.output
    with pytest.raises(ValueError, match="weights >= 0"):
        IsotonicCalibrator().fit(np.array([0.1, 0.2]), np.array([0.0, 1.0]), np.array([1.0, -1.0]))


def test_train_command_prints_a_mixture_model(tiny_run):
    """`assay train` on a mixture model: its table (processes, classifiers, N_eff) and the line naming
    the folder (it was printed as a BIT and crashed with AttributeError: trees_)."""
    from typer.testing import CliRunner

    from assay.cli import app

    _, folder, config = tiny_run
    result = CliRunner().invoke(app, ["train", str(config), "-o", str(folder), "-q", "--retrain"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "nsbi: mixture model on the train partition" in text and "N_eff" in text
    assert text.endswith(f"saved to {folder / 'models' / 'nsbi'}")
