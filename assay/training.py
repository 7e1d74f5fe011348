"""From the run config's ``training`` section to a saved estimator (``assay train``).

``train(cfg)`` reads the training set(s) that ``assay run`` wrote to
``OUTPUT/sets/<set>_train.h5`` (and ``_validation.h5`` for early stopping, when present),
builds the configured estimator through the one registry
:data:`~assay.estimators.ESTIMATORS` (names case-insensitive: ``alices`` → ALICES),
trains it (an :class:`~assay.estimators.Ensemble` when ``n_ensemble > 1``, in parallel
through Dask) and saves it to ``OUTPUT/models/<method>/``. While it trains, every estimator
(or member) writes its state after each epoch to ``OUTPUT/models/.checkpoints/<method>/``; the
same command run again after an interruption resumes there (deleted once the model is saved).

``method: bit`` fits a :class:`~assay.bit.BoostedInformationTree` (seed 002) instead, on the
weighted events of the train partition (``events.h5`` rows listed in ``split.h5``) with the
morphing basis of ``basis.json``, and saves it as JSON to ``OUTPUT/models/bit/``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from assay.bit import BoostedInformationTree
from assay.config import RunConfig, TrainingConfig
from assay.estimators import ESTIMATORS, Ensemble, Estimator, History
from assay.estimators.ensemble import ENSEMBLE_FILE
from assay.estimators.ratio import RatioEstimator
from assay.exceptions import ConfigError, StoreError
from assay.morphing import Morpher
from assay.pipeline import _split
from assay.saving import read_json
from assay.store import EventStore
from assay.training_set import TrainingSet

__all__ = [
    "BIT_METHOD",
    "MODELS_DIR",
    "BITEvents",
    "TrainingResult",
    "bit_training_events",
    "build_bit",
    "build_estimator",
    "estimator_class",
    "train",
]

logger = logging.getLogger(__name__)

MODELS_DIR = "models"
CHECKPOINTS_DIR = ".checkpoints"  # under MODELS_DIR: the per-epoch state of unfinished fits
BIT_METHOD = "bit"  # training.method of Boosted Information Trees; models/bit/
_SETS_DIR = "sets"
_CLIP_FOR_SCORE_TERMS = 1.0  # ALICES/RASCAL/CASCAL: huge joint scores stall AMSGrad unclipped (ratio.py)


@dataclass(frozen=True)
class TrainingResult:
    """What :func:`train` made.

    Attributes:
        method: the estimator's class name.
        training_sets: the set name(s) it was trained on; ``("train",)``, the partition, for BIT.
        path: the saved model directory.
        estimator: the fitted estimator, ensemble or BIT.
        histories: one training history per member (one for a single estimator); empty for BIT,
            whose loss per tree is ``estimator.history_``.
        member_s: training time of each member in s; for BIT, the time of ``fit`` alone.
        wall_s: wall time of the whole training in s (for BIT including reading the events).
        n_events: events BIT was fitted on; None for the neural estimators.
    """

    method: str
    training_sets: tuple[str, ...]
    path: Path
    estimator: Estimator | Ensemble | BoostedInformationTree
    histories: tuple[History, ...]
    member_s: tuple[float, ...]
    wall_s: float
    n_events: int | None = None

    @property
    def fit_s(self) -> float:
        """Training time in s: the slowest member (= the fit for a single estimator or BIT)."""
        return max(self.member_s)


def estimator_class(method: str) -> type[Estimator]:
    """The estimator class of a config's ``training.method`` (case-insensitive class name).

    Raises:
        ConfigError: unknown name; the message lists the valid ones.

    Example:
        >>> estimator_class("alices").__name__
        'ALICES'
    """
    methods = {name.lower(): cls for name, cls in ESTIMATORS.items()}
    if method.lower() == BIT_METHOD:
        raise ConfigError("training.method: 'bit' is not a neural estimator class; build it with build_bit")
    try:
        return methods[method.lower()]
    except KeyError:
        raise ConfigError(
            f"training.method: unknown method {method!r}; valid names are {sorted([*methods, BIT_METHOD])}"
        ) from None


def build_estimator(
    training: TrainingConfig, *, seed: int, progress: bool = True, morpher: Morpher | None = None
) -> Estimator:
    """An unfitted estimator with the hyper-parameters of ``training``.

    ``alpha`` only reaches score-augmented methods (ALICES, RASCAL, CASCAL); ``clip_grad_norm:
    auto`` clips those at 1.0 and leaves the others unclipped. ``morphing_aware`` needs a
    likelihood-ratio method and the run's ``morpher``.

    Raises:
        ConfigError: ``morphing_aware`` for a method that does not estimate a likelihood ratio.
    """
    cls = estimator_class(training.method)
    morphing: dict[str, Any] = {}
    if training.morphing_aware:
        if not issubclass(cls, RatioEstimator):
            ratio_methods = sorted(n.lower() for n, c in ESTIMATORS.items() if issubclass(c, RatioEstimator))
            raise ConfigError(
                f"training.morphing_aware: {cls.__name__} does not estimate a likelihood ratio; "
                f"the morphing-aware network needs one of {ratio_methods}"
            )
        if morpher is None:
            raise ValueError("build_estimator: morphing_aware needs the run's morpher (basis.json)")
        morphing["morphing"] = morpher
    score_terms = getattr(cls, "uses_score", False)
    clip = training.clip_grad_norm
    if clip == "auto":
        clip = _CLIP_FOR_SCORE_TERMS if score_terms else None
    kwargs: dict[str, Any] = dict(
        hidden=tuple(training.hidden), activation=training.activation, epochs=training.epochs,
        batch_size=training.batch_size, lr=training.lr, optimizer=training.optimizer,
        validation_split=training.validation_split, early_stopping=training.early_stopping,
        patience=training.patience, clip_grad_norm=clip, device=training.device, seed=seed, progress=progress,
    )  # fmt: skip
    if score_terms:
        kwargs["alpha"] = training.alpha
    return cls(**kwargs, **morphing)


def _set_names(cfg: RunConfig) -> tuple[str, ...]:
    """The configured training set name(s); default: the set named like the method, or the only set."""
    spec, configured = cfg.training.training_set, [s.name for s in cfg.sampling.sets]
    if spec is None:
        if cfg.training.method.lower() in configured:
            return (cfg.training.method.lower(),)
        if len(configured) == 1:
            return (configured[0],)
        raise ConfigError(
            f"training.training_set: not set and no sampling set is named {cfg.training.method.lower()!r}; "
            f"choose one of {configured}"
        )
    names = (spec,) if isinstance(spec, str) else tuple(spec)
    unknown = [n for n in names if n not in configured]
    if unknown:
        raise ConfigError(f"training.training_set: unknown set(s) {unknown}; sampling.sets has {configured}")
    return names


def _load(folder: Path, name: str, cls: type[Estimator]) -> tuple[TrainingSet, TrainingSet | None]:
    """``<name>_train.h5`` and, if present, ``<name>_validation.h5``, checked for the method's fields."""
    train_path, val_path = folder / f"{name}_train.h5", folder / f"{name}_validation.h5"
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
                f"{cls.__name__} needs (it has {data.fields_present()}); point training.training_set "
                f"to a set of another kind or choose another method"
            )
    return sets


def build_bit(training: TrainingConfig, *, progress: bool = True) -> BoostedInformationTree:
    """An unfitted :class:`~assay.bit.BoostedInformationTree` with the settings of ``training.bit``."""
    bit = training.bit
    return BoostedInformationTree(
        n_trees=bit.n_trees, max_depth=bit.max_depth, learning_rate=bit.learning_rate,
        min_size=bit.min_size, min_weight=bit.min_weight, positive=bit.positive, progress=progress,
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


def _read_basis(path: Path, store: EventStore | None = None) -> Morpher:
    """The morpher of ``basis.json``, checked against the event file's morphing if given."""
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


def bit_training_events(cfg: RunConfig, output: str | os.PathLike | None = None) -> BITEvents:
    """The train partition of ``OUTPUT/events.h5`` (``split.h5``), at most ``training.bit.max_events``.

    A subset, when ``max_events`` asks for one, is drawn without replacement with the config's
    seed. Weights keep their scale (BIT only uses ratios of them).

    Raises:
        StoreError: ``events.h5`` or ``basis.json`` missing or unreadable, or they disagree.
    """
    out = Path(output or cfg.output)
    path = out / "events.h5"
    if not path.is_file():
        raise StoreError(f"{path}: event file not found; run `assay run CONFIG` first")
    with EventStore(path) as store:
        morpher = _read_basis(out / "basis.json", store)
        rows = _split(out / "split.h5", store.n_events, cfg).train
        limit = cfg.training.bit.max_events
        if limit is not None and limit < len(rows):
            rows = np.sort(np.random.default_rng([cfg.seed, 3]).choice(rows, limit, replace=False))
        events = store.take(rows, fields=("x", "weights"))
    theta_ref = cfg.theta(cfg.training.bit.theta_ref, "training.bit.theta_ref")
    return BITEvents(events.x, events.weights, morpher, theta_ref, rows)


def _train_bit(cfg: RunConfig, out: Path, progress: bool) -> TrainingResult:
    """Fit BIT on the train events (seed 002) and save it to ``out/models/bit/``."""
    start = time.perf_counter()
    events = bit_training_events(cfg, out)
    if len(events.x) == 0:
        raise ConfigError("sampling.split.train: the train partition holds no events; BIT needs some")
    bit = build_bit(cfg.training, progress=progress)
    fit_start = time.perf_counter()
    bit.fit(events.x, events.weights, morpher=events.morpher, theta_ref=events.theta_ref)
    fit_s = time.perf_counter() - fit_start
    path = bit.save(out / MODELS_DIR / BIT_METHOD)
    wall = time.perf_counter() - start
    logger.info(
        "trained BIT on %d train events in %.1f s (fit %.1f s) → %s", len(events.x), wall, fit_s, path
    )
    return TrainingResult(
        type(bit).__name__, ("train",), path, bit, (), (fit_s,), wall, n_events=len(events.x)
    )


def train(
    cfg: RunConfig,
    output: str | os.PathLike | None = None,
    *,
    n_workers: int | None = None,
    client: Any = None,
    progress: bool = True,
) -> TrainingResult:
    """Train the estimator of ``cfg.training`` on the sets in ``output`` and save it.

    Args:
        cfg: the run configuration (``training`` section; ``seed`` seeds the training).
        output: the run folder (default ``cfg.output``) holding ``sets/`` (for BIT: ``events.h5``,
            ``split.h5``, ``basis.json``); the model goes to ``models/<method>/`` there, replacing
            an earlier one.
        n_workers: Dask workers for an ensemble (default min(n_ensemble, CPU count); 1: serial).
        client: a ``dask.distributed.Client`` for the ensemble instead of a local cluster.
        progress: show progress bars.

    Returns:
        :class:`TrainingResult`.

    Raises:
        ConfigError: unknown method or set name, or a set lacking fields the method needs.
        StoreError: a training set file (for BIT: the event file or basis) is missing or unreadable.
    """
    training = cfg.training
    out = Path(output or cfg.output)
    if training.is_bit():
        return _train_bit(cfg, out, progress)
    cls = estimator_class(training.method)
    names = _set_names(cfg)
    data = [_load(out / _SETS_DIR, name, cls) for name in names]
    single = training.n_ensemble == 1
    morpher = _read_basis(out / "basis.json") if training.morphing_aware else None
    estimator = build_estimator(training, seed=cfg.seed, progress=progress and single, morpher=morpher)
    # per-epoch state of the unfinished fit: rerunning the same command resumes it
    checkpoints = (out / MODELS_DIR / CHECKPOINTS_DIR / cls.__name__.lower()).absolute()  # for any worker
    start = time.perf_counter()
    if single:
        previous = torch.get_num_threads()
        torch.set_num_threads(training.threads or previous)
        try:
            model: Estimator | Ensemble = estimator.fit(
                data[0][0], validation_set=data[0][1], checkpoint=checkpoints / "estimator.pt"
            )
        finally:
            torch.set_num_threads(previous)
        histories, member_s = (model.history_,), (time.perf_counter() - start,)
    else:
        validation = [val for _, val in data]
        model = Ensemble.from_estimator(estimator, training.n_ensemble).fit(
            [train for train, _ in data], validation_set=None if None in validation else validation,
            resampling="sets" if len(names) > 1 else "bootstrap", client=client, n_workers=n_workers,
            threads=training.threads or 1, seed=cfg.seed, progress=progress, checkpoints=checkpoints,
        )  # fmt: skip
        histories = tuple(m.history_ for m in model.members_)
        member_s = model.fit_seconds_
    wall = time.perf_counter() - start
    path = out / MODELS_DIR / cls.__name__.lower()
    if single and (path / ENSEMBLE_FILE).is_file():
        shutil.rmtree(path)  # an earlier ensemble of this method: Estimator.save would refuse to replace it
    model.save(path)
    shutil.rmtree(checkpoints, ignore_errors=True)
    with contextlib.suppress(OSError):  # .checkpoints/ itself, once no other method's fit is unfinished
        checkpoints.parent.rmdir()
    logger.info("trained %s on %s in %.1f s → %s", cls.__name__, list(names), wall, path)
    return TrainingResult(cls.__name__, names, path, model, histories, tuple(member_s), wall)
