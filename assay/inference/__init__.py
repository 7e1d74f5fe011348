"""Inference: likelihood scans, asymptotic limits, histogram baselines and Fisher information.

- :mod:`~assay.inference.likelihood`: extended likelihood scans (seed 000 "Additional formulas").
- :mod:`~assay.inference.asymptotic`: grids, splines, profiling, Wilks intervals and contours.
- :mod:`~assay.inference.histograms`: binned templates by morphing, binned Poisson scans.
- :mod:`~assay.inference.pyhf_export`: the histogram analysis as a pyhf workspace.
- :mod:`~assay.inference.fisher`: Fisher information of truth, SALLY, histograms and rate.
- :mod:`~assay.inference.pseudo_experiments`: Poisson pseudo-experiments drawn from a weighted pool,
  observed-data fits (in-process or on a Dask client) and the coverage of their intervals.
"""

from __future__ import annotations

from assay.inference.asymptotic import (
    DEFAULT_CLS,
    ONE_SIGMA,
    ContourResult,
    LimitResult,
    asimov_limits,
    cl_tag,
    contours_2d,
    critical_value,
    grid_axes,
    limits_1d,
    open_ends,
    p_value,
    profile,
    scan_p_values,
    spline_1d,
    spline_2d,
    theta_grid,
)
from assay.inference.fisher import (
    expected_uncertainties,
    fisher_table,
    histogram_fisher_information,
    information_ellipse,
    kinematic_fisher_information,
    rate_fisher_information,
    sally_fisher_information,
    score_fisher_information,
    truth_fisher_information,
)
from assay.inference.histograms import (
    BinnedTemplates,
    Binning,
    binned_log_likelihood,
    binned_scan,
    fill_templates,
    score_binning,
    templates_from_store,
)
from assay.inference.likelihood import (
    PB_TO_FB,
    Scan,
    expected_events,
    expected_scan,
    log_ratio_function,
    observed_scan,
    poisson_log_likelihood,
    rate_only_scan,
    weighted_log_ratio_sum,
)
from assay.inference.pseudo_experiments import (
    ObservedFit,
    SubsetFit,
    binomial_standard_error,
    coverage,
    draw_pseudo_experiments,
    fit_observed,
    fit_pseudo_experiments,
)
from assay.inference.pyhf_export import pyhf_parameters, pyhf_scan, pyhf_workspace, to_pyhf_spec

__all__ = [
    "DEFAULT_CLS",
    "ONE_SIGMA",
    "PB_TO_FB",
    "BinnedTemplates",
    "Binning",
    "ContourResult",
    "LimitResult",
    "ObservedFit",
    "Scan",
    "SubsetFit",
    "asimov_limits",
    "binned_log_likelihood",
    "binned_scan",
    "binomial_standard_error",
    "cl_tag",
    "contours_2d",
    "coverage",
    "critical_value",
    "draw_pseudo_experiments",
    "expected_events",
    "expected_scan",
    "expected_uncertainties",
    "fill_templates",
    "fisher_table",
    "fit_observed",
    "fit_pseudo_experiments",
    "grid_axes",
    "histogram_fisher_information",
    "information_ellipse",
    "kinematic_fisher_information",
    "limits_1d",
    "log_ratio_function",
    "observed_scan",
    "open_ends",
    "p_value",
    "poisson_log_likelihood",
    "profile",
    "pyhf_parameters",
    "pyhf_scan",
    "pyhf_workspace",
    "rate_fisher_information",
    "rate_only_scan",
    "sally_fisher_information",
    "scan_p_values",
    "score_binning",
    "score_fisher_information",
    "spline_1d",
    "spline_2d",
    "templates_from_store",
    "theta_grid",
    "to_pyhf_spec",
    "truth_fisher_information",
    "weighted_log_ratio_sum",
]
