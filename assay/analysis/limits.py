"""``assay limits CONFIG``: from a trained run folder and ``config.inference`` to intervals.

:func:`run_limits` reads the run folder that ``assay run`` and ``assay train`` produced, builds
the Asimov sample of ``inference.events`` at ``inference.theta_true`` (or reads observed events,
``data=``), scans every method on the same events (:mod:`assay.analysis.methods`), finds the
intervals (never clipped by a scan range: :mod:`assay.analysis.scans`), the Fisher information
at θ_true, the expectation check R̂(θ) of every estimated ratio, optionally the coverage of the
intervals in pseudo-experiments, and writes ``limits/results.json`` (:class:`assay.results.Results`),
``limits/summary.json`` and the pyhf workspaces of the histogram methods (:class:`~assay.rundir.RunDir`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from assay.analysis.build import asimov_sample, build_methods, load_models
from assay.analysis.data import observed_dataset
from assay.analysis.methods import (
    BinnedMethod,
    Dataset,
    Method,
    RateMethod,
    RatioMethod,
)
from assay.analysis.profiled import ProfiledMethod, nuisance_summary, profiled_methods
from assay.analysis.scans import evaluate_grids, grids, one_d_scans, scan_all
from assay.analysis.search import search_numbers
from assay.bit import BoostedInformationTree
from assay.config import RunConfig, root_parameters
from assay.estimators import Ensemble
from assay.estimators.mixture import MixtureModel
from assay.exceptions import ConfigError, StoreError
from assay.inference.asimov import AsimovSample
from assay.inference.asymptotic import cl_tag
from assay.inference.fisher import (
    histogram_fisher_information,
    rate_fisher_information,
    score_fisher_information,
)
from assay.provenance import Provenance, make_provenance, write_folder_provenance
from assay.results import (
    Calibration,
    CutFlowResult,
    Distribution,
    FisherInformation,
    LevelResults,
    LossCurve,
    NeymanBeltResult,
    Results,
    Scan1D,
    Scan2D,
    strict_json,
)
from assay.rundir import ResultsDir, RunDir
from assay.saving import read_json, write_json

__all__ = ["run_limits", "summary_of", "write_limits"]

logger = logging.getLogger(__name__)


def _scans_2d(
    methods: Mapping[str, Method], data: Dataset, sample: AsimovSample, cfg: RunConfig, progress: bool,
    client: Any,
) -> tuple:
    found = grids(cfg, sample.theta_true)
    q = evaluate_grids(methods, data, sample, found, client=client, progress=progress)
    return tuple(
        Scan2D(parameters=g.parameters, axes=g.axes, fixed=_fixed(cfg, sample.theta_true, g.parameters), q=qs)
        for g, qs in zip(found, q)
    )


def _fixed(cfg: RunConfig, theta_true: np.ndarray, scanned: Sequence[str]) -> dict[str, float]:
    return {p.name: float(v) for p, v in zip(cfg.parameters, theta_true) if p.name not in scanned}


def _fisher(
    cfg: RunConfig, sample: AsimovSample, methods: Mapping[str, Method], models: Mapping[str, Any]
) -> FisherInformation:
    """Fisher information at θ_true of the truth, the models with a score, the histograms and the rate."""
    from assay.simulators.toys import GaussianToy

    theta, lumi = sample.theta_true, sample.luminosity
    sigma = float(sample.cross_section(theta[None])[0])
    grad = sample.cross_section_gradient(theta)
    weights = sample.weights * sample.scale
    n_params = len(theta)
    info: dict[str, np.ndarray] = {}
    if "truth" in methods:
        sim = cfg.simulator
        if sim.kind == "gaussian_toy":
            toy = GaussianToy.default(n_params, sim.n_obs, smearing=sim.smearing)
            t = toy.score(sample.x, theta)
        else:
            t = sample.truth_score()
        info["truth"] = score_fisher_information(t, weights, lumi, grad, cross_section=sigma)
    for name, model in models.items():
        if "score" not in model.predicts:
            continue
        try:
            t_hat = np.asarray(model.score(sample.x, theta).mean, dtype=float)
        except ValueError as exc:  # a score model at another reference point
            logger.info("no Fisher information for %s: %s", name, exc)
            continue
        info[name] = score_fisher_information(t_hat, weights, lumi, grad, cross_section=sigma)
    for name, method in methods.items():
        if isinstance(method, BinnedMethod) and (method.binning is not None or n_params <= 2):
            axes = tuple(range(n_params))
            info[name if method.binning is not None else f"hist_{name}"] = histogram_fisher_information(
                method.templates(sample, axes), theta, lumi
            )
    if any(isinstance(m, RateMethod) for m in methods.values()):
        info["rate"] = rate_fisher_information(sigma, grad, lumi)
    return FisherInformation(theta=theta, information=info)


def _calibration(
    sample: AsimovSample, methods: Mapping[str, Method], models: Mapping[str, Any], check: np.ndarray
) -> dict[str, Calibration]:
    """R̂(θ) = E_θtrue[r̂(x|θ, θ_true)] before normalisation (1 for a perfect estimator); the std
    over ensemble members where there are members."""
    data, out = Dataset.from_sample(sample), {}
    for name, method in methods.items():
        if not isinstance(method, RatioMethod):
            continue
        r_hat = sample.expectation_check(method.log_ratio(data, check))
        std = None
        model = models.get(name)
        if isinstance(model, Ensemble):
            per_member = [
                sample.expectation_check(m.log_ratio(sample.x, check, sample.theta_true).mean)
                for m in model.members_
            ]
            std = np.std(per_member, axis=0)
        out[name] = Calibration(theta=check, r_hat_mean=r_hat, r_hat_std=std)
    return out


def _check_points(scans_2d_theta: np.ndarray | None, scans_1d: list) -> np.ndarray:
    """About 25 θ points for the expectation check: from the first grid, else the 1D scans."""
    points = scans_2d_theta if scans_2d_theta is not None else np.concatenate([s.theta for s in scans_1d])
    return points[:: max(1, len(points) // 25)]


DISTRIBUTION_BINS = 30
SHOWN_FACTOR = 2.0  # distributions are shown at twice each 1D scan's upper end: visible, still near


def _distributions(cfg: RunConfig, sample: AsimovSample, scans) -> dict:
    """Normalised distributions of each 1D histogram's observable, in 30 equal bins over its
    finite edges (an open last bin extended to twice the last finite edge), at θ_true and at
    twice the upper end of each 1D scan, by morphing the weights."""
    latex = {p.name: p.latex or p.name for p in cfg.parameters}
    reference = cfg.inference.theta_true if isinstance(cfg.inference.theta_true, str) else "θ_true"
    shown = {reference: sample.theta_true}
    for s in scans:
        theta = s.theta[-1].copy()
        theta[s.axis] = sample.theta_true[s.axis] + SHOWN_FACTOR * (s.values[-1] - sample.theta_true[s.axis])
        shown[f"{latex[s.parameter]} = {theta[s.axis]:.3g}"] = theta
    thetas = np.array(list(shown.values()))
    weights = sample.joint.weights_on_grid(sample.benchmark_weights, thetas)
    out = {}
    for h in cfg.inference.histograms:
        edges = np.asarray(h.edges[0], dtype=float)
        finite = edges[np.isfinite(edges)]
        if len(h.observables) != 1 or len(finite) < 2:
            continue
        high = 2 * finite[-1] if np.isinf(edges[-1]) and finite[-1] > 0 else finite[-1]
        bins = np.linspace(finite[0], high, DISTRIBUTION_BINS + 1)
        values = sample.column(h.observables[0])
        hists = {}
        for j, label in enumerate(shown):
            counts, _ = np.histogram(values, bins=bins, weights=weights[:, j])
            total = counts.sum()
            hists[label] = counts / (total * np.diff(bins)) if total > 0 else counts
        out[h.observables[0]] = Distribution(
            label=h.axis_label or h.observables[0], edges=bins, benchmarks=hists
        )
    return out


MAX_ABS_LOG_R = 20.0  # r̂ beyond e^±20 at the ends of a scan: a few events dominate the likelihood


def _extreme_ratios(methods: Mapping[str, Method], sample: AsimovSample, scans) -> list[str]:
    """A warning for each estimated ratio whose |log r̂(x|θ, θ_true)| on the Asimov events exceeds
    :data:`MAX_ABS_LOG_R` at the ends of a 1D scan: such events (steep edges of a flow, an
    over-trained network) dominate −2Δlog L and make the interval meaningless, usually too narrow."""
    data, out = Dataset.from_sample(sample), []
    ends = np.concatenate([s.theta[[0, -1]] for s in scans])

    def largest(method: RatioMethod) -> np.ndarray:
        values = np.abs(np.asarray(method.log_ratio(data, ends), dtype=float))
        return np.where(np.isfinite(values), values, 0.0)

    bound = MAX_ABS_LOG_R
    truth = methods.get("truth")
    if isinstance(truth, RatioMethod):  # where the exact ratio is large too, allow 3 × as much
        bound = max(bound, 3.0 * float(largest(truth).max(initial=0.0)))
    for name, method in methods.items():
        if not (isinstance(method, RatioMethod) and method.normalise):
            continue
        values = largest(method)
        worst = float(values.max(initial=0.0))
        if worst > bound:
            n_bad = int((values > bound).any(axis=0).sum())
            message = (
                f"{name}: |log r̂| reaches {worst:.3g} on {n_bad} of {values.shape[1]} Asimov events at the "
                f"ends of the scans (bound {bound:.3g}); those events dominate the likelihood and its "
                f"interval is not to be trusted"
            )
            logger.warning(message)
            out.append(message)
    return out


def _histories(models: Mapping[str, Any]) -> dict[str, tuple[LossCurve, ...]]:
    out = {}
    for name, model in models.items():
        if isinstance(model, BoostedInformationTree):  # a loss per tree, not per epoch
            continue
        if isinstance(model, MixtureModel):  # every member of every process's classifier
            members = [c for classifiers in model.classifiers_.values() for c in classifiers]
        else:
            members = model.members_ if isinstance(model, Ensemble) else [model]
        out[name] = tuple(LossCurve.from_dict(m.history_.to_dict()) for m in members)
    return out


def _cut_flow(run: RunDir) -> CutFlowResult | None:
    if not run.cut_flow.is_file():
        return None
    flow = read_json(run.cut_flow, missing="cut flow not found")
    return CutFlowResult(names=tuple(flow["names"]), efficiency=np.asarray(flow["efficiency"], dtype=float))


def _export_pyhf(
    run: RunDir, sample: AsimovSample, methods: Mapping[str, Method], data: Dataset, scans, q: Mapping
) -> dict:
    """Each histogram method as a pyhf workspace in ``limits/pyhf/``; one rescanned by pyhf as a check
    against assay's scan ``q[parameter][method]`` of the same data (from :func:`scan_all`)."""
    from assay.inference.pyhf_export import pyhf_scan, pyhf_workspace, to_pyhf_spec

    histograms = {n: m for n, m in methods.items() if isinstance(m, BinnedMethod) and m.binning is not None}
    if not histograms:
        return {}
    run.limits.pyhf.mkdir(parents=True, exist_ok=True)
    specs = {}
    for name, method in histograms.items():
        templates = method.templates(sample, ())
        if data.asimov:
            counts = templates.expected(sample.theta_true, sample.luminosity)
        else:
            counts = method.counts(data, sample, ())
        specs[name] = spec = to_pyhf_spec(templates, sample.luminosity, counts, channel=name)
        pyhf_workspace(spec)  # validates against pyhf's schema
        write_json(run.limits.pyhf_workspace(name), spec, indent=1)
    name, method = next(iter(histograms.items()))
    s = scans[0]
    q_pyhf = pyhf_scan(specs[name], sample.joint.morpher, s.theta).minus_2_delta_log_l
    return {
        "pyhf_vs_assay_max_abs_dq": float(np.max(np.abs(q_pyhf - q[s.parameter][name]))),
        "pyhf_scan": f"{name}, {s.parameter}",
    }


def run_limits(
    cfg: RunConfig,
    output: str | os.PathLike | None = None,
    *,
    models: Sequence[str] | None = None,
    data: str | os.PathLike | None = None,
    toys: int = 0,
    theta_toys: Mapping[str, float] | None = None,
    client: Any = None,
    level: str | None = None,
    label: str | None = None,
    neyman: int = 0,
    neyman_methods: Sequence[str] | None = None,
    progress: bool = True,
) -> Results:
    """Limits of every configured method; writes ``limits/`` in the run folder.

    Args:
        cfg: the run configuration (``inference`` section; ``training`` names the models).
        output: the run folder (default ``cfg.output``).
        models: the trained models to compare (default ``inference.models``, else all).
        data: an EventStore (``.h5``) or LHE file of observed events; default: Asimov data.
        toys: pseudo-experiments for the coverage of the intervals (0: none).
        theta_toys: the point they are drawn at, ``{parameter: value}`` (missing: θ_true).
        client: a ``dask.distributed.Client`` for the 2D grids (one task per grid and method) and
            the pseudo-experiments.
        level: the name of this level in results.json (default: the run folder's name).
        label: a one-line description of the level.
        neyman: toys per scan point for the Neyman construction of every 1D scan (0: none).
        neyman_methods: the methods it is made for (default: all).
        progress: progress bars.

    Returns:
        The :class:`~assay.results.Results` written to ``limits/results.json``.

    Raises:
        ConfigError: an unknown model, observable or ``theta_toys`` parameter; a model whose
            predictions do not fit a method.
        PredictionError: a model trained on other observables or parameters than the run's events
            (:func:`~assay.analysis.methods.check_model_inputs`).
        StoreError: the run folder lacks events, basis, split or a trained model; a bad data file.
    """
    names = [p.name for p in cfg.parameters]
    unknown = [name for name in theta_toys or {} if name not in names]
    if unknown:
        raise ConfigError(f"--theta: unknown parameter(s) {unknown}; the config's parameters are {names}")
    run = RunDir(output or cfg.output)
    start = time.perf_counter()
    timings: dict[str, float] = {}
    sample = asimov_sample(cfg, run)
    loaded = load_models(cfg, run, models)  # each checked against the events' observables and parameters
    methods = build_methods(cfg, sample, loaded)
    methods |= profiled_methods(cfg, run, sample, loaded, methods)
    dataset = Dataset.from_sample(sample) if data is None else observed_dataset(data, cfg, run, sample)
    notes = []
    if dataset.benchmark_weights is None:  # e.g. LHE data: no truth from the event weights
        for name in [n for n, m in methods.items() if isinstance(m, RatioMethod) and m.needs_weights]:
            notes.append(f"{name}: left out, {dataset.label} has no benchmark weights to compute it from")
            logger.warning(notes[-1])
            del methods[name]
    if not dataset.asimov:  # profiled methods whose g_jk come from the simulator's per-event components
        exact_g = [n for n, m in methods.items() if isinstance(m, ProfiledMethod) and not m.accepts_observed]
        for name in exact_g:
            notes.append(f"{name}: left out, its per-event terms need the simulator's per-event components, "
                         f"which {dataset.label} lacks")  # fmt: skip
            logger.warning(notes[-1])
            del methods[name]
    timings["setup"] = time.perf_counter() - start

    t0 = time.perf_counter()
    scans = one_d_scans(cfg, sample.theta_true)
    cls = tuple(cfg.inference.confidence_levels)
    found = scan_all(methods, dataset, sample, scans, cls, cfg.inference.max_extensions, progress=progress)
    q, warnings = found.q, found.warnings
    warnings += _extreme_ratios(methods, sample, scans)
    scans_1d = {
        s.parameter: Scan1D(
            parameter=s.parameter,
            theta=s.values,
            fixed=_fixed(cfg, sample.theta_true, [s.parameter]),
            q=q[s.parameter],
        )
        for s in scans
    }  # fmt: skip
    scans_2d = _scans_2d(methods, dataset, sample, cfg, progress, client)
    timings["scans"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    fisher = _fisher(cfg, sample, methods, loaded)
    grid_theta = grids(cfg, sample.theta_true)[0].theta if cfg.inference.grids else None
    calibration = _calibration(sample, methods, loaded, _check_points(grid_theta, scans))
    with _writing(run.limits.root):
        checks = _export_pyhf(run, sample, methods, dataset, scans, q)
    timings["fisher_calibration_pyhf"] = time.perf_counter() - t0

    coverage = None
    if toys:
        from assay.analysis.toys import toy_coverage

        t0 = time.perf_counter()
        theta = cfg.theta(dict(theta_toys or {}), "--theta") if theta_toys else sample.theta_true
        coverage = toy_coverage(methods, sample, scans, cls, theta, toys, seed=cfg.seed, client=client,
                                progress=progress)  # fmt: skip
        timings["toys"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    systematics = {
        name: nuisance_summary(method, sample, scans[0].values)
        for name, method in methods.items() if isinstance(method, ProfiledMethod) and scans
    }  # fmt: skip
    if systematics:
        timings["pulls_impacts"] = time.perf_counter() - t0

    belts = {}
    if neyman:
        t0 = time.perf_counter()
        belts = _neyman(
            methods, neyman_methods, dataset, sample, scans, cls, neyman, cfg.seed, client, progress
        )
        timings["neyman"] = time.perf_counter() - t0

    with_truth = "truth" in methods
    level_results = LevelResults(
        label=label or _default_label(cfg, with_truth),
        n_events={"generated": _n_generated(cfg, run), "test_events": len(sample.x),
                  **({} if dataset.asimov else {"observed": len(dataset.x)})},
        data=dataset.label, scans_1d=scans_1d, scans_2d=scans_2d, intervals=found.intervals,
        best_fit=found.best_fit, regions=found.regions, minima=found.minima,
        significance=_significance(cfg, found.delta_q_zero),
        search={**search_numbers(cfg, sample, _benchmark_names(run)), **_training_n_eff(loaded)},
        fisher=fisher, histories=_histories(loaded), calibration=calibration,
        distributions=_distributions(cfg, sample, scans), cut_flow=_cut_flow(run), checks=checks,
        warnings=(*notes, *warnings), coverage=coverage, neyman=belts, systematics=systematics,
    )  # fmt: skip
    timings["total"] = time.perf_counter() - start
    results = Results(
        title=f"assay limits: {run.root.name}",
        parameters=tuple(p.name for p in cfg.parameters),
        parameter_labels=tuple(p.latex or p.name for p in cfg.parameters),
        parameter_units=tuple(p.unit for p in cfg.parameters),
        luminosity_ifb=float(cfg.inference.luminosity_ifb),
        levels={level or run.root.name: level_results},
        timings_s=timings,
    )
    inputs = [run.events, *(run.model(name) for name in loaded), *([data] if data is not None else [])]
    write_limits(run.limits, results, provenance=make_provenance(config=cfg, inputs=inputs))
    return results


def _neyman(
    methods: Mapping[str, Method], names: Sequence[str] | None, data: Dataset, sample: AsimovSample,
    scans, cls: Sequence[float], n_toys: int, seed: int, client: Any, progress: bool,
) -> dict[str, dict[str, NeymanBeltResult]]:  # fmt: skip
    """Every chosen method's Neyman construction on every 1D scan (:mod:`assay.analysis.neyman_belt`)."""
    from assay.analysis.neyman_belt import neyman_belt

    chosen = list(names) if names else list(methods)
    unknown = [n for n in chosen if n not in methods]
    if unknown:
        raise ConfigError(f"--neyman-method: unknown method(s) {unknown}; the methods are {list(methods)}")
    out: dict[str, dict[str, NeymanBeltResult]] = {}
    for name in chosen:
        for s in scans:
            belt = neyman_belt(methods[name], data, sample, s, n_toys, cls, seed=seed, client=client,
                               progress=progress)  # fmt: skip
            out.setdefault(name, {})[s.parameter] = NeymanBeltResult(
                theta=belt.theta, n_toys=n_toys,
                critical={cl_tag(cl): c for cl, c in belt.critical.items()},
                regions={cl_tag(cl): tuple(r) for cl, r in belt.regions.items()},
                wilks_regions={cl_tag(cl): tuple(r) for cl, r in belt.wilks_regions.items()},
            )  # fmt: skip
    return out


def _training_n_eff(models: Mapping[str, Any]) -> dict[str, float]:
    """N_eff = (Σw)²/Σw² of the weighted training events of every mixture model, per process."""
    return {
        f"n_eff_train_{name}_{process}": float(n)
        for name, model in models.items() if isinstance(model, MixtureModel)
        for process, n in zip(model.processes_, model.n_eff_)
    }  # fmt: skip


def _benchmark_names(run: RunDir) -> list[str]:
    from assay.store import EventStore

    with EventStore(run.events) as store:
        return list(store.benchmarks)


def _significance(cfg: RunConfig, delta_q_zero: Mapping[str, Mapping[str, float]]) -> dict:
    """method → signal strength → Z0 = √(q(0) − q_min), for the parameters that enter through √θ
    (signal strengths; θ = 0 is the background-only hypothesis)."""
    roots = root_parameters(cfg)
    return {
        m: {p: float(np.sqrt(max(dq, 0.0))) for p, dq in entry.items() if p in roots}
        for m, entry in delta_q_zero.items()
        if any(p in roots for p in entry)
    }


def _n_generated(cfg: RunConfig, run: RunDir) -> int:
    """Events the simulator generated (configured), or in the imported store (``kind: events``)."""
    n = getattr(cfg.simulator, "n_events", None)
    if n is not None:
        return int(n)
    from assay.store import EventStore

    with EventStore(run.events) as store:
        return store.n_events


def _default_label(cfg: RunConfig, with_truth: bool) -> str:
    sim = cfg.simulator
    kind = {"gaussian_toy": "Gaussian toy", "events": f"events of {Path(getattr(sim, 'path', '')).name}"}.get(
        sim.kind, f"{sim.kind} simulator"
    )
    return f"{kind}{' (exact likelihood known)' if with_truth else ''}"


def summary_of(results: Results) -> dict:
    """summary.json: level → method → ``{"<p>_<tag>": [lo, hi]}`` (null: open; a list of such
    intervals where the region is not connected), the best fits, the local minima where a scan
    has several, the significances, the warnings and the timings."""
    summary: dict[str, Any] = {}
    for name, level in results.levels.items():
        summary[name] = {
            m: {k: _region_or_span(v, level.regions.get(m, {}).get(k)) for k, v in iv.items()}
            for m, iv in level.intervals.items()
        }
    summary["best_fit"] = {name: level.best_fit for name, level in results.levels.items()}
    minima = {
        name: {m: {p: [list(t) for t in mins] for p, mins in entry.items() if len(mins) > 1}
               for m, entry in level.minima.items() if any(len(v) > 1 for v in entry.values())}
        for name, level in results.levels.items()
    }  # fmt: skip
    if any(minima.values()):
        summary["local_minima"] = {name: entry for name, entry in minima.items() if entry}
    significance = {name: level.significance for name, level in results.levels.items() if level.significance}
    if significance:
        summary["significance"] = significance
    summary["warnings"] = [w for level in results.levels.values() for w in level.warnings]
    summary["timings_s"] = dict(results.timings_s)
    return summary


def _region_or_span(span: tuple, regions: Sequence[tuple] | None) -> list:
    """[lo, hi], or [[lo, hi], …] where the CL region has several disjoint intervals."""
    if regions is not None and len(regions) > 1:
        return [list(r) for r in regions]
    return list(span)


@contextmanager
def _writing(folder: Path) -> Iterator[None]:
    """An OSError while writing (full disk, read-only folder) → one StoreError naming the folder;
    every file is written atomically, so what was there before stays intact."""
    try:
        yield
    except OSError as exc:
        where = exc.filename or folder
        raise StoreError(
            f"{where}: cannot write the limits ({exc.strerror or exc}); free some space or make "
            f"{folder} writable and rerun: earlier files there are unchanged"
        ) from exc


def write_limits(
    folder: ResultsDir, results: Results, *, provenance: Provenance | None = None
) -> tuple[Path, Path]:
    """``results.json`` and ``summary.json`` in ``folder`` (a run's ``limits/``), each atomically, and
    ``provenance.json`` where ``provenance`` is given (:mod:`assay.provenance`).

    Raises:
        StoreError: the folder cannot be written (full disk, read-only); nothing is half-written.
    """
    with _writing(folder.root):
        folder.root.mkdir(parents=True, exist_ok=True)
        results.to_json(folder.results)
        write_json(folder.summary, strict_json(summary_of(results)), indent=1)
        if provenance is not None:
            write_folder_provenance(folder.root, provenance)
    return folder.results, folder.summary
