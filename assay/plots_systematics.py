"""The impact ranking of the nuisances (seed 003 "Calculating pulls and impacts"), one panel per method.

Per nuisance, sorted by the size of its impact: bars of Δθ̂ when the nuisance is fixed at α̂ ± σ
(the refits, others profiled; top axis) and the pull (α̂ − 0)/σ with the post-fit σ as its error
bar (bottom axis), as in ATLAS/CMS ranking plots.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from assay.plots import mark_empty, method_label, new_figure, style

__all__ = ["impact_ranking_figure"]

_SUMMARY = ("all", "none")  # the widths with every / no nuisance fixed, not nuisances


def impact_ranking_figure(
    systematics: Mapping[str, Mapping[str, Mapping[str, float]]], poi_label: str
) -> Figure:
    """Ranked impacts and pulls of every profiled method's nuisances.

    Args:
        systematics: :attr:`assay.results.LevelResults.systematics` (method → nuisance → numbers).
        poi_label: the parameter of interest's axis label (LaTeX allowed).
    """
    methods = [m for m, table in systematics.items() if any(k not in _SUMMARY for k in table)]
    n = max(1, len(methods))
    rows = max((len(systematics[m]) - len(_SUMMARY) for m in methods), default=1)
    fig, axes = new_figure(1, n, size=(4.6 * n, 1.2 + 0.45 * rows))
    if not methods:
        return mark_empty(fig, axes[0, 0], "nuisances")
    with style():
        for ax, method in zip(axes[0], methods):
            table = {k: v for k, v in systematics[method].items() if k not in _SUMMARY}
            names = sorted(table, key=lambda k: abs(table[k]["impact_up"]) + abs(table[k]["impact_down"]))
            y = np.arange(len(names))
            up = [table[k]["impact_up"] for k in names]
            down = [table[k]["impact_down"] for k in names]
            ax.barh(y, up, color="tab:blue", alpha=0.5, label=r"$+1\sigma$ impact")
            ax.barh(y, down, color="tab:orange", alpha=0.5, label=r"$-1\sigma$ impact")
            ax.set_yticks(y, names)
            ax.set_xlabel(f"Δ{poi_label}")
            ax.axvline(0.0, color="k", lw=0.8)
            limit = max(max(map(abs, up + down)), 1e-12) * 1.3
            ax.set_xlim(-limit, limit)
            pulls = ax.twiny()
            pulls.errorbar([table[k]["pull"] for k in names], y, xerr=[table[k]["sigma"] for k in names],
                           fmt="o", color="k", ms=3, label="pull")  # fmt: skip
            pulls.set_xlim(-2.5, 2.5)
            pulls.set_xlabel(r"$(\hat\alpha - 0)/\sigma$")
            ax.set_title(method_label(method), fontsize="medium", pad=28)
            ax.legend(loc="lower right", fontsize="x-small")
        fig.tight_layout()
    return fig
