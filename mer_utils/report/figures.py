"""Report figures on :class:`matplotlib.figure.Figure` (no pyplot state: safe in notebooks, tests and CI)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from mer_utils.core.predictions import labels_of
from mer_utils.core.metrics import classification_scores, confusion_frame

_FACTOR_TITLES = {"sex": "actor sex", "age_group": "actor age", "intensity": "intensity",
                  "emotion": "emotion (recall)"}


def _new_figure(n_panels: int, *, panel_size=(3.4, 3.1), max_cols: int = 4):
    from matplotlib.figure import Figure
    cols = min(n_panels, max_cols)
    rows = int(np.ceil(n_panels / cols))
    fig = Figure(figsize=(panel_size[0] * cols, panel_size[1] * rows), dpi=100)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def confusion_figure(panels: Sequence[tuple[str, pd.DataFrame]], *, title: str = ""):
    """Row-normalised test confusion matrices, one panel per ``(label, predictions)``."""
    fig, axes = _new_figure(len(panels))
    for ax, (label, frame) in zip(axes, panels):
        labels = labels_of(frame)
        norm = confusion_frame(frame["y_true"], frame["y_pred"], labels=labels, normalize=True).to_numpy()
        ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
        for i, j in np.ndindex(norm.shape):
            ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if norm[i, j] > 0.55 else "black")
        ax.set_xticks(range(len(labels)), labels, fontsize=7, rotation=45 if len(labels) > 6 else 0)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_xlabel("predicted", fontsize=7)
        ax.set_ylabel("true", fontsize=7)
        ax.set_title(label, fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def per_class_f1_figure(panels: Sequence[tuple[str, pd.DataFrame]], *, title: str = ""):
    """Per-emotion test F1, one bar group per emotion and one bar per run."""
    fig, (ax,) = _new_figure(1, panel_size=(7.5, 3.4))
    width = 0.8 / max(len(panels), 1)
    # Panels of one figure share a label set (the report groups runs by corpus).
    labels = labels_of(panels[0][1]) if panels else ()
    x = np.arange(len(labels))
    for k, (label, frame) in enumerate(panels):
        per_class = classification_scores(frame["y_true"], frame["y_pred"], labels=labels)["per_class"]
        ax.bar(x + (k - (len(panels) - 1) / 2) * width, [per_class[e]["f1"] for e in labels], width, label=label)
    ax.set(xticks=x, xticklabels=labels, ylim=(0, 1), ylabel="test F1")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def gap_figure(gap: pd.DataFrame):
    """Test UA on a random split vs a speaker-independent one, per modality and backbone."""
    fig, (ax,) = _new_figure(1, panel_size=(max(4.0, 1.3 * len(gap) + 2), 3.4))
    x = np.arange(len(gap))
    ax.bar(x - 0.2, gap["random_ua"], 0.4, label="random split")
    ax.bar(x + 0.2, gap["speaker_ua"], 0.4, label="speaker-independent")
    for xi, (r, s) in enumerate(zip(gap["random_ua"], gap["speaker_ua"])):
        ax.text(xi, max(r, s) + 0.02, f"{100 * (r - s):+.1f}", ha="center", fontsize=7)
    columns = ["modality", "backbone", "random_protocol", "speaker_protocol", "adaptation"]
    labels = [f"{m}\n{b}\n{rp} vs {sp}" + ("" if a == "none" else f"\nadapted: {a}")
              for m, b, rp, sp, a in gap[columns].itertuples(index=False)]
    ax.set_xticks(x, labels, fontsize=6)
    ax.set(ylim=(0, 1.1), ylabel="test UA")
    ax.set_title("Protocol gap (points above the bars)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def breakdown_figure(table: pd.DataFrame, *, title: str = ""):
    """Test UA per group of each factor (sex, age, intensity, emotion), one bar per run."""
    factors = [f for f in _FACTOR_TITLES if f in set(table["factor"])]
    fig, axes = _new_figure(len(factors), panel_size=(4.0, 3.2), max_cols=2)
    labels = list(dict.fromkeys(table["label"]))
    width = 0.8 / max(len(labels), 1)
    for ax, factor in zip(axes, factors):
        part = table[table["factor"] == factor]
        ua = part.pivot(index="group", columns="label", values="ua").sort_index().reindex(columns=labels)
        groups, x = list(ua.index), np.arange(len(ua))
        for k, label in enumerate(labels):
            ax.bar(x + (k - (len(labels) - 1) / 2) * width, ua[label].fillna(0), width, label=label)
        # Group sizes under the names: a bar over a handful of clips is not a finding.
        sizes = part.groupby("group")["n"].max().reindex(groups)
        ax.set_xticks(x, [f"{g}\nn={n}" for g, n in zip(groups, sizes)], fontsize=6)
        ax.set_ylim(0, 1)
        ax.set_ylabel("test UA", fontsize=7)
        ax.set_title(_FACTOR_TITLES[factor], fontsize=8)
    if len(axes):
        handles, names = axes[0].get_legend_handles_labels()
        fig.legend(handles, names, loc="lower center", ncol=min(len(names), 3), fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.04 + 0.03 * int(np.ceil(len(labels) / 3)), 1, 1))  # room for the shared legend
    return fig
