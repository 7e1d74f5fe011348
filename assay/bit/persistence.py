"""Saving BIT estimators: one JSON file in a directory, with a format tag and a schema version.

``<path>/estimator.json`` holds ``format`` (:data:`FORMAT`), ``schema_version``, ``class``,
``assay_version``, the hyper-parameters (``params``) and the learned ``state`` including the
trees as flat arrays; no pickles. Every reading error is a :class:`~assay.exceptions.StoreError`
that names the file and the field.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assay import __version__
from assay.bit.tree import RegressionTree
from assay.exceptions import StoreError
from assay.saving import read_json, replace_directory

__all__ = [
    "FORMAT",
    "METADATA_FILE",
    "SCHEMA_VERSION",
    "SavedEstimator",
    "field",
    "read_estimator",
    "read_trees",
    "vector",
    "write_estimator",
]

FORMAT = "assay.BoostedInformationTree"
SCHEMA_VERSION = 1
METADATA_FILE = "estimator.json"


@dataclass(frozen=True)
class SavedEstimator:
    """The checked top level of a saved estimator: its file, ``params`` and ``state``."""

    source: Path
    params: dict[str, Any]
    state: dict[str, Any]


def write_estimator(path: Path, name: str, params: dict[str, Any], state: dict[str, Any]) -> Path:
    """Write ``path/estimator.json`` via a temporary sibling directory and a rename.

    Raises:
        StoreError: ``path`` exists and is neither empty nor a saved estimator.
    """
    meta = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "class": name,
        "assay_version": __version__,
        "params": params,
        "state": state,
    }
    text = json.dumps(meta, allow_nan=False)
    return _write_directory(path, text)


def read_estimator(path: Path) -> SavedEstimator:
    """Read and check ``path/estimator.json``: JSON object, format tag, schema version, sections.

    Raises:
        StoreError: naming the file (and the field) on any problem.
    """
    source = path / METADATA_FILE
    meta = _read_json(source)
    if field(meta, "format", source, str) != FORMAT:
        raise StoreError(f"{source}: field 'format' is {meta['format']!r}, expected {FORMAT!r}")
    if field(meta, "schema_version", source, int) > SCHEMA_VERSION:
        raise StoreError(f"{source}: field 'schema_version' is newer than {SCHEMA_VERSION}; upgrade assay")
    return SavedEstimator(source, field(meta, "params", source, dict), field(meta, "state", source, dict))


def field(data: dict, key: str, source: Path, kind: type, prefix: str = "") -> Any:
    """``data[key]`` of type ``kind`` (ints accepted for floats); StoreError naming file and field."""
    if key not in data:
        raise StoreError(f"{source}: missing field '{prefix}{key}'")
    value = data[key]
    kinds = (int, float) if kind is float else kind
    if not isinstance(value, kinds) or (kind in (int, float) and isinstance(value, bool)):
        raise StoreError(
            f"{source}: field '{prefix}{key}' should be {kind.__name__}, got {type(value).__name__}"
        )
    return value


def vector(state: dict, key: str, shape: tuple[int, ...], source: Path) -> np.ndarray:
    """``state[key]`` as a finite float array of ``shape``."""
    try:
        out = np.asarray(field(state, key, source, list, "state."), dtype=float)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{source}: field 'state.{key}' is not a list of numbers") from exc
    if out.shape != shape or not np.all(np.isfinite(out)):
        raise StoreError(
            f"{source}: field 'state.{key}' should be {shape} finite numbers, got shape {out.shape}"
        )
    return out


def read_trees(state: dict, source: Path, n_obs: int, n_coef: int) -> list[RegressionTree]:
    """The non-empty list ``state['trees']``, each checked by :meth:`RegressionTree.from_dict`."""
    trees = field(state, "trees", source, list, "state.")
    if len(trees) == 0:
        raise StoreError(f"{source}: field 'state.trees' is empty")
    out = []
    for index, data in enumerate(trees):
        try:
            out.append(RegressionTree.from_dict(data, n_obs, n_coef))
        except ValueError as exc:
            raise StoreError(f"{source}: field 'state.trees[{index}]': {exc}") from exc
    return out


def _read_json(source: Path) -> dict:
    if not source.parent.is_dir():
        raise StoreError(
            f"{source.parent}: no saved estimator here (expected a directory with {METADATA_FILE})"
        )
    meta = read_json(
        source,
        missing=f"missing file; is {source.parent} a saved BoostedInformationTree?",
        unreadable="not valid JSON",
    )
    if not isinstance(meta, dict):
        raise StoreError(f"{source}: expected a JSON object, got {type(meta).__name__}")
    return meta


def _write_directory(path: Path, text: str) -> Path:
    """Write ``text`` to ``path/estimator.json`` via a temporary sibling directory and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        (tmp / METADATA_FILE).write_text(text)
        replace_directory(tmp, path, markers=(METADATA_FILE,))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path
