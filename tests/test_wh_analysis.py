"""The demo's example configs carry seed 000's WH analysis (assay.simulators.wh_analysis)."""

from __future__ import annotations

import numpy as np
import pytest

from assay.config import load_config
from assay.simulators.wh_analysis import SEED_BINNINGS, SEED_RANGES


@pytest.mark.parametrize("level", ["parton", "detector"])
def test_example_configs_use_seed_000_binnings_and_ranges(level):
    cfg = load_config(f"examples/wh_{level}.yaml")
    histograms = {h.label: h for h in cfg.inference.histograms}
    assert set(histograms) == set(SEED_BINNINGS)
    for name, binning in SEED_BINNINGS.items():
        assert tuple(histograms[name].observables) == binning.observables
        for configured, seed in zip(histograms[name].edges, binning.edges):
            np.testing.assert_allclose(configured, seed, rtol=0, atol=1e-12)
    assert [p.range for p in cfg.parameters] == list(SEED_RANGES)
    assert (cfg.simulator.detector is None) == (level == "parton")
