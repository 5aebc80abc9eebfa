"""Score a run's predictions and write the run folder's result files, in one schema for every expert."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from mer_utils.core.atomic_io import save_png, write_csv, write_json
from mer_utils.core.metrics import SCORE_KEYS, aggregate_scores, classification_scores, confusion_frame
from mer_utils.core.predictions import labels_of, write_predictions


def score_predictions(predictions: pd.DataFrame) -> tuple[list[dict], dict]:
    """Scores per (fold, subset) and their mean ± std per subset."""
    per_fold, labels = [], labels_of(predictions)
    for (fold, subset), group in predictions.groupby(["fold", "subset"], sort=True):
        scores = classification_scores(group["y_true"], group["y_pred"], labels=labels)
        per_fold.append({"fold": int(fold), "subset": subset, **{k: scores[k] for k in ("n", *SCORE_KEYS)}})
    summary = {subset: aggregate_scores([row for row in per_fold if row["subset"] == subset])
               for subset in sorted({row["subset"] for row in per_fold})}
    return per_fold, summary


def save_run_outputs(run_dir: str | os.PathLike, predictions: pd.DataFrame, *, info: dict) -> dict:
    """Write a contract frame's predictions per subset, metrics.json (``info`` included) and test confusion."""
    missing = [k for k in ("modality", "protocol", "split", "backbone") if k not in info]
    if missing:
        raise ValueError(f"save_run_outputs: info lacks {missing}")
    run_dir, labels = Path(run_dir), labels_of(predictions)
    for subset, group in predictions.groupby("subset", sort=True):
        write_predictions(run_dir / f"predictions_{subset}.csv", group.reset_index(drop=True))
    per_fold, summary = score_predictions(predictions)
    metrics = {**info, "labels": list(labels), "per_fold": per_fold, "summary": summary}
    write_json(run_dir / "metrics.json", metrics)
    eval_subset = "test" if (predictions["subset"] == "test").any() else "val"
    scored = predictions[predictions["subset"] == eval_subset]
    counts = confusion_frame(scored["y_true"], scored["y_pred"], labels=labels)
    write_csv(run_dir / f"confusion_{eval_subset}.csv", counts, index=True)
    title = f"{info['modality']} · {info['protocol']} · {info['backbone']} ({eval_subset}, all folds)"
    save_confusion_png(run_dir / f"confusion_{eval_subset}.png", counts, title=title)
    return metrics


def save_confusion_png(path: str | os.PathLike, counts: pd.DataFrame, *, title: str = "") -> Path:
    """The confusion matrix ``counts`` as a PNG, row-normalised, with the counts."""
    from matplotlib.figure import Figure

    labels = list(counts.index)
    norm = counts.div(counts.sum(axis=1), axis=0).fillna(0.0)
    side = max(5.2, 0.62 * len(labels) + 1.5)  # room for 8+ classes
    fig = Figure(figsize=(side, side - 0.6), dpi=110)
    ax = fig.subplots()
    image = ax.imshow(norm.to_numpy(), vmin=0, vmax=1, cmap="Blues")
    for i in range(len(labels)):
        for j in range(len(labels)):
            value = norm.iat[i, j]
            ax.text(j, i, f"{value:.2f}\n({counts.iat[i, j]:.0f})", ha="center", va="center", fontsize=7,
                    color="white" if value > 0.55 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=45 if len(labels) > 6 else 0)
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="true")
    ax.set_title(title, fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    return save_png(fig, path)
