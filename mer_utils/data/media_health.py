"""Health of one media file (usable, or why not: the keys of :data:`FIXES`), and a video's audio track. Audio is
decoded (silence needs the samples), video only demuxed plus its first frame, so 7,442 clips x 2 files take minutes.
Stereo or 44.1 kHz audio is fine: the loaders resample and down-mix."""

from __future__ import annotations

import contextlib
import os
import struct
from pathlib import Path
from typing import NamedTuple

import numpy as np

OK = "ok"
MIN_CLIP_SECONDS = 0.2  # the shortest real CREMA-D clip lasts about 1 s; 0.2 s holds no emotion
MAX_CLIP_SECONDS = 10.0  # real clips are 1-5 s; the known faulty one is ~60 s
FIXES = {
    "missing": "the file is not there; re-download it or remove the clip",
    "lfs_pointer": "this is a Git LFS pointer, not media: run `git lfs pull` in the CREMA-D clone",
    "empty": "the file has 0 bytes; re-download it",
    "unreadable": "the decoder cannot open it; re-download it or check the format",
    "no_samples": "the file decodes to no samples/frames; re-download it",
    "truncated": "the file is shorter than its own header says (an interrupted download or copy); re-download it",
    "too_short": f"shorter than {MIN_CLIP_SECONDS} s, too little to hear or see an emotion; re-download it or "
                 "remove the clip",
    "too_long": "much longer than a CREMA-D clip (known erratum, e.g. 1064_IEO_DIS_MD); excluded",
    "silent": "no audible signal (known erratum, e.g. 1076_MTI_SAD_XX); excluded",
    "phase_cancelled": "its stereo channels cancel out in the mono mix the models hear (one channel is the other "
                       "inverted); keep one channel: `ffmpeg -i IN -af pan=mono|c0=c0 OUT.wav`",
    "still_image": "a still picture (PNG/JPEG or a one-frame stream), not a video clip; put the clip's video there",
}
SAMPLE_RATE = 16_000  # every loader resamples to this rate (speech models and features expect it)
SILENCE_PEAK = 1e-3  # full scale = 1.0; real speech peaks far above this
# A video whose packets end this much before its declared duration is cut. Real CREMA-D FLVs end within a
# frame of the duration in their header; the tolerance leaves room for encoders that round it.
TRUNCATION_TOLERANCE = {"frames": 4, "fraction": 0.08}
# A decoded MP3 may fall short of its Xing/LAME frame count by the encoder padding (about 2 MP3 frames).
DECODE_SLACK_SAMPLES = 2 * 1152
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")


def is_image_header(head: bytes) -> bool:
    """True when a file's first bytes are a still image's (PNG, JPEG, GIF, WebP), whatever its extension."""
    return head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


class Health(NamedTuple):
    status: str
    duration_s: float


def _pre_decode_status(path: str | os.PathLike, *, video: bool = False) -> str | None:
    """Status decided without a decoder (for a video, a still picture's too), or None."""
    if not os.path.exists(path):
        return "missing"
    with open(path, "rb") as handle:
        head = handle.read(64)
    return ("empty" if not head else "lfs_pointer" if head.startswith(b"version https://git-lfs")
            else "still_image" if video and is_image_header(head) else None)


def wav_is_cut(path: str | os.PathLike) -> bool:
    """True when a WAV's ``data`` chunk is shorter than its header says (libsndfile reads a cut WAV silently)."""
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return False
        offset = 12
        while offset + 8 <= size:
            handle.seek(offset)
            chunk_id, chunk_size = struct.unpack("<4sI", handle.read(8))
            if chunk_id == b"data":  # 0 or 0xFFFFFFFF: written while streaming, size unknown
                return chunk_size not in (0, 0xFFFFFFFF) and size - offset - 8 < chunk_size
            offset += 8 + chunk_size + (chunk_size & 1)  # chunks are word-aligned
    return False


def silence(samples: np.ndarray) -> str | None:
    """``"silent"``, ``"phase_cancelled"`` (the channels are loud, their mono mix is not) or None, for
    ``(n, channels)`` samples (or mono ``(n,)``) in full scale 1.0: what the models hear is the mono mix."""
    samples = np.asarray(samples)
    mono = samples.mean(axis=1) if samples.ndim == 2 else samples
    if mono.size and float(np.abs(mono).max()) >= SILENCE_PEAK:
        return None
    return "phase_cancelled" if samples.size and float(np.abs(samples).max()) >= SILENCE_PEAK else "silent"


def audio_health(path: str | os.PathLike, *, max_seconds: float | None = MAX_CLIP_SECONDS) -> Health:
    """Check a WAV/MP3: decodable, as long as its header says, not too short, not over ``max_seconds``, not silent."""
    import soundfile as sf

    status = _pre_decode_status(path)
    if status:
        return Health(status, float("nan"))
    try:
        info = sf.info(str(path))
        if info.frames <= 0:
            return Health("no_samples", 0.0)
        declared_s = info.frames / info.samplerate
        if wav_is_cut(path):
            return Health("truncated", declared_s)
        if max_seconds is not None and declared_s > max_seconds:
            return Health("too_long", declared_s)
        samples, _ = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, ValueError, struct.error):
        return Health("unreadable", float("nan"))
    if samples.size == 0:
        return Health("no_samples", 0.0)
    duration = len(samples) / info.samplerate
    # Compressed formats state their length in a header (MP3: Xing/LAME frame count); a cut file decodes shorter.
    if len(samples) < info.frames - DECODE_SLACK_SAMPLES:
        return Health("truncated", duration)
    if duration < MIN_CLIP_SECONDS:
        return Health("too_short", duration)
    return Health(silence(samples) or OK, duration)


class VideoPackets(NamedTuple):
    """What a container declares about its video, and what its packets show, without decoding them."""

    declared_s: float  # duration in the header (NaN when it has none)
    present_s: float  # how far the packets reach, to compare with ``declared_s`` (see video_packets)
    video_end_s: float  # where the last video frame ends
    n_packets: int  # non-empty video packets: the frames actually in the file
    frame_s: float  # seconds per frame (0: rate unknown)
    first_frame_decodes: bool

    def truncated(self) -> bool:
        """The packets stop short of the declared duration by more than an encoder's rounding."""
        if self.declared_s != self.declared_s:  # no duration in the header: nothing to hold the packets against
            return False
        tolerance = max(TRUNCATION_TOLERANCE["frames"] * self.frame_s,
                        TRUNCATION_TOLERANCE["fraction"] * self.declared_s)
        return self.present_s < self.declared_s - tolerance


def video_packets(path: str | os.PathLike) -> VideoPackets | None:
    """Demux every stream of ``path`` with PyAV (decoding only the first video frame); None: no video at all. A
    container duration (FLV's onMetaData covers audio and video) is held against every stream's packets, a stream
    duration (MP4) against the video's, so an audio track that outlasts the picture does not look cut."""
    import av

    with av.open(str(path)) as container:
        container_s = container.duration / 1e6 if container.duration else float("nan")
        if not container.streams.video:  # an FLV cut inside its first tags still declares its duration
            return VideoPackets(container_s, 0.0, 0.0, 0, 0.0, False) if container_s == container_s else None
        video = container.streams.video[0]
        rate = video.average_rate or video.guessed_rate
        frame_s = 1.0 / float(rate) if rate else 0.0
        n_packets, video_end, file_end, decoded = 0, None, 0.0, False
        with contextlib.suppress(av.error.FFmpegError):  # the file ends inside a packet: keep what came before
            for packet in container.demux():
                if not packet.size or packet.pts is None:
                    continue
                start = float(packet.pts * packet.time_base)
                file_end = max(file_end, start + float((packet.duration or 0) * packet.time_base))
                if packet.stream.index != video.index:
                    continue
                n_packets += 1
                video_end = start if video_end is None else max(video_end, start)
                if not decoded:
                    with contextlib.suppress(av.error.FFmpegError):
                        decoded = bool(packet.decode())
        video_end_s = video_end + frame_s if video_end is not None else 0.0
        if video.duration:
            declared, present = float(video.duration * video.time_base), video_end_s
        else:
            declared, present = container_s, max(file_end, video_end_s)
        return VideoPackets(declared, present, video_end_s, n_packets, frame_s, decoded)


def video_health(path: str | os.PathLike, *, max_seconds: float | None = MAX_CLIP_SECONDS) -> Health:
    """Check a video: a clip (not a picture), decodable, with every frame its header declares, not too long."""
    status = _pre_decode_status(path, video=True)
    if status:
        return Health(status, float("nan"))
    import av

    try:
        packets = video_packets(path)
    except (av.error.FFmpegError, ValueError, IndexError):
        return Health("unreadable", float("nan"))
    if packets is None:
        return Health("unreadable", float("nan"))
    if packets.truncated():
        return Health("truncated", packets.video_end_s)
    if packets.n_packets == 0 or not packets.first_frame_decodes:
        return Health("no_samples", 0.0)
    if packets.n_packets == 1:
        return Health("still_image", packets.video_end_s)
    duration = packets.declared_s if packets.declared_s == packets.declared_s else packets.video_end_s
    if max_seconds is not None and duration > max_seconds:
        return Health("too_long", duration)
    if duration < MIN_CLIP_SECONDS:
        return Health("too_short", duration)
    return Health(OK, duration)


def read_audio_track(path: str | os.PathLike, *, sample_rate: int = SAMPLE_RATE) -> np.ndarray | None:
    """The audio track of a video (FLV: MP3, MP4: AAC; PyAV, as OpenCV decodes pictures only): mono float32
    samples at ``sample_rate``, or ``None`` when the video has no audio track."""
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
        try:
            frames = [*container.decode(container.streams.audio[0]), None]  # None flushes the resampler
            chunks = [f.to_ndarray().reshape(-1) for frame in frames for f in resampler.resample(frame)]
        except av.error.FFmpegError as err:  # FFmpeg's message names neither the file nor the likely cause
            raise RuntimeError(f"{path}: its audio track cannot be decoded ({err}); the file is probably cut short "
                               "or damaged: re-download it") from None
    return np.concatenate(chunks).astype(np.float32) if chunks else None
