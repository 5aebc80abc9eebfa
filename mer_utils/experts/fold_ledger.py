"""Resumable per-fold bookkeeping of the protocol runner.

A fold is done when ``<run>/fold<k>/done.json`` exists beside its
``predictions.csv``; a restarted run (a Colab disconnect) reuses finished
folds and retrains only the rest. The run folder is addressed by the run's
one key (corpus, settings and split: :mod:`mer_utils.core.runs`), so what a
fold folder holds was written by this run and needs no key of its own.
``best_fold.json`` records which fold's model is the run's checkpoint: the
best validation UA so far.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import pandas as pd

from mer_utils.core.atomic_io import read_json, write_json
from mer_utils.core.predictions import read_predictions, write_predictions


class FinishedFold(NamedTuple):
    predictions: pd.DataFrame
    report: dict


class FoldLedger:
    """Which folds of a run are finished, and which fold's model is kept."""

    def __init__(self, run_dir: Path, *, split: str, labels: Sequence[str], modality: str):
        self.run_dir = Path(run_dir)
        # What the run's fold predictions must be: the reader refuses anything else, naming the file.
        self._expected = {"expected_split": split, "expected_labels": tuple(labels), "expected_modality": modality}

    def fold_dir(self, fold: int) -> Path:
        return self.run_dir / f"fold{fold}"

    def is_done(self, fold: int) -> bool:
        return (self.fold_dir(fold) / "done.json").exists() and (self.fold_dir(fold) / "predictions.csv").exists()

    def finished(self, fold: int) -> FinishedFold:
        """A done fold's predictions (checked by the reader) and report."""
        return FinishedFold(read_predictions(self.fold_dir(fold) / "predictions.csv", **self._expected),
                            read_json(self.fold_dir(fold) / "done.json")["report"])

    @property
    def best(self) -> dict:
        """Read each time: processes running other folds (``--run-folds``) may have moved it."""
        path = self.run_dir / "best_fold.json"
        return read_json(path) if path.exists() else {}

    def offer_best(self, fold: int, val_ua: float, save: Callable[[], Path]) -> None:
        """Keep this fold's model (``save()`` writes it) if its validation UA is the best so far."""
        best = self.best
        if "checkpoint" not in best or val_ua > best["val_ua"]:
            write_json(self.run_dir / "best_fold.json", {"checkpoint": str(save()), "fold": int(fold),
                                                          "val_ua": float(val_ua)})

    def record(self, fold: int, predictions: pd.DataFrame, report: dict) -> None:
        """Mark the fold done (predictions first, so done.json never points at nothing)."""
        write_predictions(self.fold_dir(fold) / "predictions.csv", predictions)
        write_json(self.fold_dir(fold) / "done.json", {"report": report})

    @property
    def checkpoint(self) -> Path:
        return Path(self.best["checkpoint"])
