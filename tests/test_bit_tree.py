"""The Fisher-information regression tree of BIT (assay.bit.tree): splits, leaves, limits, storage."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from assay.bit import RegressionTree, SortedEvents, fit_tree, grow_tree
from assay.bit.polynomial import ratio_design


def _information(s: np.ndarray, w: float) -> float:
    return float(np.sum(s**2) / w)


def brute_force_split(x, w, wd, min_size):
    """Best (gain, feature, threshold) by trying every cut between distinct values directly."""
    best = (0.0, -1, np.nan)
    parent = _information(wd.sum(axis=0), w.sum())
    for f in range(x.shape[1]):
        values = np.unique(x[:, f])
        for lo, hi in itertools.pairwise(values):
            left = x[:, f] <= lo
            if min(left.sum(), (~left).sum()) < min_size:
                continue
            gain = (
                _information(wd[left].sum(axis=0), w[left].sum())
                + _information(wd[~left].sum(axis=0), w[~left].sum())
                - parent
            )
            if gain > best[0]:
                best = (gain, f, 0.5 * (lo + hi))
    return best


def root_gain(tree: RegressionTree) -> float:
    """I_left + I_right − I_root from the stored node weights and values (W |F|² = |Σ w_k|² / W)."""
    info = tree.weight * np.sum(tree.value**2, axis=1)
    return float(info[tree.left[0]] + info[tree.right[0]] - info[0])


def test_step_function_split_is_exact():
    rng = np.random.default_rng(1)
    x = np.column_stack([rng.normal(size=500), rng.uniform(0, 1, 500)])  # feature 0 is noise
    target = np.where(x[:, 1] > 0.37, 2.0, -1.0)
    w = rng.uniform(0.5, 1.5, 500)
    tree = fit_tree(x, w, (w * target)[:, None], max_depth=1, min_size=1)
    below, above = x[x[:, 1] <= 0.37, 1].max(), x[x[:, 1] > 0.37, 1].min()
    assert tree.feature[0] == 1
    assert below < tree.threshold[0] < above
    assert tree.threshold[0] == pytest.approx(0.5 * (below + above), abs=1e-15)
    np.testing.assert_allclose(tree.value[[tree.left[0], tree.right[0]], 0], [-1.0, 2.0], rtol=1e-12)
    np.testing.assert_allclose(tree.predict(x)[:, 0], target, rtol=1e-12)


def test_criterion_matches_brute_force_with_vector_targets():
    rng = np.random.default_rng(2)
    for trial in range(5):
        n, min_size = 40, 3
        x = np.column_stack([rng.normal(size=n), rng.integers(0, 6, n).astype(float)])  # with ties
        w = rng.uniform(0.2, 2.0, n)
        wd = w[:, None] * (rng.normal(size=(n, 3)) + x[:, :1] * [1.0, -0.5, 0.2])
        gain, feature, threshold = brute_force_split(x, w, wd, min_size)
        tree = fit_tree(x, w, wd, max_depth=1, min_size=min_size)
        assert tree.feature[0] == feature, f"trial {trial}"
        assert tree.threshold[0] == pytest.approx(threshold, rel=1e-12)
        assert root_gain(tree) == pytest.approx(gain, rel=1e-9)


def test_leaf_values_are_weighted_means_of_targets():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, 3))
    w = rng.exponential(1.0, 3000)
    targets = np.column_stack([np.sin(2 * x[:, 0]), x[:, 1] * x[:, 2]])
    fit = grow_tree(SortedEvents(x, w, w[:, None] * targets), max_depth=3, min_size=20)
    leaves = fit.tree.feature[fit.leaves] < 0
    assert leaves.all()  # every training event ends in a leaf
    for leaf in np.unique(fit.leaves):
        members = fit.leaves == leaf
        expected = np.sum(w[members, None] * targets[members], axis=0) / w[members].sum()
        np.testing.assert_allclose(fit.tree.value[leaf], expected, rtol=1e-10)
        assert fit.tree.weight[leaf] == pytest.approx(w[members].sum(), rel=1e-12)
    # prediction routes every training event to the leaf it was fitted in
    np.testing.assert_array_equal(fit.tree.predict(x), fit.tree.value[fit.leaves])


@pytest.mark.parametrize("min_size", [1, 25, 400])
def test_min_size_is_respected(min_size):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2000, 2))
    w = np.ones(2000)
    fit = grow_tree(SortedEvents(x, w, (w * x[:, 0] ** 3)[:, None]), max_depth=6, min_size=min_size)
    counts = np.bincount(fit.leaves)
    assert counts[counts > 0].min() >= min_size
    assert fit.tree.n_leaves > 1


def test_min_weight_is_respected():
    rng = np.random.default_rng(5)
    x = rng.uniform(size=(4000, 1))
    w = np.where(x[:, 0] > 0.9, 10.0, 0.1)  # most weight in a few events
    fit = grow_tree(SortedEvents(x, w, (w * x[:, 0])[:, None]), max_depth=5, min_size=1, min_weight=30.0)
    leaf = fit.tree.feature < 0
    assert fit.tree.weight[leaf].min() >= 30.0
    assert leaf.sum() > 2


def test_thresholds_never_separate_equal_values():
    rng = np.random.default_rng(6)
    x = rng.integers(0, 5, size=(1000, 1)).astype(float)
    w = np.ones(1000)
    tree = fit_tree(x, w, (x[:, 0] ** 2 + rng.normal(size=1000))[:, None], max_depth=4, min_size=1)
    cuts = tree.threshold[tree.feature >= 0]
    assert len(cuts) > 0 and np.all(np.isin(cuts, [0.5, 1.5, 2.5, 3.5]))


def test_constant_targets_give_a_single_leaf():
    x = np.random.default_rng(7).normal(size=(500, 2))
    tree = fit_tree(x, np.ones(500), np.full((500, 2), 0.3), max_depth=3, min_size=1)
    assert tree.n_nodes == 1
    np.testing.assert_allclose(tree.value[0], [0.3, 0.3])


def test_positivity_constraint_keeps_leaf_polynomials_positive():
    """Seed 002: split only if w_j(θ) >= 0 ∀θ. Left half: R = 1 + 3θ + θ²/2 (negative near θ = -1);
    right half: R = 1 + θ²; any node with more than ~56% left events has a negative polynomial."""
    x = np.linspace(0, 1, 2000)[:, None]
    left = x[:, 0] < 0.5
    w = np.ones(2000)
    wd = np.column_stack([np.where(left, 3.0, 0.0), np.where(left, 1.0, 2.0)])
    free = fit_tree(x, w, wd, max_depth=3, min_size=10)
    positive = fit_tree(x, w, wd, max_depth=3, min_size=10, constraint=wd)
    grid = np.linspace(-20, 20, 4001)[:, None]
    minimum = (1 + ratio_design(grid, 1) @ positive.value[positive.feature < 0].T).min()
    assert minimum >= 0
    assert (1 + ratio_design(grid, 1) @ free.value[free.feature < 0].T).min() < 0
    assert positive.n_leaves > 1  # the constraint restricts splits, it does not forbid them


def test_tree_dict_round_trip_and_validation():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(800, 2))
    tree = fit_tree(x, np.ones(800), np.column_stack([x[:, 0], x[:, 1] ** 2]), max_depth=3, min_size=5)
    again = RegressionTree.from_dict(tree.to_dict(), n_obs=2, n_coef=2)
    np.testing.assert_array_equal(again.predict(x), tree.predict(x))
    broken = tree.to_dict()
    broken["left"][0] = 0  # a cycle: the root would be its own child
    with pytest.raises(ValueError, match="'feature'/'left'/'right'"):
        RegressionTree.from_dict(broken, n_obs=2, n_coef=2)
    with pytest.raises(ValueError, match="tree over 1 features"):
        RegressionTree.from_dict(tree.to_dict(), n_obs=1, n_coef=2)
    with pytest.raises(ValueError, match="missing field 'value'"):
        RegressionTree.from_dict({k: v for k, v in tree.to_dict().items() if k != "value"}, 2, 2)


def test_bad_tree_input():
    x = np.zeros((10, 2))
    with pytest.raises(ValueError, match="derivatives \\(n_events, n_coef\\)"):
        fit_tree(x, np.ones(10), np.ones(10))
    with pytest.raises(ValueError, match="must be finite"):
        fit_tree(x, np.full(10, np.nan), np.ones((10, 1)))
    with pytest.raises(ValueError, match="max_depth must be in \\[1, 14\\]"):
        fit_tree(x, np.ones(10), np.ones((10, 1)), max_depth=15)
