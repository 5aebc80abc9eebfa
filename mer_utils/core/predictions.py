"""The predictions CSV: the hand-off between experts, fusion, report and demo.

One row per clip and subset::

    clip_id, split, fold, subset, modality, y_true, y_pred, p_ANG, …, p_SAD

Probabilities are in the fixed order of :data:`mer_utils.data.cremad_vocabulary.EMOTIONS`.
The reader refuses files that break the contract with a message naming the
file and the problem, so a stale or hand-edited CSV cannot silently poison a
fusion table.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from mer_utils.core.atomic_io import write_csv
from mer_utils.data.cremad_vocabulary import EMOTIONS, PROB_COLUMNS, SUBSETS

PREDICTION_COLUMNS = (
    "clip_id", "split", "fold", "subset", "modality", "y_true", "y_pred", *PROB_COLUMNS,
)
MODALITIES = ("audio", "visual", "audio_visual")
_PROB_TOLERANCE = 1e-3


class PredictionsError(ValueError):
    """A predictions CSV does not follow the contract."""


def make_predictions_frame(
    *,
    clip_ids: Sequence[str],
    y_true: Sequence[str] | None,
    proba: np.ndarray,
    split: str,
    fold: int,
    subset: str,
    modality: str,
) -> pd.DataFrame:
    """Build a contract-conforming frame from class probabilities.

    ``proba`` has one column per emotion in :data:`EMOTIONS` order; rows are
    renormalised so that tiny float drift does not trip the reader.

    >>> import numpy as np
    >>> f = make_predictions_frame(clip_ids=["1001_DFA_ANG_XX"], y_true=["ANG"],
    ...     proba=np.array([[.7, .1, .1, .05, .03, .02]]), split="random_seed0",
    ...     fold=0, subset="test", modality="audio")
    >>> f.loc[0, "y_pred"]
    'ANG'
    """
    proba = np.asarray(proba, dtype=float)
    if proba.ndim != 2 or proba.shape[1] != len(EMOTIONS):
        raise ValueError(f"proba must have shape (n, {len(EMOTIONS)}), got {proba.shape}")
    if len(clip_ids) != len(proba):
        raise ValueError(f"{len(clip_ids)} clip ids but {len(proba)} probability rows")
    proba = proba / proba.sum(axis=1, keepdims=True)
    frame = pd.DataFrame({
        "clip_id": list(clip_ids),
        "split": split,
        "fold": int(fold),
        "subset": subset,
        "modality": modality,
        "y_true": list(y_true) if y_true is not None else [""] * len(proba),
        "y_pred": [EMOTIONS[i] for i in proba.argmax(axis=1)],
    })
    for j, col in enumerate(PROB_COLUMNS):
        frame[col] = proba[:, j]
    return frame


def write_predictions(path: str | os.PathLike, frame: pd.DataFrame) -> Path:
    """Validate then write atomically; returns the path."""
    validate_predictions(frame, source=str(path))
    return write_csv(path, frame.loc[:, list(PREDICTION_COLUMNS)], float_format="%.6f")


def read_predictions(
    path: str | os.PathLike,
    *,
    expected_split: str | None = None,
    expected_modality: str | None = None,
) -> pd.DataFrame:
    """Read and validate a predictions CSV.

    Raises :class:`PredictionsError` naming the file when columns, label order,
    probabilities, subsets or split identity are wrong.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"Predictions file not found: {path}. Run the expert's training step "
            "(notebook or `mer audio train` / `mer visual train`) to create it."
        )
    frame = pd.read_csv(path, dtype={"clip_id": str, "split": str, "subset": str,
                                     "modality": str, "y_true": str, "y_pred": str},
                        keep_default_na=False)
    validate_predictions(frame, source=str(path), expected_split=expected_split,
                         expected_modality=expected_modality)
    return frame


def validate_predictions(
    frame: pd.DataFrame,
    *,
    source: str = "<frame>",
    expected_split: str | None = None,
    expected_modality: str | None = None,
) -> None:
    cols = list(frame.columns)
    missing = [c for c in PREDICTION_COLUMNS if c not in cols]
    if missing:
        raise PredictionsError(f"{source}: missing columns {missing}; expected {list(PREDICTION_COLUMNS)}")
    probs_in_file = [c for c in cols if c.startswith("p_")]
    if probs_in_file != list(PROB_COLUMNS):
        raise PredictionsError(
            f"{source}: probability columns are {probs_in_file}, expected {list(PROB_COLUMNS)} "
            "in that order (label order differs; re-export with mer_utils.core.predictions)."
        )
    if frame.empty:
        raise PredictionsError(f"{source}: no rows")
    splits = sorted(frame["split"].astype(str).unique())
    if len(splits) != 1:
        raise PredictionsError(f"{source}: one split per file expected, found {splits}")
    if expected_split is not None and splits[0] != expected_split:
        raise PredictionsError(f"{source}: split is {splits[0]!r}, expected {expected_split!r}")
    modalities = set(frame["modality"].astype(str))
    if not modalities <= set(MODALITIES):
        raise PredictionsError(f"{source}: unknown modality {sorted(modalities - set(MODALITIES))}")
    if expected_modality is not None and modalities != {expected_modality}:
        raise PredictionsError(f"{source}: modality is {sorted(modalities)}, expected {expected_modality!r}")
    bad_subsets = set(frame["subset"].astype(str)) - set(SUBSETS)
    if bad_subsets:
        raise PredictionsError(f"{source}: unknown subset(s) {sorted(bad_subsets)}; use {SUBSETS}")
    dup = frame.duplicated(["clip_id", "fold", "subset"])
    if dup.any():
        raise PredictionsError(f"{source}: duplicated clip rows, e.g. {frame.loc[dup, 'clip_id'].iloc[0]}")
    # y_true may be empty (a demo clip with no label); y_pred never.
    allowed = {"y_true": set(EMOTIONS) | {""}, "y_pred": set(EMOTIONS)}
    for col, ok in allowed.items():
        unknown = set(frame[col].astype(str)) - ok
        if unknown:
            raise PredictionsError(f"{source}: column {col} has labels {sorted(unknown)} outside {EMOTIONS}")
    proba = frame.loc[:, list(PROB_COLUMNS)].to_numpy(dtype=float)
    if not np.isfinite(proba).all() or (proba < 0).any():
        raise PredictionsError(f"{source}: probabilities must be finite and non-negative")
    sums = proba.sum(axis=1)
    if np.abs(sums - 1).max() > _PROB_TOLERANCE:
        worst = int(np.abs(sums - 1).argmax())
        raise PredictionsError(
            f"{source}: probabilities of clip {frame['clip_id'].iloc[worst]} sum to {sums[worst]:.4f}, not 1"
        )


def probabilities(frame: pd.DataFrame) -> np.ndarray:
    """The ``(n, 6)`` probability matrix in label order."""
    return frame.loc[:, list(PROB_COLUMNS)].to_numpy(dtype=float)
