"""Figures of the visual pipeline (sampled frames with face boxes, crop sheets, training curves), on
``matplotlib.figure.Figure``: no pyplot state, headless."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mer_utils.core.atomic_io import save_png
from mer_utils.experts.visual.crops import extract_clip_crops, load_clip_crops


def _finish(fig, path: str | os.PathLike | None, title: str = "", *, tight: bool = True):
    """Title and lay out ``fig``, write it as a PNG when ``path`` is given; returns it."""
    if title:
        fig.suptitle(title, fontsize=9)
    if tight:
        fig.tight_layout()
    if path is not None:
        save_png(fig, path)
    return fig


def plot_frames_with_boxes(frames: np.ndarray, boxes: np.ndarray, *, detected: np.ndarray | None = None,
                           frame_indices: Sequence[int] | None = None, title: str = "",
                           path: str | os.PathLike | None = None, max_frames: int = 8):
    """One row of sampled frames; the crop box in green (detected) or orange (fallback)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle
    n = min(len(frames), max_frames)
    fig = Figure(figsize=(2.0 * n, 2.0 * frames.shape[1] / frames.shape[2] + 0.5), dpi=100)
    axes = np.atleast_1d(fig.subplots(1, n))
    for i, ax in enumerate(axes):
        ax.imshow(frames[i])
        hit = True if detected is None else bool(detected[i])
        x, y, w, h = boxes[i]
        ax.add_patch(Rectangle((x, y), w, h, fill=False, lw=1.5, color="lime" if hit else "orange"))
        label = f"frame {frame_indices[i]}" if frame_indices is not None else f"#{i}"
        ax.set_title(label if hit else f"{label} (fallback)", fontsize=7)
        ax.axis("off")
    return _finish(fig, path, title)


def contact_sheet(crops_by_clip: dict[str, np.ndarray], *, path: str | os.PathLike | None = None,
                  max_frames: int = 8):
    """A grid of face crops: one row per clip, one column per sampled frame."""
    from matplotlib.figure import Figure
    names = list(crops_by_clip)
    n_cols = min(max_frames, max(len(c) for c in crops_by_clip.values()))
    fig = Figure(figsize=(1.1 * n_cols + 1.4, 1.1 * len(names) + 0.2), dpi=100)
    axes = np.array(fig.subplots(len(names), n_cols, squeeze=False))
    for row, name in enumerate(names):
        for col in range(n_cols):
            ax = axes[row, col]
            ax.axis("off")
            if col < len(crops_by_clip[name]):
                ax.imshow(crops_by_clip[name][col], cmap="gray" if crops_by_clip[name].ndim == 3 else None)
        axes[row, 0].text(-0.1, 0.5, name, transform=axes[row, 0].transAxes, ha="right", va="center", fontsize=7)
    fig.subplots_adjust(left=1.3 / (1.1 * n_cols + 1.4), right=0.99, top=0.99, bottom=0.01, wspace=0.05, hspace=0.05)
    return _finish(fig, path, tight=False)


def plot_training_curves(history: Sequence[dict], *, path: str | os.PathLike | None = None, title: str = ""):
    """Training loss and validation UA per epoch (one line per fold)."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(8, 3), dpi=100)
    loss_ax, ua_ax = fig.subplots(1, 2)
    for fold in sorted({row["fold"] for row in history}):
        rows = [r for r in history if r["fold"] == fold]
        for ax, key in ((loss_ax, "train_loss"), (ua_ax, "val_ua")):
            ax.plot([r["epoch"] for r in rows], [r[key] for r in rows], label=f"fold {fold}")
    loss_ax.set(xlabel="epoch", ylabel="train loss")
    ua_ax.set(xlabel="epoch", ylabel="validation UA")
    ua_ax.legend(fontsize=7)
    return _finish(fig, path, title)


def detection_figure(video_path: str | os.PathLike, crop_config, *, path: str | os.PathLike,
                     title: str | None = None) -> Path:
    """Sample a clip as the pipeline does and draw its frames with the face boxes; returns the PNG path."""
    clip = extract_clip_crops(video_path, crop_config, keep_frames=True)
    title = title or f"{Path(video_path).name}: face found in {sum(clip.detected)}/{len(clip.detected)} sampled frames"
    plot_frames_with_boxes(clip.frames, clip.boxes, detected=clip.detected, frame_indices=clip.frame_indices,
                           title=title, path=path)
    return Path(path)


def cached_contact_sheet(cache_dir: str | os.PathLike, clip_ids: Sequence[str] | None = None, *,
                         n_clips: int = 6, path: str | os.PathLike) -> Path:
    """Contact sheet of cached crops (without ``clip_ids``: ``n_clips`` spread over the cache's report)."""
    import pandas as pd
    if clip_ids is None:
        report = pd.read_csv(Path(cache_dir) / "prepare_report.csv", dtype={"clip_id": str})
        done = report.loc[report["status"].isin(["ok", "cached"]), "clip_id"].tolist()
        clip_ids = [done[i] for i in np.linspace(0, len(done) - 1, min(n_clips, len(done))).astype(int)]
    contact_sheet({c: load_clip_crops(cache_dir, c).crops for c in clip_ids}, path=path)
    return Path(path)
