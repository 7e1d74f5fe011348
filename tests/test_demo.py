"""``assay demo`` on WH: the summary's layout at a tiny size (parton level and detector level with
backgrounds; the signal-only detector level is the same config without them), and (slow) issue 6's and
issue 15's physics claims at the default size: at parton level the truth interval is the narrowest and
SALLY's and ALICES' are within 15% of its width; at detector level the ML methods are at least as narrow
as the best single histogram, with backgrounds too, where every interval is wider than without them and
every method's Asimov best fit lies within 0.2σ of the SM."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import yaml

from assay.demo import PARAMETERS, DemoSize, demo_size, run_demo
from assay.results import Results

pytest.importorskip("pythia8mc")  # the PDFs come from Pythia

KEYS = {f"{p}_{cl}" for p in PARAMETERS for cl in ("68", "95")}


def width(interval: list[float]) -> float:
    return interval[1] - interval[0]


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    size = replace(demo_size(0.05, flows=True), sally_epochs=2, alices_epochs=2, bit_trees=10, points_1d=21,
                   points_2d=9)  # fmt: skip
    return out, run_demo(out, size=size, progress=False, levels=("parton", "detector_sb"))


def test_summary_layout(tiny_demo):
    out, summary = tiny_demo
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    assert summary["warnings"] == []  # every interval closed (the scans were extended where needed)
    assert {"truth", "sally", "alices", "bit", "nde", "scandal"} <= set(summary["parton"])  # --flows
    assert not {"nde", "scandal"} & set(summary["detector_sb"])  # the flows are a parton-level option
    assert {"sally", "alices", "bit", "hist_ql_cos_delta_plus", "hist_mt_tot", "hist_pt_w"} <= set(
        summary["detector_sb"]
    )
    assert "truth" not in summary["detector_sb"]  # the neutrino is not observed: no exact likelihood
    assert "detector" not in summary  # only the levels asked for
    for level in ("parton", "detector_sb"):
        for method, intervals in summary[level].items():
            assert set(intervals) == KEYS, (level, method)
            for key, (lo, hi) in intervals.items():
                assert lo <= hi, (level, method, key)
                if key.endswith("68"):  # the 68% region lies inside the 95% one
                    lo95, hi95 = intervals[key.replace("68", "95")]
                    assert lo95 <= lo and hi <= hi95
    timings = summary["timings_s"]
    assert timings["total"] >= sum(v for k, v in timings.items() if k.startswith("parton_")) > 0
    results = Results.from_json(out / "results.json")
    parton = results.levels["parton"]
    assert parton.scans_2d[0].q["truth"].shape == (9, 9)
    assert len(parton.histories["alices"]) == 2  # two ensemble members
    # the exact likelihood's expectation check is 1 by construction (same events)
    np.testing.assert_allclose(parton.calibration["truth"].r_hat_mean, 1.0, rtol=1e-9)
    assert parton.calibration["truth"].r_hat_std is None  # no ensemble: no spread, none faked
    spread = parton.calibration["alices"].r_hat_std  # the members' real spread
    assert spread is not None and (spread >= 0).all() and spread.max() > 0
    # truth Fisher information ≥ every other analysis (the information inequality)
    info = parton.fisher.information
    for name in ("rate", "hist_pt_w", "hist_ql_cos_delta_plus", "hist_mt_tot"):
        assert np.linalg.eigvalsh(info["truth"] - info[name]).min() > -1e-9 * np.abs(info["truth"]).max(), (
            name
        )
    # the histogram analyses also run in pyhf, with the same −2Δlog L
    assert (out / "detector_sb" / "limits" / "pyhf" / "hist_ql_cos_delta_plus_x_mt_tot.json").is_file()
    assert parton.checks["pyhf_vs_assay_max_abs_dq"] < 1e-4
    assert results.levels["detector_sb"].checks["pyhf_vs_assay_max_abs_dq"] < 1e-4  # S+B templates too
    page = (out / "report.html").read_text()
    assert "Cut flow per process: detector_sb" in page and "ttbar (seed 000)" in page


def test_sb_level_trains_and_fits_the_mixture(tiny_demo):
    """detector_sb: every background is in the events, in the training sets and in the Asimov data."""
    out, summary = tiny_demo
    from assay.store import EventStore
    from assay.training_set import TrainingSet

    run = out / "detector_sb"
    with EventStore(run / "events.h5") as store:
        present = {store.processes[k] for k in np.unique(store.read().process)}
        assert present == {"wh", "ttbar", "single_top_s", "single_top_t", "wjets"}
        drawn = store.take(TrainingSet.load(run / "sets" / "sally_train.h5").event_index, fields=("process",))
        assert (drawn.process != 0).any() and (drawn.process == 0).any()  # S+B training samples
    flows = json.loads((run / "cutflow.json").read_text())["processes"]
    assert flows["wjets"]["efficiency"][-1] > 0  # W + jets passes (mistags, g → b b̄)
    for method in ("sally", "alices", "bit", "hist_mt_tot"):
        assert summary["best_fit"]["detector_sb"][method]  # trained, fitted


def test_demo_is_the_example_configs_through_the_cli_chain(tiny_demo, tmp_path):
    """The demo's parton level equals `assay run` → `assay train` → `assay limits` on the same
    (scaled) example config: the demo adds nothing but the scaling and the collection."""
    _, summary = tiny_demo
    from typer.testing import CliRunner

    from assay.cli import app
    from assay.demo import level_config

    size = replace(demo_size(0.05), sally_epochs=2, alices_epochs=2, bit_trees=10, points_1d=21, points_2d=9)
    cfg = level_config("parton", size, tmp_path / "run")
    path = tmp_path / "wh_parton.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    runner = CliRunner()
    for command in ("run", "train", "limits"):
        args = [command, str(path), "-q"] + (["--no-report"] if command == "limits" else [])
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    chain = json.loads((tmp_path / "run" / "limits" / "summary.json").read_text())["run"]
    for method in ("truth", "sally", "alices", "bit", "hist_mt_tot"):
        np.testing.assert_allclose(
            np.array(chain[method]["cHWtilde_68"], float), summary["parton"][method]["cHWtilde_68"], rtol=1e-6
        )


@pytest.fixture(scope="module")
def full_demo(tmp_path_factory):
    """The default demo (~4-5 minutes on 2 cores), run once for the slow tests."""
    return run_demo(tmp_path_factory.mktemp("full"), size=DemoSize(), progress=False, report=False)


@pytest.mark.slow
def test_truth_is_narrowest_and_ml_within_15_percent(full_demo):
    parton = full_demo["parton"]
    for key in sorted(KEYS):
        truth = width(parton["truth"][key])
        for method in ("sally", "alices", "bit", "hist_ql_cos_delta_plus", "hist_mt_tot", "hist_pt_w"):
            assert width(parton[method][key]) >= 0.98 * truth, (key, method)  # spline/grid tolerance
        assert width(parton["sally"][key]) <= 1.15 * truth, key  # measured 1.03 (c_HW), 1.09 (c_HW̃)
        assert width(parton["alices"][key]) <= 1.15 * truth, key  # measured 1.05 (c_HW), 1.10 (c_HW̃)


@pytest.mark.slow
def test_sb_is_wider_ml_beats_the_best_histogram_and_best_fits_are_unbiased(full_demo):
    """Issue 15's must-show at the default size (seed 000's S+B ALICE/ALICES best fits were biased)."""
    sb, so = full_demo["detector_sb"], full_demo["detector"]
    for key in ("cHWtilde_68", "cHWtilde_95"):  # measured 68%: SALLY 0.279, ALICES 0.291, p_T^W 0.325
        best_single = min(width(sb[f"hist_{o}"][key]) for o in ("ql_cos_delta_plus", "mt_tot", "pt_w"))
        for method in ("sally", "alices"):
            assert width(sb[method][key]) <= best_single, (key, method)
    for method in sb:
        for key in KEYS:
            assert width(sb[method][key]) > width(so[method][key]), (method, key)
    for method, fit in full_demo["best_fit"]["detector_sb"].items():
        for parameter, value in fit.items():
            lo, hi = sb[method][f"{parameter}_68"]
            assert abs(value) <= 0.2 * (hi - lo) / 2, (method, parameter, value)


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="issue 15 not met yet: with backgrounds the 2D histogram Q_l cos d+ x m_T (68% c_HWtilde "
    "width 0.100) beats SALLY (0.279) and ALICES (0.291); their S+B training sets are mostly "
    "background at the demo's sizes (measured 2026-12-08, default size)",
)
def test_sb_ml_beats_the_2d_histogram(full_demo):
    sb = full_demo["detector_sb"]
    best = width(sb["hist_ql_cos_delta_plus_x_mt_tot"]["cHWtilde_68"])
    for method in ("sally", "alices"):
        assert width(sb[method]["cHWtilde_68"]) <= best, method


@pytest.mark.slow
def test_detector_ml_beats_the_best_single_histogram(full_demo):
    detector = full_demo["detector"]
    for key in ("cHWtilde_68", "cHWtilde_95"):
        best_single = min(width(detector[f"hist_{o}"][key]) for o in ("ql_cos_delta_plus", "mt_tot", "pt_w"))
        for method in ("sally", "alices"):  # measured 0.60, 0.60 of the best single histogram
            assert width(detector[method][key]) <= best_single, (key, method)
