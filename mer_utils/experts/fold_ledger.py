"""Resumable per-fold bookkeeping shared by the expert runners.

A fold is done when ``<run>/fold<k>/done.json`` carries the run's
fingerprint (settings + data + split); a restarted run (a Colab disconnect)
reuses finished folds and retrains only the rest. ``best_fold.json`` records
which fold's model is the run's checkpoint: the best validation UA so far.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, NamedTuple

import pandas as pd

from mer_utils.core.atomic_io import read_json, write_json
from mer_utils.core.predictions import read_predictions, write_predictions


def run_fingerprint(settings: dict, prepared, *, media: str) -> str:
    """What a finished fold's results depend on: the settings, the data root, the
    ``media`` ("audio" or "video") files' manifest rows and the split membership.
    A regenerated corpus or a re-made split under the same names must not reuse old folds."""
    # The manifest rows identify the data; the data root's path is left out so a moved Drive folder resumes.
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for frame in (prepared.manifest[["clip_id", f"{media}_path", f"{media}_status"]],
                  prepared.split[["clip_id", "fold", "subset"]]):
        digest.update(pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


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

    def start_fold(self, fold: int) -> Path:
        """``<run>/fold<k>``, emptied first when it holds state of another fingerprint (other data or
        split), so a fold's resume state is only ever picked up by the run that wrote it."""
        fold_dir = self.fold_dir(fold)
        stamp = fold_dir / "fingerprint.json"
        if fold_dir.exists() and (not stamp.exists() or read_json(stamp).get("fingerprint") != self.fingerprint):
            import shutil

            shutil.rmtree(fold_dir)
        fold_dir.mkdir(parents=True, exist_ok=True)
        write_json(stamp, {"fingerprint": self.fingerprint})
        return fold_dir

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
