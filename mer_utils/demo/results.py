"""What the demo's steps hand each other: the resolved input, the experts chosen for it, the answer."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np


class DemoInputs(NamedTuple):
    video: Path | None  # a video, or a still image when kind == "image"
    audio: Path | None  # a recording (WAV/MP3/M4A/audio-only MP4), else the video's own track is used
    label: str  # the intended emotion when known (CREMA-D clip ids carry it), else ""
    name: str
    kind: str = "video"  # "video", "audio" or "image": what the input holds, decided by content
    duration_s: float = 0.0
    synthetic: bool = False  # a clip of the embedded synthetic corpus
    notes: tuple = ()  # what media health found in the files (a recording cut short), printed with the answer


class DemoResult(NamedTuple):
    inputs: DemoInputs
    audio_probs: np.ndarray | None
    visual_probs: np.ndarray | None
    fused_probs: np.ndarray
    top_emotion: str
    fusion: str
    visual: object | None  # mer_utils.experts.visual.checkpoint.VideoPrediction: frames, boxes, detected
    audio_source: str
    checkpoints: dict
    labels: tuple = ()  # the experts' label set, the order of every probability array
    provenance: dict = {}  # expert -> its index entry (what its checkpoint was trained on)
    notes: tuple = ()  # warnings and coverage notes, printed before the table
    timeline: object | None = None  # mer_utils.demo.timeline.Timeline for inputs longer than one window


class Experts(NamedTuple):
    audio: object | None  # has predict_proba(inputs) and labels
    face: object | None  # mer_utils.demo.face.FaceExpert
    paths: dict  # expert -> checkpoint path (str)
    provenance: dict  # expert -> index entry
    notes: list
