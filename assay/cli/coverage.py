"""``assay coverage CONFIG``: the coverage of profiled 68% intervals in pseudo-experiments."""

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


def _alpha(values: list[str] | None) -> dict[str, list[float]]:
    """``--alpha lumi=1 --alpha lumi=-1 --alpha gg_shower=0.5`` → {"lumi": [1, -1], "gg_shower": [0.5]}."""
    out: dict[str, list[float]] = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise typer.BadParameter(f"--alpha: expected NAME=VALUE, got {item!r}")
        out.setdefault(name.strip(), []).append(number)
    return out


def coverage(
    config: Path = CONFIG,
    output: Path | None = OUTPUT,
    toys: int = typer.Option(
        100, "--toys", "-n", min=1, help="Pseudo-experiments per method and true point."
    ),
    mu: list[float] | None = typer.Option(
        None, "--mu", help="A true signal strength (repeat); default inference.theta_true."
    ),
    alpha: list[str] | None = typer.Option(
        None, "--alpha", help="A true nuisance value NAME=VALUE (repeat; a grid with the μ); default 0."
    ),
    methods: list[str] | None = typer.Option(
        None, "--method", "-m", help="A profiled method, e.g. truth_profiled (repeat); default all."
    ),
    points: int = typer.Option(17, "--points", min=5, help="Points of each toy's profiled scan of μ."),
    neyman: int = typer.Option(
        0, "--neyman", min=0,
        help="Belt toys per μ for Neyman critical values t_c(μ) (0: Wilks only); adds Neyman coverage.",
    ),
    neyman_mu: list[float] | None = typer.Option(
        None, "--neyman-mu", help="A μ of the Neyman belt (repeat); default the scan points (gives widths).",
    ),
    workers: int | None = WORKERS,
    quiet: bool = QUIET,
) -> None:
    """Coverage of the profiled methods' 68% intervals: toys at each true (μ, α) drawn from each
    method's model with randomised global observables, fitted with the nuisances profiled. Writes
    OUTPUT/limits/coverage.json (and one file per method and point in limits/coverage/; a rerun
    with the same settings skips the finished ones). With --neyman N, the threshold of each
    interval is also measured: N toys at each μ of a belt give t_c(μ), and the Neyman coverage
    is the fraction of toys with t(μ_true) ≤ t_c(μ_true)."""
    from assay.analysis.coverage import run_coverage
    from assay.config import load_config
    from assay.rundir import RunDir

    true_alpha = _alpha(alpha)
    with user_errors():
        cfg = load_config(config)
        log = (lambda line: None) if quiet else (lambda line: console.print(line, highlight=False))
        with parallel_client(cfg, workers) as client:
            found = run_coverage(
                cfg, output, mu=mu, alpha=true_alpha, methods=methods, n_toys=toys, points=points,
                neyman=neyman, neyman_grid=neyman_mu, client=client, progress=not quiet, log=log,
            )  # fmt: skip
        run = RunDir(output or cfg.output)
        report = None
        if run.limits.results.is_file():  # the report gets a coverage section
            from assay.report import write_report

            report = write_report(run.limits.root)
    print_coverage(found)
    console.print(f"coverage written to {run.limits.coverage}", highlight=False, soft_wrap=True)
    if report is not None:
        console.print(f"report updated: {report}", highlight=False, soft_wrap=True)


def _number(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_coverage(found: dict) -> None:
    """One row per (method, point): coverage ± its binomial error, mean width, score, pulls, failures."""
    n = found["settings"]["n_toys"]
    table = Table(title=f"68% intervals in {n} pseudo-experiments per point", pad_edge=False)
    neyman = any("neyman" in r for r in found["results"])
    columns = ["method", "true point", "coverage", "width", "score", "pull μ", "failed"]
    if neyman:
        columns[5:5] = ["t_c", "Neyman coverage", "Neyman width"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("method", "true point") else "right")
    for r in found["results"]:
        point = ", ".join([f"μ={r['mu']:g}"] + [f"{k}={v:g}" for k, v in r["alpha"].items() if v])
        c = r.get("coverage_68")
        cov = "-" if c is None else f"{c:.3f} ± {r['coverage_68_error']:.3f}"
        pull = (
            "-" if c is None else f"{_number(r['pull_mu_mean'], '+.2f')} ± {_number(r['pull_mu_std'], '.2f')}"
        )
        cells = [r["method"], point, cov, _number(r.get("mean_width_68"), ".3g"),
                 _number(r.get("challenge_score"), ".3f"), pull, str(r["n_failed"])]  # fmt: skip
        if neyman:
            n = r.get("neyman") or {}
            c = n.get("coverage_68")
            shown = "-" if c is None else f"{c:.3f} ± {n['coverage_68_error']:.3f}"
            cells[5:5] = [_number(n.get("t_c"), ".3g"), shown, _number(n.get("mean_width_68"), ".3g")]
        table.add_row(*cells)
    console.print(table)
    console.print("coverage: fraction of toys whose 68% interval contains the true μ (target 0.683); score: "
                  "the FAIR Universe challenge score of the mean width and coverage; pull μ: mean ± std of "
                  "(μ̂ − μ_true)/σ" + ("; t_c: the Neyman critical value of t at the true μ (Wilks: 1), "
                  "Neyman coverage: fraction of toys with t(μ_true) ≤ t_c" if neyman else ""),
                  highlight=False, soft_wrap=True)  # fmt: skip


def register(app: typer.Typer) -> None:
    register_all(app, coverage)
