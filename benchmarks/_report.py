"""Shared output of the benchmark scripts: a printed table and an atomically written JSON file."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_results(results: dict, path: Path) -> None:
    """Print ``results`` as a two-column table and write them to ``path`` (JSON, flat keys)."""
    width = max(map(len, results))
    for key, value in results.items():
        shown = "n/a" if value is None else (f"{value:,.3f}" if isinstance(value, float) else str(value))
        print(f"{key:<{width}}  {shown}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, path)
    print(f"wrote {path}")
