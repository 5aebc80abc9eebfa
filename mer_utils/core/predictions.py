"""The predictions CSV, the hand-off between experts, fusion, report and demo: one row per clip and subset,
``clip_id, split, fold, subset, modality, y_true, y_pred, p_<label 1>, …, p_<label K>`` (the label set in order)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from mer_utils.core.atomic_io import write_csv
from mer_utils.core.labels import PROB_PREFIX, SUBSETS, check_label_set, prob_columns

KEY_COLUMNS = ("clip_id", "split", "fold", "subset", "modality", "y_true", "y_pred")
MODALITIES = ("audio", "visual", "audio_visual")
_PROB_TOLERANCE = 1e-3
_REMAKE = "Delete it and re-run the stage that wrote it (it resumes; nothing else is lost)."


class PredictionsError(ValueError):
    """A predictions CSV does not follow the contract."""


def make_predictions_frame(*, clip_ids: Sequence[str], y_true: Sequence[str] | None, proba: np.ndarray,
                           labels: Sequence[str], split: str, fold: int, subset: str, modality: str) -> pd.DataFrame:
    """A contract frame from ``(n, len(labels))`` probabilities (rows renormalised: float drift must not trip the
    reader).

    >>> import numpy as np
    >>> f = make_predictions_frame(clip_ids=["1001_DFA_ANG_XX"], y_true=["ANG"],
    ...     proba=np.array([[.7, .3]]), labels=("ANG", "SAD"), split="random_seed0",
    ...     fold=0, subset="test", modality="audio")
    >>> f.loc[0, "y_pred"], list(f.columns[-2:])
    ('ANG', ['p_ANG', 'p_SAD'])
    """
    labels = check_label_set(labels)
    proba = np.asarray(proba, dtype=float)
    if proba.ndim != 2 or proba.shape[1] != len(labels):
        raise ValueError(f"proba must have shape (n, {len(labels)}) for labels {list(labels)}, got {proba.shape}")
    if len(clip_ids) != len(proba):
        raise ValueError(f"{len(clip_ids)} clip ids but {len(proba)} probability rows")
    proba = proba / proba.sum(axis=1, keepdims=True)
    return pd.DataFrame({
        "clip_id": list(clip_ids), "split": split, "fold": int(fold), "subset": subset, "modality": modality,
        "y_true": list(y_true) if y_true is not None else [""] * len(proba),
        "y_pred": [labels[i] for i in proba.argmax(axis=1)], **dict(zip(prob_columns(labels), proba.T)),
    })


def labels_of(frame: pd.DataFrame) -> tuple[str, ...]:
    """The label set of a predictions frame (its ``p_<label>`` columns, in order).

    >>> labels_of(pd.DataFrame(columns=["clip_id", "p_NEU", "p_ANG"]))
    ('NEU', 'ANG')
    """
    return tuple(c[len(PROB_PREFIX):] for c in frame.columns if str(c).startswith(PROB_PREFIX))


def write_predictions(path: str | os.PathLike, frame: pd.DataFrame) -> Path:
    """Write atomically, contract columns in order (checked where it is read: :func:`read_predictions`)."""
    return write_csv(path, frame.loc[:, [*KEY_COLUMNS, *prob_columns(labels_of(frame))]], float_format="%.6f")


def read_predictions(path: str | os.PathLike, *, expected_split: str | None = None,
                     expected_modality: str | None = None, expected_labels: Sequence[str] | None = None
                     ) -> pd.DataFrame:
    """Read and validate a predictions CSV (:class:`PredictionsError` names the file and the problem)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Predictions file not found: {path}. Run the expert's training step "
                                "(notebook or `mer audio train` / `mer visual train`) to create it.")
    try:
        frame = pd.read_csv(path, dtype={"clip_id": str, "split": str, "subset": str,
                                         "modality": str, "y_true": str, "y_pred": str},
                            keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise PredictionsError(f"{path}: not a readable predictions CSV ({err}); it is empty or was cut off "
                               f"mid-write. {_REMAKE}") from None
    missing = [c for c in KEY_COLUMNS if c not in frame.columns]
    if missing:
        raise PredictionsError(f"{path}: missing columns {missing}; expected {list(KEY_COLUMNS)} then p_<label>")
    labels = labels_of(frame)
    try:
        check_label_set(labels, source=str(path))
    except ValueError as err:
        raise PredictionsError(f"{err} (the p_<label> columns)") from None
    if expected_labels is not None and labels != tuple(expected_labels):
        raise PredictionsError(f"{path}: probability columns are {list(prob_columns(labels))}, expected "
                               f"{list(prob_columns(expected_labels))} in that order (another label set or order; "
                               "re-export with mer_utils.core.predictions).")
    if frame.empty:
        raise PredictionsError(f"{path}: no rows. {_REMAKE}")
    keys = frame.loc[:, [c for c in KEY_COLUMNS if c != "y_true"]]
    incomplete = (keys.isna() | (keys.astype(str) == "")).any(axis=1)
    if incomplete.any():
        row = int(np.flatnonzero(incomplete.to_numpy())[0])
        raise PredictionsError(f"{path}: row {row + 2} of the file is incomplete (blank key cells); the file "
                               f"was cut off mid-write or edited. {_REMAKE}")
    splits = sorted(frame["split"].astype(str).unique())
    if len(splits) != 1:
        raise PredictionsError(f"{path}: one split per file expected, found {splits}")
    if expected_split is not None and splits[0] != expected_split:
        raise PredictionsError(f"{path}: split is {splits[0]!r}, expected {expected_split!r}")
    modalities = set(frame["modality"].astype(str))
    if not modalities <= set(MODALITIES):
        raise PredictionsError(f"{path}: unknown modality {sorted(modalities - set(MODALITIES))}")
    if expected_modality is not None and modalities != {expected_modality}:
        raise PredictionsError(f"{path}: modality is {sorted(modalities)}, expected {expected_modality!r}")
    bad_subsets = set(frame["subset"].astype(str)) - set(SUBSETS)
    if bad_subsets:
        raise PredictionsError(f"{path}: unknown subset(s) {sorted(bad_subsets)}; use {SUBSETS}")
    dup = frame.duplicated(["clip_id", "fold", "subset"])
    if dup.any():
        raise PredictionsError(f"{path}: duplicated clip rows, e.g. {frame.loc[dup, 'clip_id'].iloc[0]}")
    # y_true may be empty (a demo clip with no label); y_pred never.
    allowed = {"y_true": set(labels) | {""}, "y_pred": set(labels)}
    for col, ok in allowed.items():
        unknown = set(frame[col].astype(str)) - ok
        if unknown:
            raise PredictionsError(f"{path}: column {col} has labels {sorted(unknown)} outside {list(labels)}")
    columns = list(prob_columns(labels))
    values = frame.loc[:, columns].apply(pd.to_numeric, errors="coerce")
    bad = (values.isna() & ~frame.loc[:, columns].isna()).to_numpy()  # named, not a bare float error
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise PredictionsError(
            f"{path}: {int(bad.sum())} blank or non-numeric probability cell(s), e.g. column "
            f"{columns[col]} of clip {frame['clip_id'].iloc[row]} (row {row + 2} of the file). {_REMAKE}"
        )
    proba = values.to_numpy(dtype=float)
    if not np.isfinite(proba).all() or (proba < 0).any():
        raise PredictionsError(f"{path}: probabilities must be finite and non-negative. {_REMAKE}")
    sums = proba.sum(axis=1)
    if np.abs(sums - 1).max() > _PROB_TOLERANCE:
        worst = int(np.abs(sums - 1).argmax())
        raise PredictionsError(
            f"{path}: probabilities of clip {frame['clip_id'].iloc[worst]} sum to {sums[worst]:.4f}, not 1"
        )
    # y_pred must be the row's arg-max (ties either way), else fusion and the metrics would score two models.
    chosen = proba[np.arange(len(proba)), [labels.index(y) for y in frame["y_pred"].astype(str)]]
    off = chosen < proba.max(axis=1) - _PROB_TOLERANCE
    if off.any():
        first = int(np.flatnonzero(off)[0])
        raise PredictionsError(
            f"{path}: y_pred disagrees with the probabilities in {int(off.sum())} row(s), e.g. clip "
            f"{frame['clip_id'].iloc[first]}: y_pred {frame['y_pred'].iloc[first]!r} but the highest is "
            f"p_{labels[int(proba[first].argmax())]}. The p_<label> columns were swapped or edited. {_REMAKE}"
        )
    return frame
