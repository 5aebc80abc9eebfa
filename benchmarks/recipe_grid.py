"""Evaluation protocols the benchmarks compare offline recipes with (not part of the package).

:func:`half_transfer_split` trains on one half of the actors and tests on the
other; :func:`cross_validate` fits and scores a recipe on every fold of a split.
A recipe with speaker statistics (``speaker_norm``) is scored with test-time
adaptation (each test speaker's statistics from that speaker's test clips);
one without scores each clip alone. ``mer audio train`` does the same through
:class:`~mer_utils.experts.audio.classical.AcousticBackbone`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from mer_utils.core.metrics import aggregate_scores, classification_scores
from mer_utils.core.predictions import make_predictions_frame
from mer_utils.experts.audio.variants import Recipe, fit_recipe_held_out, predict_recipe
from mer_utils.protocols.splits import actor_table, carve_validation, check_speaker_independent, split_frame


def half_transfer_split(manifest: pd.DataFrame, train_actors: Sequence, *, n_val: int = 2, seed: int = 0,
                        name: str | None = None) -> pd.DataFrame:
    """One fold: ``train_actors`` (validation actors carved from them, balanced by sex where possible)
    against every other actor as test; no choice looks at the test actors."""
    pool = manifest[manifest["actor_id"].isin(list(train_actors))]
    test = manifest[~manifest["actor_id"].isin(list(train_actors))]
    if pool.empty or test.empty:
        raise ValueError("half_transfer_split needs training actors and at least one other actor to test on")
    n_actors = len(actor_table(pool))
    if n_actors <= n_val:
        raise ValueError(f"{n_actors} training actors cannot give {n_val} validation actors and keep one to train")
    label = name or f"half-transfer_{'-'.join(str(a) for a in sorted(set(train_actors)))}_seed{seed}"
    split = split_frame([*carve_validation(pool, n_val / n_actors, seed), (0, "test", test["clip_id"])], label)
    check_speaker_independent(split, manifest)
    return split


def _subset(features: dict, y: np.ndarray, speakers: np.ndarray, rows: np.ndarray, sentences) -> dict:
    return {"X": {k: v[rows] for k, v in features.items()}, "y": y[rows], "speakers": speakers[rows],
            "sentences": None if sentences is None else sentences[rows]}


def cross_validate(recipe: Recipe, *, features: dict, manifest: pd.DataFrame, split: pd.DataFrame, seed: int = 0,
                   labels: tuple[str, ...]) -> dict:
    """Fit and score ``recipe`` on every fold of ``split``; ``features`` maps feature set -> ``(n, d)`` rows
    aligned with ``manifest``. Returns ``{"per_fold", "summary", "reports", "predictions"}``."""
    row_of = pd.Series(np.arange(len(manifest)), index=manifest["clip_id"].to_numpy())
    y = manifest["emotion"].map(list(labels).index).to_numpy()
    speakers = manifest["actor_id"].to_numpy()
    sentences = manifest["sentence"].to_numpy(dtype=object) if "sentence" in manifest.columns else None
    per_fold, reports, frames = [], [], []
    for fold, group in split.groupby("fold", sort=True):
        rows = {s: row_of.loc[group.loc[group["subset"] == s, "clip_id"]].to_numpy() for s in ("train", "val", "test")}
        data = {s: _subset(features, y, speakers, rows[s], sentences) for s in rows}
        models, _, report = fit_recipe_held_out(recipe, data["train"], data["val"], seed=seed, labels=labels)
        test = data["test"]
        proba = predict_recipe(models, recipe, test["X"], test["speakers"], sentences=test["sentences"])
        truth = [labels[i] for i in test["y"]]
        scores = classification_scores(truth, [labels[i] for i in proba.argmax(axis=1)], labels=labels)
        per_fold.append({"fold": int(fold), "subset": "test", **{k: scores[k] for k in ("n", "wa", "ua", "macro_f1")}})
        reports.append({"fold": int(fold), **report})
        frames.append(make_predictions_frame(clip_ids=manifest["clip_id"].to_numpy()[rows["test"]].tolist(),
                                             y_true=truth, proba=proba, labels=labels,
                                             split=str(group["split"].iloc[0]), fold=int(fold), subset="test",
                                             modality="audio"))
    return {"per_fold": per_fold, "summary": aggregate_scores(per_fold), "reports": reports,
            "predictions": pd.concat(frames, ignore_index=True)}
