"""Monomials of nuisance parameters and GOLLUM's variation points (arXiv:2505.05544).

GOLLUM writes the log of a density ratio in the nuisances α as Σ_A Δ_A α^A over the monomials
A = α_k, α_k², α_k α_l (k < l) (:class:`Monomials`), and fits or learns the Δ_A from variations at
the points α_k = ±1 alone and (α_k, α_l) = (±1, ±1) for every pair (:func:`variation_points`):
2K + 2K(K − 1) points for K nuisances, which determine the 2K + K(K − 1)/2 coefficients
(:func:`least_squares`; the cross term of a pair is ¼ Σ s t y(s, t) over its four corners, exactly,
because its column is orthogonal to all others). Used by the learned nuisance ratios
(:mod:`assay.estimators.nuisance_ratios`) and the likelihood (:mod:`assay.inference.log_polynomial`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import torch

__all__ = ["Monomials", "least_squares", "variation_points"]

Array = Any  # np.ndarray or torch.Tensor


@dataclass(frozen=True)
class Monomials:
    """The monomials α^A of K nuisances: α_1..α_K, α_1²..α_K², then α_k α_l for k < l (row-major).

    Example:
        >>> m = Monomials(3)
        >>> m.n_mono, m.labels(("a", "b", "c"))
        (9, ('a', 'b', 'c', 'a^2', 'b^2', 'c^2', 'a*b', 'a*c', 'b*c'))
        >>> m(np.array([1.0, 2.0, 3.0])).tolist()
        [1.0, 2.0, 3.0, 1.0, 4.0, 9.0, 2.0, 3.0, 6.0]
    """

    n_syst: int

    @cached_property
    def pairs(self) -> np.ndarray:
        """(k, l), k < l, ``(n_pairs, 2)``."""
        k, l = np.triu_indices(self.n_syst, 1)
        return np.stack([k, l], axis=1)

    @property
    def n_mono(self) -> int:
        return 2 * self.n_syst + len(self.pairs)

    def labels(self, names: Sequence[str]) -> tuple[str, ...]:
        """``a``, ``a^2``, ``a*b`` for nuisances named ``names``."""
        return (*names, *(f"{n}^2" for n in names), *(f"{names[k]}*{names[l]}" for k, l in self.pairs))

    def __call__(self, alpha: Array) -> Array:
        """α^A ``(..., n_mono)`` for α ``(..., n_syst)``; numpy or torch like ``alpha``."""
        k, l = self.pairs.T
        if isinstance(alpha, torch.Tensor):
            return torch.cat([alpha, alpha**2, alpha[..., k] * alpha[..., l]], dim=-1)
        return np.concatenate([alpha, alpha**2, alpha[..., k] * alpha[..., l]], axis=-1)

    def jacobian(self, alpha: np.ndarray) -> np.ndarray:
        """∂α^A/∂α_k ``(n_syst, n_mono)`` at α ``(n_syst,)``."""
        n = self.n_syst
        out = np.zeros((n, self.n_mono))
        out[np.arange(n), np.arange(n)] = 1.0
        out[np.arange(n), n + np.arange(n)] = 2 * alpha
        columns = 2 * n + np.arange(len(self.pairs))
        k, l = self.pairs.T
        out[k, columns] = alpha[l]
        out[l, columns] = alpha[k]
        return out

    def depends(self) -> np.ndarray:
        """``(n_syst, n_mono)`` bool: monomial A contains α_k."""
        return self.jacobian(np.ones(self.n_syst)) != 0

    def embed(self, n_new: int) -> np.ndarray:
        """Index of each of these monomials among those of ``n_syst + n_new`` nuisances ``(n_mono,)``
        (the first ``n_syst`` keep their indices)."""
        bigger = Monomials(self.n_syst + n_new)
        where = {(int(k), int(l)): i for i, (k, l) in enumerate(bigger.pairs)}
        n, m = self.n_syst, bigger.n_syst
        cross = [2 * m + where[(int(k), int(l))] for k, l in self.pairs]
        return np.array([*range(n), *(m + np.arange(n)), *cross], dtype=int)


def variation_points(n_syst: int) -> np.ndarray:
    """GOLLUM's variation points ``(2K + 2K(K − 1), K)``: +e_k, −e_k for each k, then for each pair
    k < l (row-major) the corners (+, +), (+, −), (−, +), (−, −) on (α_k, α_l).

    Example:
        >>> variation_points(2).tolist()
        [[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0], [1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]]
    """
    singles = np.zeros((n_syst, 2, n_syst))
    singles[np.arange(n_syst), 0, np.arange(n_syst)] = 1.0
    singles[np.arange(n_syst), 1, np.arange(n_syst)] = -1.0
    singles = singles.reshape(-1, n_syst)
    corners = np.array([(1.0, 1.0), (1.0, -1.0), (-1.0, 1.0), (-1.0, -1.0)])
    pairs = np.zeros((len(Monomials(n_syst).pairs), 4, n_syst))
    for i, (k, l) in enumerate(Monomials(n_syst).pairs):
        pairs[i][:, [k, l]] = corners
    return np.concatenate([singles, pairs.reshape(-1, n_syst)])


def least_squares(points: np.ndarray) -> np.ndarray:
    """The closed-form least-squares map from log values at ``points (n_points, K)`` to the
    coefficients of the monomials ``(n_mono, n_points)``: Δ = (XᵀX)⁻¹ Xᵀ y, X_pA = α_p^A.

    Raises:
        ValueError: the points do not determine every coefficient (X has rank < n_mono).
    """
    design = Monomials(points.shape[1])(np.asarray(points, dtype=float))
    if np.linalg.matrix_rank(design) < design.shape[1]:
        raise ValueError(
            f"points: {len(points)} variation points do not determine the {design.shape[1]} coefficients"
        )
    return np.linalg.pinv(design)
