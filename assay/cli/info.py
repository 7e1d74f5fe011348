"""``assay info FILE_OR_FOLDER``: what an assay output is, what made it and what it holds.

The kinds: an event store (``.h5``), a training set (``.h5``), a model folder (``models/<name>/``),
a limits folder (``limits/``, or its ``results.json``) and a report (``report.html``). Each is shown
with its provenance (:mod:`assay.provenance`) and a short summary; ``--json`` prints the provenance
alone, as JSON (``null`` for an output written before provenance existed). A run folder lists every
output it holds with its kind, time, config SHA-256 and number of inputs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import typer
from rich.table import Table

from assay.cli._common import console, register_all, user_errors
from assay.exceptions import StoreError
from assay.provenance import PROVENANCE_FILE, Provenance, describe, read_provenance

__all__ = ["OutputInfo", "info", "output_info", "run_outputs"]

_REPORT_VERSION = re.compile(r"Written by assay (\S+) from")


@dataclass(frozen=True)
class OutputInfo:
    """One output as ``assay info`` shows it.

    Attributes:
        path: the file or folder.
        kind: ``"event store"``, ``"training set"``, ``"model"``, ``"limits"`` or ``"report"``.
        provenance: its record; None where it was written before provenance existed.
        written_by: the assay version that wrote it, where the output records one.
        summary: ``(field, value)`` rows: events, observables, parameters; a model's method.
    """

    path: Path
    kind: str
    provenance: Provenance | None
    written_by: str | None
    summary: list[tuple[str, str]]


def _names(values) -> str:
    return ", ".join(map(str, values)) or "-"


def _store(path: Path) -> OutputInfo:
    from assay.store import EventStore

    with EventStore(path) as store:
        parameters = [p.get("name", "?") for p in (store.parameters or {}).get("parameters", [])]
        summary = [
            ("events", f"{store.n_events:,}"),
            (f"observables ({store.n_obs})", _names(store.observables)),
            (f"parameters ({len(parameters)})", _names(parameters)),
            (f"benchmarks ({store.n_benchmarks})", _names(store.benchmarks)),
            ("processes", _names(store.processes)),
        ]
        version = store.assay_version
    return OutputInfo(path, "event store", read_provenance(path), version, summary)


def _training_set(path: Path) -> OutputInfo:
    from assay.training_set import read_info

    header = read_info(path)
    summary = [
        ("set kind", header.kind),
        ("samples", f"{header.n_samples:,}"),
        (f"observables ({len(header.observables)})", _names(header.observables)),
        (f"parameters ({len(header.parameters)})", _names(header.parameters)),
        ("fields", _names(header.fields)),
    ]
    return OutputInfo(path, "training set", read_provenance(path), None, summary)


def _h5(path: Path) -> OutputInfo:
    from assay.store import FORMAT as STORE
    from assay.training_set import FORMAT as TRAINING_SET

    try:
        with h5py.File(path, "r") as f:
            found = f.attrs.get("format")
    except OSError as exc:
        raise StoreError(f"{path}: not a readable HDF5 file ({exc})") from exc
    readers = {STORE: _store, TRAINING_SET: _training_set}
    if found not in readers:
        raise StoreError(f"{path}: HDF5 file with format {found!r}; assay info reads {sorted(readers)}")
    return readers[found](path)


def _model(path: Path) -> OutputInfo:
    """A saved estimator, ensemble, mixture model or BIT: its metadata JSON only (no weights)."""
    from assay.bit.persistence import FORMAT as BIT
    from assay.estimators.ensemble import ENSEMBLE_FILE, read_ensemble_metadata
    from assay.estimators.mixture import FORMAT as MIXTURE
    from assay.estimators.mixture import METADATA_FILE as MIXTURE_FILE
    from assay.estimators.mixture import SCHEMA_VERSION as MIXTURE_SCHEMA
    from assay.saving import read_json, read_tagged_json

    members = 1
    if (path / ENSEMBLE_FILE).is_file():
        names = read_ensemble_metadata(path)["members"]
        members, meta = len(names), read_json(path / names[0] / "estimator.json", missing="missing member")
    elif (path / MIXTURE_FILE).is_file():
        meta = read_tagged_json(path / MIXTURE_FILE, format=MIXTURE, schema_version=MIXTURE_SCHEMA,
                                what="mixture model")  # fmt: skip
    else:
        meta = read_json(path / "estimator.json", missing="not a saved model (no estimator.json, "
                         "ensemble.json or mixture.json)")  # fmt: skip
    state = meta.get("state") if isinstance(meta.get("state"), dict) else {}
    method = str(meta.get("class", "?")) + (f" ensemble of {members}" if members > 1 else "")
    summary = [("method", method)]
    if meta.get("format") == BIT:
        summary += [("observables", f"{state.get('n_obs', '?')} (names not recorded)"),
                    ("parameters", f"{state.get('n_params', '?')} (names not recorded)")]  # fmt: skip
    else:
        observables, parameters = state.get("observables", []), state.get("parameters", [])
        summary += [(f"observables ({len(observables)})", _names(observables)),
                    (f"parameters ({len(parameters)})", _names(parameters))]  # fmt: skip
    if state.get("processes"):
        summary.append(("processes", _names(state["processes"])))
    written = meta.get("assay_version")
    return OutputInfo(path, "model", read_provenance(path), written if isinstance(written, str) else None,
                      summary)  # fmt: skip


def _limits(path: Path) -> OutputInfo:
    from assay.results import Results
    from assay.rundir import ResultsDir

    folder = ResultsDir(path)
    results = Results.from_json(folder.results)
    methods = list(dict.fromkeys(m for level in results.levels.values() for m in level.intervals))
    summary = [
        (f"parameters ({len(results.parameters)})", _names(results.parameters)),
        ("levels", _names(results.levels)),
        ("methods", _names(methods)),
        ("luminosity (fb⁻¹)", f"{results.luminosity_ifb:g}"),
    ]
    return OutputInfo(path, "limits", read_provenance(path), None, summary)


def _report(path: Path) -> OutputInfo:
    try:
        page = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError(f"{path}: cannot read the report ({exc})") from exc
    version = _REPORT_VERSION.search(page)
    title = re.search(r"<title>(.*?)</title>", page)
    summary = [("title", title[1] if title else "-"), ("figures", str(page.count("<figure>")))]
    return OutputInfo(path, "report", read_provenance(path), version[1] if version else None, summary)


_MODEL_FILES = ("estimator.json", "ensemble.json", "mixture.json")
_LIMITS_FILES = ("results.json", "summary.json", PROVENANCE_FILE)


def output_info(path: str | Path) -> OutputInfo:
    """Recognise the output at ``path`` (by its format tag or files) and read its :class:`OutputInfo`.

    Raises:
        StoreError: ``path`` is not one of the outputs above (naming what it expected), or it is damaged.
    """
    path = Path(path)
    reader: Callable[[Path], OutputInfo] | None = None
    if path.is_dir():
        if any((path / name).is_file() for name in _MODEL_FILES):
            reader = _model
        elif (path / "results.json").is_file():
            reader = _limits
        elif (path / "events.h5").is_file():
            raise StoreError(f"{path}: a run folder; ask about one of its outputs: events.h5, sets/<set>.h5, "
                             "models/<name>, limits (`assay info RUN_DIR` lists them all)")  # fmt: skip
    elif path.suffix in (".html", ".htm"):
        reader = _report
    elif path.name in _LIMITS_FILES and (path.parent / "results.json").is_file():
        path, reader = path.parent, _limits
    elif path.suffix in (".h5", ".hdf5") or h5py.is_hdf5(path):
        reader = _h5
    if reader is None:
        raise StoreError(
            f"{path}: not an assay output; expected an event store or training set (.h5), a model folder "
            f"(with {' / '.join(_MODEL_FILES)}), a limits folder (with results.json) or a report (.html)"
        )
    return reader(path)


def _print(out: OutputInfo) -> None:
    console.print(f"[bold]{out.path}[/]: {out.kind}", highlight=False)
    if out.provenance is None:
        by = f"assay {out.written_by}" if out.written_by else "an assay version that did not record itself"
        console.print(f"no provenance recorded (written by {by} before provenance)", highlight=False)
    else:
        table = Table(title="provenance", show_header=False, title_justify="left")
        table.add_column("field", style="bold")
        table.add_column("value", overflow="fold")
        for key, value in describe(out.provenance):
            table.add_row(key, value)
        console.print(table)
    table = Table(title="contents", show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in out.summary:
        table.add_row(key, value)
    console.print(table)


PATH = typer.Argument(
    ..., exists=True, help="An event store, training set, model folder, limits folder or report."
)


def run_outputs(folder: str | Path) -> list[Path]:
    """The outputs of a run folder that exist: events.h5, the training sets, the models, limits/ and
    its report (:class:`~assay.rundir.RunDir`)."""
    from assay.rundir import RunDir

    run = RunDir(folder)
    models = sorted(p for p in run.models.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if run.models.is_dir() else []  # fmt: skip
    paths = [run.events, *sorted(run.sets.glob("*.h5")), *models, run.limits.root, run.limits.report]
    return [p for p in paths if p.exists()]


def _print_run(folder: Path, as_json: bool) -> None:
    rows = []
    for path in run_outputs(folder):
        try:
            rows.append((path, output_info(path), None))
        except StoreError as exc:
            rows.append((path, None, str(exc)))
    if as_json:
        records = {str(p): o.provenance.to_dict() if o and o.provenance else None for p, o, _ in rows}
        typer.echo(json.dumps(records, indent=1))
        return
    table = Table(title=f"{folder}: run folder")
    for column in ("output", "kind", "created (UTC)", "config SHA-256", "inputs"):
        table.add_column(column, overflow="fold")
    for path, out, problem in rows:
        name = str(path.relative_to(folder))
        if out is None:
            table.add_row(name, "unreadable", problem or "", "", "")
        elif out.provenance is None:
            table.add_row(name, out.kind, "no provenance recorded", "", "")
        else:
            record = out.provenance
            sha = (record.config_sha256 or "-")[:12]
            table.add_row(name, out.kind, record.created, sha, str(len(record.inputs)))
    console.print(table)


def info(
    path: Path = PATH,
    as_json: bool = typer.Option(False, "--json", help="Print the provenance as JSON (null if none)."),
    config: bool = typer.Option(False, "--config", help="Also print the recorded config (YAML)."),
) -> None:
    """Show what an assay output is, what made it (assay version, seed, config and its SHA-256, the
    inputs' SHA-256, when) and what it holds (events, observables, parameters; a model's method).

    PATH may also be a run folder: then one row per output it holds (--json: path → provenance).
    """
    if path.is_dir() and (path / "events.h5").is_file() and not (path / "results.json").is_file():
        _print_run(path, as_json)
        return
    with user_errors():
        out = output_info(path)
    if as_json:
        typer.echo(json.dumps(out.provenance.to_dict() if out.provenance else None, indent=1))
        return
    _print(out)
    if config and out.provenance is not None and out.provenance.config is not None:
        import yaml

        console.print(yaml.safe_dump(out.provenance.config, sort_keys=False), highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    """Add ``assay info`` to ``app``."""
    register_all(app, info)
