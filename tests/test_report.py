"""Plots, report.html and ``assay report`` on a synthetic typed Results (docs/results.md)."""

from __future__ import annotations

import html
import re

import numpy as np
import pytest
from matplotlib.contour import ContourSet
from typer.testing import CliRunner

from assay import plots
from assay.cli import app
from assay.report import format_interval, write_report
from assay.results import (
    Calibration,
    Coverage,
    CutFlowResult,
    Distribution,
    FisherInformation,
    LevelResults,
    LossCurve,
    Results,
    Scan1D,
    Scan2D,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PARAMETERS = ("cHW", "cHWtilde")
METHODS = {"truth": 4.0, "sally": 3.0, "alices": 3.6}  # curvature of q = a θ² along each axis
A = np.array([[4.0, 1.0], [1.0, 2.0]])  # q = θᵀ A θ on the 2D grid
THETA = np.linspace(-1.2, 1.2, 41)


def quadratic_grid(matrix: np.ndarray, n: int = 35, half_width: float = 2.0):
    axis = np.linspace(-half_width, half_width, n)
    x, y = np.meshgrid(axis, axis, indexing="ij")  # q[i][j] at (axis[i], axis[j])
    q = matrix[0, 0] * x**2 + 2 * matrix[0, 1] * x * y + matrix[1, 1] * y**2
    return axis, q


def intervals(a: float) -> dict:
    """Exact intervals of q = a θ² (θ = ±sqrt(q_crit / a)) for both parameters."""
    i68, i95 = np.sqrt(1.0 / a), np.sqrt(3.84 / a)
    return {f"{p}_{cl}": (-w, w) for p in PARAMETERS for cl, w in (("68", i68), ("95", i95))}


def loss_curve(scale: float, n: int = 6) -> LossCurve:
    loss = scale * (1 + np.exp(-np.arange(n)))
    return LossCurve(loss, 1.05 * loss, n - 2)


def scan_1d(parameter: str) -> Scan1D:
    q = {m: a * THETA**2 for m, a in METHODS.items()}
    q["sally"][3] = np.nan  # a NaN entry: skipped
    other = next(p for p in PARAMETERS if p != parameter)
    return Scan1D(parameter, THETA, {other: 0.0}, q)


def level(label: str, *, data: str = "asimov", **changes) -> LevelResults:
    axis, q = quadratic_grid(A)
    edges = np.linspace(0.0, 500.0, 11)
    fisher = {"truth": 2 * A, "sally": 1.5 * A, "rate": np.array([[1.0, 0.5], [0.5, 0.25]])}
    benchmarks = {"sm": np.full(10, 0.002), "cHWtilde=+1": np.linspace(0.001, 0.003, 10)}
    fields = dict(
        label=label,
        data=data,
        n_events={"generated": 20000, "stored": 4000},
        scans_1d={p: scan_1d(p) for p in PARAMETERS},
        scans_2d=(
            Scan2D(PARAMETERS, (axis, axis), {}, {"truth": q, "alices": 0.9 * q}),
            Scan2D(PARAMETERS[::-1], (axis, axis), {}, {"sally": q.T}),
        ),
        intervals={m: intervals(a) for m, a in METHODS.items()},
        fisher=FisherInformation(np.zeros(2), fisher),
        histories={m: (loss_curve(s), loss_curve(1.1 * s)) for m, s in (("sally", 1.0), ("alices", 0.6))},
        calibration={"alices": Calibration([[0.1, 0.2], [0.5, -0.3], [1, 1]], [1, 0.99, np.nan], [0.01] * 3)},
        distributions={"pT_W": Distribution("$p_T^W$ [GeV]", edges, benchmarks)},
        cut_flow=CutFlowResult(("one lepton", "two b-tags"), [0.8, 0.25]),
        checks={"pyhf_vs_assay_max_abs_dq": 2e-7, "pyhf_scan": "hist_pt_w, cHW"},
    )
    return LevelResults(**(fields | changes))


def full_results() -> Results:
    open_end = {"cHW_68": (None, 0.5), "cHW_95": (-0.8, None)}
    coverage = Coverage(np.zeros(2), 250, (0.68, 0.95), {"truth": {"cHW_68": 0.672, "cHW_95": 0.948}})
    detector = level(
        "detector level",
        data="observed: data.h5",
        intervals={"sally": open_end, "alices": intervals(3.6)},
        warnings=("sally's 95% region of cHW reaches past the scan",),
        coverage=coverage,
    )
    return Results(
        title="synthetic <run>",
        parameters=PARAMETERS,
        parameter_labels=("$c_{HW}$", r"$c_{H\tilde{W}}$"),
        parameter_units=("TeV^-2", "TeV^-2"),
        luminosity_ifb=300.0,
        levels={"parton": level("parton level"), "detector": detector},
        timings_s={"parton_generation": 3.1, "training": 12.5},
    )


def minimal_results(**level_fields) -> Results:
    scan = Scan1D("c", THETA[::8], {}, {"bit": THETA[::8] ** 2})
    only_scan = LevelResults(label="parton", scans_1d={"c": scan}, intervals={}, **level_fields)
    return Results(title="small", parameters=("c",), parameter_labels=("c",), luminosity_ifb=1.0,
                   levels={"parton": only_scan})  # fmt: skip


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    full_results().to_json(folder / "results.json")
    (folder / "summary.json").write_text('{"checks": {"sigma_sm_pb": 0.123}, "timings_s": {"total": 20}}')
    return folder, write_report(folder)


def referenced_images(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', page)


def test_report_has_the_intervals_and_valid_plots(full_run):
    folder, path = full_run
    assert path == folder / "report.html"
    page = path.read_text()
    assert "synthetic &lt;run&gt;" in page  # escaped
    for a in METHODS.values():
        assert f"[{-np.sqrt(1 / a):#.3g}, {np.sqrt(1 / a):#.3g}]" in page  # e.g. [-0.577, 0.577]
        assert f"[{-np.sqrt(3.84 / a):#.3g}, {np.sqrt(3.84 / a):#.3g}]" in page
    for column in ("cHW_68", "cHW_95", "cHWtilde_68", "cHWtilde_95", "width cHW_68 / truth"):
        assert f"<th>{column}</th>" in page
    assert f"<td>{np.sqrt(4.0 / 3.0):.2f}</td>" in page  # sally width / truth = sqrt(a_truth / a_sally)
    sigma = np.sqrt(np.diag(np.linalg.inv(2 * A)))
    assert f"<td>{sigma[0]:#.3g}</td>" in page and "<td>∞</td>" in page  # rate: rank one
    assert "parton_generation" in page and "sigma_sm_pb" in page and "<td>20.00</td>" in page
    assert "pyhf_vs_assay_max_abs_dq" in page and "<td>2e-07</td>" in page and "hist_pt_w, cHW" in page
    assert "cHW [TeV⁻²]" in page
    assert "<script" not in page and "http" not in page
    images = referenced_images(page)
    expected = {"scan_cHW", "scan_cHWtilde", "contours_cHW_cHWtilde", "contours_cHWtilde_cHW", "fisher",
                "distributions", "losses", "calibration", "cut_flow"}  # fmt: skip
    assert {f"plots/{lvl}_{name}.png" for lvl in ("parton", "detector") for name in expected} == set(images)
    for image in images:
        assert (folder / image).read_bytes()[:8] == PNG_MAGIC
    assert not list(folder.glob("**/*.tmp"))


def test_report_shows_data_warnings_coverage_and_open_ends(full_run):
    _, path = full_run
    page = html.unescape(path.read_text())
    assert ">observed: data.h5</td>" in page and ">asimov</td>" in page
    assert "generated 20,000, stored 4,000" in page
    assert "detector: sally's 95% region of cHW reaches past the scan" in page
    # open ends: past the lowest / highest value of the cHW scan (±1.2)
    assert "[< -1.20, 0.500]" in page and "[-0.800, > 1.20]" in page
    assert "<h2>Coverage</h2>" in page
    assert "<td>67.2%</td>" in page and "<td>94.8%</td>" in page and "<td>250</td>" in page
    assert "Expected and observed intervals" in page


def test_missing_parts_are_not_drawn(tmp_path):
    minimal_results().to_json(tmp_path / "results.json")
    page = write_report(tmp_path).read_text()
    assert referenced_images(page) == ["plots/parton_scan_c.png"]
    assert (tmp_path / "plots" / "parton_scan_c.png").read_bytes()[:8] == PNG_MAGIC
    assert "Intervals" not in page and "Fisher" not in page and "Coverage" not in page


def test_nan_entries_do_not_break_the_plots():
    nan2 = np.full(2, np.nan)
    assert not plots.has_data(plots.scan_1d_figure(Scan1D("c", [0.0, 1.0], {}, {"sally": nan2}), "c"))
    assert not plots.has_data(plots.contours_2d_figure(Scan2D(("a", "b"), ([0, 1], [0, 1]), {}, {}), "ab"))
    assert not plots.has_data(plots.distributions_figure({"x": Distribution("x", [0, 1], {"sm": [np.nan]})}))
    assert not plots.has_data(plots.loss_curves_figure({"sally": (LossCurve([np.nan], [], 0),)}))
    assert not plots.has_data(plots.calibration_figure({"alices": Calibration(np.zeros((2, 2)), nan2)}))
    assert not plots.has_data(plots.cut_flow_figure(CutFlowResult(("a", "b"), nan2)))
    zero = FisherInformation(np.zeros(2), {"truth": np.zeros((2, 2))})
    assert not plots.has_data(plots.fisher_ellipses_figure(zero, "ab"))
    rate = FisherInformation(np.zeros(2), {"rate": np.array([[1.0, 0.5], [0.5, 0.25]])})
    assert plots.has_data(plots.fisher_ellipses_figure(rate, "ab"))
    one = FisherInformation(np.zeros(1), {"truth": np.ones((1, 1))})
    assert not plots.has_data(plots.fisher_ellipses_figure(one, "ab"))


def test_malformed_results_raise_store_error(tmp_path):
    (tmp_path / "results.json").write_text('{"format": "assay.results", "schema_version": 1}')
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2
    assert "results.json:title:missing(arequiredkey)" in "".join(result.output.split())  # wrapped anywhere
    assert not (tmp_path / "report.html").exists()


def test_unreadable_summary_is_reported_not_fatal(tmp_path):
    minimal_results().to_json(tmp_path / "results.json")
    (tmp_path / "summary.json").write_text("{oops")
    assert "summary.json: cannot read the metadata" in write_report(tmp_path).read_text()


def test_format_interval():
    assert format_interval((-0.1234, 0.1451)) == "[-0.123, 0.145]"
    assert format_interval((-0.0048612, 0.013)) == "[-0.00486, 0.0130]"
    assert format_interval((None, 0.5)) == "[open, 0.500]"
    assert format_interval((-1.0, None), (-2.0, 3.0)) == "[-1.00, > 3.00]"


def test_axis_label():
    assert plots.axis_label("$c_{HW}$", "TeV^-2") == "$c_{HW}$ [TeV$^{-2}$]"
    assert plots.axis_label("$m$", "GeV") == "$m$ [GeV]" and plots.axis_label("x", "") == "x"


def test_cli_writes_the_report(tmp_path):
    minimal_results(warnings=("few events",)).to_json(tmp_path / "results.json")
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "report written to" in result.output and "report.html" in result.output
    page = (tmp_path / "report.html").read_text()
    assert referenced_images(page) == ["plots/parton_scan_c.png"] and "parton: few events" in page


def test_68_percent_contour_is_on_the_quadratic_form():
    axis, q = quadratic_grid(A)
    fig = plots.contours_2d_figure(Scan2D(("x", "y"), (axis, axis), {}, {"truth": q}), ["x", "y"])
    (contour,) = [
        c for c in fig.axes[0].collections if isinstance(c, ContourSet) and c.get_label() == "truth"
    ]
    assert list(contour.levels) == pytest.approx([2.30, 5.99])
    vertices = np.concatenate(contour.allsegs[0])  # the 68% level
    assert len(vertices) > 50
    values = np.einsum("ni,ij,nj->n", vertices, A, vertices)
    np.testing.assert_allclose(values, 2.30, rtol=0.02)


def test_fisher_ellipse_is_on_the_information_form():
    fig = plots.fisher_ellipses_figure(FisherInformation([0.1, -0.2], {"truth": A}), ["x", "y"])
    (line,) = [ln for ln in fig.axes[0].lines if ln.get_label() == "truth"]
    delta = line.get_xydata() - [0.1, -0.2]
    np.testing.assert_allclose(np.einsum("ni,ij,nj->n", delta, A, delta), 2.30, rtol=1e-3)


def test_report_has_the_coverage_of_profiled_intervals(tmp_path):
    """`assay coverage` writes coverage.json next to results.json: the report gets a section with one
    row per method and true point (Wilks' and, with a belt, the Neyman coverage); an unreadable
    file is a note, not a failure."""
    import json

    minimal_results().to_json(tmp_path / "results.json")
    row = {"method": "truth_profiled", "mu": 1.0, "alpha": {"lumi": 0.0, "gg_shower": 1.0}, "n_toys": 200,
           "n_failed": 2, "coverage_68": 0.92, "coverage_68_error": 0.019, "mean_width_68": 1.06,
           "challenge_score": -5.02, "pull_mu_mean": -0.49, "pull_mu_std": 1.36,
           "neyman": {"t_c": 0.53, "coverage_68": 0.675, "coverage_68_error": 0.033, "mean_width_68": None,
                      "challenge_score": None}}  # fmt: skip
    data = {"format": "assay-coverage", "version": 1, "settings": {"n_toys": 200, "scan": [0.0, 3.0, 17]},
            "results": [row]}  # fmt: skip
    (tmp_path / "coverage.json").write_text(json.dumps(data))
    page = write_report(tmp_path).read_text()
    assert "<h2>Coverage of profiled intervals</h2>" in page
    for cell in ("truth_profiled", "μ = 1, gg_shower = 1", "198/200", "0.920 ± 0.019", "1.06", "-5.020",
                 "-0.49 ± 1.36", "0.53", "0.675 ± 0.033", "17-point scan of μ over [0.0, 3.0]"):  # fmt: skip
        assert html.escape(cell) in page, cell
    (tmp_path / "coverage.json").write_text("{oops")
    assert "coverage.json: unreadable" in write_report(tmp_path).read_text()


def test_write_report_takes_a_run_folder(tmp_path, monkeypatch):
    """write_report(RUN) uses RUN/limits/ where RUN holds no results.json (as `assay report RUN`)."""
    monkeypatch.setattr("assay.report._write_plots", lambda *_: [])
    limits = tmp_path / "run" / "limits"
    limits.mkdir(parents=True)
    minimal_results().to_json(limits / "results.json")
    assert write_report(tmp_path / "run") == limits / "report.html"
    assert (limits / "report.html").is_file() and not (tmp_path / "run" / "report.html").exists()
