"""Figures and tables of ``limits/diagnostics.json`` (:mod:`assay.analysis.mixture_diagnostics`).

Per process: the reliability curves (model raw, histogram- and isotonic-calibrated, exact), the
reweighting closure per observable (reweighted / target, model, exact and r = 1), the ensemble's
relative spread; per benchmark: the distribution of the per-event −2 log r̂ against the exact one.
:func:`write_diagnostics_plots` draws them into ``plots/``; :func:`diagnostics_tables` gives the
rows of the report's tables. Both read the JSON loosely (missing parts are skipped).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from assay.plots import has_data, legend, mark_empty, new_figure, save_figure, style

__all__ = [
    "closure_figure",
    "diagnostics_tables",
    "log_ratio_figure",
    "reliability_figure",
    "spread_figure",
    "write_diagnostics_plots",
]

_KINDS = {"model": ("tab:blue", "model"), "exact": ("black", "exact"), "unit": ("tab:gray", "r = 1")}
_CALIBRATED = {"raw": ("o", "model"), "histogram": ("s", "histogram-calibrated"),
               "isotonic": ("^", "isotonic-calibrated")}  # fmt: skip


def _array(part: Mapping, key: str) -> np.ndarray:
    """A list of numbers or nulls (strict JSON) as floats with NaN."""
    return np.array([np.nan if v is None else v for v in part.get(key) or []], dtype=float)


def reliability_figure(process: str, checks: Mapping[str, Any]) -> Figure:
    """Observed class-1 fraction against the mean score per bin; the diagonal is calibrated."""
    fig, axes = new_figure(size=(6.0, 5.0))
    ax = axes[0, 0]
    curves = [(kind, name, part) for kind in ("model", "exact")
              for name, part in (checks.get(kind, {}).get("reliability") or {}).items()
              if kind == "model" or name == "raw"]  # fmt: skip
    if not curves:
        return mark_empty(fig, ax, "reliability curves")
    with style():
        for kind, name, part in curves:
            marker, label = _CALIBRATED.get(name, ("o", name))
            color = (
                _KINDS[kind][0]
                if name == "raw"
                else {"histogram": "tab:orange", "isotonic": "tab:green"}[name]
            )
            text = "exact" if kind == "exact" else label
            ax.errorbar(_array(part, "predicted"), _array(part, "observed"), yerr=_array(part, "error"),
                        fmt=marker, ms=4, capsize=2, color=color,
                        label=f"{text}: χ² {part['chi2']:.1f}/{part['ndf']}")  # fmt: skip
        ax.plot([0, 1], [0, 1], color="k", lw=0.8, ls="--")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel(r"mean score $\hat s = \hat r/(1 + \hat r)$")
        ax.set_ylabel("observed fraction of the process")
        ax.set_title(f"{process} vs reference", fontsize="medium")
        legend(ax, loc="upper left")
    return fig


def closure_figure(process: str, checks: Mapping[str, Any], ncols: int = 4) -> Figure:
    """Per observable, (reference reweighted by r) / target per bin for every ratio kind."""
    kinds = [k for k in _KINDS if k in checks]
    observables = list(checks[kinds[0]]["closure"]) if kinds else []
    observables = [o for o in observables if checks[kinds[0]]["closure"][o]["ndf"] > 0]
    nrows = max(1, math.ceil(len(observables) / ncols))
    fig, axes = new_figure(nrows, ncols, size=(3.6 * ncols, 2.8 * nrows))
    if not observables:
        return mark_empty(fig, axes[0, 0], "closure")
    with style():
        for ax, obs in zip(axes.flat, observables):
            for kind in kinds:
                part = checks[kind]["closure"][obs]
                edges = _array(part, "edges")
                centers = np.arange(len(edges) - 1) + 0.5  # bins of equal target weight: shown by index
                color, label = _KINDS[kind]
                ax.errorbar(centers, _array(part, "ratio"), yerr=_array(part, "ratio_error"), fmt="o", ms=2.5,
                            color=color, label=f"{label} ({part['chi2'] / part['ndf']:.2f})")  # fmt: skip
            ax.axhline(1.0, color="k", lw=0.8)
            ax.set_ylim(0.25, 1.75)
            ax.set_xlabel(f"{obs} (quantile bin)", fontsize="small")
            ax.set_ylabel("reweighted / target", fontsize="small")
            ax.tick_params(labelsize="x-small")
            ax.legend(fontsize="xx-small", title="χ²/ndf", title_fontsize="xx-small")
        for ax in list(axes.flat)[len(observables) :]:
            ax.set_visible(False)
        fig.suptitle(f"reweighting closure: reference → {process}", fontsize="medium")
        fig.tight_layout()
    return fig


def _step(ax, part: Mapping, color: str, label: str) -> None:
    ax.stairs(_array(part, "counts"), _array(part, "edges"), color=color, label=label)


def spread_figure(processes: Mapping[str, Any]) -> Figure:
    """The ensemble's relative spread std/r̂_j per event, Asimov-weighted, one line per process."""
    fig, axes = new_figure()
    ax = axes[0, 0]
    spreads = {p: c["spread"] for p, c in processes.items() if "spread" in c}
    if not spreads:
        return mark_empty(fig, ax, "ensemble spread")
    with style():
        for (process, part), color in zip(
            spreads.items(), ("tab:blue", "tab:red", "tab:green", "tab:purple")
        ):
            _step(ax, part["relative_std"], color, f"{process}: std / mean")
            sem = part["relative_error_of_mean"]
            ax.stairs(_array(sem, "counts"), _array(sem, "edges"), color=color, ls="--",
                      label=f"{process}: error of the mean")  # fmt: skip
        ax.set_xlabel(r"relative ensemble spread of $\hat r_j(x)$")
        ax.set_ylabel("fraction of expected events")
        legend(ax)
    return fig


def log_ratio_figure(benchmark: str, entry: Mapping[str, Any]) -> Figure:
    """The per-event −2 log r̂(x|θ_k, θ_true) distribution, model against exact."""
    fig, axes = new_figure()
    ax = axes[0, 0]
    if "model" not in entry:
        return mark_empty(fig, ax, "log ratios")
    with style():
        _step(ax, entry["model"], "tab:blue", "model")
        if "exact" in entry:
            _step(ax, entry["exact"], "black", "exact")
        ax.set_xlabel(rf"$-2 \log \hat r(x | \theta_{{\mathrm{{{benchmark}}}}}, \theta_{{\mathrm{{true}}}})$")
        ax.set_ylabel("fraction of expected events")
        legend(ax)
    return fig


def write_diagnostics_plots(data: Mapping[str, Any], folder: str | os.PathLike) -> list[tuple[str, str]]:
    """Draw every diagnostics figure into ``folder/plots/``.

    Args:
        data: the content of ``diagnostics.json``.
        folder: the results folder (a run's ``limits/``).

    Returns:
        (path relative to ``folder``, caption) of every figure written.
    """
    folder = Path(folder)
    (folder / "plots").mkdir(parents=True, exist_ok=True)
    processes = data.get("processes") or {}
    jobs = []
    for process, checks in processes.items():
        jobs.append((f"reliability_{process}", reliability_figure(process, checks),
                     f"{process}: reliability of ŝ = r̂/(1 + r̂) on held-out labelled events (diagonal: "
                     "calibrated); calibrators fitted on the other half."))  # fmt: skip
        jobs.append((f"closure_{process}", closure_figure(process, checks),
                     f"{process}: reference half reweighted by r against the target half, per observable "
                     "(bins of equal target weight), with χ²/ndf."))  # fmt: skip
    jobs.append(("spread", spread_figure(processes), "ensemble spread of r̂_j per event, Asimov-weighted."))
    for bench, entry in (data.get("log_ratio") or {}).items():
        jobs.append((f"log_ratio_{bench}", log_ratio_figure(bench, entry),
                     f"per-event −2 log r̂(x|{bench}, θ_true), Asimov-weighted."))  # fmt: skip
    written = []
    for stem, fig, caption in jobs:
        if not has_data(fig):
            fig.clear()
            continue
        relative = f"plots/diagnostics_{stem}.png"
        save_figure(fig, folder / relative)
        written.append((relative, caption))
    return written


def _fmt(value: Any, spec: str = ".3f") -> str:
    return "—" if not isinstance(value, (int, float)) or not math.isfinite(value) else format(value, spec)


def diagnostics_tables(data: Mapping[str, Any]) -> list[tuple[str, list[str], list[list[str]], str]]:
    """(title, header, rows, note) of the report's diagnostics tables."""
    rows, log_rows = [], []
    for process, checks in (data.get("processes") or {}).items():
        for kind in (k for k in _KINDS if k in checks):
            entry = checks[kind]
            c2st = entry.get("c2st") or {}
            closures = [c["chi2"] / c["ndf"] for c in (entry.get("closure") or {}).values() if c.get("ndf")]
            raw = (entry.get("reliability") or {}).get("raw")
            rel = f"{raw['chi2']:.1f}/{raw['ndf']}" if raw else "—"
            rows.append([process, _KINDS[kind][1], f"{_fmt(c2st.get('auc'))} ± {_fmt(c2st.get('auc_error'))}",
                         _fmt(c2st.get("z"), ".1f"), _fmt(max(closures, default=None), ".2f"),
                         _fmt(float(np.median(closures)) if closures else None, ".2f"), rel,
                         _fmt(entry.get("normalisation"))])  # fmt: skip
    for bench, entry in (data.get("log_ratio") or {}).items():
        q = entry.get("model", {}).get("quantiles") or []
        exact = (entry.get("exact") or {}).get("quantiles") or []
        median = _fmt(q[len(q) // 2]) if q else "—"
        log_rows.append([bench, median, _fmt(exact[len(exact) // 2]) if exact else "—",
                         _fmt(entry.get("rms_difference"))])  # fmt: skip
    header = ["process", "ratio", "C2ST AUC", "(AUC − ½)/σ", "closure χ²/ndf max", "median",
              "reliability χ²/ndf", "E_ref[r]"]  # fmt: skip
    note = (f"Model {data.get('model')!r} on {data.get('n_events')} held-out events split into a reference "
            "and a target half. AUC of a classifier trained to tell the reweighted reference from the target "
            "(0.5: indistinguishable); closure χ²/ndf over the observables; r = 1: no reweighting, exact: "
            "the simulator's weights (statistical fluctuations only).")  # fmt: skip
    tables = [("Diagnostics of the mixture model", header, rows, note)]
    if log_rows:
        tables.append(("Per-event −2 log r̂ against θ_true", ["benchmark", "median (model)", "median (exact)",
                       "RMS(model − exact)"], log_rows, "Asimov-weighted."))  # fmt: skip
    return tables
