"""``assay report``: ``report.html`` and ``plots/*.png`` of a run, from its ``results.json``.

:func:`write_report` reads ``RUN_DIR/results.json`` (docs/results.md) and, when present,
``RUN_DIR/summary.json``; draws every figure the file has data for with :mod:`assay.plots` into
``RUN_DIR/plots/`` and writes ``RUN_DIR/report.html``: the intervals of every level and method,
the expected uncertainties from the Fisher information, the timings, then the figures. The page is
plain HTML with inline CSS (no scripts, no external resources; images by relative path), so the
run folder can be copied or served as it is. Every file is written atomically.
"""

from __future__ import annotations

import html
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from assay import __version__
from assay.exceptions import StoreError
from assay.plots import method_label
from assay.saving import read_json, write_text

__all__ = ["PLOTS", "REPORT", "RESULTS", "SUMMARY", "format_interval", "load_results", "write_report"]

log = logging.getLogger(__name__)

RESULTS = "results.json"
SUMMARY = "summary.json"
REPORT = "report.html"
PLOTS = "plots"
_MISSING = "—"  # a number that is null, NaN or infinite in results.json


@dataclass(frozen=True)
class _Plot:
    """One figure of the report: its PNG relative to the run folder, the level it shows, a caption."""

    path: str
    level: str
    caption: str


# --- reading --------------------------------------------------------------------------------------------


def load_results(path: str | os.PathLike) -> dict:
    """Read and check the top level of a ``results.json``.

    Args:
        path: the file.

    Returns:
        The parsed object: a ``levels`` object of level name → object is guaranteed; any other
        key may be missing or malformed (the report skips what it cannot use).

    Raises:
        StoreError: the file is missing, not JSON, or has no ``levels`` object (the message names
            the file and what was expected).
    """
    path = Path(path)
    data = read_json(
        path,
        missing="not found; expected the results.json an inference run writes (docs/results.md)",
        unreadable="cannot read it as JSON",
    )
    if not isinstance(data, dict):
        raise StoreError(f"{path}: expected a JSON object with a 'levels' object, got {_kind(data)}")
    levels = data.get("levels")
    if not isinstance(levels, dict):
        raise StoreError(f"{path}: expected a 'levels' object (level name → results), got {_kind(levels)}")
    for name, level in levels.items():
        if not isinstance(level, dict):
            raise StoreError(f"{path}: levels.{name}: expected an object, got {_kind(level)}")
    parameters = data.get("parameters")
    if parameters is not None and not _names(parameters):
        raise StoreError(f"{path}: expected 'parameters' as a list of names, got {parameters!r}")
    return data


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"a JSON {_JSON_TYPES.get(type(value), type(value).__name__)}"


_JSON_TYPES = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean"}


def _names(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _read_summary(path: Path) -> tuple[dict, str | None]:
    """``summary.json`` if present and readable, else ``{}`` and why not (None when absent)."""
    if not path.exists():
        return {}, None
    try:
        data = read_json(path, missing="not found")
    except StoreError as exc:
        log.warning("%s", exc)
        return {}, str(exc)
    if not isinstance(data, dict):
        return {}, f"{path}: expected a JSON object, got {_kind(data)}"
    return data, None


def _mapping(data: Any, key: str) -> Mapping:
    value = data.get(key) if isinstance(data, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def _parameters(results: Mapping) -> tuple[list[str], dict[str, str]]:
    """Parameter names (from ``parameters`` or else the 1D scans) and name → axis label."""
    names = list(results.get("parameters") or [])
    if not names:
        for level in results["levels"].values():
            names += [p for p in _mapping(level, "scans_1d") if p not in names]
    labels = results.get("parameter_labels")
    if _names(labels) and len(labels) == len(names):
        return names, dict(zip(names, labels))
    return names, {name: name for name in names}


def _methods(entries: Mapping) -> list[str]:
    """Method keys, truth first, then in file order."""
    return sorted(entries, key=lambda m: m != "truth")


# --- files ----------------------------------------------------------------------------------------------


def _safe(name: str) -> str:
    """A file-name-safe version of a level or parameter name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "x"


def write_report(run_dir: str | os.PathLike) -> Path:
    """Write ``RUN_DIR/report.html`` and its figures ``RUN_DIR/plots/*.png``.

    Args:
        run_dir: the run folder holding ``results.json`` (and optionally ``summary.json``).

    Returns:
        The path of ``report.html``.

    Raises:
        StoreError: ``results.json`` is missing or malformed (see :func:`load_results`).
    """
    run_dir = Path(run_dir)
    results = load_results(run_dir / RESULTS)
    summary, summary_problem = _read_summary(run_dir / SUMMARY)
    (run_dir / PLOTS).mkdir(exist_ok=True)
    plots = _write_plots(results, run_dir)
    path = run_dir / REPORT
    write_text(path, _page(results, summary, summary_problem, plots))
    return path


# --- figures --------------------------------------------------------------------------------------------


def _pair(data: Mapping, names: Sequence[str]) -> list[str]:
    """The two parameters of the 2D plots: ``scan_2d.parameters`` if given, else the first two."""
    given = _mapping(data, "scan_2d").get("parameters")
    return list(given[:2]) if _names(given) and len(given) >= 2 else list(names[:2])


def _level_figures(level: str, data: Mapping, names: Sequence[str], labels: Mapping[str, str]) -> list:
    """(file stem, figure maker, caption) of every figure one level may have."""
    from assay import plots

    title = data.get("label") if isinstance(data.get("label"), str) else level
    stem = _safe(level)
    scans = _mapping(data, "scans_1d")
    jobs = []
    for parameter in [p for p in names if p in scans] + [p for p in scans if p not in names]:
        fixed = ", ".join(f"{k} = {v}" for k, v in _mapping(scans[parameter], "fixed").items())
        caption = f"{title}: expected −2Δlog L along {parameter}" + (f" ({fixed})" if fixed else "")
        caption += "; dashed lines at q = 1 and 3.84 (68% and 95% CL)."
        maker = partial(plots.scan_1d_figure, scans[parameter], labels.get(parameter, parameter))
        jobs.append((f"{stem}_scan_{_safe(parameter)}", maker, caption))
    two = [labels.get(p, p) for p in _pair(data, names)]
    fisher = _mapping(data, "fisher")
    jobs += [
        (
            f"{stem}_contours",
            partial(plots.contours_2d_figure, _mapping(data, "scan_2d"), two),
            f"{title}: expected 68% (solid) and 95% (dashed) CL contours, q = 2.30 and 5.99.",
        ),
        (
            f"{stem}_fisher",
            partial(plots.fisher_ellipses_figure, fisher, [labels.get(p, p) for p in names[:2]]),
            f"{title}: 68% CL ellipses δᵀ I δ = 2.30 of the Fisher information at θ = "
            f"({_numbers(fisher.get('theta'))}); a rank-one information (rate only) is the band "
            "between its dashed lines.",
        ),
        (
            f"{stem}_distributions",
            partial(plots.distributions_figure, _mapping(data, "distributions")),
            f"{title}: normalised distributions of the observables at the benchmarks.",
        ),
        (
            f"{stem}_losses",
            partial(plots.loss_curves_figure, _mapping(data, "histories")),
            f"{title}: training (solid) and validation (dashed) loss of every ensemble member; "
            "dots at the kept epochs.",
        ),
        (
            f"{stem}_calibration",
            partial(plots.calibration_figure, _mapping(data, "calibration")),
            f"{title}: expectation check R̂(θ) = Σ w(θ₁) r̂(x|θ, θ₁) / Σ w(θ₁), 1 for a perfect "
            "estimator; error bars: r̂_std.",
        ),
    ]
    return jobs


def _write_plots(results: Mapping, run_dir: Path) -> list[_Plot]:
    """Draw and save every figure with data; figures without any are not written."""
    from assay import plots

    names, labels = _parameters(results)
    written = []
    for level, data in results["levels"].items():
        for stem, make, caption in _level_figures(level, data, names, labels):
            fig = make()
            if not plots.has_data(fig):
                fig.clear()
                continue
            relative = f"{PLOTS}/{stem}.png"
            plots.save_figure(fig, run_dir / relative)
            written.append(_Plot(relative, level, caption))
    return written


# --- numbers ------------------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    """A finite float, or None for null/NaN/inf/anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _fmt(value: Any) -> str:
    """Three significant digits, zeros kept (``-0.123``, ``0.00486``, ``1.00``); ``—`` if not finite."""
    x = _number(value)
    return _MISSING if x is None else f"{x:#.3g}"


def _numbers(value: Any) -> str:
    return ", ".join(_fmt(v) for v in value) if isinstance(value, list) else "0"


def _pieces(value: Any) -> list[tuple[float | None, float | None]] | None:
    """An interval ``[lo, hi]`` (or a list of them, when disjoint) as (lo, hi) pairs."""
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(v, list) for v in value):
        pieces = [_pieces(v) for v in value]
        return None if any(p is None for p in pieces) else [q for p in pieces for q in p]
    if len(value) != 2 or any(isinstance(v, (list, dict, str)) for v in value):
        return None
    return [(_number(value[0]), _number(value[1]))]


def format_interval(value: Any) -> str:
    """``[lo, hi]`` as ``[-0.123, 0.145]``; disjoint pieces joined by ∪; ``—`` if unreadable."""
    pieces = _pieces(value)
    if pieces is None:
        return _MISSING
    return " ∪ ".join(f"[{_fmt(lo)}, {_fmt(hi)}]" for lo, hi in pieces)


def _width(value: Any) -> float | None:
    pieces = _pieces(value)
    if pieces is None or any(lo is None or hi is None for lo, hi in pieces):
        return None
    return sum(hi - lo for lo, hi in pieces)


def _ratio(value: Any, reference: Any) -> str:
    width, ref = _width(value), _width(reference)
    return _MISSING if width is None or not ref else f"{width / ref:.2f}"


def _sigmas(information: Any) -> list[str] | None:
    """sqrt(diag(I⁻¹)) formatted, ``∞`` along unconstrained directions; None if I is unusable."""
    from assay.inference.fisher import expected_uncertainties

    try:
        matrix = np.array(information, dtype=float)
        sigma = expected_uncertainties(matrix)
    except (TypeError, ValueError, np.linalg.LinAlgError):
        return None
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


def _intervals_section(results: Mapping, names: Sequence[str]) -> str:
    """Rows level × method; columns <param>_68, <param>_95, widths of the first parameter / truth."""
    levels = {level: _mapping(data, "intervals") for level, data in results["levels"].items()}
    keys: list[str] = [f"{p}_{cl}" for p in names for cl in ("68", "95")]
    for intervals in levels.values():
        for entry in intervals.values():
            keys += [k for k in (entry if isinstance(entry, Mapping) else {}) if k not in keys]
    present = {k for i in levels.values() for e in i.values() if isinstance(e, Mapping) for k in e}
    keys = [k for k in keys if k in present]
    if not keys:
        return ""
    first = [k for k in (f"{names[0]}_68", f"{names[0]}_95") if k in present] if names else []
    truth_anywhere = any(isinstance(i.get("truth"), Mapping) for i in levels.values())
    ratios = first if truth_anywhere else []
    header = ["level", "method", *keys, *(f"width {k} / truth" for k in ratios)]
    rows = []
    for level, intervals in levels.items():
        truth = intervals.get("truth") if isinstance(intervals.get("truth"), Mapping) else None
        for method in _methods(intervals):
            entry = intervals[method] if isinstance(intervals[method], Mapping) else {}
            row = [level, method_label(method), *(format_interval(entry.get(k)) for k in keys)]
            row += [_ratio(entry.get(k), truth.get(k)) if truth else _MISSING for k in ratios]
            rows.append(row)
    note = (
        '<p class="note">Expected (Asimov) intervals at the SM from −2Δlog L; widths relative to truth '
        f"at the same level; {_MISSING}: not finite or not available.</p>"
    )
    return f"<h2>Intervals</h2>\n{_table(header, rows, names=2)}\n{note}"


def _fisher_section(results: Mapping, names: Sequence[str]) -> str:
    """σ = sqrt(diag(I⁻¹)) of every method at every level."""
    rows, width = [], 0
    for level, data in results["levels"].items():
        information = _mapping(_mapping(data, "fisher"), "information")
        for method in _methods(information):
            sigmas = _sigmas(information[method])
            width = max(width, len(sigmas or []))
            rows.append([level, method_label(method), *(sigmas or [])])
    if not rows:
        return ""
    columns = names if len(names) == width else [f"θ{i}" for i in range(width)]
    header = ["level", "method", *(f"σ({c})" for c in columns)]
    rows = [row + [_MISSING] * (len(header) - len(row)) for row in rows]
    note = (
        '<p class="note">Expected 1σ uncertainties sqrt((I⁻¹)<sub>ii</sub>) from the Fisher information '
        "(other parameters profiled); ∞: a direction the information does not constrain.</p>"
    )
    return f"<h2>Fisher information</h2>\n{_table(header, rows, names=2)}\n{note}"


def _timings_section(results: Mapping, summary: Mapping) -> str:
    """Seconds per step: results.json's ``timings_s``, then summary.json's steps not already listed."""
    timings = {**_mapping(summary, "timings_s"), **_mapping(results, "timings_s")}
    order = [*_mapping(results, "timings_s"), *_mapping(summary, "timings_s")]
    rows = [[step, _seconds(timings[step])] for step in dict.fromkeys(order)]
    return f"<h2>Timings</h2>\n{_table(['step', 'time (s)'], rows)}" if rows else ""


def _seconds(value: Any) -> str:
    x = _number(value)
    return _MISSING if x is None else f"{x:.2f}"


def _checks_section(summary: Mapping, problem: str | None) -> str:
    """summary.json's ``checks`` (name → number), or why summary.json could not be used."""
    if problem:
        return f'<p class="note">{_e(problem)}</p>'
    checks = _mapping(summary, "checks")
    rows = [[name, _fmt4(value)] for name, value in checks.items()]
    return f"<h2>Checks (summary.json)</h2>\n{_table(['check', 'value'], rows)}" if rows else ""


def _fmt4(value: Any) -> str:
    x = _number(value)
    return _MISSING if x is None else f"{x:.4g}"


def _overview(results: Mapping, names: Sequence[str]) -> str:
    items = []
    if names:
        items.append(f"parameters: {_e(', '.join(names))} (θ in TeV⁻²)")
    lumi = _number(results.get("luminosity_ifb"))
    if lumi is not None:
        items.append(f"integrated luminosity: {lumi:g} fb⁻¹")
    for level, data in results["levels"].items():
        label = data.get("label")
        items.append(f"level <b>{_e(level)}</b>" + (f": {_e(label)}" if isinstance(label, str) else ""))
    return "<ul>\n" + "\n".join(f"<li>{item}</li>" for item in items) + "\n</ul>"


def _figures_section(results: Mapping, plots: Sequence[_Plot]) -> str:
    parts = []
    for level, data in results["levels"].items():
        figures = [p for p in plots if p.level == level]
        if not figures:
            continue
        label = data.get("label")
        heading = f"Figures: {level}" + (f" ({label})" if isinstance(label, str) else "")
        parts.append(f"<h2>{_e(heading)}</h2>")
        for plot in figures:
            parts.append(
                f'<figure><img src="{_e(plot.path)}" alt="{_e(plot.caption)}">'
                f"<figcaption>{_e(plot.caption)}</figcaption></figure>"
            )
    return "\n".join(parts)


def _page(results: Mapping, summary: Mapping, summary_problem: str | None, plots: Sequence[_Plot]) -> str:
    """The whole report page."""
    names, _ = _parameters(results)
    title = results.get("title") if isinstance(results.get("title"), str) else "assay report"
    sections = [
        _overview(results, names),
        _intervals_section(results, names),
        _fisher_section(results, names),
        _timings_section(results, summary),
        _checks_section(summary, summary_problem),
        _figures_section(results, plots),
    ]
    body = "\n".join(s for s in sections if s)
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{_e(title)}</title>\n'
        f"<style>{_CSS}</style>\n</head>\n<body>\n<h1>{_e(title)}</h1>\n{body}\n"
        f'<p class="note">Written by assay {_e(__version__)} from {RESULTS}.</p>\n</body>\n</html>\n'
    )
