"""Saving BIT estimators: one JSON file in a directory, with a format tag and a schema version.

``<path>/estimator.json`` holds ``format`` (:data:`FORMAT`), ``schema_version``, ``class``,
``assay_version``, the hyper-parameters (``params``) and the learned ``state`` including the
trees as flat arrays; no pickles. Every reading error is a :class:`~assay.exceptions.StoreError`
that names the file and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assay import __version__
from assay.bit.tree import RegressionTree
from assay.exceptions import StoreError
from assay.saving import atomic_directory, json_field, read_tagged_json

__all__ = [
    "FORMAT",
    "METADATA_FILE",
    "SCHEMA_VERSION",
    "SavedEstimator",
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
    """Write ``path/estimator.json`` via a temporary sibling directory and a rename
    (:func:`~assay.saving.atomic_directory`).

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
    with atomic_directory(path, markers=(METADATA_FILE,)) as tmp:
        (tmp / METADATA_FILE).write_text(text)
    return path


def read_estimator(path: Path) -> SavedEstimator:
    """Read and check ``path/estimator.json``: JSON object, format tag, schema version, sections.

    Raises:
        StoreError: naming the file (and the field) on any problem.
    """
    source = path / METADATA_FILE
    meta = read_tagged_json(source, format=FORMAT, schema_version=SCHEMA_VERSION)
    params, state = json_field(meta, "params", source, dict), json_field(meta, "state", source, dict)
    return SavedEstimator(source, params, state)


def vector(state: dict, key: str, shape: tuple[int, ...], source: Path) -> np.ndarray:
    """``state[key]`` as a finite float array of ``shape``."""
    try:
        out = np.asarray(json_field(state, key, source, list, "state."), dtype=float)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{source}: field 'state.{key}' is not a list of numbers") from exc
    if out.shape != shape or not np.all(np.isfinite(out)):
        raise StoreError(
            f"{source}: field 'state.{key}' should be {shape} finite numbers, got shape {out.shape}"
        )
    return out


def read_trees(state: dict, source: Path, n_obs: int, n_coef: int) -> list[RegressionTree]:
    """The non-empty list ``state['trees']``, each checked by :meth:`RegressionTree.from_dict`."""
    trees = json_field(state, "trees", source, list, "state.")
    if len(trees) == 0:
        raise StoreError(f"{source}: field 'state.trees' is empty")
    out = []
    for index, data in enumerate(trees):
        try:
            out.append(RegressionTree.from_dict(data, n_obs, n_coef))
        except ValueError as exc:
            raise StoreError(f"{source}: field 'state.trees[{index}]': {exc}") from exc
    return out
