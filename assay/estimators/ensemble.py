"""Ensembles of estimators: the mean and spread of members trained on resampled data.

Each member is an ordinary estimator (ALICES, SALLY, …) trained on its own resampling
of the data, so the spread over members estimates the variance of the estimator
(seed 000 "Calibration and diagnostics"; seed 003):

- ``resampling="sets"``: one training set per member, e.g. unweighted with different
  seeds (seed 000: a different unweighted dataset per member);
- ``resampling="bootstrap"``: one training set, each member's sample weights multiplied
  by Poisson(1) counts (seed 003; the Poisson bootstrap of Hanley & MacGibbon 2006).

Members train in parallel through Dask: a ``LocalCluster`` with one worker process per
member (at most one per CPU core, one thread each) by default, or any
``dask.distributed.Client`` passed in (e.g. dask-jobqueue on SLURM). Fitted members come
back in memory; nothing pickled is ever written to disk. Every member is seeded from
``seed``, so a fit is reproducible and does not depend on where it ran.

A saved ensemble is a directory with ``ensemble.json`` and one saved estimator per
member (``member_0/``, ``member_1/``, …); :func:`assay.estimators.load_estimator` reads it.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from assay import __version__
from assay.estimators.base import Estimator
from assay.estimators.prediction import Prediction, PredictorBase, cannot_predict
from assay.exceptions import NotFittedError, StoreError
from assay.morphing import as_thetas
from assay.saving import atomic_directory, read_tagged_json
from assay.training_set import TrainingSet

__all__ = [
    "ENSEMBLE_FILE",
    "RESAMPLINGS",
    "Ensemble",
    "ExpectationCheck",
    "poisson_bootstrap",
    "read_ensemble_metadata",
]

logger = logging.getLogger(__name__)

FORMAT = "assay.Ensemble"
SCHEMA_VERSION = 1
ENSEMBLE_FILE = "ensemble.json"
RESAMPLINGS = ("bootstrap", "sets")
# torch seeds weight initialisation through its global RNG (Estimator.fit → seeded), so
# members sharing one process (threaded Dask workers) train one at a time to stay reproducible.
_ONE_AT_A_TIME = threading.Lock()


@dataclass(frozen=True)
class ExpectationCheck:
    """R̂(θ) = E_x~θ1[r̂(x|θ, θ1)] per θ; exactly 1 for the true ratio (seed 000 "Calibration and diagnostics").

    Attributes:
        theta: the θ points ``(n_theta, n_params)``.
        theta1: the reference point the events were drawn from ``(n_params,)``.
        ratio_mean: R̂(θ), the (weighted) mean of r̂ over the events, ``(n_theta,)``.
        standard_error: its Monte Carlo standard error ``(n_theta,)``.
    """

    theta: np.ndarray
    theta1: np.ndarray
    ratio_mean: np.ndarray
    standard_error: np.ndarray

    @property
    def pulls(self) -> np.ndarray:
        """(R̂ − 1) / standard error, ``(n_theta,)``."""
        return (self.ratio_mean - 1.0) / self.standard_error


def poisson_bootstrap(data: TrainingSet, rng: np.random.Generator) -> TrainingSet:
    """``data`` with its sample weights multiplied by independent Poisson(1) counts (seed 003).

    Args:
        data: the training set; missing sample weights count as 1.
        rng: source of the counts.

    Returns:
        A new set sharing ``data``'s arrays except ``sample_weight (n_samples,)``.

    Example:
        >>> x = np.zeros((4, 1))
        >>> s = TrainingSet(x=x, observables=("x",), parameters=("c",), kind="plain")
        >>> poisson_bootstrap(s, np.random.default_rng(0)).sample_weight.tolist()
        [1.0, 0.0, 0.0, 3.0]
    """
    counts = rng.poisson(1.0, len(data))
    weight = data.sample_weight if data.sample_weight is not None else np.ones(len(data))
    return replace(data, sample_weight=weight * counts)


@dataclass(frozen=True)
class _MemberJob:
    """Everything a worker needs to fit one member besides the data."""

    cls: type[Estimator]
    params: dict[str, Any]
    bootstrap: np.random.SeedSequence | None  # seeds the Poisson counts; None: use the set as is
    threads: int
    checkpoint: str | None = None  # the member's per-epoch state (resumable), on a filesystem the worker sees


def _fit_member(
    job: _MemberJob, train_set: TrainingSet, validation_set: TrainingSet | None
) -> tuple[Estimator, float]:
    """Fit one member (runs on a Dask worker or in this process); returns it and its fit time in s."""
    with _ONE_AT_A_TIME:
        previous = torch.get_num_threads()
        torch.set_num_threads(job.threads)  # TOOLCHAIN "Threads": one per worker when cores are shared
        try:
            start = time.perf_counter()
            data = train_set
            if job.bootstrap is not None:
                data = poisson_bootstrap(train_set, np.random.default_rng(job.bootstrap))
            est = job.cls(**job.params).fit(data, validation_set=validation_set, checkpoint=job.checkpoint)
            return est, time.perf_counter() - start
        finally:
            torch.set_num_threads(previous)


def _fit_group(
    jobs: list[_MemberJob],
    sets: list[TrainingSet],
    validation: list[TrainingSet | None],
    n_groups: int = 1,
) -> list[tuple[Estimator, float]]:
    """Fit several members as stacked networks (:mod:`assay.estimators.batched`) in one process:
    ``n_groups`` groups trained at the same time on threads, each with one torch thread (one group:
    the members' ``threads``).

    Returns each member with its share of the fit time (the wall time / the number of members).
    """
    from assay.estimators.batched import fit_estimators

    with _ONE_AT_A_TIME:
        previous = torch.get_num_threads()
        torch.set_num_threads(jobs[0].threads if n_groups == 1 else 1)
        try:
            start = time.perf_counter()
            data = [
                s if job.bootstrap is None else poisson_bootstrap(s, np.random.default_rng(job.bootstrap))
                for job, s in zip(jobs, sets)
            ]
            estimators = [job.cls(**job.params) for job in jobs]
            fit_estimators(estimators, data, validation, [job.checkpoint for job in jobs], n_groups=n_groups)
            share = (time.perf_counter() - start) / len(jobs)
            return [(est, share) for est in estimators]
        finally:
            torch.set_num_threads(previous)


def _groups(n_members: int, n_groups: int) -> list[range]:
    """Members split into ``n_groups`` contiguous groups of nearly equal size."""
    bounds = np.linspace(0, n_members, min(n_groups, n_members) + 1).round().astype(int)
    return [range(a, b) for a, b in itertools.pairwise(bounds)]


def _per_member(sets: TrainingSet | Sequence[TrainingSet] | None, n: int, name: str) -> list:
    """One set (or None) per member: a single set is shared, a sequence must have ``n`` entries."""
    if sets is None or isinstance(sets, TrainingSet):
        return [sets] * n
    sets = list(sets)
    if len(sets) == 1:
        return sets * n
    if len(sets) != n or not all(isinstance(s, TrainingSet) for s in sets):
        raise ValueError(f"{name}: expected one TrainingSet or {n} (one per member), got {len(sets)} items")
    return sets


class Ensemble(PredictorBase):
    """Members of one kind of estimator trained on resampled data; predictions with their spread.

    ``log_ratio`` and ``score`` return the members' mean with their standard deviation
    (:meth:`Prediction.from_members <assay.estimators.prediction.Prediction.from_members>`);
    ``predicts`` is what every member predicts.

    Args:
        members: at least two estimators (their hyper-parameters are kept; ``fit`` trains
            seeded copies). If every member is already fitted, the ensemble is ready to evaluate.

    Attributes:
        members_: the fitted members.
        fit_seconds_: each member's training time in s (NaN after loading an older file).
        resampling_: how the members' data were resampled.

    Example:
        >>> from assay.estimators import ALICES
        >>> ens = Ensemble.from_estimator(ALICES(hidden=(32, 32), epochs=5), 3)
        >>> [m.hidden for m in ens.members]
        [(32, 32), (32, 32), (32, 32)]
    """

    def __init__(self, members: Sequence[Estimator]):
        members = list(members)
        if len(members) < 2 or not all(isinstance(m, Estimator) for m in members):
            kinds = [type(m).__name__ for m in members]
            raise ValueError(f"members: expected at least two estimators, got {kinds}")
        self.members = members
        if all(hasattr(m, "net_") for m in members):
            self._set_fitted(members, [float("nan")] * len(members), "unknown")

    @classmethod
    def from_estimator(cls, estimator: Estimator, n_members: int) -> Ensemble:
        """``n_members`` unfitted copies of ``estimator``'s hyper-parameters."""
        if n_members < 2:
            raise ValueError(f"n_members: expected >= 2, got {n_members}")
        return cls([type(estimator)(**estimator.get_params()) for _ in range(n_members)])

    @property
    def n_members(self) -> int:
        return len(self.members)

    @property
    def predicts(self) -> frozenset[str]:  # type: ignore[override]  # the members' kind decides
        """What every member predicts (:class:`~assay.estimators.prediction.Predictor`)."""
        return frozenset.intersection(*(type(m).predicts for m in self.members))

    def __repr__(self) -> str:
        return f"Ensemble({self.n_members} × {self.members[0]!r})"

    # ---- fitting ----------------------------------------------------------------------
    def fit(
        self,
        training_sets: TrainingSet | Sequence[TrainingSet],
        *,
        validation_set: TrainingSet | Sequence[TrainingSet] | None = None,
        resampling: str = "bootstrap",
        client: Any = None,
        n_workers: int | None = None,
        threads: int = 1,
        seed: int | None = 0,
        progress: bool = False,
        checkpoints: str | os.PathLike | None = None,
        batched: bool | None = None,
    ) -> Ensemble:
        """Train every member on its resampling of the data, in parallel.

        Args:
            training_sets: one set (``"bootstrap"``) or one per member (``"sets"``; with
                ``"bootstrap"`` each member's own set is bootstrapped).
            validation_set: for early stopping, one shared set or one per member (not
                resampled); None: each member holds out its trainer's ``validation_split``.
            resampling: ``"bootstrap"`` (sample weights × Poisson(1), seed 003) or ``"sets"``
                (the sets as given, seed 000).
            client: a ``dask.distributed.Client`` to train on; None: a ``LocalCluster`` with
                ``n_workers`` single-threaded worker processes, started and closed here.
            n_workers: workers of that cluster (default min(n_members, CPU count)); 1 trains
                the members one after the other in this process, without Dask.
            threads: torch threads per member (TOOLCHAIN "Threads": 1 when members share cores).
            seed: seeds each member's weights, shuffling and bootstrap counts
                (``SeedSequence(seed).spawn``); the members' own ``seed`` settings are replaced.
                None: fresh randomness.
            progress: show a progress bar over members (members train without their own bars).
            checkpoints: a folder for each member's per-epoch state (``member_<i>.pt``): a fit
                interrupted there resumes every member after its last finished epoch. On a
                cluster the folder must be on a filesystem the workers share. None: no checkpoints.
            batched: train the members in groups, each group as one stacked network in one
                process (:mod:`assay.estimators.batched`; likelihood-ratio members on a plain
                network with Adam/AMSGrad and training sets of one length): one group per worker
                of ``client``, else ``n_workers`` groups (default: one per usable core) trained at
                the same time on threads of this process, one torch thread each. None (default):
                batched unless a ``client`` is given or ``n_workers=1`` (members one after the
                other, as before). Members that cannot be
                stacked train one by one. The result per member equals training it alone up to
                float rounding (tests/test_batched_ensemble.py).

        Returns:
            ``self``, fitted (``members_``, ``fit_seconds_``, ``resampling_``).

        Raises:
            ValueError: an unknown ``resampling`` (the message lists the valid ones), or the
                wrong number of training / validation sets.
        """
        if resampling not in RESAMPLINGS:
            raise ValueError(f"resampling: unknown name {resampling!r}; valid names are {list(RESAMPLINGS)}")
        n_sets = 1 if isinstance(training_sets, TrainingSet) else len(training_sets)
        if resampling == "sets" and n_sets != self.n_members:
            raise ValueError(
                f"training_sets: resampling='sets' needs one set per member ({self.n_members}), got {n_sets}"
            )
        sets = _per_member(training_sets, self.n_members, "training_sets")
        validation = _per_member(validation_set, self.n_members, "validation_set")
        children = np.random.SeedSequence(seed).spawn(self.n_members)
        jobs = []
        for member, child in zip(self.members, children):
            torch_seed, data_seed = child.spawn(2)
            params = {**member.get_params(), "seed": int(torch_seed.generate_state(1)[0]), "progress": False}
            bootstrap = data_seed if resampling == "bootstrap" else None
            checkpoint = None if checkpoints is None else str(Path(checkpoints) / f"member_{len(jobs)}.pt")
            jobs.append(_MemberJob(type(member), params, bootstrap, threads, checkpoint))
        if batched is None:
            batched = client is None and n_workers != 1
        if batched and self._stackable(sets):
            results = self._fit_batched(jobs, sets, validation, client, n_workers, progress)
        elif client is None and (n_workers or min(self.n_members, os.cpu_count() or 1)) == 1:
            bar = tqdm(zip(jobs, sets, validation), total=len(jobs), unit="member", disable=not progress)
            results = [_fit_member(*args) for args in bar]
        elif client is None:
            results = _on_local_cluster(jobs, sets, validation, n_workers, progress)
        else:
            results = _fit_remote(client, jobs, sets, validation, progress)
        self._set_fitted([est for est, _ in results], [s for _, s in results], resampling)
        logger.info("trained %d members (%s) in %.1f s of member time", self.n_members, resampling,
                    sum(self.fit_seconds_))  # fmt: skip
        return self

    def _stackable(self, sets: list[TrainingSet]) -> bool:
        from assay.estimators.batched import stackable

        probe = [type(m)(**{**m.get_params(), "seed": 0}) for m in self.members]
        return self.members[0]._stacked_loss_supported() and stackable(probe, [len(s) for s in sets])

    def _fit_batched(
        self, jobs, sets, validation, client, n_workers, progress
    ) -> list[tuple[Estimator, float]]:
        """Members in stacked groups: one group per worker of ``client``, else ``n_workers`` (default:
        one per core) groups on threads of this process. Threads rather than a local Dask cluster:
        starting one took 15-20 s on loaded cores, and 2 thread groups ran 1.9× the plain-torch loop
        against the cluster's 0.56× (benchmarks/training.py --throughput, docs/training.md)."""
        if client is None:
            n_groups = n_workers or min(self.n_members, _usable_cores())
            return _fit_group(jobs, sets, validation, n_groups=n_groups)
        groups = _groups(self.n_members, len(client.scheduler_info()["workers"]))
        parts = [([jobs[i] for i in g], [sets[i] for i in g], [validation[i] for i in g]) for g in groups]
        nested = _fit_remote_groups(client, parts, progress)
        return [result for group in nested for result in group]

    def _set_fitted(self, members: list[Estimator], seconds: list[float], resampling: str) -> None:
        names = {(tuple(m.observables_), tuple(m.parameters_)) for m in members}
        if len(names) != 1:
            raise ValueError(f"members: fitted on different observables / parameters: {sorted(names)}")
        self.members_ = members
        self.fit_seconds_ = tuple(float(s) for s in seconds)
        self.resampling_ = resampling

    def _fitted(self) -> list[Estimator]:
        if not hasattr(self, "members_"):
            raise NotFittedError("this Ensemble is not fitted yet: call fit(...) or load_estimator(path)")
        return self.members_

    # ---- predictions ------------------------------------------------------------------
    def log_ratio(
        self, x: np.ndarray, theta: np.ndarray, theta_ref: np.ndarray, *, chunk_size: int = 16_384
    ) -> Prediction:
        """The members' mean log r̂(x|θ, θ_ref) and its standard deviation over members.

        Args:
            x: events ``(n_events, n_obs)``.
            theta: ``(n_theta, n_params)`` or ``(n_params,)``.
            theta_ref: one point ``(n_params,)``.
            chunk_size: passed to each member's ``log_ratio``.

        Returns:
            :class:`~assay.estimators.prediction.Prediction` with ``mean`` and ``std (n_theta, n_events)``.

        Raises:
            PredictionError: the members do not predict log r (SALLY).
            NotFittedError: before ``fit``.
        """
        members = self._predicting("log_ratio")
        return Prediction.from_members(
            [m.log_ratio(x, theta, theta_ref, chunk_size=chunk_size).mean for m in members]
        )

    def score(self, x: np.ndarray, theta: np.ndarray | None = None) -> Prediction:
        """The members' mean t̂(x|θ) and its standard deviation over members.

        Args:
            x: events ``(n_events, n_obs)``.
            theta: one point ``(n_params,)``; None: the members' reference point (SALLY's θ_ref;
                likelihood-ratio members need θ).

        Returns:
            :class:`~assay.estimators.prediction.Prediction` with ``mean`` and ``std (n_events, n_params)``.

        Raises:
            PredictionError: the members cannot predict the score at ``theta``.
            NotFittedError: before ``fit``.
        """
        return Prediction.from_members([m.score(x, theta).mean for m in self._predicting("score")])

    def _predicting(self, what: str) -> list[Estimator]:
        """The fitted members, once they can predict ``what``."""
        if what not in self.predicts:
            raise cannot_predict(self, what, name=f"Ensemble of {type(self.members[0]).__name__}")
        return self._fitted()

    def expectation_check(
        self,
        x_theta1: np.ndarray,
        theta: np.ndarray,
        theta1: np.ndarray,
        *,
        weights: np.ndarray | None = None,
    ) -> ExpectationCheck:
        """R̂(θ) = mean over events x ~ p(x|θ1) of r̂(x|θ, θ1), with r̂ from the mean log r̂.

        For the true ratio E_θ1[r(x|θ, θ1)] = ∫ p(x|θ) dx = 1 at every θ, so a deviation of R̂
        from 1 beyond its standard error signals a mis-trained (uncalibrated) estimator
        (seed 000 "Calibration and diagnostics").

        Args:
            x_theta1: events drawn from θ1 (not used in training), ``(n_events, n_obs)``.
            theta: points to check ``(n_theta, n_params)`` or ``(n_params,)``.
            theta1: the point the events come from ``(n_params,)``.
            weights: event weights ``(n_events,)`` if ``x_theta1`` is weighted (e.g. pb at θ1);
                None: unweighted.

        Returns:
            :class:`ExpectationCheck`; the standard error is √(Σ w² (r̂ − R̂)²) / Σ w.
        """
        log_r = self.log_ratio(x_theta1, theta, theta1).mean
        w = np.ones(log_r.shape[1]) if weights is None else np.asarray(weights, dtype=float)
        if w.shape != (log_r.shape[1],):
            raise ValueError(f"weights: expected shape ({log_r.shape[1]},) like x_theta1, got {w.shape}")
        r = np.exp(log_r)
        mean = r @ w / w.sum()
        error = np.sqrt(((r - mean[:, None]) ** 2) @ w**2) / w.sum()
        n_params = len(self.members_[0].parameters_)
        thetas, ref = as_thetas(theta, n_params, "theta"), as_thetas(theta1, n_params, "theta1")
        if len(ref) != 1:
            raise ValueError(f"theta1: expected one point (n_params,), got {len(ref)} points")
        return ExpectationCheck(thetas, ref[0], mean, error)

    def calibrated_log_ratio(self, x: np.ndarray, check: ExpectationCheck) -> Prediction:
        """log r̂(x|θ, θ1) − log R̂(θ) at the points of ``check`` (θ = ``check.theta``, θ1 = ``check.theta1``).

        Dividing by R̂(θ) restores the normalisation E_θ1[r̂] = 1 (seed 000 "Calibration and
        diagnostics"); every member is shifted by the same log R̂, so the spread is unchanged.

        Returns:
            :class:`~assay.estimators.prediction.Prediction` with ``mean`` and ``std (n_theta, n_events)``.
        """
        raw = self.log_ratio(x, check.theta, check.theta1)
        return Prediction(raw.mean - np.log(check.ratio_mean)[:, None], raw.std)

    # ---- persistence ------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``ensemble.json`` and ``member_<i>/`` (:meth:`Estimator.save`) into ``path``, atomically.

        Raises:
            NotFittedError: before ``fit``.
            StoreError: ``path`` exists and is not a saved ensemble or estimator.
        """
        members = self._fitted()
        path = Path(path)
        names = [f"member_{i}" for i in range(len(members))]
        meta = {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "assay_version": __version__,
            "members": names,
            "resampling": self.resampling_,
            "fit_seconds": list(self.fit_seconds_),
        }
        markers = (ENSEMBLE_FILE, "estimator.json")
        with atomic_directory(path, markers=markers, what="ensemble or estimator") as tmp:
            for name, member in zip(names, members):
                member.save(tmp / name)
            (tmp / ENSEMBLE_FILE).write_text(json.dumps(meta, indent=1))
        return path

    @classmethod
    def _from_saved(cls, members: list[Estimator], meta: dict[str, Any]) -> Ensemble:
        """An ensemble of loaded members with the fit record of :func:`read_ensemble_metadata`."""
        ens = cls(members)
        seconds = meta.get("fit_seconds", [float("nan")] * len(members))
        ens._set_fitted(members, seconds, str(meta.get("resampling", "unknown")))
        return ens


def _fit_remote(client: Any, jobs, sets, validation, progress: bool) -> list[tuple[Estimator, float]]:
    """Submit one task per member; each distinct set is scattered once (shared sets to every worker)."""
    from dask.distributed import as_completed

    remote: dict[int, Any] = {}
    for data in (*sets, *validation):
        if data is not None and id(data) not in remote:
            shared = sum(d is data for d in (*sets, *validation)) > 1
            remote[id(data)] = client.scatter(data, broadcast=shared, hash=False)
    futures = [
        client.submit(_fit_member, job, remote[id(s)], None if v is None else remote[id(v)], pure=False)
        for job, s, v in zip(jobs, sets, validation)
    ]
    for _ in tqdm(as_completed(futures), total=len(futures), unit="member", disable=not progress):
        pass
    return client.gather(futures)


def _fit_remote_groups(client: Any, parts, progress: bool) -> list[list[tuple[Estimator, float]]]:
    """One task per group of members (:func:`_fit_group`); the sets are scattered once each."""
    from dask.distributed import as_completed

    everything = [d for _, sets, validation in parts for d in (*sets, *validation) if d is not None]
    remote: dict[int, Any] = {}
    for data in everything:
        if id(data) not in remote:
            shared = sum(d is data for d in everything) > 1
            remote[id(data)] = client.scatter(data, broadcast=shared, hash=False)
    futures = [
        client.submit(_fit_group, jobs, [remote[id(s)] for s in sets],
                      [None if v is None else remote[id(v)] for v in validation], pure=False)
        for jobs, sets, validation in parts
    ]  # fmt: skip
    for _ in tqdm(as_completed(futures), total=len(futures), unit="group", disable=not progress):
        pass
    return client.gather(futures)


def _usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a SLURM allocation), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _on_local_cluster(jobs, sets, validation, n_workers: int | None, progress: bool):
    """Train on a fresh local cluster of single-threaded workers (:func:`assay.cluster.local_client`)."""
    from assay.cluster import local_client

    with local_client(min(n_workers or os.cpu_count() or 1, len(jobs))) as client:
        return _fit_remote(client, jobs, sets, validation, progress)


def read_ensemble_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The checked ``ensemble.json`` of a saved ensemble.

    Returns:
        The metadata; ``members`` is a list of member directory names inside ``path``.

    Raises:
        StoreError: missing or invalid file, wrong format, newer schema, or member names
            that are not plain directory names inside ``path``.
    """
    source = Path(path) / ENSEMBLE_FILE
    meta = read_tagged_json(source, format=FORMAT, schema_version=SCHEMA_VERSION, what="ensemble")
    names = meta.get("members")
    if not isinstance(names, list) or len(names) < 2 or not all(_plain_name(n) for n in names):
        raise StoreError(f"{source}: field 'members' should list >= 2 member directory names, got {names!r}")
    return meta


def _plain_name(name: Any) -> bool:
    """A directory name without separators or leading dots (no escaping the ensemble directory)."""
    return isinstance(name, str) and name == Path(name).name and not name.startswith(".")
