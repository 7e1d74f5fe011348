"""Training sets: arrays the estimators learn from, and their HDF5 files.

A training set holds, per sample, the observables x and whatever augmented data
its method needs (seed 001, Table I): θ0 and θ1, the label y (0: x drawn from θ0,
1: x drawn from θ1; MadMiner's convention), the joint log r(x,z|θ0,θ1), and the
joint scores t(x,z|θ0), t(x,z|θ1). Unused fields are ``None``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

import h5py
import numpy as np

from assay.exceptions import SamplingError, StoreError
from assay.provenance import Provenance, write_h5_provenance
from assay.saving import atomic_path, require_space

__all__ = ["ARRAYS", "FORMAT", "TrainingSet", "TrainingSetInfo", "read_header", "read_info"]

FORMAT = "assay.TrainingSet"  # the root attribute 'format' of a training-set file
_FORMAT = FORMAT
_SCHEMA_VERSION = 1
ARRAYS = ("x", "theta0", "theta1", "y", "log_r", "t0", "t1", "sample_weight")  # the per-sample datasets
_FINITE = ("x", "theta0", "theta1", "sample_weight")  # NaN/inf refused; log_r, t: NaN refused (±inf
# is a joint ratio or score at a zero weight)
_META_KEYS = {"observables": list, "parameters": list, "kind": str}


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
            f.attrs["format"] = _FORMAT
            f.attrs["schema_version"] = _SCHEMA_VERSION
            if provenance is not None:
                write_h5_provenance(f, provenance)
            f.attrs["meta"] = json.dumps(
                {
                    "observables": list(self.observables),
                    "parameters": list(self.parameters),
                    "kind": self.kind,
                }
            )
            for name in (*ARRAYS, "event_index"):
                value = getattr(self, name)
                if value is not None:
                    f.create_dataset(
                        name,
                        data=value,
                        compression="gzip",
                        compression_opts=1,
                        shuffle=True,
                        chunks=True,
                    )
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


def _read_array(f: h5py.File, name: str, path: Path) -> np.ndarray:
    ds = f[name]
    if not isinstance(ds, h5py.Dataset) or ds.dtype.kind not in "fiub":
        raise StoreError(f"{path}: {name!r} must be a numeric dataset, got {ds}")
    return ds[()]
