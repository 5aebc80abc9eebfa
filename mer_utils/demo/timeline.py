"""Emotion over time for inputs longer than one window: sliding windows (default 3 s every 1 s, the last one
ending at the input's end), their CSV and figure (docs/demo.md, "Long inputs")."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mer_utils.core.atomic_io import save_png, write_csv
from mer_utils.core.labels import label_name
from mer_utils.experts.visual.video import sample_frame_indices

STRIP_FRAMES = 10  # frames shown in the timeline's strip


class Timeline(NamedTuple):
    starts: np.ndarray  # (W,) window starts, seconds
    ends: np.ndarray  # (W,)
    audio: np.ndarray | None  # (W, L)
    visual: np.ndarray | None  # (W, L)
    fused: np.ndarray  # (W, L)
    labels: tuple
    frames: np.ndarray | None  # (F, H, W, 3) a few frames spread over the input, for the figure
    frame_times: np.ndarray | None  # (F,) their times, seconds


def window_bounds(duration_s: float, *, window: float, hop: float) -> tuple[np.ndarray, np.ndarray]:
    """Window starts and ends covering ``[0, duration_s]``; the last one ends at the input's end.

    >>> starts, ends = window_bounds(5.5, window=3.0, hop=1.0)
    >>> starts.tolist(), ends.tolist()
    ([0.0, 1.0, 2.0, 2.5], [3.0, 4.0, 5.0, 5.5])
    """
    if duration_s <= window:
        return np.array([0.0]), np.array([float(duration_s)])
    starts = np.arange(0.0, duration_s - window + 1e-9, hop)
    if starts[-1] + window < duration_s - 1e-6:
        starts = np.append(starts, duration_s - window)
    starts = np.round(starts, 3)
    return starts, np.round(starts + window, 3)


def window_frames(frame_times: np.ndarray, starts, ends) -> list[np.ndarray]:
    """The positions of the frames inside each window.

    >>> [f.tolist() for f in window_frames(np.array([0.0, 0.5, 2.5]), [0.0, 1.0], [1.0, 2.0])]
    [[0, 1], [1]]
    """
    inside = [np.flatnonzero((frame_times >= s) & (frame_times < e)) for s, e in zip(starts, ends)]
    # A window narrower than the frame spacing: its nearest frame.
    return [f if len(f) else np.array([np.abs(frame_times - (s + e) / 2).argmin()])
            for f, s, e in zip(inside, starts, ends)]


def write_timeline_csv(timeline: Timeline, path: str | os.PathLike) -> Path:
    """One row per window: ``start_s, end_s, audio_p_*, visual_p_*, fused_p_*`` (empty cells: no such expert)."""
    import pandas as pd

    frame = pd.DataFrame({"start_s": timeline.starts, "end_s": timeline.ends, **{
        f"{name}_p_{label}": np.nan if probs is None else probs[:, j]
        for name, probs in (("audio", timeline.audio), ("visual", timeline.visual), ("fused", timeline.fused))
        for j, label in enumerate(timeline.labels)}})
    write_csv(path, frame, float_format="%.4f")
    return Path(path)


def plot_timeline(timeline: Timeline, path: str | os.PathLike, *, title: str = "") -> Path:
    """One line plot per expert (probability of each emotion against window centre) over a strip of frames."""
    from matplotlib.figure import Figure

    panels = [(n, p) for n, p in (("audio", timeline.audio), ("visual", timeline.visual), ("fused", timeline.fused))
              if p is not None]
    strip = [] if timeline.frames is None else strip_indices(len(timeline.frames), STRIP_FRAMES)
    fig = Figure(figsize=(11, 2.1 * len(panels) + (1.6 if strip else 0.4)), dpi=100)
    rows = len(panels) + (1 if strip else 0)
    grid = fig.add_gridspec(rows, max(len(strip), 1), height_ratios=[2] * len(panels) + ([1.5] if strip else []))
    centres = (timeline.starts + timeline.ends) / 2
    colours = ["#C44E52", "#8172B2", "#937860", "#DD8452", "#8C8C8C", "#4C72B0", "#55A868"]
    for row, (name, probs) in enumerate(panels):
        ax = fig.add_subplot(grid[row, :])
        for j, label in enumerate(timeline.labels):
            ax.plot(centres, probs[:, j], marker="o", ms=3, lw=1.4, color=colours[j % len(colours)],
                    label=label_name(label))
        ax.set(xlim=(0, float(timeline.ends.max())), ylim=(0, 1))
        ax.set_ylabel(f"{name}\nprobability", fontsize=8)
        if row == 0:
            ax.set_title(title, fontsize=10)
            ax.legend(loc="upper right", fontsize=7, ncol=len(timeline.labels))
        if row == len(panels) - 1:
            ax.set_xlabel("time (s, window centre)")
    for col, k in enumerate(strip):
        axf = fig.add_subplot(grid[rows - 1, col])
        axf.imshow(timeline.frames[k])
        axf.set_title(f"{timeline.frame_times[k]:.1f} s", fontsize=7)
        axf.axis("off")
    fig.tight_layout()
    return save_png(fig, path)


def strip_indices(n: int, k: int) -> list[int]:
    """Up to ``k`` distinct frame positions spread over ``n`` frames, for a strip of pictures."""
    return sorted(set(sample_frame_indices(n, min(n, k)).tolist()))
