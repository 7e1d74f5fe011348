"""The house style of assay's figures: mplhep's ATLAS style, method names and colours, axis and
CL labels, the "assay Simulation" label with the luminosity, legends outside the axes, and
atomic PNG + PDF output. The figures themselves are in :mod:`assay.plots`,
:mod:`assay.plots_distributions`, :mod:`assay.plots_diagnostics` and :mod:`assay.plots_systematics`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib
import mplhep
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from assay.saving import atomic_path

__all__ = [
    "CL_1D",
    "CL_2D",
    "axis_label",
    "blank_figure",
    "cl_label",
    "experiment_label",
    "has_data",
    "legend",
    "mark_empty",
    "method_label",
    "new_figure",
    "readable_ticks",
    "save_figure",
    "style",
]

CL_1D = (1.0, 3.84)  # q_crit of 68% and 95% CL, one parameter
CL_2D = (2.30, 5.99)  # q_crit of 68% and 95% CL, two parameters
_EMPTY = "assay:empty"  # figure label of a figure with nothing drawn
_COLORS = {
    "truth": "black",
    "sally": "#1f77b4",
    "alices": "#d62728",
    "alice": "#ff7f0e",
    "bit": "#2ca02c",
    "rate": "#7f7f7f",
    "carl": "#9467bd",
    "rolr": "#8c564b",
    "rascal": "#e377c2",
    "cascal": "#bcbd22",
}
_SPARE_COLORS = ("#17becf", "#ff9896", "#98df8a", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5")
_NAMES = {
    "truth": "truth",
    "sally": "SALLY",
    "alices": "ALICES",
    "alice": "ALICE",
    "bit": "BIT",
    "rate": "rate only",
    "carl": "CARL",
    "rolr": "ROLR",
    "rascal": "RASCAL",
    "cascal": "CASCAL",
}


# --- helpers ----------------------------------------------------------------------------------------


_STYLE = {**mplhep.style.ATLAS, "axes.formatter.limits": (-4, 5)}  # 0.005 stays 0.005, no × 10⁻³


@contextmanager
def style() -> Iterator[None]:
    """The mplhep ATLAS style for the duration of the block (the global rcParams are left alone)."""
    with matplotlib.rc_context(_STYLE):
        yield


def method_label(method: str, names: Mapping[str, str] | None = None) -> str:
    """Display name of a method key: ``names[method]`` where given (e.g. a histogram's configured axis
    label), else ``"sally"`` → ``"SALLY"``, ``"hist_pT_W"`` → ``"histogram pT_W"``."""
    if names and method in names:
        return names[method]
    if method.startswith("hist_"):
        return f"histogram {method[5:]}"
    return _NAMES.get(method, method)


def axis_label(label: str, unit: str = "") -> str:
    """An axis label with its unit in brackets, exponents as mathtext (``TeV^-2`` → ``TeV$^{-2}$``).

    Example:
        >>> axis_label("$c_{HW}$", "TeV^-2"), axis_label("x")
        ('$c_{HW}$ [TeV$^{-2}$]', 'x')
    """
    return f"{label} [{_EXPONENT.sub(_MATH_EXPONENT, unit)}]" if unit else label


_EXPONENT, _MATH_EXPONENT = re.compile(r"\^\{?(-?\d+)\}?"), r"$^{\1}$"


def _colors(methods: Sequence[str]) -> dict[str, str]:
    """One colour per method: fixed for known methods, spare colours in order for the others."""
    spare = iter(c for c in _SPARE_COLORS if c not in {_COLORS.get(m) for m in methods})
    return {m: _COLORS[m] if m in _COLORS else next(spare, "#555555") for m in methods}


def _ordered(methods: Sequence[str]) -> list[str]:
    """Truth first, then the others in file order."""
    return sorted(methods, key=lambda m: m != "truth")


def blank_figure(size: tuple[float, float] | None = None) -> Figure:
    """A pyplot-free figure with an Agg canvas and no axes (for grids of panels)."""
    with style():
        fig = Figure(figsize=size or matplotlib.rcParams["figure.figsize"])
        FigureCanvasAgg(fig)
    return fig


def new_figure(nrows: int = 1, ncols: int = 1, *, size: tuple[float, float] | None = None):
    """A pyplot-free figure with an Agg canvas and its axes (squeezed like ``plt.subplots``)."""
    with style():
        figsize = size or matplotlib.rcParams["figure.figsize"]
        fig = Figure(figsize=figsize)
        FigureCanvasAgg(fig)
        axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def mark_empty(fig: Figure, ax: Axes, what: str) -> Figure:
    ax.text(0.5, 0.5, f"no {what}", ha="center", va="center", transform=ax.transAxes)
    fig.set_label(_EMPTY)
    return fig


def has_data(fig: Figure) -> bool:
    """False for a figure that only says "no ..." because its input had nothing drawable."""
    return fig.get_label() != _EMPTY


def save_figure(fig: Figure, path: str | os.PathLike, *, pdf: bool = False) -> Path:
    """Write ``fig`` as PNG to ``path`` and, with ``pdf``, as PDF beside it (``path`` with the suffix
    ``.pdf``: vector graphics for a paper), each atomically (temporary file + ``os.replace``), then
    clear it.

    Args:
        fig: a figure from this module.
        path: the PNG file; its folder must exist.
        pdf: also write the PDF.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    try:
        with style():
            with atomic_path(path, suffix=".png.tmp") as tmp:
                fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
            if pdf:
                with atomic_path(path.with_suffix(".pdf"), suffix=".pdf.tmp") as tmp:
                    fig.savefig(tmp, format="pdf", bbox_inches="tight")
    finally:
        fig.clear()  # release the artists; the figure is not in pyplot's registry
    return path


def legend(ax: Axes, handles: list | None = None, **kwargs: Any) -> None:
    """A small legend from ``handles`` or else the labelled artists (if any), outside the axes on the
    right, so that it never covers a curve (``loc``/``bbox_to_anchor`` in ``kwargs`` override that)."""
    handles = handles if handles is not None else ax.get_legend_handles_labels()[0]
    if not handles:
        return
    kwargs = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0, **kwargs}
    ax.legend(handles=handles, fontsize="small", **kwargs)


def cl_label(q: float, dof: int) -> str:
    """The confidence level of the threshold ``q`` of −2Δlog L for ``dof`` parameters (Wilks).

    Example:
        >>> cl_label(1.0, 1), cl_label(5.99, 2)
        ('68% CL', '95% CL')
    """
    from scipy import stats

    return f"{100 * float(stats.chi2.cdf(q, dof)):.0f}% CL"


def experiment_label(ax: Axes, luminosity_ifb: float | None = None, sqrt_s_tev: float | None = None) -> None:
    """The label above the axes, as in ATLAS/CMS figures: "assay Simulation" on the left, the
    integrated luminosity (and √s where known) on the right."""
    parts = [] if luminosity_ifb is None else [f"{luminosity_ifb:g} fb$^{{-1}}$"]
    parts += [] if sqrt_s_tev is None else [f"({sqrt_s_tev:g} TeV)"]
    # data=False: mplhep writes "Simulation" after the name
    mplhep.label.exp_label(exp="assay", data=False, rlabel=" ".join(parts), loc=0, ax=ax)


def readable_ticks(ax: Axes, n: int = 6) -> None:
    """At most ``n`` major ticks on the x axis, so that long tick labels do not overlap."""
    ax.xaxis.set_major_locator(MaxNLocator(nbins=n))
