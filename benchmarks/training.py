"""Benchmark: training an ALICES ensemble and evaluating log r̂ on a θ grid.

(a) A 5-member ALICES ensemble (hidden [100, 100], tanh, α = 5, AMSGrad, 25% validation) on
    1M pairs for 50 epochs, in three variants: the seed-000 setting (plain g(x, θ), batch 128),
    the plain network at batch 512, the morphing-aware network (arXiv:2410.07315; θ enters
    through the 6 morphing weights of a quadratic 2-parameter basis) at batch 512, and the plain
    network at batch 512 with the members trained one after another in this process, torch on
    every core (``Ensemble.fit(n_workers=1, threads=…)``: on 2 vCPUs that share a core, two
    single-threaded processes are slower than one process with two threads). Measured on a fraction
    (default 100k pairs × 2 epochs per member, all members in parallel on a Dask LocalCluster
    of single-threaded workers, one per core) and extrapolated linearly in pairs × epochs:
    every epoch is the same number of equal-sized steps, and without early stopping all 50
    epochs run, so the extrapolation is an upper bound. Cluster start-up, the one-time cost of
    the first fit in each worker process (warmed up before timing) and the transfer of the
    data are reported separately; the transfer is scaled with the pairs only.
(b) log r̂(x|θ, θ_SM) of one trained ALICES ([100, 100]) for 100k events on a 35 × 35 θ
    grid (seed 000's 2D scan), log r only, torch using every core, default ``chunk_size``, for
    the plain and the morphing-aware network (the latter needs one pass over the events: θ
    enters through c_k(θ)). Measured directly when a probe on 5k events predicts < 90 s, else
    on 10k events and extrapolated (the key says so).
(c) For reference, one member's samples/s on one thread at batch 128 and 512 (plain network):
    at these widths a step at batch 128 is dominated by per-step overhead.
(d) The density estimators (``nde_100k_20ep_s``, ``scandal_100k_20ep_s``): NDE and SCANDAL fitted
    on 100k samples of a ``kind: plain`` set of WH parton-level events (``examples/wh_parton.yaml``,
    200k events, θ ~ N(0, 0.1²)) for 20 epochs (no validation split, no early stopping), batch
    256, torch on every core, modelling the five observables of docs/configuration.md (Q_ℓ cos δ±,
    p_T^W, m_T^tot, Q_ℓ); default flow (NSF, 3 transforms, [64, 64] conditioners) and the MAF with
    5 transforms of the slow WH test (``_maf5``). Also the evaluation of log r̂ for 25k events × 61 θ
    (one 1D scan of ``assay limits``). The events are real (a flow's step cost depends little on
    the values, but its inputs must be a density); generating them is set-up, not timed.

(e) ``--throughput``: on the same 100k pairs (1 epoch, batch 128, no validation, no early stopping), a
    plain PyTorch loop (``nn.Sequential``, ``torch.optim.Adam`` with AMSGrad, index-shuffled
    mini-batches, the score by autograd's double backward), assay's trainer for one member (also
    through the stacked trainer with one member) and the 5-member ensemble, as default
    ``Ensemble.fit`` (stacked groups on a fresh local Dask cluster, start-up included) and as one
    stacked group in this process, and as one stacked group per core on threads of this process
    (``fit_estimators(n_groups=…)``): ``speedup_vs_plain_torch_b128`` = 5 × plain / ensemble wall time.
(f) ``--full``: the 5-member ensemble on 1M pairs × 50 epochs at seed 000's settings, default
    ``Ensemble.fit``, measured; ``--full-epochs N`` runs N epochs and extrapolates (key says so).

Data for (a)-(c), (e), (f): random, of WH's width: x ~ N(0, 1) with 43 observables (len(WH_OBSERVABLES)), 2
parameters, θ0 ~ N(0, 0.4²) from 1,000 values, θ1 = SM, and random joint log r and scores;
step costs do not depend on the values. Prints a table and writes ./benchmark-results/training.json
(``--record``: the tracked benchmarks/results/training.json, for the developers).

Usage: python benchmarks/training.py [--pairs 100000] [--epochs 2] [--workers 2] [--flows-only]
[--throughput] [--full [--full-epochs N]] [--quick]
(``--flows-only`` runs (d) alone, ``--throughput`` (e), ``--full`` (f); each updates its keys in the
results file. ``--quick``: (e) on 10k pairs, for development.)
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _report import OUTPUT_HELP, add_output_arguments, output_path, previous_results, write_results

from assay.config import config_from_dict
from assay.demo import example_config
from assay.estimators import ALICES, NDE, SCANDAL, Ensemble
from assay.morphing import Morpher, morphing_components
from assay.observables import WH_OBSERVABLES
from assay.pipeline import run_pipeline
from assay.training_set import TrainingSet

N_OBS = len(WH_OBSERVABLES)
N_PARAMS = 2
SEED_000 = dict(hidden=(100, 100), activation="tanh", alpha=5.0, batch_size=128, optimizer="amsgrad")
# quadratic morphing in (cHW, cHWtilde): 6 benchmarks on the scale of the seed-000 priors
MORPHER = Morpher(
    morphing_components(N_PARAMS, 2), 0.5 * np.array([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1], [1, 1]])
)
VARIANTS = {
    "": {},  # seed 000: plain network, batch 128
    "_batch512": {"batch_size": 512},
    "_morphing_batch512": {"batch_size": 512, "morphing": MORPHER},
    # members one after another in this process, torch on every core (Ensemble.fit(n_workers=1))
    "_serial_batch512": {"batch_size": 512},
}
SERIAL = {"_serial_batch512"}


def random_ratio_set(n_pairs: int, rng: np.random.Generator) -> TrainingSet:
    """An ALICES training set of random numbers with the WH shapes (see the module docstring)."""
    thetas = rng.normal(0.0, 0.4, (1000, N_PARAMS))
    return TrainingSet(
        x=rng.normal(size=(n_pairs, N_OBS)),
        observables=tuple(WH_OBSERVABLES),
        parameters=("cHW", "cHWtilde"),
        kind="ratio",
        theta0=thetas[rng.integers(0, len(thetas), n_pairs)],
        theta1=np.zeros((n_pairs, N_PARAMS)),
        y=rng.integers(0, 2, n_pairs).astype(float),
        log_r=rng.normal(0.0, 0.5, n_pairs),
        t0=rng.normal(0.0, 1.0, (n_pairs, N_PARAMS)),
        t1=rng.normal(0.0, 1.0, (n_pairs, N_PARAMS)),
        sample_weight=np.ones(n_pairs),
    )


def warm_up() -> float:
    """Fit a tiny ALICES once: the first fit in a process costs ~2 s extra (torch/MKL lazy set-up)."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    ALICES(**SEED_000, epochs=1, progress=False).fit(random_ratio_set(1_000, np.random.default_rng(9)))
    return time.perf_counter() - start


def bench_ensemble(args: argparse.Namespace, variant: str) -> dict:
    from assay.cluster import local_client

    data = random_ratio_set(args.pairs, np.random.default_rng(0))
    settings = {**SEED_000, **VARIANTS[variant]}
    proto = ALICES(**settings, epochs=args.epochs, early_stopping=False, progress=False)
    if variant in SERIAL:
        return bench_serial(args, variant, data, proto)
    start = time.perf_counter()
    with local_client(args.workers) as client:  # the workers Ensemble.fit starts itself
        client.run(warm_up)  # on every worker: the first fit in a process pays a one-time start-up
        started = time.perf_counter()
        remote = client.scatter(data, broadcast=True, hash=False)  # what Ensemble.fit sends first
        client.submit(len, remote).result()
        scatter = time.perf_counter() - started
        del remote
        begin = time.perf_counter()
        ensemble = Ensemble.from_estimator(proto, args.members).fit(data, client=client, seed=0)
        wall = time.perf_counter() - begin
    pairs_scale = args.target_pairs / args.pairs
    scale = pairs_scale * args.target_epochs / args.epochs
    n_train = round(args.pairs * (1 - proto.trainer.validation_split))
    member_s = float(np.mean(ensemble.fit_seconds_))
    label = f"{args.pairs // 1000}k_pairs_{args.epochs}ep"
    target = f"alices_ensemble{args.members}_{args.target_pairs // 1_000_000}M_{args.target_epochs}ep"
    return {
        # training scales with pairs × epochs, the data transfer with pairs only
        f"{target}{variant}_s_extrapolated_from_{label}": (wall - scatter) * scale + scatter * pairs_scale,
        f"alices_ensemble{args.members}_{label}{variant}_wall_s": wall,
        f"alices_member_{label}{variant}_mean_s": member_s,
        f"alices_train_samples_per_s_per_member{variant}": n_train * args.epochs / member_s,
        f"alices_train_samples_per_s_all_workers{variant}": args.members * n_train * args.epochs / wall,
        f"dask_cluster_start_and_warm_up{variant}_s": started - start,
        f"dask_scatter_{args.pairs // 1000}k_pairs{variant}_s": scatter,
    }


def bench_serial(args: argparse.Namespace, variant: str, data: TrainingSet, proto: ALICES) -> dict:
    """The members trained one after another in this process, torch using every core (no Dask)."""
    threads = os.cpu_count() or 1
    begin = time.perf_counter()
    Ensemble.from_estimator(proto, args.members).fit(data, n_workers=1, threads=threads, seed=0)
    wall = time.perf_counter() - begin
    scale = args.target_pairs / args.pairs * args.target_epochs / args.epochs
    n_train = round(args.pairs * (1 - proto.trainer.validation_split))
    label = f"{args.pairs // 1000}k_pairs_{args.epochs}ep"
    target = f"alices_ensemble{args.members}_{args.target_pairs // 1_000_000}M_{args.target_epochs}ep"
    return {
        f"{target}{variant}_s_extrapolated_from_{label}": wall * scale,
        f"alices_ensemble{args.members}_{label}{variant}_wall_s": wall,
        f"alices_train_samples_per_s{variant}_{threads}threads": args.members * n_train * args.epochs / wall,
    }


def bench_evaluation(args: argparse.Namespace, variant: str) -> dict:
    torch.set_num_threads(os.cpu_count() or 1)
    rng = np.random.default_rng(1)
    settings = {**SEED_000, **VARIANTS[variant]}
    est = ALICES(**settings, epochs=1, progress=False, seed=0).fit(random_ratio_set(5_000, rng))
    axis = [np.linspace(-1.0, 1.0, 35), np.linspace(-1.2, 1.2, 35)]  # seed 000's 2D scan ranges
    grid = np.stack(np.meshgrid(*axis, indexing="ij"), axis=-1).reshape(-1, N_PARAMS)
    x = rng.normal(size=(args.eval_events, N_OBS))
    n_k, grid_n = args.eval_events // 1000, len(grid)

    def timed(n: int) -> float:
        start = time.perf_counter()
        log_r = est.evaluate_log_ratio(x[:n], grid, np.zeros(N_PARAMS), score=False).log_r
        assert log_r.shape == (len(grid), n) and np.all(np.isfinite(log_r))
        return time.perf_counter() - start

    if timed(5_000) * args.eval_events / 5_000 < 90:
        seconds, key = timed(args.eval_events), f"eval_{n_k}k_x_{grid_n}{variant}_s"
    else:
        seconds = timed(10_000) * args.eval_events / 10_000
        key = f"eval_{n_k}k_x_{grid_n}{variant}_s_extrapolated_from_10k"
    return {key: seconds, f"eval{variant}_log_r_per_s": args.eval_events * grid_n / seconds}


def bench_batch_size(batch_size: int) -> dict:
    """Samples/s of one ALICES member, one thread, in this process: how the step overhead scales."""
    warm_up()
    data = random_ratio_set(20_000, np.random.default_rng(2))
    est = ALICES(**{**SEED_000, "batch_size": batch_size}, epochs=1, validation_split=0.0, progress=False)
    start = time.perf_counter()
    est.fit(data)
    rate = len(data) / (time.perf_counter() - start)
    return {f"alices_train_samples_per_s_one_thread_batch{batch_size}": rate}


def plain_torch_fit(data: TrainingSet, epochs: int, batch_size: int = 128, seed: int = 0) -> float:
    """(e) The reference loop other tools write: ``nn.Sequential`` on [x, θ], ``torch.optim.Adam``
    (AMSGrad), index-shuffled mini-batches, ALICES' loss with the score by autograd; returns seconds."""
    from torch import nn
    from torch.nn import functional as F

    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(N_OBS + N_PARAMS, 100), nn.Tanh(), nn.Linear(100, 100), nn.Tanh(),
                        nn.Linear(100, 1))  # fmt: skip
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, amsgrad=True)
    x, theta0, theta1, y, log_r, t0, w = (
        torch.as_tensor(a, dtype=torch.float32)
        for a in (data.x, data.theta0, data.theta1, data.y, data.log_r, data.t0, data.sample_weight)
    )
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for b in range(0, len(x), batch_size):
            i = order[b : b + batch_size]
            th0 = theta0[i].requires_grad_(True)
            g0 = net(torch.cat([x[i], th0], 1)).squeeze(-1)
            g1 = net(torch.cat([x[i], theta1[i]], 1)).squeeze(-1)
            t_hat = torch.autograd.grad(g0.sum(), th0, create_graph=True)[0]
            xe = F.binary_cross_entropy_with_logits(-(g0 - g1), torch.sigmoid(-log_r[i]), reduction="none")
            score = (1 - y[i]) ** 2 * ((t_hat - t0[i]) ** 2).mean(-1)
            loss = (w[i] * xe).mean() + SEED_000["alpha"] * (w[i] * score).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return time.perf_counter() - start


def best_of_threads(fit) -> tuple[float, int]:
    """The faster of one thread and every core (on 2 shared vCPUs either can win): (seconds, threads)."""
    times = {}
    for threads in sorted({1, os.cpu_count() or 1}):
        torch.set_num_threads(threads)
        times[threads] = fit()
    threads = min(times, key=times.get)
    return times[threads], threads


def bench_throughput(args: argparse.Namespace) -> dict:
    """(e) The same data, batch 128, no validation, no early stopping: a plain torch loop, assay's
    trainer (one member, also through the stacked trainer with M = 1) and assay's 5-member ensemble,
    both as default ``Ensemble.fit`` (stacked groups on a fresh local Dask cluster, its start-up
    included) and as one stacked group in this process (``n_workers=1, batched=True``, one thread).

    The plain loop runs after assay's first fit in this process, so it gets the same allocator
    settings (:func:`~assay.estimators.train.keep_freed_memory`): the comparison is of the loops. It
    runs first and again last (the load of a shared machine drifts); the mean of the two is used."""
    from assay.estimators.batched import fit_estimators

    data = random_ratio_set(args.compare_pairs, np.random.default_rng(3))
    settings = dict(**SEED_000, epochs=args.compare_epochs, validation_split=0.0, early_stopping=False,
                    progress=False)  # fmt: skip
    warm_up()
    plain_torch_fit(random_ratio_set(2_000, np.random.default_rng(4)), 1)
    plain, plain_threads = best_of_threads(lambda: plain_torch_fit(data, args.compare_epochs))

    def assay_single() -> float:
        start = time.perf_counter()
        ALICES(**settings, seed=0).fit(data)
        return time.perf_counter() - start

    single, single_threads = best_of_threads(assay_single)
    torch.set_num_threads(1)
    start = time.perf_counter()
    fit_estimators([ALICES(**settings, seed=0)], [data], [None], [None])
    single_stacked = time.perf_counter() - start
    start = time.perf_counter()
    one = Ensemble.from_estimator(ALICES(**settings), args.members)
    one.fit(data, seed=0, n_workers=1, batched=True)
    one_process = time.perf_counter() - start
    assert len({round(s, 9) for s in one.fit_seconds_}) == 1  # one stacked group
    cores = os.cpu_count() or 1
    start = time.perf_counter()  # the members as `cores` stacked groups on threads of this process
    members = [ALICES(**settings, seed=i) for i in range(args.members)]
    nothing = [None] * args.members
    fit_estimators(members, [data] * args.members, nothing, nothing, n_groups=cores)
    thread_groups = time.perf_counter() - start
    start = time.perf_counter()
    ensemble = Ensemble.from_estimator(ALICES(**settings), args.members).fit(data, seed=0)
    wall = time.perf_counter() - start
    # the load of a shared machine drifts: the plain loop once more at the end, the mean of both is used
    torch.set_num_threads(plain_threads)
    plain_first, plain_last = plain, plain_torch_fit(data, args.compare_epochs)
    plain = (plain_first + plain_last) / 2
    samples = args.compare_pairs * args.compare_epochs
    label = f"{args.compare_pairs // 1000}k_pairs_{args.compare_epochs}ep"
    return {
        "throughput_data": label,
        f"plain_torch_member_{label}_s": plain,
        f"plain_torch_member_{label}_first_and_last_s": [plain_first, plain_last],
        "plain_torch_threads": plain_threads,
        "plain_torch_samples_per_s": samples / plain,
        f"assay_member_{label}_s": single,
        "assay_member_threads": single_threads,
        "assay_member_samples_per_s": samples / single,
        f"assay_member_stacked_trainer_{label}_s": single_stacked,
        "assay_member_stacked_trainer_samples_per_s": samples / single_stacked,
        f"assay_ensemble{args.members}_{label}_wall_s": wall,
        "assay_ensemble_groups": len({round(s, 9) for s in ensemble.fit_seconds_}),
        "assay_ensemble_samples_per_s": args.members * samples / wall,
        f"assay_ensemble{args.members}_one_process_{label}_s": one_process,
        "assay_ensemble_one_process_samples_per_s": args.members * samples / one_process,
        "speedup_vs_plain_torch_b128_single_member": plain / single,
        "speedup_vs_plain_torch_b128_single_member_stacked_trainer": plain / single_stacked,
        # the seed-000 job: M members; plain torch trains them one after the other
        "speedup_vs_plain_torch_b128": args.members * plain / wall,
        "speedup_vs_plain_torch_b128_one_process": args.members * plain / one_process,
        f"assay_ensemble{args.members}_{cores}_thread_groups_{label}_s": thread_groups,
        "speedup_vs_plain_torch_b128_thread_groups": args.members * plain / thread_groups,
    }


def bench_full_ensemble(args: argparse.Namespace) -> dict:
    """``alices_ensemble5_1M_50ep_s`` measured directly: seed 000's settings (batch 128, 25% validation,
    early stopping off so every epoch runs), default ``Ensemble.fit`` (stacked groups on a local Dask
    cluster). With ``--full-epochs`` below 50 the run is that many epochs and the key says it is
    extrapolated: the cluster start-up and data transfer (wall time outside the groups' fits) once,
    the groups' training time scaled by 50 / epochs (every epoch is the same number of steps)."""
    data = random_ratio_set(args.target_pairs, np.random.default_rng(0))
    epochs = args.full_epochs or args.target_epochs
    proto = ALICES(**SEED_000, epochs=epochs, early_stopping=False, progress=False)
    if args.full_in_process:
        return full_ensemble_in_process(args, data, proto, epochs)
    start = time.perf_counter()
    ensemble = Ensemble.from_estimator(proto, args.members).fit(data, seed=0)
    seconds = time.perf_counter() - start
    key = f"alices_ensemble{args.members}_{args.target_pairs // 1_000_000}M_{args.target_epochs}ep_s"
    extra = {"alices_ensemble5_1M_50ep_direct_target_s": 900.0,
             "load_average_1m_after_full": os.getloadavg()[0]}  # fmt: skip
    if epochs == args.target_epochs:
        return {key: seconds, **extra}
    shares = np.asarray(ensemble.fit_seconds_)  # each member: its group's fit time / the group's size
    groups = {round(s, 9): int(np.sum(np.isclose(shares, s))) for s in shares}
    training = max(share * size for share, size in groups.items())  # the slowest group
    label = f"{args.target_pairs // 1000}k_pairs_{epochs}ep"
    return {
        f"{key}_extrapolated_from_{label}": (seconds - training) + training * args.target_epochs / epochs,
        f"alices_ensemble{args.members}_{label}_wall_s": seconds,
        f"alices_ensemble{args.members}_{label}_training_s": training,
        **extra,
    }


def full_ensemble_in_process(args: argparse.Namespace, data: TrainingSet, proto: ALICES, epochs: int) -> dict:
    """(f) in this process: one stacked group per core on threads (``fit_estimators(n_groups=…)``, one
    torch thread), wall time and the process's CPU time. CPU seconds / cores is the wall time the
    run needs on as many idle cores (a machine shared with other jobs inflates the wall time, and
    the CPU time less so); both scaled by 50 / epochs when ``--full-epochs`` is below 50."""
    from assay.estimators.batched import fit_estimators

    cores = os.cpu_count() or 1
    torch.set_num_threads(1)
    members = [ALICES(**{**proto.get_params(), "seed": i}) for i in range(args.members)]
    nothing = [None] * args.members
    cpu, start = time.process_time(), time.perf_counter()
    fit_estimators(members, [data] * args.members, nothing, nothing, n_groups=cores)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    scale = args.target_epochs / epochs
    key = f"alices_ensemble{args.members}_{args.target_pairs // 1_000_000}M_{args.target_epochs}ep"
    label = "" if scale == 1 else f"_extrapolated_from_{args.target_pairs // 1000}k_pairs_{epochs}ep"
    return {
        f"{key}_thread_groups_s{label}": seconds * scale,
        f"{key}_thread_groups_cpu_s_per_core{label}": cpu * scale / cores,
        "load_average_1m_after_full_in_process": os.getloadavg()[0],
    }


FLOW_OBSERVABLES = ["ql_cos_delta_plus", "ql_cos_delta_minus", "pt_w", "mt_tot", "q_l"]


def wh_plain_set(folder: Path, n_samples: int) -> TrainingSet:
    """A ``kind: plain`` set of ``n_samples`` WH parton-level events (θ ~ N(0, 0.1²), 1,000 values)."""
    data = example_config("wh_parton")
    data["output"] = str(folder)
    prior = {"kind": "gaussian", "std": 0.1}
    data["sampling"]["sets"] = [
        {"name": "plain", "kind": "plain", "n_samples": n_samples, "n_theta": 1000, "theta": prior,
         "partitions": ["train"]},
    ]  # fmt: skip
    data["training"] = {}
    cfg = config_from_dict(data, source="benchmarks/training.py")
    return TrainingSet.load(run_pipeline(cfg, progress=False).training_sets["plain_train"])


def bench_flows(args: argparse.Namespace) -> dict:
    """(d): NDE and SCANDAL on WH parton observables, torch on every core."""
    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    data = wh_plain_set(Path(tempfile.mkdtemp(prefix="assay-bench-flows-")), args.flow_samples)
    n_k = args.flow_samples // 1000
    results: dict = {"flow_torch_threads": threads, "flow_observables": ", ".join(FLOW_OBSERVABLES)}
    common = dict(observables=FLOW_OBSERVABLES, epochs=args.flow_epochs, batch_size=256, validation_split=0.0,
                  early_stopping=False, progress=False, seed=0)  # fmt: skip
    variants = {"": {}, "_maf5": {"flow": "maf", "transforms": 5}}
    x = data.x[: args.flow_eval_events]
    grid = np.column_stack([np.zeros(61), np.linspace(-0.15, 0.15, 61)])  # a c_HW̃ scan, c_HW = 0
    for variant, flow in variants.items():
        for cls, extra in ((NDE, {}), (SCANDAL, {"alpha": 5.0, "clip_grad_norm": 1.0})):
            start = time.perf_counter()
            est = cls(**common, **flow, **extra).fit(data)
            key = f"{cls.__name__.lower()}_{n_k}k_{args.flow_epochs}ep{variant}_s"
            results[key] = time.perf_counter() - start
        start = time.perf_counter()
        log_r = est.log_ratio(x, grid, np.zeros(2)).mean
        assert np.all(np.isfinite(log_r))
        results[f"flow_eval_{len(x) // 1000}k_x_{len(grid)}{variant}_s"] = time.perf_counter() - start
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=OUTPUT_HELP)
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--target-pairs", type=int, default=1_000_000)
    parser.add_argument("--target-epochs", type=int, default=50)
    parser.add_argument("--eval-events", type=int, default=100_000)
    parser.add_argument("--flow-samples", type=int, default=100_000)
    parser.add_argument("--flow-epochs", type=int, default=20)
    parser.add_argument("--flow-eval-events", type=int, default=25_000)
    parser.add_argument("--flows-only", action="store_true", help="run (d) alone, update its keys")
    parser.add_argument("--compare-pairs", type=int, default=100_000)
    parser.add_argument("--compare-epochs", type=int, default=1)
    parser.add_argument("--throughput", action="store_true", help="run (e) alone (with --full: and (f))")
    parser.add_argument("--full", action="store_true", help="(f): the 1M x 50-epoch ensemble, measured")
    parser.add_argument("--full-in-process", action="store_true",
                        help="(f) as stacked groups on threads of this process, wall and CPU time")
    parser.add_argument("--full-epochs", type=int, default=None,
                        help="(f) on fewer epochs, extrapolated to --target-epochs (a loaded machine)")
    parser.add_argument("--quick", action="store_true", help="(e) on 10k pairs, for development")
    add_output_arguments(parser, "training.json")
    args = parser.parse_args()
    if args.quick:
        args.compare_pairs, args.throughput = 10_000, True
    if args.throughput or args.full:
        previous = previous_results(args, "training.json")
        results = {"load_average_1m": os.getloadavg()[0]} if args.throughput else {}
        if args.throughput:
            results |= bench_throughput(args)
        if args.full:
            results |= {"load_average_1m_before_full": os.getloadavg()[0], **bench_full_ensemble(args)}
        if args.quick:
            write_results(results, Path(tempfile.mkdtemp()) / "training_quick.json")
        else:
            write_results({**previous, **results}, output_path(args, "training.json"), record=args.record)
        return
    if args.flows_only:
        previous = previous_results(args, "training.json")
        results = {**previous, **bench_flows(args)}
        write_results(results, output_path(args, "training.json"), record=args.record)
        return
    results = {"data": f"random, {N_OBS} observables, {N_PARAMS} parameters", "cpu_count": os.cpu_count()}
    results |= {"first_fit_in_a_process_s": warm_up(), "dask_workers": args.workers}
    results |= {"alices_ensemble5_1M_50ep_target_s": 1800.0, "eval_100k_x_1225_target_s": 60.0}
    for variant in VARIANTS:
        results |= bench_ensemble(args, variant)
    results |= bench_batch_size(128) | bench_batch_size(512)
    results |= {"eval_torch_threads": os.cpu_count() or 1}
    for variant in ("", "_morphing_batch512"):
        results |= bench_evaluation(args, variant)
    results |= bench_flows(args)
    write_results(results, output_path(args, "training.json"), record=args.record)


if __name__ == "__main__":
    main()
