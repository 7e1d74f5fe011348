"""Exports for use outside assay: trained networks to ONNX, limits to HEPData (docs/exports.md).

- :func:`to_onnx`: a saved model (or a fitted one) → one ONNX graph that takes the raw observables
  (and θ) and returns what assay's ``score`` / ``log_ratio`` return, standardisation included;
  :func:`onnx_metadata` reads back what the graph records about itself; :func:`compare_onnx`
  checks a graph against the model with onnxruntime.
- :func:`to_hepdata`: a limits folder (``assay limits``' ``OUTPUT/limits``) → a HEPData submission
  folder and its ``submission.tar.gz`` (hepdata-lib), checked with hepdata-validator.

The optional packages (onnx, onnxruntime, hepdata-lib) are the ``export`` extra and are imported on
first use only; without them these functions raise :class:`ExportError` saying
``pip install 'assay[export]'``.
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType
from typing import Any

from assay.exceptions import ExportError

__all__ = ["ExportError", "compare_onnx", "onnx_metadata", "to_hepdata", "to_onnx"]


def require(module: str, what: str) -> ModuleType:
    """Import an optional package of the ``export`` extra, or raise one clear :class:`ExportError`.

    Args:
        module: the import name (``"onnx"``, ``"onnxruntime"``, ``"hepdata_lib"``).
        what: the task that needs it, for the message.

    Raises:
        ExportError: the package is not installed (the message says ``pip install 'assay[export]'``).
    """
    try:
        with warnings.catch_warnings():  # their deprecation warnings (jsonschema's) are not the user's
            warnings.simplefilter("ignore", DeprecationWarning)
            return importlib.import_module(module)
    except ImportError as exc:
        raise ExportError(
            f"{what} needs the Python package {module!r}, which is not installed: pip install 'assay[export]'"
        ) from exc


_SOURCES = {
    "to_onnx": "onnx",
    "compare_onnx": "onnx",
    "onnx_metadata": "onnx",
    "to_hepdata": "hepdata",
}


def __getattr__(name: str) -> Any:
    module = _SOURCES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
