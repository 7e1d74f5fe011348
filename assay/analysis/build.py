"""From ``config.inference`` and a run folder to the Asimov sample and the methods to compare.

- :func:`asimov_sample`: the configured partition of ``events.h5`` (``inference.events``), weighted
  at ``inference.theta_true`` with luminosity ``inference.luminosity_ifb``;
- :func:`build_methods`: truth (where the simulator provides the exact likelihood), the trained
  models by name, the histogram baselines and the rate, as :mod:`assay.analysis.methods`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from assay.analysis.methods import BinnedMethod, Dataset, Method, RateMethod, RatioMethod, check_model_inputs
from assay.bit import BoostedInformationTree
from assay.config import GaussianToyConfig, OffshellConfig, RunConfig, WHConfig
from assay.estimators import load_estimator
from assay.estimators.mixture import MixtureModel
from assay.exceptions import ConfigError, StoreError
from assay.inference.asimov import AsimovSample
from assay.inference.histograms import Binning
from assay.pipeline import read_split
from assay.rundir import RunDir
from assay.simulators.toys import GaussianToy
from assay.store import EventStore
from assay.training import read_basis

__all__ = ["asimov_rows", "asimov_sample", "build_methods", "has_truth", "load_models"]

logger = logging.getLogger(__name__)


def asimov_rows(cfg: RunConfig, run: RunDir) -> np.ndarray:
    """The rows of ``events.h5`` that form the Asimov data: the ``inference.events`` partition, a
    seeded subset of at most ``max_events``, sorted.

    Raises:
        StoreError: the run folder lacks ``events.h5`` or its split.
        ConfigError: the partition is empty.
    """
    if not run.events.is_file():
        raise StoreError(f"{run.events}: event file not found; run `assay run CONFIG` first")
    with EventStore(run.events) as store:
        rows = read_split(run.split, store.n_events, cfg)[cfg.inference.events.partition]
    limit = cfg.inference.events.max_events
    if limit is not None and len(rows) > limit:
        rows = np.random.default_rng([cfg.seed, 7]).choice(rows, limit, replace=False)
    if len(rows) == 0:
        raise ConfigError(
            f"inference.events.partition: the {cfg.inference.events.partition!r} partition holds no events"
        )
    return np.sort(rows)


def asimov_sample(cfg: RunConfig, run: RunDir) -> AsimovSample:
    """The events of ``inference.events`` (:func:`asimov_rows`) weighted at θ_true, with the
    store's benchmark cross sections; over half of ``memory_gb`` they stay in the file
    (:attr:`AsimovSample.streamed <assay.inference.asimov.AsimovSample.streamed>`).

    Raises:
        StoreError: the run folder lacks ``events.h5``, ``basis.json`` or its split.
    """
    rows = asimov_rows(cfg, run)
    with EventStore(run.events) as store:
        morpher = read_basis(run.basis, store)
    theta_true = cfg.theta(cfg.inference.theta_true, "inference.theta_true")
    return AsimovSample.from_store(
        run.events, rows, morpher, theta_true=theta_true, luminosity=cfg.inference.luminosity_ifb,
        memory_gb=cfg.memory_gb,
    )  # fmt: skip


def has_truth(cfg: RunConfig) -> bool:
    """Whether the simulator provides the exact likelihood of its observables: the Gaussian toy
    (analytic density), the off-shell 4ℓ simulator and WH at parton level without backgrounds
    (every momentum observed, so the event weights give the likelihood ratio; seed 000's validation)."""
    sim = cfg.simulator
    if isinstance(sim, GaussianToyConfig | OffshellConfig):  # off-shell 4ℓ: every lepton momentum observed
        return True
    return isinstance(sim, WHConfig) and sim.detector is None and sim.shower is None and not sim.backgrounds


def _truth(cfg: RunConfig, sample: AsimovSample) -> RatioMethod:
    """The exact log r(x|θ, θ_true): analytic for the toy, from the event weights for WH."""
    sim = cfg.simulator
    theta_true = sample.theta_true
    if isinstance(sim, GaussianToyConfig):
        toy = GaussianToy.default(len(cfg.parameters), sim.n_obs, smearing=sim.smearing)

        def toy_log_ratio(data: Dataset, theta: np.ndarray) -> np.ndarray:
            return (toy.log_likelihood(data.x, theta) - toy.log_likelihood(data.x, theta_true)[:, None]).T

        # the exact density, normalised on the finite Asimov sample like the estimators: its
        # E[r] over the sample differs from 1 by the sample's fluctuation, a term ∝ N in the scan
        return RatioMethod("truth", toy_log_ratio, normalise=True, theta_chunk=256)

    def weights_log_ratio(data: Dataset, theta: np.ndarray) -> np.ndarray:
        if data.benchmark_weights is None:
            raise StoreError(
                f"{data.label}: the truth needs the events' benchmark weights; the file has none"
            )
        return sample.truth_log_ratio(theta, data.benchmark_weights)

    return RatioMethod("truth", weights_log_ratio, normalise=False, theta_chunk=256, needs_weights=True)


def load_models(cfg: RunConfig, run: RunDir, names: Sequence[str] | None = None) -> dict:
    """The trained models ``names`` (default ``inference.models``, else every configured model).

    Raises:
        ConfigError: a name that is not in the config's training section.
        StoreError: a model that has not been trained (``assay train``).
        PredictionError: a model trained on other observables or parameters than the run's events
            (:func:`~assay.analysis.methods.check_model_inputs`).
    """
    names = list(names if names is not None else (cfg.inference.models or cfg.training))
    unknown = [n for n in names if n not in cfg.training]
    if unknown:
        raise ConfigError(
            f"models: unknown model(s) {unknown}; the config's training section names {list(cfg.training)}"
        )
    models = {}
    for name in names:
        path = run.model(name)
        if not path.is_dir():
            raise StoreError(f"{path}: model {name!r} is not trained; run `assay train CONFIG` first")
        models[name] = load_estimator(path)
    if models:
        with EventStore(run.events) as store:
            observables = list(store.observables)
        parameters = [p.name for p in cfg.parameters]
        for name, model in models.items():
            check_model_inputs(name, model, observables, parameters, where=str(run.events))
    return models


def _model_method(name: str, model, sample: AsimovSample, score_bins: tuple[int, int]) -> Method:
    """A likelihood-ratio model scans its log r̂; a score-only model (SALLY) histograms its t̂."""
    theta_true = sample.theta_true
    if "log_ratio" in model.predicts:
        # BIT and the mixture model: cheap per θ (analytic θ-dependence), costly per call
        chunk = 256 if isinstance(model, BoostedInformationTree | MixtureModel) else 32

        def log_ratio(data: Dataset, theta: np.ndarray) -> np.ndarray:
            return model.log_ratio(data.x, theta, theta_true).mean

        return RatioMethod(name, log_ratio, theta_chunk=chunk)

    def t_hat(data: Dataset) -> np.ndarray:
        return data.cached(f"score:{name}", lambda: np.asarray(model.score(data.x).mean, dtype=float))

    return BinnedMethod(name, t_hat, None, score_bins)


def _histogram(
    observables: Sequence[str], edges, name: str, store_observables: Sequence[str]
) -> BinnedMethod:
    missing = [o for o in observables if o not in store_observables]
    if missing:
        raise ConfigError(
            f"inference.histograms[{name}].observables: unknown observable(s) {missing}; the events have "
            f"{list(store_observables)}"
        )
    columns = [list(store_observables).index(o) for o in observables]

    def values(data: Dataset) -> np.ndarray:
        return data.x[:, columns]

    return BinnedMethod(f"hist_{name.replace(' ', '_')}", values, Binning(tuple(observables), tuple(edges)))


def build_methods(cfg: RunConfig, sample: AsimovSample, models: dict) -> dict[str, Method]:
    """Truth (if available and asked for), the models, the histograms and the rate, by name."""
    inference = cfg.inference
    methods: dict[str, Method] = {}
    if inference.truth and has_truth(cfg):
        methods["truth"] = _truth(cfg, sample)
    for name, model in models.items():
        methods[name] = _model_method(name, model, sample, inference.score_bins)
    for h in inference.histograms:
        method = _histogram(h.observables, h.edges, h.label, sample.observables)
        methods[method.name] = method
    if inference.rate:
        methods["rate"] = RateMethod()
    return methods
