"""``assay demo``, ``assay generate CONFIG``, ``assay run CONFIG`` and ``assay cluster-script CONFIG``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from assay.cli._common import (
    CONFIG,
    OUTPUT,
    QUIET,
    WORKERS,
    console,
    parallel_client,
    register_all,
    user_errors,
)


def demo(
    output: Path = typer.Option(Path("assay-demo"), "--output", "-o", help="Folder for all outputs."),
    scale: float = typer.Option(
        1.0, "--scale", min=0.01, max=10.0,
        help="Multiply every sample size (0.1: a quick look in minutes; 0.01: the smallest; times in "
        "docs/index.md#how-long-things-take).",
    ),
    toy: bool = typer.Option(False, "--toy", help="Only the data chain on the Gaussian toy (~13 s)."),
    flows: bool = typer.Option(
        False, "--flows", help="Add NDE and SCANDAL (normalizing flows) at parton level (longer)."
    ),
    search: bool = typer.Option(
        False, "--search", help="The off-shell Higgs search for μ with interference (pp → 4ℓ) instead."
    ),
    backgrounds: bool = typer.Option(
        False, "--backgrounds",
        help="Add a third level, detector_sb: detector level with seed 000's backgrounds (tt̄, single top, "
        "W + jets; longer: ~17 minutes more on 2 loaded cores, docs/demo.md).",
    ),
    n_events: int = typer.Option(200_000, "--n-events", help="Toy events (with --toy)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Expected limits on (cHW, cHWtilde) in WH → ℓνbb̄ at parton and detector level, with a report
    (--backgrounds: also at detector level with seed 000's backgrounds).

    Generates events with the embedded simulator, trains SALLY and ALICES ensembles and BIT,
    scans the expected likelihood of every method and of seed 000's histograms, and writes
    summary.json, results.json and report.html into OUTPUT (255 s on 2 cores: inference.json's
    demo_s; every time in docs/index.md#how-long-things-take). The demo is examples/wh_parton.yaml
    and wh_detector.yaml run through run → train → limits → report.
    """  # fmt: skip
    if toy:
        _toy_demo(output, n_events, quiet)
        return
    if search:
        _search_demo(output, scale, quiet)
        return
    from assay.cli.limits import print_results
    from assay.demo import DEFAULT_LEVELS, LEVELS, demo_size, run_demo
    from assay.results import Results
    from assay.rundir import ResultsDir

    with user_errors():
        levels = LEVELS if backgrounds else DEFAULT_LEVELS
        summary = run_demo(output, size=demo_size(scale, flows=flows), progress=not quiet, levels=levels)
        print_results(Results.from_json(ResultsDir(output).results))
    console.print(f"total {summary['timings_s']['total']:.0f} s; summary, results and report in {output}")


def _search_demo(output: Path, scale: float, quiet: bool) -> None:
    from assay.cli.limits import print_results
    from assay.results import Results
    from assay.rundir import ResultsDir
    from assay.search_demo import run_search_demo, search_size

    if output == Path("assay-demo"):
        output = Path("assay-demo-search")
    with user_errors():
        summary = run_search_demo(output, size=search_size(scale), progress=not quiet)
        print_results(Results.from_json(ResultsDir(output / "limits").results))
    where = output / "limits"
    console.print(f"total {summary['timings_s']['total']:.0f} s; summary, results and report in {where}")


def _toy_demo(output: Path, n_events: int, quiet: bool) -> None:
    from assay.toy_demo import run_toy_demo

    with user_errors():
        summary = run_toy_demo(output, n_events=n_events, progress=not quiet)
    table = Table(title=f"assay demo --toy: Gaussian toy, {summary['n_events']:,} events")
    table.add_column("check")
    table.add_column("value", justify="right")
    for key, value in summary["checks"].items():
        table.add_row(key, f"{value:.4g}")
    for key, value in summary["training_sets"].items():
        table.add_row(f"training set {key}", f"{value:,} samples")
    for key, value in summary["timings_s"].items():
        table.add_row(f"time {key}", f"{value:.2f} s")
    console.print(table)
    console.print(f"summary written to {output / 'summary.json'}")


def run(
    config: Path = CONFIG,
    output: Path | None = OUTPUT,
    workers: int | None = WORKERS,
    quiet: bool = QUIET,
) -> None:
    """Run a configured analysis: morphing basis, events, split, training sets. Resumes if interrupted.

    Events are generated on the Dask cluster of the config's `parallel` section (or of --workers),
    batch by batch with the same seeds as in one process: the same events."""
    from assay.config import load_config
    from assay.pipeline import run_pipeline

    with user_errors():
        cfg = load_config(config)
        with parallel_client(cfg, workers) as client:
            result = run_pipeline(cfg, output, progress=not quiet, client=client)
    table = Table(title=f"assay run {config}")
    table.add_column("output")
    table.add_column("path")
    table.add_row("events", str(result.events))
    for name, path in result.training_sets.items():
        table.add_row(f"training set {name}", str(path))
    console.print(table)
    if result.cut_flow is not None:
        console.print(result.cut_flow.table())
    folder = result.events.parent
    console.print(f"run written to {folder}: events.h5, split.h5 and {len(result.training_sets)} training "
                  f"set(s) in {folder / 'sets'}", highlight=False, soft_wrap=True)  # fmt: skip


def generate(
    config: Path = CONFIG,
    output: Path | None = OUTPUT,
    workers: int | None = WORKERS,
    quiet: bool = QUIET,
) -> None:
    """Generate a config's events into OUTPUT/events.h5: chunked, seeded, resumable (rerun to continue).

    Batches run on the Dask cluster of the config's `parallel` section (or of --workers)."""
    from assay.config import load_config
    from assay.pipeline import generate_events

    with user_errors():
        cfg = load_config(config)
        with parallel_client(cfg, workers) as client:
            result = generate_events(cfg, output, progress=not quiet, client=client)
        store = result.store
        sigma = store.weights_sum()[0]
    if result.cut_flow is not None:
        console.print(result.cut_flow.table())
    console.print(f"{store.path}: {store.n_events:,} events, σ = {sigma:.6g} pb at "
                  f"{store.benchmarks[0]} ({result.timings_s['generation']:.1f} s)",
                  highlight=False, soft_wrap=True)  # fmt: skip


def cluster_script(config: Path = CONFIG) -> None:
    """Print the job script (SLURM) or submit description (HTCondor) that the config's `parallel`
    section would submit for each worker job; nothing is submitted."""
    from assay.cluster import job_script
    from assay.config import load_config
    from assay.exceptions import ConfigError

    with user_errors():
        cfg = load_config(config)
        try:
            script = job_script(cfg.parallel)
        except ConfigError as exc:
            raise ConfigError(f"{config}: {exc}") from exc
    typer.echo(script)


def register(app: typer.Typer) -> None:
    register_all(app, demo, generate, run)
    app.command("cluster-script")(cluster_script)
