"""Resumable per-fold bookkeeping shared by the expert runners.

A fold is done when ``<run>/fold<k>/done.json`` carries the run's
fingerprint (settings + data + split); a restarted run (a Colab disconnect)
reuses finished folds and retrains only the rest. ``best_fold.json`` records
which fold's model is the run's checkpoint: the best validation UA so far.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, NamedTuple

import pandas as pd

from mer_utils.atomic_io import read_json, write_json
from mer_utils.predictions import read_predictions, write_predictions


class FinishedFold(NamedTuple):
    predictions: pd.DataFrame
    report: dict


class FoldLedger:
    """Which folds of a run are finished, and which fold's model is kept."""

    def __init__(self, run_dir: Path, fingerprint: str, split_name: str):
        self.run_dir, self.fingerprint, self.split_name = Path(run_dir), fingerprint, split_name
        best = read_json(self._best_path) if self._best_path.exists() else {}
        # A best fold recorded under other settings or data says nothing about this run.
        self.best = best if best.get("fingerprint") == fingerprint else {"fingerprint": fingerprint}

    @property
    def _best_path(self) -> Path:
        return self.run_dir / "best_fold.json"

    def fold_dir(self, fold: int) -> Path:
        return self.run_dir / f"fold{fold}"

    def finished(self, fold: int) -> FinishedFold | None:
        """The fold's saved predictions and report, when it finished under this fingerprint."""
        done, preds = self.fold_dir(fold) / "done.json", self.fold_dir(fold) / "predictions.csv"
        if done.exists() and preds.exists() and read_json(done).get("fingerprint") == self.fingerprint:
            return FinishedFold(read_predictions(preds, expected_split=self.split_name), read_json(done)["report"])
        return None

    def offer_best(self, fold: int, val_ua: float, save: Callable[[], Path]) -> None:
        """Keep this fold's model (``save()`` writes it) if its validation UA is the best so far."""
        if "checkpoint" not in self.best or val_ua > self.best["val_ua"]:
            self.best.update(checkpoint=str(save()), fold=int(fold), val_ua=float(val_ua))
            write_json(self._best_path, self.best)

    def record(self, fold: int, predictions: pd.DataFrame, report: dict) -> None:
        """Mark the fold done (predictions first, so done.json never points at nothing)."""
        write_predictions(self.fold_dir(fold) / "predictions.csv", predictions)
        write_json(self.fold_dir(fold) / "done.json", {"fingerprint": self.fingerprint, "report": report})

    @property
    def checkpoint(self) -> Path:
        return Path(self.best["checkpoint"])
