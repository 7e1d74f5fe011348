"""From the run config's ``training`` section to saved models (``assay train``).

``training`` names the models: ``{name: {method: ..., settings}}``, a tagged union
(:data:`assay.config.ModelConfig`). ``train(cfg)`` trains every configured model (or those
named) and saves each to ``OUTPUT/models/<name>/`` (:class:`~assay.rundir.RunDir`):

- a neural method (SALLY, ALICES, …) reads the training set(s) that ``assay run`` wrote to
  ``OUTPUT/sets/<set>_train.h5`` (and ``_validation.h5`` for early stopping, when present) and
  trains one estimator, or an :class:`~assay.estimators.Ensemble` when ``n_ensemble > 1`` (in
  parallel through Dask). While it trains, every estimator (or member) writes its state after
  each epoch to ``OUTPUT/models/.checkpoints/<name>/``; the same command run again after an
  interruption resumes there (deleted once the model is saved).
- ``method: bit`` fits a :class:`~assay.bit.BoostedInformationTree` (seed 002) on the weighted
  events of the train partition (``events.h5`` rows listed in ``split.h5``) with the morphing
  basis of ``basis.json``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from assay.bit import BoostedInformationTree
from assay.config import BITModelConfig, MixtureModelConfig, NeuralModelConfig, RunConfig
from assay.estimators import METHODS, Ensemble, Estimator, History, load_estimator, method_class
from assay.estimators.ensemble import ENSEMBLE_FILE
from assay.estimators.flows import FlowEstimator
from assay.estimators.mixture import MixtureModel
from assay.estimators.ratio import RatioEstimator
from assay.exceptions import ConfigError, StoreError
from assay.morphing import Morpher
from assay.pipeline import read_split
from assay.provenance import make_provenance, write_folder_provenance
from assay.rundir import RunDir
from assay.saving import read_json
from assay.store import EventStore
from assay.streaming import STREAM_FRACTION, StreamPlan, TrainingSetFile, fit_streamed, plan_streaming
from assay.trained import model_inputs, unchanged
from assay.training_set import TrainingSet

__all__ = [
    "BITEvents",
    "TrainEvents",
    "TrainingResult",
    "bit_training_events",
    "build_bit",
    "build_estimator",
    "estimator_class",
    "model_names",
    "read_basis",
    "train",
    "train_events",
    "train_model",
]

logger = logging.getLogger(__name__)

_CLIP_FOR_SCORE_TERMS = 1.0  # methods with a score term: huge joint scores stall AMSGrad unclipped (ratio.py)


@dataclass(frozen=True)
class TrainingResult:
    """What :func:`train_model` made.

    Attributes:
        name: the model's name in the config (its folder ``models/<name>/``).
        method: the estimator's class name.
        training_sets: the set name(s) it was trained on; ``("train",)``, the partition, for BIT.
        path: the saved model directory.
        estimator: the fitted estimator, ensemble or BIT.
        histories: one training history per member (one for a single estimator); empty for BIT,
            whose loss per tree is ``estimator.history_``.
        member_s: training time of each member in s; for BIT, the time of ``fit`` alone.
        wall_s: wall time of the whole training in s (for BIT including reading the events).
        n_events: events BIT was fitted on; None for the neural estimators.
        kept: the model was trained before with the same seed, settings and inputs and was kept
            (:mod:`assay.trained`); no time spent.
    """

    name: str
    method: str
    training_sets: tuple[str, ...]
    path: Path
    estimator: Estimator | Ensemble | BoostedInformationTree
    histories: tuple[History, ...]
    member_s: tuple[float, ...]
    wall_s: float
    n_events: int | None = None
    kept: bool = False

    @property
    def fit_s(self) -> float:
        """Training time in s: the slowest member (= the fit for a single estimator or BIT)."""
        return max(self.member_s)


def estimator_class(method: str) -> type[Estimator]:
    """The neural estimator class of a ``method`` name (case-insensitive class name).

    Raises:
        ConfigError: unknown name; the message lists the valid ones.

    Example:
        >>> estimator_class("alices").__name__
        'ALICES'
    """
    cls = method_class(method)
    if not issubclass(cls, Estimator):
        neural = sorted(n for n, c in METHODS.items() if issubclass(c, Estimator))
        raise ConfigError(f"method: {method!r} is not a neural estimator; valid names are {neural}")
    return cls


def build_estimator(
    model: NeuralModelConfig, *, seed: int, progress: bool = True, morpher: Morpher | None = None
) -> Estimator:
    """An unfitted estimator with the hyper-parameters of ``model``.

    ``hidden``, ``activation`` and ``alpha`` left out (None) take the method's defaults; ``alpha``
    only reaches methods with a score term (ALICES, RASCAL, CASCAL, SCANDAL), the flow settings
    (``flow``, ``transforms``, ``bins``, ``observables``, ``bounds``, ``detect_bounds``,
    ``log_positive``) only NDE and SCANDAL. ``clip_grad_norm: auto`` clips the methods with a score
    term at 1.0 and leaves the others unclipped. ``morphing_aware`` needs a likelihood-ratio method
    and the run's ``morpher``.

    Raises:
        ConfigError: ``morphing_aware`` for a method that does not estimate a likelihood ratio.
    """
    cls = estimator_class(model.method)
    morphing: dict[str, Any] = {}
    if model.morphing_aware:
        if not issubclass(cls, RatioEstimator):
            ratio_methods = sorted(n for n, c in METHODS.items() if issubclass(c, RatioEstimator))
            raise ConfigError(
                f"morphing_aware: {cls.__name__} does not estimate a likelihood ratio; "
                f"the morphing-aware network needs one of {ratio_methods}"
            )
        if morpher is None:
            raise ValueError("build_estimator: morphing_aware needs the run's morpher (basis.json)")
        morphing["morphing"] = morpher
    score_terms = getattr(cls, "uses_score", False)
    clip = model.clip_grad_norm
    if clip == "auto":
        clip = _CLIP_FOR_SCORE_TERMS if score_terms else None
    kwargs: dict[str, Any] = dict(
        epochs=model.epochs, batch_size=model.batch_size, lr=model.lr, optimizer=model.optimizer,
        validation_split=model.validation_split, early_stopping=model.early_stopping,
        patience=model.patience, clip_grad_norm=clip, device=model.device, seed=seed, progress=progress,
    )  # fmt: skip
    hidden = None if model.hidden is None else tuple(model.hidden)
    optional: dict[str, Any] = {"hidden": hidden, "activation": model.activation}
    if score_terms:
        optional["alpha"] = model.alpha
    if issubclass(cls, FlowEstimator):
        kwargs |= dict(
            flow=model.flow, transforms=model.transforms, bins=model.bins, observables=model.observables,
            bounds=model.bounds, detect_bounds=model.detect_bounds, log_positive=model.log_positive,
        )  # fmt: skip
    kwargs |= {k: v for k, v in optional.items() if v is not None}
    return cls(**kwargs, **morphing)


def _set_names(cfg: RunConfig, name: str, model: NeuralModelConfig) -> tuple[str, ...]:
    """The model's training set(s); default: the set named like the model, else like the method,
    else the only set."""
    spec, configured = model.training_set, [s.name for s in cfg.sampling.sets]
    if spec is None:
        for candidate in (name, model.method):
            if candidate in configured:
                return (candidate,)
        if len(configured) == 1:
            return (configured[0],)
        raise ConfigError(
            f"training.{name}.training_set: not set and no sampling set is named {name!r} or "
            f"{model.method!r}; choose one of {configured}"
        )
    return (spec,) if isinstance(spec, str) else tuple(spec)


def _load(run: RunDir, name: str, cls: type[Estimator]) -> tuple[TrainingSet, TrainingSet | None]:
    """``<name>_train.h5`` and, if present, ``<name>_validation.h5``, checked for the method's fields."""
    train_path, val_path = run.training_set(name, "train"), run.training_set(name, "validation")
    if not train_path.is_file():
        raise StoreError(
            f"{train_path}: training set {name!r} not found; run `assay run CONFIG` first "
            f"(with 'train' in the set's partitions)"
        )
    sets = (TrainingSet.load(train_path), TrainingSet.load(val_path) if val_path.is_file() else None)
    for data, path in zip(sets, (train_path, val_path)):
        missing = [f for f in cls.required_fields if data is not None and getattr(data, f) is None]
        if missing:
            raise ConfigError(
                f"training set {name!r} ({path}, kind {data.kind!r}) lacks the field(s) {missing} that "
                f"{cls.__name__} needs (it has {data.fields_present()}); point training_set "
                f"to a set of another kind or choose another method"
            )
    return sets


def build_bit(model: BITModelConfig, *, progress: bool = True) -> BoostedInformationTree:
    """An unfitted :class:`~assay.bit.BoostedInformationTree` with the settings of ``model``."""
    return BoostedInformationTree(
        n_trees=model.n_trees, max_depth=model.max_depth, learning_rate=model.learning_rate,
        min_size=model.min_size, min_weight=model.min_weight, positive=model.positive, progress=progress,
    )  # fmt: skip


@dataclass(frozen=True)
class BITEvents:
    """The weighted events BIT is fitted on (:func:`bit_training_events`).

    Attributes:
        x: observables ``(n_events, n_obs)``.
        weights: benchmark weights ``(n_events, n_benchmarks)`` in pb.
        morpher: the morphing basis of the weights (``basis.json``).
        theta_ref: the expansion point ``(n_params,)``.
        indices: the rows of ``events.h5``, ``(n_events,)``, sorted.
    """

    x: np.ndarray
    weights: np.ndarray
    morpher: Morpher
    theta_ref: np.ndarray
    indices: np.ndarray


def read_basis(path: Path, store: EventStore | None = None) -> Morpher:
    """The morpher of ``basis.json``, checked against the event file's morphing if given.

    Raises:
        StoreError: missing or unreadable file, or a basis other than the store's.
    """
    basis = read_json(
        path, missing="morphing basis not found; run `assay run CONFIG` first",
        unreadable="cannot read the morphing basis",
    )  # fmt: skip
    try:
        morpher = Morpher.from_dict(basis["morphing"])
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"{path}: not a morphing basis written by `assay run` ({exc!r})") from exc
    if store is not None and store.morphing is not None and basis["morphing"] != store.morphing:
        raise StoreError(
            f"{path}: the morphing basis differs from the one of {store.path}; rerun `assay run CONFIG`"
        )
    return morpher


def bit_training_events(
    cfg: RunConfig, model: BITModelConfig, output: str | os.PathLike | None = None
) -> BITEvents:
    """The train partition of ``OUTPUT/events.h5`` (``split.h5``), at most ``model.max_events``.

    A subset, when ``max_events`` asks for one, is drawn without replacement with the config's
    seed. Weights keep their scale (BIT only uses ratios of them).

    Raises:
        StoreError: ``events.h5`` or ``basis.json`` missing or unreadable, or they disagree.
    """
    events = train_events(cfg, model.max_events, output)
    theta_ref = cfg.theta(model.theta_ref, "theta_ref")
    return BITEvents(events.x, events.weights, events.morpher, theta_ref, events.indices)


@dataclass(frozen=True)
class TrainEvents:
    """Weighted events of the train partition (:func:`train_events`): x ``(n, n_obs)``, benchmark
    weights ``(n, n_benchmarks)`` pb, the basis, the rows of ``events.h5``, the column names."""

    x: np.ndarray
    weights: np.ndarray
    morpher: Morpher
    indices: np.ndarray
    benchmarks: tuple[str, ...]
    observables: tuple[str, ...]


def train_events(
    cfg: RunConfig, max_events: int | None, output: str | os.PathLike | None = None
) -> TrainEvents:
    """The train partition of ``OUTPUT/events.h5`` (``split.h5``), at most ``max_events`` (a subset
    drawn without replacement with the config's seed); weights as stored.

    These methods (BIT, the mixture model) fit on events held in memory: with ``cfg.memory_gb`` the
    events' x and weights (float64) may take at most half of it.

    Raises:
        StoreError: ``events.h5`` or ``basis.json`` missing or unreadable, or they disagree.
        ConfigError: the events exceed half of ``memory_gb`` (the message says which ``max_events`` fits).
    """
    run = RunDir(output or cfg.output)
    if not run.events.is_file():
        raise StoreError(f"{run.events}: event file not found; run `assay run CONFIG` first")
    with EventStore(run.events) as store:
        morpher = read_basis(run.basis, store)
        rows = read_split(run.split, store.n_events, cfg).train
        if max_events is not None and max_events < len(rows):
            rows = np.sort(np.random.default_rng([cfg.seed, 3]).choice(rows, max_events, replace=False))
        _check_budget(cfg.memory_gb, len(rows), 8 * (store.n_obs + store.n_benchmarks))
        events = store.take(rows, fields=("x", "weights"))
        names = (tuple(store.benchmarks), tuple(store.observables))
    return TrainEvents(events.x, events.weights, morpher, rows, *names)


def _check_budget(memory_gb: float | None, n_events: int, row_bytes: int) -> None:
    """Refuse to load ``n_events`` rows of ``row_bytes`` over :data:`~assay.streaming.STREAM_FRACTION`
    of ``memory_gb`` (the methods fitted on loaded events cannot stream)."""
    if memory_gb is None or n_events * row_bytes <= STREAM_FRACTION * memory_gb * 1e9:
        return
    fits = int(STREAM_FRACTION * memory_gb * 1e9 // row_bytes)
    raise ConfigError(
        f"max_events: the {n_events} train events take {n_events * row_bytes / 1e9:.3g} GB in memory, over "
        f"{STREAM_FRACTION:.0%} of memory_gb {memory_gb:g}; this method fits on loaded events: set "
        f"max_events <= {fits} or raise memory_gb"
    )


def _train_bit(
    cfg: RunConfig, name: str, model: BITModelConfig, run: RunDir, progress: bool
) -> TrainingResult:
    """Fit BIT on the train events (seed 002) and save it to ``models/<name>/``."""
    start = time.perf_counter()
    try:
        events = bit_training_events(cfg, model, run.root)
    except ConfigError as exc:
        raise ConfigError(f"training.{name}.{exc}") from exc
    if len(events.x) == 0:
        raise ConfigError("sampling.split.train: the train partition holds no events; BIT needs some")
    bit = build_bit(model, progress=progress)
    fit_start = time.perf_counter()
    bit.fit(events.x, events.weights, morpher=events.morpher, theta_ref=events.theta_ref)
    fit_s = time.perf_counter() - fit_start
    path = run.model(name)
    _remove_other_kind(path, ensemble=False)
    bit.save(path)
    wall = time.perf_counter() - start
    logger.info(
        "trained BIT %r on %d train events in %.1f s (fit %.1f s) → %s",
        name,
        len(events.x),
        wall,
        fit_s,
        path,
    )
    return TrainingResult(
        name, type(bit).__name__, ("train",), path, bit, (), (fit_s,), wall, n_events=len(events.x)
    )


def _train_mixture(
    cfg: RunConfig, name: str, model: MixtureModelConfig, run: RunDir, progress: bool
) -> TrainingResult:
    """Fit seed 003's mixture model on the weighted train events and save it to ``models/<name>/``."""
    start = time.perf_counter()
    try:
        events = train_events(cfg, model.max_events, run.root)
    except ConfigError as exc:
        raise ConfigError(f"training.{name}.{exc}") from exc
    if len(events.x) == 0:
        raise ConfigError(f"training.{name}: the train partition holds no events; the mixture needs them")
    mixture = MixtureModel(
        processes=model.processes, reference=model.reference, n_ensemble=model.n_ensemble,
        hidden=tuple(model.hidden), activation=model.activation, epochs=model.epochs,
        batch_size=model.batch_size, lr=model.lr, optimizer=model.optimizer,
        validation_split=model.validation_split, early_stopping=model.early_stopping,
        patience=model.patience, seed=cfg.seed, progress=progress,
    )  # fmt: skip
    previous = torch.get_num_threads()
    torch.set_num_threads(model.threads or previous)
    fit_start = time.perf_counter()
    try:
        mixture.fit(
            events.x, events.weights, morpher=events.morpher, benchmarks=events.benchmarks,
            observables=events.observables, parameters=[p.name for p in cfg.parameters],
        )  # fmt: skip
    except ConfigError as exc:
        raise ConfigError(f"training.{name}.{exc}") from exc
    finally:
        torch.set_num_threads(previous)
    fit_s = time.perf_counter() - fit_start
    path = run.model(name)
    _remove_other_kind(path, ensemble=False)
    mixture.save(path)
    if model.nuisances:
        _train_nuisance_ratios(cfg, name, model, run, events, mixture, progress)
    wall = time.perf_counter() - start
    n = len(events.x)
    logger.info("trained the mixture model %r on %d train events in %.1f s → %s", name, n, wall, path)
    histories = tuple(m.history_ for members in mixture.classifiers_.values() for m in members)
    return TrainingResult(name, "MixtureModel", ("train",), path, mixture, histories, (fit_s,), wall, n)


def _train_nuisance_ratios(
    cfg: RunConfig, name: str, model: MixtureModelConfig, run: RunDir, events: TrainEvents,
    mixture: MixtureModel, progress: bool,
) -> None:  # fmt: skip
    """The mixture model's processes' shape ratios under config.systematics, to models/<name>/nuisances/."""
    from assay.analysis.profiled import varied_weights_at
    from assay.estimators.mixture_processes import process_matrix
    from assay.estimators.nuisance_ratios import NuisanceRatios

    if cfg.systematics is None:
        raise ConfigError(f"training.{name}.nuisances: the config has no systematics section to learn")
    varied = varied_weights_at(cfg, run, events.indices, events.weights)
    _, matrix = process_matrix(mixture.processes, events.benchmarks)
    gollum = cfg.systematics.interpolation == "gollum"  # GOLLUM's cross terms, from the pairwise points
    ratios = NuisanceRatios(
        hidden=tuple(model.hidden), activation=model.activation, max_events=model.max_events,
        epochs=model.epochs, batch_size=model.batch_size, lr=model.lr, optimizer=model.optimizer,
        validation_split=model.validation_split, early_stopping=model.early_stopping,
        patience=model.patience, seed=cfg.seed, progress=progress, cross_terms=gollum,
    )  # fmt: skip
    pairs = None
    if gollum:
        from assay.analysis.systematics import point_weights
        from assay.monomials import variation_points

        n_syst = len(varied.names)
        points = variation_points(n_syst)
        at = point_weights(varied.components, varied.factors, matrix @ varied.mixing, points)
        pairs = at[:, 2 * n_syst :].reshape(len(at), -1, 4, at.shape[2])  # (n, n_pairs, ++ +- -+ --, n_proc)
    ratios.fit(events.x, events.weights @ matrix.T, varied.varied @ matrix.T, names=varied.names,
               processes=mixture.processes_, pairs=pairs)  # fmt: skip
    ratios.save(run.model(name) / "nuisances")


def _remove_other_kind(path: Path, *, ensemble: bool) -> None:
    """An earlier model of another kind (ensemble vs single) under the same name: saving would
    refuse to replace it."""
    if path.is_dir() and (path / ENSEMBLE_FILE).is_file() != ensemble:
        shutil.rmtree(path)


def _train_neural(
    cfg: RunConfig, name: str, model: NeuralModelConfig, run: RunDir, *, n_workers: int | None,
    client: Any, progress: bool,
) -> TrainingResult:  # fmt: skip
    """Train one neural estimator or ensemble on its set(s) and save it to ``models/<name>/``."""
    cls = estimator_class(model.method)
    names = _set_names(cfg, name, model)
    single = model.n_ensemble == 1
    morpher = read_basis(run.basis) if model.morphing_aware else None
    try:
        estimator = build_estimator(model, seed=cfg.seed, progress=progress and single, morpher=morpher)
    except ConfigError as exc:  # name the model: "training.<name>.morphing_aware: ..."
        raise ConfigError(f"training.{name}.{exc}") from exc
    checkpoints = run.checkpoint(name)  # per-epoch state: rerunning the same command resumes it
    plan = _plan(cfg, name, run, names, cls)
    start = time.perf_counter()
    if plan.stream:
        fitted, member_s = _fit_streamed(cfg, name, model, run, names, estimator, plan, progress)
        histories = tuple(m.history_ for m in fitted.members_) if not single else (fitted.history_,)
    else:
        fitted, histories, member_s = _fit_loaded(
            model, run, names, cls, estimator, checkpoints, n_workers=n_workers, client=client,
            progress=progress, seed=cfg.seed,
        )  # fmt: skip
    wall = time.perf_counter() - start
    path = run.model(name)
    _remove_other_kind(path, ensemble=not single)
    fitted.save(path)
    shutil.rmtree(checkpoints, ignore_errors=True)
    with contextlib.suppress(OSError):  # .checkpoints/ itself, once no other model's fit is unfinished
        checkpoints.parent.rmdir()
    logger.info("trained %s %r on %s in %.1f s → %s", cls.__name__, name, list(names), wall, path)
    return TrainingResult(name, cls.__name__, names, path, fitted, histories, tuple(member_s), wall)


def _plan(cfg: RunConfig, name: str, run: RunDir, names: tuple[str, ...], cls: type[Estimator]) -> StreamPlan:
    """Whether the model's sets stream under ``cfg.memory_gb`` (:func:`~assay.streaming.plan_streaming`),
    logged; a flow estimator over the budget is refused."""
    if cfg.memory_gb is None:
        return plan_streaming([], None)
    files = []
    for set_name in names:
        for partition in ("train", "validation"):
            path = run.training_set(set_name, partition)
            if path.is_file() or partition == "train":
                files.append(_set_file(path, set_name))
    plan = plan_streaming(files, cfg.memory_gb)
    logger.info("training.%s: %s", name, plan.reason)
    if plan.stream and issubclass(cls, FlowEstimator):
        raise ConfigError(
            f"training.{name}: {plan.reason}, but {cls.__name__} (a flow) detects the observables' bounds "
            f"from all samples and cannot stream; raise memory_gb or sample a smaller set"
        )
    return plan


def _set_file(path: Path, set_name: str) -> TrainingSetFile:
    """The header of one training-set file, with `assay run`'s advice when it is missing."""
    if not path.is_file():
        raise StoreError(
            f"{path}: training set {set_name!r} not found; run `assay run CONFIG` first "
            f"(with 'train' in the set's partitions)"
        )
    return TrainingSetFile(path)


def _fit_streamed(
    cfg: RunConfig, name: str, model: NeuralModelConfig, run: RunDir, names: tuple[str, ...],
    estimator: Estimator, plan: StreamPlan, progress: bool,
) -> tuple[Estimator | Ensemble, list[float]]:  # fmt: skip
    """Fit the estimator, or the ensemble's members one after the other, streamed from the set files.

    Members are seeded as :meth:`Ensemble.fit <assay.estimators.Ensemble.fit>` seeds them; one set
    for all members is Poisson-bootstrapped per chunk (equal in distribution to the in-memory
    bootstrap), one set per member is used as it is.
    """
    checkpoints = run.checkpoint(name)
    cls = type(estimator)
    for set_name in names:
        _check_fields(_set_file(run.training_set(set_name, "train"), set_name), set_name, cls)

    def fit(member: Estimator, i: int, bootstrap: np.random.SeedSequence | None, file: str) -> float:
        set_name = names[i] if len(names) > 1 else names[0]
        val = run.training_set(set_name, "validation")
        begin = time.perf_counter()
        fit_streamed(
            member, run.training_set(set_name, "train"), validation_path=val if val.is_file() else None,
            checkpoint=checkpoints / file, chunk_size=plan.chunk_size, bootstrap=bootstrap,
        )  # fmt: skip
        return time.perf_counter() - begin

    threads = torch.get_num_threads()
    torch.set_num_threads(model.threads or threads)
    try:
        if model.n_ensemble == 1:
            return estimator, [fit(estimator, 0, None, "estimator.pt")]
        members, seconds = [], []
        for i, child in enumerate(np.random.SeedSequence(cfg.seed).spawn(model.n_ensemble)):
            torch_seed, data_seed = child.spawn(2)  # as Ensemble.fit
            member_seed = int(torch_seed.generate_state(1)[0])
            members.append(cls(**{**estimator.get_params(), "seed": member_seed, "progress": False}))
            seconds.append(fit(members[-1], i, data_seed if len(names) == 1 else None, f"member_{i}.pt"))
            logger.info(
                "training.%s: member %d of %d streamed in %.1f s", name, i + 1, model.n_ensemble, seconds[-1]
            )
    finally:
        torch.set_num_threads(threads)
    ensemble = Ensemble(members)
    ensemble._set_fitted(members, seconds, "bootstrap" if len(names) == 1 else "sets")
    return ensemble, seconds


def _check_fields(file: TrainingSetFile, set_name: str, cls: type[Estimator]) -> None:
    """The method's fields are in the set (as :func:`_load` checks a loaded set)."""
    missing = [f for f in cls.required_fields if f not in file.fields]
    if missing:
        raise ConfigError(
            f"training set {set_name!r} ({file.path}, kind {file.kind!r}) lacks the field(s) {missing} that "
            f"{cls.__name__} needs (it has {file.fields}); point training_set "
            f"to a set of another kind or choose another method"
        )


def _fit_loaded(
    model: NeuralModelConfig, run: RunDir, names: tuple[str, ...], cls: type[Estimator], estimator: Estimator,
    checkpoints: Path, *, n_workers: int | None, client: Any, progress: bool, seed: int,
) -> tuple[Estimator | Ensemble, tuple[History, ...], tuple[float, ...]]:  # fmt: skip
    """Fit the estimator or ensemble on the sets loaded into memory (in parallel for an ensemble)."""
    data = [_load(run, set_name, cls) for set_name in names]
    single = model.n_ensemble == 1
    start = time.perf_counter()
    if single:
        previous = torch.get_num_threads()
        torch.set_num_threads(model.threads or previous)
        try:
            fitted: Estimator | Ensemble = estimator.fit(
                data[0][0], validation_set=data[0][1], checkpoint=checkpoints / "estimator.pt"
            )
        finally:
            torch.set_num_threads(previous)
        histories, member_s = (fitted.history_,), (time.perf_counter() - start,)
    else:
        validation = [val for _, val in data]
        fitted = Ensemble.from_estimator(estimator, model.n_ensemble).fit(
            [train for train, _ in data], validation_set=None if None in validation else validation,
            resampling="sets" if len(names) > 1 else "bootstrap", client=client, n_workers=n_workers,
            threads=model.threads or 1, seed=seed, progress=progress, checkpoints=checkpoints,
        )  # fmt: skip
        histories = tuple(m.history_ for m in fitted.members_)
        member_s = fitted.fit_seconds_
    return fitted, histories, tuple(member_s)


def train_model(
    cfg: RunConfig,
    name: str,
    output: str | os.PathLike | None = None,
    *,
    n_workers: int | None = None,
    client: Any = None,
    progress: bool = True,
    retrain: bool = False,
) -> TrainingResult:
    """Train the model ``training.<name>`` of ``cfg`` and save it to ``OUTPUT/models/<name>/``; a model
    saved before with the same seed, settings and inputs is kept (:mod:`assay.trained`).

    Args:
        cfg: the run configuration (``seed`` seeds the training).
        name: a key of ``cfg.training``.
        output: the run folder (default ``cfg.output``) holding ``sets/`` (for BIT: ``events.h5``,
            ``split.h5``, ``basis.json``); an earlier model of the same name is replaced.
        n_workers: Dask workers for an ensemble (default min(n_ensemble, CPU count); 1: serial).
        client: a ``dask.distributed.Client`` for the ensemble instead of a local cluster.
        progress: show progress bars.
        retrain: train even where the saved model is unchanged.

    Raises:
        ConfigError: unknown model name, or a set lacking fields the method needs.
        StoreError: a training set file (for BIT: the event file or basis) is missing or unreadable,
            or another `assay run`/`assay train` is using the folder.
    """
    if name not in cfg.training:
        raise ConfigError(
            f"model {name!r}: not in the config's training section; it names {sorted(cfg.training)}"
        )
    model, run = cfg.training[name], RunDir(output or cfg.output)
    with run.locked("train"):
        inputs = model_inputs(cfg, name, run, lambda: _set_names(cfg, name, model))
        if not retrain and unchanged(cfg, name, run, inputs):
            logger.info("%s: trained before with these settings and inputs; kept", run.model(name))
            return _kept(cfg, name, run)
        if isinstance(model, BITModelConfig):
            result = _train_bit(cfg, name, model, run, progress)
        elif isinstance(model, MixtureModelConfig):
            result = _train_mixture(cfg, name, model, run, progress)
        else:
            result = _train_neural(cfg, name, model, run, n_workers=n_workers, client=client,
                                   progress=progress)  # fmt: skip
        record = make_provenance(config=cfg, inputs=inputs)
        write_folder_provenance(result.path, record)
        return result


def train(
    cfg: RunConfig,
    output: str | os.PathLike | None = None,
    *,
    models: Sequence[str] | None = None,
    n_workers: int | None = None,
    client: Any = None,
    progress: bool = True,
    retrain: bool = False,
) -> dict[str, TrainingResult]:
    """Train every model of ``cfg.training`` (or those in ``models``), one after the other; models
    saved before with the same seed, settings and inputs are kept unless ``retrain``.

    Returns:
        name → :class:`TrainingResult`, in the config's order.

    Raises:
        ConfigError: no models configured, or an unknown name in ``models``.
    """
    names = model_names(cfg, models)
    options = dict(n_workers=n_workers, client=client, progress=progress, retrain=retrain)
    return {name: train_model(cfg, name, output, **options) for name in names}


def _kept(cfg: RunConfig, name: str, run: RunDir) -> TrainingResult:
    """The result of a model kept from an earlier run: loaded, no time spent (``kept`` True)."""
    path = run.model(name)
    estimator = load_estimator(path)
    model = cfg.training[name]
    if isinstance(estimator, Ensemble):
        histories = tuple(m.history_ for m in estimator.members_)
    elif isinstance(estimator, MixtureModel):
        histories = tuple(m.history_ for members in estimator.classifiers_.values() for m in members)
    elif isinstance(estimator, BoostedInformationTree):
        histories = ()  # its loss per tree is estimator.history_
    else:
        histories = (estimator.history_,)
    on_events = isinstance(model, BITModelConfig | MixtureModelConfig)
    sets = ("train",) if on_events else _set_names(cfg, name, model)
    return TrainingResult(name, type(estimator).__name__, sets, path, estimator, histories, (0.0,), 0.0,
                          kept=True)  # fmt: skip


def model_names(cfg: RunConfig, models: Sequence[str] | None = None) -> list[str]:
    """The models to train: ``models`` (checked against the config) or every configured one."""
    if not cfg.training:
        raise ConfigError(
            "training: no models configured; add e.g. `training: {alices: {method: alices}}` to the config"
        )
    if models is None:
        return list(cfg.training)
    unknown = [m for m in models if m not in cfg.training]
    if unknown:
        raise ConfigError(
            f"--models: unknown model(s) {unknown}; the config's training section names {list(cfg.training)}"
        )
    return list(models)
