"""Plots, report.html and ``assay report`` on a synthetic results.json (docs/results.md)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from matplotlib.contour import ContourSet
from typer.testing import CliRunner

from assay import plots
from assay.cli import app
from assay.exceptions import StoreError
from assay.report import format_interval, load_results, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
METHODS = {"truth": 4.0, "sally": 3.0, "alices": 3.6}  # curvature of q = a θ² along each axis
A = np.array([[4.0, 1.0], [1.0, 2.0]])  # q = θᵀ A θ on the 2D grid


def quadratic_grid(matrix: np.ndarray, n: int = 35, half_width: float = 2.0):
    axis = np.linspace(-half_width, half_width, n)
    x, y = np.meshgrid(axis, axis, indexing="ij")  # q[i][j] at (axis[i], axis[j])
    q = matrix[0, 0] * x**2 + 2 * matrix[0, 1] * x * y + matrix[1, 1] * y**2
    return axis, q


def intervals(a: float) -> dict:
    """Exact intervals of q = a θ² (θ = ±sqrt(q_crit / a)) for both parameters."""
    i68, i95 = np.sqrt(1.0 / a), np.sqrt(3.84 / a)
    return {f"{p}_{cl}": [-w, w] for p in ("cHW", "cHWtilde") for cl, w in (("68", i68), ("95", i95))}


def history(scale: float, n: int = 6) -> dict:
    loss = scale * (1 + np.exp(-np.arange(n)))
    return {"train_loss": loss.tolist(), "val_loss": (1.05 * loss).tolist(), "best_epoch": n - 2}


def level(label: str) -> dict:
    theta = np.linspace(-1.2, 1.2, 41)
    scan = {m: (a * theta**2).tolist() for m, a in METHODS.items()}
    scan["sally"][3] = None  # a NaN entry: skipped
    axis, q = quadratic_grid(A)
    edges = np.linspace(0.0, 500.0, 11)
    fisher = {"truth": (2 * A).tolist(), "sally": (1.5 * A).tolist(), "rate": [[1.0, 0.5], [0.5, 0.25]]}
    calibration = {"theta": [[0.1, 0.2], [0.5, -0.3], [1.0, 1.0]], "r_hat_mean": [1.0, 0.99, None]}
    benchmarks = {"sm": np.full(10, 0.002).tolist(), "cHWtilde=+1": np.linspace(0.001, 0.003, 10).tolist()}
    return {
        "label": label,
        "scans_1d": {
            "cHWtilde": {"theta": theta.tolist(), "fixed": {"cHW": 0.0}, "q": scan},
            "cHW": {"theta": theta.tolist(), "fixed": {"cHWtilde": 0.0}, "q": scan},
        },
        "scan_2d": {"axes": [axis.tolist()] * 2, "q": {"truth": q.tolist(), "alices": (0.9 * q).tolist()}},
        "intervals": {m: intervals(a) for m, a in METHODS.items()},
        "fisher": {"theta": [0.0, 0.0], "information": fisher},
        "histories": {"sally": [history(1.0), history(1.1)], "alices": [history(0.6), history(0.65)]},
        "calibration": {"alices": {**calibration, "r_hat_std": [0.01, 0.02, 0.05]}},
        "distributions": {
            "pT_W": {"edges": edges.tolist(), "label": "$p_T^W$ [GeV]", "benchmarks": benchmarks}
        },
    }


def full_results() -> dict:
    return {
        "title": "synthetic <run>",
        "parameters": ["cHW", "cHWtilde"],
        "parameter_labels": ["$c_{HW}$", "$c_{H\\tilde{W}}$"],
        "luminosity_ifb": 300.0,
        "levels": {"parton": level("parton level"), "detector": level("detector level")},
        "timings_s": {"parton_generation": 3.1, "training": 12.5},
    }


def write_run(folder, results) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results))


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    write_run(folder, full_results())
    (folder / "summary.json").write_text(
        json.dumps({"checks": {"sigma_sm_pb": 0.123}, "timings_s": {"total": 20}})
    )
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
    assert "<script" not in page and "http" not in page
    images = referenced_images(page)
    expected = {"scan_cHW", "scan_cHWtilde", "contours", "fisher", "distributions", "losses", "calibration"}
    assert {f"plots/{lvl}_{name}.png" for lvl in ("parton", "detector") for name in expected} == set(images)
    for image in images:
        assert (folder / image).read_bytes()[:8] == PNG_MAGIC
    assert not list(folder.glob("**/*.tmp"))


def test_missing_keys_are_tolerated(tmp_path):
    theta = [-1.0, -0.5, 0.0, 0.5, 1.0]
    only_scan = {
        "levels": {"parton": {"scans_1d": {"c": {"theta": theta, "q": {"bit": [1.0, 0.25, 0, 0.25, 1]}}}}}
    }
    write_run(tmp_path, only_scan)
    page = write_report(tmp_path).read_text()
    assert referenced_images(page) == ["plots/parton_scan_c.png"]
    assert (tmp_path / "plots" / "parton_scan_c.png").read_bytes()[:8] == PNG_MAGIC
    assert "Intervals" not in page and "Fisher" not in page


def test_empty_and_null_entries_do_not_break_the_plots():
    assert not plots.has_data(plots.scan_1d_figure({"theta": [0.0, 1.0], "q": {"sally": [None, None]}}, "c"))
    assert not plots.has_data(plots.contours_2d_figure({"axes": [[0, 1]], "q": {}}, ["a", "b"]))
    assert not plots.has_data(
        plots.distributions_figure({"x": {"edges": [0, 1], "benchmarks": {"sm": [1, 2]}}})
    )
    assert not plots.has_data(plots.loss_curves_figure({"sally": [{"train_loss": [None]}]}))
    assert not plots.has_data(plots.calibration_figure({"alices": {"r_hat_mean": "x"}}))
    assert not plots.has_data(
        plots.fisher_ellipses_figure({"information": {"truth": [[0, 0], [0, 0]]}}, "ab")
    )
    assert plots.has_data(
        plots.fisher_ellipses_figure({"information": {"rate": [[1.0, 0.5], [0.5, 0.25]]}}, "ab")
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "results.json: not found"),
        ("{not json", "results.json: cannot read it as JSON"),
        ("[1, 2]", "results.json: expected a JSON object with a 'levels' object, got a JSON array"),
        ('{"title": "x"}', "results.json: expected a 'levels' object"),
        ('{"levels": {"parton": 3}}', "results.json: levels.parton: expected an object"),
        ('{"levels": {}, "parameters": "cHW"}', "results.json: expected 'parameters' as a list of names"),
    ],
)
def test_malformed_results_raise_store_error(tmp_path, content, message):
    if content is not None:
        (tmp_path / "results.json").write_text(content)
    with pytest.raises(StoreError, match=re.escape(message)):
        write_report(tmp_path)
    assert not (tmp_path / "report.html").exists()


def test_unreadable_summary_is_reported_not_fatal(tmp_path):
    write_run(tmp_path, {"levels": {}})
    (tmp_path / "summary.json").write_text("{oops")
    assert "summary.json: cannot read the metadata" in write_report(tmp_path).read_text()


def test_format_interval():
    assert format_interval([-0.1234, 0.1451]) == "[-0.123, 0.145]"
    assert format_interval([-0.0048612, 0.013]) == "[-0.00486, 0.0130]"
    assert format_interval([[-1, -0.5], [0.5, None]]) == "[-1.00, -0.500] ∪ [0.500, —]"
    assert format_interval("junk") == "—"


def test_cli_writes_the_report(tmp_path):
    parton = level("parton")
    small = {key: parton[key] for key in ("intervals", "fisher")} | {
        "scans_1d": {"cHW": parton["scans_1d"]["cHW"]}
    }
    write_run(tmp_path, {"title": "cli", "levels": {"parton": small}})
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "report written to" in result.output and "report.html" in result.output
    assert load_results(tmp_path / "results.json")["title"] == "cli"
    page = (tmp_path / "report.html").read_text()
    assert referenced_images(page) == ["plots/parton_scan_cHW.png", "plots/parton_fisher.png"]


def test_cli_reports_a_malformed_file(tmp_path):
    (tmp_path / "results.json").write_text("{}")
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2
    assert "expected a 'levels' object" in " ".join(result.output.split())


def test_68_percent_contour_is_on_the_quadratic_form():
    axis, q = quadratic_grid(A)
    fig = plots.contours_2d_figure({"axes": [axis.tolist()] * 2, "q": {"truth": q.tolist()}}, ["x", "y"])
    (contour,) = [
        c for c in fig.axes[0].collections if isinstance(c, ContourSet) and c.get_label() == "truth"
    ]
    assert list(contour.levels) == pytest.approx([2.30, 5.99])
    vertices = np.concatenate(contour.allsegs[0])  # the 68% level
    assert len(vertices) > 50
    values = np.einsum("ni,ij,nj->n", vertices, A, vertices)
    np.testing.assert_allclose(values, 2.30, rtol=0.02)


def test_fisher_ellipse_is_on_the_information_form():
    fig = plots.fisher_ellipses_figure(
        {"theta": [0.1, -0.2], "information": {"truth": A.tolist()}}, ["x", "y"]
    )
    (line,) = [ln for ln in fig.axes[0].lines if ln.get_label() == "truth"]
    delta = line.get_xydata() - [0.1, -0.2]
    np.testing.assert_allclose(np.einsum("ni,ij,nj->n", delta, A, delta), 2.30, rtol=1e-3)
