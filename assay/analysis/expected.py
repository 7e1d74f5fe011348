"""One call from Python for expected limits, as MadMiner users know it
(``AsymptoticLimits.expected_limits(mode=...)``).

Example:
    >>> result = expected_limits("runs/toy", "truth", grid, luminosity_ifb=300.0)  # doctest: +SKIP
    >>> result.p_values.shape, result.dof  # doctest: +SKIP
    ((1225,), 2)
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assay.analysis.methods import BinnedMethod, Dataset, Method, RateMethod, RatioMethod, check_model_inputs
from assay.analysis.scans import one_parameter
from assay.exceptions import ConfigError, StoreError
from assay.inference.asimov import AsimovSample
from assay.inference.asymptotic import DEFAULT_CLS, cl_tag, limits_1d, p_value
from assay.inference.histograms import BinnedTemplates, Binning
from assay.inference.likelihood import Scan, expected_events
from assay.morphing import Morpher, as_thetas
from assay.rundir import RunDir
from assay.store import EventStore

__all__ = ["ExpectedLimits", "ImplausibleLuminosityWarning", "asimov_scan", "expected_limits"]

MAX_PLAUSIBLE_EVENTS = 1e8  # more expected events than any LHC analysis selects: a unit mix-up


class ImplausibleLuminosityWarning(UserWarning):
    """The luminosity implies an implausible number of events (fb⁻¹ expected, pb⁻¹ given?)."""


@dataclass(frozen=True, eq=False)
class ExpectedLimits:
    """What :func:`expected_limits` returns.

    Attributes:
        scan: −2Δlog L on the grid (:class:`~assay.inference.likelihood.Scan`).
        p_values: Wilks p-values ``(n_theta,)`` with ``dof`` degrees of freedom.
        dof: the number of scanned parameters (columns of the grid that vary), unless given.
        n_expected: the expected number of events L σ(θ_true).
        intervals: for a grid varying one parameter: ``{"<parameter name>_<tag>": (lo, hi)}``, None at an
            end the region reaches past the grid; empty otherwise.
    """

    scan: Scan
    p_values: np.ndarray
    dof: int
    n_expected: float
    intervals: dict[str, tuple[float | None, float | None]]


def _sample(
    source: str | os.PathLike, theta_true, luminosity: float, max_events: int | None, seed: int,
    memory_gb: float | None,
):  # fmt: skip
    """The Asimov sample of a run folder's test partition, or of every event of an EventStore."""
    path = Path(source)
    run = RunDir(path)
    if path.is_dir():
        from assay.training import read_basis

        if not run.split.is_file():
            raise StoreError(f"{run.split}: no event split in this run folder; run `assay run CONFIG` first")
        import h5py

        with EventStore(run.events) as store:
            morpher = read_basis(run.basis, store)
            names = _parameter_names(store)
        with h5py.File(run.split, "r") as f:
            rows = f["test"][()]
        events_path = run.events
    else:
        with EventStore(path) as store:
            if store.morphing is None:
                raise StoreError(f"{path}: the store has no morphing basis; pass the run folder instead")
            morpher = Morpher.from_dict(store.morphing)
            rows = np.arange(store.n_events)
            names = _parameter_names(store)
        events_path = path
    if max_events is not None and len(rows) > max_events:
        rows = np.random.default_rng(seed).choice(rows, max_events, replace=False)
    theta = np.zeros(morpher.n_params) if theta_true is None else theta_true
    sample = AsimovSample.from_store(
        events_path, rows, morpher, theta_true=theta, luminosity=luminosity, memory_gb=memory_gb
    )
    return sample, run, names


def _parameter_names(store: EventStore) -> list[str]:
    """The parameter names the store was generated with (θ_0, θ_1, … for a store without them)."""
    described = (store.parameters or {}).get("parameters") or []
    names = [p.get("name") for p in described if isinstance(p, dict)]
    if store.morphing is not None and len(names) == Morpher.from_dict(store.morphing).n_params:
        return names
    return [f"theta_{a}" for a in range(len(names) or Morpher.from_dict(store.morphing).n_params)]


def _method(method: Any, sample: AsimovSample, run: RunDir) -> Method:
    """A method from a name ("truth", "rate", a trained model under ``models/``), a fitted
    estimator, or a histogram :class:`Binning`."""
    if isinstance(method, Binning):
        columns = [sample.observables.index(o) for o in method.observables]
        return BinnedMethod("histogram", lambda d: d.x[:, columns], method)
    if isinstance(method, str):
        if method == "truth":
            # the events' own weights: a chunk's when the sample is streamed
            truth = RatioMethod("truth", lambda d, th: sample.truth_log_ratio(th, d.benchmark_weights),
                                normalise=False)  # fmt: skip
            return truth
        if method == "rate":
            return RateMethod()
        if not run.model(method).is_dir():
            raise ConfigError(f"method: {method!r} is not 'truth', 'rate' or a trained model in {run.models}")
        from assay.estimators import load_estimator

        name, method = method, load_estimator(run.model(method))
        with EventStore(run.events) as store:
            parameters = _parameter_names(store)
        check_model_inputs(name, method, sample.observables, parameters, where=str(run.events))
    from assay.analysis.build import _model_method

    return _model_method(type(method).__name__, method, sample, (25, 8))


def expected_limits(
    source: str | os.PathLike,
    method: Any,
    grid: np.ndarray,
    luminosity_ifb: float,
    *,
    theta_true: np.ndarray | None = None,
    dof: int | None = None,
    cls: tuple[float, ...] = DEFAULT_CLS,
    max_events: int | None = None,
    seed: int = 0,
    memory_gb: float | None = None,
) -> ExpectedLimits:
    """Expected limits of one method on the Asimov data of a run folder (or an EventStore).

    Assembles the Asimov sample (the run's test partition, weighted at θ_true), the method's
    likelihood (ratio estimator, histogram or rate) and the Wilks p-values.

    Args:
        source: a run folder of ``assay run`` (its test events) or an EventStore file (all events).
        method: ``"truth"`` (the joint ratio from the weights: exact where every momentum is
            observed), ``"rate"``, the name of a trained model in ``source/models/``, a fitted
            estimator, ensemble or BIT, or a histogram :class:`~assay.inference.histograms.Binning`.
        grid: θ points ``(n_theta, n_params)``, e.g. :func:`~assay.inference.asymptotic.theta_grid`.
        luminosity_ifb: integrated luminosity L in fb⁻¹ (not pb⁻¹).
        theta_true: the Asimov point ``(n_params,)``; default all zeros (the SM).
        dof: χ² degrees of freedom of the p-values; default the number of grid columns that vary.
        cls: confidence levels of the 1D intervals.
        max_events: at most this many test events (a seeded subset).
        seed: seeds that subset.
        memory_gb: a memory budget: test events whose x and weights exceed half of it are read
            chunk by chunk (:attr:`AsimovSample.streamed <assay.inference.asimov.AsimovSample.streamed>`)
            instead of loaded; the same scan up to the order of the sums.

    Returns:
        :class:`ExpectedLimits`.

    Warns:
        ImplausibleLuminosityWarning: L σ(θ_true) above 10⁸ events.
    """
    sample, run, names = _sample(source, theta_true, luminosity_ifb, max_events, seed, memory_gb)
    thetas = as_thetas(grid, sample.joint.n_params, "grid")
    n_expected = float(expected_events(sample.cross_section(sample.theta_true[None])[0], luminosity_ifb))
    if n_expected > MAX_PLAUSIBLE_EVENTS:
        warnings.warn(
            f"luminosity_ifb={luminosity_ifb} fb^-1 implies {n_expected:.3g} expected events; "
            f"the luminosity is in fb^-1 (1 fb^-1 = 1000 pb^-1)",
            ImplausibleLuminosityWarning,
            stacklevel=2,
        )
    varying = [a for a in range(thetas.shape[1]) if np.ptp(thetas[:, a]) > 0]
    n_dof = dof if dof is not None else max(1, len(varying))
    scan = asimov_scan(_method(method, sample, run), sample, thetas, tuple(varying))
    intervals: dict[str, tuple[float | None, float | None]] = {}
    if len(varying) == 1:
        a = varying[0]
        result = limits_1d(one_parameter(scan, a), cls)
        intervals = {f"{names[a]}_{cl_tag(cl)}": result.bounds(cl) for cl in cls}
    return ExpectedLimits(scan, p_value(scan.minus_2_delta_log_l, dof=n_dof), n_dof, n_expected, intervals)


def asimov_scan(method: Method, sample: AsimovSample, theta: np.ndarray, axes: tuple[int, ...]) -> Scan:
    """−2Δlog L of ``method`` on the Asimov data at ``theta (n_theta, n_params)``; ``axes``: the scanned
    parameters. A loaded sample goes through :meth:`Method.scan <assay.analysis.methods.Method.scan>`; a
    streamed one (:attr:`AsimovSample.streamed <assay.inference.asimov.AsimovSample.streamed>`) chunk
    by chunk: the kinematic term and R̂(θ) of a ratio method
    (:meth:`~assay.inference.asimov.AsimovSample.streamed_ratio_scan`), a histogram's templates
    (:meth:`~assay.inference.asimov.AsimovSample.streamed_templates`; a score histogram first gathers
    t̂ ``(n_events, len(axes))`` and the weights for its quantile edges), the rate from σ(θ) alone.
    """
    if not sample.streamed:
        return method.scan(Dataset.from_sample(sample), sample, theta, axes)
    if isinstance(method, RatioMethod):

        def log_ratio(x: np.ndarray, weights: np.ndarray, block: np.ndarray) -> np.ndarray:
            return method.log_ratio(Dataset(x, weights, True, "asimov"), block)

        return sample.streamed_ratio_scan(
            theta, log_ratio, normalise=method.normalise, theta_chunk=method.theta_chunk
        )
    if isinstance(method, BinnedMethod):
        return sample.binned_scan(theta, _streamed_templates(method, sample, axes))
    if isinstance(method, RateMethod):
        return method.scan(Dataset(np.empty((0, len(sample.observables))), None, True, "asimov"), sample,
                           theta, axes)  # fmt: skip
    raise TypeError(f"method: {type(method).__name__} cannot scan a streamed Asimov sample")


def _streamed_templates(method: BinnedMethod, sample: AsimovSample, axes: tuple[int, ...]) -> BinnedTemplates:
    """A histogram method's templates, filled chunk by chunk."""

    def values(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return np.asarray(method.values(Dataset(x, weights, True, "asimov")), dtype=float)

    if method.binning is not None:
        return sample.streamed_templates(method.binning, values)
    columns = list(axes)
    theta_true = sample.theta_true
    parts = [(values(x, w)[:, columns], sample.joint.weights(w, theta_true)) for x, w in sample.chunks()]
    t_hat, weights = (np.concatenate(p) for p in zip(*parts, strict=True))
    binning = method._score_binning(t_hat, weights, len(columns))  # the loaded sample's edges
    done = [0]  # rows of t̂ binned so far: the chunks come again in the same order

    def chunk_t_hat(x: np.ndarray, _: np.ndarray) -> np.ndarray:
        start = done[0]
        done[0] += len(x)
        return t_hat[start : done[0]]

    return sample.streamed_templates(binning, chunk_t_hat)
