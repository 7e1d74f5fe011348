"""Export a histogram analysis to a pyhf workspace (HistFactory JSON schema 1.0.0).

pyhf's modifiers scale samples linearly (``normfactor``) or interpolate between fixed
variations, so there is no native modifier for bin expectations quadratic in θ. But ν(θ) is
*linear in the morphing weights* (seed 000 "Morphing Technique"; :mod:`assay.inference.histograms`):

    ν_b(θ) = Σ_k c_k(θ) · L W_kb · 1000.

The export therefore holds one channel with one sample per benchmark k, whose data are the
benchmark's expected counts L W_kb · 1000, each with its own free ``normfactor`` ``c_k``
(bounds widened to ±``bound``, since morphing weights can be negative). The pyhf model at the
parameter point c(θ) (:func:`pyhf_parameters`) then predicts exactly ν(θ), and
``model.logpdf(c(θ), data)`` is the binned log L(θ). A θ scan is a scan along the curve c(θ) in
pyhf's parameter space: the c_k are *not* independent, so a pyhf fit with all c_k free does
not give θ limits. The workspace is for exchange and cross-checks at fixed θ, as in
:func:`pyhf_scan`.

pyhf is imported lazily (only this module needs it).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from assay.inference.histograms import BinnedTemplates
from assay.inference.likelihood import PB_TO_FB, Scan, check_luminosity
from assay.morphing import Morpher, as_thetas

__all__ = ["pyhf_parameters", "pyhf_scan", "pyhf_workspace", "to_pyhf_spec"]


def _name(k: int) -> str:
    return f"c_{k}"


def to_pyhf_spec(
    templates: BinnedTemplates,
    luminosity: float,
    data: np.ndarray,
    *,
    channel: str = "histogram",
    bound: float = 1e3,
) -> dict[str, Any]:
    """The histogram analysis as a pyhf workspace specification (a JSON-able dict).

    Args:
        templates: :class:`BinnedTemplates` (benchmark sums W_kb in pb).
        luminosity: L in fb⁻¹.
        data: observed (or Asimov) counts per bin ``(n_bins,)``.
        channel: channel name.
        bound: normfactor bounds ±bound (must exceed every |c_k(θ)| of interest).

    Returns:
        A dict for ``pyhf.Workspace``: samples ``benchmark_k`` with normfactors ``c_k``,
        measurement ``"morphing"`` with POI ``c_0``.

    Example:
        >>> from assay.inference.histograms import Binning
        >>> m = Morpher(np.array([[0], [1], [2]]), np.array([[0.0], [1.0], [-1.0]]))
        >>> t = BinnedTemplates(Binning(("x",), ([0.0, 1.0, 2.0],)), np.ones((2, 3)), m)
        >>> spec = to_pyhf_spec(t, 1.0, [1000.0, 1000.0])
        >>> [s["name"] for s in spec["channels"][0]["samples"]]
        ['benchmark_0', 'benchmark_1', 'benchmark_2']
    """
    scale = check_luminosity(luminosity) * PB_TO_FB
    data = np.asarray(data, dtype=float)
    if data.shape != (templates.n_bins,):
        raise ValueError(f"data: expected shape ({templates.n_bins},) (one count per bin), got {data.shape}")
    samples = [
        {
            "name": f"benchmark_{k}",
            "data": [float(v) for v in templates.benchmark_sums[:, k] * scale],
            "modifiers": [{"name": _name(k), "type": "normfactor", "data": None}],
        }
        for k in range(templates.morpher.n_benchmarks)
    ]
    parameters = [
        {"name": _name(k), "bounds": [[-float(bound), float(bound)]], "inits": [1.0 if k == 0 else 0.0]}
        for k in range(templates.morpher.n_benchmarks)
    ]
    return {
        "version": "1.0.0",
        "channels": [{"name": channel, "samples": samples}],
        "observations": [{"name": channel, "data": [float(v) for v in data]}],
        "measurements": [{"name": "morphing", "config": {"poi": _name(0), "parameters": parameters}}],
    }


def pyhf_workspace(spec: dict[str, Any]):
    """``pyhf.Workspace(spec)``: validates ``spec`` against the pyhf JSON schema.

    Raises:
        ValueError: the spec does not follow the schema (pyhf's error chained).
    """
    import pyhf

    try:
        with warnings.catch_warnings():  # pyhf 0.7 uses jsonschema's deprecated RefResolver
            warnings.filterwarnings("ignore", category=DeprecationWarning, module="pyhf")
            return pyhf.Workspace(spec)
    except pyhf.exceptions.InvalidSpecification as err:
        raise ValueError(f"spec: not a valid pyhf workspace ({err})") from err


def pyhf_parameters(model: Any, morpher: Morpher, theta: np.ndarray) -> np.ndarray:
    """pyhf parameter vectors c(θ) for a model built from :func:`to_pyhf_spec`.

    Args:
        model: ``pyhf_workspace(spec).model()``.
        morpher: the morphing basis of the templates.
        theta: ``(n_theta, n_params)`` or ``(n_params,)``.

    Returns:
        ``(n_theta, n_model_parameters)``, in ``model.config`` order.
    """
    coefficients = morpher.morphing_weights(as_thetas(theta, morpher.n_params))
    pars = np.tile(np.asarray(model.config.suggested_init(), dtype=float), (len(coefficients), 1))
    for k in range(morpher.n_benchmarks):
        pars[:, model.config.par_slice(_name(k))] = coefficients[:, k : k + 1]
    return pars


def pyhf_scan(spec: dict[str, Any], morpher: Morpher, theta: np.ndarray) -> Scan:
    """−2 Δlog L(θ) computed by pyhf: ``model.logpdf(c(θ), data + auxdata)`` at each θ.

    Args:
        spec: from :func:`to_pyhf_spec`.
        morpher: the morphing basis of the templates.
        theta: ``(n_theta, n_params)``.

    Returns:
        :class:`Scan`; equals :func:`assay.inference.histograms.binned_scan` on the same data.
    """
    workspace = pyhf_workspace(spec)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="pyhf")
        model = workspace.model()
    data = np.asarray(workspace.data(model), dtype=float)
    thetas = as_thetas(theta, morpher.n_params)
    log_l = np.array([float(model.logpdf(p, data)[0]) for p in pyhf_parameters(model, morpher, thetas)])
    return Scan.from_log_likelihood(thetas, log_l)
