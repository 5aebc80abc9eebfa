"""Label sets: a corpus's classes as a tuple of short codes (CREMA-D: ``("ANG", "DIS", "FEA", "HAP", "NEU",
"SAD")``), in the order every array uses; declared by the corpus reader, nowhere else."""

from __future__ import annotations

from typing import Sequence

PROB_PREFIX = "p_"
SUBSETS = ("train", "val", "test")
# Readable names of the codes the bundled corpora use; any other code is shown as itself.
LABEL_NAMES = {
    "ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad",
    "CAL": "calm", "SUR": "surprised", "FRU": "frustration", "EXC": "excited",
}


def prob_columns(labels: Sequence[str]) -> tuple[str, ...]:
    """``("p_ANG", ...)`` for a label set.

    >>> prob_columns(("ANG", "SAD"))
    ('p_ANG', 'p_SAD')
    """
    return tuple(f"{PROB_PREFIX}{label}" for label in labels)


def label_name(label: str) -> str:
    """A readable name for a label code (``"ANG"`` -> ``"anger"``; unknown codes unchanged)."""
    return LABEL_NAMES.get(label, label)


def check_label_set(labels: Sequence[str], *, source: str = "label set") -> tuple[str, ...]:
    """Validate a label set (at least two distinct, non-empty codes) and return it as a tuple."""
    labels = tuple(str(label) for label in labels)
    if len(labels) < 2:
        raise ValueError(f"{source}: a label set needs at least two classes, got {list(labels)}")
    if len(set(labels)) != len(labels) or any(not label for label in labels):
        raise ValueError(f"{source}: labels must be distinct and non-empty, got {list(labels)}")
    return labels


def class_weights(y, label_set: Sequence[str], *, allow_absent: bool = False):
    """Inverse-frequency weights, mean 1 over the classes present (scikit-learn's "balanced"); a class absent
    from ``y`` is refused, or, with ``allow_absent``, weighted 0.

    >>> class_weights([0, 0, 1], ("NEG", "POS")).round(2).tolist()
    [0.75, 1.5]
    >>> class_weights([0, 0, 0, 1], ("A", "B", "C"), allow_absent=True).round(3).tolist()
    [0.667, 2.0, 0.0]
    """
    import numpy as np
    y = np.asarray(y, dtype=int)
    counts = np.bincount(y, minlength=len(label_set)).astype(float)
    if (counts == 0).any() and not allow_absent:
        absent = [label_set[i] for i in np.flatnonzero(counts == 0)]
        raise ValueError(f"the training subset has no clips of {absent}; every class needs examples")
    return np.where(counts > 0, len(y) / (np.count_nonzero(counts) * np.maximum(counts, 1)), 0.0)
