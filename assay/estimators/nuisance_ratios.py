"""Learned per-event nuisance ratios g_jk(x, α_k) = p_j(x|α_k)/p_j(x) (seed 003; GOLLUM's form).

Seed 003 estimates the shape effect of each nuisance k on each process j with classifiers trained on
the ±1σ variation against the nominal sample. Following GOLLUM (arXiv:2505.05544) one network per
process learns every nuisance at once in the exponential-polynomial form

    log g_j(x, α) = Σ_A Δ_jA(x) α^A,    A = α_k, α_k² and, with ``cross_terms``, α_k α_l (k < l)

(:class:`~assay.monomials.Monomials`), trained with the weighted cross-entropy of each
variation point α_p (class 1, weights W_j(x|α_p)/ν_j(α_p)) against the nominal (class 0, W_j/ν_j) on
the same events, all points at once: the logit Σ_A Δ_jA(x) α_p^A then converges to
log p_j(x|α_p)/p_j(x). The points are α_k = ±1 alone and, with cross terms, the four corners
(α_k, α_l) = (±1, ±1) of every pair (:func:`~assay.monomials.variation_points`).
The profiled likelihood (:mod:`assay.analysis.profiled`) takes g_jk(x, ±1) = exp(±Δ_jk + Δ_jkk) and
interpolates between them as it does for exact ratios, or (``interpolation: gollum``) uses the Δ_jA
themselves (:meth:`NuisanceRatios.log_coefficients`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from assay import __version__
from assay.estimators.base import TRAINER_FIELDS
from assay.estimators.nets import MLP, Standardizer, make_activation
from assay.estimators.train import History, Trainer, seeded
from assay.exceptions import ConfigError, NotFittedError, StoreError
from assay.monomials import Monomials, variation_points
from assay.saving import atomic_directory, json_field, read_tagged_json

__all__ = ["NUISANCE_FILE", "NuisanceRatios"]

FORMAT = "assay.NuisanceRatios"
SCHEMA_VERSION = 1
NUISANCE_FILE = "nuisance_ratios.json"


def _n_outputs(n_syst: int, cross_terms: bool) -> int:
    """Δ_k, Δ_kk (and Δ_kl): the monomials a network predicts."""
    return Monomials(n_syst).n_mono if cross_terms else 2 * n_syst


class _ShapeNet(nn.Module):
    """x → Δ_A(x) ``(n, n_outputs)`` in the order of :class:`Monomials` (Δ_k, Δ_kk, then Δ_kl)."""

    def __init__(self, n_obs: int, n_outputs: int, hidden: Sequence[int], activation: str):
        super().__init__()
        self.x_scaler = Standardizer(n_obs)
        self.mlp = MLP(n_obs, n_outputs, hidden, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.x_scaler(x))


def _loss(net: _ShapeNet, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
    """Weighted cross-entropy of the logit Σ_A Δ_A(x) α_p^A at the row's variation point p (the
    monomials of the points are the net's buffer ``design`` ``(n_points, n_outputs)``)."""
    logit = (net(batch["x"]) * net.design[batch["p"].long()]).sum(dim=1)
    ce = nn.functional.binary_cross_entropy_with_logits(logit, batch["y"], weight=batch["w"], reduction="sum")
    total = ce / batch["w"].sum()
    return total, {"cross_entropy": total.detach()}


class NuisanceRatios:
    """One network per process giving log g_j(x, α) for every nuisance (module docstring).

    Args:
        hidden, activation: each network's hidden widths and activation.
        max_events: train on at most this many events per process (a seeded subset).
        cross_terms: also learn Δ_kl of α_k α_l from the pairwise variations (GOLLUM's full form,
            ``interpolation: gollum``); each of the 2K + 2K(K − 1) points is a copy of the events
            for each class, so the training arrays hold 2 (2K + 2K(K − 1)) copies of them (K = 5: 100).
        **trainer: :class:`~assay.estimators.train.Trainer` fields (``epochs``, ``batch_size``, ...).
    """

    def __init__(
        self,
        *,
        hidden: Sequence[int] = (64, 64),
        activation: str = "relu",
        max_events: int | None = None,
        cross_terms: bool = False,
        **trainer: Any,
    ):
        unknown = sorted(set(trainer) - set(TRAINER_FIELDS))
        if unknown:
            raise ConfigError(
                f"NuisanceRatios: unknown argument(s) {unknown}; valid: {sorted(TRAINER_FIELDS)}"
            )
        make_activation(activation)
        self.hidden, self.activation = tuple(int(h) for h in hidden), activation
        self.max_events, self.cross_terms = max_events, bool(cross_terms)
        self.trainer = Trainer(**trainer)

    def get_params(self) -> dict[str, Any]:
        return {"hidden": list(self.hidden), "activation": self.activation, "max_events": self.max_events,
                "cross_terms": self.cross_terms, **self.trainer.to_dict()}  # fmt: skip

    def fit(
        self, x: np.ndarray, nominal: np.ndarray, varied: np.ndarray, *, names: Sequence[str],
        processes: Sequence[str], pairs: np.ndarray | None = None,
    ) -> NuisanceRatios:  # fmt: skip
        """Train one network per process.

        Args:
            x: events ``(n, n_obs)``.
            nominal: W_j per event ``(n, n_proc)``.
            varied: W_j at α_k = ±1 ``(n, n_syst, 2, n_proc)`` (axis 2: +1, −1).
            names: the nuisances ``(n_syst,)``; processes: the processes ``(n_proc,)``.
            pairs: with ``cross_terms``, W_j at (α_k, α_l) = (+, +), (+, −), (−, +), (−, −)
                ``(n, n_pairs, 4, n_proc)`` for the pairs k < l in row-major order (:class:`Monomials`).

        Raises:
            ValueError: wrong shapes, non-finite values, a process or variation with Σ W ≤ 0,
                ``pairs`` missing with ``cross_terms`` (or given without).
        """
        x, nominal, varied = (np.asarray(a, dtype=float) for a in (x, nominal, varied))
        n, n_syst, n_proc = len(x), len(names), len(processes)
        if nominal.shape != (n, n_proc) or varied.shape != (n, n_syst, 2, n_proc):
            raise ValueError(
                f"nominal, varied: expected shapes ({n}, {n_proc}) and ({n}, {n_syst}, 2, {n_proc}), got "
                f"{nominal.shape} and {varied.shape}"
            )
        at_points = self._at_points(varied, pairs)
        if not (np.isfinite(x).all() and np.isfinite(nominal).all() and np.isfinite(at_points).all()):
            raise ValueError("x, nominal, varied, pairs: NaN or infinite values; fix the events first")
        points = variation_points(n_syst)[: at_points.shape[1]]
        design = torch.as_tensor(Monomials(n_syst)(points)[:, : _n_outputs(n_syst, self.cross_terms)],
                                 dtype=torch.float32)  # fmt: skip
        rng = np.random.default_rng(self.trainer.seed)
        rows = np.arange(n) if self.max_events is None or self.max_events >= n else np.sort(
            rng.choice(n, self.max_events, replace=False))  # fmt: skip
        self.nets_: list[_ShapeNet] = []
        self.histories_: list[History] = []
        for j in range(n_proc):
            arrays = self._arrays(x[rows], nominal[rows, j], at_points[rows, :, j], processes[j])
            with seeded(self.trainer.seed + j):
                net = _ShapeNet(x.shape[1], design.shape[1], self.hidden, self.activation)
            net.register_buffer("design", design, persistent=False)
            net.x_scaler.fit(x[rows], nominal[rows, j])
            self.histories_.append(self.trainer.fit(net, _loss, arrays))
            self.nets_.append(net.cpu().eval())
        self.names_, self.processes_, self.n_obs_ = tuple(names), tuple(processes), x.shape[1]
        return self

    def _at_points(self, varied: np.ndarray, pairs: np.ndarray | None) -> np.ndarray:
        """W_j at the variation points ``(n, n_points, n_proc)``: singles, then (cross terms) pairs."""
        n, n_syst, _, n_proc = varied.shape
        singles = varied.reshape(n, 2 * n_syst, n_proc)
        if not self.cross_terms:
            if pairs is not None:
                raise ValueError("pairs: given, but cross_terms is False (cross_terms=True learns Δ_kl)")
            return singles
        n_pairs = len(Monomials(n_syst).pairs)
        if pairs is None or np.shape(pairs) != (n, n_pairs, 4, n_proc):
            raise ValueError(
                f"pairs: cross_terms needs the weights at the pairwise points, shape ({n}, {n_pairs}, 4, "
                f"{n_proc}); got {None if pairs is None else np.shape(pairs)}"
            )
        corners = np.asarray(pairs, dtype=float).reshape(n, 4 * n_pairs, n_proc)
        return np.concatenate([singles, corners], axis=1)

    @staticmethod
    def _arrays(
        x: np.ndarray, nominal: np.ndarray, at_points: np.ndarray, process: str
    ) -> dict[str, np.ndarray]:
        """Rows (x, y, w, p): for each variation point p, the events as the variation (y = 1) and as the
        nominal (y = 0), each class normalised to Σ w = 1."""
        nu = nominal.sum()
        nu_points = at_points.sum(axis=0)  # (n_points,)
        if nu <= 0 or np.any(nu_points <= 0):
            raise ValueError(f"process {process!r}: Σ W must be > 0, nominal and varied")
        n, n_points = at_points.shape
        w = np.stack([at_points / nu_points, np.broadcast_to((nominal / nu)[:, None], (n, n_points))])
        return {
            "x": np.tile(x, (2 * n_points, 1)),
            "y": np.repeat(np.tile([1.0, 0.0], n_points), n),
            "w": w.transpose(2, 0, 1).reshape(-1),  # (point, class, event)
            "p": np.repeat(np.arange(n_points, dtype=float), 2 * n),
        }

    def _fitted(self) -> None:
        if not hasattr(self, "nets_"):
            raise NotFittedError("NuisanceRatios is not fitted: call fit(...) or NuisanceRatios.load(path)")

    def log_coefficients(self, x: np.ndarray, chunk: int = 200_000) -> np.ndarray:
        """GOLLUM's Δ_jA(x) ``(n_mono, n_proc, n_events)`` in the order of :class:`Monomials` (the
        cross terms 0 for a model without ``cross_terms``)."""
        self._fitted()
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.n_obs_:
            raise ValueError(f"x: expected shape (n_events, {self.n_obs_}), got {x.shape}")
        out = np.zeros((Monomials(len(self.names_)).n_mono, len(self.processes_), len(x)))
        with torch.no_grad():
            for j, net in enumerate(self.nets_):
                for start in range(0, len(x), chunk):
                    delta = net(torch.from_numpy(x[start : start + chunk])).numpy().T
                    out[: len(delta), j, start : start + chunk] = delta
        return out

    def shape_ratios(self, x: np.ndarray, chunk: int = 200_000) -> np.ndarray:
        """g_jk(x, ±1) = exp(±Δ_jk + Δ_jkk) ``(n_syst, 2, n_proc, n_events)``."""
        delta = self.log_coefficients(x, chunk)
        n_syst = len(self.names_)
        linear, quadratic = delta[:n_syst], delta[n_syst : 2 * n_syst]
        return np.exp(np.stack([quadratic + linear, quadratic - linear], axis=1))

    def save(self, path: str | os.PathLike) -> Path:
        """``nuisance_ratios.json`` and ``process_<j>.pt`` (state dicts) into ``path``, atomically."""
        self._fitted()
        path = Path(path)
        meta = {"format": FORMAT, "schema_version": SCHEMA_VERSION, "assay_version": __version__,
                "params": self.get_params(), "names": list(self.names_), "processes": list(self.processes_),
                "n_obs": self.n_obs_, "histories": [h.to_dict() for h in self.histories_]}  # fmt: skip
        with atomic_directory(path, markers=(NUISANCE_FILE,), what="nuisance ratios") as tmp:
            for j, net in enumerate(self.nets_):
                torch.save(net.state_dict(), tmp / f"process_{j}.pt")
            (tmp / NUISANCE_FILE).write_text(json.dumps(meta, indent=1))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> NuisanceRatios:
        """Read a model written by :meth:`save` (``torch.load(weights_only=True)``: no pickled code)."""
        path = Path(path)
        source = path / NUISANCE_FILE
        meta = read_tagged_json(source, format=FORMAT, schema_version=SCHEMA_VERSION, what="nuisance ratios")
        model = cls(**json_field(meta, "params", source, dict))
        names, processes = (
            json_field(meta, "names", source, list),
            json_field(meta, "processes", source, list),
        )
        n_obs = int(json_field(meta, "n_obs", source, int))
        model.nets_ = []
        for j in range(len(processes)):
            net = _ShapeNet(n_obs, _n_outputs(len(names), model.cross_terms), model.hidden, model.activation)
            try:
                net.load_state_dict(torch.load(path / f"process_{j}.pt", weights_only=True))
            except (OSError, RuntimeError, ValueError) as exc:
                raise StoreError(f"{path / f'process_{j}.pt'}: cannot read the network ({exc})") from exc
            model.nets_.append(net.eval())
        model.names_, model.processes_, model.n_obs_ = tuple(names), tuple(processes), n_obs
        model.histories_ = [History.from_dict(h) for h in meta.get("histories", [])]
        return model
