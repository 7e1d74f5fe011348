"""Neyman coverage of the profiled 68% interval on the off-shell search (issue 14, slow).

The run is tests/test_coverage.py's 5 % off-shell search with five nuisances, scanned over
μ ∈ [0, 3]. At μ_true = 1 the profiled likelihood has two minima and Wilks' threshold over-covers
(0.92); the harness's Neyman belt at μ = 1 (2000 toys at the nominal α with randomised global
observables) gives t_c, and 2000 independent toys at (μ, α) = (1, 0) must be covered at 0.683
within ±3 %: the binomial error of the coverage (√(0.683 · 0.317/2000) = 0.0104) and that of the
estimated quantile (the same) add to σ = 0.0147, so ±3 % is 2σ. A further 1000 toys at
gg_nlo_qcd = +1 (the largest nuisance; the belt still at α = 0) check the profile construction: t's
distribution hardly depends on the true α, so their coverage is within ±3 % + 2 σ (σ = 0.018) too.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

torch.set_num_threads(1)


def _config(folder):
    """tests/test_coverage.py's run: the 5 % search, five nuisances, no model, μ scanned over [0, 3]."""
    from assay.config import config_from_dict
    from assay.search_demo import search_config, search_size

    data = search_config(search_size(0.05), folder).model_dump(mode="json")
    data["systematics"] = {"nuisances": [{"name": n} for n in ("gg_nlo_qcd", "qq_nlo_ew", "gg_shower",
                                                               "lepton_scale")]
                           + [{"name": "lumi", "normalisation": 0.02}]}  # fmt: skip
    data["training"] = {}
    data["inference"]["models"] = []
    data["inference"]["scans"] = [{"parameter": "mu", "range": [0.0, 3.0], "n_points": 121}]
    return config_from_dict(data)


@pytest.mark.slow
def test_neyman_coverage_of_the_off_shell_search_is_68_percent(tmp_path):
    from assay.analysis.coverage import run_coverage
    from assay.cluster import local_client
    from assay.pipeline import run_pipeline

    folder = tmp_path / "run"
    cfg = _config(folder)
    run_pipeline(cfg, folder, progress=False)
    options = {"mu": [1.0], "methods": ["truth_profiled"], "points": 5, "neyman": 2000,
               "neyman_grid": [1.0], "progress": False}  # fmt: skip
    with local_client(2) as client:
        nominal = run_coverage(cfg, folder, n_toys=2000, client=client, **options)
        alpha = {"gg_nlo_qcd": [1.0]}
        shifted = run_coverage(cfg, folder, n_toys=1000, alpha=alpha, client=client, **options)
    (r,) = nominal["results"]
    n = r["neyman"]
    (s,) = shifted["results"]
    for row in (r, s):  # shown with pytest -s
        print(f"alpha {row['alpha']}: Wilks {row['coverage_68']:.3f} ± {row['coverage_68_error']:.3f}, "
              f"Neyman t_c {row['neyman']['t_c']:.3f}, coverage {row['neyman']['coverage_68']:.3f} "
              f"± {row['neyman']['coverage_68_error']:.3f}")  # fmt: skip
    assert n["n_valid"] == 2000 and n["n_failed_belt"] == 0, n
    assert n["t_c"] < 1.0, n  # Wilks' threshold is too large here
    assert abs(n["coverage_68"] - 0.6827) <= 0.03, n
    assert s["alpha"]["gg_nlo_qcd"] == 1.0 and s["neyman"]["t_c"] == n["t_c"]  # the same belt
    assert abs(s["neyman"]["coverage_68"] - 0.6827) <= 0.03 + 2 * np.hypot(0.0147, 0.0104), s["neyman"]
