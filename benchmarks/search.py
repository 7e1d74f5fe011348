"""Benchmark: the off-shell search (`assay demo --search`) and the off-shell generator.

1. ``offshell_events_per_s``: events per second of the embedded off-shell 4ℓ simulator
   (gg → H* → ZZ → 4ℓ, the gg → ZZ continuum and their interference, q q̄ → ZZ; exact weights at
   the three benchmarks μ = 0, 1, 4, observables), one process, batches of 100k.
2. ``search_demo_s``: wall time of the whole search demo at its default size (target < 600 s on
   2 cores): events, the ALICES set, training the mixture model ("nsbi") and ALICES, and `assay
   limits` with the truth, both models, the m4ℓ and m4ℓ × D_ME histograms and the rate.
3. ``nsbi_train_s``: training time of the mixture model's per-process ensemble inside the demo
   (3 processes − none is the reference: 3 classifiers × 3 Poisson-bootstrap members).

Also written: the demo's 68% intervals on μ per method and the truth-relative widths.
Prints a table and writes ./benchmark-results/search.json
(``--record``: the tracked benchmarks/results/search.json, for the developers).

Usage: python benchmarks/search.py [--scale 1.0] [--work DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _report import OUTPUT_HELP, add_output_arguments, output_path, write_results

from assay.search_demo import LEVEL, run_search_demo, search_size


def generator_rate(n_events: int = 400_000, batch: int = 100_000) -> float:
    """Events per second of the off-shell simulator at the demo's benchmarks."""
    from assay.simulators.offshell import OffshellBatchSimulator, OffshellSimulator

    sim = OffshellBatchSimulator(OffshellSimulator(np.array([0.0, 1.0, 4.0])))
    rng = np.random.default_rng(1)
    sim.batch(1_000, rng)  # PDF grid and first-call set-up, not timed
    start, made = time.perf_counter(), 0
    while made < n_events:
        made += len(sim.batch(batch, rng).x)
    return made / (time.perf_counter() - start)


def _width(interval) -> float:
    """Total length of [lo, hi] or of a list of such intervals (NaN where an end is open)."""
    parts = interval if interval and isinstance(interval[0], list) else [interval]
    if any(lo is None or hi is None for lo, hi in parts):
        return float("nan")
    return float(sum(hi - lo for lo, hi in parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=OUTPUT_HELP)
    parser.add_argument("--scale", type=float, default=1.0, help="demo size (1.0: the default demo)")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one)")
    add_output_arguments(parser, "search.json")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="assay-bench-search-"))
    results: dict = {"offshell_events_per_s": generator_rate()}

    start = time.perf_counter()
    summary = run_search_demo(work / "search", size=search_size(args.scale), progress=False, report=True)
    results["search_demo_s"] = time.perf_counter() - start
    results["search_demo_scale"] = args.scale
    results["nsbi_train_s"] = summary["timings_s"]["train_nsbi"]
    results["alices_train_s"] = summary["timings_s"]["train_alices"]
    results["limits_s"] = summary["timings_s"]["limits"]
    methods = summary[LEVEL]
    truth = _width(methods["truth"]["mu_68"])
    for name, entry in methods.items():
        results[f"mu_68_{name}"] = entry["mu_68"]
        results[f"width_68_over_truth_{name}"] = _width(entry["mu_68"]) / truth
    write_results(results, output_path(args, "search.json"), record=args.record)


if __name__ == "__main__":
    main()
