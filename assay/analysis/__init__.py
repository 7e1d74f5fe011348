"""From a config's ``inference`` section to limits: ``assay limits`` and :func:`expected_limits`.

- :mod:`~assay.analysis.methods`: the data set and the ways to scan it (ratio, binned, rate);
- :mod:`~assay.analysis.build`: the Asimov sample and the configured methods of a run folder;
- :mod:`~assay.analysis.scans`: 1D scans and grids, intervals never clipped by the scan range;
- :mod:`~assay.analysis.toys`: coverage in pseudo-experiments;
- :mod:`~assay.analysis.limits`: :func:`run_limits`, which writes ``limits/``;
- :mod:`~assay.analysis.expected`: :func:`expected_limits`, one call from Python.
"""

from __future__ import annotations

from assay.analysis.expected import expected_limits
from assay.analysis.limits import run_limits, summary_of, write_limits
from assay.analysis.methods import BinnedMethod, Dataset, RateMethod, RatioMethod

__all__ = [
    "BinnedMethod",
    "Dataset",
    "RateMethod",
    "RatioMethod",
    "expected_limits",
    "run_limits",
    "summary_of",
    "write_limits",
]
