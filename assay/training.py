"""From the run config's ``training`` section to a saved estimator (``assay train``).

``train(cfg)`` reads the training set(s) that ``assay run`` wrote to
``OUTPUT/sets/<set>_train.h5`` (and ``_validation.h5`` for early stopping, when present),
builds the configured estimator through the one registry
:data:`~assay.estimators.ESTIMATORS` (names case-insensitive: ``alices`` → ALICES),
trains it (an :class:`~assay.estimators.Ensemble` when ``n_ensemble > 1``, in parallel
through Dask) and saves it to ``OUTPUT/models/<method>/``.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from assay.config import RunConfig, TrainingConfig
from assay.estimators import ESTIMATORS, Ensemble, Estimator, History
from assay.estimators.ensemble import ENSEMBLE_FILE
from assay.exceptions import ConfigError, StoreError
from assay.training_set import TrainingSet

__all__ = ["MODELS_DIR", "TrainingResult", "build_estimator", "estimator_class", "train"]

logger = logging.getLogger(__name__)

MODELS_DIR = "models"
_SETS_DIR = "sets"
_CLIP_FOR_SCORE_TERMS = 1.0  # ALICES/RASCAL/CASCAL: huge joint scores stall AMSGrad unclipped (ratio.py)


@dataclass(frozen=True)
class TrainingResult:
    """What :func:`train` made.

    Attributes:
        method: the estimator's class name.
        training_sets: the set name(s) it was trained on.
        path: the saved model directory.
        estimator: the fitted estimator or ensemble.
        histories: one training history per member (one for a single estimator).
        member_s: training time of each member in s.
        wall_s: wall time of the whole training in s.
    """

    method: str
    training_sets: tuple[str, ...]
    path: Path
    estimator: Estimator | Ensemble
    histories: tuple[History, ...]
    member_s: tuple[float, ...]
    wall_s: float


def estimator_class(method: str) -> type[Estimator]:
    """The estimator class of a config's ``training.method`` (case-insensitive class name).

    Raises:
        ConfigError: unknown name; the message lists the valid ones.

    Example:
        >>> estimator_class("alices").__name__
        'ALICES'
    """
    methods = {name.lower(): cls for name, cls in ESTIMATORS.items()}
    try:
        return methods[method.lower()]
    except KeyError:
        raise ConfigError(
            f"training.method: unknown method {method!r}; valid names are {sorted(methods)}"
        ) from None


def build_estimator(training: TrainingConfig, *, seed: int, progress: bool = True) -> Estimator:
    """An unfitted estimator with the hyper-parameters of ``training``.

    ``alpha`` only reaches score-augmented methods (ALICES, RASCAL, CASCAL); ``clip_grad_norm:
    auto`` clips those at 1.0 and leaves the others unclipped.
    """
    cls = estimator_class(training.method)
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
    return cls(**kwargs)


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
        output: the run folder (default ``cfg.output``) holding ``sets/``; the model goes to
            ``models/<method>/`` there, replacing an earlier one.
        n_workers: Dask workers for an ensemble (default min(n_ensemble, CPU count); 1: serial).
        client: a ``dask.distributed.Client`` for the ensemble instead of a local cluster.
        progress: show progress bars.

    Returns:
        :class:`TrainingResult`.

    Raises:
        ConfigError: unknown method or set name, or a set lacking fields the method needs.
        StoreError: a training set file is missing or unreadable.
    """
    training = cfg.training
    out = Path(output or cfg.output)
    cls = estimator_class(training.method)
    names = _set_names(cfg)
    data = [_load(out / _SETS_DIR, name, cls) for name in names]
    single = training.n_ensemble == 1
    estimator = build_estimator(training, seed=cfg.seed, progress=progress and single)
    start = time.perf_counter()
    if single:
        previous = torch.get_num_threads()
        torch.set_num_threads(training.threads or previous)
        try:
            model: Estimator | Ensemble = estimator.fit(data[0][0], validation_set=data[0][1])
        finally:
            torch.set_num_threads(previous)
        histories, member_s = (model.history_,), (time.perf_counter() - start,)
    else:
        validation = [val for _, val in data]
        model = Ensemble.from_estimator(estimator, training.n_ensemble).fit(
            [train for train, _ in data], validation_set=None if None in validation else validation,
            resampling="sets" if len(names) > 1 else "bootstrap", client=client, n_workers=n_workers,
            threads=training.threads or 1, seed=cfg.seed, progress=progress,
        )  # fmt: skip
        histories = tuple(m.history_ for m in model.members_)
        member_s = model.fit_seconds_
    wall = time.perf_counter() - start
    path = out / MODELS_DIR / cls.__name__.lower()
    if single and (path / ENSEMBLE_FILE).is_file():
        shutil.rmtree(path)  # an earlier ensemble of this method: Estimator.save would refuse to replace it
    model.save(path)
    logger.info("trained %s on %s in %.1f s → %s", cls.__name__, list(names), wall, path)
    return TrainingResult(cls.__name__, names, path, model, histories, tuple(member_s), wall)
