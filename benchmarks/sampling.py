"""Benchmark: building training sets from 1M weighted events (issue: foundation).

On 1M Gaussian-toy events with 6 benchmarks and 2 parameters, times
- an ALICES training set of 1M pairs with n_θ0 = 1,000 from a Gaussian prior (σ = 0.4),
- a SALLY training set of 1M events at the SM,
- for reference, the seed-000 / MadMiner algorithm (cumulative sum + index search over
  all events, one θ at a time) on a subset of θ0, extrapolated to 1,000 θ0,
and the peak resident memory. Prints a table and writes ./benchmark-results/sampling.json
(``--record``: the tracked benchmarks/results/sampling.json, for the developers).

Usage: python benchmarks/sampling.py [--n-events 1000000]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from _report import OUTPUT_HELP, add_output_arguments, output_path, write_results

from assay.generation import ToyBatchSimulator, generate
from assay.morphing import Morpher, morphing_components, optimize_basis
from assay.parameters import GaussianPrior
from assay.sampling import EventSource, local_score_training_set, ratio_training_set
from assay.simulators.toys import GaussianToy


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # ru_maxrss is in KiB on Linux


def _reference_inverse_cdf(source: EventSource, thetas: np.ndarray, n_per: int, rng) -> float:
    """Seed 000's sampler: morph all weights, cumulative sum, binary search; per θ."""
    start = time.perf_counter()
    for theta in thetas:
        w = source.weights @ source.morpher.morphing_weights(theta)
        cdf = np.cumsum(w)
        np.searchsorted(cdf, rng.random(n_per) * cdf[-1])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=OUTPUT_HELP)
    parser.add_argument("--n-events", type=int, default=1_000_000)
    parser.add_argument("--n-pairs", type=int, default=1_000_000)
    parser.add_argument("--n-theta0", type=int, default=1000)
    add_output_arguments(parser, "sampling.json")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    comps = morphing_components(2, 2)
    prior = GaussianPrior(0.0, 0.4, n_params=2)
    bench = optimize_basis(
        comps, prior.sample(2000, rng), np.array([[-1.0, 1.0]] * 2), fixed=np.zeros((1, 2)), rng=rng
    )
    morpher = Morpher(comps, bench)
    toy = GaussianToy.default(2)
    results: dict[str, float] = {
        "n_events": args.n_events,
        "n_pairs": args.n_pairs,
        "n_theta0": args.n_theta0,
    }
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        store = generate(
            ToyBatchSimulator(toy, np.zeros(2), bench),
            Path(tmp) / "events.h5",
            args.n_events,
            seed=0,
            benchmarks=[f"b{i}" for i in range(6)],
            batch_size=250_000,
            progress=False,
            metadata={"morphing": morpher.to_dict()},
        )
        results["generate_store_1M_s"] = time.perf_counter() - start

        start = time.perf_counter()
        source = EventSource(store)
        results["load_source_s"] = time.perf_counter() - start

        start = time.perf_counter()
        alices = ratio_training_set(source, prior, np.zeros(2), args.n_pairs, n_theta0=args.n_theta0, rng=rng)
        results["alices_set_1M_s"] = time.perf_counter() - start

        start = time.perf_counter()
        sally = local_score_training_set(source, np.zeros(2), args.n_pairs, rng=rng)
        results["sally_set_1M_s"] = time.perf_counter() - start

        start = time.perf_counter()
        alices.save(Path(tmp) / "alices.h5")
        sally.save(Path(tmp) / "sally.h5")
        results["save_both_sets_s"] = time.perf_counter() - start

        n_ref = 50
        ref = _reference_inverse_cdf(
            source, prior.sample(n_ref, rng), args.n_pairs // (2 * args.n_theta0), rng
        )
        results["reference_inverse_cdf_alices_1M_s_extrapolated"] = ref * args.n_theta0 / n_ref
        results["speedup_vs_inverse_cdf"] = (
            results["reference_inverse_cdf_alices_1M_s_extrapolated"] / results["alices_set_1M_s"]
        )
        store.close()
    results["peak_rss_gb"] = _peak_rss_gb()
    results["cpu_count"] = os.cpu_count() or 0

    write_results(results, output_path(args, "sampling.json"), record=args.record)


if __name__ == "__main__":
    main()
