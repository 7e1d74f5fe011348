"""A starting assay config for events imported from a MadMiner file (``import-madminer --write-config``).

The config runs MadMiner's sample → train → limits workflow in assay with MadMiner's parameter names:
``simulator: {kind: events, path: ...}`` takes the imported EventStore, the parameters and physics
benchmarks are the file's, ``morphing`` spans the file's components (per-parameter ``max_power`` and
``max_overall_power``; no basis optimisation: the benchmarks are the file's), and a SALLY training set
and model at the reference benchmark (MadMiner's ``is_reference``, else the first physics benchmark)
start the analysis. The file's nuisance parameters, stored as the events' ``variations``, are listed
under ``systematics`` where the config accepts them for ``kind: events`` and there is one parameter (the
profiled limits take one parameter of interest), else as a comment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from assay.exceptions import ConfigError
from assay.io.madminer_layout import MadMinerSetup
from assay.morphing import morphing_components

__all__ = ["config_yaml", "starting_config"]


def morphing_section(setup: MadMinerSetup) -> dict[str, Any]:
    """``morphing:`` spanning exactly the file's components.

    Raises:
        ConfigError: the components are not all monomials up to per-parameter and overall powers (a set
            a config's ``morphing`` section cannot express).
    """
    comps = setup.components
    if comps is None:
        raise ConfigError(f"{setup.path}: no morphing/ group: a config needs the morphing components")
    powers, overall = comps.max(axis=0).tolist(), int(comps.sum(axis=1).max())
    spanned = {tuple(c) for c in morphing_components(comps.shape[1], powers, overall).tolist()}
    if spanned != {tuple(c) for c in comps.tolist()}:
        raise ConfigError(
            f"{setup.path}: morphing/components {comps.tolist()} are not all monomials with powers up to "
            f"{powers} and total power up to {overall}; a config's morphing section cannot express them"
        )
    return {"max_power": powers, "max_overall_power": overall, "optimize_basis": False}


def starting_config(
    setup: MadMinerSetup, events: str, *, negative_weights: bool, output: str
) -> dict[str, Any]:
    """The config as a dict (see the module docstring).

    Args:
        setup: the MadMiner file's settings.
        events: ``simulator.path`` (relative to the config's folder, or absolute).
        negative_weights: the events have negative weights (``sampling.allow_negative_weights``).
        output: the run folder.
    """
    names = setup.parameter_names
    reference = setup.reference if setup.reference in setup.physics_names else setup.physics_names[0]
    return {
        "seed": 0,
        "output": output,
        "parameters": [{"name": p.name, "range": list(p.range)} for p in setup.parameters],
        "benchmarks": [
            {"name": b, "theta": dict(zip(names, map(float, theta)))}
            for b, theta in zip(setup.physics_names, setup.physics_thetas)
        ],
        "morphing": morphing_section(setup),
        "simulator": {"kind": "events", "path": events},
        "sampling": {
            "allow_negative_weights": bool(negative_weights),
            "sets": [
                {
                    "name": "sally",
                    "kind": "local_score",
                    "theta_ref": reference,
                    "n_samples": int(min(100_000, setup.n_events)),
                }
            ],
        },
        "training": {"sally": {"method": "sally", "hidden": [50, 50], "epochs": 20, "batch_size": 256}},
        "inference": {
            "theta_true": reference,
            "scans": [
                {"parameter": p.name, "range": list(p.range), "n_points": 41} for p in setup.parameters
            ],
        },
    }


def config_yaml(
    setup: MadMinerSetup,
    events: str | os.PathLike[str],
    config: str | os.PathLike[str] | None,
    *,
    negative_weights: bool,
) -> str:
    """The starting config as YAML text; ``events`` relative to ``config``'s folder where one is given."""
    from assay.config import config_from_dict

    events = Path(events)
    if config is not None:
        events = Path(os.path.relpath(events.resolve(), Path(config).resolve().parent))
    data = starting_config(
        setup, str(events), negative_weights=negative_weights, output=f"runs/{Path(setup.path).stem}"
    )
    head = f"# assay config for the events of {setup.path} (assay import-madminer)\n"
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)
    if not setup.nuisances:
        return head + text
    systematics = {"systematics": {"nuisances": [{"name": n.name} for n in setup.nuisances]}}
    extra = yaml.safe_dump(systematics, sort_keys=False, default_flow_style=None, width=100)
    commented = "".join(f"# {line}\n" for line in extra.splitlines())
    if len(setup.parameters) > 1:  # assay's profiled limits take one parameter of interest for now
        note = (
            "# MadMiner's nuisance parameters (the events' variations), profiled with one parameter only:\n"
        )
        return head + text + note + commented
    try:
        config_from_dict({**data, **systematics})
    except ConfigError:
        note = "# MadMiner's nuisance parameters (the events' variations); the config refuses them here:\n"
        return head + text + note + commented
    return head + text + extra
