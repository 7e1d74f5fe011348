"""Distributions of the observables at a few benchmarks, with a ratio panel under each.

The reference (the first benchmark of each :class:`~assay.results.Distribution`, θ_true in
``assay limits``) is the denominator of the ratio panel, so that the effect of the EFT (a few percent
in a tail) is visible where the normalised shapes lie on top of each other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from assay.plot_style import blank_figure, experiment_label, mark_empty, new_figure, style
from assay.results import Distribution

__all__ = ["distributions_figure", "ratio_limits"]

_RATIO_RANGE = (0.0, 3.0)  # the ratio panel never shows more than this


_SHOWN = 0.02  # bins whose reference density is below this fraction of its maximum set no ratio range


def ratio_limits(ratios: list[np.ndarray], reference: np.ndarray, pad: float = 0.1) -> tuple[float, float]:
    """y-range of a ratio panel: the range of the finite ratios in bins where the reference has at
    least :data:`_SHOWN` of its peak density (the far tails fluctuate), with ``pad`` around it,
    always including 1 and never beyond :data:`_RATIO_RANGE`.

    Example:
        >>> ratio_limits([np.array([0.9, 1.05, 7.0])], np.array([1.0, 1.0, 0.001]))
        (0.885, 1.065)
    """
    peak = np.nanmax(reference) if np.isfinite(reference).any() else 0.0
    populated = np.nan_to_num(reference) >= _SHOWN * peak
    finite = np.concatenate([r[np.isfinite(r) & populated] for r in ratios] + [np.ones(1)])
    lo, hi = float(finite.min()), float(finite.max())
    span = max(hi - lo, 0.02)
    return (round(max(_RATIO_RANGE[0], lo - pad * span), 6), round(min(_RATIO_RANGE[1], hi + pad * span), 6))


def distributions_figure(
    distributions: Mapping[str, Distribution], ncols: int = 3, *, luminosity_ifb: float | None = None
) -> Figure:
    """Normalised distributions (1/σ dσ/dx) of each observable at each benchmark, one panel per
    observable, and under it the ratio of each benchmark to the first one.

    Args:
        distributions: a level's ``distributions`` (observable → :class:`~assay.results.Distribution`).
        ncols: panels per row (at most).
        luminosity_ifb: shown above the first panel (fb⁻¹).

    Returns:
        The figure (step histograms; gaps where a density is NaN or the reference is 0); one legend
        above the panels.
    """
    panels = {
        k: d for k, d in distributions.items() if any(np.isfinite(h).any() for h in d.benchmarks.values())
    }
    if not panels:
        fig, axes = new_figure()
        return mark_empty(fig, axes[0, 0], "distributions")
    ncols = max(1, min(ncols, len(panels)))
    nrows = math.ceil(len(panels) / ncols)
    fig = blank_figure((5.0 * ncols, 5.4 * nrows))
    grid = fig.add_gridspec(2 * nrows, ncols, height_ratios=[3, 1] * nrows, hspace=0.08, wspace=0.35,
                            top=0.84)  # fmt: skip
    handles = []
    with style():
        for k, panel in enumerate(panels.values()):
            row, col = divmod(k, ncols)
            top = fig.add_subplot(grid[2 * row, col])
            bottom = fig.add_subplot(grid[2 * row + 1, col], sharex=top)
            names = list(panel.benchmarks)
            reference = panel.benchmarks[names[0]]
            ratios = []
            for j, name in enumerate(names):
                h = np.where(np.isfinite(panel.benchmarks[name]), panel.benchmarks[name], np.nan)
                artist = top.stairs(h, panel.edges, label=name, lw=1.5, color=f"C{j}")
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = np.where(reference > 0, h / reference, np.nan)
                bottom.stairs(ratio, panel.edges, lw=1.5, color=f"C{j}")
                ratios.append(ratio)
                if k == 0:
                    handles.append(artist)
            top.set_ylabel(r"$1/\sigma\; d\sigma/dx$")
            top.set_ylim(bottom=0.0)
            top.tick_params(labelbottom=False)
            bottom.set_ylim(*ratio_limits(ratios, reference))
            bottom.set_ylabel(f"ratio to\n{names[0]}", fontsize="small")
            bottom.set_xlabel(panel.label)
            if k == 0:
                experiment_label(top, luminosity_ifb)
        fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.9), ncol=len(handles),
                   fontsize="small", frameon=False)  # fmt: skip
    return fig
