"""Learned per-event nuisance ratios g_jk(x, α_k) = p_j(x|α_k)/p_j(x) (seed 003; GOLLUM's form).

Seed 003 estimates the shape effect of each nuisance k on each process j with classifiers trained on
the ±1σ variation against the nominal sample. Following GOLLUM (arXiv:2505.05544) one network per
process learns every nuisance at once in the exponential-polynomial form

    log g_j(x, α) = Σ_k Δ_jk(x) α_k + Δ_jkk(x) α_k²            (no cross terms α_k α_l),

trained with the weighted cross-entropy of the variation at α_k = s = ±1 (class 1, weights
W_j^{k,s}/ν_j^{k,s}) against the nominal (class 0, W_j/ν_j) on the same events: the logit
s Δ_jk(x) + Δ_jkk(x) then converges to log p_j(x|α_k = s)/p_j(x). The profiled likelihood
(:mod:`assay.analysis.profiled`) takes g_jk(x, ±1) = exp(±Δ_jk + Δ_jkk) and interpolates between
them as it does for exact ratios.
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
from assay.saving import atomic_directory, json_field, read_tagged_json

__all__ = ["NUISANCE_FILE", "NuisanceRatios"]

FORMAT = "assay.NuisanceRatios"
SCHEMA_VERSION = 1
NUISANCE_FILE = "nuisance_ratios.json"


class _ShapeNet(nn.Module):
    """x → (Δ_k(x), Δ_kk(x)), each ``(n, n_syst)``."""

    def __init__(self, n_obs: int, n_syst: int, hidden: Sequence[int], activation: str):
        super().__init__()
        self.n_syst = n_syst
        self.x_scaler = Standardizer(n_obs)
        self.mlp = MLP(n_obs, 2 * n_syst, hidden, activation)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.mlp(self.x_scaler(x))
        return out[:, : self.n_syst], out[:, self.n_syst :]


def _loss(net: _ShapeNet, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
    """Weighted cross-entropy of the logit s Δ_k + Δ_kk (the row's nuisance k and side s)."""
    linear, quadratic = net(batch["x"])
    k = batch["k"].long()[:, None]
    logit = batch["s"] * linear.gather(1, k)[:, 0] + quadratic.gather(1, k)[:, 0]
    ce = nn.functional.binary_cross_entropy_with_logits(logit, batch["y"], weight=batch["w"], reduction="sum")
    total = ce / batch["w"].sum()
    return total, {"cross_entropy": total.detach()}


class NuisanceRatios:
    """One network per process giving log g_j(x, α) for every nuisance (module docstring).

    Args:
        hidden, activation: each network's hidden widths and activation.
        max_events: train on at most this many events per process (a seeded subset).
        **trainer: :class:`~assay.estimators.train.Trainer` fields (``epochs``, ``batch_size``, ...).
    """

    def __init__(
        self,
        *,
        hidden: Sequence[int] = (64, 64),
        activation: str = "relu",
        max_events: int | None = None,
        **trainer: Any,
    ):
        unknown = sorted(set(trainer) - set(TRAINER_FIELDS))
        if unknown:
            raise ConfigError(
                f"NuisanceRatios: unknown argument(s) {unknown}; valid: {sorted(TRAINER_FIELDS)}"
            )
        make_activation(activation)
        self.hidden, self.activation = tuple(int(h) for h in hidden), activation
        self.max_events = max_events
        self.trainer = Trainer(**trainer)

    def get_params(self) -> dict[str, Any]:
        return {"hidden": list(self.hidden), "activation": self.activation, "max_events": self.max_events,
                **self.trainer.to_dict()}  # fmt: skip

    def fit(
        self, x: np.ndarray, nominal: np.ndarray, varied: np.ndarray, *, names: Sequence[str],
        processes: Sequence[str],
    ) -> NuisanceRatios:  # fmt: skip
        """Train one network per process.

        Args:
            x: events ``(n, n_obs)``.
            nominal: W_j per event ``(n, n_proc)``.
            varied: W_j at α_k = ±1 ``(n, n_syst, 2, n_proc)`` (axis 2: +1, −1).
            names: the nuisances ``(n_syst,)``; processes: the processes ``(n_proc,)``.

        Raises:
            ValueError: wrong shapes, non-finite values, a process or variation with Σ W ≤ 0.
        """
        x, nominal, varied = (np.asarray(a, dtype=float) for a in (x, nominal, varied))
        n, n_syst, n_proc = len(x), len(names), len(processes)
        if nominal.shape != (n, n_proc) or varied.shape != (n, n_syst, 2, n_proc):
            raise ValueError(
                f"nominal, varied: expected shapes ({n}, {n_proc}) and ({n}, {n_syst}, 2, {n_proc}), got "
                f"{nominal.shape} and {varied.shape}"
            )
        if not (np.isfinite(x).all() and np.isfinite(nominal).all() and np.isfinite(varied).all()):
            raise ValueError("x, nominal, varied: NaN or infinite values; fix the events first")
        rng = np.random.default_rng(self.trainer.seed)
        rows = np.arange(n) if self.max_events is None or self.max_events >= n else np.sort(
            rng.choice(n, self.max_events, replace=False))  # fmt: skip
        self.nets_: list[_ShapeNet] = []
        self.histories_: list[History] = []
        for j in range(n_proc):
            arrays = self._arrays(x[rows], nominal[rows, j], varied[rows, :, :, j], processes[j])
            with seeded(self.trainer.seed + j):
                net = _ShapeNet(x.shape[1], n_syst, self.hidden, self.activation)
            net.x_scaler.fit(x[rows], nominal[rows, j])
            self.histories_.append(self.trainer.fit(net, _loss, arrays))
            self.nets_.append(net.cpu().eval())
        self.names_, self.processes_, self.n_obs_ = tuple(names), tuple(processes), x.shape[1]
        return self

    @staticmethod
    def _arrays(
        x: np.ndarray, nominal: np.ndarray, varied: np.ndarray, process: str
    ) -> dict[str, np.ndarray]:
        """Rows (x, y, w, k, s): for each nuisance and side, the events as the variation (y = 1) and as
        the nominal (y = 0), each class normalised to Σ w = 1."""
        nu = nominal.sum()
        nu_varied = varied.sum(axis=0)  # (n_syst, 2)
        if nu <= 0 or np.any(nu_varied <= 0):
            raise ValueError(f"process {process!r}: Σ W must be > 0, nominal and varied")
        n, n_syst = len(x), varied.shape[1]
        parts: dict[str, list[np.ndarray]] = {"x": [], "y": [], "w": [], "k": [], "s": []}
        for k in range(n_syst):
            for side, sign in enumerate((1.0, -1.0)):
                for label, w in ((1.0, varied[:, k, side] / nu_varied[k, side]), (0.0, nominal / nu)):
                    parts["x"].append(x)
                    parts["y"].append(np.full(n, label))
                    parts["w"].append(w)
                    parts["k"].append(np.full(n, float(k)))
                    parts["s"].append(np.full(n, sign))
        return {key: np.concatenate(v) for key, v in parts.items()}

    def _fitted(self) -> None:
        if not hasattr(self, "nets_"):
            raise NotFittedError("NuisanceRatios is not fitted: call fit(...) or NuisanceRatios.load(path)")

    def shape_ratios(self, x: np.ndarray, chunk: int = 200_000) -> np.ndarray:
        """g_jk(x, ±1) = exp(±Δ_jk + Δ_jkk) ``(n_syst, 2, n_proc, n_events)``."""
        self._fitted()
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.n_obs_:
            raise ValueError(f"x: expected shape (n_events, {self.n_obs_}), got {x.shape}")
        out = np.empty((len(self.names_), 2, len(self.processes_), len(x)))
        with torch.no_grad():
            for j, net in enumerate(self.nets_):
                for start in range(0, len(x), chunk):
                    lin, quad = (t.numpy().T for t in net(torch.from_numpy(x[start : start + chunk])))
                    out[:, 0, j, start : start + chunk] = np.exp(lin + quad)
                    out[:, 1, j, start : start + chunk] = np.exp(-lin + quad)
        return out

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
            net = _ShapeNet(n_obs, len(names), model.hidden, model.activation)
            try:
                net.load_state_dict(torch.load(path / f"process_{j}.pt", weights_only=True))
            except (OSError, RuntimeError, ValueError) as exc:
                raise StoreError(f"{path / f'process_{j}.pt'}: cannot read the network ({exc})") from exc
            model.nets_.append(net.eval())
        model.names_, model.processes_, model.n_obs_ = tuple(names), tuple(processes), n_obs
        model.histories_ = [History.from_dict(h) for h in meta.get("histories", [])]
        return model
