"""Numba kernels of the information tree (:mod:`assay.bit.tree`): split search, growth, prediction.

Arrays are laid out per feature: ``order[f]`` lists the events sorted by feature f and
``values[f]``, ``w[f]``, ``wd[f]``, ``wc[f]`` hold their feature values, weights, derivative
weights and constraint derivative weights in that order, so every scan reads memory in
sequence; ``slot[i]`` is the index, within the current tree level, of event i's node.
Compiled with ``cache=True`` (the cache lives in ``__pycache__`` next to this file).

Compiled code does not look at signals: a Ctrl-C during a kernel is noticed when the kernel next
calls into Python (or returns), and numba then reports it as ``SystemError: ... returned a result
with an exception set`` chained to the ``KeyboardInterrupt``. :func:`interruptible` turns that
back into a ``KeyboardInterrupt``, which the CLI reports as "interrupted" (exit code 130).
Python's handler can also fire inside one of numba's finalizers, where the interrupt is printed
as "Exception ignored" and lost; :func:`deferred_interrupt` therefore lets a loop of kernel calls
take Ctrl-C at a safe point of its own.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import numpy as np
from numba import njit

from assay.interrupts import deferred_interrupt

__all__ = ["deferred_interrupt", "grow_levels", "interruptible", "predict_trees", "subtract_predictions"]

T = TypeVar("T")


def interruptible(kernel: Callable[..., T]) -> Callable[..., T]:
    """``kernel`` called from Python, with a Ctrl-C during it raised as ``KeyboardInterrupt``
    instead of numba's ``SystemError`` (other errors pass unchanged)."""

    @functools.wraps(kernel)
    def call(*args):
        try:
            return kernel(*args)
        except SystemError as exc:
            if _caused_by_interrupt(exc):
                raise KeyboardInterrupt from None
            raise

    return call


def _caused_by_interrupt(exc: BaseException) -> bool:
    """True if a ``KeyboardInterrupt`` is in the ``__cause__`` / ``__context__`` chain of ``exc``."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        pending += [current.__cause__, current.__context__]
    return False


_REL_TOL = 1e-10  # a split must gain more than this fraction of the children's information
_PSD_TOL = 1e-10  # zero pivots of the positivity check (matrix entries are O(R coefficients))


@njit(cache=True)
def _information(s: np.ndarray, w: float) -> float:
    """Σ_k s_k² / w: the Fisher information of one node (0 for w <= 0)."""
    if w <= 0.0:
        return 0.0
    total = 0.0
    for k in range(s.shape[0]):
        total += s[k] * s[k]
    return total / w


@njit(cache=True)
def _is_positive(s, w, n_params, rows, cols):
    """Whether 1 + θ·F + ½ θᵀHθ >= 0 ∀θ with F = s/w (seed 002's positivity of w_j(θ)).

    Checks that M = [[1, F/2], [F/2, H/2]] is positive semi-definite by a Cholesky
    factorisation that accepts zero pivots (within ``_PSD_TOL``) whose column vanishes.
    """
    if w <= 0.0:
        return False
    n = n_params + 1
    m = np.zeros((n, n))
    m[0, 0] = 1.0
    for a in range(n_params):
        m[a + 1, 0] = 0.5 * s[a] / w
    for q in range(rows.shape[0]):  # ½ θᵀHθ = ½ Σ_a R_aa θ_a² + Σ_{a<b} R_ab θ_a θ_b
        m[cols[q] + 1, rows[q] + 1] = 0.5 * s[n_params + q] / w
    for j in range(n):  # lower triangle only; column j of L overwrites column j of M
        for k in range(j):
            m[j, j] -= m[j, k] * m[j, k]
        if m[j, j] < -_PSD_TOL:
            return False
        pivot = np.sqrt(max(m[j, j], 0.0))
        for i in range(j + 1, n):
            for k in range(j):
                m[i, j] -= m[i, k] * m[j, k]
            if pivot <= _PSD_TOL:
                if abs(m[i, j]) > np.sqrt(_PSD_TOL):
                    return False
                m[i, j] = 0.0
            else:
                m[i, j] /= pivot
        m[j, j] = pivot
    return True


@njit(cache=True)
def _node_sums(slot, order, w, wd, wc, n_slots):
    """Per node: event count, Σ w, Σ w_k of the fitted and of the constraint derivative weights."""
    count = np.zeros(n_slots, np.int64)
    weight = np.zeros(n_slots)
    sums = np.zeros((n_slots, wd.shape[1]))
    csums = np.zeros((n_slots, wc.shape[1]))
    for j in range(order.shape[0]):
        k = slot[order[j]]
        if k >= 0:
            count[k] += 1
            weight[k] += w[j]
            for c in range(wd.shape[1]):
                sums[k, c] += wd[j, c]
            for c in range(wc.shape[1]):
                csums[k, c] += wc[j, c]
    return count, weight, sums, csums


@njit(cache=True)
def _children_information(k, left_w, right_w, left_s, sums):
    """I_left + I_right of node ``k`` for the current cut."""
    info_l = 0.0
    info_r = 0.0
    for c in range(sums.shape[1]):
        s_l = left_s[k, c]
        s_r = sums[k, c] - s_l
        info_l += s_l * s_l
        info_r += s_r * s_r
    return info_l / left_w + info_r / right_w


@njit(cache=True)
def _scan_feature(f, xs, order, slot, w, wd, wc, totals, best, limits, constraint):
    """Update each node's best split with the thresholds of feature ``f`` (one pass in sorted order)."""
    count, weight, sums, csums, parent = totals
    best_gain, best_feature, best_threshold = best
    min_size, min_weight = limits
    n_params, rows, cols = constraint
    n_slots = weight.shape[0]
    seen = np.zeros(n_slots, np.int64)
    left_w = np.zeros(n_slots)
    left_s = np.zeros((n_slots, wd.shape[1]))
    left_c = np.zeros((n_slots, wc.shape[1]))
    last = np.zeros(n_slots)
    for j in range(order.shape[0]):
        k = slot[order[j]]
        if k < 0:
            continue
        v = xs[j]
        if seen[k] >= min_size and count[k] - seen[k] >= min_size and v > last[k]:
            w_l = left_w[k]
            w_r = weight[k] - w_l
            if w_l > 0.0 and w_r > 0.0 and w_l >= min_weight and w_r >= min_weight:
                info = _children_information(k, w_l, w_r, left_s, sums)
                gain = info - parent[k]
                if gain > best_gain[k] and gain > _REL_TOL * info:
                    if n_params == 0 or (
                        _is_positive(left_c[k], w_l, n_params, rows, cols)
                        and _is_positive(csums[k] - left_c[k], w_r, n_params, rows, cols)
                    ):
                        cut = last[k] + 0.5 * (v - last[k])
                        best_gain[k] = gain
                        best_feature[k] = f
                        best_threshold[k] = cut if cut < v else last[k]
        seen[k] += 1
        left_w[k] += w[j]
        for c in range(wd.shape[1]):
            left_s[k, c] += wd[j, c]
        for c in range(wc.shape[1]):
            left_c[k, c] += wc[j, c]
        last[k] = v


@njit(cache=True)
def _best_splits(data, slot, totals, limits, constraint):
    """Best (gain, feature, threshold) of every node of one level; feature -1: no valid split."""
    xs, order, w, wd, wc = data
    n_slots = totals[1].shape[0]
    best = (np.zeros(n_slots), np.full(n_slots, -1, np.int64), np.zeros(n_slots))
    for f in range(xs.shape[0]):
        _scan_feature(f, xs[f], order[f], slot, w[f], wd[f], wc[f], totals, best, limits, constraint)
    return best


@njit(cache=True)
def _level_sums(node, level, data, n_max):
    """Slot (index within the level, -1 elsewhere) of every event and the node sums of the level."""
    _, order, w, wd, wc = data
    slot_of = np.full(n_max, -1, np.int64)
    for s in range(level.shape[0]):
        slot_of[level[s]] = s
    slot = np.empty(node.shape[0], np.int16)  # max_depth <= 14: at most 2^14 nodes per level
    for i in range(node.shape[0]):
        slot[i] = slot_of[node[i]]
    count, weight, sums, csums = _node_sums(slot, order[0], w[0], wd[0], wc[0], level.shape[0])
    parent = np.zeros(level.shape[0])
    for s in range(level.shape[0]):
        parent[s] = _information(sums[s], weight[s])
    return slot, (count, weight, sums, csums, parent)


@njit(cache=True)
def grow_levels(x, data, max_depth, limits, constraint):
    """Grow one tree breadth-first; returns its flat arrays and the node (leaf) of every event."""
    n_max = 2 ** (max_depth + 1) - 1
    feature = np.full(n_max, -1, np.int64)
    threshold = np.zeros(n_max)
    children = np.full((2, n_max), -1, np.int64)
    value = np.zeros((n_max, data[3].shape[2]))
    weight = np.zeros(n_max)
    node = np.zeros(x.shape[0], np.int32)
    level = np.zeros(1, np.int64)
    n_nodes = 1
    for depth in range(max_depth + 1):
        slot, totals = _level_sums(node, level, data, n_max)
        for s in range(level.shape[0]):
            weight[level[s]] = totals[1][s]
            if totals[1][s] > 0.0:
                value[level[s]] = totals[2][s] / totals[1][s]
        if depth == max_depth:
            break
        best = _best_splits(data, slot, totals, limits, constraint)
        n_split = 0
        for s in range(level.shape[0]):
            if best[1][s] >= 0:
                feature[level[s]], threshold[level[s]] = best[1][s], best[2][s]
                children[0, level[s]], children[1, level[s]] = (
                    n_nodes + 2 * n_split,
                    n_nodes + 2 * n_split + 1,
                )
                n_split += 1
        if n_split == 0:
            break
        for i in range(x.shape[0]):
            k = node[i]
            if slot[i] >= 0 and feature[k] >= 0:
                node[i] = children[0, k] if x[i, feature[k]] <= threshold[k] else children[1, k]
        level = np.arange(n_nodes, n_nodes + 2 * n_split)
        n_nodes += 2 * n_split
    return (
        feature[:n_nodes],
        threshold[:n_nodes],
        children[:, :n_nodes],
        value[:n_nodes],
        weight[:n_nodes],
        node,
    )


@njit(cache=True)
def subtract_predictions(order, w, wd, leaves, values, scale):
    """wd_f[j] -= scale w_f[j] values[leaves[order_f[j]]] for every feature's sorted copy."""
    for f in range(order.shape[0]):
        for j in range(order.shape[1]):
            k = leaves[order[f, j]]
            for c in range(wd.shape[2]):
                wd[f, j, c] -= scale * w[f, j] * values[k, c]


@njit(cache=True)
def predict_trees(x, feature, threshold, left, right, value, scale):
    """Σ_t scale_t value_t[leaf_t(x)] over trees t; arrays padded to (n_trees, max_nodes, ...)."""
    out = np.zeros((x.shape[0], value.shape[2]))
    for i in range(x.shape[0]):
        for t in range(feature.shape[0]):
            k = 0
            while feature[t, k] >= 0:
                k = left[t, k] if x[i, feature[t, k]] <= threshold[t, k] else right[t, k]
            for c in range(value.shape[2]):
                out[i, c] += scale[t] * value[t, k, c]
    return out
