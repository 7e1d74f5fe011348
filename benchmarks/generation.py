"""Benchmark: WH event generation (issue: embedded WH simulator).

Measures, on this machine,
- ``parton_events_per_s``: parton-level W h → ℓ ν b b̄ events (exact |M|² at 6 benchmarks,
  dσ polynomial coefficients, VEGAS phase space) per second on all cores, batches run
  on a Dask LocalCluster with one single-threaded worker per core;
- ``parton_events_per_s_1core``: the same in one process;
- ``generate_to_store_events_per_s``: parton events + seed-000 observables written to an
  EventStore by ``assay.generation.generate`` (one process);
- ``shower_events_per_s`` (MPI on) and ``shower_events_per_s_no_mpi``: Pythia 8 shower +
  hadronisation + anti-kT jets of WH events in one process (reported, no target);
- ``background_events_per_s``: per background process, generated events per second of
  :class:`~assay.simulators.wh_backgrounds.HardBackgroundBatchSimulator` (Pythia hard process, W + jets
  with its parton shower, jets, detector, tagging weights, selection) in one process, and
  ``background_uptime``: the load (``uptime``) when they were measured.
Prints a table and writes ./benchmark-results/generation.json
(``--record``: the tracked benchmarks/results/generation.json, for the developers).
``--only backgrounds`` measures the backgrounds alone and keeps the other numbers of the previous file.

Usage: python benchmarks/generation.py [--n-events 2000000] [--only backgrounds]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from _report import OUTPUT_HELP, add_output_arguments, output_path, previous_results, write_results

from assay.generation import generate
from assay.simulators.wh import WHSimulator
from assay.simulators.wh_batch import WHBatchSimulator

BENCHMARKS = np.array([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1], [1, 1.0]]) * 0.5


def _simulate(sim: WHSimulator, n: int, seed: int) -> int:
    return len(sim.simulate(n, np.random.default_rng(seed)))


def parton_rate(sim: WHSimulator, n_events: int, batch: int, n_workers: int) -> float:
    """Events per second of ``WHSimulator.simulate`` on ``n_workers`` Dask worker processes."""
    from dask.distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True)
    with cluster, Client(cluster) as c:
        remote = c.scatter(sim, broadcast=True)
        warm_up = [c.submit(_simulate, remote, 1000, 10_000 + i, pure=False) for i in range(n_workers)]
        c.gather(warm_up)
        start = time.perf_counter()
        futures = [c.submit(_simulate, remote, batch, i, pure=False) for i in range(n_events // batch)]
        total = sum(c.gather(futures))
        return total / (time.perf_counter() - start)


def shower_rate(sim: WHSimulator, n_events: int, *, mpi: bool) -> float | None:
    """Events per second of Pythia shower + hadronisation + anti-kT jets of WH events (one process)."""
    try:
        from assay.simulators.pythia import showered_wh_batch
    except ImportError:  # fastjet missing: install assay[jets]
        return None
    events = sim.simulate(n_events, np.random.default_rng(5))
    start = time.perf_counter()
    reco, _ = showered_wh_batch(events, seed=1, mpi=mpi)
    return len(reco) / (time.perf_counter() - start)


BACKGROUND_EVENTS = {"ttbar": 40_000, "single_top_s": 20_000, "single_top_t": 20_000, "wjets": 10_000}


def background_rates(scale: float = 1.0) -> dict[str, float] | None:
    """Generated events per second of each hard-level background (one process, one batch each)."""
    try:
        from assay.simulators.wh_backgrounds import HardBackgroundBatchSimulator
    except ImportError:
        return None
    rates = {}
    for process, n in BACKGROUND_EVENTS.items():
        n = max(1000, int(n * scale))
        simulator = HardBackgroundBatchSimulator(process, len(BENCHMARKS))
        start = time.perf_counter()
        simulator.batch(n, np.random.default_rng(3))
        rates[process] = n / (time.perf_counter() - start)
    return rates


def _uptime() -> str:
    """The machine's load as ``uptime`` prints it (the background rates depend on it)."""
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=OUTPUT_HELP)
    parser.add_argument("--n-events", type=int, default=2_000_000)
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--shower-events", type=int, default=2_000)
    parser.add_argument("--only", choices=["backgrounds"], default=None,
                        help="measure only this part; keep the previous results' other numbers")  # fmt: skip
    parser.add_argument("--background-scale", type=float, default=1.0, help="× the background sizes")
    add_output_arguments(parser, "generation.json")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    if args.only == "backgrounds":
        results = previous_results(args, "generation.json")
        results["background_events_per_s"] = background_rates(args.background_scale)
        results["background_uptime"] = _uptime()
        write_results(results, output_path(args, "generation.json"), record=args.record)
        return
    sim = WHSimulator(BENCHMARKS)
    results: dict[str, float | int | None] = {"cores": cores, "n_events": args.n_events}

    start = time.perf_counter()
    n = _simulate(sim, args.batch * 4, 0)
    results["parton_events_per_s_1core"] = n / (time.perf_counter() - start)
    results["parton_events_per_s"] = parton_rate(sim, args.n_events, args.batch, cores)

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        store = generate(WHBatchSimulator(sim), Path(tmp) / "wh.h5", args.batch * 4, seed=1,
                         benchmarks=[f"b{i}" for i in range(len(BENCHMARKS))], batch_size=args.batch,
                         progress=False)  # fmt: skip
        results["generate_to_store_events_per_s"] = store.n_events / (time.perf_counter() - start)
        store.close()
    results["shower_events_per_s"] = shower_rate(sim, args.shower_events, mpi=True)
    results["shower_events_per_s_no_mpi"] = shower_rate(sim, args.shower_events, mpi=False)
    results["background_events_per_s"] = background_rates(args.background_scale)
    results["background_uptime"] = _uptime()

    write_results(results, output_path(args, "generation.json"), record=args.record)


if __name__ == "__main__":
    main()
