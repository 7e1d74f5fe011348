"""Loading saved estimators: one registry from class names to classes; ensembles are recognised too."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from assay.estimators.base import Estimator, read_metadata
from assay.estimators.ensemble import ENSEMBLE_FILE, Ensemble, read_ensemble_metadata
from assay.estimators.ratio import ALICE, ALICES, CARL, CASCAL, RASCAL, ROLR
from assay.estimators.score import SALLY
from assay.exceptions import StoreError

if TYPE_CHECKING:
    from assay.bit import BoostedInformationTree

__all__ = ["ESTIMATORS", "load_estimator"]

ESTIMATORS: dict[str, type[Estimator]] = {
    cls.__name__: cls for cls in (SALLY, CARL, ROLR, ALICE, ALICES, RASCAL, CASCAL)
}


def load_estimator(path: str | os.PathLike) -> Estimator | Ensemble | BoostedInformationTree:
    """Read an estimator written by :meth:`Estimator.save <assay.estimators.base.Estimator.save>`,
    an ensemble written by :meth:`Ensemble.save <assay.estimators.ensemble.Ensemble.save>`, or a
    :class:`~assay.bit.BoostedInformationTree` (recognised by its format tag).

    Args:
        path: the directory holding ``estimator.json`` and ``weights.pt``, or ``ensemble.json``
            and one such directory per member.

    Returns:
        The fitted estimator or :class:`~assay.estimators.ensemble.Ensemble` (on the CPU).

    Raises:
        StoreError: missing or corrupt files, an unknown class name, weights that are not a
            plain tensor state_dict (pickled objects are refused), or weights that do not
            match the architecture in the metadata.
    """
    path = Path(path)
    if (path / ENSEMBLE_FILE).is_file():
        ensemble = read_ensemble_metadata(path)
        members = [load_estimator(path / name) for name in ensemble["members"]]
        if not all(isinstance(m, Estimator) for m in members):
            raise StoreError(f"{path / ENSEMBLE_FILE}: a member is itself an ensemble")
        return Ensemble._from_saved(members, ensemble)
    if _is_saved_bit(path):
        from assay.bit import BoostedInformationTree

        return BoostedInformationTree.load(path)
    meta = read_metadata(path)
    cls = ESTIMATORS.get(meta["class"])
    if cls is None:
        raise StoreError(
            f"{path / 'estimator.json'}: field 'class' is {meta['class']!r}, not a known estimator; "
            f"known: {sorted(ESTIMATORS)}"
        )
    return cls._from_saved(path, meta)


def _is_saved_bit(path: Path) -> bool:
    """Whether ``path/estimator.json`` carries BIT's format tag (read leniently: errors are raised
    by the loader that applies)."""
    from assay.bit.persistence import FORMAT as BIT_FORMAT

    try:
        return json.loads((path / "estimator.json").read_text()).get("format") == BIT_FORMAT
    except (OSError, ValueError, AttributeError):
        return False
