"""The report's section on ``assay coverage`` (``limits/coverage.json``): profiled 68% intervals in toys.

One row per (method, true point): the coverage of Wilks' interval (t ≤ 1) ± its binomial error,
its mean width, the FAIR Universe challenge score and the pulls of μ; with ``--neyman``, the
Neyman critical value t_c at the true μ and the coverage, width and score of the Neyman interval
{t(μ) ≤ t_c(μ)} (:mod:`assay.analysis.coverage_neyman`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from assay.exceptions import StoreError
from assay.rundir import ResultsDir
from assay.saving import read_json

__all__ = ["coverage_section"]

log = logging.getLogger(__name__)


def _number(value: Any, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def _fraction(entry: Mapping[str, Any]) -> str:
    c = entry.get("coverage_68")
    return "–" if c is None else f"{c:.3f} ± {entry.get('coverage_68_error', 0.0):.3f}"


def coverage_section(run_dir: Path) -> str:
    """The HTML section of ``run_dir/coverage.json`` ("" if ``assay coverage`` has not run there)."""
    from assay.report import _e, _section, _table

    path = ResultsDir(run_dir).coverage
    if not path.is_file():
        return ""
    try:
        data = read_json(path, missing="not found")
        results, settings = data["results"], data["settings"]
    except (StoreError, KeyError, TypeError) as exc:
        log.warning("%s: %s", path, exc)
        return f'<p class="note">{_e(path.name)}: unreadable ({_e(exc)}); rerun assay coverage</p>'
    neyman = any("neyman" in r for r in results)
    header = ["method", "true point", "toys", "coverage", "width", "score", "pull μ"]
    if neyman:
        header += ["t_c", "Neyman coverage", "Neyman width", "Neyman score"]
    rows = []
    for r in results:
        point = ", ".join([f"μ = {r['mu']:g}"] + [f"{k} = {v:g}" for k, v in r["alpha"].items() if v])
        pull = "–" if r.get("pull_mu_mean") is None else (
            f"{r['pull_mu_mean']:+.2f} ± {_number(r.get('pull_mu_std'), '.2f')}"
        )  # fmt: skip
        toys = f"{r['n_toys'] - r['n_failed']}/{r['n_toys']}"
        row = [r["method"], point, toys, _fraction(r), _number(r.get("mean_width_68"), ".3g"),
               _number(r.get("challenge_score"), ".3f"), pull]  # fmt: skip
        if neyman:
            n = r.get("neyman") or {}
            row += [_number(n.get("t_c"), ".3g"), _fraction(n), _number(n.get("mean_width_68"), ".3g"),
                    _number(n.get("challenge_score"), ".3f")]  # fmt: skip
        rows.append(row)
    lo, hi, points = settings.get("scan", [None, None, None])
    note = (
        f"Pseudo-experiments drawn from each profiled method's own model at the true point, global "
        f"observables randomised, fitted with every nuisance profiled (assay coverage; a {points}-point "
        f"scan of μ over [{lo}, {hi}]). Coverage: fraction of toys whose 68% interval contains the true μ "
        f"(target 0.683; ± its binomial error). Score: the FAIR Universe challenge score of the mean width "
        f"and the coverage. Pull μ: mean ± std of (μ̂ − μ_true)/σ."
    )
    if neyman:
        note += (" t_c: the Neyman critical value of t at the true μ from the belt's toys (Wilks: 1); "
                 "Neyman coverage: fraction of toys with t(μ_true) ≤ t_c; its width needs a belt on "
                 "every scan point.")  # fmt: skip
    return _section("Coverage of profiled intervals", _table(header, rows, names=2), note)
