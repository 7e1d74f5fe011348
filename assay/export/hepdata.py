"""Limits → a HEPData submission (hepdata-lib), checked with hepdata-validator (docs/exports.md).

:func:`to_hepdata` reads ``results.json`` of a limits folder (``assay limits``' ``OUTPUT/limits``,
:class:`~assay.results.Results`) and writes, per level of the results:

- one table per 1D scan: the scanned parameter (independent, with its unit) and q(θ) = −2Δln L of
  every method (one dependent variable each), with qualifiers for the method, the data (Asimov or
  observed), √s and the luminosity where known, the fixed parameters and the 68% / 95% CL intervals;
- one table per 2D scan: both parameters at every grid point and q of every method;
- one table per 2D scan, method, confidence level and closed or open line: the contour
  q − q_min = q_crit (2.30 for 68%, 5.99 for 95% CL, two parameters, asymptotic) of the bicubic
  spline of the scan (:func:`assay.inference.asymptotic.contours_2d`, the report's definition),
  the first parameter independent and the second dependent.

√s and the reaction come from the run config (``config=``, else the config recorded in the folder's
``provenance.json``): the ``wh`` and ``offshell`` simulators name them; other runs have none.
The folder (``submission.yaml``, one YAML file per table, and hepdata-lib's ``submission.tar.gz``)
is written to a temporary sibling and moved into place once it is complete and valid.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assay.config import RunConfig, config_from_dict, load_config
from assay.exceptions import AssayError
from assay.export import ExportError, require
from assay.inference.asymptotic import DEFAULT_CLS, contours_2d, critical_value
from assay.inference.likelihood import Scan
from assay.results import LevelResults, Results, Scan1D, Scan2D, interval_tag
from assay.rundir import ResultsDir
from assay.saving import atomic_directory

__all__ = ["DIGITS", "REACTIONS", "Context", "build_submission", "to_hepdata", "validate_submission"]

DIGITS = 8
"""Significant digits of every number written (hepdata-lib's default is 5)."""

REACTIONS = {"wh": "P P --> W H X", "offshell": "P P --> Z0 Z0 X"}
"""The HEPData ``reactions`` keyword of each simulator kind that has one."""

SUBMISSION_FILE = "submission.yaml"
ARCHIVE = "submission.tar.gz"
Q_NAME = r"$-2\Delta\ln L$"


@dataclass(frozen=True)
class Context:
    """What the results file does not say about the measurement, from the run config.

    Attributes:
        sqrt_s_gev: the centre-of-mass energy in GeV, or None.
        reaction: the HEPData reaction (``"P P --> W H X"``), or None.
    """

    sqrt_s_gev: float | None = None
    reaction: str | None = None

    @classmethod
    def from_config(cls, cfg: RunConfig | None) -> Context:
        """√s and the reaction of the config's simulator (None for the toy and imported events)."""
        if cfg is None:
            return cls()
        sim = cfg.simulator
        sqrt_s = getattr(sim, "sqrt_s", None)
        return cls(None if sqrt_s is None else float(sqrt_s), REACTIONS.get(sim.kind))


# ---- reading ----------------------------------------------------------------------------------------


def read_limits(limits_dir: str | os.PathLike) -> Results:
    """The checked ``results.json`` of a limits folder.

    Raises:
        ExportError: the folder is missing or holds no ``results.json``.
        StoreError: ``results.json`` is malformed (naming the key path).
    """
    folder = ResultsDir(limits_dir)
    if not folder.root.is_dir():
        raise ExportError(
            f"{folder.root}: no such folder; expected a limits folder (OUTPUT/limits of assay limits)"
        )
    if not folder.results.is_file():
        raise ExportError(
            f"{folder.root}: not a limits folder: it has no results.json; run `assay limits CONFIG` and "
            f"pass its OUTPUT/limits"
        )
    return Results.from_json(folder.results)


def _context(limits_dir: Path, config: RunConfig | str | os.PathLike | None) -> Context:
    if isinstance(config, RunConfig):
        return Context.from_config(config)
    if config is not None:
        return Context.from_config(load_config(config))
    from assay.provenance import read_provenance

    try:
        record = read_provenance(limits_dir)
        recorded = None if record is None or record.config is None else config_from_dict(record.config)
    except AssayError:  # an unreadable record only costs the optional keywords
        recorded = None
    return Context.from_config(recorded)


# ---- tables -----------------------------------------------------------------------------------------


def _units(unit: str) -> str:
    """``TeV^-2`` → ``TeV$^{-2}$`` (HEPData renders LaTeX in units)."""
    return re.sub(r"\^\{?(-?\d+)\}?", r"$^{\1}$", unit)


def _value(v: float) -> float | str:
    """A number, or ``"-"`` (HEPData's missing value) where it is NaN or infinite."""
    return float(v) if math.isfinite(v) else "-"


@dataclass(frozen=True)
class _Writer:
    """Builds the tables of one :class:`Results` (labels, units, qualifiers shared by all)."""

    results: Results
    context: Context
    cls: tuple[float, ...]
    digits: int
    hepdata: Any  # the hepdata_lib module

    def variable(self, name: str, values: Sequence[Any], *, independent: bool, units: str = "") -> Any:
        var = self.hepdata.Variable(name, is_independent=independent, is_binned=False, units=units,
                                    zero_uncertainties_warning=False)  # fmt: skip
        var.values = list(values)
        var.digits = self.digits
        return var

    def parameter(self, name: str, values: Sequence[float], *, independent: bool = True) -> Any:
        i = self.results.parameters.index(name)
        label = self.results.parameter_labels[i] or name
        return self.variable(
            label, values, independent=independent, units=_units(self.results.parameter_units[i])
        )

    def qualify(self, var: Any, level: LevelResults, method: str, fixed: dict[str, float]) -> None:
        var.add_qualifier("Method", method)
        var.add_qualifier("Data", "Asimov (expected)" if level.data == "asimov" else level.data)
        if self.context.sqrt_s_gev is not None:
            var.add_qualifier("SQRT(S)", self.context.sqrt_s_gev, "GeV")
        var.add_qualifier("LUMINOSITY", self.results.luminosity_ifb, "fb$^{-1}$")
        for name, value in fixed.items():
            i = self.results.parameters.index(name)
            var.add_qualifier(
                self.results.parameter_labels[i] or name, value, _units(self.results.parameter_units[i])
            )

    def table(self, name: str, description: str) -> Any:
        table = self.hepdata.Table(name)
        table.description = description
        table.location = f"assay limits: {self.results.title}"
        table.keywords["observables"] = ["-2DLNL"]
        table.keywords["phrases"] = ["Likelihood scan", "Confidence level", "Simulation-based inference"]
        if self.context.sqrt_s_gev is not None:
            table.keywords["cmenergies"] = [self.context.sqrt_s_gev]
        if self.context.reaction is not None:
            table.keywords["reactions"] = [self.context.reaction]
        return table

    def where(self, level: LevelResults, fixed: dict[str, float]) -> str:
        data = "expected (Asimov data)" if level.data == "asimov" else level.data
        others = ", ".join(f"{k} = {v:g}" for k, v in fixed.items())
        return (
            f"{data} at L = {self.results.luminosity_ifb:g} fb^-1{'; ' + others + ' fixed' if others else ''}"
        )

    # ---- 1D ----------------------------------------------------------------------------------------
    def scan_1d(self, name: str, level: LevelResults, scan: Scan1D) -> Any:
        crit = ", ".join(f"{100 * cl:.4g}% CL: q < {critical_value(cl, 1):.3g}" for cl in self.cls)
        table = self.table(
            name,
            f"q = -2 Delta ln L as a function of {scan.parameter}, one dependent variable per method "
            f"(q = 0 at the best fit on the scan); {self.where(level, scan.fixed)}. The asymptotic "
            f"confidence intervals ({crit}, one parameter) are given as qualifiers.",
        )
        table.add_variable(self.parameter(scan.parameter, scan.theta.tolist()))
        for method, q in scan.q.items():
            var = self.variable(Q_NAME, [_value(v) for v in q], independent=False)
            self.qualify(var, level, method, scan.fixed)
            for cl in self.cls:
                var.add_qualifier(
                    f"{interval_tag(cl)}% CL interval", _interval_text(level, method, scan.parameter, cl)
                )
            table.add_variable(var)
        return table

    # ---- 2D ----------------------------------------------------------------------------------------
    def grid_2d(self, name: str, level: LevelResults, scan: Scan2D) -> Any:
        a, b = scan.parameters
        table = self.table(
            name,
            f"q = -2 Delta ln L on the {len(scan.axes[0])} x {len(scan.axes[1])} grid of {a} and {b}, one "
            f"dependent variable per method; {self.where(level, scan.fixed)}. The contours are in the "
            f"tables that follow.",
        )
        mesh = np.meshgrid(*scan.axes, indexing="ij")
        table.add_variable(self.parameter(a, mesh[0].ravel().tolist()))
        table.add_variable(self.parameter(b, mesh[1].ravel().tolist()))
        for method, q in scan.q.items():
            var = self.variable(Q_NAME, [_value(v) for v in q.ravel()], independent=False)
            self.qualify(var, level, method, scan.fixed)
            table.add_variable(var)
        return table

    def contours_2d(self, prefix: str, level: LevelResults, scan: Scan2D) -> tuple[list[Any], list[str]]:
        """The contour tables of every method and CL, and one note per method without contours."""
        a, b = scan.parameters
        tables, notes = [], []
        theta = np.stack([m.ravel() for m in np.meshgrid(*scan.axes, indexing="ij")], -1)
        for method, q in scan.q.items():
            flat = q.ravel()
            if not np.isfinite(flat).all():
                notes.append(f"{method}: q is not finite everywhere on the grid, no contour")
                continue
            result = contours_2d(Scan(theta, flat, theta[int(np.argmin(flat))]), self.cls, dof=2)
            for cl, lines in result.contours.items():
                crit = result.critical_values[cl]
                for i, line in enumerate(lines):
                    part = f" part {i + 1}" if len(lines) > 1 else ""
                    closed = (
                        "closed"
                        if len(line) > 2 and np.allclose(line[0], line[-1])
                        else "open (cut by the grid)"
                    )
                    table = self.table(
                        f"{prefix}{interval_tag(cl)}% CL contour {a} {b} {method}{part}",
                        f"The {100 * cl:.4g}% CL contour of {method} in ({a}, {b}): q - q_min = {crit:.3g} "
                        f"(asymptotic, two parameters) on the bicubic spline of the scan, q_min its "
                        f"minimum; a {closed} line of {len(line)} points; {self.where(level, scan.fixed)}.",
                    )  # fmt: skip
                    table.add_variable(self.parameter(a, line[:, 0].tolist()))
                    var = self.parameter(b, line[:, 1].tolist(), independent=False)
                    self.qualify(var, level, method, scan.fixed)
                    var.add_qualifier("CL", f"{100 * cl:.4g}%")
                    table.add_variable(var)
                    tables.append(table)
            if not any(result.contours.values()):
                notes.append(f"{method}: no contour inside the grid")
        return tables, notes


def _interval_text(level: LevelResults, method: str, parameter: str, cl: float) -> str:
    """The CL region as text: its disjoint intervals (``regions``) or span (``intervals``); an open end
    reads ``beyond the scan``."""
    key = f"{parameter}_{interval_tag(cl)}"
    parts = level.regions.get(method, {}).get(key)
    if parts is None:
        span = level.intervals.get(method, {}).get(key)
        if span is None:
            return "not computed"
        parts = (span,)

    def end(v: float | None) -> str:
        return "beyond the scan" if v is None else f"{v:.6g}"

    return " U ".join(f"[{end(lo)}, {end(hi)}]" for lo, hi in parts) or "empty"


def build_submission(
    results: Results,
    *,
    context: Context = Context(),
    cls: Sequence[float] = DEFAULT_CLS,
    digits: int = DIGITS,
) -> Any:
    """A ``hepdata_lib.Submission`` with the tables of the module docstring.

    Args:
        results: the limits (``results.json``).
        context: √s and the reaction, where known.
        cls: confidence levels of the intervals and contours.
        digits: significant digits of every number.

    Raises:
        ExportError: hepdata-lib is missing, or the results hold no scan.
    """
    hepdata = require("hepdata_lib", "HEPData export")
    writer = _Writer(results, context, tuple(cls), int(digits), hepdata)
    submission = hepdata.Submission()
    submission.comment = (
        f"{results.title}. Likelihood scans and confidence regions from assay (simulation-based "
        f"inference), integrated luminosity {results.luminosity_ifb:g} fb^-1."
    )
    several = len(results.levels) > 1
    for level_name, level in results.levels.items():
        prefix = f"{level_name} " if several else ""
        for parameter, scan in level.scans_1d.items():
            submission.add_table(writer.scan_1d(f"{prefix}1D scan {parameter}", level, scan))
        for scan in level.scans_2d:
            a, b = scan.parameters
            contours, notes = writer.contours_2d(prefix, level, scan)
            grid = writer.grid_2d(f"{prefix}2D scan {a} {b}", level, scan)
            if notes:
                grid.description += " " + "; ".join(notes) + "."
            submission.add_table(grid)
            for table in contours:
                submission.add_table(table)
    if not submission.tables:
        raise ExportError(
            f"results '{results.title}': no 1D or 2D scan to export; is this the output of assay limits?"
        )
    return submission


# ---- writing ----------------------------------------------------------------------------------------


def validate_submission(archive: str | os.PathLike) -> None:
    """Check a submission archive (``submission.tar.gz``, what HEPData takes) with hepdata-validator.

    Raises:
        ExportError: hepdata-validator is missing, or the archive is not a valid submission (the
            first messages are quoted).
    """
    module = require("hepdata_validator.full_submission_validator", "validating a HEPData submission")
    validator = module.FullSubmissionValidator()
    if validator.validate(archive=os.fspath(archive)):
        return
    messages = [
        f"{Path(file).name}: {m.message}" for file, ms in validator.get_messages().items() for m in ms
    ]
    raise ExportError(f"{archive}: hepdata-validator rejects the submission: {'; '.join(messages[:5])}")


def to_hepdata(
    limits_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    config: RunConfig | str | os.PathLike | None = None,
    cls: Sequence[float] = DEFAULT_CLS,
    digits: int = DIGITS,
    validate: bool = True,
) -> Path:
    """Write the HEPData submission of a limits folder, atomically.

    Args:
        limits_dir: what ``assay limits`` wrote (``OUTPUT/limits``, holding ``results.json``).
        out_dir: the submission folder to write: ``submission.yaml``, one YAML file per table and
            ``submission.tar.gz`` (what HEPData takes). An existing submission folder (or an empty
            one) is replaced; anything else is refused.
        config: the run config (or its YAML file) for √s and the reaction; None: the config recorded
            in ``limits_dir/provenance.json``, if any.
        cls: confidence levels of the intervals and contours (default 68.27% and 95%).
        digits: significant digits of every number.
        validate: check the folder with hepdata-validator before it replaces ``out_dir``.

    Returns:
        ``out_dir``.

    Raises:
        ExportError: ``limits_dir`` is not a limits folder, the validator rejects the submission, or
            the ``export`` extra is missing.
        StoreError: ``results.json`` is malformed, or ``out_dir`` exists and is not a submission.
        ConfigError: ``config`` is not a valid run config.
    """
    limits_dir, out_dir = Path(limits_dir), Path(out_dir)
    results = read_limits(limits_dir)
    context = _context(limits_dir, config)
    with atomic_directory(out_dir, markers=(SUBMISSION_FILE,), what="HEPData submission") as tmp:
        submission = build_submission(results, context=context, cls=cls, digits=digits)
        here = Path.cwd()
        os.chdir(tmp)  # hepdata-lib writes its archive into the working directory
        try:
            submission.create_files(outdir=".", validate=False)
        finally:
            os.chdir(here)
        if validate:
            validate_submission(tmp / ARCHIVE)
    return out_dir
