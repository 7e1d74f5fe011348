"""Vertical interpolation of a ratio in a nuisance parameter α from its values at α = ±1 (seed 003).

A systematic variation is simulated at α = ±1 only; seed 003 ("Vertical interpolation", backup)
interpolates both the yield factor G_j(α) = ν_j(α)/ν_j and every event's density ratio
g_j(x_i, α) = p_j(x_i|α)/p_j(x_i) with

    g(α) = up^α                      α > 1,
    g(α) = 1 + Σ_{n=1}^{6} c_n α^n    |α| ≤ 1,
    g(α) = down^(−α)                 α < −1,

where up = g(+1), down = g(−1) > 0 and the six c_n make g, g' and g'' continuous at α = ±1
(pyhf's interpolation "code 4", arXiv:1007.1727; here applied per event). The six conditions are
linear in c, A c = b with a constant matrix A and

    b = (up − 1, down − 1, up ln up, −down ln down, up ln² up, down ln² down),

so c = A⁻¹ b with the exact inverse :data:`VERTICAL_INVERSE` (sixteenths). Every function here
broadcasts α against ``up``/``down`` of any shape and works on numpy arrays and on torch tensors
(differentiable in α and in up/down), returning the type of ``up``.

Also :func:`exponential` (up^α for α ≥ 0, down^(−α) for α < 0: positive, kinked at 0) and
:func:`linear` (1 + α(up − 1), 1 + α(1 − down): kinked at 0, may turn negative). Each has a
precomputed form for one scalar α over many events (:data:`TABLES`), the fast path of
:class:`~assay.inference.profile_likelihood.ProfileLikelihood`: a differentiable torch call and
``derivatives(α)``, g and dg/dα in numpy for its analytic gradient; :class:`InterpolatedFactors`
applies one table per nuisance to every process's ratios and yields.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "INTERPOLATIONS",
    "TABLES",
    "VERTICAL_INVERSE",
    "ExponentialTable",
    "InterpolatedFactors",
    "LinearTable",
    "VerticalTable",
    "exponential",
    "interpolation",
    "interpolation_table",
    "linear",
    "vertical",
    "vertical_coefficients",
]

Array = Any  # np.ndarray or torch.Tensor

# A⁻¹ of the conditions on (c_1..c_6): rows of A are g(1), g(−1), g'(1), g'(−1), g''(1), g''(−1).
VERTICAL_INVERSE = (
    np.array(
        [
            [15, -15, -7, -7, 1, -1],
            [24, 24, -9, 9, 1, 1],
            [-10, 10, 10, 10, -2, 2],
            [-24, -24, 14, -14, -2, -2],
            [3, -3, -3, -3, 1, -1],
            [8, 8, -5, 5, 1, 1],
        ],
        dtype=float,
    )
    / 16.0
)


def _backend(up: Array) -> Any:
    return torch if isinstance(up, torch.Tensor) else np


def _as_array(value: Array, like: Array) -> Array:
    if isinstance(like, torch.Tensor):
        return torch.as_tensor(value, dtype=like.dtype, device=like.device)
    return np.asarray(value, dtype=float)


def vertical_coefficients(up: Array, down: Array) -> Array:
    """c_1..c_6 of the polynomial branch of :func:`vertical` (seed 003 "Vertical interpolation").

    Args:
        up: g(+1) > 0, any shape.
        down: g(−1) > 0, the same shape.

    Returns:
        ``(6, *up.shape)``, c_n at index n − 1; numpy or torch like ``up``.

    Example:
        >>> vertical_coefficients(np.array(2.0), np.array(0.8)).round(4).tolist()
        [0.498, 0.5832, 0.1129, -0.2683, -0.0108, 0.0851]
    """
    xp = _backend(up)
    down = _as_array(down, up)
    log_up, log_down = xp.log(up), xp.log(down)
    b = xp.stack(
        [up - 1, down - 1, up * log_up, -down * log_down, up * log_up**2, down * log_down**2]
    )  # (6, ...)
    inverse = _as_array(VERTICAL_INVERSE, up)
    return xp.tensordot(inverse, b, 1)


def _polynomial(alpha: Array, coefficients: Array) -> Array:
    """1 + Σ_n c_n α^n by Horner's rule; ``coefficients (6, ...)``."""
    out = coefficients[5]
    for n in range(4, -1, -1):
        out = coefficients[n] + alpha * out
    return 1 + alpha * out


def vertical(alpha: Array, up: Array, down: Array) -> Array:
    """g(α) of seed 003's vertical interpolation: exponential outside [−1, 1], a C² polynomial inside.

    Args:
        alpha: α, broadcastable against ``up`` (a number, or one value per entry).
        up: g(+1) > 0, any shape (e.g. ``(n_events,)`` per-event ratios, or yields).
        down: g(−1) > 0, the same shape.

    Returns:
        g(α), the broadcast shape; numpy or torch like ``up`` (differentiable in α for torch).

    References:
        seed 003 "Vertical interpolation"; pyhf interpolation code 4 (arXiv:1007.1727).

    Example:
        >>> alpha = np.array([-2.0, -1.0, 0.0, 0.5, 1.0, 2.0])
        >>> vertical(alpha, np.array(2.0), np.array(0.8)).round(4).tolist()
        [0.64, 0.8, 1.0, 1.3931, 2.0, 4.0]
    """
    xp = _backend(up)
    down = _as_array(down, up)
    alpha = _as_array(alpha, up)
    inside = _polynomial(alpha, vertical_coefficients(up, down))
    above = xp.exp(alpha * xp.log(up))
    below = xp.exp(-alpha * xp.log(down))
    return xp.where(alpha > 1, above, xp.where(alpha < -1, below, inside))


def exponential(alpha: Array, up: Array, down: Array) -> Array:
    """g(α) = up^α (α ≥ 0), down^(−α) (α < 0): positive, kinked at α = 0 (pyhf code 1).

    Args:
        alpha: α, broadcastable against ``up``.
        up: g(+1) > 0, any shape.
        down: g(−1) > 0, the same shape.

    Returns:
        g(α), the broadcast shape; numpy or torch like ``up``.
    """
    xp = _backend(up)
    down, alpha = _as_array(down, up), _as_array(alpha, up)
    return xp.exp(xp.where(alpha >= 0, alpha * xp.log(up), -alpha * xp.log(down)))


def linear(alpha: Array, up: Array, down: Array) -> Array:
    """g(α) = 1 + α(up − 1) (α ≥ 0), 1 + α(1 − down) (α < 0): kinked at 0, negative far out (pyhf code 0).

    Args:
        alpha: α, broadcastable against ``up``.
        up: g(+1), any shape.
        down: g(−1), the same shape.

    Returns:
        g(α), the broadcast shape; numpy or torch like ``up``.
    """
    xp = _backend(up)
    down, alpha = _as_array(down, up), _as_array(alpha, up)
    return 1 + alpha * xp.where(alpha >= 0, up - 1, 1 - down)


INTERPOLATIONS: dict[str, Callable[[Array, Array, Array], Array]] = {
    "vertical": vertical,
    "exponential": exponential,
    "linear": linear,
}


def interpolation(name: str) -> Callable[[Array, Array, Array], Array]:
    """The interpolation function called ``name`` (:data:`INTERPOLATIONS`).

    Raises:
        ValueError: an unknown name (lists the valid ones).
    """
    if name not in INTERPOLATIONS:
        raise ValueError(f"interpolation: unknown name {name!r}; valid names are {sorted(INTERPOLATIONS)}")
    return INTERPOLATIONS[name]


_ORDERS = np.arange(1.0, 7.0)


class VerticalTable:
    """:func:`vertical` over fixed torch ``up``/``down`` for one scalar α at a time, precomputed.

    The fast path of a likelihood with many events: c_n, ln up and ln down are computed once, and a
    call is one matrix-vector product ``(..., 6) @ (6,)`` (|α| ≤ 1) or one exponential. The branch
    is chosen from the value of α; the result is differentiable in α.

    Args:
        up: g(+1) > 0, torch, any shape.
        down: g(−1) > 0, the same shape.
    """

    def __init__(self, up: torch.Tensor, down: torch.Tensor):
        self.log_up, self.log_down = up.log(), down.log()
        self.coefficients = vertical_coefficients(up, down).movedim(0, -1).contiguous()  # (..., 6)
        self._numpy = self.log_up.numpy(), self.log_down.numpy(), self.coefficients.numpy()

    def __call__(self, alpha: torch.Tensor) -> torch.Tensor:
        value = float(alpha.detach())
        if value > 1:
            return torch.exp(alpha * self.log_up)
        if value < -1:
            return torch.exp(-alpha * self.log_down)
        powers = torch.stack([alpha**n for n in range(1, 7)])
        return 1 + self.coefficients @ powers

    def derivatives(self, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        """(g(α), dg/dα) as numpy arrays of ``up``'s shape, for one value α."""
        log_up, log_down, coefficients = self._numpy
        if alpha > 1:
            g = np.exp(alpha * log_up)
            return g, log_up * g
        if alpha < -1:
            g = np.exp(-alpha * log_down)
            return g, -log_down * g
        powers = np.empty((6, 2))  # α^n and n α^(n−1), n = 1..6
        powers[:, 0] = alpha ** _ORDERS
        powers[:, 1] = _ORDERS * alpha ** (_ORDERS - 1)
        both = coefficients @ powers
        return 1 + both[..., 0], both[..., 1]


class ExponentialTable:
    """:func:`exponential` over fixed torch ``up``/``down`` for one scalar α (see :class:`VerticalTable`)."""

    def __init__(self, up: torch.Tensor, down: torch.Tensor):
        self.log_up, self.log_down = up.log(), down.log()
        self._numpy = self.log_up.numpy(), -self.log_down.numpy()

    def __call__(self, alpha: torch.Tensor) -> torch.Tensor:
        return torch.exp(alpha * self.log_up if float(alpha.detach()) >= 0 else -alpha * self.log_down)

    def derivatives(self, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        """(g(α), dg/dα) as numpy arrays of ``up``'s shape, for one value α."""
        slope = self._numpy[0] if alpha >= 0 else self._numpy[1]
        g = np.exp(alpha * slope)
        return g, slope * g


class LinearTable:
    """:func:`linear` over fixed torch ``up``/``down`` for one scalar α (see :class:`VerticalTable`)."""

    def __init__(self, up: torch.Tensor, down: torch.Tensor):
        self.up_step, self.down_step = up - 1, 1 - down
        self._numpy = self.up_step.numpy(), self.down_step.numpy()

    def __call__(self, alpha: torch.Tensor) -> torch.Tensor:
        return 1 + alpha * (self.up_step if float(alpha.detach()) >= 0 else self.down_step)

    def derivatives(self, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        """(g(α), dg/dα) as numpy arrays of ``up``'s shape, for one value α."""
        step = self._numpy[0] if alpha >= 0 else self._numpy[1]
        return 1 + alpha * step, step


TABLES: dict[str, type[VerticalTable | ExponentialTable | LinearTable]] = {
    "vertical": VerticalTable,
    "exponential": ExponentialTable,
    "linear": LinearTable,
}


def interpolation_table(name: str) -> type[VerticalTable | ExponentialTable | LinearTable]:
    """The precomputed form of the interpolation called ``name`` (:data:`TABLES`).

    Raises:
        ValueError: an unknown name (lists the valid ones).
    """
    if name not in TABLES:
        raise ValueError(f"interpolation: unknown name {name!r}; valid names are {sorted(TABLES)}")
    return TABLES[name]


class InterpolatedFactors:
    """rows_ji = r_j(x_i) Π_k g_jk(x_i, α_k) and G_j(α) = Π_k G_jk(α_k), one table per nuisance.

    The per-nuisance form of :class:`~assay.inference.profile_likelihood.ProfileLikelihood` (seed
    003); the processes a nuisance leaves alone (g = 1 everywhere, G = 1) are skipped.

    Args:
        shape_up, shape_down: g_jk(x_i, ±1) ``(n_syst, n_proc, n_events)``, > 0.
        norm_up, norm_down: G_jk(±1) ``(n_syst, n_proc)``, > 0.
        name: the interpolation (:data:`TABLES`).
        linear_yields: per nuisance, True for a yield linear in α (:class:`LinearTable`) whatever ``name``.
    """

    def __init__(
        self, shape_up: np.ndarray, shape_down: np.ndarray, norm_up: np.ndarray, norm_down: np.ndarray,
        name: str, linear_yields: Sequence[bool] | None = None,
    ):  # fmt: skip
        table = interpolation_table(name)
        linear = [False] * len(shape_up) if linear_yields is None else [bool(f) for f in linear_yields]
        shape_on = np.any((shape_up != 1) | (shape_down != 1), axis=2)
        norm_on = (norm_up != 1) | (norm_down != 1)
        self.n_proc = norm_up.shape[1]
        self.tables = []  # per nuisance: (shape rows or None: all, table or None, norm rows, table or None)
        for k in range(len(shape_up)):
            rows, norm_rows = np.flatnonzero(shape_on[k]), np.flatnonzero(norm_on[k])
            up, down = torch.tensor(shape_up[k, rows]), torch.tensor(shape_down[k, rows])
            norms = torch.tensor(norm_up[k, norm_rows]), torch.tensor(norm_down[k, norm_rows])
            self.tables.append((
                None if len(rows) == self.n_proc else torch.as_tensor(rows),
                table(up, down) if len(rows) else None,
                torch.as_tensor(norm_rows),
                (LinearTable if linear[k] else table)(*norms) if len(norm_rows) else None,
            ))  # fmt: skip
        self._numpy = [
            (slice(None) if index is None else index.numpy(), shape, norm_index.numpy(), yields)
            for index, shape, norm_index, yields in self.tables
        ]  # fmt: skip

    def torch(self, ratios: torch.Tensor, alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(rows ``(n_proc, n_events)``, G ``(n_proc,)``), differentiable in α ``(n_syst,)``."""
        rows, norm = ratios, torch.ones(self.n_proc, dtype=ratios.dtype)
        for k, (index, shape, norm_index, yields) in enumerate(self.tables):
            if shape is not None:
                rows = rows * shape(alpha[k]) if index is None else rows.index_copy(
                    0, index, rows[index] * shape(alpha[k])
                )  # fmt: skip
            if yields is not None:
                norm = norm.index_copy(0, norm_index, norm[norm_index] * yields(alpha[k]))
        return rows, norm

    def numpy(self, ratios: np.ndarray, alpha: np.ndarray) -> tuple:
        """(rows, G, ∂ln G/∂α ``(n_syst, n_proc)``, [(k, processes, ∂ln g_jk/∂α_k ``(n_touched, n_events)``)]
        for the nuisances that change a shape), at α ``(n_syst,)``."""
        rows = ratios.copy()
        G, d_log_G = np.ones(self.n_proc), np.zeros((len(self.tables), self.n_proc))
        logs = []
        for k, (where, shape, norm_where, yields) in enumerate(self._numpy):
            if shape is not None:
                g, dg = shape.derivatives(float(alpha[k]))
                rows[where] *= g
                logs.append((k, where, dg / g))
            if yields is not None:
                gk, dgk = yields.derivatives(float(alpha[k]))
                G[norm_where] *= gk
                d_log_G[k, norm_where] = dgk / gk
        return rows, G, d_log_G, logs
