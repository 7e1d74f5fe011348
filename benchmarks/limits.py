"""Benchmark: `assay limits` on the WH parton config, and pseudo-experiments on the Gaussian toy.

1. ``limits_wh_s``: wall time of :func:`assay.analysis.run_limits` (what `assay limits CONFIG`
   runs) on ``examples/wh_parton.yaml`` with 2 trained models (the ALICES ensemble of 2 members,
   [100, 100] tanh, and BIT with 100 trees), the truth, seed 000's 4 histograms and the rate:
   two 121-point 1D scans and a 35 × 35 grid on 25k Asimov events, plus the Fisher information,
   the expectation check and the pyhf export. The models are trained briefly (1 epoch; the cost
   of a scan does not depend on how well a network is trained); events and training are set-up,
   not timed.
2. ``toys_per_s``: pseudo-experiments fitted per second (`assay limits --toys N`) on the
   2-parameter Gaussian toy with its exact likelihood, a histogram and the rate, two 81-point 1D
   scans each, in this process (no Dask).

Prints a table and writes ./benchmark-results/limits.json
(``--record``: the tracked benchmarks/results/limits.json, for the developers).

Usage: python benchmarks/limits.py [--toys 200] [--work DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml
from _report import OUTPUT_HELP, add_output_arguments, output_path, write_results

from assay.analysis import run_limits
from assay.config import config_from_dict
from assay.demo import example_config
from assay.pipeline import run_pipeline
from assay.training import train


def wh_config(folder: Path):
    data = example_config("wh_parton")
    data["output"] = str(folder)
    data["sampling"]["sets"] = [
        {**s, "n_samples": 20_000} for s in data["sampling"]["sets"] if s["name"] != "sally"
    ]
    data["training"] = {
        "alices": {**data["training"]["alices"], "epochs": 1},
        "bit": data["training"]["bit"],
    }
    return config_from_dict(data, source="benchmarks/limits.py")


def toy_config(folder: Path):
    text = (Path(__file__).parents[1] / "assay" / "examples" / "toy.yaml").read_text()
    data = yaml.safe_load(text)
    data |= {"output": str(folder), "training": {}}
    data["sampling"]["sets"] = []
    return config_from_dict(data, source="benchmarks/limits.py (toy)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=OUTPUT_HELP)
    parser.add_argument("--toys", type=int, default=200)
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one)")
    add_output_arguments(parser, "limits.json")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="assay-bench-limits-"))
    results: dict = {}

    cfg = wh_config(work / "wh")
    start = time.perf_counter()
    run_pipeline(cfg, progress=False)
    train(cfg, progress=False)
    results["setup_wh_s"] = time.perf_counter() - start
    start = time.perf_counter()
    wh = run_limits(cfg, progress=False)
    results["limits_wh_s"] = time.perf_counter() - start
    level = next(iter(wh.levels.values()))
    results["limits_wh_methods"] = len(level.intervals)
    results["limits_wh_events"] = level.n_events["test_events"]
    results["limits_wh_scans_s"] = wh.timings_s["scans"]

    toy = toy_config(work / "toy")
    run_pipeline(toy, progress=False)
    toys = run_limits(toy, toys=args.toys, progress=False)
    results["toys"] = args.toys
    results["toys_per_s"] = args.toys / toys.timings_s["toys"]
    coverage = next(iter(toys.levels.values())).coverage.coverage["truth"]
    results["toys_truth_coverage_theta_0_68"] = coverage["theta_0_68"]
    write_results(results, output_path(args, "limits.json"), record=args.record)


if __name__ == "__main__":
    main()
