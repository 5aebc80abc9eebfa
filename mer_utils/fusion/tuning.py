"""Fit every strategy on validation, fold by fold, and apply it to test (only :func:`_apply` touches test rows).
Strategies are compared by *out-of-fold* validation UA: an in-sample score would flatter the stacking regression."""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from threadpoolctl import threadpool_limits

from mer_utils.core.config import one_of
from mer_utils.core.metrics import ua_score
from mer_utils.fusion.rules import apply_temperature, fit_temperature
from mer_utils.fusion.config import STRATEGY_NAMES
from mer_utils.fusion.join import expert_names, expert_probabilities, master_labels
from mer_utils.fusion.strategies import make_strategy
from mer_utils.core.predictions import make_predictions_frame

FUSED_MODALITY = "audio_visual"


class FusionOutcome(NamedTuple):
    """Everything fusion produced, before anything is written. ``predictions``: each method (experts, then
    strategies) -> its val and test rows; ``selection``: per fold and method, the (out-of-fold) validation UA."""

    experts: list[str]
    strategies: list[str]
    predictions: dict[str, pd.DataFrame]
    params: dict[str, list[dict]]
    temperatures: list[dict]
    selection: pd.DataFrame
    chosen: str
    best_single: str
    fitted: list[dict]


def _out_of_fold_ua(strategy, X: np.ndarray, y: np.ndarray, *, cv_folds: int, seed: int) -> float:
    """Validation UA of ``strategy`` when each clip is predicted by a fit that did not see it."""
    n_splits = min(cv_folds, int(pd.Series(y).value_counts().min()))
    if n_splits < 2:
        # Too few clips of some class to cross-validate: fall back to the in-sample score.
        return ua_score(y, clone(strategy).fit(X, y).predict(X))
    cv = StratifiedKFold(n_splits, shuffle=True, random_state=seed)
    return ua_score(y, cross_val_predict(strategy, X, y, cv=cv).astype(str))


def _features(rows: pd.DataFrame, experts: Sequence[str], temperatures: dict[str, float]) -> np.ndarray:
    return np.hstack([apply_temperature(expert_probabilities(rows, e), temperatures[e]) for e in experts])


def _frame(rows: pd.DataFrame, proba: np.ndarray, *, modality: str) -> pd.DataFrame:
    return make_predictions_frame(clip_ids=rows["clip_id"].tolist(), y_true=rows["y_true"].tolist(), proba=proba,
                                  labels=master_labels(rows), split=str(rows["split"].iloc[0]), modality=modality,
                                  fold=int(rows["fold"].iloc[0]), subset=str(rows["subset"].iloc[0]))


def _tune(val: pd.DataFrame, experts, strategies, *, calibrate, cv_folds, grid_step, seed):
    """Everything learned from one fold's validation rows."""
    y, labels = val["y_true"].to_numpy(dtype=str), master_labels(val)
    temperatures = {e: (fit_temperature(expert_probabilities(val, e), y, labels=labels) if calibrate else 1.0)
                    for e in experts}
    X = _features(val, experts, temperatures)
    fitted, selection = {}, {}
    for name in strategies:
        strategy = make_strategy(name, labels=labels, grid_step=grid_step, seed=seed)
        selection[name] = _out_of_fold_ua(strategy, X, y, cv_folds=cv_folds, seed=seed)
        fitted[name] = strategy.fit(X, y)
    selection.update({e: ua_score(y, val[f"{e}_y_pred"].to_numpy(dtype=str)) for e in experts})
    return temperatures, fitted, selection


def _apply(rows: pd.DataFrame, experts, temperatures, fitted) -> dict[str, pd.DataFrame]:
    """Predictions of the single experts and of every fitted strategy on ``rows``."""
    X = _features(rows, experts, temperatures)
    return {**{e: _frame(rows, expert_probabilities(rows, e), modality=e) for e in experts},
            **{name: _frame(rows, s.predict_proba(X), modality=FUSED_MODALITY) for name, s in fitted.items()}}


def fuse_master(master: pd.DataFrame, *, strategies: Sequence[str] = STRATEGY_NAMES, calibrate: bool = True,
                cv_folds: int = 5, grid_step: float = 0.05, seed: int = 0) -> FusionOutcome:
    """Tune every strategy on each fold's validation rows of ``master`` and predict val and test; the chosen
    strategy (and the best single expert, the significance test's reference) has the best mean validation UA."""
    strategies = [one_of(s, STRATEGY_NAMES, "fusion strategy") for s in strategies]
    if not strategies:
        raise ValueError(f"no fusion strategy given; choose one of {STRATEGY_NAMES}")
    experts = expert_names(master)
    unlabelled = master.loc[master["y_true"].astype(str) == "", "clip_id"]
    if len(unlabelled):
        raise ValueError(f"{len(unlabelled)} clips have no true label (e.g. {unlabelled.iloc[0]}); fusion is "
                         "tuned and scored on labelled validation and test predictions only")
    for subset in ("val", "test"):
        folds_with = set(master.loc[master["subset"] == subset, "fold"])
        if folds_with != set(master["fold"]):
            raise ValueError(f"every fold needs {subset} rows; folds without: "
                             f"{sorted(set(master['fold']) - folds_with)}")
    frames = {name: [] for name in [*experts, *strategies]}
    temperatures, selection, fitted_per_fold = [], [], []
    # Tiny matrices: multi-threaded BLAS made each stacking fit ~10x slower on a busy CPU.
    with threadpool_limits(limits=1):
        for fold, rows in master.groupby("fold", sort=True):
            val = rows[rows["subset"] == "val"]
            temps, fitted, scores = _tune(val, experts, strategies, calibrate=calibrate, cv_folds=cv_folds,
                                          grid_step=grid_step, seed=seed)
            temperatures.append({"fold": int(fold), **{e: round(t, 6) for e, t in temps.items()}})
            fitted_per_fold.append(fitted)
            selection += [{"fold": int(fold), "method": m, "selection_ua": v} for m, v in scores.items()]
            # Only now, with everything fixed, are the test rows used: to predict.
            for part in (val, rows[rows["subset"] == "test"]):
                for name, frame in _apply(part, experts, temps, fitted).items():
                    frames[name].append(frame)
    params = {name: [{"fold": temps["fold"], **fitted[name].fitted_params()}
                     for temps, fitted in zip(temperatures, fitted_per_fold)] for name in strategies}
    selection = pd.DataFrame(selection)
    mean_ua = selection.groupby("method", sort=False)["selection_ua"].mean()
    # Ties go to the earlier name in the list (max keeps the first), so the choice is deterministic.
    chosen = max(strategies, key=lambda s: mean_ua[s])
    best_single = max(experts, key=lambda e: mean_ua[e])
    return FusionOutcome(experts=experts, strategies=strategies, params=params, temperatures=temperatures,
                         predictions={name: pd.concat(parts, ignore_index=True) for name, parts in frames.items()},
                         selection=selection, chosen=chosen, best_single=best_single, fitted=fitted_per_fold)
