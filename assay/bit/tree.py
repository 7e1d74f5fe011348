"""The weak learner of Boosted Information Trees: a weighted regression tree (seed 002).

For a node j with event weights w_i and derivative weights w_{i,k} = w_i a_{i,k} (targets a,
one column per coefficient k), the prediction is F_{j,k} = Σ_{i∈j} w_{i,k} / Σ_{i∈j} w_i and
the node's Fisher information is Σ_k (Σ_{i∈j} w_{i,k})² / Σ_{i∈j} w_i (seed 002, "Learning
the score function": L = −Σ_j I_j). Splits are grown greedily level by level and maximise the
gain I_left + I_right − I_parent over all features and thresholds, from cumulative sums along
the feature values sorted once (numba; no Python loops over events). With several columns
the criterion is their sum, so one tree learns all coefficients at once.

With ``n_params > 0`` (the positivity option) a split is only taken if in both children the
weight polynomial of the *constraint* derivative weights, w_j(θ) = W_j (1 + Σ_a θ_a F_a +
½ Σ_ab θ_a θ_b F_ab), is non-negative for every θ (seed 002: "split only if w_j(θ) is positive ∀θ"),
checked as positive semi-definiteness of its (n_params + 1)² coefficient matrix.

The tree is stored as flat arrays (``feature``, ``threshold``, ``left``, ``right``, ``value``);
leaves have ``feature == -1``; an event goes left when ``x[feature] <= threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from assay.bit import kernels
from assay.bit.kernels import interruptible
from assay.bit.polynomial import _quadratic_index, n_params_from_coefficients

__all__ = ["RegressionTree", "SortedEvents", "TreeFit", "fit_tree", "grow_tree", "predict_forest"]

# the kernels as called from Python: Ctrl-C inside them raises KeyboardInterrupt, not SystemError
grow_levels = interruptible(kernels.grow_levels)
subtract_predictions = interruptible(kernels.subtract_predictions)
predict_trees = interruptible(kernels.predict_trees)


@dataclass(frozen=True)
class RegressionTree:
    """A fitted tree as flat arrays; node 0 is the root.

    Attributes:
        feature: ``(n_nodes,)`` int, the column of x a node cuts on; -1 for leaves.
        threshold: ``(n_nodes,)`` float, events with ``x[feature] <= threshold`` go left.
        left, right: ``(n_nodes,)`` int, child node indices (-1 for leaves; always > the node's own).
        value: ``(n_nodes, n_coef)`` F_j = Σ w_k / Σ w of the node's training events (also kept
            for inner nodes, as a diagnostic); 0 where Σ w <= 0.
        weight: ``(n_nodes,)`` Σ w of the node's training events in pb.
    """

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    weight: np.ndarray

    @property
    def information(self) -> float:
        """Σ_leaves W_j |F_j|²: the Fisher information of the tree's leaf yields (seed 002), pb."""
        leaf = self.feature < 0
        return float(np.sum(self.weight[leaf] * np.sum(self.value[leaf] ** 2, axis=1)))

    @property
    def n_nodes(self) -> int:
        return len(self.feature)

    @property
    def n_coef(self) -> int:
        return self.value.shape[1]

    @property
    def n_leaves(self) -> int:
        return int(np.sum(self.feature < 0))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Leaf values F_j at each event, ``(n_events, n_coef)``; x: ``(n_events, n_obs)``."""
        return predict_forest([self], x, np.ones(1))

    def to_dict(self) -> dict:
        """JSON-able arrays (floats round-trip exactly through Python's JSON)."""
        return {
            "feature": self.feature.tolist(),
            "threshold": self.threshold.tolist(),
            "left": self.left.tolist(),
            "right": self.right.tolist(),
            "value": self.value.tolist(),
            "weight": self.weight.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict, n_obs: int, n_coef: int) -> RegressionTree:
        """Inverse of :meth:`to_dict`, checked so that prediction cannot index out of range or loop.

        Raises:
            ValueError: naming the field that is missing, mis-shaped or inconsistent.
        """
        arrays = {}
        names = (
            ("feature", np.int64),
            ("left", np.int64),
            ("right", np.int64),
            ("threshold", float),
            ("weight", float),
        )
        for name, dtype in names:
            arrays[name] = _array_field(data, name, dtype, 1)
        value = _array_field(data, "value", float, 2)
        n = len(arrays["feature"])
        if n == 0 or any(len(a) != n for a in arrays.values()) or value.shape != (n, n_coef):
            raise ValueError(
                f"'value' and the other arrays must describe the same {n} nodes with {n_coef} values"
            )
        feature, left, right = arrays["feature"], arrays["left"], arrays["right"]
        leaf = feature < 0
        nodes = np.arange(n)
        inner_ok = (feature < n_obs) & (left > nodes) & (right > nodes) & (left < n) & (right < n)
        if not np.all(np.where(leaf, (left == -1) & (right == -1) & (feature == -1), inner_ok)):
            raise ValueError(f"'feature'/'left'/'right' do not form a tree over {n_obs} features")
        if not all(np.all(np.isfinite(a)) for a in (arrays["threshold"], arrays["weight"], value)):
            raise ValueError("'threshold', 'value' and 'weight' must be finite")
        return cls(feature, arrays["threshold"], left, right, value, arrays["weight"])


def _array_field(data: dict, name: str, dtype: type, ndim: int) -> np.ndarray:
    if not isinstance(data, dict) or name not in data:
        raise ValueError(f"missing field '{name}'")
    try:
        out = np.asarray(data[name], dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"field '{name}' is not an array of {np.dtype(dtype).name}: {exc}") from exc
    if out.ndim != ndim:
        raise ValueError(f"field '{name}' should have {ndim} dimension(s), got shape {out.shape}")
    return out


@dataclass(frozen=True)
class TreeFit:
    """A tree fitted by :func:`grow_tree` and the node of every training event (``(n_events,)`` int)."""

    tree: RegressionTree
    leaves: np.ndarray


class SortedEvents:
    """Training events with a copy of their weights sorted along every feature, made once.

    Boosting keeps the copies and subtracts each tree's prediction from them
    (:meth:`subtract`), so that every split search reads memory in order.

    Args:
        x: features ``(n_events, n_obs)``.
        weights: w_i ``(n_events,)`` in pb.
        derivatives: w_{i,k} = w_i a_{i,k} ``(n_events, n_coef)``; the targets are a = w_k / w.
        constraint: seed 002's positivity option, derivative weights ``(n_events, n_coef')`` in
            the layout of :func:`~assay.bit.polynomial.coefficient_pairs` whose node polynomial
            must be non-negative for every θ in both children of every split; None: off.

    Memory: ``n_obs × n_events × (n_coef + n_coef' + 3)`` floats.

    Raises:
        ValueError: mis-shaped or non-finite arrays, or more than 2³¹ − 1 events.
    """

    def __init__(
        self,
        x: np.ndarray,
        weights: np.ndarray,
        derivatives: np.ndarray,
        constraint: np.ndarray | None = None,
    ):
        self.x = np.ascontiguousarray(x, dtype=float)
        weights, derivatives = np.asarray(weights, dtype=float), np.asarray(derivatives, dtype=float)
        _check_events(self.x, weights, derivatives, constraint)
        order = np.ascontiguousarray(np.argsort(self.x, axis=0, kind="stable").T.astype(np.int32))
        self.order = order
        self.values = np.ascontiguousarray(np.take_along_axis(self.x, order.T, axis=0).T)
        self.weights = np.ascontiguousarray(weights[order])
        self.derivatives = np.ascontiguousarray(derivatives[order])
        self.n_params = 0
        if constraint is None:
            self.constraint = np.zeros((*order.shape, 0))
        else:
            self.constraint = np.ascontiguousarray(np.asarray(constraint, dtype=float)[order])
            self.n_params = n_params_from_coefficients(self.constraint.shape[2])

    def subtract(self, leaves: np.ndarray, values: np.ndarray, scale: float) -> None:
        """w_{i,k} -= scale w_i values[leaves_i, k] (seed 002's boosting re-weighting)."""
        subtract_predictions(
            self.order, self.weights, self.derivatives, leaves, np.asarray(values, float), float(scale)
        )


def _check_events(x, weights, derivatives, constraint) -> None:
    n = len(x)
    shapes_ok = x.ndim == 2 and x.shape[1] >= 1 and weights.shape == (n,) and derivatives.ndim == 2
    if not shapes_ok or len(derivatives) != n or (constraint is not None and np.shape(constraint)[0] != n):
        raise ValueError(
            f"expected x (n_events, n_obs), weights (n_events,), derivatives (n_events, n_coef); got "
            f"{x.shape}, {weights.shape}, {derivatives.shape}"
        )
    if n >= 2**31 or not all(np.all(np.isfinite(a)) for a in (x, weights, derivatives)):
        raise ValueError(f"x, weights and derivatives must be finite, with fewer than 2^31 events (got {n})")


def grow_tree(
    events: SortedEvents, *, max_depth: int = 4, min_size: int = 50, min_weight: float = 0.0
) -> TreeFit:
    """Fit one information tree to the current derivative weights of ``events``.

    Args:
        events: the training events.
        max_depth: maximal number of splits from the root to a leaf.
        min_size: minimal number of events in each child of a split.
        min_weight: minimal Σ w (pb) in each child; children need Σ w > 0 in any case.

    Returns:
        :class:`TreeFit` with the tree and the node index of every event.

    Raises:
        ValueError: ``max_depth`` outside [1, 14] or ``min_size`` < 1.
    """
    if not (1 <= max_depth <= 14 and min_size >= 1):
        raise ValueError(f"max_depth must be in [1, 14] and min_size >= 1, got {max_depth}, {min_size}")
    rows, cols = _quadratic_index(max(events.n_params, 1))
    data = (events.values, events.order, events.weights, events.derivatives, events.constraint)
    limits = (int(min_size), float(min_weight))
    feature, threshold, children, value, weight, node = grow_levels(
        events.x, data, int(max_depth), limits, (events.n_params, rows, cols)
    )
    tree = RegressionTree(feature, threshold, children[0].copy(), children[1].copy(), value, weight)
    return TreeFit(tree, node)


def fit_tree(
    x: np.ndarray,
    weights: np.ndarray,
    derivatives: np.ndarray,
    *,
    max_depth: int = 4,
    min_size: int = 50,
    min_weight: float = 0.0,
    constraint: np.ndarray | None = None,
) -> RegressionTree:
    """Fit one information tree to arrays; see :class:`SortedEvents` and :func:`grow_tree` for the arguments.

    Example:
        >>> x = np.arange(200.0).reshape(-1, 1)
        >>> tree = fit_tree(x, np.ones(200), (x >= 120).astype(float), max_depth=1, min_size=10)
        >>> float(tree.threshold[0]), tree.value[1:, 0].tolist()
        (119.5, [0.0, 1.0])
    """
    events = SortedEvents(x, weights, derivatives, constraint)
    return grow_tree(events, max_depth=max_depth, min_size=min_size, min_weight=min_weight).tree


def predict_forest(trees: list[RegressionTree], x: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Σ_t scale_t F_t(x) over trees, ``(n_events, n_coef)``; x: ``(n_events, n_obs)``."""
    x = np.ascontiguousarray(x, dtype=float)
    n_nodes = max(t.n_nodes for t in trees)
    feature = np.full((len(trees), n_nodes), -1, np.int64)
    threshold = np.zeros((len(trees), n_nodes))
    left = np.full((len(trees), n_nodes), -1, np.int64)
    right = np.full((len(trees), n_nodes), -1, np.int64)
    value = np.zeros((len(trees), n_nodes, trees[0].n_coef))
    for t, tree in enumerate(trees):
        n = tree.n_nodes
        feature[t, :n], threshold[t, :n], left[t, :n], right[t, :n] = (
            tree.feature,
            tree.threshold,
            tree.left,
            tree.right,
        )
        value[t, :n] = tree.value
    return predict_trees(x, feature, threshold, left, right, value, np.asarray(scale, dtype=float))
