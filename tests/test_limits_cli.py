"""``assay run`` → ``assay train`` → ``assay limits`` through typer's CLI runner on a tiny toy.

One run (6,000 events of the 1-parameter Gaussian toy) trains two named likelihood-ratio models,
a neural one (ALICES) and a Boosted Information Tree, next to SALLY (a score model, histogrammed);
``assay limits`` compares them with the exact likelihood (truth), a histogram and the rate on the
same Asimov data. Every kind of bad input is one clear error (exit code 2) naming what is wrong.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from conftest import small_toy_run
from typer.testing import CliRunner

from assay.cli import app
from assay.estimators import SALLY, load_estimator
from assay.exceptions import PredictionError
from assay.results import Results
from assay.store import EventStore

torch.set_num_threads(1)  # 2 shared cores: torch's default thread pool collapses under contention

MODEL = {"hidden": [16], "epochs": 2, "batch_size": 128, "threads": 1}
CONFIG = {
    **small_toy_run(seed=3, n_events=6_000, n_theta0=100),
    "training": {
        "alices": {"method": "alices", **MODEL},
        "sally": {"method": "sally", **MODEL},
        "trees": {"method": "bit", "n_trees": 10, "max_depth": 3},
    },
    # L σ(SM) = 0.02 fb⁻¹ × 6.28 pb ≈ 126 events, far fewer than the 1,200 test events: the
    # Monte Carlo noise of the Asimov sample stays small against the intervals (±0.1)
    "inference": {
        "luminosity_ifb": 0.02,
        "scans": [{"parameter": "c", "range": [-0.6, 0.6], "n_points": 41}],
        "histograms": [{"observables": ["x0"], "edges": [[float("-inf"), -1.0, 0.0, 1.0, float("inf")]]}],
    },
}
METHODS = ["truth", "alices", "sally", "trees", "hist_x0", "rate"]


def flat(text: str) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(text.split())


def invoke(*args) -> object:
    return CliRunner().invoke(app, [str(a) for a in args])


def write_config(folder, name: str = "config.yaml", **inference) -> str:
    cfg = json.loads(json.dumps(CONFIG))
    cfg["inference"].update(inference)
    path = folder / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(path)


@pytest.fixture(scope="module")
def limits_run(tmp_path_factory):
    """The three commands once; returns (folder, config path, output of ``assay limits``, what it
    wrote: summary.json parsed, results.json read, the pyhf workspace parsed)."""
    folder = tmp_path_factory.mktemp("limits-cli")
    config, out = write_config(folder), folder / "out"
    for command in ("run", "train"):
        result = invoke(command, config, "-o", out, "-q")
        assert result.exit_code == 0, result.output
    result = invoke("limits", config, "-o", out, "-q", "--no-report")
    assert result.exit_code == 0, result.output
    limits = out / "limits"  # read now: later tests run `assay limits` again in this folder
    written = (
        json.loads((limits / "summary.json").read_text()),
        Results.from_json(limits / "results.json"),
        json.loads((limits / "pyhf" / "hist_x0.json").read_text()),
    )
    return folder, config, result.output, written


def test_limits_writes_summary_results_and_pyhf(limits_run):
    _, _, output, (summary, results, workspace) = limits_run
    level = summary["out"]  # the level is named after the run folder
    assert list(level) == METHODS  # both named models are rows of the one summary
    for method in METHODS:
        assert set(level[method]) == {"c_68", "c_95"}
        lo, hi = level[method]["c_68"]
        lo95, hi95 = level[method]["c_95"]
        assert lo95 < lo < hi < hi95, (method, level[method])
    assert summary["warnings"] == [] and summary["timings_s"]["total"] > 0
    text = flat(output)
    assert "out: c, asimov, L = 0.02 fb⁻¹" in text and "68% CL" in text and "limits written to" in text
    for method in METHODS:
        assert method in text

    run = results.levels["out"]
    assert results.parameters == ("c",) and results.luminosity_ifb == 0.02 and run.data == "asimov"
    assert list(run.intervals) == METHODS and run.n_events["test_events"] == 1_200
    assert run.intervals["trees"]["c_68"] == tuple(level["trees"]["c_68"])
    assert set(run.scans_1d["c"].q) == set(METHODS) and len(run.scans_1d["c"].theta) == 41
    assert {"alices", "trees"} <= set(run.calibration)  # R̂(θ) of the estimated ratios
    assert set(run.histories) == {"alices", "sally"}  # BIT keeps no loss curve per epoch
    assert run.coverage is None

    assert {"channels", "observations", "measurements"} <= set(workspace)
    assert run.checks["pyhf_vs_assay_max_abs_dq"] < 1e-6  # pyhf rescans the histogram to the same q


def test_truth_interval_contains_theta_true(limits_run):
    """Asimov data at θ_true = SM: the exact likelihood's 68% interval contains it, its best fit
    sits near it, and no method is much tighter than the truth (the Cramér-Rao bound)."""
    run = limits_run[3][1].levels["out"]
    lo, hi = run.intervals["truth"]["c_68"]
    assert lo < 0.0 < hi
    assert abs(run.best_fit["truth"]["c"]) < 0.5 * (hi - lo)
    width = hi - lo
    for method in METHODS:
        m_lo, m_hi = run.intervals[method]["c_68"]
        assert m_hi - m_lo > 0.8 * width, (method, run.intervals[method], width)


def test_models_on_the_command_line(limits_run):
    folder, config, *_ = limits_run
    result = invoke("limits", config, "-o", folder / "out", "-q", "--no-report", "-m", "trees")
    assert result.exit_code == 0, result.output
    summary = json.loads((folder / "out" / "limits" / "summary.json").read_text())
    assert list(summary["out"]) == ["truth", "trees", "hist_x0", "rate"]


# ---- bad input: one clear error each ----------------------------------------------------------
def test_unknown_model_on_the_command_line(limits_run):
    folder, config, *_ = limits_run
    result = invoke("limits", config, "-o", folder / "out", "-q", "--no-report", "--models", "nope")
    assert result.exit_code == 2
    text = flat(result.output)
    assert "unknown model(s) ['nope']" in text and "'alices'" in text and "'trees'" in text
    assert "Traceback" not in result.output


def test_a_model_that_was_never_trained(limits_run, tmp_path):
    folder = limits_run[0]
    data = json.loads(json.dumps(CONFIG))
    data["training"]["later"] = {"method": "carl", **MODEL}
    data["inference"]["models"] = ["alices", "later"]
    config = tmp_path / "later.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    result = invoke("limits", config, "-o", folder / "out", "-q", "--no-report")
    assert result.exit_code == 2
    text = flat(result.output).replace(" ", "")
    assert "model'later'isnottrained" in text and "runassaytrainCONFIG" in text.replace("`", "")


def test_data_with_other_observables(limits_run, tmp_path):
    folder, config, *_ = limits_run
    data = tmp_path / "other.h5"
    with EventStore.create(data, observables=["pt", "eta"], benchmarks=["sm"]) as writer:
        writer.append(np.zeros((5, 2)), np.ones((5, 1)))
    result = invoke("limits", config, "-o", folder / "out", "-q", "--no-report", "--data", data)
    assert result.exit_code == 2
    text = flat(result.output)
    assert "other.h5" in text.replace(" ", "")  # a long tmp path may wrap inside the name
    assert "observables ['pt', 'eta'] differ from the run's ['x0', 'x1']" in text


def test_missing_data_file(limits_run, tmp_path):
    folder, config, *_ = limits_run
    result = invoke("limits", config, "-o", folder / "out", "-q", "--data", tmp_path / "nowhere.h5")
    assert result.exit_code == 2
    assert "nowhere.h5: --data file not found" in flat(result.output)


@pytest.mark.parametrize("theta", ["c", "c=abc", "=0.1"])
def test_malformed_theta(limits_run, theta):
    folder, config, *_ = limits_run
    result = invoke("limits", config, "-o", folder / "out", "-q", "--toys", "2", "--theta", theta)
    assert result.exit_code == 2
    assert "--theta: expected NAME=VALUE" in flat(result.output) and "Traceback" not in result.output


def test_theta_naming_an_unknown_parameter(limits_run):
    folder, config, *_ = limits_run
    result = invoke("limits", config, "-o", folder / "out", "-q", "--no-report", "--toys", "2",
                    "--theta", "cHW=0.1")  # fmt: skip
    assert result.exit_code == 2
    text = flat(result.output)
    assert "--theta" in text and "'cHW'" in text and "['c']" in text


def test_missing_run_folder(limits_run, tmp_path):
    result = invoke("limits", limits_run[1], "-o", tmp_path / "empty", "-q", "--no-report")
    assert result.exit_code == 2
    text = flat(result.output).replace(" ", "")
    assert "events.h5:eventfilenotfound" in text and "assayrunCONFIG" in text


def test_a_score_model_asked_for_a_ratio_says_what_it_can_do(limits_run):
    """SALLY estimates t̂ only: a log_ratio request is a PredictionError naming SALLY, what it
    estimates and what to use instead; ``expected_limits`` therefore histograms its t̂."""
    from assay.analysis import expected_limits

    out = limits_run[0] / "out"
    sally = load_estimator(out / "models" / "sally")
    assert isinstance(sally, SALLY) and sally.predicts == {"score"}
    with pytest.raises(PredictionError) as info:
        sally.log_ratio(np.zeros((3, 2)), np.array([[0.1]]), np.zeros(1))
    message = str(info.value)
    assert "SALLY" in message and "score" in message and "no log_ratio" in message
    assert "alices" in message and "histogram" in message
    result = expected_limits(out, "sally", np.linspace(-0.6, 0.6, 41)[:, None], 0.02)
    lo, hi = result.intervals["c_68"]
    assert lo < 0.0 < hi


def test_a_full_disk_is_one_clear_error_and_earlier_limits_stay(limits_run, monkeypatch):
    """ENOSPC while writing limits/: exit code 2, one message naming the folder, and the
    summary.json of the earlier run unchanged (every file is written atomically)."""
    import errno

    import assay.saving

    config, out = limits_run[1], limits_run[0] / "out"
    before = (out / "limits" / "summary.json").read_bytes()

    def full(path, text, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(assay.saving, "write_text", full)
    result = invoke("limits", config, "-o", out, "-q", "--no-report")
    assert result.exit_code == 2, result.output
    text = flat(result.output)
    assert "No space left on device" in text and "cannot write the limits" in text, text
    assert (out / "limits" / "summary.json").read_bytes() == before


def test_long_method_names_are_never_cut_to_the_same_text(monkeypatch):
    """On a narrow terminal two histogram methods with long names stay distinguishable (issue 19): the
    method column folds long names instead of cutting both to `hist_ql_cos_…`."""
    from rich.console import Console

    from assay.cli import limits as cli_limits
    from assay.results import LevelResults, Results, Scan1D

    names = ["hist_ql_cos_delta_plus_x_mt_tot", "hist_ql_cos_delta_minus_x_mt_tot"]
    theta = np.linspace(-1, 1, 5)
    level = LevelResults(
        label="parton", scans_1d={"c": Scan1D("c", theta, {}, {n: theta**2 for n in names})},
        intervals={n: {"c_68": (-0.0123456, 0.0123456), "c_95": (-0.0234567, 0.0234567)} for n in names},
    )  # fmt: skip
    results = Results(title="t", parameters=("c",), parameter_labels=("c",), luminosity_ifb=300.0,
                      levels={"parton": level})  # fmt: skip
    console = Console(width=64, record=True)  # a narrow terminal
    monkeypatch.setattr(cli_limits, "console", console)
    cli_limits.print_results(results)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 64
    joined = "".join(line.split("│")[1].strip() for line in text.splitlines() if line.count("│") > 2)
    for name in names:
        assert name in joined, text
