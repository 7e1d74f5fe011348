"""Search-oriented mixture model: one density-ratio classifier per physics process, analytic in θ (seed 003).

ATLAS's neural simulation-based inference (seed 003, "Search-Oriented Mixture Model") writes the
density at θ as a mixture of process densities p_j with coefficients from the theory model,

    p(x|θ) / p_ref(x) = Σ_j f_j(θ) ν_j r_j(x) / ν(θ),   r_j = p_j / p_ref,   ν(θ) = Σ_j f_j(θ) ν_j,

and estimates each r_j with its own classifier of process j against a reference density p_ref
(:class:`~assay.estimators.mixture_classifier.ProcessClassifier`): no network is parameterised in
θ, yet the ratio is known at every θ.

Here the processes are linear combinations of a run's benchmark weights, W_j(z) = Σ_k P_jk W_k(z)
with an invertible P, so that with the morphing weights c_k(θ) (:class:`~assay.morphing.Morpher`)

    w(z|θ) = Σ_k c_k(θ) W_k(z) = Σ_j f_j(θ) W_j(z),   f_j(θ) = Σ_k c_k(θ) (P⁻¹)_kj,

and ν_j = Σ_events W_j (cross sections; the luminosity cancels). By default P = 1: the processes
are the benchmarks, each a positive density. Seed 003's off-shell Higgs example,
w(μ) = μ w_S + √μ w_I + w_B with benchmarks μ = 0, 1, 4, takes S = (W_4 − 2 W_1 + W_0)/2,
SBI = W_1 and B = W_0, giving f_S = μ − √μ, f_SBI = √μ, f_B = 1 − √μ. A classifier estimates a
positive ratio, so every process must have a positive net density (the interference alone is not a
process; S, SBI and B are).

p_ref is by default the sum of the processes' weights (seed 003 "Reference Sample":
Σ_k ν_k p_k / Σ_k ν_k), or one named process (seed 003 uses p_S), whose ratio is 1 and which needs
no classifier. Uncertainty (seed 003 "Quantifying uncertainty on estimated density ratio",
w_i → w_i · Pois(1)): ``n_ensemble`` members; member m of every classifier trains on the same
Poisson(1) replica of the events (:func:`~assay.estimators.ensemble.poisson_bootstrap`). The
prediction is the mixture of the ensemble-averaged r̂_j (seed 003: the ensemble average is the
final prediction); its ``std`` is the spread of the members' own log ratios. The ν_j are the full
sample's. Where an estimate makes Σ_j f_j ν_j r̂_j ≤ floor · ν(θ) (possible when some f_j(θ) < 0)
it is clipped there, counted (``n_clipped_``) and warned about (:class:`ClippedRatioWarning`).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from assay import __version__
from assay.estimators.base import TRAINER_FIELDS, read_metadata
from assay.estimators.ensemble import poisson_bootstrap
from assay.estimators.mixture_processes import (
    ProcessClassifier,
    ProcessSpec,
    check_processes,
    classification_set,
    process_coefficients,
    process_matrix,
)
from assay.estimators.nets import make_activation
from assay.estimators.prediction import RATIO_FLOOR, Prediction, PredictorBase, as_point
from assay.estimators.train import Trainer
from assay.exceptions import ConfigError, NotFittedError, StoreError
from assay.morphing import Morpher, as_thetas
from assay.saving import atomic_directory, json_field, read_tagged_json
from assay.training_set import TrainingSet

__all__ = [
    "METADATA_FILE",
    "ClippedRatioWarning",
    "MixtureModel",
    "mixture_log_ratio",
]

FORMAT = "assay.MixtureModel"
SCHEMA_VERSION = 1
METADATA_FILE = "mixture.json"


class ClippedRatioWarning(UserWarning):
    """Some Σ_j f_j(θ) ν_j r̂_j(x) fell below ``floor`` · ν(θ) and were clipped there."""


def mixture_log_ratio(
    ratios: np.ndarray, f: np.ndarray, f_ref: np.ndarray, nu: np.ndarray, *, floor: float = RATIO_FLOOR
) -> tuple[np.ndarray, int]:
    """log p(x|θ)/p(x|θ_ref) from the process ratios r_j = p_j/p_ref (seed 003 mixture model).

    log r = log[Σ_j f_j(θ) ν_j r_j(x) / ν(θ)] − log[Σ_j f_j(θ_ref) ν_j r_j(x) / ν(θ_ref)], each mixture
    clipped below at ``floor`` (the p/p_ref it stands for).

    Args:
        ratios: r_j(x) ``(n_processes, n_events)``.
        f: f_j(θ) ``(n_theta, n_processes)``.
        f_ref: f_j(θ_ref) ``(n_processes,)``.
        nu: ν_j ``(n_processes,)``, e.g. in pb.
        floor: the smallest p(x|θ)/p_ref(x) allowed.

    Returns:
        (log r ``(n_theta, n_events)``, the number of clipped (θ, event) pairs, θ_ref's included).

    Raises:
        ValueError: ν(θ) ≤ 0 at some θ (an unphysical point of the theory model).
    """
    log_p, clipped = _log_mixture(ratios, f, nu, floor)
    log_p_ref, clipped_ref = _log_mixture(ratios, f_ref[None], nu, floor)
    return log_p - log_p_ref, clipped + clipped_ref


def _log_mixture(ratios: np.ndarray, f: np.ndarray, nu: np.ndarray, floor: float) -> tuple[np.ndarray, int]:
    """log p(x|θ)/p_ref(x) ``(n_theta, n_events)`` and the number of clipped entries."""
    total = f @ nu
    if not np.all(total > 0):
        bad = int(np.argmin(total))
        raise ValueError(
            f"theta: the total rate ν(θ) = Σ_j f_j(θ) ν_j is {total[bad]:.4g} ≤ 0 at point {bad} "
            f"(f = {f[bad].tolist()}, ν = {nu.tolist()}): not a physical point of this mixture"
        )
    mix = (f * nu) @ ratios / total[:, None]
    low = ~(mix > floor)
    return np.log(np.where(low, floor, mix)), int(low.sum())


class MixtureModel(PredictorBase):
    """Seed 003's search-oriented mixture model: log r̂(x|θ, θ_ref) from one classifier per process.

    Args:
        processes: name → {benchmark: coefficient} or a benchmark name, one process per benchmark
            (module docstring); None: the benchmarks.
        reference: the process whose density is p_ref; None: the sum of all processes.
        n_ensemble: Poisson-bootstrap members per classifier.
        hidden: widths of each classifier's hidden layers.
        activation: activation name (:data:`assay.estimators.nets.ACTIVATIONS`).
        floor: the smallest p(x|θ)/p_ref(x) allowed (> 0); below it estimates are clipped.
        **trainer: :class:`~assay.estimators.train.Trainer` fields (``epochs``, ``batch_size``,
            ``lr``, ``patience``, ``seed``, ``progress``, ...); ``seed`` seeds every member.

    Raises:
        ConfigError: an unknown keyword or an invalid setting.

    Example:
        >>> MixtureModel(processes={"S": {"k2": 0.5, "k1": -1, "k0": 0.5}, "SBI": "k1", "B": "k0"},
        ...              reference="S", epochs=5).reference
        'S'
    """

    predicts: ClassVar[frozenset[str]] = frozenset({"log_ratio"})

    def __init__(
        self,
        *,
        processes: Mapping[str, ProcessSpec] | None = None,
        reference: str | None = None,
        n_ensemble: int = 5,
        hidden: Sequence[int] = (64, 64),
        activation: str = "relu",
        floor: float = RATIO_FLOOR,
        **trainer: Any,
    ):
        unknown = sorted(set(trainer) - set(TRAINER_FIELDS))
        if unknown:
            valid = sorted({"processes", "reference", "n_ensemble", "hidden", "activation", "floor",
                            *TRAINER_FIELDS})  # fmt: skip
            raise ConfigError(f"MixtureModel: unknown argument(s) {unknown}; valid names are {valid}")
        self.processes = None if processes is None else check_processes(processes)
        if reference is not None and self.processes is not None and reference not in self.processes:
            raise ConfigError(
                f"reference: unknown process {reference!r}; valid names are {list(self.processes)}"
            )
        if int(n_ensemble) < 1:
            raise ConfigError(f"n_ensemble: expected an integer >= 1, got {n_ensemble!r}")
        if not (np.isfinite(floor) and 0 < floor < 1):
            raise ConfigError(f"floor: expected a number in (0, 1), got {floor!r}")
        make_activation(activation)
        self.reference = reference
        self.n_ensemble = int(n_ensemble)
        self.hidden = tuple(int(h) for h in hidden)
        self.activation = activation
        self.floor = float(floor)
        self.trainer = Trainer(**trainer)

    def get_params(self) -> dict[str, Any]:
        """All constructor arguments, JSON-able."""
        own = {"processes": self.processes, "reference": self.reference, "n_ensemble": self.n_ensemble,
               "hidden": list(self.hidden), "activation": self.activation, "floor": self.floor}  # fmt: skip
        return {**own, **self.trainer.to_dict()}

    def __repr__(self) -> str:
        names = list(self.processes) if self.processes is not None else "benchmarks"
        return f"MixtureModel(processes={names}, reference={self.reference!r}, n_ensemble={self.n_ensemble})"

    # ---- fitting ----------------------------------------------------------------------
    def fit(
        self,
        x: np.ndarray,
        weights: np.ndarray,
        *,
        morpher: Morpher,
        benchmarks: Sequence[str],
        observables: Sequence[str],
        parameters: Sequence[str],
        validation: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> MixtureModel:
        """Train ``n_ensemble`` members of one classifier per process (the reference's excepted).

        Args:
            x: events ``(n_events, n_obs)``.
            weights: their benchmark weights W_k ``(n_events, n_benchmarks)``, e.g. in pb; may be negative.
            morpher: c_k(θ) of the same benchmarks, in the same order.
            benchmarks: names of the weight columns ``(n_benchmarks,)``.
            observables: names of the columns of x ``(n_obs,)``.
            parameters: names of the columns of θ ``(n_params,)``.
            validation: (x, weights) for early stopping; None: the trainer's ``validation_split``.

        Returns:
            ``self``, with ``processes_``, ``process_matrix_``, ``nu_`` (ν_j, units of the weights),
            ``n_eff_`` (N_eff = (Σ W_j)²/Σ W_j² of each process's training events),
            ``morpher_``, ``classifiers_`` (process name → members).

        Raises:
            ConfigError: see :func:`process_matrix`; an unknown reference.
            ValueError: wrong shapes, NaN or infinite values, Σ W_j ≤ 0 for a process, a morpher
                that does not match ``benchmarks`` or ``parameters``.
        """
        self.__dict__.pop("classifiers_", None)  # a failed refit leaves the model unfitted, not mixed
        names, matrix = process_matrix(self.processes, benchmarks)
        if self.reference is not None and self.reference not in names:
            raise ConfigError(f"reference: unknown process {self.reference!r}; valid names are {list(names)}")
        if morpher.n_benchmarks != len(names) or morpher.n_params != len(parameters):
            raise ValueError(
                f"morpher: has {morpher.n_benchmarks} benchmarks and {morpher.n_params} parameters, expected "
                f"{len(names)} ({list(benchmarks)}) and {len(parameters)} ({list(parameters)})"
            )
        x, weights = _check_events(x, weights, len(observables), len(names), "")
        proc = weights @ matrix.T
        nu = proc.sum(axis=0)
        if not np.all(nu > 0):
            bad = [f"{n}: {v:.4g}" for n, v in zip(names, nu) if not v > 0]
            raise ValueError(f"weights: Σ W_j over the events must be > 0 for every process, got {bad}")
        self.processes_, self.process_matrix_, self.nu_, self.morpher_ = names, matrix, nu, morpher
        self.n_eff_ = nu**2 / np.sum(proc**2, axis=0)
        self.benchmarks_, self.observables_ = tuple(benchmarks), tuple(observables)
        self.parameters_ = tuple(parameters)
        ref = self._reference_weights(proc)
        val_sets = self._validation_sets(validation)
        members: dict[str, list[ProcessClassifier]] = {n: [] for n in self._trained()}
        events = TrainingSet(x=x, observables=self.observables_, parameters=(), kind="plain")
        for seed in np.random.SeedSequence(self.trainer.seed).spawn(self.n_ensemble):
            boot, init = seed.spawn(2)  # member m: one Poisson replica of the events for every process
            counts = poisson_bootstrap(events, np.random.default_rng(boot)).sample_weight
            params = {**self.trainer.to_dict(), "seed": int(init.generate_state(1)[0])}
            for name in members:
                train = classification_set(
                    x, proc[:, names.index(name)], ref, observables=self.observables_, counts=counts
                )
                clf = ProcessClassifier(hidden=self.hidden, activation=self.activation, **params)
                members[name].append(clf.fit(train, validation_set=val_sets.get(name)))
        self.classifiers_ = {n: tuple(m) for n, m in members.items()}
        return self

    def _trained(self) -> list[str]:
        """The processes that get a classifier (all but a reference process)."""
        return [n for n in self.processes_ if n != self.reference]

    def _reference_weights(self, proc: np.ndarray) -> np.ndarray:
        """W_ref ``(n_events,)`` from the process weights ``(n_events, n_processes)``."""
        return proc.sum(axis=1) if self.reference is None else proc[:, self.processes_.index(self.reference)]

    def _validation_sets(self, validation: tuple[np.ndarray, np.ndarray] | None) -> dict[str, TrainingSet]:
        """Per trained process, the classification set of the validation events (none: empty)."""
        if validation is None:
            return {}
        x, weights = _check_events(*validation, len(self.observables_), len(self.processes_), "validation")
        proc = weights @ self.process_matrix_.T
        ref = self._reference_weights(proc)
        return {
            name: classification_set(
                x, proc[:, self.processes_.index(name)], ref, observables=self.observables_
            )
            for name in self._trained()
        }

    # ---- predictions --------------------------------------------------------------------
    def _fitted(self) -> None:
        if not hasattr(self, "classifiers_"):
            raise NotFittedError(
                "this MixtureModel is not fitted yet: call fit(...) or MixtureModel.load(path)"
            )

    def _member_log_ratios(self, x: np.ndarray) -> np.ndarray:
        """log r̂_j(x) of every member ``(n_ensemble, n_processes, n_events)`` (0 for a reference process)."""
        self._fitted()
        x = np.asarray(x, dtype=float)
        if x.ndim != 2 or x.shape[1] != len(self.observables_) or not np.isfinite(x).all():
            raise ValueError(
                f"x: expected finite values of shape (n_events, {len(self.observables_)}) for "
                f"{list(self.observables_)}, got shape {x.shape}"
            )
        out = np.zeros((self.n_ensemble, len(self.processes_), len(x)))
        for name, members in self.classifiers_.items():
            j = self.processes_.index(name)
            for m, clf in enumerate(members):
                out[m, j] = clf.log_density_ratio(x)
        return out

    def member_log_ratios(self, x: np.ndarray) -> np.ndarray:
        """ln r̂_j(x) of every member ``(n_ensemble, n_processes, n_events)`` (0 for a reference process)."""
        return self._member_log_ratios(x)

    def process_ratios(self, x: np.ndarray) -> Prediction:
        """r̂_j(x) = p̂_j(x)/p̂_ref(x), the ensemble mean and std (1 and 0 for a reference process).

        Args:
            x: events ``(n_events, n_obs)``.

        Returns:
            :class:`~assay.estimators.prediction.Prediction`, ``mean`` and ``std (n_processes, n_events)``.
        """
        return Prediction.from_members(list(np.exp(self._member_log_ratios(x))))

    def coefficients(self, theta: np.ndarray) -> np.ndarray:
        """f_j(θ) ``(n_theta, n_processes)`` for θ ``(n_theta, n_params)`` or ``(n_params,)``."""
        self._fitted()
        return process_coefficients(self.morpher_, self.process_matrix_, theta)

    def log_ratio(self, x: np.ndarray, theta: np.ndarray, theta_ref: np.ndarray) -> Prediction:
        """log r̂(x|θ, θ_ref) = log p̂(x|θ) − log p̂(x|θ_ref) (seed 003; :func:`mixture_log_ratio`).

        Args:
            x: events ``(n_events, n_obs)``.
            theta: ``(n_theta, n_params)`` or ``(n_params,)``.
            theta_ref: one point ``(n_params,)``.

        Returns:
            ``mean (n_theta, n_events)`` from the ensemble-averaged r̂_j; ``std`` over the members'
            own log ratios (None for ``n_ensemble = 1``). Sets ``n_clipped_``, the number of clipped
            (θ, event) pairs of the mean, and warns (:class:`ClippedRatioWarning`) if any.

        Raises:
            NotFittedError: before ``fit``.
            ValueError: wrong shapes, or ν(θ) ≤ 0.
        """
        log_r = self._member_log_ratios(x)
        f = self.coefficients(as_thetas(theta, len(self.parameters_)))
        f_ref = self.coefficients(as_point(theta_ref, len(self.parameters_), "theta_ref"))[0]
        mean, clipped = mixture_log_ratio(np.exp(log_r).mean(axis=0), f, f_ref, self.nu_, floor=self.floor)
        self.n_clipped_ = clipped
        if clipped:
            warnings.warn(
                f"MixtureModel: Σ_j f_j(θ) ν_j r̂_j(x) ≤ {self.floor:g} ν(θ) for {clipped} of "
                f"{mean.size + mean.shape[1]} (θ, event) pairs (θ_ref's included): clipped there",
                ClippedRatioWarning,
                stacklevel=2,
            )
        if self.n_ensemble == 1:
            return Prediction(mean)
        members = [mixture_log_ratio(np.exp(r), f, f_ref, self.nu_, floor=self.floor)[0] for r in log_r]
        return Prediction(mean, np.std(members, axis=0))

    # ---- persistence ------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``mixture.json`` and one saved classifier per member (``<process index>_<member>/``)
        into directory ``path``, atomically (:func:`~assay.saving.atomic_directory`).

        Raises:
            NotFittedError: before ``fit``.
            StoreError: ``path`` exists and is not a saved mixture model.
        """
        self._fitted()
        path = Path(path)
        dirs = {
            n: [f"{self.processes_.index(n)}_{m}" for m in range(self.n_ensemble)] for n in self.classifiers_
        }
        meta = {
            "format": FORMAT, "schema_version": SCHEMA_VERSION, "class": type(self).__name__,
            "assay_version": __version__, "params": self.get_params(),
            "state": {"processes": list(self.processes_), "process_matrix": self.process_matrix_.tolist(),
                      "nu": self.nu_.tolist(), "n_eff": self.n_eff_.tolist(),
                      "morpher": self.morpher_.to_dict(),
                      "benchmarks": list(self.benchmarks_), "observables": list(self.observables_),
                      "parameters": list(self.parameters_), "members": dirs},
        }  # fmt: skip
        with atomic_directory(path, markers=(METADATA_FILE,), what="mixture model") as tmp:
            for name, members in self.classifiers_.items():
                for member, folder in zip(members, dirs[name]):
                    member.save(tmp / folder)
            (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=1))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> MixtureModel:
        """Read a model written by :meth:`save`; weights via ``torch.load(weights_only=True)`` only.

        Raises:
            StoreError: missing or corrupt files, or weights that are not a plain tensor state_dict.
        """
        path = Path(path)
        source = path / METADATA_FILE
        meta = read_tagged_json(source, format=FORMAT, schema_version=SCHEMA_VERSION, what="mixture model")
        state = json_field(meta, "state", source, Mapping)
        try:
            model = cls(**json_field(meta, "params", source, Mapping))
            model.processes_ = tuple(json_field(state, "processes", source, list, "state."))
            model.process_matrix_ = np.array(json_field(state, "process_matrix", source, list, "state."))
            model.nu_ = np.array(json_field(state, "nu", source, list, "state."), dtype=float)
            model.n_eff_ = np.array(state.get("n_eff", [np.nan] * len(model.nu_)), dtype=float)
            model.morpher_ = Morpher.from_dict(json_field(state, "morpher", source, Mapping, "state."))
            for name in ("benchmarks", "observables", "parameters"):
                setattr(model, f"{name}_", tuple(json_field(state, name, source, list, "state.")))
            dirs = json_field(state, "members", source, Mapping, "state.")
        except (TypeError, ValueError, KeyError) as exc:
            raise StoreError(f"{source}: fields 'params' or 'state' do not fit MixtureModel: {exc}") from exc
        if set(dirs) != set(model._trained()) or any(len(d) != model.n_ensemble for d in dirs.values()):
            raise StoreError(f"{source}: field 'state.members' does not list {model.n_ensemble} members "
                             f"for each of {model._trained()}")  # fmt: skip
        model.classifiers_ = {
            name: tuple(ProcessClassifier._from_saved(path / d, read_metadata(path / d)) for d in dirs[name])
            for name in model._trained()
        }
        return model


def _check_events(
    x: np.ndarray, weights: np.ndarray, n_obs: int, n_benchmarks: int, prefix: str
) -> tuple[np.ndarray, np.ndarray]:
    """x ``(n, n_obs)`` and weights ``(n, n_benchmarks)`` as finite float arrays."""
    where = f"{prefix}: " if prefix else ""
    x, weights = np.asarray(x, dtype=float), np.asarray(weights, dtype=float)
    if x.ndim != 2 or x.shape[1] != n_obs or len(x) < 2:
        raise ValueError(f"{where}x: expected shape (n_events >= 2, n_obs={n_obs}), got {x.shape}")
    if weights.shape != (len(x), n_benchmarks):
        raise ValueError(
            f"{where}weights: expected shape (n_events={len(x)}, n_benchmarks={n_benchmarks}), "
            f"got {weights.shape}"
        )
    for name, array in (("x", x), ("weights", weights)):
        bad = ~np.isfinite(array).all(axis=1)
        if bad.any():
            raise ValueError(
                f"{where}{name}: {int(bad.sum())} events hold NaN or infinite values (first: event "
                f"{int(np.argmax(bad))}); remove or fix them"
            )
    return x, weights
