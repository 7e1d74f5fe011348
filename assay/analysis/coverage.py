"""``assay coverage CONFIG``: the coverage of profiled 68% intervals in pseudo-experiments (issue 14).

For each chosen profiled method (:mod:`assay.analysis.profiled`: ``truth_profiled``,
``<mixture>_profiled``, ``hist_<name>_profiled``) and each true point (μ_true, α_true) of a grid,
``n_toys`` pseudo-experiments are drawn from the method's own model and fitted by it:

- **toys**: the method's "events" (the Asimov events, or the bins of a histogram) form a pool
  with weights u_i · S_i(μ_true, α_true) (u_i the reference weights that make the pool a sample
  of p_ref, S_i = ν p(x_i|μ, α)/p_ref(x_i) from
  :meth:`~assay.inference.profile_likelihood.ProfileLikelihood.event_rates`); a toy has
  N ~ Pois(ν(μ_true, α_true)) events drawn from it with replacement, and global observables
  a_k ~ N(α_true_k, 1) (the centres of the Gaussian constraints), so that the nuisances' pulls
  (α̂_k − α_true_k)/σ_k are N(0, 1). With the shapes renormalised on the pool, u_i S_i / ν is
  exactly the model's probability of event i, so the toys follow the model the fit uses (for
  ``truth_profiled``: the exact likelihood) however few events the pool has;
- **fit**: the toy's events enter as counts on the pool's per-event terms (Σ_i c_i log S_i − ν,
  the same likelihood as :meth:`~assay.analysis.profiled.ProfiledMethod.likelihood`'s slices of
  the terms with the pool as reference sample, evaluated on the pool's n events instead of N + n);
  the global fit gives α̂ ± σ (Hessian); the 68% interval is the span of {μ : −2Δlog L < 1}
  on a coarse profiled scan over the configured μ range (``points`` points, warm-started fits,
  cubic spline: :func:`~assay.inference.asymptotic.limits_1d`), rescanned twice and four times as
  wide while an end is open; μ̂ is the spline's minimum. A region reaching μ = 0 closes there.
  Where the profiled likelihood has two minima (the off-shell search at μ = 1: destructive
  interference gives the rate N(1) again at μ ≈ 0.5) the span covers both and over-covers;
- **per (method, point)**: the coverage of the 68% interval, its mean width, the FAIR Universe
  challenge score (:func:`~assay.inference.neyman.challenge_score`), the mean and standard
  deviation of the pulls of μ ((μ̂ − μ_true)/σ with σ the interval's half on the side of μ_true)
  and of each α, and the number of failed fits (left out of the rest).

Toys run in this process or on a ``dask.distributed.Client``
(:func:`~assay.inference.pseudo_experiments.fit_pseudo_experiments`); toy i of a point draws from
its own seed (config seed, point, i), so the results do not depend on the client and the first
n toys of a longer run are the toys of a shorter one. Every finished (method, point) is written
atomically to ``limits/coverage/<method>__<point>.json`` with its settings and per-toy results and
skipped on a rerun with the same settings; ``limits/coverage.json`` gathers them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import torch

from assay.analysis.build import asimov_sample, build_methods, load_models
from assay.analysis.coverage_neyman import (
    BELT_TAG,
    Belt,
    belt_path,
    neyman_belt,
    neyman_summary,
    toy_statistics,
)
from assay.analysis.profiled import ProfiledMethod, profiled_methods
from assay.analysis.scans import OneDimensional, one_d_scans
from assay.config import RunConfig
from assay.exceptions import ConfigError, StoreError
from assay.inference.asymptotic import ONE_SIGMA, limits_1d
from assay.inference.neyman import challenge_score
from assay.inference.profile_likelihood import ProfileLikelihood
from assay.inference.pseudo_experiments import (
    binomial_standard_error,
    draw_pseudo_experiments,
    fit_pseudo_experiments,
)
from assay.rundir import RunDir
from assay.saving import read_json, write_json

__all__ = ["CoverageToy", "Point", "coverage_points", "point_summary", "run_coverage", "toy_tasks"]

logger = logging.getLogger(__name__)

FORMAT = "assay-coverage"
VERSION = 1
SEED_TAG = 17  # toys of point p, toy i: np.random.default_rng([seed, 17, crc32(p), i])


@dataclass(frozen=True)
class Point:
    """A true point: μ_true and α_true per nuisance (in the order of the method's terms)."""

    mu: float
    alpha: tuple[float, ...]

    def tag(self, names: Sequence[str]) -> str:
        """``mu=1`` and ``<nuisance>=<value>`` for every α_true ≠ 0, joined by ``__``."""
        parts = [f"mu={self.mu:g}"] + [f"{n}={a:g}" for n, a in zip(names, self.alpha) if a != 0]
        return "__".join(parts)

    def as_dict(self, names: Sequence[str]) -> dict[str, Any]:
        return {"mu": self.mu, "alpha": dict(zip(names, self.alpha))}


# ---- toys ------------------------------------------------------------------------------------
def _likelihood(
    method: ProfiledMethod, weights: np.ndarray | None, a: np.ndarray | None
) -> ProfileLikelihood:
    options = method.options
    return ProfileLikelihood(method.terms, weights, method.coefficients, global_observables=a, **options)


def toy_tasks(
    method: ProfiledMethod, point: Point, n_toys: int, seed: int, names: Sequence[str], tag: int = SEED_TAG
) -> list:
    """The pseudo-experiments of ``method`` at ``point``: ``(events, counts, a)`` per toy, the
    distinct pool events drawn, how often each, and the global observables (module docstring).
    ``tag`` separates the random streams of coverage toys and belt toys."""
    model = _likelihood(method, method.weights, None)
    poi = torch.tensor([point.mu], dtype=torch.float64)
    alpha = torch.tensor(point.alpha, dtype=torch.float64)
    with torch.no_grad():
        rates, total = model.event_rates(poi, alpha)
    weights = np.clip(method.reference * rates.numpy(), 0.0, None)
    nu = float(total)
    constrained = np.array(method.terms.constrained, dtype=bool)
    key = zlib.crc32(point.tag(names).encode())
    tasks = []
    for i in range(n_toys):
        rng = np.random.default_rng([seed, tag, key, i])
        (indices,) = draw_pseudo_experiments(weights, nu, 1, rng)
        a = np.where(constrained, rng.normal(point.alpha, 1.0), point.alpha)
        events, counts = np.unique(indices, return_counts=True)
        tasks.append((events.astype(np.int32), counts.astype(np.int32), a))
    return tasks


@dataclass(frozen=True, eq=False)
class CoverageToy:
    """Fits one pseudo-experiment ``(events, counts, a)`` of :func:`toy_tasks`: a dict of μ̂, the
    68% interval, α̂ and the pulls. Picklable (a task of a Dask worker).

    Attributes:
        method: the profiled method (its terms on the pool).
        point: the true point the toys were drawn at.
        scan: the coarse profiled scan of μ (``theta (n, 1)``); rescanned twice and four times as
            wide (same spacing) while the region is open at an end.
        cl: the interval's confidence level.
        max_extensions: rescans at most.
        statistic: also t(μ_true) and t on the scan grid for the Neyman interval
            (:func:`~assay.analysis.coverage_neyman.toy_statistics`).
    """

    method: ProfiledMethod
    point: Point
    scan: OneDimensional
    cl: float = ONE_SIGMA
    max_extensions: int = 2
    statistic: bool = False

    def __call__(self, task: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict[str, Any]:
        events, counts, a = task
        weights = np.zeros(self.method.terms.n_events)
        np.add.at(weights, events, counts)
        out: dict[str, Any] = {"n_events": int(counts.sum()), "valid": False}
        try:
            likelihood = _likelihood(self.method, weights, a)
            best = likelihood.fit()
            out["fit_valid"] = bool(best.valid)
            out["mu_fit"], out["sigma_mu"] = float(best.values[0]), float(best.errors[0])
            out["alpha_hat"] = best.alpha_hat.tolist()
            out["pulls_alpha"] = likelihood.pulls(best, reference=np.asarray(self.point.alpha)).tolist()
            current = self.scan
            for extension in range(self.max_extensions + 1):
                if extension:
                    current = self.scan.wider(2**extension)
                result = limits_1d(likelihood.scan(current.values, fit=best), (self.cl,))
                lo_open, hi_open = result.open[self.cl]
                lo_open = lo_open and not current.at_lower_bound()  # μ = 0 closes a region there
                if not (lo_open or hi_open):
                    break
            lo, hi = result.bounds(self.cl)
            lo = float(current.values[0]) if lo is None and not lo_open else lo
            out["mu_hat"], out["lo"], out["hi"] = float(result.best_fit[0]), lo, hi
            out["n_regions"] = len(result.regions(self.cl))
            out["valid"] = bool(best.valid) and not (lo_open or hi_open)
            if self.statistic:
                out |= toy_statistics(likelihood, self.point.mu, best, self.scan.values)
        except (ValueError, RuntimeError, FloatingPointError, np.linalg.LinAlgError) as exc:
            out["error"] = f"{type(exc).__name__}: {exc}"
        return out


# ---- summaries -------------------------------------------------------------------------------
def _stats(values: Sequence[float]) -> tuple[float, float]:
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if len(v) == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else float("nan")


def point_summary(toys: Sequence[Mapping[str, Any]], point: Point, names: Sequence[str]) -> dict[str, Any]:
    """Coverage, mean width, challenge score, pulls and failures of one (method, point)'s toys."""
    ok = [t for t in toys if t["valid"]]
    n = len(ok)
    out: dict[str, Any] = {**point.as_dict(names), "n_toys": len(toys), "n_failed": len(toys) - n}
    if not n:
        return out | {"coverage_68": None, "mean_width_68": None, "challenge_score": None}
    covered = [t["lo"] <= point.mu <= t["hi"] for t in ok]
    widths = [t["hi"] - t["lo"] for t in ok]
    c, w = float(np.mean(covered)), float(np.mean(widths))
    pulls_mu = []
    for t in ok:
        error = (t["mu_hat"] - t["lo"]) if t["mu_hat"] >= point.mu else (t["hi"] - t["mu_hat"])
        pulls_mu.append((t["mu_hat"] - point.mu) / error if error > 0 else float("nan"))
    mean_mu, std_mu = _stats(pulls_mu)
    pulls = {}
    for k, name in enumerate(names):
        mean, std = _stats([t["pulls_alpha"][k] for t in ok])
        pulls[name] = {"mean": mean, "std": std}
    return out | {
        "coverage_68": c, "coverage_68_error": binomial_standard_error(c, n), "mean_width_68": w,
        "median_width_68": float(np.median(widths)), "challenge_score": challenge_score(w, c, n),
        "pull_mu_mean": mean_mu, "pull_mu_std": std_mu, "pulls_alpha": pulls,
        "mean_mu_hat": float(np.mean([t["mu_hat"] for t in ok])),
    }  # fmt: skip


# ---- the harness -----------------------------------------------------------------------------
def coverage_points(
    mu: Sequence[float], alpha: Mapping[str, Sequence[float]] | None, names: Sequence[str]
) -> list[Point]:
    """The grid: every μ × every combination of the α_true values given per nuisance (others 0).

    Raises:
        ConfigError: an unknown nuisance name, or no μ.
    """
    alpha = {k: list(v) for k, v in (alpha or {}).items()}
    unknown = [k for k in alpha if k not in names]
    if unknown:
        raise ConfigError(f"--alpha: unknown nuisance(s) {unknown}; the config's nuisances are {list(names)}")
    if not len(mu):
        raise ConfigError("--mu: expected at least one true value of the signal strength")
    axes = [alpha.get(name, [0.0]) or [0.0] for name in names]
    return [Point(float(m), tuple(float(v) for v in a)) for m in mu for a in product(*axes)]


def _config_hash(cfg: RunConfig) -> str:
    data = cfg.model_dump(mode="json", exclude={"output"})
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _methods(cfg: RunConfig, run: RunDir, sample, names: Sequence[str] | None) -> dict[str, ProfiledMethod]:
    """The profiled methods ``names`` (default: every one whose model, if any, is trained)."""
    trained = [n for n in (cfg.inference.models or list(cfg.training)) if run.model(n).is_dir()]
    wanted = set(names or [])
    needed = [n for n in trained if not wanted or f"{n}_profiled" in wanted]
    models = load_models(cfg, run, needed)
    binned = build_methods(cfg, sample, {})  # the histograms (the rest is not used)
    available = profiled_methods(cfg, run, sample, models, binned)
    if not names:
        return available
    untrained = [n for n in cfg.training if f"{n}_profiled" in wanted and n not in trained]
    unknown = [n for n in names if n not in available]
    if unknown:
        hint = f" (model(s) {untrained} not trained: run `assay train CONFIG`)" if untrained else ""
        raise ConfigError(
            f"--method: unknown profiled method(s) {unknown}{hint}; the available ones are {list(available)}"
        )
    return {n: available[n] for n in names}


def run_coverage(
    cfg: RunConfig,
    output: str | os.PathLike | None = None,
    *,
    mu: Sequence[float] | None = None,
    alpha: Mapping[str, Sequence[float]] | None = None,
    methods: Sequence[str] | None = None,
    n_toys: int = 100,
    points: int = 17,
    neyman: int = 0,
    neyman_grid: Sequence[float] | None = None,
    client: Any = None,
    progress: bool = True,
    log=None,
) -> dict[str, Any]:
    """The coverage harness (module docstring); writes ``limits/coverage/`` and ``limits/coverage.json``.

    Args:
        cfg: a run configuration with a ``systematics`` section (one parameter of interest).
        output: the run folder (default ``cfg.output``): ``assay run`` done, and ``assay train``
            for a model's profiled method.
        mu: the true signal strengths (default: θ_true of ``inference.theta_true``).
        alpha: nuisance → its true values (a grid with the μ; default 0 for all).
        methods: profiled method names (default: all available).
        n_toys: pseudo-experiments per (method, point), ≥ 1.
        points: points of each toy's profiled scan over the configured μ range (≥ 5).
        neyman: belt toys per grid point for Neyman critical values (0: Wilks only;
            :mod:`~assay.analysis.coverage_neyman`); each result then has a ``neyman`` entry.
        neyman_grid: the belt's μ values (default: the scan's points, which also gives the Neyman
            widths; a few values around the true μ suffice for the coverage alone).
        client: a ``dask.distributed.Client`` for the toys; None: in this process.
        progress: progress bars.
        log: ``str → None`` for one line per (method, point) (skipped, recomputed, done); default
            the module's logger.

    Returns:
        The contents of ``coverage.json``: ``settings`` and ``results`` (one entry per (method,
        point): :func:`point_summary` plus ``method`` and ``file``).

    Raises:
        ConfigError: no ``systematics`` section, unknown method or nuisance names, n_toys < 1,
            neyman < 0, μ outside the parameter's physical range, a true μ outside the Neyman grid.
        StoreError: the run folder lacks events or a trained model; it cannot be written.
    """
    say = log or logger.info
    if cfg.systematics is None:
        raise ConfigError(
            "coverage: the config has no `systematics` section; the harness checks profiled intervals "
            "(add `systematics: {nuisances: [...]}` and rerun `assay run`)"
        )
    if n_toys < 1:
        raise ConfigError(f"--toys: expected at least 1 pseudo-experiment, got {n_toys}")
    if points < 5:
        raise ConfigError(f"--points: expected at least 5 scan points, got {points}")
    if neyman < 0:
        raise ConfigError(f"--neyman: expected 0 (off) or a number of belt toys per point, got {neyman}")
    if len(cfg.parameters) != 1:
        raise ConfigError("coverage: profiled limits need exactly one parameter of interest for now")
    nuisance_names = [n.name for n in cfg.systematics.nuisances]
    unknown = [k for k in alpha or {} if k not in nuisance_names]
    if unknown:
        raise ConfigError(
            f"--alpha: unknown nuisance(s) {unknown}; the config's nuisances are {nuisance_names}"
        )
    run = RunDir(output or cfg.output)
    sample = asimov_sample(cfg, run)
    chosen = _methods(cfg, run, sample, methods)
    mu_values = [float(sample.theta_true[0])] if not mu else [float(m) for m in mu]
    configured = one_d_scans(cfg, sample.theta_true)[0]
    values = np.linspace(configured.values[0], configured.values[-1], points)
    scan = OneDimensional(configured.parameter, 0, values[:, None], configured.lower)
    settings = {
        "format": FORMAT, "version": VERSION, "n_toys": int(n_toys), "seed": int(cfg.seed),
        "cl": ONE_SIGMA, "scan": [float(values[0]), float(values[-1]), int(points)],
        "config": _config_hash(cfg), "statistic": bool(neyman),
    }  # fmt: skip
    grid = _neyman_grid(neyman_grid, values, mu_values) if neyman else None
    folder = run.limits.root / "coverage"
    results = []
    for name, method in chosen.items():
        names = list(method.terms.names)
        points = coverage_points(mu_values, alpha, names)
        lower = method.coefficients.bounds[0][0]
        bad = [p.mu for p in points if lower is not None and p.mu < lower]
        if bad:
            raise ConfigError(f"--mu: {bad} below the parameter's lower bound {lower}")
        shipped = replace(method, bins=None, fits={}, observed=None)  # no closures or models to ship
        belt = None
        if grid is not None:
            belt = _belt(shipped, name, grid, neyman, settings, folder, client, progress, say)
        for point in points:
            path = folder / f"{name}__{point.tag(names)}.json"
            toys = _finished(path, settings, say)
            if toys is None:
                tasks = toy_tasks(method, point, n_toys, cfg.seed, names)
                fitter = CoverageToy(shipped, point, scan, statistic=bool(neyman))
                toys = _strict(fit_pseudo_experiments(tasks, fitter, client=client, progress=progress))
                _write(path, {"settings": settings, "method": name, **point.as_dict(names), "toys": toys})
            summary = point_summary(toys, point, names)
            if belt is not None:
                summary["neyman"] = neyman_summary(toys, point.mu, belt, values)
            say(_line(name, summary))
            results.append({"method": name, **summary, "file": str(path.relative_to(run.limits.root))})
    out = {
        "settings": {k: v for k, v in settings.items() if k not in ("format", "version")},
        "results": results,
    }
    _write(run.limits.coverage, {"format": FORMAT, "version": VERSION, **out})
    return out


def _line(name: str, s: Mapping[str, Any]) -> str:
    alpha = ", ".join(f"{k}={v:g}" for k, v in s["alpha"].items() if v)
    c = s.get("coverage_68")
    shown = "no valid fit" if c is None else (
        f"coverage {c:.3f} ± {s['coverage_68_error']:.3f}, width {s['mean_width_68']:.3g}, "
        f"score {s['challenge_score']:.3f}"
    )  # fmt: skip
    n = s.get("neyman")
    if n and n.get("coverage_68") is not None:
        c, e = n["coverage_68"], n["coverage_68_error"]
        shown += f"; Neyman (t_c = {n['t_c']:.3g}): coverage {c:.3f} ± {e:.3f}"
    return f"{name} at mu={s['mu']:g}{', ' + alpha if alpha else ''}: {shown} ({s['n_failed']} failed)"


def _neyman_grid(given: Sequence[float] | None, values: np.ndarray, mu_true: Sequence[float]) -> list[float]:
    """The belt's grid: ``given`` (sorted, unique) or the scan's points; every true μ inside it."""
    grid = sorted({float(m) for m in given}) if given else [float(v) for v in values]
    outside = [m for m in mu_true if not grid[0] - 1e-12 <= m <= grid[-1] + 1e-12]
    if outside:
        raise ConfigError(
            f"--neyman-mu: the true μ {outside} lie outside the belt's grid [{grid[0]:g}, {grid[-1]:g}]; "
            "add grid points around them"
        )
    return grid


def _belt(
    method: ProfiledMethod, name: str, grid: Sequence[float], n_toys: int, settings: Mapping[str, Any],
    folder: Path, client: Any, progress: bool, say,
) -> Belt:  # fmt: skip
    """The Neyman belt of ``method`` (:mod:`~assay.analysis.coverage_neyman`), reused if written with the
    same settings, else computed and written."""
    names = list(method.terms.names)
    belt_settings = {**settings, "statistic": True, "grid": list(grid), "n_toys_belt": int(n_toys)}
    path = belt_path(folder, name)
    found = _finished(path, belt_settings, say, key="t_toys")
    if found is not None:
        t = np.array([[np.nan if v is None else v for v in row] for row in found], dtype=float)
        return Belt.from_toys(grid, t)
    zero = (0.0,) * len(names)
    tasks = lambda mu: toy_tasks(method, Point(mu, zero), n_toys, settings["seed"], names, BELT_TAG)  # noqa: E731
    belt = neyman_belt(method, grid, tasks, _likelihood, client=client, progress=progress)
    _write(path, {"settings": belt_settings, "method": name, "grid": list(grid),
                  "critical": belt.critical.tolist(), "t_toys": belt.t_toys.tolist()})  # fmt: skip
    return belt


def _finished(path: Path, settings: Mapping[str, Any], say, key: str = "toys") -> list | None:
    """The ``key`` entry (toys) of a finished (method, point) with the same settings; None: (re)compute."""
    if not path.is_file():
        return None
    try:
        data = read_json(path, missing="coverage point not found")
    except (StoreError, ValueError) as exc:
        say(f"{path.name}: unreadable ({exc}); recomputing")
        return None
    old = data.get("settings", {}) if isinstance(data, dict) else {}
    if old != dict(settings):
        changed = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        say(f"{path.name}: settings changed ({', '.join(changed)}); recomputing")
        return None
    say(f"{path.name}: finished earlier with the same settings; skipped")
    return data[key]


def _write(path: Path, data: Mapping[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, _strict(data), indent=1)
    except OSError as exc:
        raise StoreError(
            f"{exc.filename or path}: cannot write the coverage ({exc.strerror or exc})"
        ) from exc


def _strict(value: Any) -> Any:
    """NaN/inf → None (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value
