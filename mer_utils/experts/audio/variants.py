"""Offline SER recipes on precomputed features, and their actor-grouped
cross-validation.

A :class:`Recipe` names what the offline backbone does with functionals:
which feature sets (concatenated, or one model each with averaged
probabilities), speaker normalisation, the classifier and its ``C`` grid, and
whether the chosen ``C`` is refitted on train+validation. Every choice is made
on the validation actors; the test actors of a fold are only ever scored.
``benchmarks/bench_ravdess.py`` compares recipes with :func:`cross_validate`.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import pandas as pd

from mer_utils.experts.audio import DEFAULT_C_GRID
from mer_utils.experts.audio.speaker_norm import DEFAULT_MIN_CLIPS, SpeakerNormalizer
from mer_utils.data.cremad_vocabulary import EMOTIONS
from mer_utils.core.metrics import aggregate_scores, classification_scores

CLASSIFIERS = ("logreg", "svc")
SVC_C_GRID = (0.1, 1.0, 10.0, 100.0)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One offline configuration (see the module docstring)."""

    feature_sets: tuple[str, ...] = ("egemaps",)
    combine: str = "concat"  # "concat": one model on stacked features; "average": one model per set
    speaker_norm: str | None = None  # None, "meanstd" or "mean" (see mer_utils.experts.audio.speaker_norm)
    min_clips: int = DEFAULT_MIN_CLIPS
    classifier: str = "logreg"
    c_grid: tuple[float, ...] = DEFAULT_C_GRID
    refit: bool = False  # refit the chosen C on train+val (then val scores are no longer out-of-sample)

    def __post_init__(self):
        if self.classifier not in CLASSIFIERS:
            raise ValueError(f"unknown classifier {self.classifier!r}; choose one of {CLASSIFIERS}")
        if self.combine not in ("concat", "average"):
            raise ValueError(f"combine must be 'concat' or 'average', got {self.combine!r}")
        if not self.feature_sets:
            raise ValueError("a recipe needs at least one feature set")

    @property
    def name(self) -> str:
        sets = "+".join(self.feature_sets) if self.combine == "concat" else f"avg({','.join(self.feature_sets)})"
        parts = [sets, self.classifier]
        if self.speaker_norm:
            parts.append(f"speakernorm-{self.speaker_norm}")
        if self.refit:
            parts.append("refit")
        return " ".join(parts)


@dataclasses.dataclass
class FittedModel:
    """Speaker normaliser (optional) -> standardiser -> classifier, for one feature block."""

    normalizer: SpeakerNormalizer | None
    mean: np.ndarray
    scale: np.ndarray
    model: object
    classes: np.ndarray  # label indices the classifier knows (a subset of EMOTIONS when data lack a class)
    C: float

    def proba(self, X: np.ndarray, speakers: Sequence | None) -> np.ndarray:
        Z = self.normalizer.transform(X, speakers=speakers) if self.normalizer else np.asarray(X, dtype=np.float64)
        Z = (Z - self.mean) / self.scale
        if hasattr(self.model, "predict_proba"):
            known = self.model.predict_proba(Z)
        else:  # SVC without Platt scaling: softmax of one-vs-rest margins (uncalibrated)
            margins = self.model.decision_function(Z)
            known = np.exp(margins - margins.max(axis=1, keepdims=True))
            known /= known.sum(axis=1, keepdims=True)
        proba = np.zeros((len(Z), len(EMOTIONS)))
        proba[:, self.classes] = known
        return proba


def _classifier(name: str, C: float, seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    if name == "logreg":
        return LogisticRegression(C=C, class_weight="balanced", max_iter=3000, random_state=seed)
    return SVC(C=C, kernel="rbf", gamma="scale", class_weight="balanced", decision_function_shape="ovr")


def _fit_block(recipe: Recipe, C: float, X, y, speakers, seed: int) -> FittedModel:
    normalizer = None
    if recipe.speaker_norm:
        normalizer = SpeakerNormalizer(mode=recipe.speaker_norm, min_clips=recipe.min_clips).fit(X)
        X = normalizer.transform(X, speakers=speakers)
    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale[scale <= 1e-12] = 1.0  # constant features carry nothing; avoid 0/0
    model = _classifier(recipe.classifier, C, seed).fit((X - mean) / scale, y)
    return FittedModel(normalizer, mean, scale, model, np.asarray(model.classes_, dtype=int), C)


def _ua(y_true, proba) -> float:
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(y_true, proba.argmax(axis=1)))


def fit_recipe(recipe: Recipe, train: dict, val: dict, *, seed: int = 0) -> tuple[list[FittedModel], dict]:
    """Fit ``recipe``; ``C`` (per feature block) is chosen by validation UA.

    ``train`` and ``val`` are ``{"X": {feature_set: (n, d)}, "y": label
    indices, "speakers": ids}``. Returns one fitted model per block
    (one block when features are concatenated) and a JSON-able report.
    """
    blocks = [recipe.feature_sets] if recipe.combine == "concat" else [(s,) for s in recipe.feature_sets]
    models, report = [], {"recipe": recipe.name, "selected_on": "val", "blocks": []}
    for block in blocks:
        X_tr = np.hstack([np.asarray(train["X"][s], dtype=np.float64) for s in block])
        X_va = np.hstack([np.asarray(val["X"][s], dtype=np.float64) for s in block])
        scores, fitted = {}, {}
        for C in sorted(recipe.c_grid):
            fitted[C] = _fit_block(recipe, C, X_tr, train["y"], train["speakers"], seed)
            scores[C] = _ua(val["y"], fitted[C].proba(X_va, val["speakers"]))
        best = max(sorted(scores), key=lambda c: (scores[c], -c))  # ties: stronger regularisation
        chosen = fitted[best]
        if recipe.refit:
            # Speaker statistics stay within each subset: train and val are normalised separately.
            Z_tr = chosen.normalizer.transform(X_tr, speakers=train["speakers"]) if chosen.normalizer else X_tr
            Z_va = chosen.normalizer.transform(X_va, speakers=val["speakers"]) if chosen.normalizer else X_va
            chosen = _refit(recipe, best, np.vstack([Z_tr, Z_va]), np.r_[train["y"], val["y"]], chosen, seed)
        models.append(chosen)
        report["blocks"].append({"feature_sets": list(block), "C": best, "n_features": int(X_tr.shape[1]),
                                 "val_ua_per_C": {str(c): s for c, s in scores.items()}})
    return models, report


def _refit(recipe, C, Z, y, chosen: FittedModel, seed: int) -> FittedModel:
    mean, scale = Z.mean(axis=0), Z.std(axis=0)
    scale[scale <= 1e-12] = 1.0
    model = _classifier(recipe.classifier, C, seed).fit((Z - mean) / scale, y)
    return FittedModel(chosen.normalizer, mean, scale, model, np.asarray(model.classes_, dtype=int), C)


def predict_recipe(models: Sequence[FittedModel], recipe: Recipe, X: dict, speakers: Sequence | None) -> np.ndarray:
    """``(n, 6)`` probabilities: one block's, or the mean over blocks."""
    blocks = [recipe.feature_sets] if recipe.combine == "concat" else [(s,) for s in recipe.feature_sets]
    probas = [m.proba(np.hstack([np.asarray(X[s], dtype=np.float64) for s in b]), speakers)
              for m, b in zip(models, blocks)]
    return np.mean(probas, axis=0)


def _subset(features: dict, y: np.ndarray, speakers: np.ndarray, rows: np.ndarray) -> dict:
    return {"X": {k: v[rows] for k, v in features.items()}, "y": y[rows], "speakers": speakers[rows]}


def cross_validate(recipe: Recipe, *, features: dict, manifest: pd.DataFrame, split: pd.DataFrame,
                   seed: int = 0, transductive: bool = True) -> dict:
    """Fit and score ``recipe`` on every fold of ``split``.

    ``transductive=False`` scores every test clip alone (no test-speaker
    statistics: the single-clip fallback of the demo).

    ``features`` maps feature set -> ``(n, d)`` rows aligned with
    ``manifest`` rows. Returns ``{"per_fold": [...], "summary": {...},
    "reports": [...], "predictions": DataFrame}`` (test-subset predictions
    in the contract's columns).
    """
    from mer_utils.core.predictions import make_predictions_frame

    row_of = pd.Series(np.arange(len(manifest)), index=manifest["clip_id"].to_numpy())
    y = manifest["emotion"].map(EMOTIONS.index).to_numpy()
    speakers = manifest["actor_id"].to_numpy()
    per_fold, reports, frames = [], [], []
    for fold, group in split.groupby("fold", sort=True):
        rows = {s: row_of.loc[group.loc[group["subset"] == s, "clip_id"]].to_numpy() for s in ("train", "val", "test")}
        models, report = fit_recipe(recipe, _subset(features, y, speakers, rows["train"]),
                                    _subset(features, y, speakers, rows["val"]), seed=seed)
        test = _subset(features, y, speakers, rows["test"])
        proba = predict_recipe(models, recipe, test["X"], test["speakers"] if transductive else None)
        truth = [EMOTIONS[i] for i in test["y"]]
        scores = classification_scores(truth, [EMOTIONS[i] for i in proba.argmax(axis=1)])
        per_fold.append({"fold": int(fold), "subset": "test", **{k: scores[k] for k in ("n", "wa", "ua", "macro_f1")}})
        reports.append({"fold": int(fold), **report})
        frames.append(make_predictions_frame(clip_ids=manifest["clip_id"].to_numpy()[rows["test"]].tolist(),
                                             y_true=truth, proba=proba, split=str(group["split"].iloc[0]),
                                             fold=int(fold), subset="test", modality="audio"))
    return {"per_fold": per_fold, "summary": aggregate_scores(per_fold), "reports": reports,
            "predictions": pd.concat(frames, ignore_index=True)}
