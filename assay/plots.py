"""Figures of an inference run, drawn from the plain dicts of ``results.json`` (docs/results.md).

Every function takes one level's sub-dict (or part of it) exactly as read from the JSON file and
returns a :class:`matplotlib.figure.Figure`. Figures are made without pyplot (no GUI backend, no
global figure registry: nothing to close, nothing shown); :func:`save_figure` writes them as PNG
through the Agg canvas in the mplhep ATLAS style. Missing methods or keys, ``null``/NaN entries and
entries of the wrong shape are skipped; a figure with nothing to draw says so and
:func:`has_data` is False for it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib
import mplhep
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from assay.saving import atomic_path

__all__ = [
    "CL_1D",
    "CL_2D",
    "calibration_figure",
    "contours_2d_figure",
    "distributions_figure",
    "fisher_ellipses_figure",
    "has_data",
    "loss_curves_figure",
    "method_label",
    "save_figure",
    "scan_1d_figure",
    "style",
]

CL_1D = (1.0, 3.84)  # q_crit of 68% and 95% CL, one parameter
CL_2D = (2.30, 5.99)  # q_crit of 68% and 95% CL, two parameters
_RANK_ONE = 1e-9  # eigenvalue ratio below which an information counts as rank one (rate only)
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
_LEGEND_INSIDE = 4  # more entries than this go to the right of the axes


@contextmanager
def style() -> Iterator[None]:
    """The mplhep ATLAS style for the duration of the block (the global rcParams are left alone)."""
    with matplotlib.rc_context(_STYLE):
        yield


def method_label(method: str) -> str:
    """Display name of a method key: ``"sally"`` → ``"SALLY"``, ``"hist_pT_W"`` → ``"histogram pT_W"``."""
    if method.startswith("hist_"):
        return f"histogram {method[5:]}"
    return _NAMES.get(method, method)


def _colors(methods: Sequence[str]) -> dict[str, str]:
    """One colour per method: fixed for known methods, spare colours in order for the others."""
    spare = iter(c for c in _SPARE_COLORS if c not in {_COLORS.get(m) for m in methods})
    return {m: _COLORS[m] if m in _COLORS else next(spare, "#555555") for m in methods}


def _ordered(methods: Sequence[str]) -> list[str]:
    """Truth first, then the others in file order."""
    return sorted(methods, key=lambda m: m != "truth")


def _array(values: Any, ndim: int) -> np.ndarray | None:
    """``values`` as a float array of ``ndim`` dimensions (``null`` → NaN), or None if it is not one."""
    if values is None or isinstance(values, (str, bytes, Mapping)):
        return None
    try:
        array = np.array(values, dtype=float)
    except (TypeError, ValueError):
        return None
    return array if array.ndim == ndim and array.size > 0 else None


def _mapping(data: Any, key: str) -> Mapping:
    """``data[key]`` if both are mappings, else an empty mapping."""
    value = data.get(key) if isinstance(data, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def _new_figure(nrows: int = 1, ncols: int = 1, *, size: tuple[float, float] | None = None):
    """A pyplot-free figure with an Agg canvas and its axes (squeezed like ``plt.subplots``)."""
    with style():
        figsize = size or matplotlib.rcParams["figure.figsize"]
        fig = Figure(figsize=figsize)
        FigureCanvasAgg(fig)
        axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _mark_empty(fig: Figure, ax: Axes, what: str) -> Figure:
    ax.text(0.5, 0.5, f"no {what}", ha="center", va="center", transform=ax.transAxes)
    fig.set_label(_EMPTY)
    return fig


def has_data(fig: Figure) -> bool:
    """False for a figure that only says "no ..." because its input had nothing drawable."""
    return fig.get_label() != _EMPTY


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically (temporary file + ``os.replace``), then clear it.

    Args:
        fig: a figure from this module.
        path: the PNG file; its folder must exist.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    try:
        with atomic_path(path, suffix=".png.tmp") as tmp, style():
            fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    finally:
        fig.clear()  # release the artists; the figure is not in pyplot's registry
    return path


def _legend(ax: Axes, handles: list | None = None, **kwargs: Any) -> None:
    """A small legend from ``handles`` or else the labelled artists (if any); long ones outside, right."""
    handles = handles if handles is not None else ax.get_legend_handles_labels()[0]
    if not handles:
        return
    if len(handles) > _LEGEND_INSIDE:
        kwargs |= {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0}
    ax.legend(handles=handles, fontsize="small", **kwargs)


# --- 1D scans ---------------------------------------------------------------------------------------


def scan_1d_figure(scan: Mapping, parameter_label: str, cls: Sequence[float] = CL_1D) -> Figure:
    """−2Δlog L of every method along one parameter.

    Args:
        scan: one entry of a level's ``scans_1d``: ``{"theta": [...], "fixed": {...},
            "q": {method: [...]}}``; ``q[method]`` has the length of ``theta``.
        parameter_label: x-axis label (e.g. ``"$c_{HW}$"``).
        cls: critical values of q drawn as dashed horizontal lines (68% and 95% CL for one dof).

    Returns:
        The figure; truth is a solid black line, the other methods coloured lines.
    """
    fig, axes = _new_figure()
    ax = axes[0, 0]
    theta = _array(scan.get("theta") if isinstance(scan, Mapping) else None, 1)
    curves = {}
    for method, values in _mapping(scan, "q").items():
        q = _array(values, 1)
        if theta is None or q is None or q.shape != theta.shape:
            continue
        ok = np.isfinite(theta) & np.isfinite(q)
        if ok.sum() >= 2:
            curves[method] = (theta[ok], q[ok])
    if not curves:
        return _mark_empty(fig, ax, "1D scan")
    colors = _colors(list(curves))
    with style():
        for method in _ordered(list(curves)):
            x, q = curves[method]
            width = 2.0 if method == "truth" else 1.5
            ax.plot(x, q, color=colors[method], lw=width, label=method_label(method))
        for level, name in zip(cls, ("68% CL", "95% CL", "")):
            ax.axhline(level, color="grey", ls="--", lw=1)
            ax.text(0.02, level, f" {name}", color="grey", va="bottom", transform=ax.get_yaxis_transform())
        q_max = max(float(q.max()) for _, q in curves.values())
        ax.set_ylim(0.0, min(max(q_max, 1.3 * max(cls)), 2.5 * max(cls)))
        ax.set_xlabel(parameter_label)
        ax.set_ylabel(r"$-2\,\Delta\log L$")
        fixed = ", ".join(f"{k} = {v:g}" for k, v in _mapping(scan, "fixed").items() if _is_number(v))
        _legend(ax, title=fixed or None, loc="upper center")
    return fig


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# --- 2D contours ------------------------------------------------------------------------------------


def _grid_axes(scan_2d: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The x and y values of a ``scan_2d`` (None where missing or malformed)."""
    grid = scan_2d.get("axes") if isinstance(scan_2d, Mapping) else None
    if not isinstance(grid, Sequence) or isinstance(grid, str) or len(grid) != 2:
        return None, None
    return _array(grid[0], 1), _array(grid[1], 1)


def contours_2d_figure(scan_2d: Mapping, labels: Sequence[str], cls: Sequence[float] = CL_2D) -> Figure:
    """68% and 95% CL contours (q = 2.30, 5.99 for two dof) of every method on a 2D grid.

    Args:
        scan_2d: a level's ``scan_2d``: ``{"axes": [x values, y values], "q": {method: [[...]]}}``
            with ``q[method][i][j]`` at ``(axes[0][i], axes[1][j])``.
        labels: the two axis labels.
        cls: contour levels (one solid, the next dashed).

    Returns:
        The figure: one colour per method; each method's contours are one
        :class:`~matplotlib.contour.ContourSet` labelled with the method key.
    """
    fig, axes = _new_figure(size=(7.5, 7.0))
    ax = axes[0, 0]
    x, y = _grid_axes(scan_2d)
    surfaces = {}
    for method, values in _mapping(scan_2d, "q").items():
        q = _array(values, 2)
        if x is None or y is None or q is None or q.shape != (len(x), len(y)):
            continue
        if np.isfinite(q).sum() >= 4 and np.nanmin(q) < max(cls):
            surfaces[method] = np.ma.masked_invalid(q.T)  # contour wants z[row = y, column = x]
    if not surfaces:
        return _mark_empty(fig, ax, "2D scan")
    colors = _colors(list(surfaces))
    styles = ("solid", "dashed", "dotted", "dashdot")[: len(cls)]
    with style():
        for method in _ordered(list(surfaces)):
            contour = ax.contour(x, y, surfaces[method], levels=sorted(cls), colors=colors[method],
                                 linestyles=styles, linewidths=2.0 if method == "truth" else 1.5)  # fmt: skip
            contour.set_label(method)
        handles = [Line2D([], [], color=colors[m], label=method_label(m)) for m in _ordered(list(surfaces))]
        handles += [
            Line2D([], [], color="grey", ls=s, label=f"q = {c:g}") for s, c in zip(styles, sorted(cls))
        ]
        _legend(ax, handles, loc="upper right")
        ax.set_xlabel(labels[0] if len(labels) > 0 else "")
        ax.set_ylabel(labels[1] if len(labels) > 1 else "")
    return fig


# --- distributions ----------------------------------------------------------------------------------


def distributions_figure(distributions: Mapping, ncols: int = 3) -> Figure:
    """Normalised distributions of each observable for each benchmark, one panel per observable.

    Args:
        distributions: a level's ``distributions``: ``{observable: {"edges": [...], "label": str,
            "benchmarks": {name: [densities per bin]}}}``.
        ncols: panels per row (at most).

    Returns:
        The figure (step histograms).
    """
    panels = {}
    for name, entry in (distributions if isinstance(distributions, Mapping) else {}).items():
        edges = _array(entry.get("edges") if isinstance(entry, Mapping) else None, 1)
        if edges is None or len(edges) < 2 or not np.isfinite(edges).all():
            continue
        hists = {}
        for benchmark, values in _mapping(entry, "benchmarks").items():
            h = _array(values, 1)
            if h is not None and len(h) == len(edges) - 1 and np.isfinite(h).any():
                hists[benchmark] = np.where(np.isfinite(h), h, np.nan)  # gaps where not finite
        if hists:
            label = entry.get("label")
            panels[name] = (edges, hists, label if isinstance(label, str) else name)
    n = max(len(panels), 1)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = _new_figure(nrows, ncols, size=(5.0 * ncols, 4.2 * nrows))
    if not panels:
        return _mark_empty(fig, axes[0, 0], "distributions")
    with style():
        for ax, (edges, hists, label) in zip(axes.flat, panels.values()):
            for benchmark, h in hists.items():
                ax.stairs(h, edges, label=benchmark, lw=1.5)
            ax.set_xlabel(label)
            ax.set_ylabel("normalised")
            ax.set_ylim(bottom=0.0)
            _legend(ax)
        for ax in list(axes.flat)[len(panels) :]:
            ax.set_visible(False)
        fig.tight_layout()
    return fig


# --- training -----------------------------------------------------------------------------------------


def _members(entry: Any) -> list[Mapping]:
    """A method's histories as a list of dicts (a single dict counts as one member)."""
    if isinstance(entry, Mapping):
        return [entry]
    if isinstance(entry, Sequence) and not isinstance(entry, str):
        return [m for m in entry if isinstance(m, Mapping)]
    return []


def _curve(member: Mapping, key: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(epoch, loss) of the finite entries of ``member[key]``; epochs count from 1."""
    loss = _array(member.get(key), 1)
    if loss is None:
        return None
    epochs = np.arange(1, len(loss) + 1, dtype=float)
    ok = np.isfinite(loss)
    return (epochs[ok], loss[ok]) if ok.any() else None


def _member_curves(member: Mapping) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], int | None]:
    """The drawable curves (``"train_loss"``, ``"val_loss"``) of one member and its kept epoch."""
    curves = {key: c for key in ("train_loss", "val_loss") if (c := _curve(member, key)) is not None}
    best = member.get("best_epoch")
    return curves, best if isinstance(best, int) and not isinstance(best, bool) else None


def _mark_best(ax: Axes, curves: Mapping, best: int | None, color: str) -> None:
    """A dot at the kept epoch, on the validation curve if there is one."""
    curve = curves.get("val_loss") or curves.get("train_loss")
    if best is None or curve is None:
        return
    at = curve[0] == best + 1
    if at.any():
        ax.plot(curve[0][at], curve[1][at], "o", color=color, ms=4)


def loss_curves_figure(histories: Mapping) -> Figure:
    """Training (solid) and validation (dashed) loss per epoch of every ensemble member.

    Args:
        histories: a level's ``histories``: ``{method: [History.to_dict(), ...]}`` with
            ``train_loss``, ``val_loss`` (may be empty) and ``best_epoch`` (0-based index).

    Returns:
        The figure; epochs count from 1, a dot at each member's kept epoch, log y when every
        plotted loss is positive.
    """
    fig, axes = _new_figure()
    ax = axes[0, 0]
    drawn: dict[str, list] = {}
    for method, entry in (histories if isinstance(histories, Mapping) else {}).items():
        members = [_member_curves(m) for m in _members(entry)]
        if any(curves for curves, _ in members):
            drawn[method] = [(curves, best) for curves, best in members if curves]
    if not drawn:
        return _mark_empty(fig, ax, "training histories")
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
        _legend(ax, handles, loc="upper right")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
    return fig


# --- calibration --------------------------------------------------------------------------------------


def _calibration_points(entry: Any) -> tuple[np.ndarray | None, np.ndarray, np.ndarray] | None:
    """(|θ| or None, mean, std) of one method's expectation check; std NaN → 0."""
    if not isinstance(entry, Mapping):
        return None
    mean = _array(entry.get("r_hat_mean"), 1)
    if mean is None:
        return None
    std = _array(entry.get("r_hat_std"), 1)
    std = std if std is not None and std.shape == mean.shape else np.zeros_like(mean)
    theta = _array(entry.get("theta"), 2)
    if theta is None:
        theta = _array(entry.get("theta"), 1)  # one parameter
        theta = None if theta is None else theta[:, None]
    norm = np.linalg.norm(theta, axis=1) if theta is not None and len(theta) == len(mean) else None
    return norm, mean, np.nan_to_num(std, nan=0.0, posinf=0.0)


def calibration_figure(calibration: Mapping) -> Figure:
    """The expectation check R̂(θ) (1 for a perfect estimator) of each method, with error bars.

    Args:
        calibration: a level's ``calibration``: ``{method: {"theta": [[...], ...], "r_hat_mean":
            [...], "r_hat_std": [...]}}``.

    Returns:
        The figure: R̂ against |θ| when every method gives θ, else against the θ index.
    """
    fig, axes = _new_figure()
    ax = axes[0, 0]
    points = {}
    for method, entry in (calibration if isinstance(calibration, Mapping) else {}).items():
        p = _calibration_points(entry)
        if p is not None and np.isfinite(p[1]).any():
            points[method] = p
    if not points:
        return _mark_empty(fig, ax, "calibration")
    by_norm = all(p[0] is not None for p in points.values())
    colors = _colors(list(points))
    with style():
        for method, (norm, mean, std) in points.items():
            x = norm if by_norm else np.arange(len(mean), dtype=float)
            ok = np.isfinite(x) & np.isfinite(mean)
            ax.errorbar(x[ok], mean[ok], yerr=std[ok], fmt="o", ms=4, capsize=2, color=colors[method],
                        label=method_label(method))  # fmt: skip
        ax.axhline(1.0, color="black", lw=1)
        ax.margins(x=0.05)
        ax.set_xlabel(r"$|\theta|$" if by_norm else r"$\theta$ index")
        ax.set_ylabel(r"$\hat R(\theta)$")
        _legend(ax)
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


def fisher_ellipses_figure(fisher: Mapping, labels: Sequence[str], q: float = CL_2D[0]) -> Figure:
    """68% CL information ellipses δᵀ I δ = 2.30 of each method, centred at ``fisher["theta"]``.

    Args:
        fisher: a level's ``fisher``: ``{"theta": [θ1, θ2], "information": {method: [[a, b], [b, c]]}}``
            (a larger matrix is profiled to its first two parameters).
        labels: the two axis labels.
        q: the level of the ellipse (2.30: 68% CL for two parameters).

    Returns:
        The figure; a rank-one information (rate only) is drawn as the band between two dashed lines.
        The window shows every ellipse, up to 4× the size of the truth ellipse (else the smallest).
    """
    from scipy import stats

    from assay.inference.fisher import information_ellipse

    fig, axes = _new_figure(size=(7.5, 7.0))
    ax = axes[0, 0]
    given = _array(fisher.get("theta") if isinstance(fisher, Mapping) else None, 1)
    usable = given is not None and len(given) >= 2 and np.isfinite(given[:2]).all()
    center = given[:2] if usable else np.zeros(2)
    cl = float(stats.chi2.cdf(q, 2))  # information_ellipse draws δᵀ I δ = F⁻¹_χ²(cl | 2) = q
    ellipses, bands = {}, {}
    for method, values in _mapping(fisher, "information").items():
        info = _array(values, 2)
        if info is None or info.shape[0] != info.shape[1] or info.shape[0] < 2 or not np.isfinite(info).all():
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
    if not ellipses and not bands:
        return _mark_empty(fig, ax, "Fisher information")
    colors = _colors(list(ellipses) + list(bands))
    with style():
        for method in _ordered(list(ellipses)):
            xy = ellipses[method]
            ax.plot(xy[:, 0], xy[:, 1], color=colors[method], lw=2.0 if method == "truth" else 1.5,
                    label=method_label(method))  # fmt: skip
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
                          label=method_label(method) if sign > 0 else None)  # fmt: skip
        ax.plot([center[0]], [center[1]], "k+", ms=10)
        ax.set_xlabel(labels[0] if len(labels) > 0 else "")
        ax.set_ylabel(labels[1] if len(labels) > 1 else "")
        _legend(ax, loc="upper right", title=rf"$\delta^T I\, \delta = {q:.2f}$")
    return fig
