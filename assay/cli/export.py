"""``assay export MODEL_DIR --onnx OUT.onnx`` and ``assay export LIMITS_DIR --hepdata OUT_DIR``."""

from __future__ import annotations

from pathlib import Path

import typer

from assay.cli._common import console, register_all, user_errors


def export(
    source: Path = typer.Argument(
        ...,
        help="A model folder (OUTPUT/models/NAME) for --onnx; a limits folder (OUTPUT/limits) for --hepdata.",
    ),
    onnx: Path = typer.Option(
        None, "--onnx", help="Write the model as this ONNX file (standardisation included)."
    ),
    hepdata: Path = typer.Option(
        None, "--hepdata", help="Write the limits as this HEPData submission folder."
    ),
    config: Path = typer.Option(
        None,
        "--config",
        exists=True,
        dir_okay=False,
        help="Run config for --hepdata's sqrt(s) and reaction (default: the limits folder's provenance).",
    ),
) -> None:
    """Export a trained model to ONNX (for C++ fits) or limits to HEPData (docs/exports.md).

    The ONNX graph takes raw observables (and θ) and is checked with onnxruntime against the model
    before it is written; the HEPData folder holds one table per scan and contour and the
    submission.tar.gz to upload, checked with hepdata-validator.
    """
    if (onnx is None) == (hepdata is None):
        console.print(
            "[bold red]error:[/] give exactly one of --onnx OUT.onnx or --hepdata OUT_DIR", highlight=False
        )
        raise typer.Exit(code=2)
    if onnx is not None and config is not None:
        console.print("[bold red]error:[/] --config goes with --hepdata only", highlight=False)
        raise typer.Exit(code=2)
    with user_errors():
        if onnx is not None:
            _onnx(source, onnx)
        else:
            _hepdata(source, hepdata, config)


def _onnx(source: Path, out: Path) -> None:
    from assay.export.onnx import onnx_metadata, to_onnx

    to_onnx(source, out)
    meta = onnx_metadata(out)
    members = f", {meta['n_members']} members" if meta["n_members"] > 1 else ""
    console.print(
        f"{out}: {meta['method']}{members}; inputs {', '.join(meta['inputs'])} → outputs "
        f"{', '.join(meta['outputs'])} (checked with onnxruntime)",
        highlight=False,
    )


def _hepdata(source: Path, out: Path, config: Path | None) -> None:
    from assay.export.hepdata import ARCHIVE, to_hepdata

    to_hepdata(source, out, config=config)
    tables = sorted(p for p in out.glob("*.yaml") if p.name != "submission.yaml")
    console.print(f"{out}: {len(tables)} HEPData tables, validated; upload {out / ARCHIVE}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    register_all(app, export)
