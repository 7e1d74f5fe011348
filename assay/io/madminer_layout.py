"""MadMiner's HDF5 file layout, read with h5py only (no dependency on the madminer package).

Follows ``madminer/utils/interfaces/hdf5.py`` of github.com/madminer-tool/madminer (commit 3e2615d,
``save_madminer_settings`` / ``load_madminer_settings`` / ``save_nuisance_setup`` / ``save_events``
/ ``load_events``) and, for files of older MadMiner versions, the legacy
``madminer/utils/interfaces/madminer_hdf5.py`` (removed in f9a66b3: ``parameters/ranges``,
``sample_summary/signal_events_per_benchmark``, ``""`` for a missing nuisance benchmark):

- ``parameters/``: ``names``, ``lha_blocks``, ``transforms`` (S256 ASCII bytes), ``lha_ids``,
  ``max_power`` (int), ``val_ranges`` (n_params, 2) float.
- ``benchmarks/``: ``names`` (S256), ``values`` (n_benchmarks, n_params), ``is_nuisance`` and
  ``is_reference`` (int 0/1; optional). Nuisance benchmarks (weights at ν = ±1) come after the physics
  ones with θ = 0; their weights are rescaled to the reference benchmark's θ (``LHEReader``).
- ``morphing/``: ``components`` (n_components, n_params) int, ``morphing_matrix``
  (n_components, n_physics_benchmarks): c_k(θ) = Σ_c φ_c(θ) M_ck (``PhysicsMorpher``). Optional.
- ``observables/``: ``names``, ``definitions`` (S256; ``"None"`` for a Python callable).
- ``samples/``: ``observations`` (n_events, n_obs), ``weights`` (n_events, n_benchmarks) in pb,
  ``sampling_benchmarks`` (n_events,) int: the physics benchmark an event was generated at, −1 for
  background events.
- ``sample_summary/``: ``signal_events`` (n_physics_benchmarks,) int, ``background_events`` int.
- ``nuisance_parameters/``: ``names``, ``systematics``, ``benchmark_positive``,
  ``benchmark_negative`` (S256, ``"None"`` where absent). Optional.
- ``systematics/`` (``names``, ``types``, ``values``, ``scales``) and ``finite_differences/``
  (``base_benchmarks``, ``shifted_benchmarks``, ``epsilon``): optional, kept as provenance.

Every problem is one :class:`MadMinerFormatError` naming the file, the group or dataset and what was
expected.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from assay.io.madminer_datasets import DatasetReader, MadMinerFormatError, text

__all__ = [
    "MadMinerFormatError",
    "MadMinerNuisance",
    "MadMinerParameter",
    "MadMinerSetup",
    "iter_samples",
    "read_setup",
]

ID_CHUNK = 2**22  # sampling ids checked and counted per read
EMPTY = ("None", "")  # MadMiner's EMPTY_EXPR = str(None); legacy files wrote ""


@dataclass(frozen=True)
class MadMinerParameter:
    """One ``parameters/`` entry: name, LHA block and id, max power, range (low, high), transform."""

    name: str
    lha_block: str
    lha_id: int
    max_power: int
    range: tuple[float, float]
    transform: str


@dataclass(frozen=True)
class MadMinerNuisance:
    """One ``nuisance_parameters/`` entry: benchmarks at ν = +1 and (optionally) ν = −1."""

    name: str
    systematic: str
    benchmark_pos: str | None
    benchmark_neg: str | None


@dataclass(frozen=True)
class MadMinerSetup:
    """Everything of a MadMiner file but the events.

    Attributes:
        path: the file.
        parameters: the analysis parameters, in file order.
        benchmark_names: all benchmarks (physics and nuisance), in file order = weight columns.
        benchmark_values: θ of every benchmark ``(n_benchmarks, n_params)``.
        is_nuisance: ``(n_benchmarks,)`` bool.
        reference: the reference benchmark (``is_reference``), or None.
        components: morphing exponents ``(n_components, n_params)`` int, or None.
        morphing_matrix: ``(n_components, n_physics)``, or None.
        observables, definitions: x column names and their MadMiner expressions.
        nuisances: the nuisance parameters.
        signal_events: events generated per physics benchmark ``(n_physics,)``.
        background_events: background events.
        n_events: rows of ``samples/``.
        has_sampling_ids: the file has ``samples/sampling_benchmarks`` (else no sampling factors apply).
        provenance: systematics and finite differences, JSON-able.
    """

    path: Path
    parameters: tuple[MadMinerParameter, ...]
    benchmark_names: tuple[str, ...]
    benchmark_values: np.ndarray
    is_nuisance: np.ndarray
    reference: str | None
    components: np.ndarray | None
    morphing_matrix: np.ndarray | None
    observables: tuple[str, ...]
    definitions: tuple[str, ...]
    nuisances: tuple[MadMinerNuisance, ...]
    signal_events: np.ndarray
    background_events: int
    n_events: int
    has_sampling_ids: bool
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def parameter_names(self) -> list[str]:
        return [p.name for p in self.parameters]

    @property
    def physics(self) -> np.ndarray:
        """Indices of the physics benchmarks among all ``(n_physics,)``."""
        return np.flatnonzero(~self.is_nuisance)

    @property
    def physics_names(self) -> list[str]:
        return [self.benchmark_names[i] for i in self.physics]

    @property
    def physics_thetas(self) -> np.ndarray:
        """θ of the physics benchmarks ``(n_physics, n_params)``."""
        return self.benchmark_values[self.physics]

    def sampling_factors(self) -> np.ndarray:
        """MadMiner's ``DataAnalyzer._calculate_sampling_factors``: N_b / Σ N per physics benchmark, then 1.0
        for background (index −1), ``(n_physics + 1,)``. Each sample's weights sum to σ; these make the
        whole file's sum σ."""
        events = self.signal_events.astype(float)
        total = events.sum()
        return np.append(events / total if total > 0 else np.ones_like(events), 1.0)


def read_setup(path: str | os.PathLike[str]) -> MadMinerSetup:
    """Read and check the settings of a MadMiner file.

    Raises:
        MadMinerFormatError: naming the file and the group/dataset: a missing mandatory group, a
            dataset of the wrong type or shape, or settings that contradict each other.
    """
    path = Path(path)
    try:
        file = h5py.File(path, "r")
    except FileNotFoundError as err:
        raise MadMinerFormatError(f"{path}: no such file") from err
    except OSError as err:
        raise MadMinerFormatError(f"{path}: not a readable HDF5 file: {err}") from err
    with file:
        return _Reader(path, file).setup()


def iter_samples(
    setup: MadMinerSetup, chunk_events: int = 100_000
) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray | None]]:
    """Stream ``samples/``: ``(start, observations (n, n_obs), weights (n, n_benchmarks) in pb, ids (n,))``.

    ``ids`` are ``samples/sampling_benchmarks`` (−1 for background), None where the file has none.
    """
    with h5py.File(setup.path, "r") as file:
        obs, weights = file["samples/observations"], file["samples/weights"]
        ids = file["samples/sampling_benchmarks"] if setup.has_sampling_ids else None
        for start in range(0, setup.n_events, chunk_events):
            stop = min(start + chunk_events, setup.n_events)
            got = None if ids is None else ids[start:stop].astype(np.int64)
            yield start, obs[start:stop].astype(float), weights[start:stop].astype(float), got


class _Reader(DatasetReader):
    """Reads the sections of one open file; every check names ``path`` and the dataset."""

    def setup(self) -> MadMinerSetup:
        parameters = self.parameters()
        names, values, nuisance, reference = self.benchmarks(len(parameters))
        n_physics = int((~nuisance).sum())
        components, matrix = self.morphing(len(parameters), n_physics)
        observables, definitions = self.observables()
        n_events, counted = self.samples(len(observables), len(names), n_physics)
        signal, background = self.summary(n_physics, n_events, counted)
        nuisances = self.nuisances(names, nuisance, reference)
        return MadMinerSetup(
            self.path,
            parameters,
            tuple(names),
            values,
            nuisance,
            reference,
            components,
            matrix,
            tuple(observables),
            tuple(definitions),
            nuisances,
            signal,
            background,
            n_events,
            "samples/sampling_benchmarks" in self.file,
            self.provenance(),
        )

    def parameters(self) -> tuple[MadMinerParameter, ...]:
        self.group("parameters", required=True)
        names = self.strings("parameters/names")
        n = len(names)
        if n == 0 or len(set(names)) < n:
            raise self.fail("parameters/names", f"expected distinct, non-empty names, got {names}")
        blocks = self.strings("parameters/lha_blocks", n)
        transforms = self.strings("parameters/transforms", n)
        ids = self.numbers("parameters/lha_ids", (n,), kind="i")
        powers = self.numbers("parameters/max_power", (n,), kind="i")
        ranges = self.numbers("parameters/val_ranges", (n, 2), "parameters/ranges")
        bad = np.flatnonzero(ranges[:, 0] >= ranges[:, 1])
        if bad.size:
            raise self.fail(
                "parameters/val_ranges",
                f"expected low < high per parameter, got {ranges[bad[0]].tolist()} for {names[bad[0]]!r}",
            )
        return tuple(
            MadMinerParameter(nm, b, int(i), int(p), (float(r[0]), float(r[1])), t)
            for nm, b, i, p, r, t in zip(names, blocks, ids, powers, ranges, transforms)
        )

    def benchmarks(self, n_params: int) -> tuple[list[str], np.ndarray, np.ndarray, str | None]:
        self.group("benchmarks", required=True)
        names = self.strings("benchmarks/names")
        if not names or len(set(names)) < len(names):
            raise self.fail("benchmarks/names", f"expected distinct, non-empty names, got {names}")
        values = self.numbers("benchmarks/values", (len(names), n_params))
        flags = {}
        for key in ("is_nuisance", "is_reference"):
            present = f"benchmarks/{key}" in self.file
            raw = (
                self.numbers(f"benchmarks/{key}", (len(names),), kind="i")
                if present
                else np.zeros(len(names))
            )
            if np.any((raw != 0) & (raw != 1)):
                raise self.fail(f"benchmarks/{key}", f"expected flags 0 or 1, got {raw.tolist()}")
            flags[key] = raw.astype(bool)
        if flags["is_nuisance"].all():
            raise self.fail(
                "benchmarks/is_nuisance", "every benchmark is a nuisance benchmark; expected physics ones"
            )
        refs = [n for n, f in zip(names, flags["is_reference"]) if f]
        if len(refs) > 1:
            raise self.fail(
                "benchmarks/is_reference", f"expected at most one reference benchmark, got {refs}"
            )
        return names, values, flags["is_nuisance"], (refs[0] if refs else None)

    def morphing(self, n_params: int, n_physics: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        if not self.group("morphing", required=False):
            return None, None
        components = self.numbers("morphing/components", (None, n_params), kind="i")
        if np.any(components < 0) or len(np.unique(components, axis=0)) < len(components):
            raise self.fail(
                "morphing/components", f"expected distinct rows of exponents >= 0, got {components.tolist()}"
            )
        matrix = self.numbers("morphing/morphing_matrix", (len(components), n_physics))
        return components, matrix

    def observables(self) -> tuple[list[str], list[str]]:
        self.group("observables", required=True)
        names = self.strings("observables/names")
        if not names or len(set(names)) < len(names):
            raise self.fail("observables/names", f"expected distinct, non-empty names, got {names}")
        return names, self.strings("observables/definitions", len(names))

    def samples(self, n_obs: int, n_benchmarks: int, n_physics: int) -> tuple[int, np.ndarray | None]:
        """The number of events and the sampling ids' counts (background first; None without ids)."""
        self.group("samples", required=True)
        obs = self.dataset("samples/observations")
        weights = self.dataset("samples/weights")
        if obs.ndim != 2 or obs.shape[1] != n_obs or obs.dtype.kind not in "iuf":
            raise self.fail(
                "samples/observations",
                f"expected numbers of shape (n_events, {n_obs}) for observables "
                f"/observables/names, got {obs.dtype} {obs.shape}",
            )
        if (
            weights.ndim != 2
            or weights.shape != (obs.shape[0], n_benchmarks)
            or weights.dtype.kind not in "iuf"
        ):
            raise self.fail(
                "samples/weights",
                f"expected numbers of shape ({obs.shape[0]}, {n_benchmarks}): one row per "
                f"event of samples/observations, one column per benchmark of "
                f"/benchmarks/names; got {weights.dtype} {weights.shape}",
            )
        if obs.shape[0] == 0:
            raise self.fail("samples/observations", "no events")
        ids, counted = self.file.get("samples/sampling_benchmarks"), None
        if ids is not None:
            if (
                not isinstance(ids, h5py.Dataset)
                or ids.shape != (obs.shape[0],)
                or ids.dtype.kind not in "iu"
            ):
                got = f"{ids.dtype} {ids.shape}" if isinstance(ids, h5py.Dataset) else "a group"
                raise self.fail(
                    "samples/sampling_benchmarks", f"expected integers of shape ({obs.shape[0]},), got {got}"
                )
            counted = np.zeros(n_physics + 1, dtype=np.int64)  # background first, then per benchmark
            for start in range(0, len(ids), ID_CHUNK):  # bounded memory for any number of events
                values = ids[start : start + ID_CHUNK]
                bad = np.flatnonzero((values < -1) | (values >= n_physics))
                if bad.size:
                    raise self.fail(
                        "samples/sampling_benchmarks",
                        f"value {values[bad[0]]} in row {start + bad[0]} is outside [-1, {n_physics - 1}] "
                        f"(physics benchmark index, -1 for background)",
                    )
                counted += np.bincount(values + 1, minlength=n_physics + 1)
        return int(obs.shape[0]), (counted if ids is not None else None)

    def summary(self, n_physics: int, n_events: int, counted: np.ndarray | None) -> tuple[np.ndarray, int]:
        """Events per physics benchmark and background; ``counted``: the sampling ids' counts (background
        first), which the summary must equal."""
        if not self.group("sample_summary", required=False):
            if counted is None:
                return np.array([n_events] + [0] * (n_physics - 1)), 0
            return counted[1:], int(counted[0])  # as combine_and_shuffle(recalculate_header=True) would
        name = "sample_summary/signal_events"
        signal = self.numbers(name, (n_physics,), "sample_summary/signal_events_per_benchmark", kind="i")
        background = int(self.numbers("sample_summary/background_events", (), kind="i"))
        if counted is not None and (np.any(signal != counted[1:]) or background != counted[0]):
            raise self.fail(
                "sample_summary",
                f"signal_events {signal.tolist()} and background_events {background} "
                f"disagree with samples/sampling_benchmarks, which count "
                f"{counted[1:].tolist()} and {int(counted[0])}; they set the weights' "
                f"normalisation: recompute them with MadMiner's combine_and_shuffle("
                f"..., recalculate_header=True)",
            )
        if np.any(signal < 0) or background < 0 or signal.sum() + background != n_events:
            raise self.fail(
                "sample_summary",
                f"signal_events {signal.tolist()} + background_events {background} "
                f"should be the {n_events} events of samples/",
            )
        return signal, background

    def nuisances(
        self, names: list[str], nuisance: np.ndarray, reference: str | None
    ) -> tuple[MadMinerNuisance, ...]:
        if not self.group("nuisance_parameters", required=False):
            return ()
        params = self.strings("nuisance_parameters/names")
        n = len(params)
        systematics = self.strings("nuisance_parameters/systematics", n)
        pos = self.strings("nuisance_parameters/benchmark_positive", n)
        neg = self.strings("nuisance_parameters/benchmark_negative", n)
        out = []
        for p, s, bp, bn in zip(params, systematics, pos, neg):
            bp, bn = (None if b in EMPTY else b for b in (bp, bn))
            for key, b in (("benchmark_positive", bp), ("benchmark_negative", bn)):
                if b is not None and (b not in names or not nuisance[names.index(b)]):
                    raise self.fail(
                        f"nuisance_parameters/{key}",
                        f"nuisance parameter {p!r} names benchmark {b!r}, "
                        f"expected one of the nuisance benchmarks "
                        f"{[m for m, f in zip(names, nuisance) if f]}",
                    )
            if bp is None:
                raise self.fail(
                    "nuisance_parameters/benchmark_positive", f"nuisance parameter {p!r} has none"
                )
            out.append(MadMinerNuisance(p, s, bp, bn))
        if out and reference is None:
            raise self.fail(
                "benchmarks/is_reference",
                "no reference benchmark flagged; the nuisance benchmarks' "
                "weights are relative to it (MadMiner's NuisanceMorpher)",
            )
        return tuple(out)

    def provenance(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.group("systematics", required=False):
            names = self.strings("systematics/names")
            keys = ("types", "values", "scales")
            columns = [self.strings(f"systematics/{k}", len(names)) for k in keys]
            out["systematics"] = [dict(zip(("name", *keys), row)) for row in zip(names, *columns)]
        if self.group("finite_differences", required=False):
            base = self.strings("finite_differences/base_benchmarks")
            shifted = self.dataset("finite_differences/shifted_benchmarks")[()]
            decoded = [[text(v) for v in row] for row in np.atleast_2d(shifted)]
            self.length("finite_differences/shifted_benchmarks", decoded, len(base))
            eps = np.ravel(self.dataset("finite_differences/epsilon")[()])  # () now, (1,) in legacy files
            if eps.size != 1 or eps.dtype.kind not in "iuf":
                raise self.fail(
                    "finite_differences/epsilon", f"expected one number, got {eps.dtype} {eps.shape}"
                )
            out["finite_differences"] = {
                "base_benchmarks": base,
                "shifted_benchmarks": decoded,
                "epsilon": float(eps[0]),
            }
        return out
