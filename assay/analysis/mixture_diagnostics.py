"""``assay diagnostics``: seed 003's intermediate checks of a trained mixture model on held-out events.

For every process j with a classifier (:class:`~assay.estimators.mixture.MixtureModel`), on the
events of ``inference.events`` (by default the test partition: never trained on), split at random
into a *source* half weighted as the reference p_ref and a *target* half weighted as p_j:

- reweighting closure: the source half reweighted by r̂_j against the target half, per observable
  (:func:`~assay.analysis.diagnostics.reweighting_closure`), and the classifier two-sample test
  (:func:`~assay.analysis.two_sample.two_sample_test`);
- the reliability curve of s = r̂_j/(1 + r̂_j) on labelled events (target: 1, source: 0), raw and
  after a histogram or isotonic calibration fitted on the other half of the labelled events;
- the ensemble's relative spread std/r̂_j per event and the standard error of its mean.

Each check is repeated with r = 1 (no reweighting: what a failure looks like) and, where the
simulator's weights give the exact ratio (:func:`~assay.analysis.build.has_truth`; not the
Gaussian toy, whose events carry no density), with the exact r_j = (W_j/ν_j)/(W_ref/ν_ref): its
numbers are what statistical fluctuations alone give on these events. Finally the distribution of
the per-event −2 log r̂(x|θ_k, θ_true) for every benchmark θ_k ≠ θ_true, weighted as the Asimov
data, against the exact one. Everything goes to ``limits/diagnostics.json`` (``RunDir.limits.diagnostics``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from assay.analysis.build import asimov_sample, has_truth, load_models
from assay.analysis.diagnostics import (
    HistogramCalibrator,
    IsotonicCalibrator,
    balance_classes,
    ensemble_spread,
    reliability_curve,
    reweighting_closure,
    weighted_histogram,
)
from assay.analysis.two_sample import two_sample_test
from assay.config import GaussianToyConfig, MixtureModelConfig, RunConfig
from assay.exceptions import ConfigError, StoreError
from assay.rundir import RunDir
from assay.store import EventStore

__all__ = ["mixture_model_name", "run_diagnostics"]
logger = logging.getLogger(__name__)


def mixture_model_name(cfg: RunConfig, model: str | None = None) -> str:
    """The mixture model to check: ``model``, or the config's only one.

    Raises:
        ConfigError: ``model`` is not a mixture model of the config, or the config has none or several.
    """
    mixtures = [name for name, m in cfg.training.items() if isinstance(m, MixtureModelConfig)]
    if model is not None:
        if model not in mixtures:
            raise ConfigError(
                f"--model: {model!r} is not a mixture model (method: mixture) of the config's training "
                f"section; its mixture models are {mixtures}"
            )
        return model
    if len(mixtures) != 1:
        what = (
            "has no model with method: mixture"
            if not mixtures
            else f"has several ({mixtures}): pick one with --model"
        )
        raise ConfigError(
            f"training: the config {what}; diagnostics check seed 003's mixture model, so add one "
            "(e.g. examples/offshell.yaml's nsbi) and run `assay train CONFIG`"
        )
    return mixtures[0]


def _process_checks(
    x: np.ndarray, source: np.ndarray, w_src: np.ndarray, w_tgt: np.ndarray, ratios: dict[str, np.ndarray],
    observables: tuple[str, ...], *, bins: int, epochs: int, seed: int,
) -> dict[str, Any]:  # fmt: skip
    """Closure, two-sample test and reliability of each ratio r (n_events,) of one process."""
    target = ~source
    label = np.concatenate([np.ones(target.sum()), np.zeros(source.sum())])
    weight = balance_classes(label, np.concatenate([w_tgt[target], w_src[source]]))
    fit = np.random.default_rng([seed, 1]).random(len(label)) < 0.5  # calibrators' half
    out: dict[str, Any] = {}
    for kind, r in ratios.items():
        closure = reweighting_closure(x[source], w_src[source], r[source], x[target], w_tgt[target],
                                      observables=observables, bins=bins)  # fmt: skip
        test = two_sample_test(x[source], w_src[source] * r[source], x[target], w_tgt[target],
                               observables=observables, epochs=epochs, seed=seed)  # fmt: skip
        entry = {
            "normalisation": float(np.sum(w_src[source] * r[source]) / np.sum(w_src[source])),
            "closure": {c.observable: c.to_dict() for c in closure},
            "c2st": test.to_dict(),
        }
        if kind != "unit":
            r_lab = np.concatenate([r[target], r[source]])
            score = r_lab / (1.0 + r_lab)
            ev = ~fit
            entry["reliability"] = {"raw": reliability_curve(score[ev], label[ev], weight[ev]).to_dict()}
            for name, cal in (("histogram", HistogramCalibrator()), ("isotonic", IsotonicCalibrator())):
                cal.fit(score[fit], label[fit], np.maximum(weight[fit], 0.0))
                entry["reliability"][name] = reliability_curve(
                    cal.predict(score[ev]), label[ev], weight[ev]
                ).to_dict()
        out[kind] = entry
    return out


def run_diagnostics(
    cfg: RunConfig,
    output: str | os.PathLike | None = None,
    *,
    model: str | None = None,
    bins: int = 20,
    epochs: int = 10,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Seed 003's diagnostics of the mixture model ``model`` on the ``inference.events`` events;
    writes ``OUTPUT/limits/diagnostics.json`` (atomically) and returns its content.

    Args:
        cfg: the run configuration.
        output: the run folder (default ``cfg.output``), after ``assay run`` and ``assay train``.
        model: the mixture model's name (default: the config's only one).
        bins: bins per observable of the closure.
        epochs: epochs of each two-sample classifier.
        log: called with one line per process.

    Returns:
        ``{"model", "n_events", "processes": {j: {"model" | "exact" | "unit": {"normalisation",
        "closure": {observable: ...}, "c2st": ..., "reliability": {"raw" | "histogram" |
        "isotonic": ...}}, "spread": ...}}, "log_ratio": {benchmark: ...}}``.

    Raises:
        ConfigError: no (or no such) mixture model in the config.
        StoreError: the run folder lacks events or the trained model, or they disagree.
    """
    from assay.results import strict_json
    from assay.saving import write_json

    run = RunDir(output or cfg.output)
    name = mixture_model_name(cfg, model)
    mixture = load_models(cfg, run, [name])[name]
    sample = asimov_sample(cfg, run)
    with EventStore(run.events) as store:
        benchmarks = tuple(store.benchmarks)
    if benchmarks != tuple(mixture.benchmarks_) or tuple(sample.observables) != tuple(mixture.observables_):
        raise StoreError(
            f"{run.model(name)}: trained on benchmarks {list(mixture.benchmarks_)} and observables "
            f"{list(mixture.observables_)}, but {run.events} holds {list(benchmarks)} and "
            f"{list(sample.observables)}; rerun `assay train CONFIG`"
        )
    x, n = sample.x, len(sample.x)
    proc = sample.benchmark_weights @ mixture.process_matrix_.T  # W_j per event (n, n_proc), pb
    names = list(mixture.processes_)
    ref = proc.sum(axis=1) if mixture.reference is None else proc[:, names.index(mixture.reference)]
    exact = has_truth(cfg) and not isinstance(cfg.simulator, GaussianToyConfig)
    predicted = mixture.process_ratios(x)
    source = np.random.default_rng([cfg.seed, 14]).random(n) < 0.5
    processes: dict[str, Any] = {}
    for j, process in enumerate(names):
        if process == mixture.reference:
            continue
        ratios = {"model": predicted.mean[j], "unit": np.ones(n)}
        if exact:
            with np.errstate(divide="ignore", invalid="ignore"):
                ratios["exact"] = np.nan_to_num((proc[:, j] / proc[:, j].sum()) / (ref / ref.sum()))
        checks = _process_checks(x, source, ref, proc[:, j], ratios, mixture.observables_, bins=bins,
                                 epochs=epochs, seed=cfg.seed)  # fmt: skip
        if mixture.n_ensemble >= 2:
            spread, sem = ensemble_spread(predicted.mean[j], predicted.std[j], mixture.n_ensemble)
            checks["spread"] = {
                "relative_std": weighted_histogram(spread, sample.weights).to_dict(),
                "relative_error_of_mean": weighted_histogram(sem, sample.weights).to_dict(),
            }
        processes[process] = checks
        if log:
            c = checks["model"]["c2st"]
            log(f"{process}: two-sample AUC {c['auc']:.3f} ± {c['auc_error']:.3f} (r = 1: "
                f"{checks['unit']['c2st']['auc']:.3f})")  # fmt: skip
    data = {
        "model": name, "n_events": n, "n_ensemble": mixture.n_ensemble, "reference": mixture.reference,
        "exact": exact, "processes": processes, "log_ratio": _log_ratios(cfg, sample, mixture, exact),
    }  # fmt: skip
    run.limits.root.mkdir(parents=True, exist_ok=True)
    write_json(run.limits.diagnostics, strict_json(data), indent=1)
    return data


def _log_ratios(cfg: RunConfig, sample, mixture, exact: bool) -> dict[str, Any]:
    """Per benchmark θ_k ≠ θ_true: the distribution of −2 log r̂(x|θ_k, θ_true) over the Asimov
    events (weighted), that of its ensemble spread, the exact one and the RMS of the difference."""
    out = {}
    weights = sample.weights
    for bench in cfg.benchmarks:
        theta = cfg.theta(bench.name, "benchmarks")
        if np.allclose(theta, sample.theta_true):
            continue
        pred = mixture.log_ratio(sample.x, theta, sample.theta_true)
        t = -2.0 * pred.mean[0]
        entry = {"theta": theta.tolist(), "model": weighted_histogram(t, weights).to_dict()}
        if pred.std is not None:
            entry["model_std"] = weighted_histogram(2.0 * pred.std[0], weights).to_dict()
        if exact:
            t_exact = -2.0 * sample.truth_log_ratio(theta)[0]
            ok = np.isfinite(t_exact)
            entry["exact"] = weighted_histogram(t_exact[ok], weights[ok]).to_dict()
            diff = (t - t_exact)[ok]
            entry["rms_difference"] = float(np.sqrt(np.sum(weights[ok] * diff**2) / weights[ok].sum()))
        out[bench.name] = entry
    return out
