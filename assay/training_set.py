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

from assay.exceptions import StoreError
from assay.saving import atomic_path

__all__ = ["TrainingSet"]

_FORMAT = "assay.TrainingSet"
_SCHEMA_VERSION = 1
_ARRAYS = ("x", "theta0", "theta1", "y", "log_r", "t0", "t1", "sample_weight")


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
        n = len(self.x)
        if self.x.ndim != 2 or self.x.shape[1] != len(self.observables):
            raise ValueError(f"x: expected shape (n_samples, {len(self.observables)}), got {self.x.shape}")
        for name in (*_ARRAYS[1:], "event_index"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"{name}: expected {n} rows like x, got {len(value)}")

    def __len__(self) -> int:
        return len(self.x)

    @property
    def r(self) -> np.ndarray:
        """Joint likelihood ratio r(x,z|θ0,θ1), ``(n_samples,)``."""
        if self.log_r is None:
            raise AttributeError(f"this {self.kind} training set has no joint ratio")
        return np.exp(self.log_r)

    def save(self, path: str | os.PathLike) -> Path:
        """Write to HDF5 atomically (:func:`~assay.saving.atomic_path`), creating missing parent folders.

        Returns:
            ``path``.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            f.attrs["format"] = _FORMAT
            f.attrs["schema_version"] = _SCHEMA_VERSION
            f.attrs["meta"] = json.dumps(
                {
                    "observables": list(self.observables),
                    "parameters": list(self.parameters),
                    "kind": self.kind,
                }
            )
            for name in (*_ARRAYS, "event_index"):
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
        """Read a file written by :meth:`save`, validating format and shapes."""
        path = Path(path)
        try:
            with h5py.File(path, "r") as f:
                if f.attrs.get("format") != _FORMAT:
                    raise StoreError(
                        f"{path}: not an assay training set (attribute 'format' is "
                        f"{f.attrs.get('format')!r}, expected {_FORMAT!r})"
                    )
                if int(f.attrs.get("schema_version", -1)) > _SCHEMA_VERSION:
                    raise StoreError(
                        f"{path}: schema_version {f.attrs['schema_version']} is newer than "
                        f"{_SCHEMA_VERSION}; upgrade assay"
                    )
                meta = json.loads(f.attrs["meta"])
                if "x" not in f:
                    raise StoreError(f"{path}: missing dataset 'x'")
                arrays = {k: f[k][()] for k in (*_ARRAYS, "event_index") if k in f}
        except (OSError, KeyError, json.JSONDecodeError) as exc:
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"{path}: cannot read training set ({exc})") from exc
        try:
            return cls(
                observables=tuple(meta["observables"]),
                parameters=tuple(meta["parameters"]),
                kind=meta["kind"],
                **arrays,
            )
        except ValueError as exc:
            raise StoreError(f"{path}: {exc}") from exc

    def fields_present(self) -> list[str]:
        """Names of the array fields that are set."""
        return [f.name for f in fields(self) if f.name in _ARRAYS and getattr(self, f.name) is not None]
