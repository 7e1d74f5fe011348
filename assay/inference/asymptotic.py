"""Asymptotic limits from likelihood scans: grids, splines, profiling, Wilks p-values, intervals.

By Wilks' theorem q(θ) = −2 Δlog L(θ) follows a χ² distribution with k = n_params degrees of
freedom at the true θ, so (seed 000 "Setting Limits")

    p_θ = 1 − F_χ²(q(θ) | k),

and the CL region is {θ : q(θ) < F⁻¹_χ²(CL | k)}. Scans follow seed 000 "Binning & likelihood
scans": 303 points over c_HW ∈ [−1, 1] and c_HW̃ ∈ [−1.2, 1.2] in 1D, 35 × 35 in 2D, with the
likelihood interpolated by splines. Here the cubic spline (1D) or bicubic spline (2D, scipy
``RectBivariateSpline``) of q is minimised again, so the best fit and the intervals do not depend
on where the grid points fall; both reproduce polynomials of degree ≤ 3 exactly, hence a
quadratic q (Gaussian likelihood) gives exact intervals.

The 68% CL default is one Gaussian σ, CL = F_χ²(1 | 1) = 0.6827 (q_crit = 1); pass ``cls=(0.68,
0.95)`` for q_crit = 0.989 / 3.841.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import interpolate, optimize, stats

from assay.inference.likelihood import Scan

__all__ = [
    "DEFAULT_CLS",
    "ONE_SIGMA",
    "ContourResult",
    "LimitResult",
    "asimov_limits",
    "cl_tag",
    "contours_2d",
    "critical_value",
    "grid_axes",
    "limits_1d",
    "open_ends",
    "p_value",
    "profile",
    "scan_p_values",
    "spline_1d",
    "spline_2d",
    "theta_grid",
]

ONE_SIGMA = float(stats.chi2.cdf(1.0, 1))  # 0.682689…: q_crit = 1 for one parameter
DEFAULT_CLS = (ONE_SIGMA, 0.95)


def theta_grid(ranges: Sequence[Sequence[float]], n_points: int | Sequence[int]) -> np.ndarray:
    """Regular product grid, last parameter varying fastest ("ij" order).

    Args:
        ranges: (low, high) per parameter, ``(n_params, 2)``.
        n_points: points per parameter (one int or one per parameter), ≥ 4 for cubic splines.

    Returns:
        ``(prod(n_points), n_params)``.

    Example:
        >>> theta_grid([(-1.2, 1.2)], 303).shape, theta_grid([(-1.0, 1.0), (-1.2, 1.2)], 35).shape
        ((303, 1), (1225, 2))
    """
    bounds = np.asarray(ranges, dtype=float).reshape(-1, 2)
    counts = np.broadcast_to(np.asarray(n_points, dtype=int), (len(bounds),))
    if np.any(bounds[:, 0] >= bounds[:, 1]) or np.any(counts < 4):
        raise ValueError(
            f"theta_grid: expected low < high per parameter and >= 4 points each, got ranges "
            f"{bounds.tolist()} and n_points {counts.tolist()}"
        )
    axes = [np.linspace(lo, hi, n) for (lo, hi), n in zip(bounds, counts)]
    return np.stack([m.ravel() for m in np.meshgrid(*axes, indexing="ij")], axis=-1)


def grid_axes(theta: np.ndarray) -> tuple[np.ndarray, ...]:
    """The axes of a product grid ``theta (n_theta, n_params)`` in "ij" order (as from :func:`theta_grid`).

    Raises:
        ValueError: ``theta`` is not such a grid.
    """
    theta = np.asarray(theta, dtype=float)
    axes = tuple(np.unique(theta[:, a]) for a in range(theta.shape[1]))
    mesh = np.meshgrid(*axes, indexing="ij")
    if theta.shape[0] != mesh[0].size or not np.array_equal(theta, np.stack([m.ravel() for m in mesh], -1)):
        raise ValueError(
            f"theta: expected a product grid in 'ij' order (see theta_grid), got {theta.shape[0]} points "
            f"on axes of sizes {[len(a) for a in axes]}"
        )
    return axes


def p_value(q: np.ndarray | float, *, dof: int) -> np.ndarray:
    """Wilks p-value 1 − F_χ²(q | dof) (seed 000 "Setting Limits").

    Args:
        q: −2 Δlog L, any shape.
        dof: χ² degrees of freedom, the number of parameters the scan varies (no default: a 2D
            region computed with 1 would be silently too small); :func:`scan_p_values` takes it
            from the scan.

    Returns:
        p-values, the shape of ``q``.

    Example:
        >>> [round(float(p_value(q, dof=k)), 6) for q, k in ((3.841458820694124, 1), (5.991464547107979, 2))]
        [0.05, 0.05]
    """
    return stats.chi2.sf(np.asarray(q, dtype=float), _check_dof(dof))


def scan_p_values(scan: Scan, *, dof: int | None = None) -> np.ndarray:
    """Wilks p-value of every scanned point, :func:`p_value` of ``scan.minus_2_delta_log_l``.

    Args:
        scan: any :class:`Scan`.
        dof: χ² degrees of freedom; default ``scan.n_params`` (2 for a 2D scan).

    Returns:
        ``(n_theta,)``.
    """
    return p_value(scan.minus_2_delta_log_l, dof=scan.n_params if dof is None else dof)


def _check_dof(dof: int) -> int:
    if isinstance(dof, bool) or not isinstance(dof, (int, np.integer)) or dof < 1:
        raise ValueError(f"dof: expected an integer >= 1 (the number of scanned parameters), got {dof!r}")
    return int(dof)


def critical_value(cl: float, dof: int = 1) -> float:
    """q_crit = F⁻¹_χ²(cl | dof); e.g. 3.841 for 95% CL and one parameter.

    Prefer passing ``dof`` (the number of scanned parameters); :func:`limits_1d` and
    :func:`contours_2d` take it from the scan.
    """
    if not 0 < cl < 1:
        raise ValueError(f"cl: expected a confidence level in (0, 1), got {cl}")
    return float(stats.chi2.ppf(cl, _check_dof(dof)))


def _finite_q(scan: Scan, n_params: int) -> np.ndarray:
    if scan.n_params != n_params:
        raise ValueError(f"scan: expected {n_params} parameter(s), got {scan.n_params}; use the other helper")
    q = scan.minus_2_delta_log_l
    if not np.isfinite(q).all():
        bad = scan.theta[~np.isfinite(q)][0].tolist()
        n_bad = (~np.isfinite(q)).sum()
        raise ValueError(f"scan: q is not finite at {n_bad} points (first {bad}); narrow the scan range")
    return q


def spline_1d(scan: Scan) -> interpolate.CubicSpline:
    """Cubic (not-a-knot) spline of q(θ) through a 1D scan ``theta (n, 1)`` with n ≥ 4 points."""
    q = _finite_q(scan, 1)
    order = np.argsort(scan.theta[:, 0])
    x = scan.theta[order, 0]
    if len(x) < 4 or np.any(np.diff(x) <= 0):
        raise ValueError(f"scan: expected >= 4 distinct θ for a cubic spline, got {len(np.unique(x))}")
    return interpolate.CubicSpline(x, q[order])


def spline_2d(scan: Scan) -> interpolate.RectBivariateSpline:
    """Interpolating bicubic spline of q on a 2D product grid (from :func:`theta_grid`)."""
    q = _finite_q(scan, 2)
    ax0, ax1 = grid_axes(scan.theta)
    return interpolate.RectBivariateSpline(ax0, ax1, q.reshape(len(ax0), len(ax1)), kx=3, ky=3, s=0)


def _spline_minimum(spline: interpolate.CubicSpline) -> tuple[float, float]:
    """Exact minimum of a cubic spline on its knot range: stationary points and end points."""
    lo, hi = spline.x[0], spline.x[-1]
    roots = spline.derivative().roots(extrapolate=False)
    candidates = np.concatenate([[lo, hi], roots[np.isfinite(roots)]])
    values = spline(candidates)
    best = int(np.argmin(values))
    return float(candidates[best]), float(values[best])


def _regions_below(spline: interpolate.CubicSpline, level: float) -> list[tuple[float, float]]:
    """Disjoint intervals of the knot range where spline < level (roots by ``PPoly.solve``)."""
    lo, hi = spline.x[0], spline.x[-1]
    roots = spline.solve(level, extrapolate=False)
    roots = np.unique(roots[np.isfinite(roots) & (roots > lo) & (roots < hi)])
    edges = np.concatenate([[lo], roots, [hi]])
    regions: list[tuple[float, float]] = []
    for a, b in itertools.pairwise(edges):
        if b > a and spline(0.5 * (a + b)) < level:
            if regions and regions[-1][1] == a:  # a root where q touches the level: merge
                a = regions.pop()[0]
            regions.append((float(a), float(b)))
    return regions


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class LimitResult:
    """One-parameter limits from a scan.

    Attributes:
        best_fit: minimum of the spline of q ``(1,)``.
        q_min: spline minimum relative to the grid minimum (≤ 0); intervals use q − q_min.
        critical_values: CL → q_crit.
        intervals: CL → disjoint intervals [(lo, hi), …] where q − q_min < q_crit, sorted.
        spans: CL → (lowest lo, highest hi), the union span of the intervals; an open end is the
            scan edge, not a limit (see :attr:`open` and :meth:`bounds`).
        open: CL → (lower, upper): True where the CL region reaches that end of the scan
            (q − q_min < q_crit at the first / last scanned point), i.e. the limit lies outside.
        scan_range: (first, last) scanned θ.
        minima: every local minimum of the spline as (θ, q − q_min), sorted by θ; the global one has
            0. More than one: the likelihood is degenerate there (seed 001: the two minima in μ that
            interference creates). An end of the scan counts where q rises away from it.
    """

    best_fit: np.ndarray
    q_min: float
    critical_values: dict[float, float]
    intervals: dict[float, list[tuple[float, float]]]
    spans: dict[float, tuple[float, float]]
    open: dict[float, tuple[bool, bool]]
    scan_range: tuple[float, float]
    minima: tuple[tuple[float, float], ...] = ()
    spline: interpolate.CubicSpline | None = field(default=None, repr=False)

    def regions(self, cl: float) -> list[tuple[float | None, float | None]]:
        """The disjoint intervals at ``cl`` with ``None`` for an open end (never the scan edge as a limit).

        Example:
            >>> theta = theta_grid([(-2, 2)], 81)  # two minima, at ±1
            >>> res = limits_1d(Scan(theta, 4 * (theta[:, 0] ** 2 - 1) ** 2, theta[20]), (ONE_SIGMA,))
            >>> [(round(lo, 3), round(hi, 3)) for lo, hi in res.regions(ONE_SIGMA)]
            [(-1.225, -0.707), (0.707, 1.225)]
        """
        regions: list[tuple[float | None, float | None]] = list(self.intervals[cl])
        lo_open, hi_open = self.open[cl]
        if regions and lo_open:
            regions[0] = (None, regions[0][1])
        if regions and hi_open:
            regions[-1] = (regions[-1][0], None)
        return regions

    def delta_q(self, theta: float) -> float | None:
        """q(θ) − q_min on the spline; None outside the scanned range."""
        lo, hi = self.scan_range
        if not lo <= theta <= hi:
            return None
        if self.spline is None:
            return None
        return float(self.spline(theta)) - self.q_min

    def bounds(self, cl: float) -> tuple[float | None, float | None]:
        """The span at ``cl`` with ``None`` for an open end (JSON null): never the scan edge as a limit.

        Example:
            >>> theta = theta_grid([(-1, 1)], 21)  # q = 16 (θ − 0.9)²: 0.9 ± 0.25, cut at 1
            >>> lo, hi = limits_1d(Scan(theta, 16 * (theta[:, 0] - 0.9) ** 2, theta[-2])).bounds(ONE_SIGMA)
            >>> round(lo, 9), hi
            (0.65, None)
        """
        (lo, hi), (lo_open, hi_open) = self.spans[cl], self.open[cl]
        return (None if lo_open else lo, None if hi_open else hi)


def cl_tag(cl: float) -> str:
    """The key suffix of a CL in interval summaries: "68" for one σ (or 0.68), else the rounded percent.

    Example:
        >>> cl_tag(ONE_SIGMA), cl_tag(0.68), cl_tag(0.95)
        ('68', '68', '95')
    """
    return "68" if cl == ONE_SIGMA or round(cl, 2) == 0.68 else f"{round(100 * cl):d}"


def open_ends(result: LimitResult, parameter: str = "theta") -> list[str]:
    """One message per CL and open end of ``result``, for the caller to warn with (empty if all closed).

    limits_1d itself does not warn: a driver that can rescan wider (or report the limit as lying
    outside the range) decides what an open end means.

    Example:
        >>> theta = theta_grid([(-1, 1)], 21)
        >>> open_ends(limits_1d(Scan(theta, 16 * (theta[:, 0] - 0.9) ** 2, theta[-2]), (0.95,)), "c")
        ['c: the 95% CL region reaches the upper end of the scan (1); the limit lies outside, scan wider']
    """
    messages = []
    for cl, ends in result.open.items():
        for side, is_open, edge in zip(("lower", "upper"), ends, result.scan_range):
            if is_open:
                messages.append(
                    f"{parameter}: the {100 * cl:.4g}% CL region reaches the {side} end of the scan "
                    f"({edge:g}); the limit lies outside, scan wider"
                )
    return messages


def limits_1d(scan: Scan, cls: Sequence[float] = DEFAULT_CLS, *, dof: int | None = None) -> LimitResult:
    """Best fit and CL intervals of a 1D scan by root-finding on its cubic spline.

    Args:
        scan: 1D :class:`Scan`, at least 4 points.
        cls: confidence levels, e.g. ``(ONE_SIGMA, 0.95)``.
        dof: χ² degrees of freedom for q_crit; default ``scan.n_params`` (1: a 1D or profiled scan).

    Returns:
        :class:`LimitResult`; disjoint intervals are kept apart. A region that reaches the first
        or last scanned point is marked open there (:attr:`LimitResult.open`); no warning is
        issued (see :func:`open_ends`).

    Example:
        >>> theta = theta_grid([(-1, 1)], 11)
        >>> res = limits_1d(Scan(theta, 4 * (theta[:, 0] - 0.05) ** 2 - 0.01, theta[5]))
        >>> [round(v, 6) for v in res.intervals[ONE_SIGMA][0]], res.open[ONE_SIGMA]
        ([-0.45, 0.55], (False, False))
    """
    spline = spline_1d(scan)
    x_best, q_min = _spline_minimum(spline)
    crit = {cl: critical_value(cl, _check_dof(scan.n_params if dof is None else dof)) for cl in cls}
    intervals = {cl: _regions_below(spline, q_min + c) for cl, c in crit.items()}
    lo, hi = float(spline.x[0]), float(spline.x[-1])
    q_edges = spline(np.array([lo, hi])) - q_min  # the scanned q at the first and last point
    result = LimitResult(
        best_fit=np.array([x_best]),
        q_min=q_min,
        critical_values=crit,
        intervals=intervals,
        spans={cl: (iv[0][0], iv[-1][1]) for cl, iv in intervals.items()},
        open={cl: (bool(q_edges[0] < c), bool(q_edges[1] < c)) for cl, c in crit.items()},
        scan_range=(lo, hi),
        minima=_local_minima(spline, q_min),
        spline=spline,
    )
    return result


def _local_minima(spline: interpolate.CubicSpline, q_min: float) -> tuple[tuple[float, float], ...]:
    """(θ, q − q_min) at every local minimum of the spline: stationary points with q'' > 0, and the
    ends of the knot range where q rises away from them."""
    lo, hi = spline.x[0], spline.x[-1]
    d1, d2 = spline.derivative(), spline.derivative(2)
    roots = d1.roots(extrapolate=False)
    points = [float(r) for r in roots[np.isfinite(roots)] if lo < r < hi and d2(r) > 0]
    if d1(lo) > 0:
        points.append(float(lo))
    if d1(hi) < 0:
        points.append(float(hi))
    return tuple((t, max(float(spline(t)) - q_min, 0.0)) for t in sorted(set(points)))


def profile(scan: Scan, keep: int) -> Scan:
    """Profile a 2D scan: q_prof(θ_keep) = min over the other parameter of the bicubic spline.

    Args:
        scan: 2D :class:`Scan` on a product grid.
        keep: index (0 or 1) of the parameter kept.

    Returns:
        1D :class:`Scan` at the grid values of θ_keep, minimum subtracted.
    """
    if keep not in (0, 1):
        raise ValueError(f"keep: expected 0 or 1 (index of the parameter kept), got {keep}")
    spline = spline_2d(scan)
    axes = grid_axes(scan.theta)
    kept, other = axes[keep], axes[1 - keep]
    fine = np.linspace(other[0], other[-1], 10 * len(other) + 1)
    values = spline(kept, fine) if keep == 0 else spline(fine, kept).T  # (n_kept, n_fine)
    q_prof = np.empty(len(kept))
    for i, (v, j) in enumerate(zip(kept, np.argmin(values, axis=1))):
        pair = (lambda u, v=v: spline.ev(v, u)) if keep == 0 else (lambda u, v=v: spline.ev(u, v))
        lo, hi = fine[max(j - 1, 0)], fine[min(j + 1, len(fine) - 1)]
        res = optimize.minimize_scalar(pair, bounds=(lo, hi), method="bounded", options={"xatol": 1e-12})
        q_prof[i] = min(float(res.fun), float(values[i, j]))
    return Scan.from_log_likelihood(kept[:, None], -0.5 * q_prof)


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class ContourResult:
    """Two-parameter limits from a scan.

    Attributes:
        best_fit: minimum of the bicubic spline of q ``(2,)``.
        q_min: spline minimum relative to the grid minimum (≤ 0).
        critical_values: CL → q_crit (χ² with 2 dof by default: 2.30 / 5.99).
        contours: CL → list of vertex arrays ``(n_vertices, 2)`` of q − q_min = q_crit; a closed
            contour repeats its first vertex at the end; contours cut by the scan edge are open.
        profiles: per parameter, :class:`LimitResult` of the profiled 1D scan (1 dof).
    """

    best_fit: np.ndarray
    q_min: float
    critical_values: dict[float, float]
    contours: dict[float, list[np.ndarray]]
    profiles: tuple[LimitResult, ...]


def _best_fit_2d(
    spline: interpolate.RectBivariateSpline, ax0: np.ndarray, ax1: np.ndarray
) -> tuple[np.ndarray, float]:
    """Minimum of the bicubic spline: fine-grid search, then bounded L-BFGS-B with the spline gradient."""
    f0, f1 = (np.linspace(a[0], a[-1], 4 * len(a) + 1) for a in (ax0, ax1))
    values = spline(f0, f1)
    i, j = np.unravel_index(np.argmin(values), values.shape)
    res = optimize.minimize(
        lambda p: float(spline.ev(p[0], p[1])),
        np.array([f0[i], f1[j]]),
        jac=lambda p: np.array([spline.ev(p[0], p[1], dx=1), spline.ev(p[0], p[1], dy=1)]).ravel(),
        bounds=[(ax0[0], ax0[-1]), (ax1[0], ax1[-1])],
        method="L-BFGS-B",
        options={"ftol": 1e-15, "gtol": 1e-12},
    )
    if res.fun <= values[i, j]:
        return np.asarray(res.x, dtype=float), float(res.fun)
    return np.array([f0[i], f1[j]]), float(values[i, j])


def contours_2d(
    scan: Scan, cls: Sequence[float] = DEFAULT_CLS, *, dof: int | None = None, n_fine: int = 301
) -> ContourResult:
    """CL contours of a 2D scan: marching squares (contourpy) on the bicubic spline.

    Args:
        scan: 2D :class:`Scan` on a product grid (:func:`theta_grid`).
        cls: confidence levels.
        dof: χ² degrees of freedom of the joint contours; default ``scan.n_params`` (2).
        n_fine: points per axis at which the spline is evaluated for marching squares; the
            vertex error is ~ (range / n_fine)² times the curvature of q.

    Returns:
        :class:`ContourResult` with the contours and both profiled 1D limits.
    """
    import contourpy  # matplotlib's contour engine

    spline = spline_2d(scan)
    ax0, ax1 = grid_axes(scan.theta)
    best, q_min = _best_fit_2d(spline, ax0, ax1)
    f0, f1 = np.linspace(ax0[0], ax0[-1], n_fine), np.linspace(ax1[0], ax1[-1], n_fine)
    generator = contourpy.contour_generator(f0, f1, spline(f0, f1).T - q_min, line_type="Separate")
    crit = {cl: critical_value(cl, _check_dof(scan.n_params if dof is None else dof)) for cl in cls}
    return ContourResult(
        best_fit=best,
        q_min=q_min,
        critical_values=crit,
        contours={cl: [np.asarray(v, dtype=float) for v in generator.lines(c)] for cl, c in crit.items()},
        profiles=tuple(limits_1d(profile(scan, keep), cls, dof=1) for keep in (0, 1)),
    )


def asimov_limits(scan: Scan, cls: Sequence[float] = DEFAULT_CLS) -> LimitResult | ContourResult:
    """Expected limits of an Asimov :class:`Scan`: :func:`limits_1d` for one parameter,
    :func:`contours_2d` for two (seed 000 "Asymptotic limits in Madminer").

    Raises:
        ValueError: more than two parameters (profile first).
    """
    if scan.n_params == 1:
        return limits_1d(scan, cls)
    if scan.n_params == 2:
        return contours_2d(scan, cls)
    raise ValueError(f"scan: expected 1 or 2 parameters, got {scan.n_params}")
