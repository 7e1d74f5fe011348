"""What an inference run leaves for plots and the report: typed ``results.json`` (docs/results.md).

:class:`Results` holds the expected (or observed) limits of one run at one or more levels
(:class:`LevelResults`); every part is a frozen dataclass whose arrays are read-only float arrays.
The constructors check shapes and names (a ``ValueError`` naming the key path); :meth:`Results.from_json`
is the one reader of the file: it checks every JSON type, shape and name once and raises one
:class:`~assay.exceptions.StoreError` naming the file and the key path, e.g.
``levels.parton.scans_1d.cHW.q.alices: expected 121 numbers, got 120``. Code after it trusts the
objects. In the file every array is a (nested) list of numbers with ``null`` for NaN and ±inf; an
interval end is ``null`` when the region reaches past the scanned range.

Example:
    >>> import tempfile
    >>> scan = Scan1D("c", np.linspace(-1, 1, 5), {}, {"truth": np.array([1, 0.25, 0, 0.25, 1])})
    >>> level = LevelResults(label="toy", scans_1d={"c": scan}, intervals={"truth": {"c_68": (-1.0, None)}})
    >>> results = Results(title="toy", parameters=("c",), parameter_labels=("$c$",),
    ...                   luminosity_ifb=300.0, levels={"parton": level})
    >>> path = results.to_json(Path(tempfile.mkdtemp()) / "results.json")
    >>> Results.from_json(path).levels["parton"].intervals["truth"]["c_68"]
    (-1.0, None)
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from assay.exceptions import StoreError
from assay.inference.asymptotic import cl_tag
from assay.saving import read_json, write_json

__all__ = [
    "FORMAT",
    "SCHEMA_VERSION",
    "Calibration",
    "Coverage",
    "CutFlowResult",
    "Distribution",
    "FisherInformation",
    "LevelResults",
    "LossCurve",
    "NeymanBeltResult",
    "Results",
    "Scan1D",
    "Scan2D",
    "interval_tag",
    "strict_json",
]

FORMAT = "assay.results"  # results.json's "format"
SCHEMA_VERSION = 1  # results.json's "schema_version"; files with a larger one are refused
_T = TypeVar("_T")


interval_tag = cl_tag  # the key tag of a CL ("68", "95"): one rule, assay.inference.asymptotic.cl_tag


# --- checks shared by the constructors and the reader ----------------------------------------------


class _Invalid(ValueError):
    """A malformed part of the results: ``path`` (``"q.alices"``, relative to the object) and why."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path, self.message = path, message


def _at(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _build(cls: Callable[..., _T], path: str, **kwargs: Any) -> _T:
    """``cls(**kwargs)``, its complaint (relative to the object) moved under ``path``."""
    try:
        return cls(**kwargs)
    except _Invalid as exc:
        raise _Invalid(_at(path, exc.path) if exc.path else path, exc.message) from None


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)  # frozen dataclasses normalise their fields in __post_init__


def _floats(value: Any, path: str, ndim: int) -> np.ndarray:
    """``value`` as a read-only float array of ``ndim`` dimensions (a copy)."""
    try:
        array = np.array(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise _Invalid(path, f"expected an array of numbers ({exc})") from None
    if array.ndim != ndim:
        expected = "a list of numbers" if ndim == 1 else f"a {ndim}-dimensional array"
        raise _Invalid(path, f"expected {expected}, got an array of shape {array.shape}")
    array.flags.writeable = False
    return array


def _shape(shape: tuple[int, ...]) -> str:
    return " × ".join(map(str, shape))


def _check_shape(array: np.ndarray, shape: tuple[int, ...], path: str, what: str = "") -> None:
    if array.shape != shape:
        if len(shape) == 1:
            raise _Invalid(path, f"expected {shape[0]} numbers{what}, got {len(array)}")
        raise _Invalid(path, f"expected a {_shape(shape)} array{what}, got {_shape(array.shape)}")


def _arrays(values: Mapping[str, Any], path: str, ndim: int) -> dict[str, np.ndarray]:
    return {_name(k, path): _floats(v, _at(path, k), ndim) for k, v in values.items()}


def _name(key: Any, path: str) -> str:
    if not isinstance(key, str) or not key:
        raise _Invalid(path, f"expected names (non-empty strings) as keys, got {key!r}")
    return key


def _names(values: Sequence[Any], path: str) -> tuple[str, ...]:
    return tuple(_name(v, path) for v in values)


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise _Invalid(path, f"expected a number, got {value!r}")
    return float(value)


def _count(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise _Invalid(path, f"expected a whole number ≥ 0, got {value!r}")
    return int(value)


def _end(value: Any, path: str) -> float | None:
    """An interval end: a finite number, or None for an open end (NaN and ±inf count as open)."""
    if value is None:
        return None
    x = _number(value, path)
    return x if math.isfinite(x) else None


def _split_key(key: str, parameters: Sequence[str], path: str) -> str:
    """The parameter of a ``"<param>_<tag>"`` key (``"cHW_68"`` → ``"cHW"``)."""
    parameter, _, tag = key.rpartition("_")
    if parameter not in parameters or not tag.isdigit():
        raise _Invalid(path, f"expected keys '<parameter>_<CL tag>' with parameters {list(parameters)}")
    return parameter


def _known(names: Any, parameters: Sequence[str], path: str) -> None:
    for name in names:
        if name not in parameters:
            raise _Invalid(_at(path, name), f"unknown parameter; expected one of {list(parameters)}")


# --- the parts ------------------------------------------------------------------------------------------

_HISTORY_KEYS = ("train_loss", "val_loss", "best_epoch")


@dataclass(frozen=True, eq=False)
class LossCurve:
    """One training history (:meth:`assay.estimators.History.to_dict` form).

    Attributes:
        train_loss: (n_epochs,) mean training loss per epoch.
        val_loss: (n_epochs,) or (0,) mean validation loss per epoch.
        best_epoch: 0-based index of the kept epoch.
        extra: every other key of ``History.to_dict()`` (``train_terms``, ``val_terms``, ``lr``) verbatim.
    """

    train_loss: np.ndarray
    val_loss: np.ndarray
    best_epoch: int
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _set(self, "train_loss", _floats(self.train_loss, "train_loss", 1))
        _set(self, "val_loss", _floats(self.val_loss, "val_loss", 1))
        _set(self, "best_epoch", _count(self.best_epoch, "best_epoch"))
        _set(self, "extra", {_name(k, "extra"): v for k, v in self.extra.items()})
        if clash := set(self.extra) & set(_HISTORY_KEYS):
            raise _Invalid("extra", f"{sorted(clash)} are fields of their own")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LossCurve:
        """From ``History.to_dict()`` (or :meth:`to_dict`); ``ValueError`` naming the key if malformed."""
        return _read_loss_curve(data, "")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: the losses as lists (``null`` for NaN), then ``extra``."""
        return {"train_loss": strict_json(self.train_loss), "val_loss": strict_json(self.val_loss),
                "best_epoch": self.best_epoch, **strict_json(self.extra)}  # fmt: skip


@dataclass(frozen=True, eq=False)
class Scan1D:
    """−2Δlog L along one parameter, the others fixed.

    Attributes:
        parameter: the scanned parameter.
        theta: (n,) its values.
        fixed: the other parameters' values.
        q: method → (n,) −2Δlog L (NaN where a method has no value).
    """

    parameter: str
    theta: np.ndarray
    fixed: dict[str, float]
    q: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        _set(self, "parameter", _name(self.parameter, "parameter"))
        _set(self, "theta", _floats(self.theta, "theta", 1))
        _set(self, "fixed", {_name(k, "fixed"): _number(v, _at("fixed", k)) for k, v in self.fixed.items()})
        _set(self, "q", _arrays(self.q, "q", 1))
        for method, q in self.q.items():
            _check_shape(q, self.theta.shape, _at("q", method))


@dataclass(frozen=True, eq=False)
class Scan2D:
    """−2Δlog L on a grid of two parameters, the others fixed.

    Attributes:
        parameters: the two scanned parameters.
        axes: ((n0,), (n1,)) their values.
        fixed: the other parameters' values.
        q: method → (n0, n1) −2Δlog L, ``q[m][i, j]`` at ``(axes[0][i], axes[1][j])``.
    """

    parameters: tuple[str, str]
    axes: tuple[np.ndarray, np.ndarray]
    fixed: dict[str, float]
    q: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        if len(self.parameters) != 2 or len(self.axes) != 2:
            raise _Invalid("", f"expected two parameters and two axes, got {list(self.parameters)}")
        _set(self, "parameters", _names(self.parameters, "parameters"))
        _set(self, "axes", tuple(_floats(a, _at("axes", i), 1) for i, a in enumerate(self.axes)))
        _set(self, "fixed", {_name(k, "fixed"): _number(v, _at("fixed", k)) for k, v in self.fixed.items()})
        _set(self, "q", _arrays(self.q, "q", 2))
        shape = (len(self.axes[0]), len(self.axes[1]))
        for method, q in self.q.items():
            _check_shape(q, shape, _at("q", method), " (the axes' lengths)")


@dataclass(frozen=True, eq=False)
class Calibration:
    """The expectation check R̂(θ) = Σ w(θ₁) r̂(x|θ, θ₁) / Σ w(θ₁) of one method (1 when exact).

    Attributes:
        theta: (n, n_params) the checked points.
        r_hat_mean: (n,) R̂ at each point (ensemble mean).
        r_hat_std: (n,) ensemble spread, or None when the method has none.
    """

    theta: np.ndarray
    r_hat_mean: np.ndarray
    r_hat_std: np.ndarray | None = None

    def __post_init__(self) -> None:
        _set(self, "theta", _floats(self.theta, "theta", 2))
        _set(self, "r_hat_mean", _floats(self.r_hat_mean, "r_hat_mean", 1))
        _check_shape(self.r_hat_mean, self.theta.shape[:1], "r_hat_mean", " (one per theta)")
        if self.r_hat_std is not None:
            _set(self, "r_hat_std", _floats(self.r_hat_std, "r_hat_std", 1))
            _check_shape(self.r_hat_std, self.theta.shape[:1], "r_hat_std", " (one per theta)")


@dataclass(frozen=True, eq=False)
class FisherInformation:
    """Fisher information matrices of each method at one point.

    Attributes:
        theta: (n_params,) where the information is evaluated.
        information: method → (n_params, n_params) matrix (at the run's luminosity).
    """

    theta: np.ndarray
    information: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        _set(self, "theta", _floats(self.theta, "theta", 1))
        _set(self, "information", _arrays(self.information, "information", 2))
        n = len(self.theta)
        for method, matrix in self.information.items():
            _check_shape(matrix, (n, n), _at("information", method), " (square, n_params = len(theta))")


@dataclass(frozen=True, eq=False)
class Distribution:
    """Normalised distributions of one observable at a few benchmarks.

    Attributes:
        label: axis label (LaTeX allowed).
        edges: (n_bins + 1,) increasing bin edges.
        benchmarks: benchmark name → (n_bins,) density per bin width.
    """

    label: str
    edges: np.ndarray
    benchmarks: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        _set(self, "edges", _floats(self.edges, "edges", 1))
        if len(self.edges) < 2 or not np.all(np.diff(self.edges) > 0):
            raise _Invalid("edges", f"expected at least 2 increasing numbers, got {self.edges.tolist()}")
        _set(self, "benchmarks", _arrays(self.benchmarks, "benchmarks", 1))
        for name, values in self.benchmarks.items():
            _check_shape(values, (len(self.edges) - 1,), _at("benchmarks", name), " (one per bin)")


@dataclass(frozen=True, eq=False)
class CutFlowResult:
    """A cumulative cut flow: ``efficiency[i]`` of the events pass cuts ``names[: i + 1]`` (weighted)."""

    names: tuple[str, ...]
    efficiency: np.ndarray

    def __post_init__(self) -> None:
        _set(self, "names", _names(self.names, "names"))
        _set(self, "efficiency", _floats(self.efficiency, "efficiency", 1))
        _check_shape(self.efficiency, (len(self.names),), "efficiency", " (one per cut)")


@dataclass(frozen=True, eq=False)
class Coverage:
    """How often toy intervals cover the true point.

    Attributes:
        theta_true: (n_params,) the point the toys are drawn at.
        n_toys: number of toys.
        confidence_levels: the CLs of the intervals (``interval_tag`` makes the key tags).
        coverage: method → ``{"<param>_<tag>": fraction of toys whose interval covers theta_true}``.
    """

    theta_true: np.ndarray
    n_toys: int
    confidence_levels: tuple[float, ...]
    coverage: dict[str, dict[str, float]]

    def __post_init__(self) -> None:
        _set(self, "theta_true", _floats(self.theta_true, "theta_true", 1))
        _set(self, "n_toys", _count(self.n_toys, "n_toys"))
        cls = tuple(_number(c, _at("confidence_levels", i)) for i, c in enumerate(self.confidence_levels))
        if not all(0 < c < 1 for c in cls):
            raise _Invalid("confidence_levels", f"expected numbers in (0, 1), got {list(cls)}")
        _set(self, "confidence_levels", cls)
        _set(self, "coverage", {_name(m, "coverage"): _fractions(f, _at("coverage", m))
                                for m, f in self.coverage.items()})  # fmt: skip


@dataclass(frozen=True, eq=False)
class NeymanBeltResult:
    """One method's Neyman construction on one parameter (:mod:`assay.analysis.neyman_belt`).

    Attributes:
        theta: the scanned values ``(n_points,)``.
        n_toys: toys per point.
        critical: CL tag ("68", "95") → t_c(θ) ``(n_points,)``.
        regions: CL tag → the Neyman confidence set of the data, ((lo, hi), …).
        wilks_regions: CL tag → the same with Wilks' χ²₁ critical value.
    """

    theta: np.ndarray
    n_toys: int
    critical: dict[str, np.ndarray]
    regions: dict[str, tuple[tuple[float | None, float | None], ...]]
    wilks_regions: dict[str, tuple[tuple[float | None, float | None], ...]]

    def __post_init__(self) -> None:
        _set(self, "theta", _floats(self.theta, "theta", 1))
        _set(self, "n_toys", _count(self.n_toys, "n_toys"))
        n = len(self.theta)
        _set(self, "critical", {_name(k, "critical"): _floats(v, _at("critical", k), 1)
                                for k, v in self.critical.items()})  # fmt: skip
        for k, v in self.critical.items():
            _check_shape(v, (n,), _at("critical", k))
        for field_name in ("regions", "wilks_regions"):
            _set(self, field_name, {_name(k, field_name): tuple(_interval(iv, field_name, k) for iv in v)
                                    for k, v in getattr(self, field_name).items()})  # fmt: skip


def _fractions(values: Mapping[str, Any], path: str) -> dict[str, float]:
    out = {_name(k, path): _number(v, _at(path, k)) for k, v in values.items()}
    for key, x in out.items():
        if not 0 <= x <= 1 and not math.isnan(x):
            raise _Invalid(_at(path, key), f"expected a fraction in [0, 1], got {x}")
    return out


@dataclass(frozen=True, eq=False, kw_only=True)
class LevelResults:
    """The results of one level (e.g. parton, detector) of a run.

    Attributes:
        label: what the level is (``"parton level (all momenta observed)"``).
        n_events: name → count (``generated``, ``stored``, ``asimov_test_events``, ...).
        data: ``"asimov"`` or ``"observed: <file>"``.
        scans_1d: parameter → its 1D scan.
        scans_2d: the 2D scans.
        intervals: method → ``{"<param>_<tag>": (lo, hi)}``; None at an open end (the region
            reaches past the scanned range).
        best_fit: method → parameter → value.
        fisher: Fisher information at one point, or None.
        histories: model → one :class:`LossCurve` per ensemble member.
        calibration: method → expectation check.
        distributions: observable → distributions at a few benchmarks.
        cut_flow: the selection's cut flow, or None.
        checks: name → number or text (cross-checks such as pyhf against assay).
        warnings: what the run found suspicious, one sentence each.
        coverage: toy coverage of the intervals, or None.
        regions: method → ``{"<param>_<tag>": ((lo, hi), …)}``, the disjoint intervals of each CL
            region (``intervals`` holds their span); None at an open end.
        minima: method → parameter → ((θ, q − q_min), …), every local minimum of the 1D scan.
        significance: method → parameter → Z0 = √(q(0) − q_min), the expected significance of
            θ = 0 (background only, for a signal strength).
        search: counting-level numbers of a search (expected S, I, B, iZ, z0, N_eff, …).
        neyman: method → parameter → its Neyman construction (``assay limits --neyman N``).
        systematics: profiled method → nuisance → ``alpha_hat``, ``sigma`` (post-fit), ``pull``,
            ``impact_hessian`` (seed 003's formula), ``impact_profiled`` (C_μk/√C_kk),
            ``impact_up``/``impact_down`` (refits at α̂ ± σ), ``width_68_fixed`` (the 68% interval's
            width with this nuisance fixed at α̂); the entries ``all`` and ``none`` hold the widths with
            every nuisance fixed (stat only) and none (the full result, on the same coarse scan).
    """

    label: str
    n_events: dict[str, int] = field(default_factory=dict)
    data: str = "asimov"
    scans_1d: dict[str, Scan1D]
    scans_2d: tuple[Scan2D, ...] = ()
    intervals: dict[str, dict[str, tuple[float | None, float | None]]]
    best_fit: dict[str, dict[str, float]] = field(default_factory=dict)
    fisher: FisherInformation | None = None
    histories: dict[str, tuple[LossCurve, ...]] = field(default_factory=dict)
    calibration: dict[str, Calibration] = field(default_factory=dict)
    distributions: dict[str, Distribution] = field(default_factory=dict)
    cut_flow: CutFlowResult | None = None
    checks: dict[str, float | str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    coverage: Coverage | None = None
    regions: dict[str, dict[str, tuple[tuple[float | None, float | None], ...]]] = field(default_factory=dict)
    minima: dict[str, dict[str, tuple[tuple[float, float], ...]]] = field(default_factory=dict)
    significance: dict[str, dict[str, float]] = field(default_factory=dict)
    search: dict[str, float] = field(default_factory=dict)
    neyman: dict[str, dict[str, NeymanBeltResult]] = field(default_factory=dict)
    systematics: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.data != "asimov" and not self.data.startswith("observed: "):
            raise _Invalid("data", f"expected 'asimov' or 'observed: <file>', got {self.data!r}")
        _set(self, "n_events", {_name(k, "n_events"): _count(v, _at("n_events", k))
                                for k, v in self.n_events.items()})  # fmt: skip
        for parameter, scan in self.scans_1d.items():
            if scan.parameter != parameter:
                raise _Invalid(_at("scans_1d", parameter), f"holds a scan of {scan.parameter!r}")
        _set(self, "scans_2d", tuple(self.scans_2d))
        _set(self, "intervals", {_name(m, "intervals"): {_name(k, _at("intervals", m)): _interval(v, m, k)
                                                        for k, v in entry.items()}
                                 for m, entry in self.intervals.items()})  # fmt: skip
        _set(self, "best_fit", {_name(m, "best_fit"): {_name(p, "best_fit"): _number(v, f"best_fit.{m}.{p}")
                                                      for p, v in entry.items()}
                                for m, entry in self.best_fit.items()})  # fmt: skip
        _set(self, "histories", {_name(m, "histories"): tuple(h) for m, h in self.histories.items()})
        _set(self, "regions", _nested(self.regions, "regions", lambda ivs, path: tuple(
            _interval(iv, *path.split(".", 2)[1:]) for iv in ivs)))  # fmt: skip
        _set(self, "minima", _nested(self.minima, "minima", lambda mins, path: tuple(
            (_number(t, path), _number(dq, path)) for t, dq in mins)))  # fmt: skip
        _set(self, "significance", _nested(self.significance, "significance", _number))
        for name, value in self.search.items():
            _number(value, _at("search", name))
        _set(self, "systematics", _nested(self.systematics, "systematics", lambda entry, path: {
            q: _number(v, f"{path}.{q}") for q, v in entry.items()}))  # fmt: skip
        for name, value in self.checks.items():
            if not isinstance(value, str):
                _number(value, _at("checks", name))
        _set(self, "warnings", tuple(self.warnings))

    def check_parameters(self, parameters: Sequence[str]) -> None:
        """Every parameter name (scans, intervals, Fisher, calibration, coverage) is one of ``parameters``.

        Raises:
            ValueError: an unknown name or a wrong number of parameters, naming the key path.
        """
        n = len(parameters)
        _known(self.scans_1d, parameters, "scans_1d")
        for p, scan in self.scans_1d.items():
            _known(scan.fixed, parameters, f"scans_1d.{p}.fixed")
        for i, scan in enumerate(self.scans_2d):
            _known(scan.parameters, parameters, f"scans_2d[{i}].parameters")
            _known(scan.fixed, parameters, f"scans_2d[{i}].fixed")
        for m, entry in self.intervals.items():
            for key in entry:
                _split_key(key, parameters, f"intervals.{m}.{key}")
        for m, fit in self.best_fit.items():
            _known(fit, parameters, f"best_fit.{m}")
        for m, entry in self.regions.items():
            for key in entry:
                _split_key(key, parameters, f"regions.{m}.{key}")
        for field_name in ("minima", "significance"):
            for m, entry in getattr(self, field_name).items():
                _known(entry, parameters, f"{field_name}.{m}")
        if self.fisher is not None:
            _check_shape(self.fisher.theta, (n,), "fisher.theta", f" (n_params = {n})")
        for m, calibration in self.calibration.items():
            _check_shape(calibration.theta, (len(calibration.theta), n), f"calibration.{m}.theta")
        if self.coverage is not None:
            _check_shape(self.coverage.theta_true, (n,), "coverage.theta_true", f" (n_params = {n})")
            for m, fractions in self.coverage.coverage.items():
                for key in fractions:
                    _split_key(key, parameters, f"coverage.coverage.{m}.{key}")


def _nested(value: Mapping, field_name: str, read: Callable[[Any, str], Any]) -> dict:
    """method → key → ``read(entry, "<field>.<method>.<key>")``, the names checked."""
    return {
        _name(m, field_name): {_name(k, _at(field_name, m)): read(v, f"{field_name}.{m}.{k}")
                               for k, v in entry.items()}
        for m, entry in value.items()
    }  # fmt: skip


def _interval(value: Any, method: str, key: str) -> tuple[float | None, float | None]:
    path = f"intervals.{method}.{key}"
    if not isinstance(value, (list, tuple, np.ndarray)) or len(value) != 2:
        raise _Invalid(path, f"expected [lo, hi] (null for an open end), got {value!r}")
    lo, hi = _end(value[0], _at(path, 0)), _end(value[1], _at(path, 1))
    if lo is not None and hi is not None and lo > hi:
        raise _Invalid(path, f"expected lo ≤ hi, got [{lo}, {hi}]")
    return lo, hi


@dataclass(frozen=True, eq=False, kw_only=True)
class Results:
    """Everything an inference run leaves for plots and the report (``results.json``).

    Attributes:
        title: the report's title.
        parameters: the parameter names.
        parameter_labels: their LaTeX labels.
        parameter_units: their units (``"TeV^-2"``; ``""`` when unitless; default all ``""``).
        luminosity_ifb: integrated luminosity in fb⁻¹.
        levels: level name → its results (``{"parton": ..., "detector": ...}``).
        timings_s: step → seconds.
    """

    title: str
    parameters: tuple[str, ...]
    parameter_labels: tuple[str, ...]
    parameter_units: tuple[str, ...] = ()
    luminosity_ifb: float
    levels: dict[str, LevelResults]
    timings_s: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _set(self, "parameters", _names(self.parameters, "parameters"))
        n = len(self.parameters)
        if len(set(self.parameters)) != n:
            raise _Invalid("parameters", f"expected distinct names, got {list(self.parameters)}")
        _set(self, "parameter_units", tuple(self.parameter_units) or ("",) * n)
        for name in ("parameter_labels", "parameter_units"):
            values = tuple(getattr(self, name))
            if len(values) != n or not all(isinstance(v, str) for v in values):
                raise _Invalid(name, f"expected {n} strings (one per parameter), got {list(values)}")
            _set(self, name, values)
        _set(self, "luminosity_ifb", _number(self.luminosity_ifb, "luminosity_ifb"))
        _set(self, "timings_s", {_name(k, "timings_s"): _number(v, _at("timings_s", k))
                                 for k, v in self.timings_s.items()})  # fmt: skip
        for name, level in self.levels.items():
            try:
                level.check_parameters(self.parameters)
            except _Invalid as exc:
                raise _Invalid(_at(_at("levels", _name(name, "levels")), exc.path), exc.message) from None

    def to_dict(self) -> dict[str, Any]:
        """The JSON layout of ``results.json`` (docs/results.md): lists, ``null`` for NaN/inf/open ends."""
        return strict_json({"format": FORMAT, "schema_version": SCHEMA_VERSION, "title": self.title,
                      "parameters": self.parameters, "parameter_labels": self.parameter_labels,
                      "parameter_units": self.parameter_units, "luminosity_ifb": self.luminosity_ifb,
                      "levels": {k: _level_dict(v) for k, v in self.levels.items()},
                      "timings_s": self.timings_s})  # fmt: skip

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<results>") -> Results:
        """Check ``data`` (parsed ``results.json``) once and build the objects.

        Raises:
            StoreError: anything malformed, as ``"<source>: <key path>: <what was expected>"``.
        """
        try:
            return _read_results(data)
        except _Invalid as exc:
            raise StoreError(f"{source}: {exc}") from None

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write ``results.json`` atomically (its folder made if missing); returns its path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, self.to_dict(), indent=1)
        return path

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> Results:
        """Read and check ``results.json``.

        Raises:
            StoreError: the file is missing, not JSON, or malformed (naming the file and key path).
        """
        path = Path(path)
        data = read_json(path, missing="not found; expected the results.json an inference run writes "
                         "(docs/results.md)", unreadable="cannot read it as JSON")  # fmt: skip
        return cls.from_dict(data, source=str(path))


# --- JSON out -------------------------------------------------------------------------------------------


def strict_json(value: Any) -> Any:
    """Arrays and tuples to lists, NaN/±inf to None, dataclass-free (strict JSON)."""
    if isinstance(value, Mapping):
        return {str(k): strict_json(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return strict_json(value.tolist())
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


_CALIBRATION = ("theta", "r_hat_mean", "r_hat_std")
_NEYMAN = ("theta", "n_toys", "critical", "regions", "wilks_regions")
_DISTRIBUTION = ("label", "edges", "benchmarks")


def _level_dict(level: LevelResults) -> dict[str, Any]:
    def scan(s: Scan1D | Scan2D) -> dict:
        keys = ("parameter", "theta") if isinstance(s, Scan1D) else ("parameters", "axes")
        return {k: getattr(s, k) for k in (*keys, "fixed", "q")}

    def parts(obj: Any, *keys: str) -> dict | None:
        return None if obj is None else {k: getattr(obj, k) for k in keys}

    return {
        "label": level.label, "n_events": level.n_events, "data": level.data,
        "scans_1d": {p: scan(s) for p, s in level.scans_1d.items()},
        "scans_2d": [scan(s) for s in level.scans_2d],
        "intervals": level.intervals, "best_fit": level.best_fit,
        "fisher": parts(level.fisher, "theta", "information"),
        "histories": {m: [h.to_dict() for h in members] for m, members in level.histories.items()},
        "calibration": {m: parts(c, *_CALIBRATION) for m, c in level.calibration.items()},
        "distributions": {k: parts(d, *_DISTRIBUTION) for k, d in level.distributions.items()},
        "cut_flow": parts(level.cut_flow, "names", "efficiency"),
        "checks": level.checks, "warnings": level.warnings,
        "coverage": parts(level.coverage, "theta_true", "n_toys", "confidence_levels", "coverage"),
        "regions": level.regions, "minima": level.minima, "significance": level.significance,
        "search": level.search,
        "neyman": {m: {p: parts(b, *_NEYMAN) for p, b in entry.items()} for m, entry in level.neyman.items()},
        "systematics": level.systematics,
    }  # fmt: skip


# --- JSON in: types, then the constructors' checks ----------------------------------------------------

_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
               float: "a number", type(None): "null"}  # fmt: skip


def _kind(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _object(value: Any, path: str, required: Sequence[str], optional: Sequence[str] = ()) -> dict:
    """A JSON object with every ``required`` key and no key outside ``required + optional``."""
    if not isinstance(value, Mapping):
        raise _Invalid(path, f"expected an object with keys {list(required)}, got {_kind(value)}")
    for key in required:
        if key not in value:
            raise _Invalid(_at(path, key), "missing (a required key)")
    for key in value:
        if key not in required and key not in optional:
            raise _Invalid(_at(path, str(key)), f"unknown key; expected one of {[*required, *optional]}")
    return dict(value)


def _of(value: Any, path: str, kind: type | tuple[type, ...], what: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, kind):
        raise _Invalid(path, f"expected {what}, got {_kind(value)} {value!r}"[:200])
    return value


def _str(value: Any, path: str) -> str:
    return _of(value, path, str, "a string")


def _strs(value: Any, path: str) -> tuple[str, ...]:
    return tuple(_str(v, _at(path, i)) for i, v in enumerate(_of(value, path, (list, tuple), "an array")))


def _num(value: Any, path: str) -> float:
    """A number; ``null`` is NaN."""
    return math.nan if value is None else float(_of(value, path, (int, float), "a number or null"))


def _numbers(value: Any, path: str) -> Any:
    """Nested lists of numbers/null, unchanged (the constructors make arrays and check the shapes)."""
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            if isinstance(v, (list, tuple)):
                _numbers(v, _at(path, i))
            else:
                _num(v, _at(path, i))
        if len({len(v) if isinstance(v, (list, tuple)) else -1 for v in value}) > 1:
            raise _Invalid(path, "expected a rectangular array (rows of equal length)")
        return value
    if isinstance(value, np.ndarray):
        return value
    raise _Invalid(path, f"expected an array of numbers, got {_kind(value)}")


def _each(value: Any, path: str, read: Callable[[Any, str], _T]) -> dict[str, _T]:
    """A JSON object of name → ``read(entry, path.name)``."""
    if not isinstance(value, Mapping):
        raise _Invalid(path, f"expected an object (name → entry), got {_kind(value)}")
    return {_name(k, path): read(v, _at(path, k)) for k, v in value.items()}


def _seq(value: Any, path: str, read: Callable[[Any, str], _T]) -> tuple[_T, ...]:
    return tuple(read(v, _at(path, i)) for i, v in enumerate(_of(value, path, (list, tuple), "an array")))


def _maybe(value: Any, path: str, read: Callable[[Any, str], _T]) -> _T | None:
    return None if value is None else read(value, path)


def _read_loss_curve(data: Any, path: str) -> LossCurve:
    if not isinstance(data, Mapping):
        raise _Invalid(path, f"expected an object (History.to_dict()), got {_kind(data)}")
    d = _object({k: v for k, v in data.items() if k in _HISTORY_KEYS}, path, _HISTORY_KEYS)
    extra = {k: v for k, v in data.items() if k not in _HISTORY_KEYS}
    return _build(LossCurve, path, train_loss=_numbers(d["train_loss"], _at(path, "train_loss")),
                  val_loss=_numbers(d["val_loss"], _at(path, "val_loss")),
                  best_epoch=d["best_epoch"], extra=extra)  # fmt: skip


def _read_scan_1d(data: Any, path: str) -> Scan1D:
    d = _object(data, path, ("theta", "q"), ("parameter", "fixed"))
    parameter = _str(d.get("parameter", path.rpartition(".")[2]), _at(path, "parameter"))
    return _build(Scan1D, path, parameter=parameter, theta=_numbers(d["theta"], _at(path, "theta")),
                  fixed=_each(d.get("fixed", {}), _at(path, "fixed"), _num),
                  q=_each(d["q"], _at(path, "q"), _numbers))  # fmt: skip


def _read_scan_2d(data: Any, path: str) -> Scan2D:
    d = _object(data, path, ("parameters", "axes", "q"), ("fixed",))
    return _build(Scan2D, path, parameters=_strs(d["parameters"], _at(path, "parameters")),
                  axes=_seq(d["axes"], _at(path, "axes"), _numbers),
                  fixed=_each(d.get("fixed", {}), _at(path, "fixed"), _num),
                  q=_each(d["q"], _at(path, "q"), _numbers))  # fmt: skip


def _reader(cls: type, required: Sequence[str], optional: Sequence[str] = (), **reads: Callable) -> Callable:
    """A reader of a flat part: its keys read by ``reads`` (default: as they are), then ``cls(**keys)``."""

    def read(data: Any, path: str) -> Any:
        d = _object(data, path, required, optional)
        kwargs = {k: reads.get(k, lambda v, _: v)(v, _at(path, k)) for k, v in d.items()}
        return _build(cls, path, **kwargs)

    return read


_read_fisher = _reader(FisherInformation, ("theta", "information"), theta=_numbers,
                       information=lambda v, p: _each(v, p, _numbers))  # fmt: skip
_read_calibration = _reader(Calibration, ("theta", "r_hat_mean"), ("r_hat_std",), theta=_numbers,
                            r_hat_mean=_numbers, r_hat_std=lambda v, p: _maybe(v, p, _numbers))  # fmt: skip
_read_distribution = _reader(Distribution, ("label", "edges", "benchmarks"), label=_str, edges=_numbers,
                             benchmarks=lambda v, p: _each(v, p, _numbers))  # fmt: skip
_read_cut_flow = _reader(CutFlowResult, ("names", "efficiency"), names=_strs, efficiency=_numbers)
_read_coverage = _reader(Coverage, ("theta_true", "n_toys", "confidence_levels", "coverage"),
                         theta_true=_numbers, confidence_levels=lambda v, p: _seq(v, p, _num),
                         coverage=lambda v, p: _each(v, p, lambda f, q: _each(f, q, _num)))  # fmt: skip


_read_neyman = _reader(NeymanBeltResult, _NEYMAN, theta=_numbers,
                       critical=lambda v, p: _each(v, p, _numbers),
                       regions=lambda v, p: _each(v, p, _as_is_seq),
                       wilks_regions=lambda v, p: _each(v, p, _as_is_seq))  # fmt: skip


def _check_value(value: Any, path: str) -> float | str:
    return value if isinstance(value, str) else _num(value, path)


def _as_is_seq(value: Any, path: str) -> tuple:
    return _seq(value, path, lambda v, _: v)


def _number_pairs(value: Any, path: str) -> tuple:
    return _seq(value, path, lambda pair, p: tuple(_seq(pair, p, _num)))


def _read_level(data: Any, path: str) -> LevelResults:
    reads: dict[str, Callable[[Any, str], Any]] = {
        "label": _str, "n_events": lambda v, p: _each(v, p, lambda n, _: n), "data": _str,
        "scans_1d": lambda v, p: _each(v, p, _read_scan_1d),
        "scans_2d": lambda v, p: _seq(v, p, _read_scan_2d),
        "intervals": lambda v, p: _each(v, p, lambda e, q: _each(e, q, lambda i, _: i)),
        "best_fit": lambda v, p: _each(v, p, lambda e, q: _each(e, q, _num)),
        "fisher": lambda v, p: _maybe(v, p, _read_fisher),
        "histories": lambda v, p: _each(v, p, lambda h, q: _seq(h, q, _read_loss_curve)),
        "calibration": lambda v, p: _each(v, p, _read_calibration),
        "distributions": lambda v, p: _each(v, p, _read_distribution),
        "cut_flow": lambda v, p: _maybe(v, p, _read_cut_flow),
        "checks": lambda v, p: _each(v, p, _check_value),
        "warnings": _strs,
        "coverage": lambda v, p: _maybe(v, p, _read_coverage),
        "regions": lambda v, p: _each(v, p, lambda e, q: _each(e, q, _as_is_seq)),
        "minima": lambda v, p: _each(v, p, lambda e, q: _each(e, q, _number_pairs)),
        "significance": lambda v, p: _each(v, p, lambda e, q: _each(e, q, _num)),
        "search": lambda v, p: _each(v, p, _num),
        "neyman": lambda v, p: _each(v, p, lambda e, q: _each(e, q, _read_neyman)),
        "systematics": lambda v, p: _each(v, p, lambda e, q: _each(e, q, lambda n, r: _each(n, r, _num))),
    }  # fmt: skip
    required = ("label", "scans_1d", "intervals")
    d = _object(data, path, required, [k for k in reads if k not in required])
    return _build(LevelResults, path, **{k: reads[k](v, _at(path, k)) for k, v in d.items()})


_TOP = ("format", "schema_version", "title", "parameters", "parameter_labels", "luminosity_ifb", "levels")


def _read_results(data: Any) -> Results:
    d = _object(data, "", _TOP, ("parameter_units", "timings_s"))
    if d["format"] != FORMAT:
        raise _Invalid("format", f"expected {FORMAT!r}, got {d['format']!r}: not an assay results file")
    version = d["schema_version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _Invalid("schema_version", f"expected a whole number ≥ 1, got {version!r}")
    if version > SCHEMA_VERSION:
        raise _Invalid("schema_version", f"{version} is newer than this assay reads ({SCHEMA_VERSION}); "
                       "upgrade assay")  # fmt: skip
    return _build(
        Results, "",
        title=_str(d["title"], "title"), parameters=_strs(d["parameters"], "parameters"),
        parameter_labels=_strs(d["parameter_labels"], "parameter_labels"),
        parameter_units=_strs(d.get("parameter_units", []), "parameter_units"),
        luminosity_ifb=_num(d["luminosity_ifb"], "luminosity_ifb"),
        levels=_each(d["levels"], "levels", _read_level),
        timings_s=_each(d.get("timings_s", {}), "timings_s", _num),
    )  # fmt: skip
