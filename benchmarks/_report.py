"""Shared output of the benchmark scripts: a printed table and an atomically written JSON file.

Where the JSON goes: ``./benchmark-results/NAME.json`` (in the folder the script is run from) by
default, so running a benchmark never rewrites a tracked file; ``--record`` writes the tracked
``benchmarks/results/NAME.json`` instead (for the developers, whose numbers the docs quote); ``--output
FILE`` writes FILE. A path under ``benchmarks/results/`` given to :func:`write_results` without
``record=True`` is redirected to ``./benchmark-results/`` with a note, so a script that does not
take ``--record`` yet keeps the tracked files as they are.

Use::

    parser = argparse.ArgumentParser(description=..., epilog=OUTPUT_HELP)
    add_output_arguments(parser, "sampling.json")
    args = parser.parse_args()
    write_results(results, output_path(args, "sampling.json"), record=args.record)
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"  # the tracked results, quoted by the docs
LOCAL = Path("benchmark-results")  # relative to the folder the script is run from
OUTPUT_HELP = (
    "Writes ./benchmark-results/NAME.json by default; --record rewrites the tracked "
    "benchmarks/results/NAME.json (developers); --output FILE writes FILE."
)


def add_output_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """Add ``--record`` and ``--output`` for the result file ``name`` (e.g. ``"sampling.json"``)."""
    parser.add_argument("--record", action="store_true",
                        help=f"write the tracked benchmarks/results/{name} (for the developers)")  # fmt: skip
    parser.add_argument("--output", type=Path, default=None,
                        help=f"write the JSON here (default: ./benchmark-results/{name})")  # fmt: skip


def output_path(args: argparse.Namespace, name: str) -> Path:
    """``--output``; else ``benchmarks/results/name`` with ``--record``; else ``./benchmark-results/name``."""
    if args.output is not None:
        return Path(args.output)
    return (RESULTS if args.record else LOCAL) / name


def previous_results(args: argparse.Namespace, name: str) -> dict:
    """The results a partial run updates: the output file's, else the tracked file's, else ``{}``."""
    for path in (output_path(args, name), RESULTS / name):
        if path.is_file():
            return json.loads(path.read_text())
    return {}


def write_results(results: dict, path: Path, *, record: bool = False) -> Path:
    """Print ``results`` as a two-column table and write them to ``path`` (JSON, flat keys).

    Args:
        results: key → number, text, list or mapping (kept as they are in the JSON).
        path: the file to write; under ``benchmarks/results/`` only with ``record`` (else the same
            name in ``./benchmark-results/``).
        record: the developer's ``--record``: allow rewriting the tracked results.

    Returns:
        The path written.
    """
    path = Path(path)
    if not record and path.resolve().parent == RESULTS:
        path = LOCAL / path.name
        print(f"not recording (no --record): writing {path} instead of benchmarks/results/{path.name}")
    width = max(map(len, results))
    for key, value in results.items():
        shown = "n/a" if value is None else (f"{value:,.3f}" if isinstance(value, float) else str(value))
        print(f"{key:<{width}}  {shown}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, path)
    print(f"wrote {path}")
    return path
