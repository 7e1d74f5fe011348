"""Checked, typed access to the datasets of a MadMiner HDF5 file (for :mod:`assay.io.madminer_layout`).

Every problem is one :class:`MadMinerFormatError` naming the file, the group or dataset and what was
expected (strings as MadMiner's ASCII ``S256`` bytes, numbers of a given shape, legacy alternatives).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from assay.exceptions import StoreError

__all__ = ["DatasetReader", "MadMinerFormatError", "text"]


class MadMinerFormatError(StoreError):
    """A MadMiner file lacks a group or dataset, or holds one of the wrong type, shape or values."""


def text(value: Any) -> str:
    """MadMiner's strings are ASCII bytes (S256); variable-length ones may come back as str."""
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


class DatasetReader:
    """Checked access to the groups and datasets of one open HDF5 file; every error names ``path`` and
    the group or dataset."""

    def __init__(self, path: Path, file: h5py.File) -> None:
        self.path, self.file = path, file

    def fail(self, name: str, message: str) -> MadMinerFormatError:
        return MadMinerFormatError(f"{self.path}: {name}: {message}")

    def group(self, name: str, required: bool) -> bool:
        obj = self.file.get(name)
        if obj is None and required:
            raise self.fail(
                name,
                f"missing group; a MadMiner file has /{name} (written by MadMiner's "
                f"save_madminer_settings / save_events); is this a MadMiner file?",
            )
        if obj is not None and not isinstance(obj, h5py.Group):
            raise self.fail(name, "expected a group, found a dataset")
        return obj is not None

    def dataset(self, name: str, *alternatives: str) -> h5py.Dataset:
        for candidate in (name, *alternatives):
            obj = self.file.get(candidate)
            if isinstance(obj, h5py.Dataset):
                return obj
        raise self.fail(
            name, "missing dataset" + (f" (nor legacy {list(alternatives)})" if alternatives else "")
        )

    def strings(self, name: str, n: int | None = None, *alternatives: str) -> list[str]:
        ds = self.dataset(name, *alternatives)
        values = np.atleast_1d(ds[()])
        if values.ndim != 1 or values.dtype.kind not in "SOU":
            raise self.fail(name, f"expected a 1D array of strings (S256), got {values.dtype} {values.shape}")
        out = []
        for v in values.tolist():
            try:
                out.append(text(v))
            except UnicodeDecodeError as err:
                raise self.fail(name, f"expected ASCII strings as MadMiner writes them: {err}") from err
        self.length(name, out, n)
        return out

    def numbers(
        self, name: str, shape: tuple[int | None, ...], *alternatives: str, kind: str = "f"
    ) -> np.ndarray:
        ds = self.dataset(name, *alternatives)
        values = np.asarray(ds[()])
        if (
            values.dtype.kind not in ("iub" if kind == "i" else "iubf")
            or values.ndim != len(shape)
            or any(want is not None and got != want for got, want in zip(values.shape, shape))
        ):
            dims = ", ".join("n" if s is None else str(s) for s in shape)
            what = "integers" if kind == "i" else "numbers"
            raise self.fail(
                name,
                f"expected {what} of shape ({dims}{',' if len(shape) == 1 else ''}), "
                f"got {values.dtype} {values.shape}",
            )
        if kind == "f" and not np.all(np.isfinite(values)):
            raise self.fail(name, f"expected finite numbers, got {values.tolist()}")
        return values.astype(np.int64) if kind == "i" else values.astype(float)

    def length(self, name: str, values: list | np.ndarray, n: int | None) -> None:
        if n is not None and len(values) != n:
            raise self.fail(
                name, f"expected {n} entries (one per {name.split('/')[0]} name), got {len(values)}"
            )
