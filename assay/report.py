"""``assay report``: ``report.html`` and ``plots/*.png`` of a run, from its ``results.json``.

:func:`write_report` reads ``RUN_DIR/results.json`` once (:meth:`assay.results.Results.from_json`,
docs/results.md) and, when present, ``RUN_DIR/summary.json`` (only its ``checks`` and ``timings_s``);
draws every figure the results have data for with :mod:`assay.plots` into ``RUN_DIR/plots/`` and
writes ``RUN_DIR/report.html``: the levels (data, events, warnings), the intervals of every level
and method, best fits, toy coverage, the expected uncertainties from the Fisher information, the
checks and timings, then the figures and the provenance (:mod:`assay.provenance`: the inputs' SHA-256,
the config and seed of ``provenance.json``; the record also sits in an ``assay:provenance`` comment).
The page is plain HTML with inline CSS (no scripts, no
external resources; images by relative path), so the run folder can be copied or served as it is.
Every file is written atomically.
"""

from __future__ import annotations

import html
import logging
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from assay import __version__
from assay.exceptions import StoreError
from assay.provenance import (
    PROVENANCE_FILE,
    Provenance,
    describe,
    html_comment,
    make_provenance,
    read_html_provenance,
    read_provenance,
)
from assay.report_coverage import coverage_section
from assay.report_cutflow import cut_flow_section
from assay.results import LevelResults, Results
from assay.rundir import ResultsDir
from assay.saving import read_json, write_text

__all__ = ["PLOTS", "REPORT", "RESULTS", "SUMMARY", "format_interval", "write_report"]

log = logging.getLogger(__name__)

_NAMES = ResultsDir(".")
RESULTS = _NAMES.results.name  # results.json
SUMMARY = _NAMES.summary.name  # summary.json
REPORT = _NAMES.report.name  # report.html
PLOTS = _NAMES.plots.name  # plots/
_MISSING = "—"  # a number that is NaN or infinite, or an entry a method does not have


@dataclass(frozen=True)
class _Plot:
    """One figure of the report: its PNG relative to the run folder, the level it shows, a caption."""

    path: str
    level: str
    caption: str


def write_report(run_dir: str | os.PathLike, *, pdf: bool = False) -> Path:
    """Write ``RUN_DIR/report.html`` and its figures ``RUN_DIR/plots/*.png``.

    Args:
        run_dir: the folder holding ``results.json`` (and optionally ``summary.json``): the demo's
            output, a run's ``limits/``; or a run folder of `assay limits`, whose ``limits/`` is used.
        pdf: also write every figure as PDF beside its PNG (vector graphics for a paper; about
            0.2 s more per figure, so `assay report --pdf` asks for it).

    Returns:
        The path of ``report.html``.

    Raises:
        StoreError: ``results.json`` is missing or malformed (naming the file and the key path).
    """
    run_dir = results_folder(run_dir)
    results = Results.from_json(run_dir / RESULTS)
    summary, summary_problem = _read_summary(run_dir / SUMMARY)
    (run_dir / PLOTS).mkdir(exist_ok=True)
    plots = _write_plots(results, run_dir, pdf)
    path = run_dir / REPORT
    record = _provenance(run_dir, path)
    sections = (cut_flow_section(run_dir, list(results.levels)), coverage_section(run_dir),
                _diagnostics_section(run_dir), _provenance_section(record))  # fmt: skip
    write_text(path, _page(results, summary, summary_problem, plots, "\n".join(s for s in sections if s)))
    return path


def results_folder(folder: str | os.PathLike) -> Path:
    """``folder`` if it holds ``results.json``, else its ``limits/`` where that does (a run folder)."""
    from assay.rundir import RunDir

    folder = Path(folder)
    limits = RunDir(folder).limits
    return limits.root if not (folder / RESULTS).exists() and limits.results.exists() else folder


def _provenance(run_dir: Path, page: Path) -> Provenance:
    """The report's provenance: its inputs (results.json, summary.json) with the config and seed of the
    limits' ``provenance.json`` where there is one; an existing page's record when nothing changed (its
    time kept, so the rerun rewrites nothing)."""
    try:
        limits = read_provenance(run_dir / PROVENANCE_FILE) if (run_dir / PROVENANCE_FILE).exists() else None
    except StoreError as exc:
        log.warning("%s; the report records no config", exc)
        limits = None
    inputs = [p for p in (run_dir / RESULTS, run_dir / SUMMARY) if p.is_file()]
    record = make_provenance(config=limits.config if limits else None, seed=limits.seed if limits else None,
                             inputs=inputs)  # fmt: skip
    try:
        old = read_html_provenance(page) if page.is_file() else None
    except StoreError:
        old = None
    return old if record.same_origin(old) else record


def _provenance_section(record: Provenance) -> str:
    """The table of :func:`assay.provenance.describe` and the record itself as an HTML comment."""
    table = _table(["field", "value"], [list(row) for row in describe(record)])
    return _section("Provenance", table) + "\n" + html_comment(record)


def _diagnostics_section(run_dir: Path) -> str:
    """The tables and figures of ``assay diagnostics`` (``diagnostics.json``), if it has been run."""
    path = ResultsDir(run_dir).diagnostics
    if not path.is_file():
        return ""
    from assay.plots_diagnostics import diagnostics_tables, write_diagnostics_plots

    try:
        data = read_json(path, missing="not found")
    except StoreError as exc:
        log.warning("%s", exc)
        return f'<p class="note">{_e(exc)}</p>'
    parts = [_section(title, _table(header, rows, names=2), note)
             for title, header, rows, note in diagnostics_tables(data)]  # fmt: skip
    parts += [f'<figure><img src="{_e(p)}" alt="{_e(c)}"><figcaption>{_e(c)}</figcaption></figure>'
              for p, c in write_diagnostics_plots(data, run_dir)]  # fmt: skip
    return "\n".join(parts)


def _read_summary(path: Path) -> tuple[dict, str | None]:
    """``summary.json`` if present and readable, else ``{}`` and why not (None when absent)."""
    if not path.exists():
        return {}, None
    try:
        data = read_json(path, missing="not found")
    except StoreError as exc:
        log.warning("%s", exc)
        return {}, str(exc)
    return (data, None) if isinstance(data, dict) else ({}, f"{path}: expected a JSON object")


def _summary_part(summary: Mapping, key: str) -> dict[str, Any]:
    """``summary[key]`` if it is an object (summary.json is written by others and read loosely)."""
    value = summary.get(key)
    return value if isinstance(value, dict) else {}


# --- figures --------------------------------------------------------------------------------------------


def _safe(name: str) -> str:
    """A file-name-safe version of a level or parameter name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "x"


def _axis_labels(results: Results) -> dict[str, str]:
    from assay.plots import axis_label

    return {p: axis_label(label, unit) for p, label, unit in
            zip(results.parameters, results.parameter_labels, results.parameter_units)}  # fmt: skip


def _method_names(level: LevelResults) -> dict[str, str]:
    """Histogram methods by their observable's configured axis label (``hist_x`` → "histogram <label>")."""
    return {f"hist_{key}": f"histogram {d.label}" for key, d in level.distributions.items()}


def _what(level: LevelResults) -> str:
    return "expected" if level.data == "asimov" else "observed"


def _level_figures(name: str, level: LevelResults, results: Results) -> list[tuple[str, Callable, str]]:
    """(file stem, figure maker, caption) of every figure the level has data for."""
    from assay import plots

    labels, title, stem = _axis_labels(results), level.label, _safe(name)
    shown = {"luminosity_ifb": results.luminosity_ifb, "method_names": _method_names(level)}
    jobs = []
    for parameter in [p for p in results.parameters if p in level.scans_1d]:
        scan = level.scans_1d[parameter]
        fixed = ", ".join(f"{k} = {v:g}" for k, v in scan.fixed.items())
        caption = f"{title}: {_what(level)} −2Δlog L along {parameter}" + (f" ({fixed})" if fixed else "")
        caption += "; dashed lines at q = 1 and 3.84 (68% and 95% CL)."
        maker = partial(plots.scan_1d_figure, scan, labels[parameter], **shown)
        jobs.append((f"{stem}_scan_{_safe(parameter)}", maker, caption))
    pairs: list[str] = []
    for scan in level.scans_2d:
        pair = "_".join(_safe(p) for p in scan.parameters)
        pairs.append(pair)
        suffix = f"_{pairs.count(pair)}" if pairs.count(pair) > 1 else ""
        caption = (f"{title}: {_what(level)} 68% (solid) and 95% (dashed) CL contours in "
                   f"({', '.join(scan.parameters)}), q = 2.30 and 5.99.")  # fmt: skip
        maker = partial(plots.contours_2d_figure, scan, [labels[p] for p in scan.parameters], **shown)
        jobs.append((f"{stem}_contours_{pair}{suffix}", maker, caption))
    if level.fisher is not None and len(results.parameters) >= 2:
        at = ", ".join(_fmt(float(x)) for x in level.fisher.theta)
        caption = (f"{title}: 68% CL ellipses δᵀ I δ = 2.30 of the Fisher information at θ = ({at}), "
                   "other parameters profiled; a rank-one information (rate only) is the band between "
                   "its dashed lines.")  # fmt: skip
        maker = partial(
            plots.fisher_ellipses_figure, level.fisher, [labels[p] for p in results.parameters[:2]], **shown
        )
        jobs.append((f"{stem}_fisher", maker, caption))
    parts = [
        ("distributions", level.distributions,
         partial(plots.distributions_figure, luminosity_ifb=results.luminosity_ifb),
         "normalised distributions of the observables at the benchmarks, and their ratio to the first."),
        ("losses", level.histories, plots.loss_curves_figure,
         "training (solid) and validation (dashed) loss of every ensemble member; dots at the kept epochs."),
        ("calibration", level.calibration, plots.calibration_figure,
         "expectation check R̂(θ) = Σ w(θ₁) r̂(x|θ, θ₁) / Σ w(θ₁), 1 for a perfect estimator; "
         "error bars: ensemble spread."),
        ("cut_flow", level.cut_flow, plots.cut_flow_figure,
         "cumulative weighted efficiency of the selection, cut by cut."),
    ]  # fmt: skip
    jobs += [
        (f"{stem}_{key}", partial(make, part), f"{title}: {text}") for key, part, make, text in parts if part
    ]
    if level.systematics:
        from assay.plots_systematics import impact_ranking_figure

        caption = (f"{title}: impact of each nuisance on {results.parameters[0]} (bars: the best fit moved "
                   "by fixing it at α̂ ± σ, the others profiled) and its pull (α̂ − 0)/σ with the post-fit σ; "
                   "Asimov data.")  # fmt: skip
        maker = partial(impact_ranking_figure, level.systematics, labels[results.parameters[0]])
        jobs.append((f"{stem}_impacts", maker, caption))
    return jobs


def _write_plots(results: Results, run_dir: Path, pdf: bool = False) -> list[_Plot]:
    """Draw and save every figure with data; figures with nothing drawable are not written."""
    from assay import plots

    written = []
    for name, level in results.levels.items():
        for stem, make, caption in _level_figures(name, level, results):
            fig = make()
            if not plots.has_data(fig):
                fig.clear()
                continue
            relative = f"{PLOTS}/{stem}.png"
            plots.save_figure(fig, run_dir / relative, pdf=pdf)
            written.append(_Plot(relative, name, caption))
    return written


# --- numbers ------------------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    """A finite float, or None for null/NaN/inf/anything else (summary.json's loose values)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _fmt(value: float | None) -> str:
    """Three significant digits, zeros kept (``-0.123``, ``0.00486``, ``1.00``); ``—`` if not finite."""
    x = _number(value)
    return _MISSING if x is None else f"{x:#.3g}"


def format_interval(
    interval: tuple[float | None, float | None], scan_range: tuple[float, float] | None = None
) -> str:
    """``(lo, hi)`` as ``[-0.123, 0.145]``; an open end (None) as ``< lowest`` / ``> highest`` scanned.

    Args:
        interval: the ends; None where the region reaches past the scanned range.
        scan_range: (lowest, highest) value scanned, shown at open ends (else ``open``).

    Example:
        >>> format_interval((-0.1234, 0.1451)), format_interval((None, 0.5), (-1.0, 1.0))
        ('[-0.123, 0.145]', '[< -1.00, 0.500]')
        >>> format_interval((-0.5, None))
        '[-0.500, open]'
    """
    lo, hi = interval
    low = f"< {_fmt(scan_range[0])}" if lo is None and scan_range else "open" if lo is None else _fmt(lo)
    high = f"> {_fmt(scan_range[1])}" if hi is None and scan_range else "open" if hi is None else _fmt(hi)
    return f"[{low}, {high}]"


def _width(interval: tuple[float | None, float | None] | None) -> float | None:
    if interval is None or interval[0] is None or interval[1] is None:
        return None
    return interval[1] - interval[0]


def _ratio(interval: tuple | None, reference: tuple | None) -> str:
    width, ref = _width(interval), _width(reference)
    return _MISSING if width is None or not ref else f"{width / ref:.2f}"


def _sigmas(information: np.ndarray) -> list[str]:
    """sqrt(diag(I⁻¹)) formatted, ``∞`` along unconstrained directions, ``—`` if I is unusable."""
    from assay.inference.fisher import expected_uncertainties

    try:
        sigma = expected_uncertainties(information)
    except (ValueError, np.linalg.LinAlgError):
        return [_MISSING] * len(information)
    return ["∞" if math.isinf(s) else _fmt(float(s)) for s in sigma]


# --- HTML -----------------------------------------------------------------------------------------------

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { font-size: 1.3em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: .92em; }
th, td { border: 1px solid #ccc; padding: .3em .7em; text-align: right; white-space: nowrap; }
th { background: #f0f0f0; }
td.name, th.name { text-align: left; }
tr.group td { border-top: 2px solid #888; }
figure { display: inline-block; margin: 1em 1em 1em 0; max-width: 100%; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: .9em; color: #444; max-width: 760px; }
.note { color: #666; font-size: .9em; }
.warning { color: #a40; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], names: int = 1) -> str:
    """An HTML table; the first ``names`` columns are left-aligned text (a new first entry opens a group)."""

    def cells(row: Sequence[str], tag: str) -> str:
        name = ' class="name"'
        return "".join(f"<{tag}{name if i < names else ''}>{_e(c)}</{tag}>" for i, c in enumerate(row))

    lines = ["<table>", f"<tr>{cells(header, 'th')}</tr>"]
    for i, row in enumerate(rows):
        group = names > 1 and i > 0 and row[0] != rows[i - 1][0]
        opening = '<tr class="group">' if group else "<tr>"
        lines.append(f"{opening}{cells(row, 'td')}</tr>")
    return "\n".join([*lines, "</table>"])


def _section(title: str, table: str, note: str = "") -> str:
    return f"<h2>{_e(title)}</h2>\n{table}" + (f'\n<p class="note">{note}</p>' if note else "")


def _methods(entries: Mapping[str, Any]) -> list[str]:
    """Method keys, truth first, then in file order."""
    return sorted(entries, key=lambda m: m != "truth")


def _keys(results: Results, entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """The ``<param>_<tag>`` keys present in any entry, by parameter then confidence level."""
    present = {k for entry in entries for k in entry}
    order = {p: i for i, p in enumerate(results.parameters)}
    return sorted(present, key=lambda k: (order[k.rpartition("_")[0]], int(k.rpartition("_")[2])))


def _levels_section(results: Results) -> str:
    """One row per level: label, data, event counts; then every warning."""
    rows = [[name, level.label, level.data, ", ".join(f"{k} {v:,}" for k, v in level.n_events.items())]
            for name, level in results.levels.items()]  # fmt: skip
    warnings = [
        f"<li>{_e(name)}: {_e(w)}</li>" for name, level in results.levels.items() for w in level.warnings
    ]
    listed = f'\n<ul class="warning">\n{chr(10).join(warnings)}\n</ul>' if warnings else ""
    return _section("Levels", _table(["level", "label", "data", "events"], rows, names=3)) + listed


def _scan_range(level: LevelResults, key: str) -> tuple[float, float] | None:
    scan = level.scans_1d.get(key.rpartition("_")[0])
    finite = scan.theta[np.isfinite(scan.theta)] if scan is not None else ()
    return (float(finite.min()), float(finite.max())) if len(finite) else None


def _intervals_section(results: Results) -> str:
    """Rows level × method; a column per interval key, then widths of the first parameter's / truth."""
    keys = _keys(results, [e for level in results.levels.values() for e in level.intervals.values()])
    if not keys:
        return ""
    truth_anywhere = any("truth" in level.intervals for level in results.levels.values())
    ratios = [k for k in keys if k.rpartition("_")[0] == results.parameters[0]] if truth_anywhere else []
    header = ["level", "method", *keys, *(f"width {k} / truth" for k in ratios)]
    rows = []
    for name, level in results.levels.items():
        truth = level.intervals.get("truth", {})
        for method in _methods(level.intervals):
            entry = level.intervals[method]
            row = [name, _label(method)]
            row += [
                format_interval(entry[k], _scan_range(level, k)) if k in entry else _MISSING for k in keys
            ]
            rows.append(row + [_ratio(entry.get(k), truth.get(k)) for k in ratios])
    data = sorted({_what(level) for level in results.levels.values()})
    note = (f"{' and '.join(data).capitalize()} intervals from −2Δlog L; widths relative to truth at the "
            "same level; &lt; / &gt;: the region reaches past the lowest / highest value scanned; "
            f"{_MISSING}: not available.")  # fmt: skip
    return _section("Intervals", _table(header, rows, names=2), note)


def _label(method: str) -> str:
    from assay.plots import method_label

    return method_label(method)


def _best_fit_section(results: Results) -> str:
    rows = [[name, _label(m), *(_fmt(fit.get(p)) for p in results.parameters)]
            for name, level in results.levels.items() for m, fit in level.best_fit.items()]  # fmt: skip
    return (
        _section("Best fit", _table(["level", "method", *results.parameters], rows, names=2)) if rows else ""
    )


def _coverage_section(results: Results) -> str:
    """Fraction of toys whose interval covers the true point, per level × method × interval."""
    covered = {name: level.coverage for name, level in results.levels.items() if level.coverage is not None}
    keys = _keys(results, [f for c in covered.values() for f in c.coverage.values()])
    if not keys:
        return ""
    rows = []
    for name, coverage in covered.items():
        at = "(" + ", ".join(_fmt(float(x)) for x in coverage.theta_true) + ")"
        for method in _methods(coverage.coverage):
            fractions = coverage.coverage[method]
            cells = [f"{100 * fractions[k]:.1f}%" if k in fractions else _MISSING for k in keys]
            rows.append([name, _label(method), at, str(coverage.n_toys), *cells])
    note = ("Fraction of toy data sets, drawn at θ_true, whose interval contains θ_true; a correct "
            "<i>n</i>% interval covers it in <i>n</i>% of the toys (up to the toys' binomial "
            "spread).")  # fmt: skip
    return _section("Coverage", _table(["level", "method", "θ_true", "toys", *keys], rows, names=2), note)


def _search_section(results: Results) -> str:
    """Signal strengths: Z0 per method, its local minima and disjoint CL regions; the counting numbers."""
    rows = []
    for name, level in results.levels.items():
        for method in _methods(level.significance):
            for p, z0 in level.significance[method].items():
                found = level.minima.get(method, {}).get(p, ())
                minima = "; ".join(f"{_fmt(t)} (Δq {dq:.2f})" for t, dq in found)
                regions = level.regions.get(method, {})
                split = [f"{k}: " + " ∪ ".join(format_interval(r) for r in regions[k])
                         for k in regions if k.startswith(f"{p}_") and len(regions[k]) > 1]  # fmt: skip
                rows.append([name, _label(method), p, f"{z0:.2f}", minima, "; ".join(split) or "connected"])
    if not rows:
        return ""
    table = _table(["level", "method", "parameter", "Z0", "local minima", "CL regions"], rows, names=3)
    counts = [[name, key, _fmt4(value)] for name, level in results.levels.items()
              for key, value in level.search.items()]  # fmt: skip
    note = ("Z0 = √(q(0) − q_min): the expected significance of the background-only hypothesis; several "
            "local minima or a CL region in pieces: the interference makes the likelihood degenerate "
            "(seed 001). Counting numbers: expected S, I, B at the luminosity, iZ = (S + I/2)/√N(1), "
            "z0 the counting significance, N_eff = (Σw)²/Σw².")  # fmt: skip
    counting = _table(["level", "quantity", "value"], counts, names=2) if counts else ""
    return _section("Search: significance and degeneracies", table + counting, note)


def _systematics_section(results: Results) -> str:
    """Per profiled method and nuisance: α̂ ± σ, pull, impacts, the 68% width with it fixed."""
    rows = []
    for name, level in results.levels.items():
        for method, table in level.systematics.items():
            for nuisance, v in table.items():
                if nuisance in ("all", "none"):
                    label = {"all": "all (stat only)", "none": "none (full result)"}[nuisance]
                    rows.append([name, _label(method), label, *[_MISSING] * 4, _fmt(v["width_68_fixed"])])
                    continue
                rows.append([name, _label(method), nuisance, f"{_fmt(v['alpha_hat'])} ± {_fmt(v['sigma'])}",
                             _fmt(v["pull"]), f"{_fmt(v['impact_up'])} / {_fmt(v['impact_down'])}",
                             _fmt(v["impact_hessian"]), _fmt(v["width_68_fixed"])])  # fmt: skip
    if not rows:
        return ""
    header = ["level", "method", "nuisance", "α̂ ± σ", "pull", "impact +σ / −σ", "impact (Hessian)",
              "68% width, fixed"]  # fmt: skip
    note = ("Asimov fits with the nuisances of config.systematics profiled (seed 003): impacts are the "
            "shifts of the best fit when one nuisance is fixed at α̂ ± σ and the others refitted; the "
            "Hessian column is seed 003's formula (others held); the last column is the 68% width with "
            "that nuisance fixed (seed 003's table), 'all' the statistical width.")  # fmt: skip
    return _section("Systematic uncertainties", _table(header, rows, names=3), note)


def _fisher_section(results: Results) -> str:
    """σ = sqrt(diag(I⁻¹)) of every method at every level."""
    rows = [[name, _label(m), *_sigmas(level.fisher.information[m])]
            for name, level in results.levels.items() if level.fisher is not None
            for m in _methods(level.fisher.information)]  # fmt: skip
    if not rows:
        return ""
    header = ["level", "method", *(f"σ({p})" for p in results.parameters)]
    note = ("Expected 1σ uncertainties sqrt((I⁻¹)<sub>ii</sub>) from the Fisher information "
            "(other parameters profiled); ∞: a direction the information does not constrain.")  # fmt: skip
    return _section("Fisher information", _table(header, rows, names=2), note)


def _checks_section(results: Results, summary: Mapping, problem: str | None) -> str:
    """Each level's ``checks`` and summary.json's, or why summary.json could not be used."""
    rows = [[name, check, value if isinstance(value, str) else _fmt4(value)]
            for name, level in results.levels.items() for check, value in level.checks.items()]  # fmt: skip
    rows += [[SUMMARY, check, _fmt4(value)] for check, value in _summary_part(summary, "checks").items()]
    section = _section("Checks", _table(["from", "check", "value"], rows, names=2)) if rows else ""
    return section + (f'\n<p class="note">{_e(problem)}</p>' if problem else "")


def _fmt4(value: Any) -> str:
    x = _number(value)
    return _MISSING if x is None else f"{x:.4g}"


def _timings_section(results: Results, summary: Mapping) -> str:
    """Seconds per step: results.json's ``timings_s``, then summary.json's steps not already listed."""
    timings = {**_summary_part(summary, "timings_s"), **results.timings_s}
    rows = [[step, _seconds(timings[step])] for step in dict.fromkeys([*results.timings_s, *timings])]
    return _section("Timings", _table(["step", "time (s)"], rows)) if rows else ""


def _seconds(value: Any) -> str:
    x = _number(value)
    return _MISSING if x is None else f"{x:.2f}"


_EXPONENT, _SUPERSCRIPTS = re.compile(r"\^\{?(-?\d+)\}?"), str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _overview(results: Results) -> str:
    units = [_EXPONENT.sub(lambda m: m[1].translate(_SUPERSCRIPTS), u) for u in results.parameter_units]
    parameters = [f"{p} [{u}]" if u else p for p, u in zip(results.parameters, units)]
    items = [f"parameters: {_e(', '.join(parameters))}"]
    if (lumi := _number(results.luminosity_ifb)) is not None:
        items.append(f"integrated luminosity: {lumi:g} fb⁻¹")
    return "<ul>\n" + "\n".join(f"<li>{item}</li>" for item in items) + "\n</ul>"


def _figures_section(results: Results, plots: Sequence[_Plot]) -> str:
    parts = []
    for name, level in results.levels.items():
        figures = [p for p in plots if p.level == name]
        if figures:
            parts.append(f"<h2>{_e(f'Figures: {name} ({level.label})')}</h2>")
        parts += [f'<figure><img src="{_e(p.path)}" alt="{_e(p.caption)}">'
                  f"<figcaption>{_e(p.caption)}</figcaption></figure>" for p in figures]  # fmt: skip
    return "\n".join(parts)


def _page(
    results: Results,
    summary: Mapping,
    summary_problem: str | None,
    plots: Sequence[_Plot],
    diagnostics: str = "",
) -> str:
    """The whole report page; ``diagnostics``: extra HTML at the end (the sections of ``assay coverage``
    and ``assay diagnostics``: :func:`~assay.report_coverage.coverage_section`,
    :func:`_diagnostics_section`)."""
    sections = [
        _overview(results),
        _levels_section(results),
        _intervals_section(results),
        _best_fit_section(results),
        _coverage_section(results),
        _search_section(results),
        _systematics_section(results),
        _fisher_section(results),
        _checks_section(results, summary, summary_problem),
        _timings_section(results, summary),
        _figures_section(results, plots),
        diagnostics,
    ]
    body = "\n".join(s for s in sections if s)
    title = _e(results.title)
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{title}</title>\n'
        f"<style>{_CSS}</style>\n</head>\n<body>\n<h1>{title}</h1>\n{body}\n"
        f'<p class="note">Written by assay {_e(__version__)} from {RESULTS}.</p>\n</body>\n</html>\n'
    )
