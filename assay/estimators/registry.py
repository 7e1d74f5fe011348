"""The one lookup of estimator classes: config method names (:data:`METHODS`, BIT included) and
saved class names (:data:`ESTIMATORS`); :func:`load_estimator` reads any saved model."""

from __future__ import annotations

import json
import os
from pathlib import Path

from assay.bit import BoostedInformationTree
from assay.bit.persistence import FORMAT as BIT_FORMAT
from assay.estimators.base import Estimator, read_metadata
from assay.estimators.ensemble import ENSEMBLE_FILE, Ensemble, read_ensemble_metadata
from assay.estimators.flows import NDE, SCANDAL
from assay.estimators.mixture import METADATA_FILE as MIXTURE_FILE
from assay.estimators.mixture import MixtureModel
from assay.estimators.ratio import ALICE, ALICES, CARL, CASCAL, RASCAL, ROLR
from assay.estimators.score import SALLY
from assay.exceptions import ConfigError, StoreError

__all__ = ["ESTIMATORS", "METHODS", "load_estimator", "method_class"]

METHODS: dict[str, type] = {
    "sally": SALLY,
    "carl": CARL,
    "rolr": ROLR,
    "alice": ALICE,
    "alices": ALICES,
    "rascal": RASCAL,
    "cascal": CASCAL,
    "nde": NDE,
    "scandal": SCANDAL,
    "bit": BoostedInformationTree,
    "mixture": MixtureModel,
}
"""The config's ``training.method`` names → estimator classes (the neural ones and BIT)."""

ESTIMATORS: dict[str, type[Estimator]] = {
    cls.__name__: cls for cls in METHODS.values() if issubclass(cls, Estimator)
}
"""Class names of the neural estimators → classes (the ``class`` field of a saved ``estimator.json``)."""


def method_class(name: str) -> type:
    """The estimator class of a config method name, case-insensitively.

    Raises:
        ConfigError: an unknown name (the message lists the valid ones).

    Example:
        >>> method_class("ALICES").__name__, method_class("bit").__name__
        ('ALICES', 'BoostedInformationTree')
    """
    cls = METHODS.get(str(name).lower())
    if cls is None:
        raise ConfigError(f"method: unknown name {name!r}; valid names are {sorted(METHODS)}")
    return cls


def load_estimator(path: str | os.PathLike) -> Estimator | Ensemble | BoostedInformationTree | MixtureModel:
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
            raise StoreError(f"{path / ENSEMBLE_FILE}: a member is not a neural estimator (ensemble or BIT)")
        return Ensemble._from_saved(members, ensemble)
    if (path / MIXTURE_FILE).is_file():
        return MixtureModel.load(path)
    if _is_saved_bit(path):
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
    try:
        return json.loads((path / "estimator.json").read_text()).get("format") == BIT_FORMAT
    except (OSError, ValueError, AttributeError):
        return False
