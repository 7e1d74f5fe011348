"""``assay import-madminer FILE OUT``: a MadMiner HDF5 file into an EventStore (:mod:`assay.io.madminer`)."""

from __future__ import annotations

from pathlib import Path

import typer

from assay.cli._common import console, register_all, user_errors


def import_madminer(
    source: Path = typer.Argument(..., exists=True, dir_okay=False, help="MadMiner HDF5 file (.h5)."),
    output: Path = typer.Argument(..., dir_okay=False, help="EventStore file to write."),
    config: Path = typer.Option(
        None,
        "--config",
        exists=True,
        dir_okay=False,
        help="An assay config to check the file against (parameter names and order, benchmarks, morphing "
        "components); its parameters (ranges, units, SM values) are stored.",
    ),
    write_config: Path = typer.Option(
        None,
        "--write-config",
        dir_okay=False,
        help="Write a starting config here (simulator: {kind: events, path: OUTPUT}, the file's parameters, "
        "benchmarks and morphing, a SALLY set and model); '-' prints it.",
    ),
    overwrite: bool = typer.Option(False, help="Replace OUTPUT (and the --write-config file) if they exist."),
) -> None:
    """Read a MadMiner HDF5 file (parameters, benchmarks, morphing, observables, weights, nuisance
    benchmarks, sampling benchmarks, signal/background) into an EventStore (docs/formats.md)."""
    from assay.config import load_config
    from assay.io.madminer import import_madminer as run_import
    from assay.io.madminer_config import config_yaml
    from assay.io.madminer_layout import read_setup
    from assay.saving import write_text

    with user_errors():
        if write_config is not None and str(write_config) != "-" and write_config.exists() and not overwrite:
            raise _exists(write_config)
        cfg = None if config is None else load_config(config)
        store = run_import(source, output, overwrite=overwrite, config=cfg, where=str(config))
        with store:
            xsec, negative = store.weights_sum(), bool(store.negative_weights)
            console.print(f"{output}: {store.n_events:,} events, {store.n_benchmarks} benchmarks "
                          f"({', '.join(store.benchmarks)}), processes {', '.join(store.processes)}, "
                          f"extras {', '.join(store.extras_names) or '-'}; σ = {xsec[0]:.6g} pb at "
                          f"{store.benchmarks[0]}", highlight=False)  # fmt: skip
        if write_config is not None:
            to_file = str(write_config) != "-"
            text = config_yaml(read_setup(source), output, write_config if to_file else None,
                               negative_weights=negative)  # fmt: skip
            if to_file:
                write_text(write_config, text)
                console.print(f"{write_config}: run it with assay run / train / limits {write_config}",
                              highlight=False)  # fmt: skip
            else:
                typer.echo(text, nl=False)


def _exists(path: Path) -> Exception:
    from assay.exceptions import ConfigError

    return ConfigError(f"{path} already exists; pass --overwrite to replace it")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    register_all(app, import_madminer)
