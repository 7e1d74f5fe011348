"""The shape every torch estimator shares: hyper-parameters, ``fit``, ``save`` and loading.

An estimator's ``__init__`` stores keyword-only hyper-parameters (architecture, loss
settings and the :class:`~assay.estimators.train.Trainer` fields); ``fit`` builds a
module, fits its input standardization and trains it with the one trainer; learned state
ends in ``_`` (``net_``, ``history_``, ``observables_``, ``parameters_``). Subclasses only
say which module they train (:meth:`Estimator._build`), which arrays they need
(:meth:`Estimator._arrays`) and what they minimise (:meth:`Estimator._loss`).

A saved estimator is a directory with ``weights.pt`` (a plain ``state_dict`` of tensors,
read back with ``torch.load(..., weights_only=True)`` so no pickled code ever runs) and
``estimator.json`` (class, hyper-parameters, standardization, names, assay version, history).
"""

from __future__ import annotations

import inspect
import json
import os
import warnings
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from assay import __version__
from assay.estimators.nets import Standardizer, make_activation
from assay.estimators.prediction import PredictorBase
from assay.estimators.train import History, Trainer, seeded
from assay.exceptions import ConfigError, NotFittedError, StoreError
from assay.saving import atomic_directory, json_field, read_tagged_json
from assay.training_set import TrainingSet

if TYPE_CHECKING:
    from assay.estimators.batched import StackedLoss

__all__ = ["FORMAT", "METADATA_FILE", "WEIGHTS_FILE", "Estimator", "read_metadata"]

FORMAT = "assay.Estimator"
SCHEMA_VERSION = 1
WEIGHTS_FILE = "weights.pt"
METADATA_FILE = "estimator.json"
TRAINER_FIELDS = tuple(f.name for f in fields(Trainer))


class Estimator(PredictorBase):
    """Base class of the torch estimators (SALLY and the likelihood-ratio family).

    Predictions come from ``log_ratio`` and ``score`` (:class:`~assay.estimators.prediction.Predictor`);
    each subclass lists the ones it makes in ``predicts``.

    Args:
        n_params: number of theory parameters; None: taken from the training set
            (if given, the training set must match).
        hidden: widths of the hidden layers.
        activation: activation name (see :data:`assay.estimators.nets.ACTIVATIONS`).
        **trainer: fields of :class:`~assay.estimators.train.Trainer` (``epochs``,
            ``batch_size``, ``lr``, ``optimizer``, ``validation_split``, ``early_stopping``,
            ``patience``, ``clip_grad_norm``, ``device``, ``seed``, ``progress``).

    Raises:
        ConfigError: an unknown keyword or invalid setting (the message lists valid names).
    """

    required_fields: ClassVar[tuple[str, ...]] = ("x",)

    def __init__(
        self,
        *,
        n_params: int | None = None,
        hidden: tuple[int, ...] = (100, 100),
        activation: str = "tanh",
        **trainer: Any,
    ):
        unknown = sorted(set(trainer) - set(TRAINER_FIELDS))
        if unknown:
            valid = sorted({*_keyword_names(type(self)), *TRAINER_FIELDS})
            raise ConfigError(
                f"{type(self).__name__}: unknown argument(s) {unknown}; valid names are {valid}"
            )
        make_activation(activation)
        self.n_params = None if n_params is None else int(n_params)
        self.hidden = tuple(int(h) for h in hidden)
        self.activation = activation
        self.trainer = Trainer(**trainer)

    # ---- hyper-parameters --------------------------------------------------------------
    def _own_params(self) -> dict[str, Any]:
        """JSON-able hyper-parameters of the estimator itself (subclasses extend)."""
        return {"n_params": self.n_params, "hidden": list(self.hidden), "activation": self.activation}

    def get_params(self) -> dict[str, Any]:
        """All constructor arguments, JSON-able: ``type(est)(**est.get_params())`` is an unfitted copy."""
        return {**self._own_params(), **self.trainer.to_dict()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._own_params().items())
        return f"{type(self).__name__}({args}, epochs={self.trainer.epochs}, ...)"

    # ---- what subclasses define ---------------------------------------------------------
    def _build(self, n_obs: int, n_params: int) -> nn.Module:
        """A fresh, untrained module (weights drawn from torch's RNG)."""
        raise NotImplementedError

    def _arrays(self, data: TrainingSet) -> dict[str, np.ndarray]:
        """The arrays ``_loss`` reads from a batch, keyed by name, all ``(n_samples, ...)``."""
        raise NotImplementedError

    def _loss(self, net: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        """(total loss, named loss terms) of one batch."""
        raise NotImplementedError

    def _fitted_state(self) -> dict[str, Any]:
        """Extra JSON-able learned state saved with the estimator (subclasses extend)."""
        return {}

    def _restore_state(self, state: Mapping[str, Any]) -> None:
        """Inverse of :meth:`_fitted_state`."""

    # ---- fitting ----------------------------------------------------------------------
    def fit(
        self,
        train_set: TrainingSet,
        *,
        validation_set: TrainingSet | None = None,
        checkpoint: str | os.PathLike | None = None,
    ) -> Estimator:
        """Train on ``train_set``.

        Args:
            train_set: samples with at least :attr:`required_fields`.
            validation_set: samples for early stopping; None: hold out the trainer's
                ``validation_split`` of ``train_set``.
            checkpoint: a file for the state after every epoch; a fit interrupted there resumes
                after its last finished epoch (:meth:`Trainer.fit <assay.estimators.train.Trainer.fit>`).

        Returns:
            ``self``, fitted.

        Raises:
            ValueError: a set lacks a field this method needs, or n_params does not match.
        """
        net, arrays, validation = self._setup(train_set, validation_set)
        history = self.trainer.fit(net, self._loss, arrays, validation=validation, checkpoint=checkpoint)
        return self._set_trained(net, history, train_set)

    def _setup(
        self, train_set: TrainingSet, validation_set: TrainingSet | None
    ) -> tuple[nn.Module, dict[str, np.ndarray], dict[str, np.ndarray] | None]:
        """Checked sets → (seeded module with fitted scalers, training arrays, validation arrays)."""
        self._check_set(train_set, "train_set")
        if validation_set is not None:
            self._check_set(validation_set, "validation_set")
        n_obs, n_params = train_set.x.shape[1], len(train_set.parameters)
        if self.n_params is not None and self.n_params != n_params:
            raise ValueError(
                f"train_set has {n_params} parameters {list(train_set.parameters)}, but this "
                f"{type(self).__name__} was built with n_params={self.n_params}"
            )
        self._prepare(train_set)
        with seeded(self.trainer.seed):
            net = self._build(n_obs, n_params)
        net.fit_scalers(train_set)
        validation = self._arrays(validation_set) if validation_set is not None else None
        return net, self._arrays(train_set), validation

    def _set_trained(self, net: nn.Module, history: History, train_set: TrainingSet) -> Estimator:
        """Store the trained module and what it was trained on; returns ``self``."""
        self.history_ = history
        self.net_ = net
        self.observables_ = tuple(train_set.observables)
        self.parameters_ = tuple(train_set.parameters)
        return self

    def _stacked_loss_supported(self) -> bool:
        """Whether :meth:`_stacked_loss` returns a loss for the modules this estimator builds."""
        return False

    def _stacked_loss(self, net: nn.Module) -> StackedLoss | None:
        """The loss of several members of this estimator trained as one stacked network
        (:mod:`assay.estimators.batched`), for modules like ``net``; None: not supported."""
        return None

    def _prepare(self, train_set: TrainingSet) -> None:
        """Learn settings from the training set before the module is built (subclasses extend)."""

    def _check_set(self, data: TrainingSet, name: str) -> None:
        missing = [f for f in self.required_fields if getattr(data, f, None) is None]
        if missing:
            raise ValueError(
                f"{name}: {type(self).__name__} needs the fields {list(self.required_fields)}, but this "
                f"{data.kind!r} training set lacks {missing}; build it with the sampler for this method"
            )

    def _fitted_net(self) -> nn.Module:
        if not hasattr(self, "net_"):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet: call fit(train_set) or load_estimator(path)"
            )
        return self.net_

    def _device(self) -> torch.device:
        return next(self._fitted_net().parameters()).device

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        array = np.ascontiguousarray(array, dtype=np.float32)
        if not array.flags.writeable:  # torch cannot share read-only memory (it warns)
            array = array.copy()
        return torch.from_numpy(array).to(self._device())

    def _check_x(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        n_obs = len(self.observables_)
        if x.ndim != 2 or x.shape[1] != n_obs:
            raise ValueError(
                f"x: expected shape (n_events, {n_obs}) for {list(self.observables_)}, got {x.shape}"
            )
        return x

    # ---- persistence ------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``weights.pt`` and ``estimator.json`` into directory ``path``, atomically.

        The files are written to a temporary sibling directory which then replaces ``path``
        (:func:`~assay.saving.atomic_directory`); an existing ``path`` is replaced only if it is
        a saved estimator (or empty).

        Raises:
            NotFittedError: before ``fit``.
            StoreError: ``path`` exists and is not a saved estimator.
        """
        net = self._fitted_net()
        path = Path(path)
        scalers = {name: m.to_dict() for name, m in net.named_modules() if isinstance(m, Standardizer)}
        meta = {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "class": type(self).__name__,
            "assay_version": __version__,
            "params": self.get_params(),
            "state": {
                "n_obs": len(self.observables_),
                "n_params": len(self.parameters_),
                "observables": list(self.observables_),
                "parameters": list(self.parameters_),
                "standardization": scalers,
                **self._fitted_state(),
            },
            "history": self.history_.to_dict(),
        }
        with atomic_directory(path, markers=(METADATA_FILE,)) as tmp:
            torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, tmp / WEIGHTS_FILE)
            (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=1))
        return path

    @classmethod
    def _from_saved(cls, path: Path, meta: Mapping[str, Any]) -> Estimator:
        """Rebuild a fitted estimator from :func:`read_metadata` output and the weights file."""
        source = path / METADATA_FILE
        params = json_field(meta, "params", source, Mapping)
        try:
            est = cls(**params)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"{source}: field 'params' does not fit {cls.__name__}: {exc}") from exc
        state = json_field(meta, "state", source, Mapping)
        n_obs = json_field(state, "n_obs", source, int, "state.")
        n_params = json_field(state, "n_params", source, int, "state.")
        est.observables_ = tuple(json_field(state, "observables", source, list, "state."))
        est.parameters_ = tuple(json_field(state, "parameters", source, list, "state."))
        try:
            est.history_ = History.from_dict(json_field(meta, "history", source, Mapping))
            est._restore_state(state)
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"{source}: invalid field 'history' or 'state' ({exc!r})") from exc
        with seeded(0):
            net = est._build(n_obs, n_params)
        weights = _load_weights(path / WEIGHTS_FILE)
        try:
            net.load_state_dict(weights, strict=True)
        except RuntimeError as exc:
            raise StoreError(
                f"{path / WEIGHTS_FILE}: weights do not match the {cls.__name__} in {source}: {exc}"
            ) from exc
        est.net_ = net.eval()
        return est


def _keyword_names(cls: type) -> set[str]:
    """Keyword-only constructor arguments along the class hierarchy."""
    names = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            sig = inspect.signature(vars(klass)["__init__"])
            names |= {p.name for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY}
    return names


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The checked ``estimator.json`` of a saved estimator directory.

    Raises:
        StoreError: missing directory or file, invalid JSON, wrong format, a newer schema or no class.
    """
    source = Path(path) / METADATA_FILE
    meta = read_tagged_json(source, format=FORMAT, schema_version=SCHEMA_VERSION)
    json_field(meta, "class", source, str)
    return meta


def _load_weights(file: Path) -> dict[str, torch.Tensor]:
    """A tensor ``state_dict`` read with ``weights_only=True``; anything else is refused."""
    if not file.is_file():
        raise StoreError(f"{file}: missing weights file")
    try:
        with warnings.catch_warnings():  # torch warns about the protocol of plain pickles it then refuses
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ... here
        lines = [ln.strip() for ln in str(exc).splitlines() if "nsupported" in ln or "GLOBAL" in ln]
        raise StoreError(
            f"{file}: refused to load: not a plain tensor state_dict readable with "
            f"torch.load(weights_only=True) ({type(exc).__name__}{': ' + lines[0] if lines else ''}). "
            f"It may hold pickled code; re-save the estimator with Estimator.save"
        ) from exc
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise StoreError(
            f"{file}: refused to load: expected a dict of named tensors, got {type(state).__name__}"
        )
    return state
