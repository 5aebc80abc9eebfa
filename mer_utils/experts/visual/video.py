"""Decode a clip and sample K frames from it, deterministically (OpenCV; CREMA-D's FLV and MP4 copies); a long
video (the demo's timeline) is streamed by :func:`stream_frames`, frames picked by timestamp."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np

from mer_utils.data.media_health import TRUNCATION_TOLERANCE, video_packets


class SampledFrames(NamedTuple):
    frames: np.ndarray  # (K, H, W, 3) uint8, RGB
    indices: np.ndarray  # (K,) frame numbers actually read, sorted
    n_frames: int  # frames in the clip as decoded


def sample_frame_indices(n_frames: int, k: int) -> np.ndarray:
    """Indices of ``k`` frames: the centres of ``k`` equal segments of ``n_frames`` (sorted, never past the end;
    a clip shorter than ``k`` repeats frames, which :func:`read_sampled_frames` refuses).

    >>> sample_frame_indices(10, 4).tolist()
    [1, 3, 6, 8]
    >>> sample_frame_indices(3, 5).tolist()
    [0, 0, 1, 2, 2]
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if n_frames < 1:
        raise ValueError(f"a clip needs at least one frame to sample from, got n_frames={n_frames}")
    centres = (np.arange(k) + 0.5) * n_frames / k
    return np.minimum(np.floor(centres).astype(int), n_frames - 1)


def _open(path: str | os.PathLike):
    import cv2
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Video not found: {path}. Check the data root and the manifest's video_path.")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise RuntimeError(f"OpenCV cannot open {path}: not a video, a Git LFS pointer (run `git lfs pull`) or a "
                           "codec this OpenCV build lacks (install opencv-python-headless, which bundles FFmpeg).")
    return capture


def _grab_frames(capture, wanted: np.ndarray) -> tuple[dict[int, np.ndarray], int]:
    """The wanted frames (by index) and how many frames were seen, grabbed up to the last wanted one (``grab``
    skips ``read``'s conversion and copy; seeking would decode again from a keyframe)."""
    import cv2
    frames, wanted_set, end = {}, {int(i) for i in wanted}, int(wanted.max()) + 1
    for position in range(end):
        if not capture.grab():
            return frames, position
        if position in wanted_set and (read := capture.retrieve())[0]:
            frames[position] = cv2.cvtColor(read[1], cv2.COLOR_BGR2RGB)
    return frames, end


class VideoFramesError(RuntimeError):
    """A clip whose frames cannot all be had: truncated, corrupt or too short. The message names the file."""


def _shortfall_is_damage(path, seen: int) -> bool:
    """Whether fewer frames decoded than the header counts because the file is cut or corrupt, not because
    its audio outlasts the picture (OpenCV counts FLV frames from the duration): its packets tell (PyAV)."""
    import av
    try:
        packets = video_packets(path)
    except av.error.FFmpegError:
        return True
    return packets is None or packets.truncated() or seen < packets.n_packets - TRUNCATION_TOLERANCE["frames"]


def read_sampled_frames(path: str | os.PathLike, k: int) -> SampledFrames:
    """``k`` uniformly sampled RGB frames of a clip, never repeated. A header that over-counts (a longer audio
    track) draws the indices again; a cut or corrupt file or fewer than ``k`` frames: :class:`VideoFramesError`."""
    import cv2

    capture = _open(path)
    try:
        n_frames = declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if n_frames < 1:  # no count in the header: count by decoding
            n_frames = sum(1 for _ in iter(capture.grab, False))
            capture.release()
            capture = _open(path)
        if n_frames < k:
            raise VideoFramesError(f"{path}: {n_frames} frames, fewer than the {k} sampled per clip; frames would "
                                   "repeat. Replace the clip (a still image or a cut file?) or sample fewer frames.")
        indices = sample_frame_indices(n_frames, k)
        frames, seen = _grab_frames(capture, indices)
        if seen <= indices.max():
            if seen < k or _shortfall_is_damage(path, seen):
                raise VideoFramesError(f"{path}: only {seen} of the {declared} frames its header declares can be "
                                       "decoded (truncated or corrupt file); re-download it.")
            capture.release()
            capture, n_frames = _open(path), seen
            indices = sample_frame_indices(n_frames, k)
            frames, _ = _grab_frames(capture, indices)
    finally:
        capture.release()
    if broken := [int(i) for i in indices if int(i) not in frames]:
        raise VideoFramesError(f"{path}: frame(s) {broken} of {n_frames} do not decode (corrupt file); "
                               "re-download it.")
    return SampledFrames(np.stack([frames[int(i)] for i in indices]), indices, n_frames)


def read_all_frames(path: str | os.PathLike) -> np.ndarray:
    """Every frame of a clip as ``(N, H, W, 3)`` RGB uint8 (for figures and benchmarks)."""
    import cv2
    capture = _open(path)
    try:
        frames = []
        while (read := capture.read())[0]:
            frames.append(cv2.cvtColor(read[1], cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if not frames:
        raise RuntimeError(f"{path}: no decodable video frames (empty or corrupt file).")
    return np.stack(frames)


def reduced_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """``(width, height)`` scaled down so that the shorter side is at most ``max_side`` (never up).

    >>> reduced_size(1280, 720, 540), reduced_size(480, 360, 540)
    ((960, 540), (480, 360))
    """
    scale = 1.0 if not max_side else min(1.0, max_side / min(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


class FrameStream(NamedTuple):
    times: np.ndarray  # (k,) the instants sampled, seconds from the start of the picture
    frames: Iterator[np.ndarray]  # (H, W, 3) RGB, the frame on screen at each instant; may stop early


def stream_frames(path: str | os.PathLike, k: int, *, max_side: int | None = None,
                  span_s: float = 0.0) -> FrameStream:
    """``k`` frames spread uniformly over a video's time (``span_s`` without a duration in the header), in one pass,
    each the frame on screen by the stream's timestamps (PyAV); undecodable data: :class:`VideoFramesError`."""
    import av

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Video not found: {path}.")
    try:
        container = av.open(str(path))
        stream = container.streams.video[0]
    except (av.error.FFmpegError, IndexError) as err:
        raise VideoFramesError(f"{path}: no readable video stream ({err})") from None
    stream.thread_type = "AUTO"  # frame threads: decoding is the cost of a long video
    if stream.duration and stream.time_base:
        span_s = float(stream.duration * stream.time_base)
    elif container.duration:
        span_s = container.duration / 1_000_000
    times = (np.arange(k) + 0.5) * span_s / k
    width, height = reduced_size(stream.codec_context.width, stream.codec_context.height, max_side)
    return FrameStream(times, _frames_on_screen(path, container, stream, times, (width, height)))


def _frames_on_screen(path, container, stream, times, size) -> Iterator[np.ndarray]:
    import av

    def rgb(frame):
        return frame.to_ndarray(format="rgb24", width=size[0], height=size[1], interpolation="AREA")

    start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    step = 1.0 / float(stream.average_rate) if stream.average_rate else 0.04
    wanted, previous, before = 0, None, None
    try:
        with container:
            for index, frame in enumerate(container.decode(stream)):
                now = frame.time - start if frame.time is not None else index * step
                # Every instant before this frame's time shows the previous frame (the first: this one).
                while wanted < len(times) and times[wanted] < now:
                    yield rgb(previous if previous is not None else frame)
                    wanted += 1
                if wanted == len(times):
                    return
                if previous is not None:
                    step = max(now - before, 1e-6)
                previous, before = frame, now
    except av.error.FFmpegError as err:
        raise VideoFramesError(f"{path}: the video stops decoding after {before or 0:.1f} s ({err}); "
                               "re-download or re-encode it.") from None
    if previous is None:
        raise VideoFramesError(f"{path}: no decodable video frames (empty or corrupt file).")
    while wanted < len(times) and times[wanted] < before + step:  # the last frame, for as long as it shows
        yield rgb(previous)
        wanted += 1
