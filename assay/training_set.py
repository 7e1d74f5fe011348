"""Training sets: arrays the estimators learn from, and their HDF5 files.

A training set holds, per sample, the observables x and whatever augmented data
its method needs (seed 001, Table I): θ0 and θ1, the label y (0: x drawn from θ0,
1: x drawn from θ1; MadMiner's convention), the joint log r(x,z|θ0,θ1), and the
joint scores t(x,z|θ0), t(x,z|θ1). Unused fields are ``None``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, fields
from pathlib import Path

import h5py
import numpy as np

from assay.exceptions import SamplingError, StoreError
from assay.provenance import Provenance, write_h5_provenance
from assay.saving import atomic_path, require_space

__all__ = [
    "ARRAYS", "FORMAT", "TrainingSet", "TrainingSetInfo", "TrainingSetWriter", "read_header", "read_info",
    "validate_file",
]  # fmt: skip

FORMAT = "assay.TrainingSet"  # the root attribute 'format' of a training-set file
_FORMAT = FORMAT
_SCHEMA_VERSION = 1
ARRAYS = ("x", "theta0", "theta1", "y", "log_r", "t0", "t1", "sample_weight")  # the per-sample datasets
_FINITE = ("x", "theta0", "theta1", "sample_weight")  # NaN/inf refused; log_r, t: NaN refused (±inf
# is a joint ratio or score at a zero weight)
_META_KEYS = {"observables": list, "parameters": list, "kind": str}
_COMPRESSION = {"compression": "gzip", "compression_opts": 1, "shuffle": True}
_CHUNK_BYTES = 1 << 18  # HDF5 chunk of an appended dataset: about 256 kB


@dataclass(frozen=True)
class TrainingSet:
    """Samples for training an estimator.

    Attributes:
        x: observables ``(n_samples, n_obs)``.
        theta0: numerator parameter point ``(n_samples, n_params)``.
        theta1: denominator parameter point ``(n_samples, n_params)``.
        y: 0 if x was drawn from θ0, 1 if from θ1, ``(n_samples,)``.
        log_r: joint log r(x,z|θ0,θ1), ``(n_samples,)``.
        t0: joint score t(x,z|θ0), ``(n_samples, n_params)``.
        t1: joint score t(x,z|θ1), ``(n_samples, n_params)``.
        sample_weight: ±1 (−1 for events drawn from negative weights), ``(n_samples,)``.
        observables: names of the columns of x.
        parameters: names of the columns of θ.
        kind: what the set was built for ("local_score", "ratio", "doubly_parameterized", "plain").
        event_index: index of each sample's event in its EventStore ``(n_samples,)``.
    """

    x: np.ndarray
    observables: tuple[str, ...]
    parameters: tuple[str, ...]
    kind: str
    theta0: np.ndarray | None = None
    theta1: np.ndarray | None = None
    y: np.ndarray | None = None
    log_r: np.ndarray | None = None
    t0: np.ndarray | None = None
    t1: np.ndarray | None = None
    sample_weight: np.ndarray | None = None
    event_index: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        """Check shapes, numeric dtypes and values.

        Raises:
            SamplingError: a wrong shape or dtype, NaN/inf in x, θ or the sample weights, NaN in the
                joint ratio or scores (naming the field and the first bad row).
        """
        if not isinstance(self.x, np.ndarray) or self.x.ndim != 2 or self.x.shape[1] != len(self.observables):
            raise SamplingError(
                f"x: expected shape (n_samples, {len(self.observables)}), got {np.shape(self.x)}"
            )
        n = len(self.x)
        for name in (*ARRAYS, "event_index"):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiub" or value.ndim == 0:
                raise SamplingError(f"{name}: expected a numeric array, got {type(value).__name__} "
                                    f"{getattr(value, 'dtype', '')}")  # fmt: skip
            if len(value) != n:
                raise SamplingError(f"{name}: expected {n} rows like x, got {len(value)}")
            flat = value.reshape(n, -1)
            bad = ~np.isfinite(flat) if name in _FINITE else np.isnan(flat)
            if value.dtype.kind == "f" and bad.any():
                row = int(np.argwhere(bad)[0][0])
                raise SamplingError(
                    f"{name}: {'non-finite' if name in _FINITE else 'NaN'} value in row {row} "
                    f"({flat[row].tolist()[:4]}); the events it came from need checking"
                )
        if self.y is not None and self.y.size and not np.isin(self.y, (0, 1)).all():
            raise SamplingError(f"y: expected labels 0 or 1, got {np.unique(self.y)[:5].tolist()}")

    def __len__(self) -> int:
        return len(self.x)

    @property
    def r(self) -> np.ndarray:
        """Joint likelihood ratio r(x,z|θ0,θ1), ``(n_samples,)``."""
        if self.log_r is None:
            raise AttributeError(f"this {self.kind} training set has no joint ratio")
        return np.exp(self.log_r)

    def save(self, path: str | os.PathLike, *, provenance: Provenance | None = None) -> Path:
        """Write to HDF5 atomically (:func:`~assay.saving.atomic_path`), creating missing parent folders.

        Args:
            path: the file.
            provenance: what made the set (:func:`assay.provenance.make_provenance`), stored as the root
                attribute ``provenance``.

        Returns:
            ``path``.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = [getattr(self, n) for n in (*ARRAYS, "event_index") if getattr(self, n) is not None]
        require_space(path, sum(a.nbytes for a in arrays))
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            _write_header(f, self.observables, self.parameters, self.kind, provenance)
            for name in (*ARRAYS, "event_index"):
                value = getattr(self, name)
                if value is not None:
                    f.create_dataset(name, data=value, chunks=True, **_COMPRESSION)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> TrainingSet:
        """Read a file written by :meth:`save`, validating format, shapes, dtypes and values.

        Raises:
            StoreError: naming the file: missing, not HDF5, truncated, foreign, newer, a missing or
                malformed field, or bad values (see ``__post_init__``).
        """
        path = Path(path)
        if not path.is_file():
            raise StoreError(f"{path}: cannot read training set (no such file; `assay run` makes it)")
        try:
            with h5py.File(path, "r") as f:
                meta = read_header(f, path)
                arrays = {k: _read_array(f, k, path) for k in (*ARRAYS, "event_index") if k in f}
        except StoreError:
            raise
        except (OSError, RuntimeError, KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"{path}: cannot read training set (truncated or damaged: {exc})") from exc
        if "x" not in arrays:
            raise StoreError(f"{path}: missing dataset 'x'")
        try:
            return cls(
                observables=tuple(meta["observables"]), parameters=tuple(meta["parameters"]),
                kind=meta["kind"], **arrays,
            )  # fmt: skip
        except ValueError as exc:
            raise StoreError(f"{path}: {exc}") from exc

    def fields_present(self) -> list[str]:
        """Names of the array fields that are set."""
        return [f.name for f in fields(self) if f.name in ARRAYS and getattr(self, f.name) is not None]

    @classmethod
    def concatenate(cls, sets: Sequence[TrainingSet]) -> TrainingSet:
        """The rows of ``sets`` one after another (one set is returned as it is).

        Raises:
            SamplingError: no sets, or sets of other kinds, names or fields.
        """
        if not sets:
            raise SamplingError("concatenate: expected at least one training set, got none")
        first = sets[0]
        for other in sets[1:]:
            if _layout(other) != _layout(first):
                raise SamplingError(
                    f"concatenate: a set with {_layout(other)} after one with {_layout(first)}"
                )
        if len(sets) == 1:
            return first
        arrays = {
            name: np.concatenate([getattr(s, name) for s in sets])
            for name in (*ARRAYS, "event_index")
            if getattr(first, name) is not None
        }
        return cls(observables=first.observables, parameters=first.parameters, kind=first.kind, **arrays)


def _layout(data: TrainingSet) -> tuple:
    """What two parts of one set share: kind, names and which fields are set."""
    present = tuple(n for n in (*ARRAYS, "event_index") if getattr(data, n) is not None)
    return data.kind, data.observables, data.parameters, present


def _write_header(
    f: h5py.File, observables: Sequence[str], parameters: Sequence[str], kind: str,
    provenance: Provenance | None,
) -> None:  # fmt: skip
    """The root attributes of a training-set file: format, schema version, provenance and meta."""
    f.attrs["format"] = _FORMAT
    f.attrs["schema_version"] = _SCHEMA_VERSION
    if provenance is not None:
        write_h5_provenance(f, provenance)
    meta = {"observables": list(observables), "parameters": list(parameters), "kind": kind}
    f.attrs["meta"] = json.dumps(meta)


class TrainingSetWriter:
    """Writes a training set part by part into its HDF5 file, without holding it (issue 17).

    The file has :meth:`TrainingSet.save`'s layout and attributes, its datasets growing with each
    :meth:`append` (resizable, gzip-compressed chunks of about 256 kB); it is written as a temporary
    file beside ``path`` that replaces ``path`` only when the ``with`` block ends without error
    (:func:`~assay.saving.atomic_path`). The arrays read back equal the parts one after another,
    bit for bit, as :meth:`TrainingSet.save` of :meth:`TrainingSet.concatenate` would write them.

    Args:
        path: the file (missing parent folders are made).
        observables, parameters, kind: as :class:`TrainingSet`; every part must match them.
        provenance: stored as the root attribute ``provenance``.
        n_bytes: the expected size of the arrays, checked against the free space first.

    Example:
        >>> import tempfile
        >>> part = TrainingSet(x=np.zeros((3, 1)), observables=("a",), parameters=("c",), kind="plain")
        >>> path = Path(tempfile.mkdtemp()) / "set.h5"
        >>> with TrainingSetWriter(path, observables=("a",), parameters=("c",), kind="plain") as out:
        ...     out.append(part)
        ...     out.append(part)
        >>> len(TrainingSet.load(path))
        6
    """

    def __init__(
        self, path: str | os.PathLike, *, observables: Sequence[str], parameters: Sequence[str], kind: str,
        provenance: Provenance | None = None, n_bytes: int = 0,
    ):  # fmt: skip
        self.path = Path(path)
        self.observables, self.parameters, self.kind = tuple(observables), tuple(parameters), kind
        self.provenance, self.n_bytes = provenance, int(n_bytes)
        self.n_samples = 0
        self._stack: ExitStack | None = None
        self._file: h5py.File | None = None
        self._fields: tuple[str, ...] | None = None

    def __enter__(self) -> TrainingSetWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        require_space(self.path, self.n_bytes)
        with ExitStack() as stack:
            tmp = stack.enter_context(atomic_path(self.path))
            self._file = stack.enter_context(h5py.File(tmp, "w"))
            _write_header(self._file, self.observables, self.parameters, self.kind, self.provenance)
            self._stack = stack.pop_all()
        return self

    def append(self, part: TrainingSet) -> None:
        """Add the rows of ``part`` at the end.

        Raises:
            SamplingError: a part of another kind, other names or other fields than the first.
        """
        if self._file is None:
            raise RuntimeError("TrainingSetWriter.append: use the writer in a `with` block")
        expected = (self.kind, self.observables, self.parameters)
        if (part.kind, part.observables, part.parameters) != expected:
            raise SamplingError(
                f"{self.path}: a part of kind {part.kind!r} with {part.observables}, {part.parameters}; "
                f"expected {expected}"
            )
        present = _layout(part)[3]
        if self._fields is None:
            self._fields = present
            for name in present:
                value = getattr(part, name)
                rows = max(1, min(len(value) or 1, _CHUNK_BYTES // max(1, value[:1].nbytes)))
                self._file.create_dataset(
                    name, shape=(0, *value.shape[1:]), maxshape=(None, *value.shape[1:]), dtype=value.dtype,
                    chunks=(rows, *value.shape[1:]), **_COMPRESSION,
                )  # fmt: skip
        elif present != self._fields:
            raise SamplingError(f"{self.path}: a part with fields {present}; the first had {self._fields}")
        start, stop = self.n_samples, self.n_samples + len(part)
        for name in present:
            dataset = self._file[name]
            dataset.resize(stop, axis=0)
            dataset[start:stop] = getattr(part, name)
        self.n_samples = stop

    def __exit__(self, exc_type, exc, traceback) -> bool | None:
        stack, self._stack, self._file = self._stack, None, None
        if stack is None:
            return None
        if exc_type is None and self._fields is None:
            error = SamplingError(f"{self.path}: no part was appended; nothing written")
            stack.__exit__(SamplingError, error, None)  # the temporary file is removed
            raise error
        return stack.__exit__(exc_type, exc, traceback)


@dataclass(frozen=True)
class TrainingSetInfo:
    """What a training-set file holds, read from its header without loading the arrays.

    Attributes:
        kind: what the set was built for (:attr:`TrainingSet.kind`).
        observables, parameters: the names of the columns of x and θ.
        n_samples: rows.
        fields: the array fields present (``x``, ``theta0``, ...).
    """

    kind: str
    observables: tuple[str, ...]
    parameters: tuple[str, ...]
    n_samples: int
    fields: tuple[str, ...]


def read_info(path: str | os.PathLike) -> TrainingSetInfo:
    """The :class:`TrainingSetInfo` of a file written by :meth:`TrainingSet.save`.

    Raises:
        StoreError: naming the file: missing, not HDF5, foreign, newer, or a malformed header.
    """
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            meta = read_header(f, path)
            if not isinstance(f.get("x"), h5py.Dataset):
                raise StoreError(f"{path}: missing dataset 'x'")
            n, present = len(f["x"]), tuple(name for name in ARRAYS if name in f)
    except StoreError:
        raise
    except (OSError, RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"{path}: cannot read training set (truncated or damaged: {exc})") from exc
    return TrainingSetInfo(meta["kind"], tuple(meta["observables"]), tuple(meta["parameters"]), n, present)


def validate_file(path: str | os.PathLike, *, chunk_size: int = 1 << 18) -> TrainingSetInfo:
    """Check every value of a training-set file as :meth:`TrainingSet.load` does, reading
    ``chunk_size`` rows at a time (memory: one chunk, not the set).

    Returns:
        the file's :class:`TrainingSetInfo`.

    Raises:
        StoreError: naming the file: what :func:`read_info` refuses, arrays of different lengths, or a
            bad value (the field and its row in the file).
    """
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: cannot read training set (no such file; `assay run` makes it)")
    info = read_info(path)
    names = (*info.fields, "event_index")
    try:
        with h5py.File(path, "r") as f:
            lengths = {k: len(f[k]) for k in names if k in f}
            if len(set(lengths.values())) != 1:
                raise StoreError(f"{path}: arrays of different lengths {lengths}")
            for start in range(0, info.n_samples, chunk_size):
                arrays = {k: _read_array(f, k, path, slice(start, start + chunk_size)) for k in lengths}
                try:
                    TrainingSet(observables=info.observables, parameters=info.parameters, kind=info.kind,
                                **arrays)  # fmt: skip
                except SamplingError as exc:
                    where = f"rows {start}-{min(start + chunk_size, info.n_samples)}"
                    raise StoreError(f"{path}: in {where} (row numbers from {start}): {exc}") from exc
    except StoreError:
        raise
    except (OSError, RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"{path}: cannot read training set (truncated or damaged: {exc})") from exc
    return info


def read_header(f: h5py.File, path: Path) -> dict:
    """The checked format, schema version and ``meta`` attribute of a training-set file."""
    if f.attrs.get("format") != _FORMAT:
        raise StoreError(
            f"{path}: not an assay training set (attribute 'format' is {f.attrs.get('format')!r}, "
            f"expected {_FORMAT!r})"
        )
    version = f.attrs.get("schema_version")
    if not isinstance(version, (int, np.integer)):
        raise StoreError(f"{path}: attribute 'schema_version' is {version!r}, expected an integer")
    if version > _SCHEMA_VERSION:
        raise StoreError(f"{path}: schema_version {version} is newer than {_SCHEMA_VERSION}; upgrade assay")
    try:
        meta = json.loads(f.attrs["meta"])
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"{path}: attribute 'meta' is missing or not JSON ({exc})") from exc
    for key, kind in _META_KEYS.items():
        if not isinstance(meta, dict) or not isinstance(meta.get(key), kind):
            shown = repr(meta)[:200]
            raise StoreError(f"{path}: attribute 'meta' needs field {key!r} ({kind.__name__}), got {shown}")
    if not all(isinstance(n, str) for n in meta["observables"] + meta["parameters"]):
        raise StoreError(f"{path}: 'meta' observables and parameters must be lists of names")
    return meta


def _read_array(f: h5py.File, name: str, path: Path, rows: slice | tuple = ()) -> np.ndarray:
    ds = f[name]
    if not isinstance(ds, h5py.Dataset) or ds.dtype.kind not in "fiub":
        raise StoreError(f"{path}: {name!r} must be a numeric dataset, got {ds}")
    return ds[rows]
