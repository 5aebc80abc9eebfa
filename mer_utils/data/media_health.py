"""Health of one media file: is it usable, and if not, why.

Statuses: ``ok``, ``missing``, ``lfs_pointer`` (a Git LFS pointer text file:
the repository was cloned without git-lfs), ``empty``, ``unreadable``,
``no_samples``, ``too_long`` and ``silent`` (see the CREMA-D errata: e.g.
1064_IEO_DIS_MD is one minute long, 1076_MTI_SAD_XX has no audio).
Stereo or 44.1 kHz audio is fine: the loaders resample and down-mix.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

OK = "ok"
FIXES = {
    "missing": "the file is not there; re-download it or remove the clip",
    "lfs_pointer": "this is a Git LFS pointer, not media: run `git lfs pull` in the CREMA-D clone",
    "empty": "the file has 0 bytes; re-download it",
    "unreadable": "the decoder cannot open it; re-download it or check the format",
    "no_samples": "the file decodes to no samples/frames; re-download it",
    "too_long": "much longer than a CREMA-D clip (known erratum, e.g. 1064_IEO_DIS_MD); excluded",
    "silent": "no audible signal (known erratum, e.g. 1076_MTI_SAD_XX); excluded",
}
SAMPLE_RATE = 16_000  # every loader resamples to this rate (speech models and features expect it)
MAX_CLIP_SECONDS = 10.0  # real clips are 1-5 s; the known faulty one is ~60 s
SILENCE_PEAK = 1e-3  # full scale = 1.0; real speech peaks far above this


class Health(NamedTuple):
    status: str
    duration_s: float


def _pre_decode_status(path: Path) -> str | None:
    if not path.exists():
        return "missing"
    size = path.stat().st_size
    if size == 0:
        return "empty"
    if size < 1024:
        with open(path, "rb") as handle:
            if handle.read(64).startswith(b"version https://git-lfs"):
                return "lfs_pointer"
    return None


def audio_health(path: str | os.PathLike) -> Health:
    """Check a WAV/MP3 file without keeping its samples."""
    import soundfile as sf

    path = Path(path)
    status = _pre_decode_status(path)
    if status:
        return Health(status, float("nan"))
    try:
        info = sf.info(str(path))
        if info.frames <= 0:
            return Health("no_samples", 0.0)
        duration = info.frames / info.samplerate
        if duration > MAX_CLIP_SECONDS:
            return Health("too_long", duration)
        samples, _ = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, ValueError):
        return Health("unreadable", float("nan"))
    if samples.size == 0:
        return Health("no_samples", 0.0)
    if float(np.abs(samples).max()) < SILENCE_PEAK:
        return Health("silent", duration)
    return Health(OK, duration)


def video_health(path: str | os.PathLike) -> Health:
    """Check that OpenCV opens a video and decodes its first frame."""
    path = Path(path)
    status = _pre_decode_status(path)
    if status:
        return Health(status, float("nan"))
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            return Health("unreadable", float("nan"))
        fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
        n_frames = capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0
        ok, _ = capture.read()
    finally:
        capture.release()
    if not ok:
        return Health("no_samples", 0.0)
    duration = n_frames / fps if fps > 0 and n_frames > 0 else float("nan")
    if duration > MAX_CLIP_SECONDS:
        return Health("too_long", duration)
    return Health(OK, duration)
