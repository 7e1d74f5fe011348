"""``assay demo``: expected limits on (c_HW, c_HW̃) in p p → W h → ℓ ν b b̄, from nothing to a report.

The demo is two example configs, ``examples/wh_parton.yaml`` and ``examples/wh_detector.yaml``
(shipped in :mod:`assay` as package data), each run through the product's own path
``assay run`` → ``assay train`` → ``assay limits`` (:func:`~assay.pipeline.run_pipeline`,
:func:`~assay.training.train`, :func:`~assay.analysis.run_limits`):

- **parton level**: every momentum observed, so the event weights give the exact likelihood
  ratio ("truth", seed 000's validation); SALLY, ALICES and BIT are compared with it;
- **detector level**: smearing, b-tagging, seed 000's selection, neutrino p_z from the W mass;
  SALLY, ALICES and BIT are compared with seed 000's histogram analyses;
- **detector level with backgrounds** (``detector_sb``): the detector-level config plus seed 000's
  backgrounds (semileptonic tt̄, single top s- and t-channel, W + jets; :data:`BACKGROUND_SHARES`) at
  hard level through the same detector (:mod:`assay.simulators.wh_backgrounds`): every method trains on
  and is fitted to the signal + background mixture.

This module only scales the configs (:class:`DemoSize`), runs the three levels and collects one
``summary.json`` and ``results.json`` (all levels) and the report in the output folder.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from assay.analysis.limits import summary_of
from assay.config import RunConfig, config_from_dict
from assay.results import Results

__all__ = [
    "BACKGROUND_SHARES", "DEFAULT_LEVELS", "LEVELS", "PARAMETERS", "DemoSize", "demo_size", "level_config",
    "run_chain", "run_demo",
]  # fmt: skip

logger = logging.getLogger(__name__)

PARAMETERS = ("cHW", "cHWtilde")
LEVELS = ("parton", "detector", "detector_sb")
DEFAULT_LEVELS = ("parton", "detector")
"""What ``assay demo`` runs; ``--backgrounds`` adds ``detector_sb`` (its limits alone took 766 s on
loaded cores, beyond the demo's 10-minute budget; docs/demo.md)."""
LABELS = {
    "parton": "parton level (all momenta observed)",
    "detector": "detector level (smearing, b-tagging, selection; neutrino unobserved)",
    "detector_sb": "detector level, signal + backgrounds (tt̄, single top, W + jets)",
}
EXAMPLES = {"parton": "wh_parton", "detector": "wh_detector", "detector_sb": "wh_detector"}
"""The example config of each level (``detector_sb`` adds the backgrounds to ``wh_detector.yaml``)."""
BACKGROUND_SHARES = {"ttbar": 1.0, "single_top_s": 0.3, "single_top_t": 0.3, "wjets": 0.3}
"""Generated events of each background per ``DemoSize.background_events`` (tt̄ dominates after the cuts)."""


@dataclass(frozen=True)
class DemoSize:
    """How much the demo simulates and trains (the defaults fit in 10 minutes on 2 cores).

    Attributes:
        parton_events: generated parton-level events.
        detector_events: generated events before the detector-level selection (~19% pass).
        sally_samples, alices_samples: training samples per level, for ALICES per ensemble
            member (train partition; the validation partition gets a quarter of that).
        sally_epochs, alices_epochs: training epochs.
        members: ensemble members per method.
        bit_trees: boosting iterations of BIT (depth 6 at parton level, 4 at detector level).
        points_1d: points of each 1D scan.
        points_2d: points per axis of the 2D grid.
        asimov_events: at most this many test events form the Asimov data (a random subset;
            ALICES' cost is events × θ points × members).
        flows: add the density estimators NDE and SCANDAL at parton level (off by default: they
            add ~2 minutes on 2 cores; :data:`FLOW_MODELS`).
        background_events: generated tt̄ events of the ``detector_sb`` level (before tt̄'s
            semileptonic filter and the selection); the other backgrounds get their
            :data:`BACKGROUND_SHARES` of it.
    """

    parton_events: int = 200_000
    detector_events: int = 400_000
    sally_samples: int = 100_000
    alices_samples: int = 100_000
    sally_epochs: int = 50
    alices_epochs: int = 20
    members: int = 2
    bit_trees: int = 150
    points_1d: int = 121
    points_2d: int = 35
    asimov_events: int = 25_000
    flows: bool = False
    background_events: int = 100_000

    def level_events(self, level: str) -> int:
        """Generated signal events of ``level``."""
        return self.parton_events if level == "parton" else self.detector_events


FLOW_OBSERVABLES = ["ql_cos_delta_plus", "ql_cos_delta_minus", "pt_w", "mt_tot", "q_l"]
"""What the flows model at parton level: a density needs independent observables (the 43 WH columns
lie on a 9-dimensional surface); Q_ℓ cos δ± carry the CP-odd information, p_T^W and m_T the energy."""
FLOW_MODELS = {
    # tests/test_flows.py (slow) measured 68% c_HW̃ width / truth: SCANDAL 1.16, NDE 1.20 (0.99-1.25 over
    # seeds, on θ ~ N(0, 1²) in c_HW̃); the five observables' bound is ≈ 1.21 (docs/index.md)
    "scandal": {"method": "scandal", "alpha": 5.0, "training_set": "flows_narrow"},
    "nde": {"method": "nde", "training_set": "flows_wide"},
}
FLOW_SETTINGS = {"flow": "maf", "transforms": 5, "epochs": 20, "batch_size": 256, "threads": 1,
                 "observables": FLOW_OBSERVABLES}  # fmt: skip


def _add_flows(data: dict, size: DemoSize) -> None:
    """NDE and SCANDAL with their plain sets (x ~ p(x|θ), θ from a prior; SCANDAL also the joint score)."""
    n = size.alices_samples
    data["sampling"]["sets"] += [
        {"name": "flows_narrow", "kind": "plain", "n_samples": n, "n_theta": 1000,
         "theta": {"kind": "gaussian", "std": 0.1}},
        {"name": "flows_wide", "kind": "plain", "n_samples": n, "n_theta": n,
         "theta": {"kind": "gaussian", "std": [0.4, 1.0]}},
    ]  # fmt: skip
    data["training"] |= {name: {**model, **FLOW_SETTINGS} for name, model in FLOW_MODELS.items()}


def example_config(name: str) -> dict:
    """The parsed YAML of ``examples/<name>.yaml`` (package data)."""
    text = resources.files("assay").joinpath("examples", f"{name}.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def level_config(level: str, size: DemoSize, output: str | os.PathLike | None = None) -> RunConfig:
    """The example config of ``level`` (:data:`EXAMPLES`) with the sizes of ``size`` (the default size
    leaves it as it is); ``detector_sb`` adds the backgrounds of :data:`BACKGROUND_SHARES`."""
    if level not in EXAMPLES:
        raise ValueError(f"level: expected one of {list(EXAMPLES)}, got {level!r}")
    data = example_config(EXAMPLES[level])
    if level == "detector_sb":
        data["simulator"]["backgrounds"] = [
            {"process": p, "n_events": n, "batch_size": n}
            for p, share in BACKGROUND_SHARES.items() if (n := max(1000, int(share * size.background_events)))
        ]  # fmt: skip
        data["output"] = "runs/wh_detector_sb"
    data["simulator"]["n_events"] = size.level_events(level)
    alices_set = next(s for s in data["sampling"]["sets"] if s["name"] == "alices_0")
    alices_sets = [{**alices_set, "name": f"alices_{i}", "n_samples": size.alices_samples}
                   for i in range(size.members)]  # fmt: skip
    sally_set = next(s for s in data["sampling"]["sets"] if s["name"] == "sally")
    data["sampling"]["sets"] = [{**sally_set, "n_samples": size.sally_samples}, *alices_sets]
    models = data["training"]
    models["sally"] |= {"epochs": size.sally_epochs, "n_ensemble": size.members}
    models["alices"] |= {"epochs": size.alices_epochs, "n_ensemble": size.members,
                         "training_set": [s["name"] for s in alices_sets]}  # fmt: skip
    models["bit"] |= {"n_trees": size.bit_trees}
    inference = data["inference"]
    inference["events"]["max_events"] = size.asimov_events
    inference["scans"] = [{**s, "n_points": size.points_1d} for s in inference["scans"]]
    inference["grids"] = [{**g, "n_points": size.points_2d} for g in inference["grids"]]
    if size.flows and level == "parton":
        _add_flows(data, size)
    if output is not None:
        data["output"] = str(output)
    return config_from_dict(data, source=f"examples/{EXAMPLES[level]}.yaml (demo, {level})")


def run_chain(
    cfg: RunConfig, folder: Path, *, level: str, label: str, client: Any = None, progress: bool = True
) -> tuple[Results, dict[str, float]]:
    """``assay run`` → ``assay train`` → ``assay limits`` of ``cfg`` in ``folder``: the results (one
    level named ``level``) and the seconds of each step (``events_and_sets``, ``train_<model>``,
    ``limits``)."""
    from assay.analysis.limits import run_limits
    from assay.pipeline import run_pipeline
    from assay.training import train

    timings: dict[str, float] = {}
    start = time.perf_counter()
    run_pipeline(cfg, folder, progress=progress)
    timings["events_and_sets"] = time.perf_counter() - start
    for model, result in train(cfg, folder, client=client, progress=progress).items():
        timings[f"train_{model}"] = result.wall_s
    start = time.perf_counter()
    results = run_limits(cfg, folder, level=level, label=label, progress=progress)
    timings["limits"] = time.perf_counter() - start
    return results, timings


def _level(name: str, size: DemoSize, folder: Path, client: Any, progress: bool) -> tuple[Results, dict]:
    """run → train → limits of one level; returns its results and timings."""
    cfg = level_config(name, size, folder)
    return run_chain(cfg, folder, level=name, label=LABELS[name], client=client, progress=progress)


def run_demo(
    output: str | os.PathLike = "assay-demo",
    *,
    size: DemoSize | None = None,
    progress: bool = True,
    report: bool = True,
    levels: tuple[str, ...] = DEFAULT_LEVELS,
) -> dict:
    """Run the levels into ``output`` and return (and write) ``summary.json``.

    Args:
        output: run folder; ``parton/``, ``detector/`` and ``detector_sb/`` are each level's run
            folder (events, sets, models, ``limits/``).
        size: sample sizes and training lengths (default :class:`DemoSize`).
        progress: progress bars.
        report: write ``report.html``.
        levels: which of :data:`LEVELS` to run (default :data:`DEFAULT_LEVELS`: parton and detector).

    Returns:
        The summary: ``{"parton": {method: intervals}, "detector": {...}, "detector_sb": {...},
        "timings_s": {...}}``.
    """
    from assay.analysis.limits import write_limits
    from assay.cluster import local_client
    from assay.rundir import ResultsDir

    size = size or DemoSize()
    unknown = [name for name in levels if name not in LEVELS]
    if unknown or not levels:
        raise ValueError(f"levels: expected a non-empty subset of {list(LEVELS)}, got {list(levels)}")
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    timings: dict[str, float] = {}
    collected = {}
    with local_client(min(size.members, os.cpu_count() or 1)) as client:
        for name in levels:
            results, level_timings = _level(name, size, out / name, client, progress)
            collected |= results.levels
            timings |= {f"{name}_{k}": v for k, v in level_timings.items()}
    timings["total"] = time.perf_counter() - start
    combined = replace(results, title="assay demo: p p → W h → ℓ ν b b̄, expected limits at the SM",
                       levels=collected, timings_s=timings)  # fmt: skip
    write_limits(ResultsDir(out), combined)
    summary = summary_of(combined)
    if report:
        from assay.report import write_report

        write_report(out)
    return summary


def demo_size(scale: float, *, flows: bool = False) -> DemoSize:
    """A :class:`DemoSize` with every sample size multiplied by ``scale`` (tests use ~0.05), with
    NDE and SCANDAL if ``flows``."""
    base = DemoSize(flows=flows)
    return replace(
        base,
        parton_events=max(2_000, int(base.parton_events * scale)),
        detector_events=max(8_000, int(base.detector_events * scale)),
        sally_samples=max(500, int(base.sally_samples * scale)),
        alices_samples=max(1_000, int(base.alices_samples * scale)),
        background_events=max(4_000, int(base.background_events * scale)),
    )
