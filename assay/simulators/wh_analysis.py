"""Seed 000's WH analysis constants: the scan ranges and the histogram binnings.

``examples/wh_parton.yaml`` and ``wh_detector.yaml`` (the demo) carry the same numbers in their
``inference`` sections (tests/test_wh_analysis.py checks that they agree); code that scans WH
outside a config (benchmarks, tests) takes them from here, not from :mod:`assay.inference`.
"""

from __future__ import annotations

import numpy as np

from assay.inference.histograms import Binning

__all__ = [
    "COS_DELTA_PLUS_EDGES",
    "MT_TOT_EDGES",
    "PT_W_EDGES",
    "SEED_BINNINGS",
    "SEED_POINTS_1D",
    "SEED_POINTS_2D",
    "SEED_RANGES",
]

SEED_RANGES = ((-1.0, 1.0), (-1.2, 1.2))  # (c_HW, c_HW̃) in TeV⁻², seed 000 "Binning & likelihood scans"
SEED_POINTS_1D = 303
SEED_POINTS_2D = 35

COS_DELTA_PLUS_EDGES = np.linspace(-1.0, 1.0, 26)  # Q_ℓ cos δ⁺, 25 bins
MT_TOT_EDGES = np.array([0.0, 400.0, 800.0, np.inf])  # m_T(ℓνbb̄) in GeV
PT_W_EDGES = np.array([0.0, 75.0, 150.0, 250.0, 400.0, 600.0, np.inf])  # p_T^W in GeV

SEED_BINNINGS: dict[str, Binning] = {
    "ql_cos_delta_plus": Binning(("ql_cos_delta_plus",), (COS_DELTA_PLUS_EDGES,)),
    "mt_tot": Binning(("mt_tot",), (MT_TOT_EDGES,)),
    "pt_w": Binning(("pt_w",), (PT_W_EDGES,)),
    "ql_cos_delta_plus x mt_tot": Binning(
        ("ql_cos_delta_plus", "mt_tot"), (COS_DELTA_PLUS_EDGES, MT_TOT_EDGES)
    ),
}
"""The histogram analyses of seed 000 "Binning & likelihood scans" (plus one 2D combination)."""
