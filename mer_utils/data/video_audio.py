"""The audio track of a video file (CREMA-D FLV carries MP3; MP4 carries AAC).

OpenCV decodes pictures only, so the track is read with PyAV (FFmpeg's
libraries, shipped inside its wheel: no system ffmpeg needed).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mer_utils.data.media_health import SAMPLE_RATE


def read_audio_track(path: str | os.PathLike, *, sample_rate: int = SAMPLE_RATE) -> np.ndarray | None:
    """Mono float32 samples at ``sample_rate``, or ``None`` when the video has no audio track."""
    import av

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"video not found: {path}")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as err:
        raise RuntimeError(f"cannot open {path} to read its audio track ({err}); is it a valid FLV/MP4?") from err
    with container:
        if not container.streams.audio:
            return None
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks = []
        try:
            for frame in container.decode(container.streams.audio[0]):
                chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]  # flush
        except av.error.FFmpegError as err:  # FFmpeg's message names neither the file nor the likely cause
            raise RuntimeError(f"{path}: its audio track cannot be decoded ({err}); the file is probably cut short "
                               "or damaged: re-download it") from None
    if not chunks:
        return None
    return np.concatenate(chunks).astype(np.float32)
