"""What a demo input is, decided by its content, never its name (a PNG renamed ``.mp4``, an MP4 holding only
AAC audio): a still image, a recording or a video; how long it lasts; whether it is a synthetic-corpus clip."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mer_utils.data.media_health import (FIXES, SAMPLE_RATE, audio_health, is_image_header, read_audio_track,
                                         video_health)
from mer_utils.data.synthetic.corpus import CONFIG_NAME
from mer_utils.experts.audio.loading import AudioLoadError, read_audio
from mer_utils.experts.visual.video import reduced_size

IMAGE, AUDIO, VIDEO = "image", "audio", "video"


class MediaInfo(NamedTuple):
    kind: str  # IMAGE, AUDIO or VIDEO
    duration_s: float  # 0.0 for a still image


def probe_media(path: str | os.PathLike) -> MediaInfo:
    """Kind and duration of ``path``; an image never reaches FFmpeg (it would call a PNG a one-frame video)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder: give one video, recording or face image in it (a clip of a "
                                f"corpus: --clip-id CLIP_ID --data-root {path})")
    if not path.is_file():
        raise FileNotFoundError(f"input file not found: {path}")
    with open(path, "rb") as handle:
        if is_image_header(handle.read(16)):
            return MediaInfo(IMAGE, 0.0)
    import av
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as err:
        raise ValueError(f"{path} is neither an image nor a readable audio/video file ({err}); give a video "
                         "(FLV/MP4), a recording (WAV/MP3/M4A) or a face image (PNG/JPEG)") from None
    with container:
        has_video, has_audio = bool(container.streams.video), bool(container.streams.audio)
        streams = [s for s in (*container.streams.video, *container.streams.audio) if s.duration and s.time_base]
        # The container header's duration (microseconds), else its longest stream's.
        duration = (float(container.duration) / 1_000_000 if container.duration
                    else max((float(s.duration * s.time_base) for s in streams), default=0.0))
    if not (has_video or has_audio):
        raise ValueError(f"{path} holds neither audio nor video streams")
    return MediaInfo(VIDEO if has_video else AUDIO, duration)


# Media health statuses that leave nothing to score (media_health.FIXES says why and what to do).
_UNUSABLE = ("missing", "lfs_pointer", "empty", "unreadable", "no_samples", "too_short")


def check_media(path: str | os.PathLike, info: MediaInfo) -> tuple[MediaInfo, str | None]:
    """``(info, note)`` after the manifest's media health checks, less the clip-length limit: an unusable file or a
    cut video raises, naming cause and fix; a recording cut short is scored on what it holds, and the note says so.
    Silence is left to the scoring, which hears the mono mix."""
    if info.kind == IMAGE:
        return info, None
    health = (video_health if info.kind == VIDEO else audio_health)(path, max_seconds=None)
    if info.kind == AUDIO and health.status == "unreadable":
        return info, None  # not a libsndfile format (M4A, an audio-only MP4): PyAV decodes it, unchecked here
    if health.status in _UNUSABLE or (health.status == "truncated" and info.kind == VIDEO):
        held = f" (its pictures end at {health.duration_s:.1f} s)" if health.status == "truncated" else ""
        raise ValueError(f"{path}: {health.status}{held}: {FIXES[health.status]}")
    if health.status == "truncated":
        return info._replace(duration_s=health.duration_s), (
            f"{path} is cut short: only the {health.duration_s:.1f} s it holds were scored; {FIXES['truncated']}")
    return info, None


def read_image_rgb(path: str | os.PathLike, *, max_side: int) -> np.ndarray:
    """A still image as ``(H, W, 3)`` RGB uint8, decoded reduced to about ``max_side`` pixels on its shorter side."""
    import cv2

    from PIL import Image
    factor = 1  # the largest of 1, 2, 4, 8 that keeps the image's shorter side at least max_side
    try:
        with Image.open(path) as image:
            factor = next(f for f in (8, 4, 2, 1) if f == 1 or min(image.size) // f >= max_side)
    except Image.DecompressionBombError:  # more than ~180 megapixels: the most reduced decoding
        factor = 8
    except OSError:  # a format Pillow cannot read: OpenCV decodes it at full size
        pass
    bgr = cv2.imread(str(path), getattr(cv2, f"IMREAD_REDUCED_COLOR_{factor}") if factor > 1 else cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{path} looks like an image but OpenCV cannot decode it; re-save it as PNG or JPEG")
    size = reduced_size(bgr.shape[1], bgr.shape[0], max_side)
    if size != (bgr.shape[1], bgr.shape[0]):
        bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def decode_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Mono float32 samples and their rate: libsndfile for WAV/FLAC/MP3, PyAV for anything else (M4A, a video)."""
    try:
        return read_audio(path)
    except AudioLoadError:
        track = read_audio_track(path)
        if track is None or not track.size:
            raise ValueError(f"{path} has no decodable audio track") from None
        return track, SAMPLE_RATE


def is_synthetic_clip(path: str | os.PathLike) -> bool:
    """True for a file of a synthetic corpus (its root, one or two folders up, holds ``synth_config.json``)."""
    return any((parent / CONFIG_NAME).is_file() for parent in list(Path(path).resolve().parents)[:2])
