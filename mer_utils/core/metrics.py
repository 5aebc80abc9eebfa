"""Classification metrics, computed by scikit-learn: WA (accuracy) and UA (unweighted average recall)."""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd

# The scalar scores of a run (metrics.json's summary) and their names in tables.
SCORE_NAMES = {"wa": "WA", "ua": "UA", "macro_f1": "macro-F1"}
SCORE_KEYS = tuple(SCORE_NAMES)
# scikit-learn is imported inside the functions: the demo's experts import this module; sklearn.metrics costs ~1 s.


def ua_score(y_true, y_pred) -> float:
    """Unweighted accuracy (UA): the recall of each class present in ``y_true``, averaged with equal weight per
    class (scikit-learn's ``balanced_accuracy_score``).

    >>> ua_score(["ANG", "ANG", "ANG", "SAD"], ["ANG", "ANG", "ANG", "ANG"])
    0.5
    """
    from sklearn.metrics import balanced_accuracy_score
    return float(balanced_accuracy_score(y_true, y_pred))


def classification_scores(y_true: Sequence[str], y_pred: Sequence[str], *,
                          labels: Sequence[str] | None = None) -> dict:
    """WA, UA, macro-F1 and per-class precision/recall/F1.

    >>> s = classification_scores(["ANG", "SAD"], ["ANG", "ANG"], labels=["ANG", "SAD"])
    >>> round(s["wa"], 2), round(s["ua"], 2)
    (0.5, 0.5)
    """
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    y_true = np.asarray(y_true, dtype=str)
    y_pred = np.asarray(y_pred, dtype=str)
    if len(y_true) == 0:
        raise ValueError("classification_scores needs at least one prediction")
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} items but y_pred has {len(y_pred)}")
    labels = _labels(labels, y_true, y_pred)
    present = [lab for lab in labels if lab in set(y_true)]
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "n": int(len(y_true)),
        "wa": float(accuracy_score(y_true, y_pred)),
        "ua": ua_score(y_true, y_pred),
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "per_class": {
            lab: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for lab, p, r, f, s in zip(labels, precision, recall, f1, support)
        },
    }


def _labels(labels, y_true, y_pred) -> list[str]:
    """The given label order, or the sorted classes seen in either column."""
    if labels is not None:
        return list(labels)
    return sorted(set(np.asarray(y_true, dtype=str)) | set(np.asarray(y_pred, dtype=str)))


def confusion_frame(y_true: Sequence[str], y_pred: Sequence[str], *, labels: Sequence[str] | None = None,
                    normalize: bool = False) -> pd.DataFrame:
    """Confusion matrix as a labelled frame (rows = true, columns = predicted)."""
    from sklearn.metrics import confusion_matrix
    labels = _labels(labels, y_true, y_pred)
    cm = confusion_matrix(y_true, y_pred, labels=list(labels), normalize="true" if normalize else None)
    return pd.DataFrame(np.nan_to_num(cm), index=pd.Index(labels, name="true"),
                        columns=pd.Index(labels, name="pred"))


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    arr = np.asarray(list(values), dtype=float)
    if arr.size == 0:
        raise ValueError("mean_std needs at least one value")
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def aggregate_scores(per_run: Sequence[dict]) -> dict:
    """Mean ± std over folds or seeds of WA, UA and macro-F1 in ``per_run``."""
    stats = {key: mean_std(run[key] for run in per_run) for key in SCORE_KEYS}
    return {key: {"mean": mean, "std": std, "n": len(per_run)} for key, (mean, std) in stats.items()}


def format_mean_std(mean: float, std: float) -> str:
    """``'61.2 ± 1.3'``: percent, even for one fold (:func:`mer_utils.core.formatting.percent_mean_std` drops it)."""
    return f"{mean * 100:.1f} ± {std * 100:.1f}"
