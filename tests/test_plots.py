"""Every figure type in the house style: the configured labels (parameters with units, observables,
methods), CL labels instead of thresholds, the luminosity, legends outside the axes, ratio panels
under the distributions, readable ticks, PNG and PDF."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from matplotlib.legend import Legend
from matplotlib.text import Text

from assay import plots
from assay.plots_distributions import ratio_limits
from assay.results import (
    Calibration,
    CutFlowResult,
    Distribution,
    FisherInformation,
    LossCurve,
    Scan1D,
    Scan2D,
)

C_LABEL = plots.axis_label(r"$c_{H\tilde W}$", "TeV^-2")
D_LABEL = plots.axis_label(r"$c_{HW}$", "TeV^-2")
NAMES = {"hist_pt": r"histogram $p_T^W$ [GeV]"}
LUMI = 300.0


def texts(fig) -> list[str]:
    """Every text drawn in the figure (labels, tick labels, legend entries and titles)."""
    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def legends(fig) -> list[Legend]:
    return fig.findobj(Legend)


def outside(fig) -> bool:
    """Every legend of the figure lies right of or above its axes' drawing area (covers no curve)."""
    fig.canvas.draw()
    for leg in legends(fig):
        box = leg.get_window_extent()
        axes_boxes = [ax.get_window_extent() for ax in fig.axes]
        if any(box.overlaps(a) for a in axes_boxes):
            return False
    return True


@pytest.fixture
def scan_1d():
    theta = np.linspace(-1, 1, 41)
    q = {"truth": 4 * theta**2, "sally": 3.9 * theta**2, "hist_pt": 3 * theta**2}
    return Scan1D("c", theta, {"d": 0.0}, q)


def test_scan_1d(scan_1d):
    fig = plots.scan_1d_figure(scan_1d, C_LABEL, luminosity_ifb=LUMI, method_names=NAMES)
    drawn = texts(fig)
    assert fig.axes[0].get_xlabel() == r"$c_{H\tilde W}$ [TeV$^{-2}$]"
    assert {" 68% CL", " 95% CL"} <= set(drawn)
    assert {"truth", "SALLY", NAMES["hist_pt"]} <= set(drawn)
    assert "hist_pt" not in " ".join(drawn) and "histogram pt" not in drawn
    assert "300 fb$^{-1}$" in drawn and "assay" in drawn
    assert outside(fig)
    assert len(fig.axes[0].get_xticks()) <= 8


def test_contours_label_cl_not_thresholds():
    axis = np.linspace(-1, 1, 21)
    q = 3 * (axis[:, None] ** 2 + axis[None, :] ** 2)
    scan = Scan2D(("c", "d"), (axis, axis), {}, {"truth": q, "hist_pt": 0.8 * q})
    fig = plots.contours_2d_figure(scan, [C_LABEL, D_LABEL], luminosity_ifb=LUMI, method_names=NAMES)
    drawn = texts(fig)
    assert {"68% CL", "95% CL", NAMES["hist_pt"], "300 fb$^{-1}$"} <= set(drawn)
    assert not any(t.startswith("q = ") for t in drawn)
    assert (fig.axes[0].get_xlabel(), fig.axes[0].get_ylabel()) == (C_LABEL, D_LABEL)
    assert outside(fig)


def test_fisher_ticks_do_not_overlap():
    info = np.array([[4.0e4, 1.0e4], [1.0e4, 9.0e4]])  # narrow: tick labels like -0.0125
    fisher = FisherInformation(np.zeros(2), {"truth": info, "sally": 0.8 * info})
    fig = plots.fisher_ellipses_figure(fisher, [C_LABEL, D_LABEL], luminosity_ifb=LUMI)
    fig.canvas.draw()
    ax = fig.axes[0]
    boxes = [t.get_window_extent() for t in ax.get_xticklabels() if t.get_text() and t.get_visible()]
    assert all(not a.overlaps(b) for a, b in itertools.pairwise(boxes))
    assert "68% CL, Fisher information" in texts(fig)
    assert outside(fig)


def test_distributions_have_ratio_panels():
    edges = np.linspace(0, 4, 9)
    sm = np.array([0.4, 0.3, 0.15, 0.08, 0.04, 0.02, 0.008, 0.002])
    bsm = sm * np.linspace(0.9, 1.6, 8)
    densities = {"sm": sm / (sm.sum() * 0.5), "c = 0.4": bsm / (bsm.sum() * 0.5)}
    dist = {"pt": Distribution(r"$p_T^W$ [GeV]", edges, densities)}
    fig = plots.distributions_figure(dist, luminosity_ifb=LUMI)
    _, bottom = fig.axes
    assert bottom.get_xlabel() == r"$p_T^W$ [GeV]" and "ratio to" in bottom.get_ylabel()
    ratio = bottom.patches[1].get_data().values  # c = 0.4 over sm
    expected = (bsm / bsm.sum()) / (sm / sm.sum())
    np.testing.assert_allclose(ratio, expected)
    np.testing.assert_allclose(bottom.patches[0].get_data().values, 1.0)
    assert {"sm", "c = 0.4", "300 fb$^{-1}$"} <= set(texts(fig))
    assert outside(fig)


def test_ratio_range_ignores_the_empty_tail():
    limits = ratio_limits([np.array([0.9, 1.1, 25.0])], np.array([1.0, 0.5, 1e-4]))
    assert limits == pytest.approx((0.88, 1.12))
    assert ratio_limits([np.array([50.0, 60.0])], np.array([1.0, 1.0]))[1] == 3.0  # never beyond 3


def test_training_calibration_and_cut_flow_legends_outside():
    curve = LossCurve(np.array([1.0, 0.5, 0.4]), np.array([1.1, 0.6, 0.5]), 2)
    losses = plots.loss_curves_figure({"sally": [curve]})
    checks = Calibration(np.ones((3, 2)), np.ones(3), np.full(3, 0.01))
    calibration = plots.calibration_figure({"alices": checks})
    flow = plots.cut_flow_figure(CutFlowResult(("one lepton", "two b-tags"), np.array([0.8, 0.25])))
    for fig in (losses, calibration, flow):
        assert plots.has_data(fig) and outside(fig)
    assert {"SALLY", "train", "validation"} <= set(texts(losses))


def test_save_writes_png_and_pdf(tmp_path, scan_1d):
    path = plots.save_figure(plots.scan_1d_figure(scan_1d, C_LABEL), tmp_path / "scan.png", pdf=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "scan.pdf").read_bytes()[:5] == b"%PDF-"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.pdf", "scan.png"]  # no temporary left


def test_assay_report_pdf_writes_a_pdf_beside_every_png(tmp_path):
    """`assay report --pdf`: every figure also as PDF (without --pdf: PNG only, the faster default)."""
    from typer.testing import CliRunner

    from assay.cli import app
    from assay.results import LevelResults, Results

    theta = np.linspace(-1, 1, 21)
    level = LevelResults(label="toy", scans_1d={"c": Scan1D("c", theta, {}, {"truth": theta**2})},
                         intervals={"truth": {"c_68": (-1.0, 1.0)}})  # fmt: skip
    Results(title="t", parameters=("c",), parameter_labels=("c",), luminosity_ifb=1.0,
            levels={"toy": level}).to_json(tmp_path / "results.json")  # fmt: skip
    assert CliRunner().invoke(app, ["report", str(tmp_path)]).exit_code == 0
    assert not list((tmp_path / "plots").glob("*.pdf"))
    assert CliRunner().invoke(app, ["report", str(tmp_path), "--pdf"]).exit_code == 0
    pngs, pdfs = ({p.stem for p in (tmp_path / "plots").glob(f"*.{e}")} for e in ("png", "pdf"))
    assert pngs and pngs == pdfs
