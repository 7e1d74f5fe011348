"""The classifier two-sample test of a reweighting (seed 003, "High-Dim Classifier Test").

A classifier is trained to tell the source sample reweighted by r̂ from the target sample; if the
reweighting is right, no classifier can, and its AUC on held-out events is 0.5 within its error
(:func:`weighted_auc`, DeLong's with weights). Unlike a closure per observable
(:func:`assay.analysis.diagnostics.reweighting_closure`), it tests all observables at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from assay.analysis.diagnostics import as_dict, balance_classes

__all__ = ["TwoSampleTest", "two_sample_test", "weighted_auc"]


# --- classifier two-sample test --------------------------------------------------------------------


def weighted_auc(score: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> tuple[float, float]:
    """The area under the ROC curve of weighted events and its standard error.

    AUC = Σ_ij w_i w_j ([s_i > s_j] + ½[s_i = s_j]) / (W_1 W_0), i of class 1, j of class 0 (the
    weighted Mann–Whitney statistic). The error is DeLong's with weights: V_i = the class-0 weight
    fraction below s_i, V_j = the class-1 weight fraction above s_j, and
    σ² = Σ_i w_i² (V_i − AUC)²/W_1² + Σ_j w_j² (V_j − AUC)²/W_0² (DeLong et al., Biometrics 44
    (1988) 837, for independent events of fixed weights).

    Args:
        score: ``(n_events,)``; larger means more like class 1.
        y: labels 0/1 ``(n_events,)``.
        weights: ``(n_events,)``; None: 1.

    Returns:
        (AUC, its standard error).

    Example:
        >>> auc, err = weighted_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
        >>> auc, err
        (0.75, 0.25)
    """
    score, y = np.asarray(score, dtype=float), np.asarray(y)
    w = np.ones(len(score)) if weights is None else np.asarray(weights, dtype=float)
    s1, w1, s0, w0 = score[y == 1], w[y == 1], score[y == 0], w[y == 0]
    total1, total0 = w1.sum(), w0.sum()

    def below(s_sorted: np.ndarray, cum: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Weight of the sorted sample below s, ties counted half."""
        lo, hi = np.searchsorted(s_sorted, s, "left"), np.searchsorted(s_sorted, s, "right")
        return cum[lo] + 0.5 * (cum[hi] - cum[lo])

    o0, o1 = np.argsort(s0), np.argsort(s1)
    cum0 = np.concatenate([[0.0], np.cumsum(w0[o0])])
    cum1 = np.concatenate([[0.0], np.cumsum(w1[o1])])
    v1 = below(s0[o0], cum0, s1) / total0
    v0 = 1.0 - below(s1[o1], cum1, s0) / total1
    auc = float(w1 @ v1 / total1)
    var = np.sum(w1**2 * (v1 - auc) ** 2) / total1**2 + np.sum(w0**2 * (v0 - auc) ** 2) / total0**2
    return auc, float(np.sqrt(var))


@dataclass(frozen=True)
class TwoSampleTest:
    """The classifier two-sample test: held-out ``auc`` ± ``auc_error``, ``z`` = (AUC − ½)/error,
    the number of training and test events and the test samples' effective sizes (Σw)²/Σw²."""

    auc: float
    auc_error: float
    z: float
    n_train: int
    n_test: int
    n_eff_test: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        return as_dict(self)


def _n_eff(w: np.ndarray) -> float:
    return float(w.sum() ** 2 / np.sum(w**2))


def two_sample_test(
    x_a: np.ndarray,
    w_a: np.ndarray,
    x_b: np.ndarray,
    w_b: np.ndarray,
    *,
    observables: tuple[str, ...] | list[str],
    hidden: tuple[int, ...] = (32, 32),
    epochs: int = 10,
    batch_size: int = 256,
    test_fraction: float = 0.5,
    seed: int = 0,
) -> TwoSampleTest:
    """Can a classifier tell sample a from sample b? (seed 003's "High-Dim Classifier Test").

    Each sample is split (seeded) into a training and a test part; a weighted classifier
    (:class:`~assay.estimators.mixture_processes.ProcessClassifier`, CPU, one thread, seeded, early
    stopping on a quarter of the training part) learns a against b on the training parts, with each class
    weighted to the same total; its :func:`weighted_auc` on the test parts is 0.5 ± error when the
    samples follow the same density (within the error: the score is fixed before the test events
    are seen).

    Args:
        x_a: events ``(n_a, n_obs)``, e.g. the reference sample; w_a: their weights ``(n_a,)``, e.g.
            reweighted by r̂.
        x_b: events ``(n_b, n_obs)``, e.g. the target sample; w_b: their weights ``(n_b,)``.
        observables: names of the columns ``(n_obs,)``.
        hidden: hidden-layer widths of the classifier.
        epochs: at most this many epochs.
        batch_size: events per gradient step.
        test_fraction: the held-out fraction of each sample.
        seed: seeds the split and the training.

    Returns:
        :class:`TwoSampleTest`; AUC > 0.5 means b is recognised as b.
    """
    import torch

    from assay.estimators.mixture_processes import ProcessClassifier
    from assay.training_set import TrainingSet

    rng = np.random.default_rng(seed)
    parts = []
    for label, x, w in ((0.0, x_a, w_a), (1.0, x_b, w_b)):
        x, w = np.asarray(x, dtype=float), np.asarray(w, dtype=float)
        test = rng.random(len(x)) < test_fraction
        parts.append(
            (x[~test], w[~test], np.full((~test).sum(), label), x[test], w[test], np.full(test.sum(), label))
        )
    x_tr, w_tr, y_tr, x_te, w_te, y_te = (np.concatenate([p[i] for p in parts]) for i in range(6))
    train = TrainingSet(x=x_tr, observables=tuple(observables), parameters=(), kind="plain", y=y_tr,
                        sample_weight=balance_classes(y_tr, w_tr))  # fmt: skip
    clf = ProcessClassifier(hidden=hidden, activation="relu", epochs=epochs, batch_size=batch_size,
                            lr=(3e-3, 3e-4), patience=3, seed=seed, device="cpu", progress=False)  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small MLP gains nothing from threads; on busy cores they cost 10-20x
    try:
        score = clf.fit(train).log_density_ratio(x_te)
    finally:
        torch.set_num_threads(threads)
    auc, error = weighted_auc(score, y_te, w_te)
    n_eff = (_n_eff(w_te[y_te == 0]), _n_eff(w_te[y_te == 1]))
    return TwoSampleTest(auc, error, (auc - 0.5) / error, len(x_tr), len(x_te), n_eff)
