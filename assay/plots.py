"""Figures of an inference run, drawn from the typed parts of :class:`assay.results.Results`.

Every function takes one part of a level (a :class:`~assay.results.Scan1D`, the level's
``calibration``, ...) and returns a :class:`matplotlib.figure.Figure`. Figures are made without
pyplot (no GUI backend, no global figure registry: nothing to close, nothing shown);
:func:`save_figure` writes them as PNG and PDF through the Agg canvas in the house style of
:mod:`assay.plot_style` (mplhep's ATLAS style). The
shapes are checked when the results are made or read; here NaN entries are skipped, and a figure
with nothing to draw says so and :func:`has_data` is False for it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from assay.plot_style import (
    CL_1D,
    CL_2D,
    _colors,
    _ordered,
    axis_label,
    cl_label,
    experiment_label,
    has_data,
    legend,
    mark_empty,
    method_label,
    new_figure,
    readable_ticks,
    save_figure,
    style,
)
from assay.plots_distributions import distributions_figure
from assay.results import (
    Calibration,
    CutFlowResult,
    FisherInformation,
    LossCurve,
    Scan1D,
    Scan2D,
)

__all__ = [
    "CL_1D",
    "CL_2D",
    "axis_label",
    "calibration_figure",
    "contours_2d_figure",
    "cut_flow_figure",
    "distributions_figure",
    "fisher_ellipses_figure",
    "has_data",
    "legend",
    "loss_curves_figure",
    "mark_empty",
    "method_label",
    "new_figure",
    "save_figure",
    "scan_1d_figure",
    "style",
]

_RANK_ONE = 1e-9  # eigenvalue ratio below which an information counts as rank one (rate only)


# --- 1D scans ---------------------------------------------------------------------------------------


def scan_1d_figure(
    scan: Scan1D,
    parameter_label: str,
    cls: Sequence[float] = CL_1D,
    *,
    luminosity_ifb: float | None = None,
    method_names: Mapping[str, str] | None = None,
) -> Figure:
    """−2Δlog L of every method along one parameter.

    Args:
        scan: one of a level's ``scans_1d``.
        parameter_label: x-axis label (e.g. ``"$c_{HW}$ [TeV$^{-2}$]"``, see :func:`axis_label`).
        cls: critical values of q drawn as dashed horizontal lines, labelled with their CL for one
            parameter (1 and 3.84: 68% and 95% CL).
        luminosity_ifb: shown above the axes (fb⁻¹).
        method_names: display names of methods (see :func:`method_label`).

    Returns:
        The figure; truth is a solid black line, the other methods coloured lines (NaN points skipped).
    """
    fig, axes = new_figure()
    ax = axes[0, 0]
    curves = {}
    for method, q in scan.q.items():
        ok = np.isfinite(scan.theta) & np.isfinite(q)
        if ok.sum() >= 2:
            curves[method] = (scan.theta[ok], q[ok])
    if not curves:
        return mark_empty(fig, ax, "1D scan")
    colors = _colors(list(curves))
    with style():
        for method in _ordered(list(curves)):
            x, q = curves[method]
            width = 2.0 if method == "truth" else 1.5
            ax.plot(x, q, color=colors[method], lw=width, label=method_label(method, method_names))
        for level in cls:
            ax.axhline(level, color="grey", ls="--", lw=1)
            ax.text(0.02, level, f" {cl_label(level, 1)}", color="grey", va="bottom",
                    transform=ax.get_yaxis_transform())  # fmt: skip
        q_max = max(float(q.max()) for _, q in curves.values())
        ax.set_ylim(0.0, min(max(q_max, 1.3 * max(cls)), 2.5 * max(cls)))
        ax.set_xlabel(parameter_label)
        ax.set_ylabel(r"$-2\,\Delta\log L$")
        readable_ticks(ax)
        experiment_label(ax, luminosity_ifb)
        legend(ax, title=_fixed(scan.fixed))
    return fig


def _fixed(fixed: Mapping[str, float]) -> str | None:
    return ", ".join(f"{k} = {v:g}" for k, v in fixed.items()) or None


# --- 2D contours ------------------------------------------------------------------------------------


def contours_2d_figure(
    scan: Scan2D,
    labels: Sequence[str],
    cls: Sequence[float] = CL_2D,
    *,
    luminosity_ifb: float | None = None,
    method_names: Mapping[str, str] | None = None,
) -> Figure:
    """68% and 95% CL contours (q = 2.30, 5.99 for two parameters) of every method on a 2D grid.

    Args:
        scan: one of a level's ``scans_2d`` (``q[m][i, j]`` at ``(axes[0][i], axes[1][j])``).
        labels: the two axis labels.
        cls: contour levels (one solid, the next dashed), labelled with their CL for two parameters.
        luminosity_ifb: shown above the axes (fb⁻¹).
        method_names: display names of methods (see :func:`method_label`).

    Returns:
        The figure: one colour per method; each method's contours are one
        :class:`~matplotlib.contour.ContourSet` labelled with the method key.
    """
    fig, axes = new_figure(size=(7.5, 7.0))
    ax = axes[0, 0]
    x, y = scan.axes
    surfaces = {}
    for method, q in scan.q.items():
        if np.isfinite(q).sum() >= 4 and np.nanmin(q) < max(cls):
            surfaces[method] = np.ma.masked_invalid(q.T)  # contour wants z[row = y, column = x]
    if not surfaces or len(x) < 2 or len(y) < 2:
        return mark_empty(fig, ax, "2D scan")
    colors = _colors(list(surfaces))
    styles = ("solid", "dashed", "dotted", "dashdot")[: len(cls)]
    with style():
        for method in _ordered(list(surfaces)):
            contour = ax.contour(x, y, surfaces[method], levels=sorted(cls), colors=colors[method],
                                 linestyles=styles, linewidths=2.0 if method == "truth" else 1.5)  # fmt: skip
            contour.set_label(method)
        handles = [Line2D([], [], color=colors[m], label=method_label(m, method_names))
                   for m in _ordered(list(surfaces))]  # fmt: skip
        handles.append(Line2D([], [], ls="", label=" "))  # a gap, then the line style of each CL
        handles += [Line2D([], [], color="black", lw=1, ls=ls, label=cl_label(c, 2))
                    for ls, c in zip(styles, sorted(cls))]  # fmt: skip
        legend(ax, handles, title=_fixed(scan.fixed))
        ax.set_xlabel(labels[0])
        ax.set_ylabel(labels[1])
        readable_ticks(ax)
        experiment_label(ax, luminosity_ifb)
    return fig


# --- training -----------------------------------------------------------------------------------------


def _curves(member: LossCurve) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(epoch, loss) of the finite entries of the training and validation loss; epochs count from 1."""
    out = {}
    for key, loss in (("train_loss", member.train_loss), ("val_loss", member.val_loss)):
        epochs = np.arange(1, len(loss) + 1, dtype=float)
        ok = np.isfinite(loss)
        if ok.any():
            out[key] = (epochs[ok], loss[ok])
    return out


def _mark_best(ax: Axes, curves: Mapping, best: int, color: str) -> None:
    """A dot at the kept epoch, on the validation curve if there is one."""
    curve = curves.get("val_loss") or curves.get("train_loss")
    at = curve[0] == best + 1
    if at.any():
        ax.plot(curve[0][at], curve[1][at], "o", color=color, ms=4)


def loss_curves_figure(histories: Mapping[str, Sequence[LossCurve]]) -> Figure:
    """Training (solid) and validation (dashed) loss per epoch of every ensemble member.

    Args:
        histories: a level's ``histories`` (model → one :class:`~assay.results.LossCurve` per member).

    Returns:
        The figure; epochs count from 1, a dot at each member's kept epoch, log y when every
        plotted loss is positive.
    """
    fig, axes = new_figure()
    ax = axes[0, 0]
    drawn: dict[str, list] = {}
    for method, members in histories.items():
        curves = [(c, m.best_epoch) for m in members if (c := _curves(m))]
        if curves:
            drawn[method] = curves
    if not drawn:
        return mark_empty(fig, ax, "training histories")
    colors = _colors(list(drawn))
    with style():
        for method, members in drawn.items():
            for curves, best in members:
                for key, (epochs, loss) in curves.items():
                    ls = "-" if key == "train_loss" else "--"
                    ax.plot(epochs, loss, color=colors[method], ls=ls, lw=0.9, alpha=0.85)
                _mark_best(ax, curves, best, colors[method])
        losses = [loss for members in drawn.values() for curves, _ in members for _, loss in curves.values()]
        if all((loss > 0).all() for loss in losses):
            ax.set_yscale("log")
        handles = [Line2D([], [], color=colors[m], label=method_label(m)) for m in drawn]
        handles += [
            Line2D([], [], color="grey", ls="-", label="train"),
            Line2D([], [], color="grey", ls="--", label="validation"),
            Line2D([], [], color="grey", ls="", marker="o", ms=4, label="kept epoch"),
        ]
        legend(ax, handles)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
    return fig


# --- calibration --------------------------------------------------------------------------------------


def calibration_figure(calibration: Mapping[str, Calibration]) -> Figure:
    """The expectation check R̂(θ) (1 for a perfect estimator) of each method against |θ|.

    Args:
        calibration: a level's ``calibration`` (method → :class:`~assay.results.Calibration`).

    Returns:
        The figure; error bars are ``r_hat_std`` (none where it is None or NaN).
    """
    fig, axes = new_figure()
    ax = axes[0, 0]
    points = {m: c for m, c in calibration.items() if np.isfinite(c.r_hat_mean).any()}
    if not points:
        return mark_empty(fig, ax, "calibration")
    colors = _colors(list(points))
    with style():
        for method, c in points.items():
            x = np.linalg.norm(c.theta, axis=1)
            std = np.zeros_like(c.r_hat_mean) if c.r_hat_std is None else c.r_hat_std
            ok = np.isfinite(x) & np.isfinite(c.r_hat_mean)
            ax.errorbar(x[ok], c.r_hat_mean[ok], yerr=np.nan_to_num(std[ok], nan=0.0, posinf=0.0), fmt="o",
                        ms=4, capsize=2, color=colors[method], label=method_label(method))  # fmt: skip
        ax.axhline(1.0, color="black", lw=1)
        ax.margins(x=0.05)
        ax.set_xlabel(r"$|\theta|$")
        ax.set_ylabel(r"$\hat R(\theta)$")
        legend(ax)
    return fig


# --- cut flow -----------------------------------------------------------------------------------------


def cut_flow_figure(cut_flow: CutFlowResult) -> Figure:
    """The cumulative weighted efficiency after each cut of the selection.

    Args:
        cut_flow: a level's ``cut_flow``.

    Returns:
        The figure: one bar per cut, in the order applied, labelled with its efficiency in percent.
    """
    fig, axes = new_figure(size=(max(6.0, 1.2 * len(cut_flow.names) + 2), 5.0))
    ax = axes[0, 0]
    if not np.isfinite(cut_flow.efficiency).any():
        return mark_empty(fig, ax, "cut flow")
    with style():
        x = np.arange(len(cut_flow.names))
        bars = ax.bar(x, np.nan_to_num(100 * cut_flow.efficiency), color="#1f77b4")
        ax.bar_label(bars, labels=[f"{100 * e:.1f}" for e in cut_flow.efficiency], fontsize="small")
        ax.set_xticks(x, cut_flow.names, rotation=30, ha="right")
        ax.tick_params(axis="x", which="minor", bottom=False, top=False)
        ax.set_ylim(0.0, 110.0)
        ax.set_ylabel("cumulative efficiency [%]")
    return fig


# --- Fisher information -----------------------------------------------------------------------------


def _profiled(info: np.ndarray) -> np.ndarray | None:
    """The 2×2 information of the first two parameters, the others profiled; None if singular."""
    if len(info) == 2:
        return 0.5 * (info + info.T)
    try:
        return np.linalg.inv(np.linalg.inv(info)[:2, :2])
    except np.linalg.LinAlgError:
        return None


def _band(info: np.ndarray, q: float) -> tuple[np.ndarray, float] | None:
    """For a (numerically) rank-one 2×2 information: (unit normal v, half-width w) of |v·δ| ≤ w."""
    values, vectors = np.linalg.eigh(info)
    if not values[1] > 0 or abs(values[0]) > _RANK_ONE * values[1]:
        return None
    return vectors[:, 1], math.sqrt(q / values[1])


def _window(ellipses: Mapping[str, np.ndarray], center: np.ndarray) -> np.ndarray | None:
    """Half-widths (x, y) showing every ellipse, at most 4× the reference one (truth, else the smallest)."""
    if not ellipses:
        return None
    extents = {m: np.abs(xy - center).max(axis=0) for m, xy in ellipses.items()}
    reference = extents.get("truth", min(extents.values(), key=lambda e: e[0] * e[1]))
    return 1.1 * np.minimum(np.max(list(extents.values()), axis=0), 4 * reference)


def _shapes(fisher: FisherInformation, center: np.ndarray, q: float) -> tuple[dict, dict]:
    """(method → ellipse points, method → band) of every drawable information matrix."""
    from scipy import stats

    from assay.inference.fisher import information_ellipse

    cl = float(stats.chi2.cdf(q, 2))  # information_ellipse draws δᵀ I δ = F⁻¹_χ²(cl | 2) = q
    ellipses, bands = {}, {}
    for method, info in fisher.information.items():
        if not np.isfinite(info).all():
            continue
        block = _profiled(info)
        band = None if block is None else _band(block, q)
        if band is not None:
            bands[method] = band
            continue
        try:
            ellipses[method] = information_ellipse(info, cl, center=center)
        except ValueError:
            continue  # not positive semi-definite: nothing sensible to draw
    return ellipses, bands


def fisher_ellipses_figure(
    fisher: FisherInformation,
    labels: Sequence[str],
    q: float = CL_2D[0],
    *,
    luminosity_ifb: float | None = None,
    method_names: Mapping[str, str] | None = None,
) -> Figure:
    """68% CL information ellipses δᵀ I δ = 2.30 of each method, centred at ``fisher.theta``.

    Args:
        fisher: a level's ``fisher`` (matrices of more than two parameters are profiled to the first two).
        labels: the two axis labels.
        q: the level of the ellipse (2.30: 68% CL for two parameters).
        luminosity_ifb: shown above the axes (fb⁻¹; the information is at this luminosity).
        method_names: display names of methods (see :func:`method_label`).

    Returns:
        The figure (empty for fewer than two parameters); a rank-one information (rate only) is
        drawn as the band between two dashed lines. The window shows every ellipse, up to 4× the
        size of the truth ellipse (else the smallest).
    """
    fig, axes = new_figure(size=(7.5, 7.0))
    ax = axes[0, 0]
    if len(fisher.theta) < 2:
        return mark_empty(fig, ax, "Fisher information of two parameters")
    center = np.nan_to_num(fisher.theta[:2])
    ellipses, bands = _shapes(fisher, center, q)
    if not ellipses and not bands:
        return mark_empty(fig, ax, "Fisher information")
    colors = _colors(list(ellipses) + list(bands))
    with style():
        for method in _ordered(list(ellipses)):
            xy = ellipses[method]
            ax.plot(xy[:, 0], xy[:, 1], color=colors[method], lw=2.0 if method == "truth" else 1.5,
                    label=method_label(method, method_names))  # fmt: skip
        window = _window(ellipses, center)
        if window is None:  # only bands: a few half-widths
            window = np.full(2, 4 * max(width for _, width in bands.values()))
        ax.set_xlim(center[0] - window[0], center[0] + window[0])
        ax.set_ylim(center[1] - window[1], center[1] + window[1])
        for method, (normal, w) in bands.items():
            along = np.array([-normal[1], normal[0]])
            for sign in (1.0, -1.0):
                p = center + sign * w * normal
                ax.axline(tuple(p), tuple(p + along), color=colors[method], ls="--", lw=1.5,
                          label=method_label(method, method_names) if sign > 0 else None)  # fmt: skip
        ax.plot([center[0]], [center[1]], "k+", ms=10)
        ax.set_xlabel(labels[0])
        ax.set_ylabel(labels[1])
        readable_ticks(ax, 5)
        experiment_label(ax, luminosity_ifb)
        legend(ax, title=f"{cl_label(q, 2)}, Fisher information")
    return fig
