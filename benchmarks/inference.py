"""Benchmark: expected-limit grids with trained ALICES ensembles, and the demo's wall time.

(a) ``grid_35x35_alices5_*``: the expected −2Δlog L on seed 000's 35 × 35 (c_HW, c_HW̃) grid from
    a trained 5-member ALICES ensemble on 100k Asimov events: the ensemble's mean log r̂ for
    every (θ, event) pair, the weighted sum and the Poisson term
    (:func:`assay.inference.likelihood.expected_scan`), torch using every core. Three networks:
    the demo's ALICES and seed 000's S+B network ([100, 100], tanh), [50] ReLU and the morphing-aware
    [100, 100] tanh network (θ enters through c_k(θ): one pass over the events). The members are
    trained for one epoch on 5k random pairs (the timing does not depend on the weights).
    When a probe predicts more than 120 s, the grid is timed on 10k events and extrapolated
    (the key says so).
(b) ``demo_s``: wall time of ``assay demo`` (default sizes) in a temporary folder, or read from
    an existing run's summary.json with ``--demo-summary``.

Prints a table and writes ./benchmark-results/inference.json
(``--record``: the tracked benchmarks/results/inference.json, for the developers).

Usage: python benchmarks/inference.py [--events 100000] [--demo-summary assay-demo/summary.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _report import OUTPUT_HELP, add_output_arguments, output_path, write_results
from training import MORPHER, N_OBS, N_PARAMS, random_ratio_set

from assay.estimators import ALICES, Ensemble
from assay.inference import expected_scan, log_ratio_function, theta_grid
from assay.simulators.wh_analysis import SEED_RANGES

NETWORKS = {
    "": dict(hidden=(100, 100), activation="tanh"),  # the demo's ALICES, seed 000's S+B network
    "_relu50": dict(hidden=(50,), activation="relu"),  # seed 000's smaller network
    "_morphing_tanh100x100": dict(hidden=(100, 100), activation="tanh", morphing=MORPHER),
}


def trained_ensemble(settings: dict) -> Ensemble:
    """Five members fitted for one epoch on random pairs, in this process."""
    data = random_ratio_set(5_000, np.random.default_rng(0))
    proto = ALICES(**settings, alpha=5.0, epochs=1, progress=False)
    return Ensemble.from_estimator(proto, 5).fit(data, n_workers=1, progress=False, seed=0)


def bench_grid(n_events: int) -> dict:
    torch.set_num_threads(os.cpu_count() or 1)
    grid = theta_grid(SEED_RANGES, 35)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n_events, N_OBS))
    weights = rng.uniform(0.5, 1.5, n_events) * 1e-5  # pb
    sigma = 1.0 + grid[:, 0] * 0.3 + (grid**2).sum(axis=1)  # pb; any positive σ(θ)
    results: dict = {"grid_points": len(grid), "asimov_events": n_events}
    for name, settings in NETWORKS.items():
        ensemble = trained_ensemble(settings)

        def timed(n: int, ensemble: Ensemble = ensemble) -> float:
            start = time.perf_counter()
            log_r = log_ratio_function(ensemble, x[:n], np.zeros(N_PARAMS))
            scan = expected_scan(grid, log_r, weights[:n], sigma, 300.0)
            assert np.all(np.isfinite(scan.minus_2_delta_log_l))
            return time.perf_counter() - start

        probe = timed(2_000) * n_events / 2_000
        key = f"grid_35x35_alices5{name}_s"
        if probe < 120:
            results[key] = timed(n_events)
        else:
            results[f"{key}_extrapolated_from_10k"] = timed(10_000) * n_events / 10_000
    return results


def bench_demo(summary: Path | None) -> dict:
    if summary is not None:
        timings = json.loads(summary.read_text())["timings_s"]
        return {"demo_s": timings["total"], "demo_s_source": str(summary), "demo_target_s": 600.0}
    from assay.demo import run_demo

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        run_demo(folder, progress=False)
        return {"demo_s": time.perf_counter() - start, "demo_target_s": 600.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=OUTPUT_HELP)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--demo-summary", type=Path, default=None, help="read demo_s from this summary.json")
    parser.add_argument("--skip-demo", action="store_true")
    add_output_arguments(parser, "inference.json")
    args = parser.parse_args()
    results = {"cpu_count": os.cpu_count()} | bench_grid(args.events)
    if not args.skip_demo:
        results |= bench_demo(args.demo_summary)
    write_results(results, output_path(args, "inference.json"), record=args.record)


if __name__ == "__main__":
    main()
