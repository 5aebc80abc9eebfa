"""Uncertainty of a test score (bootstrap) and the exact McNemar test of two classifiers on the same clips."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import binomtest, bootstrap

from mer_utils.core.metrics import SCORE_KEYS


def vectorised_scores(true_idx: np.ndarray, pred_idx: np.ndarray, n_labels: int) -> dict[str, np.ndarray]:
    """WA, UA and macro-F1 (as :func:`mer_utils.core.metrics.classification_scores`: over the classes present
    in the truth) for each row of ``(..., n)`` label-index arrays."""
    correct = true_idx == pred_idx
    classes = np.arange(n_labels).reshape(-1, *[1] * np.ndim(correct))  # class first: (K, ..., n) below
    is_true = true_idx == classes
    tp, support, predicted = (is_true & correct).sum(axis=-1), is_true.sum(axis=-1), (pred_idx == classes).sum(axis=-1)
    present, denominator = support > 0, support + predicted
    recall = np.divide(tp, support, out=np.zeros(tp.shape), where=present)
    f1 = np.divide(2 * tp, denominator, out=np.zeros(tp.shape), where=denominator > 0)
    n_present = present.sum(axis=0)
    return {"wa": correct.mean(axis=-1), "ua": (recall * present).sum(axis=0) / n_present,
            "macro_f1": (f1 * present).sum(axis=0) / n_present}


def label_indices(labels_seq: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    lookup = {lab: i for i, lab in enumerate(labels)}
    try:
        return np.array([lookup[v] for v in labels_seq], dtype=int)
    except KeyError as err:
        raise ValueError(f"label {err.args[0]!r} is not one of {list(labels)}") from None


def fast_scores(y_true: Sequence[str], y_pred: Sequence[str], *, labels: Sequence[str]) -> dict:
    """WA, UA and macro-F1 as :func:`mer_utils.core.metrics.classification_scores` defines them,
    without scikit-learn's per-call input checks (for scoring many small groups).

    >>> fast_scores(["ANG", "SAD"], ["ANG", "ANG"], labels=("ANG", "SAD"))["ua"]
    0.5
    """
    true_idx, pred_idx = label_indices(y_true, labels), label_indices(y_pred, labels)
    if len(true_idx) == 0 or len(true_idx) != len(pred_idx):
        raise ValueError(f"fast_scores needs two equally long, non-empty label sequences, "
                         f"got {len(true_idx)} and {len(pred_idx)}")
    return {"n": int(len(true_idx)),
            **{k: float(v) for k, v in vectorised_scores(true_idx, pred_idx, len(labels)).items()}}


def bootstrap_ci(y_true: Sequence[str], y_pred: Sequence[str], *, labels: Sequence[str], n_bootstrap: int = 1000,
                 confidence: float = 0.95, seed: int = 0) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of WA, UA and macro-F1.

    >>> ci = bootstrap_ci(["ANG", "SAD"] * 50, ["ANG", "SAD"] * 45 + ["SAD", "ANG"] * 5, labels=("ANG", "SAD"),
    ...                   n_bootstrap=200)
    >>> ci["wa"][0] < 0.9 < ci["wa"][1]
    True
    """
    true_idx, pred_idx = label_indices(y_true, labels), label_indices(y_pred, labels)
    if len(true_idx) != len(pred_idx) or len(true_idx) < 2:
        raise ValueError(f"bootstrap_ci needs two equally long label sequences of at least 2 clips, "
                         f"got {len(true_idx)} and {len(pred_idx)}")
    rng = np.random.default_rng(seed)
    out = {}
    for key in SCORE_KEYS:
        def statistic(idx, axis=-1, key=key):
            idx = np.moveaxis(idx, axis, -1)
            return vectorised_scores(true_idx[idx], pred_idx[idx], len(labels))[key]

        # Resampling clip indices keeps truth and prediction of a clip paired.
        result = bootstrap((np.arange(len(true_idx)),), statistic, n_resamples=n_bootstrap,
                           confidence_level=confidence, method="percentile", vectorized=True, rng=rng)
        out[key] = (float(result.confidence_interval.low), float(result.confidence_interval.high))
    return out


def mcnemar_test(y_true: Sequence[str], pred_a: Sequence[str], pred_b: Sequence[str]) -> dict:
    """Exact McNemar test: ``a_only`` (clips only ``a`` gets right), ``b_only`` and the two-sided ``p_value``
    of the binomial test ``a_only ~ Bin(a_only + b_only, 1/2)``.

    >>> mcnemar_test(["ANG"] * 20, ["ANG"] * 20, ["ANG"] * 10 + ["SAD"] * 10)["b_only"]
    0
    """
    y_true, pred_a, pred_b = (np.asarray(v, dtype=str) for v in (y_true, pred_a, pred_b))
    if not len(y_true) == len(pred_a) == len(pred_b):
        raise ValueError(f"mcnemar_test: lengths differ ({len(y_true)}, {len(pred_a)}, {len(pred_b)})")
    right_a, right_b = pred_a == y_true, pred_b == y_true
    a_only, b_only = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    discordant = a_only + b_only
    p_value = 1.0 if discordant == 0 else float(binomtest(a_only, discordant, 0.5).pvalue)
    return {"a_only": a_only, "b_only": b_only, "p_value": p_value}
