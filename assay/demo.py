"""``assay demo``: expected limits on (c_HW, c_HW̃) in p p → W h → ℓ ν b b̄, from nothing to a report.

Two analyses of seed 000's WH channel (signal only), each through the product's own path
(:func:`~assay.pipeline.run_pipeline` → :func:`~assay.training.train` → expected limits):

- **parton level**: every momentum observed, so the event weights give the exact likelihood
  ratio ("truth", seed 000's validation); SALLY, ALICES and BIT are compared with it;
- **detector level**: smearing, b-tagging, seed 000's selection, neutrino p_z from the W mass;
  SALLY, ALICES and BIT are compared with seed 000's histogram analyses.

SALLY's limits come from the histogram of its estimated score (25 quantile bins in 1D, 8 × 8
in 2D; seed 000), ALICES' and BIT's from the extended likelihood with their log r̂. All
methods use the same Asimov data: the test events, which no estimator saw, weighted at the SM,
with L = :data:`LUMINOSITY_IFB`. Writes ``summary.json`` (intervals per level and method, timings),
``results.json`` (scans, Fisher information, loss curves; docs/results.md) and the report.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from assay.config import RunConfig, config_from_dict
from assay.inference.asimov import AsimovSample, interval_summary, normalised
from assay.inference.asymptotic import SEED_RANGES, theta_grid
from assay.inference.fisher import (
    histogram_fisher_information,
    rate_fisher_information,
    score_fisher_information,
)
from assay.inference.histograms import SEED_BINNINGS, Binning, score_binning
from assay.inference.likelihood import Scan, log_ratio_function
from assay.pipeline import PipelineResult, run_pipeline
from assay.saving import write_json
from assay.training import TrainingResult, train

__all__ = ["LUMINOSITY_IFB", "DemoSize", "run_demo"]

logger = logging.getLogger(__name__)

LUMINOSITY_IFB = 300.0
PARAMETERS = ("cHW", "cHWtilde")
LABELS = ("$c_{HW}$", r"$c_{H\tilde{W}}$")
LEVELS = ("parton", "detector")
SCAN_RANGES = {"cHW": (-0.04, 0.04), "cHWtilde": (-0.15, 0.15)}  # ≳ 3 × the expected 95% CL at 300 fb⁻¹
DISTRIBUTIONS = {
    "pt_w": (np.linspace(0, 600, 31), "$p_T^W$ [GeV]"),
    "mt_tot": (np.linspace(0, 1200, 31), r"$m_T^{\ell\nu b\bar b}$ [GeV]"),
    "ql_cos_delta_plus": (np.linspace(-1, 1, 26), r"$Q_\ell \cos\delta^+$"),
}
SHOWN_BENCHMARKS = {"SM": (0.0, 0.0), "cHW = 0.1": (0.1, 0.0), "cHWtilde = 0.3": (0.0, 0.3)}


@dataclass(frozen=True)
class DemoSize:
    """How much the demo simulates and trains (the defaults fit in 10 minutes on 2 cores).

    Attributes:
        parton_events: generated parton-level events.
        detector_events: generated events before the detector-level selection (~19% pass).
        sally_samples, alices_samples: training samples per level, for ALICES per ensemble
            member (train partition; the validation partition gets a quarter of that).
        sally_epochs, alices_epochs: training epochs.
        members: ensemble members per method.
        bit_trees: boosting iterations of BIT (depth 4, seed 002).
        points_1d: points of each 1D scan.
        points_2d: points per axis of the 2D grid.
        asimov_events: at most this many test events form the Asimov data (a random subset;
            ALICES' cost is events × θ points × members).
    """

    parton_events: int = 200_000
    detector_events: int = 400_000
    sally_samples: int = 100_000
    alices_samples: int = 100_000
    sally_epochs: int = 50
    alices_epochs: int = 20
    members: int = 2
    bit_trees: int = 100
    points_1d: int = 121
    points_2d: int = 35
    asimov_events: int = 25_000

    def level_events(self, level: str) -> int:
        return self.parton_events if level == "parton" else self.detector_events


def alices_set_names(size: DemoSize) -> list[str]:
    """The ALICES training sets, one per ensemble member."""
    return [f"alices_{i}" for i in range(size.members)]


def level_config(level: str, size: DemoSize, seed: int = 2026) -> RunConfig:
    """The run configuration of one level (sampling and training; the demo scans itself)."""
    simulator: dict[str, Any] = {"kind": "wh", "n_events": size.level_events(level), "batch_size": 50_000}
    if level == "detector":
        simulator["detector"] = {}
    # one ALICES set per member, each unweighted independently (seed 000's ensembles): bootstrap
    # weights on one set halve every member's effective sample and widen c_HW̃ by ~10% (docs/demo.md)
    alices_sets = [
        {
            "name": name,
            "kind": "ratio",
            "n_samples": size.alices_samples,
            # seed 000: N(0, 0.4²) for scans up to ±1.2; here the scans reach ±0.15 (300 fb⁻¹),
            # and a prior matched to them gives a 5% better local score (docs/demo.md)
            "theta0": {"kind": "gaussian", "mean": 0.0, "std": 0.1},
            "theta1": "sm",
            "n_theta0": 1000,
        }
        for name in alices_set_names(size)
    ]
    sets = [{"name": "sally", "kind": "local_score", "n_samples": size.sally_samples}, *alices_sets]
    return config_from_dict(
        {
            "seed": seed,
            "output": f"assay-demo/{level}",
            "parameters": [
                {"name": name, "range": list(r), "latex": label}
                for name, r, label in zip(PARAMETERS, SEED_RANGES, LABELS)
            ],
            "morphing": {
                "max_power": 2,
                "n_basis_trials": 50,
                "basis_prior": {"kind": "gaussian", "mean": 0.0, "std": 0.4},
            },
            "simulator": simulator,
            "sampling": {"split": {"train": 0.6, "validation": 0.15, "test": 0.25}, "sets": sets},
            # seed 000's S+B width with ReLU, at batch 256 ([50] loses 7-20% in σ(c_HW̃), docs/demo.md)
            "training": {
                "hidden": [100, 100],
                "activation": "relu",
                "epochs": size.alices_epochs,  # per method in _prepare_level
                "batch_size": 256,
                "n_ensemble": size.members,
                "threads": 1,
            },
            "inference": {"luminosity_ifb": LUMINOSITY_IFB},
        },
        source=f"<demo {level}>",
    )


@contextmanager
def _timed(timings: dict[str, float], key: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[key] = time.perf_counter() - start


def _jsonable(value: Any) -> Any:
    """Arrays to lists, NaN/inf to None (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _write_json(path: Path, data: dict) -> None:
    write_json(path, _jsonable(data), indent=1)


# ---- one level ------------------------------------------------------------------------
@dataclass
class _Level:
    """Everything one level produces on the way to its results."""

    name: str
    cfg: RunConfig
    folder: Path
    pipeline: PipelineResult
    sample: AsimovSample
    models: dict[str, TrainingResult]
    bit: Any
    timings: dict[str, float]


def _prepare_level(name: str, size: DemoSize, folder: Path, client: Any, progress: bool) -> _Level:
    """Events → training sets → SALLY and ALICES ensembles → BIT."""
    cfg = level_config(name, size)
    timings: dict[str, float] = {}
    with _timed(timings, "events_and_sets"):
        pipeline = run_pipeline(cfg, folder, progress=progress)
    models = {}
    per_method = {
        "sally": {"epochs": size.sally_epochs},
        # seed 000's ALICES network is tanh; ReLU widens c_HW̃ by ~8% at parton level (docs/demo.md)
        "alices": {
            "epochs": size.alices_epochs,
            "activation": "tanh",
            "training_set": alices_set_names(size),
        },
    }
    for method, settings in per_method.items():
        training = cfg.training.model_copy(update={"method": method, **settings})
        method_cfg = cfg.model_copy(update={"training": training})
        with _timed(timings, f"train_{method}"):
            models[method] = train(method_cfg, folder, client=client, progress=progress)
    test = pipeline.split.test
    if len(test) > size.asimov_events:
        test = np.random.default_rng([cfg.seed, 7]).choice(test, size.asimov_events, replace=False)
    sample = AsimovSample.from_store(pipeline.events, test, pipeline.morpher,
                                     theta_true=np.zeros(2), luminosity=LUMINOSITY_IFB)  # fmt: skip
    # BIT on the weighted train events (seed 002: depth 4, learning rate 0.2)
    bit_settings = cfg.training.bit.model_copy(update={"n_trees": size.bit_trees})
    training = cfg.training.model_copy(update={"method": "bit", "bit": bit_settings})
    with _timed(timings, "train_bit"):
        bit = train(cfg.model_copy(update={"training": training}), folder, progress=progress).estimator
    return _Level(name, cfg, folder, pipeline, sample, models, bit, timings)


def _score_binnings(t_hat: np.ndarray, weights: np.ndarray) -> dict[str, Binning]:
    """SALLY's histograms (seed 000): 25 bins of each t̂ component, 8 × 8 of both; edges balanced
    between events and Fisher information (the c_HW̃ score has heavy tails)."""
    one_d = {
        p: score_binning(t_hat[:, a], weights, name=f"t_hat_{p}", balance="information")
        for a, p in enumerate(PARAMETERS)
    }
    coarse = [score_binning(t_hat[:, a], weights, n_bins=8, balance="information").edges[0] for a in range(2)]
    return {**one_d, "2d": Binning(tuple(f"t_hat_{p}" for p in PARAMETERS), tuple(coarse))}


def _scan_axes(size: DemoSize) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """1D scans (the other parameter at the SM) and the 2D grid."""
    scans_1d = {}
    for a, p in enumerate(PARAMETERS):
        theta = np.zeros((size.points_1d, 2))
        theta[:, a] = np.linspace(*SCAN_RANGES[p], size.points_1d)
        scans_1d[p] = theta
    grid = theta_grid([SCAN_RANGES[p] for p in PARAMETERS], size.points_2d)
    return scans_1d, grid


def _level_results(level: _Level, size: DemoSize) -> tuple[dict, dict]:
    """Scans, intervals, Fisher information, loss curves, calibration and distributions of a level.

    Returns:
        (results.json's entry for the level, summary.json's entry: method → intervals).
    """
    sample, timings = level.sample, level.timings
    thetas_1d, grid = _scan_axes(size)
    x, w_sm = sample.x, sample.weights
    # likelihood-ratio methods: log r̂(x|θ, SM) callables
    ratio_methods: dict[str, Callable] = {}
    if level.name == "parton":
        ratio_methods["truth"] = sample.truth_log_ratio
    raw = {"alices": log_ratio_function(level.models["alices"].estimator, x, np.zeros(2)),
           "bit": log_ratio_function(level.bit, x, np.zeros(2))}  # fmt: skip
    ratio_methods |= {name: normalised(sample, log_r) for name, log_r in raw.items()}
    # histogram methods: templates
    with _timed(timings, "sally_score"):
        t_hat = level.models["sally"].estimator.evaluate_score(x)
        t_hat = getattr(t_hat, "mean", t_hat)
    sally_bins = _score_binnings(t_hat, w_sm)
    templates_1d = {
        ("sally", p): sample.templates(sally_bins[p], t_hat[:, [a]]) for a, p in enumerate(PARAMETERS)
    }
    sally_2d = sample.templates(sally_bins["2d"], t_hat)
    histograms = {name: sample.templates(binning) for name, binning in SEED_BINNINGS.items()}

    scans_1d: dict[str, dict[str, Scan]] = {p: {} for p in PARAMETERS}
    scan_2d: dict[str, Scan] = {}
    with _timed(timings, "scans"):
        for method, log_r in ratio_methods.items():
            chunk = 32 if method == "alices" else 256  # truth and BIT: cheap per θ, costly per call
            for a, p in enumerate(PARAMETERS):
                scans_1d[p][method] = _one_d(sample.ratio_scan(thetas_1d[p], log_r, theta_chunk=chunk), a)
            scan_2d[method] = sample.ratio_scan(grid, log_r, theta_chunk=chunk)
        for a, p in enumerate(PARAMETERS):
            scans_1d[p]["sally"] = _one_d(sample.binned_scan(thetas_1d[p], templates_1d[("sally", p)]), a)
            for name, templates in histograms.items():
                scans_1d[p][f"hist_{_key(name)}"] = _one_d(sample.binned_scan(thetas_1d[p], templates), a)
        scan_2d["sally"] = sample.binned_scan(grid, sally_2d)
        scan_2d["hist_ql_cos_delta_plus_x_mt_tot"] = sample.binned_scan(
            grid, histograms["ql_cos_delta_plus x mt_tot"]
        )
    with _timed(timings, "pyhf"):
        pyhf_check = _export_pyhf(level, sample, histograms, thetas_1d, scans_1d)
    methods = list(scans_1d[PARAMETERS[0]])
    intervals = {m: interval_summary({p: scans_1d[p][m] for p in PARAMETERS}) for m in methods}

    # Fisher information at the SM
    lumi = LUMINOSITY_IFB
    sigma, grad = float(sample.cross_section(np.zeros((1, 2)))[0]), sample.cross_section_gradient(np.zeros(2))
    scale = sample.scale
    fisher = {}
    if level.name == "parton":
        truth_t = sample.truth_score()
        fisher["truth"] = score_fisher_information(truth_t, w_sm * scale, lumi, grad, cross_section=sigma)
    fisher["sally"] = score_fisher_information(t_hat, w_sm * scale, lumi, grad, cross_section=sigma)
    bit_t = level.bit.score(x) - grad / sigma
    fisher["bit"] = score_fisher_information(bit_t, w_sm * scale, lumi, grad, cross_section=sigma)
    fisher["hist_sally_2d"] = histogram_fisher_information(sally_2d, np.zeros(2), lumi)
    for name, templates in histograms.items():
        fisher[f"hist_{_key(name)}"] = histogram_fisher_information(templates, np.zeros(2), lumi)
    fisher["rate"] = rate_fisher_information(sigma, grad, lumi)

    # calibration: R̂(θ) = E_SM[r̂(x|θ, SM)] on points of the 2D grid
    check_points = grid[:: max(1, len(grid) // 25)]
    calibration = {}
    for method, log_r in (
        raw | ({"truth": sample.truth_log_ratio} if level.name == "parton" else {})
    ).items():
        r_hat = sample.expectation_check(log_r(check_points))  # before normalisation
        calibration[method] = {"theta": check_points, "r_hat_mean": r_hat, "r_hat_std": np.zeros_like(r_hat)}

    results = {
        "label": "parton level (all momenta observed)" if level.name == "parton"
        else "detector level (smearing, b-tagging, selection; neutrino unobserved)",
        "n_events": {"generated": level.cfg.simulator.n_events, "stored": _n_stored(level.pipeline),
                     "asimov_test_events": len(x)},
        "scans_1d": {
            p: {"theta": thetas_1d[p][:, a], "fixed": {o: 0.0 for o in PARAMETERS if o != p},
                "q": {m: s.minus_2_delta_log_l for m, s in scans_1d[p].items()}}
            for a, p in enumerate(PARAMETERS)
        },
        "scan_2d": {"axes": [np.unique(grid[:, 0]), np.unique(grid[:, 1])],
                    "q": {m: s.minus_2_delta_log_l.reshape(size.points_2d, size.points_2d)
                          for m, s in scan_2d.items()}},
        "intervals": intervals,
        "fisher": {"theta": [0.0, 0.0], "information": fisher},
        "histories": {m: [h.to_dict() for h in r.histories] for m, r in level.models.items()},
        "calibration": calibration,
        "distributions": _distributions(sample),
        "cut_flow": _cut_flow(level.pipeline),
        "checks": pyhf_check,
    }  # fmt: skip
    return results, intervals


def _export_pyhf(
    level: _Level, sample: AsimovSample, histograms: dict, thetas_1d: dict, scans_1d: dict
) -> dict:
    """Write each histogram analysis as a pyhf workspace (Asimov data, normfactors c_k(θ)) into
    ``<level>/pyhf/``, and rescan one with pyhf: returns the largest |Δq| against assay's scan."""
    from assay.inference.pyhf_export import pyhf_scan, pyhf_workspace, to_pyhf_spec

    folder = level.folder / "pyhf"
    folder.mkdir(exist_ok=True)
    specs = {}
    for name, templates in histograms.items():
        asimov = templates.expected(sample.theta_true, LUMINOSITY_IFB)
        specs[name] = spec = to_pyhf_spec(templates, LUMINOSITY_IFB, asimov, channel=_key(name))
        pyhf_workspace(spec)  # validates against pyhf's schema
        _write_json(folder / f"hist_{_key(name)}.json", spec)
    name, p = "ql_cos_delta_plus", "cHWtilde"
    q_pyhf = pyhf_scan(specs[name], sample.joint.morpher, thetas_1d[p]).minus_2_delta_log_l
    q_assay = scans_1d[p][f"hist_{name}"].minus_2_delta_log_l
    return {
        "pyhf_vs_assay_max_abs_dq": float(np.max(np.abs(q_pyhf - q_assay))),
        "pyhf_scan": f"hist_{name}, {p}",
    }


def _one_d(scan: Scan, a: int) -> Scan:
    """A scan along parameter ``a`` (the other fixed) as a one-parameter :class:`Scan`."""
    return Scan(scan.theta[:, [a]], scan.minus_2_delta_log_l, scan.mle[[a]])


def _key(name: str) -> str:
    return name.replace(" ", "_")


def _n_stored(pipeline: PipelineResult) -> int:
    """Events in the store (after the selection): the split covers every one."""
    return sum(len(pipeline.split[part]) for part in ("train", "validation", "test"))


def _cut_flow(pipeline: PipelineResult) -> dict | None:
    flow = pipeline.cut_flow
    if flow is None:
        return None
    return {"names": list(flow.names), "efficiency": flow.efficiency}


def _distributions(sample: AsimovSample) -> dict:
    """Normalised distributions of three observables at a few benchmarks, by morphing the weights."""
    thetas = np.array(list(SHOWN_BENCHMARKS.values()))
    weights = sample.joint.weights_on_grid(sample.benchmark_weights, thetas)  # (n, n_shown)
    out = {}
    for name, (edges, label) in DISTRIBUTIONS.items():
        values = sample.column(name)
        hists = {}
        for j, shown in enumerate(SHOWN_BENCHMARKS):
            counts, _ = np.histogram(values, bins=edges, weights=weights[:, j])
            hists[shown] = counts / (counts.sum() * np.diff(edges)) if counts.sum() > 0 else counts
        out[name] = {"edges": edges, "label": label, "benchmarks": hists}
    return out


# ---- the demo ---------------------------------------------------------------------------
def run_demo(
    output: str | os.PathLike = "assay-demo",
    *,
    size: DemoSize | None = None,
    progress: bool = True,
    report: bool = True,
) -> dict:
    """Run both levels into ``output`` and return (and write) ``summary.json``.

    Args:
        output: run folder; ``parton/`` and ``detector/`` hold each level's events, sets and models.
        size: sample sizes and training lengths (default :class:`DemoSize`).
        progress: progress bars.
        report: write ``report.html`` (needs the plotting extras).

    Returns:
        The summary: ``{"parton": {method: intervals}, "detector": {...}, "timings_s": {...}}``.
    """
    from assay.cluster import local_client

    size = size or DemoSize()
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    timings: dict[str, float] = {}
    summary: dict[str, Any] = {}
    results: dict[str, Any] = {
        "title": "assay demo: p p → W h → ℓ ν b b̄, expected limits at the SM",
        "parameters": list(PARAMETERS), "parameter_labels": list(LABELS),
        "luminosity_ifb": LUMINOSITY_IFB, "levels": {},
    }  # fmt: skip
    with local_client(min(size.members, os.cpu_count() or 1)) as client:
        for name in LEVELS:
            level = _prepare_level(name, size, out / name, client, progress)
            level_results, intervals = _level_results(level, size)
            results["levels"][name] = level_results
            summary[name] = intervals
            timings |= {f"{name}_{k}": v for k, v in level.timings.items()}
    timings["total"] = time.perf_counter() - start
    summary["timings_s"] = timings
    results["timings_s"] = timings
    _write_json(out / "results.json", results)
    _write_json(out / "summary.json", summary)
    if report:
        try:
            from assay.report import write_report
        except ImportError:  # pragma: no cover - the report module ships with assay
            logger.warning("assay.report not available: no report written")
        else:
            write_report(out)
    return summary


def demo_size(scale: float) -> DemoSize:
    """A :class:`DemoSize` with every sample size multiplied by ``scale`` (tests use ~0.05)."""
    base = DemoSize()
    return replace(
        base,
        parton_events=max(2_000, int(base.parton_events * scale)),
        detector_events=max(8_000, int(base.detector_events * scale)),
        sally_samples=max(500, int(base.sally_samples * scale)),
        alices_samples=max(1_000, int(base.alices_samples * scale)),
    )
