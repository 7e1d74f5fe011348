"""Parameter space: named theory parameters, benchmarks and priors over θ.

θ is always a float array of shape ``(n_params,)``; many θ have shape
``(n_theta, n_params)``. Priors draw θ with a ``numpy.random.Generator`` that the
caller passes in, so every draw is reproducible from a seed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from assay.exceptions import ConfigError

__all__ = [
    "Benchmark",
    "FixedPrior",
    "GaussianPrior",
    "GridPrior",
    "Parameter",
    "ParameterSpace",
    "Prior",
    "UniformPrior",
]


@dataclass(frozen=True)
class Parameter:
    """One theory parameter.

    Args:
        name: identifier used in configs and files, e.g. ``"cHWtilde"``.
        range: (low, high) of the region of interest (scans, basis optimisation).
        unit: free text unit, e.g. ``"TeV^-2"``; ``""`` for dimensionless.
        sm: value at the Standard Model point.
        latex: label for plots; defaults to ``name``.
    """

    name: str
    range: tuple[float, float]
    unit: str = ""
    sm: float = 0.0
    latex: str | None = None

    def __post_init__(self) -> None:
        low, high = self.range
        if not low < high:
            raise ConfigError(f"parameter {self.name!r}: range must have low < high, got {self.range}")

    @property
    def label(self) -> str:
        return self.latex or self.name


@dataclass(frozen=True)
class Benchmark:
    """A named parameter point θ_k, shape ``(n_params,)``."""

    name: str
    theta: tuple[float, ...]


@dataclass(frozen=True)
class ParameterSpace:
    """Parameters plus named benchmark points.

    Example:
        >>> space = ParameterSpace.from_dict(
        ...     [Parameter("a", (-1, 1)), Parameter("b", (-1, 1))],
        ...     {"sm": {"a": 0, "b": 0}, "a1": {"a": 1}},
        ... )
        >>> space.theta("a1")
        array([1., 0.])
    """

    parameters: tuple[Parameter, ...]
    benchmarks: tuple[Benchmark, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        names = self.names
        if len(set(names)) != len(names):
            raise ConfigError(f"parameter names must be unique, got {names}")
        bnames = self.benchmark_names
        if len(set(bnames)) != len(bnames):
            raise ConfigError(f"benchmark names must be unique, got {bnames}")
        for b in self.benchmarks:
            if len(b.theta) != self.n_params:
                raise ConfigError(
                    f"benchmark {b.name!r}: expected {self.n_params} values {names}, got {b.theta}"
                )

    @classmethod
    def from_dict(
        cls, parameters: Sequence[Parameter], benchmarks: Mapping[str, Mapping[str, float]]
    ) -> ParameterSpace:
        """Build from ``{benchmark: {parameter: value}}``; missing parameters take their SM value."""
        names = [p.name for p in parameters]
        points = []
        for bname, values in benchmarks.items():
            unknown = sorted(set(values) - set(names))
            if unknown:
                raise ConfigError(
                    f"benchmark {bname!r}: unknown parameter(s) {unknown}; expected one of {names}"
                )
            points.append(Benchmark(bname, tuple(float(values.get(p.name, p.sm)) for p in parameters)))
        return cls(tuple(parameters), tuple(points))

    @property
    def n_params(self) -> int:
        return len(self.parameters)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    @property
    def benchmark_names(self) -> list[str]:
        return [b.name for b in self.benchmarks]

    @property
    def sm(self) -> np.ndarray:
        """SM point, shape ``(n_params,)``."""
        return np.array([p.sm for p in self.parameters], dtype=float)

    @property
    def ranges(self) -> np.ndarray:
        """Ranges, shape ``(n_params, 2)``."""
        return np.array([p.range for p in self.parameters], dtype=float)

    @property
    def benchmark_thetas(self) -> np.ndarray:
        """All benchmark points, shape ``(n_benchmarks, n_params)``."""
        return np.array([b.theta for b in self.benchmarks], dtype=float).reshape(-1, self.n_params)

    def theta(self, benchmark: str) -> np.ndarray:
        """θ of a named benchmark, shape ``(n_params,)``."""
        for b in self.benchmarks:
            if b.name == benchmark:
                return np.array(b.theta, dtype=float)
        raise KeyError(f"unknown benchmark {benchmark!r}; known: {self.benchmark_names}")

    def with_benchmarks(self, thetas: np.ndarray, names: Sequence[str]) -> ParameterSpace:
        """Copy with the benchmarks replaced by ``thetas`` ``(n_benchmarks, n_params)``."""
        thetas = np.asarray(thetas, dtype=float).reshape(-1, self.n_params)
        if len(names) != len(thetas):
            raise ConfigError(f"with_benchmarks: got {len(names)} names for {len(thetas)} points")
        return ParameterSpace(
            self.parameters, tuple(Benchmark(n, tuple(map(float, t))) for n, t in zip(names, thetas))
        )

    def to_dict(self) -> dict:
        """JSON-able description (stored in event files)."""
        return {
            "parameters": [
                {"name": p.name, "range": list(p.range), "unit": p.unit, "sm": p.sm, "latex": p.latex}
                for p in self.parameters
            ],
            "benchmarks": {b.name: dict(zip(self.names, b.theta)) for b in self.benchmarks},
        }

    @classmethod
    def from_json(cls, data: Mapping) -> ParameterSpace:
        """Inverse of :meth:`to_dict`."""
        params = [
            Parameter(d["name"], tuple(d["range"]), d.get("unit", ""), d.get("sm", 0.0), d.get("latex"))
            for d in data["parameters"]
        ]
        return cls.from_dict(params, data.get("benchmarks", {}))


class Prior:
    """Distribution over θ. Subclasses implement :meth:`sample`."""

    n_params: int

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draw ``n`` points, shape ``(n, n_params)``."""
        raise NotImplementedError


def _vector(value: float | Sequence[float], n_params: int, name: str) -> np.ndarray:
    arr = np.broadcast_to(np.asarray(value, dtype=float), (n_params,)).copy()
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{name}: expected finite values, got {value}")
    return arr


@dataclass(frozen=True)
class GaussianPrior(Prior):
    """Independent normal distributions N(mean_a, std_a²) per parameter.

    Example:
        >>> GaussianPrior(mean=0.0, std=0.4, n_params=2).sample(3, np.random.default_rng(0)).shape
        (3, 2)
    """

    mean: float | Sequence[float]
    std: float | Sequence[float]
    n_params: int = 1

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        mean = _vector(self.mean, self.n_params, "GaussianPrior.mean")
        std = _vector(self.std, self.n_params, "GaussianPrior.std")
        if np.any(std <= 0):
            raise ConfigError(f"GaussianPrior.std: expected > 0, got {self.std}")
        return mean + std * rng.standard_normal((n, self.n_params))


@dataclass(frozen=True)
class UniformPrior(Prior):
    """Independent uniform distributions on [low_a, high_a)."""

    low: float | Sequence[float]
    high: float | Sequence[float]
    n_params: int = 1

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        low = _vector(self.low, self.n_params, "UniformPrior.low")
        high = _vector(self.high, self.n_params, "UniformPrior.high")
        if np.any(high <= low):
            raise ConfigError(f"UniformPrior: expected low < high, got {self.low}, {self.high}")
        return low + (high - low) * rng.random((n, self.n_params))


@dataclass(frozen=True)
class GridPrior(Prior):
    """Regular grid: ``n_points`` values per parameter between ``low`` and ``high`` (inclusive).

    ``sample(n)`` cycles through the grid in row-major order (``n`` may differ from
    the grid size); :meth:`points` returns the whole grid ``(n_grid, n_params)``.
    """

    low: float | Sequence[float]
    high: float | Sequence[float]
    n_points: int | Sequence[int]
    n_params: int = 1

    def points(self) -> np.ndarray:
        low = _vector(self.low, self.n_params, "GridPrior.low")
        high = _vector(self.high, self.n_params, "GridPrior.high")
        counts = np.broadcast_to(np.asarray(self.n_points, dtype=int), (self.n_params,))
        axes = [np.linspace(lo, hi, int(c)) for lo, hi, c in zip(low, high, counts)]
        mesh = np.meshgrid(*axes, indexing="ij")
        return np.stack([m.ravel() for m in mesh], axis=-1)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        pts = self.points()
        return pts[np.arange(n) % len(pts)]


@dataclass(frozen=True)
class FixedPrior(Prior):
    """Explicit list of points ``(n_points, n_params)``; ``sample`` draws from them uniformly."""

    thetas: tuple[tuple[float, ...], ...]

    @property
    def n_params(self) -> int:  # type: ignore[override]
        return len(self.thetas[0])

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        pts = np.asarray(self.thetas, dtype=float)
        return pts[rng.integers(0, len(pts), size=n)]
