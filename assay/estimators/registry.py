"""Loading saved estimators: one registry from class names to classes."""

from __future__ import annotations

import os
from pathlib import Path

from assay.estimators.base import Estimator, read_metadata
from assay.estimators.ratio import ALICE, ALICES, CARL, CASCAL, RASCAL, ROLR
from assay.estimators.score import SALLY
from assay.exceptions import StoreError

__all__ = ["ESTIMATORS", "load_estimator"]

ESTIMATORS: dict[str, type[Estimator]] = {
    cls.__name__: cls for cls in (SALLY, CARL, ROLR, ALICE, ALICES, RASCAL, CASCAL)
}


def load_estimator(path: str | os.PathLike) -> Estimator:
    """Read an estimator written by :meth:`Estimator.save <assay.estimators.base.Estimator.save>`.

    Args:
        path: the directory holding ``estimator.json`` and ``weights.pt``.

    Returns:
        The fitted estimator (on the CPU).

    Raises:
        StoreError: missing or corrupt files, an unknown class name, weights that are not a
            plain tensor state_dict (pickled objects are refused), or weights that do not
            match the architecture in the metadata.
    """
    path = Path(path)
    meta = read_metadata(path)
    cls = ESTIMATORS.get(meta["class"])
    if cls is None:
        raise StoreError(
            f"{path / 'estimator.json'}: field 'class' is {meta['class']!r}, not a known estimator; "
            f"known: {sorted(ESTIMATORS)}"
        )
    return cls._from_saved(path, meta)
