"""``assay demo --search``: the off-shell Higgs signal strength μ in p p → 4ℓ, from nothing to a report.

The search demo is one example config, ``examples/offshell.yaml`` (package data), run through
``assay run`` → ``assay train`` → ``assay limits`` like the WH demo: the embedded off-shell
simulator (gg → H* → ZZ → 4ℓ, the gg → ZZ continuum, their interference, q q̄ → ZZ; seeds 001,
003, 004) with the exact likelihood ("truth"), seed 003's mixture model ("nsbi": one classifier per
process S, SBI, B), a parameterised ALICES, and the m4ℓ and m4ℓ × D_ME histograms through pyhf.

``summary.json`` holds per method ``mu_68`` and ``mu_95`` as [low, high], or a list of intervals
where the confidence set is not connected (interference: seed 001's second minimum), the local
minima, the expected significance Z0 of every method, the counting numbers (S, I, B, iZ, z0,
N_eff) and ``timings_s``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from assay.analysis.limits import summary_of
from assay.config import RunConfig, config_from_dict
from assay.demo import example_config, run_chain

__all__ = ["LEVEL", "SearchSize", "run_search_demo", "search_config", "search_size"]

LEVEL = "offshell"
LABEL = "off-shell H* → ZZ → 4ℓ, parton level (all lepton momenta observed)"


@dataclass(frozen=True)
class SearchSize:
    """How much the search demo simulates and trains (the defaults fit in 10 minutes on 2 cores).

    Attributes:
        events: generated events (weighted; train / validation / test partitions).
        alices_samples: ALICES training samples (unweighted from the train partition).
        alices_epochs: ALICES epochs.
        nsbi_events: train events of the mixture model's classifiers (None: the whole partition).
        nsbi_epochs: epochs of each classifier.
        members: ensemble members (Poisson bootstrap for the mixture model).
        asimov_events: at most this many test events form the Asimov data.
        points: points of the μ scan.
    """

    events: int = 1_600_000
    alices_samples: int = 100_000
    alices_epochs: int = 15
    nsbi_events: int | None = None
    nsbi_epochs: int = 60
    members: int = 5
    asimov_events: int = 60_000
    points: int = 121


def search_size(scale: float) -> SearchSize:
    """A :class:`SearchSize` with every sample size multiplied by ``scale`` (tests use ~0.05)."""
    base = SearchSize()
    return replace(
        base,
        events=max(6_000, int(base.events * scale)),
        alices_samples=max(1_000, int(base.alices_samples * scale)),
        asimov_events=max(1_500, int(base.asimov_events * scale)),
        nsbi_epochs=base.nsbi_epochs if scale >= 0.5 else max(3, int(base.nsbi_epochs * scale)),
        members=base.members if scale >= 0.5 else 2,
        alices_epochs=base.alices_epochs if scale >= 0.5 else max(3, int(base.alices_epochs * scale * 2)),
    )


def search_config(size: SearchSize, output: str | os.PathLike | None = None) -> RunConfig:
    """``examples/offshell.yaml`` with the sizes of ``size``."""
    data = example_config("offshell")
    data["simulator"]["n_events"] = size.events
    for s in data["sampling"]["sets"]:
        s["n_samples"] = size.alices_samples
    models = data["training"]
    models["nsbi"] |= {"epochs": size.nsbi_epochs, "n_ensemble": size.members, "max_events": size.nsbi_events}
    models["alices"] |= {"epochs": size.alices_epochs}
    inference = data["inference"]
    inference["events"]["max_events"] = size.asimov_events
    inference["scans"] = [{**s, "n_points": size.points} for s in inference["scans"]]
    if output is not None:
        data["output"] = str(output)
    return config_from_dict(data, source="examples/offshell.yaml (demo --search)")


def run_search_demo(
    output: str | os.PathLike = "assay-demo-search",
    *,
    size: SearchSize | None = None,
    client: Any = None,
    progress: bool = True,
    report: bool = True,
) -> dict:
    """run → train → limits of ``examples/offshell.yaml`` into ``output``; returns ``summary.json``.

    Returns:
        ``{"offshell": {method: {"mu_68": …, "mu_95": …}}, "significance": …, "search": …,
        "local_minima": … (where a scan has several), "warnings": …, "timings_s": …}``.
    """
    from assay.analysis.limits import write_limits
    from assay.results import strict_json
    from assay.rundir import ResultsDir
    from assay.saving import write_json

    size = size or SearchSize()
    out = Path(output)
    start = time.perf_counter()
    results, timings = run_chain(
        search_config(size, out), out, level=LEVEL, label=LABEL, client=client, progress=progress
    )
    timings["total"] = time.perf_counter() - start
    results = replace(results, title="assay demo --search: off-shell H* → ZZ → 4ℓ, expected limits on μ",
                      timings_s=timings)  # fmt: skip
    folder = ResultsDir(out / "limits")
    write_limits(folder, results)
    summary = summary_of(results)
    summary["search"] = dict(results.levels[LEVEL].search)
    write_json(folder.summary, strict_json(summary), indent=1)
    if report:
        from assay.report import write_report

        write_report(out / "limits")
    return summary
