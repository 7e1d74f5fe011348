"""The report's cut-flow section: one cumulative cut flow per process, side by side with seed 000's table.

A WH run with backgrounds writes ``cutflow.json`` with one cut flow per process under ``processes``
(:func:`assay.pipeline.generate_events`); :func:`cut_flow_section` finds it for each level of a report:
``RUN_DIR/<level>/cutflow.json`` (the demo's level folders) or ``RUN_DIR/../cutflow.json`` (the run folder
of ``assay limits``, whose results sit in ``limits/``). Seed 000's "Cumulative efficiencies (in %)" are
generator-level numbers without identification; assay's include lepton identification and b-tagging, so
the table also gives assay's efficiency after all cuts divided by the identification of a two-b event.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping
from pathlib import Path

from assay.exceptions import StoreError
from assay.saving import read_json

__all__ = ["SEED_000_CUT_FLOW", "cut_flow_section", "process_cut_flows", "seed_row"]

log = logging.getLogger(__name__)

SEED_000_CUTS = ("pT(l), pT(j) > 10 GeV", "MET > 25 GeV", "pT(b) > 35 GeV", "|eta(l, b, j)| < 2.5",
                 "dR > 0.4", "80 < m_bb < 160 GeV", "pT(j) < 30 GeV")  # fmt: skip
SEED_000_CUT_FLOW: dict[str, tuple[float, ...]] = {
    "wh": (96.77, 76.17, 50.05, 35.42, 34.18, 34.31, 34.25),
    "ttbar": (87.12, 70.03, 52.08, 39.14, 36.46, 13.2, 0.28),
    "wjets": (93.83, 56.17, 1.91, 1.25, 0.99, 0.46, 0.46),
    "single_top_s": (93.83, 74.41, 50.6, 35.01, 33.9, 11.39, 11.38),
}
"""Seed 000 "Cumulative efficiencies (in %)" per process, rows :data:`SEED_000_CUTS` (generator level)."""
_PREFIXES = ("pT(l)", "MET", "pT(b1)", "|eta", "dR", "m_bb", "pT(light jets)")


def seed_row(cut: str) -> int | None:
    """The row of seed 000's table that assay's cut ``cut`` corresponds to, None if none."""
    for row, prefix in enumerate(_PREFIXES):
        if cut.startswith(prefix) or (prefix == "m_bb" and prefix in cut):
            return row
    return None


def process_cut_flows(run_dir: Path, level: str) -> dict[str, dict] | None:
    """The per-process cut flows of ``level`` (process → the JSON of one cut flow), None where none."""
    for path in (run_dir / level / "cutflow.json", run_dir.parent / "cutflow.json"):
        if not path.is_file():
            continue
        try:
            data = read_json(path, missing="not found")
        except StoreError as exc:
            log.warning("%s", exc)
            return None
        processes = data.get("processes") if isinstance(data, dict) else None
        return processes if isinstance(processes, dict) and processes else None
    return None


def _percent(value) -> str:
    return f"{100 * value:.3g}" if isinstance(value, int | float) else "—"


def _efficiency(flow: dict, cut: str, names: list[str]) -> float | None:
    """``flow``'s cumulative efficiency after ``cut``; a cut it does not have passes every event (the
    signal has no light jets to veto), so the last cut before it in ``names`` counts."""
    own = dict(zip(flow.get("names", []), flow.get("efficiency", [])))
    for name in reversed(names[: names.index(cut) + 1]):
        if name in own:
            return own[name]
    return 1.0


def _table(flows: Mapping[str, dict], identification: float) -> str:
    processes = list(flows)
    header = ["cut", *(f"{p} (assay)" for p in processes), *(f"{p} (seed 000)" for p in processes
                                                              if p in SEED_000_CUT_FLOW)]  # fmt: skip
    names = max((f["names"] for f in flows.values()), key=len)
    rows = []
    for cut in names:
        ours = [_percent(_efficiency(f, cut, names)) for f in flows.values()]
        row = seed_row(cut)
        seed = [f"{SEED_000_CUT_FLOW[p][row]:g}" if row is not None else "—"
                for p in processes if p in SEED_000_CUT_FLOW]  # fmt: skip
        rows.append([cut, *ours, *seed])
    divided = [_percent(f["efficiency"][-1] / identification) for f in flows.values()]
    seed_all = [f"{SEED_000_CUT_FLOW[p][-1]:g}" for p in processes if p in SEED_000_CUT_FLOW]
    rows.append(["all cuts ÷ identification", *divided, *seed_all])
    sigma = [f"{f.get('total_weight_pb', float('nan')):.4g}" for f in flows.values()]
    rows.append(["σ before cuts [pb]", *sigma, *("—" for p in processes if p in SEED_000_CUT_FLOW)])
    cells = ["<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
    cells += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows]
    return "<table>\n" + "\n".join(cells) + "\n</table>"


def cut_flow_section(run_dir: Path, levels: list[str], identification: float = 0.95 * 0.77**2) -> str:
    """HTML: for each level with per-process cut flows, the cumulative efficiencies in % of every process
    beside seed 000's; "" when no level has them.

    Args:
        run_dir: the report's folder.
        levels: the report's level names.
        identification: lepton identification × two b-tags of a signal event (the demo's detector:
            0.95 × 0.77²), the factor seed 000's generator-level table does not apply.
    """
    parts = []
    for level in levels:
        flows = process_cut_flows(run_dir, level)
        if flows:
            title = f"<h2>Cut flow per process: {html.escape(level)}</h2>"
            parts.append(f"{title}\n{_table(flows, identification)}")
    if not parts:
        return ""
    note = ("Cumulative weighted efficiencies in %. assay's include lepton identification and tagging "
            "(two b-tags; backgrounds with c and light mistags as weights); seed 000's are generator level, "
            f"so the row 'all cuts ÷ identification' divides assay's by {identification:.3f}. Seed 000's "
            "tt̄ light-jet cuts act on the generator-level light quarks and its W + jets is W + b b̄, so "
            "those two differ by set-up (docs/demo.md).")  # fmt: skip
    return "\n".join(parts) + f'\n<p class="note">{html.escape(note)}</p>'
