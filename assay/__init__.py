"""assay: simulation-based inference for particle physics.

The public API is re-exported here (docs/architecture.md has the modules behind it):

Example:
    >>> import assay
    >>> cfg = assay.load_config("examples/toy.yaml")
    >>> sorted(cfg.training)
    ['alices', 'bit', 'sally']
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("assay")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

# The names a user needs, imported on first use (``import assay`` stays light: no torch until an
# estimator is touched). ``assay.X`` and ``from assay import X`` both work.
_PUBLIC = {
    "RunConfig": "assay.config",
    "load_config": "assay.config",
    "RunDir": "assay.rundir",
    "EventStore": "assay.store",
    "run_pipeline": "assay.pipeline",
    "import_lhe_events": "assay.io.wh_lhe",
    "import_madminer": "assay.io.madminer",
    "EventSource": "assay.sampling",
    "local_score_training_set": "assay.sampling",
    "ratio_training_set": "assay.sampling",
    "plain_training_set": "assay.sampling",
    "SALLY": "assay.estimators",
    "ALICES": "assay.estimators",
    "Ensemble": "assay.estimators",
    "Prediction": "assay.estimators",
    "load_estimator": "assay.estimators",
    "BoostedInformationTree": "assay.bit",
    "train": "assay.training",
    "run_limits": "assay.analysis",
    "expected_limits": "assay.analysis",
    "Results": "assay.results",
    "write_report": "assay.report",
}

__all__ = ["__version__", *sorted(_PUBLIC)]


def __getattr__(name: str):
    if name in _PUBLIC:
        from importlib import import_module

        value = getattr(import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'assay' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
