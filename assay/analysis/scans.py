"""Scans and intervals of every method on one data set, with intervals never clipped by the scan.

A 1D scan varies one parameter with the others at θ_true; a grid varies two. An interval whose
CL region reaches an end of its scan is found by rescanning that method over a range twice as
wide around the configured one (``inference.max_extensions`` times at most); an end still open
after that is reported as ``None`` with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from assay.analysis.methods import Dataset, Method
from assay.config import RunConfig, ScanConfig, root_parameters
from assay.inference.asimov import AsimovSample
from assay.inference.asymptotic import LimitResult, cl_tag, limits_1d, open_ends, theta_grid
from assay.inference.likelihood import Scan

__all__ = [
    "OneDimensional",
    "ScanResults",
    "TwoDimensional",
    "evaluate_grids",
    "fit_intervals",
    "grids",
    "one_d_scans",
    "one_parameter",
    "scan_all",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class OneDimensional:
    """A 1D scan's points: ``theta (n, n_params)``, parameter index ``axis`` and name."""

    parameter: str
    axis: int
    theta: np.ndarray
    lower: float | None = None

    @property
    def values(self) -> np.ndarray:
        return self.theta[:, self.axis]

    def wider(self, factor: int) -> OneDimensional:
        """A range ``factor`` × as wide with the same spacing (so the spline resolves the same
        structure), same centre, never below ``lower`` (a signal strength through √μ stays ≥ 0)."""
        lo, hi = self.values[0], self.values[-1]
        centre, half = 0.5 * (lo + hi), 0.5 * (hi - lo) * factor
        start, stop = centre - half, centre + half
        if self.lower is not None and start < self.lower:
            start, stop = self.lower, self.lower + 2 * half
        n = (len(self.theta) - 1) * int(factor) + 1
        theta = np.repeat(self.theta[:1], n, axis=0)
        theta[:, self.axis] = np.linspace(start, stop, n)
        return OneDimensional(self.parameter, self.axis, theta, self.lower)

    def at_lower_bound(self) -> bool:
        """The scan starts at the parameter's physical lower bound (μ = 0): not an open end there."""
        return self.lower is not None and bool(np.isclose(self.values[0], self.lower))


@dataclass(frozen=True, eq=False)
class TwoDimensional:
    """A grid: parameter names and indices, ``axes`` values, ``theta (n0 · n1, n_params)``."""

    parameters: tuple[str, str]
    indices: tuple[int, int]
    axes: tuple[np.ndarray, np.ndarray]
    theta: np.ndarray


def one_d_scans(cfg: RunConfig, theta_true: np.ndarray) -> list[OneDimensional]:
    """``inference.scans``, or one per parameter over its declared range (121 points)."""
    names, roots = [p.name for p in cfg.parameters], root_parameters(cfg)
    scans = cfg.inference.scans or [ScanConfig(parameter=p.name, range=p.range) for p in cfg.parameters]
    out = []
    for s in scans:
        a = names.index(s.parameter)
        theta = np.repeat(theta_true[None], s.n_points, axis=0)
        theta[:, a] = np.linspace(*s.range, s.n_points)
        out.append(OneDimensional(s.parameter, a, theta, 0.0 if s.parameter in roots else None))
    return out


def _grid_q(method: Method, data: Dataset, sample: AsimovSample, grid: TwoDimensional) -> np.ndarray:
    """−2Δlog L of ``method`` on ``grid``, ``(n0, n1)``."""
    q = method.scan(data, sample, grid.theta, grid.indices).minus_2_delta_log_l
    return q.reshape(len(grid.axes[0]), len(grid.axes[1]))


def evaluate_grids(
    methods: Mapping[str, Method],
    data: Dataset,
    sample: AsimovSample,
    found: Sequence[TwoDimensional],
    *,
    client=None,
    progress: bool = False,
) -> list[dict[str, np.ndarray]]:
    """Every method on every grid: per grid, method → q ``(n0, n1)``.

    ``client``: a ``dask.distributed.Client``; one task per (grid, method), the data, the sample
    and each method sent once to every worker. Each task is the serial computation of that
    method's whole grid, so the numbers are the same as in this process. ``progress``: a bar
    over the (grid, method) pairs.
    """
    from tqdm.auto import tqdm

    jobs = [(k, name) for k in range(len(found)) for name in methods]
    bar = tqdm(total=len(jobs), desc="2D scans", unit="grid", disable=not progress, leave=False)
    out: list[dict[str, np.ndarray]] = [{} for _ in found]
    if client is None or not jobs:
        for k, name in jobs:
            bar.set_postfix_str(f"{name}: {', '.join(found[k].parameters)}", refresh=False)
            out[k][name] = _grid_q(methods[name], data, sample, found[k])
            bar.update()
        bar.close()
        return out
    from dask.distributed import as_completed

    remote_data, remote_sample = client.scatter([data, sample], broadcast=True, hash=False)
    remote_methods = dict(zip(methods, client.scatter(list(methods.values()), broadcast=True, hash=False)))
    futures = [client.submit(_grid_q, remote_methods[name], remote_data, remote_sample, found[k], pure=False)
               for k, name in jobs]  # fmt: skip
    try:
        for _ in as_completed(futures):
            bar.update()
        for (k, name), q in zip(jobs, client.gather(futures)):
            out[k][name] = q
    finally:
        bar.close()
        client.cancel([*futures, remote_data, remote_sample, *remote_methods.values()])
    return out


def grids(cfg: RunConfig, theta_true: np.ndarray) -> list[TwoDimensional]:
    """``inference.grids``: product grids of two parameters, the others at θ_true."""
    names = [p.name for p in cfg.parameters]
    out = []
    for g in cfg.inference.grids:
        a, b = (names.index(p) for p in g.parameters)
        points = theta_grid(list(g.ranges), g.n_points)
        theta = np.repeat(theta_true[None], len(points), axis=0)
        theta[:, [a, b]] = points
        axes = (np.linspace(*g.ranges[0], g.n_points), np.linspace(*g.ranges[1], g.n_points))
        out.append(TwoDimensional(tuple(g.parameters), (a, b), axes, theta))
    return out


def one_parameter(scan: Scan, axis: int) -> Scan:
    """A scan along parameter ``axis`` (the others fixed) as a one-parameter :class:`Scan`."""
    return Scan(scan.theta[:, [axis]], scan.minus_2_delta_log_l, scan.mle[[axis]])


Bounds = tuple[float | None, float | None]


@dataclass(frozen=True)
class Intervals:
    """One method's intervals on one parameter.

    Attributes:
        bounds: ``{"<p>_<tag>": (lo, hi)}``, the span of the CL region (None: open end).
        best_fit: the global minimum.
        warnings: open ends, one sentence each.
        regions: ``{"<p>_<tag>": [(lo, hi), …]}``, the disjoint intervals of the CL region.
        minima: every local minimum (θ, q − q_min), sorted by θ (seed 001's second minimum in μ).
        delta_q_zero: q(θ_p = 0) − q_min, where the scan reaches 0 (θ_p = 0 is background only for
            a signal strength: Z0 = √Δq on Asimov data); None elsewhere.
    """

    bounds: dict[str, Bounds]
    best_fit: float
    warnings: tuple[str, ...]
    regions: dict[str, list[Bounds]]
    minima: tuple[tuple[float, float], ...] = ()
    delta_q_zero: float | None = None


def fit_intervals(
    method: Method,
    data: Dataset,
    sample: AsimovSample,
    scan: OneDimensional,
    first: Scan,
    cls: Sequence[float],
    max_extensions: int,
) -> Intervals:
    """Intervals of ``first`` (the method's scan over ``scan``), rescanning wider while an end is open."""
    current, points, factor = one_parameter(first, scan.axis), scan, 1
    result = _bounded(limits_1d(current, cls), scan)
    for _ in range(max_extensions):
        if not any(lo or hi for lo, hi in result.open.values()):
            break
        factor *= 2
        points = scan.wider(factor)
        try:
            wider = method.scan(data, sample, points.theta, (scan.axis,))
        except ValueError as exc:  # e.g. σ(θ) ≤ 0 beyond the morphing's validity
            logger.info("%s: cannot extend the %s scan further (%s)", method.name, scan.parameter, exc)
            break
        current = one_parameter(wider, scan.axis)
        result = _bounded(limits_1d(current, cls), points)
    bounds = {f"{scan.parameter}_{cl_tag(cl)}": result.bounds(cl) for cl in cls}
    regions = {f"{scan.parameter}_{cl_tag(cl)}": result.regions(cl) for cl in cls}
    warnings = tuple(f"{method.name}: {m}" for m in open_ends(result, scan.parameter))
    for w in warnings:
        logger.warning(w)
    return Intervals(
        bounds, float(result.best_fit[0]), warnings, regions, result.minima, result.delta_q(0.0)
    )


@dataclass
class ScanResults:
    """What :func:`scan_all` finds; every mapping is keyed by method first.

    Attributes:
        q: parameter → method → −2Δlog L on the configured points.
        intervals: method → ``{"<p>_<tag>": (lo, hi)}``.
        regions: method → ``{"<p>_<tag>": [(lo, hi), …]}`` (disjoint intervals).
        best_fit: method → parameter → value.
        minima: method → parameter → local minima (θ, q − q_min).
        delta_q_zero: method → parameter → q(0) − q_min where the scan reaches 0.
        warnings: one sentence each.
    """

    q: dict[str, dict[str, np.ndarray]]
    intervals: dict[str, dict[str, Bounds]]
    regions: dict[str, dict[str, list[Bounds]]]
    best_fit: dict[str, dict[str, float]]
    minima: dict[str, dict[str, tuple[tuple[float, float], ...]]]
    delta_q_zero: dict[str, dict[str, float]]
    warnings: list[str]


def _bounded(result: LimitResult, scan: OneDimensional) -> LimitResult:
    """A region reaching the physical lower bound of the parameter (μ = 0) ends there: closed."""
    if not scan.at_lower_bound():
        return result
    return replace(result, open={cl: (False, hi) for cl, (_, hi) in result.open.items()})


def scan_all(
    methods: Mapping[str, Method],
    data: Dataset,
    sample: AsimovSample,
    scans: Sequence[OneDimensional],
    cls: Sequence[float],
    max_extensions: int,
    *,
    progress: bool = False,
) -> ScanResults:
    """Every method on every 1D scan, intervals never clipped by the scan (:func:`fit_intervals`);
    ``progress``: a bar over the (method, parameter) scans."""
    from tqdm.auto import tqdm

    out = ScanResults({s.parameter: {} for s in scans}, *({m: {} for m in methods} for _ in range(5)), [])
    n = len(methods) * len(scans)
    bar = tqdm(total=n, desc="1D scans", unit="scan", disable=not progress, leave=False)
    for name, method in methods.items():
        for s in scans:
            bar.set_postfix_str(f"{name}: {s.parameter}", refresh=False)
            first = method.scan(data, sample, s.theta, (s.axis,))
            out.q[s.parameter][name] = first.minus_2_delta_log_l
            found = fit_intervals(method, data, sample, s, first, cls, max_extensions)
            out.intervals[name] |= found.bounds
            out.regions[name] |= found.regions
            out.best_fit[name][s.parameter] = found.best_fit
            out.minima[name][s.parameter] = found.minima
            if found.delta_q_zero is not None:
                out.delta_q_zero[name][s.parameter] = found.delta_q_zero
            out.warnings += found.warnings
            bar.update()
    bar.close()
    return out
