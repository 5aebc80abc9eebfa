"""Frame sampling and decoding: deterministic, covering the clip, reading the frames it names."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from conftest import shared
from mer_utils.experts.visual.crops import load_clip_crops
from mer_utils.experts.visual.video import VideoFramesError, read_all_frames, read_sampled_frames, sample_frame_indices


def video_info(path) -> tuple[int, float, int, int]:
    """Frame count (as the header says), fps, width and height, read by OpenCV."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    props = (cv2.CAP_PROP_FRAME_COUNT, cv2.CAP_PROP_FPS, cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT)
    try:
        return tuple(capture.get(p) for p in props)
    finally:
        capture.release()


@pytest.mark.parametrize("n_frames", [1, 2, 7, 8, 9, 24, 56, 67, 150])
@pytest.mark.parametrize("k", [1, 3, 8, 16])
def test_sampled_indices_are_sorted_in_range_and_cover_the_clip(n_frames, k):
    idx = sample_frame_indices(n_frames, k)
    assert len(idx) == k and idx.dtype.kind == "i"
    assert np.all(np.diff(idx) >= 0), "indices must be sorted"
    assert idx.min() >= 0 and idx.max() <= n_frames - 1, "never past the last frame (off by one)"
    segment = n_frames / k
    # Each index lies in its own segment: the sample spans the clip from start to end.
    assert np.all(idx >= np.floor(np.arange(k) * segment)) and np.all(idx < np.ceil((np.arange(k) + 1) * segment))
    if k <= n_frames:
        assert len(set(idx.tolist())) == k, "no frame sampled twice when there are enough"
    assert np.array_equal(idx, sample_frame_indices(n_frames, k)), "deterministic"


def test_sampling_rejects_empty_clips_and_k_below_one():
    with pytest.raises(ValueError, match="at least one frame"):
        sample_frame_indices(0, 8)
    with pytest.raises(ValueError, match="k must be"):
        sample_frame_indices(10, 0)


def _numbered_video(path, n_frames: int, size=(96, 64)):
    """A video whose frame i is a flat grey of level 8 * i, so a frame tells its own index."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15.0, size)
    for i in range(n_frames):
        writer.write(np.full((size[1], size[0], 3), 8 * i, np.uint8))
    writer.release()
    return path


def test_read_sampled_frames_returns_the_frames_it_names(tmp_path):
    video = _numbered_video(tmp_path / "numbered.avi", 30)
    sampled = read_sampled_frames(video, 8)
    assert sampled.n_frames == 30 and sampled.frames.shape == (8, 64, 96, 3)
    assert sampled.indices.tolist() == sample_frame_indices(30, 8).tolist()
    levels = sampled.frames.reshape(8, -1).mean(axis=1) / 8
    assert np.allclose(levels, sampled.indices, atol=0.5), "decoded frames are not the requested ones"


def test_clip_shorter_than_k_is_refused_not_padded_with_repeats(tmp_path):
    with pytest.raises(VideoFramesError, match=r"short.avi: 3 frames, fewer than the 5"):
        read_sampled_frames(_numbered_video(tmp_path / "short.avi", 3), 5)


def test_truncated_real_flv_is_refused_with_the_frame_counts(tmp_path):
    real = shared("crema-d-sample", "VideoFlash", "1001_DFA_ANG_XX.flv")
    cut = tmp_path / "1001_DFA_ANG_XX.flv"
    cut.write_bytes(real.read_bytes()[: real.stat().st_size // 2])
    # The header still declares 67 frames; about half are in the file. Sampling them would stretch half a clip
    # over the whole timeline, so the clip is refused.
    with pytest.raises(VideoFramesError, match=r"1001_DFA_ANG_XX.flv: only \d+ of the 67 frames"):
        read_sampled_frames(cut, 8)


def test_unreadable_and_missing_files_name_the_file(tmp_path):
    fake = tmp_path / "1001_DFA_ANG_XX.flv"
    fake.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 1\n")
    with pytest.raises(RuntimeError, match="1001_DFA_ANG_XX.flv"):
        read_sampled_frames(fake, 8)
    with pytest.raises(FileNotFoundError, match="nothere.flv"):
        read_sampled_frames(tmp_path / "nothere.flv", 8)


def test_real_cremad_flv_decodes_and_grab_matches_full_decode():
    folder = shared("crema-d-sample", "VideoFlash")
    for path in sorted(folder.glob("*.flv"))[:3]:
        _, fps, width, height = video_info(path)
        assert (width, height) == (480, 360) and 29 < fps < 31
        sampled = read_sampled_frames(path, 8)
        every = read_all_frames(path)
        assert sampled.n_frames == len(every) and 50 <= len(every) <= 80
        assert np.array_equal(sampled.frames, every[sampled.indices])


def test_real_flvs_give_every_sampled_frame_at_their_own_lengths():
    # The real clips last 56-70 frames each; every one is sampled without a repeat or a refusal.
    for path in sorted(shared("crema-d-sample", "VideoFlash").glob("*.flv")):
        sampled = read_sampled_frames(path, 16)
        assert 56 <= sampled.n_frames <= 70 and len(set(sampled.indices.tolist())) == 16


def test_crop_cache_notices_a_same_size_replacement(tmp_path):
    from mer_utils.experts.visual.crops import CropConfig, prepare_crops

    folder = shared("crema-d-sample", "VideoFlash")
    root = tmp_path / "corpus"
    (root / "VideoFlash").mkdir(parents=True)
    target = root / "VideoFlash" / "1001_DFA_HAP_XX.flv"
    original = (folder / "1001_DFA_SAD_XX.flv").read_bytes()
    target.write_bytes(original)
    manifest = pd.DataFrame({"clip_id": ["1001_DFA_HAP_XX"], "video_path": ["VideoFlash/1001_DFA_HAP_XX.flv"],
                             "video_status": ["ok"]})
    config = CropConfig(n_frames=4)
    cache, first = prepare_crops(manifest, root, config=config, outputs=tmp_path / "out", progress=False)
    before = load_clip_crops(cache, "1001_DFA_HAP_XX")
    # Another clip (HAP is smaller), padded to exactly the same byte size, with the old modification time.
    stat = target.stat()
    other = (folder / "1001_DFA_HAP_XX.flv").read_bytes()
    target.write_bytes(other + b"\0" * (len(original) - len(other)))
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert target.stat().st_size == stat.st_size
    _, second = prepare_crops(manifest, root, config=config, outputs=tmp_path / "out", progress=False)
    after = load_clip_crops(cache, "1001_DFA_HAP_XX")
    assert first["status"].tolist() == ["ok"] and second["status"].tolist() == ["ok"], "re-cropped, not reused"
    assert not np.array_equal(before.crops, after.crops)
    _, third = prepare_crops(manifest, root, config=config, outputs=tmp_path / "out", progress=False)
    assert third["status"].tolist() == ["cached"]


def _flv_with_longer_audio(path, *, n_video: int = 20, fps: int = 10, audio_s: float = 3.0):
    """An FLV whose sound outlasts its picture: the header's duration (and OpenCV's frame count) covers both."""
    import av

    with av.open(str(path), "w", format="flv") as out:
        video = out.add_stream("flv", rate=fps)
        video.width, video.height, video.pix_fmt = 96, 64, "yuv420p"
        audio = out.add_stream("aac", rate=16000)
        audio.layout = "mono"
        for i in range(n_video):
            for packet in video.encode(av.VideoFrame.from_ndarray(np.full((64, 96, 3), 8 * i, np.uint8),
                                                                  format="rgb24")):
                out.mux(packet)
        out.mux(video.encode())
        n = int(audio_s * 16000)
        for start in range(0, n, 1024):
            samples = (0.1 * np.sin(np.arange(start, min(n, start + 1024)) / 5)).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, start
            out.mux(audio.encode(frame))
        out.mux(audio.encode())
    return path


def test_audio_outlasting_the_picture_is_not_mistaken_for_a_cut_file(tmp_path):
    from mer_utils.data.media_health import video_health

    path = _flv_with_longer_audio(tmp_path / "longer_audio.flv")
    assert video_info(path)[0] > 25  # OpenCV counts 3 s of frames; 20 are there
    assert video_health(path).status == "ok"
    sampled = read_sampled_frames(path, 8)
    assert sampled.n_frames == 20 and len(set(sampled.indices.tolist())) == 8
    levels = sampled.frames.reshape(8, -1).mean(axis=1) / 8
    assert np.allclose(levels, sampled.indices, atol=1.0), "the frames read are the frames named"


def test_the_streamed_frames_of_a_constant_rate_video_are_the_sampled_ones():
    """The timeline's reader (by timestamps, one frame at a time) and the clip sampler (by frame index) agree
    frame for frame on real CREMA-D FLVs, so a long video's crops are the ones a clip would get."""
    from mer_utils.experts.visual.video import stream_frames

    for path in sorted(shared("crema-d-sample", "VideoFlash").glob("*.flv")):
        stream = stream_frames(path, 16)
        streamed = list(stream.frames)
        sampled = read_sampled_frames(path, 16)
        assert len(streamed) == 16 and all(np.array_equal(a, b) for a, b in zip(streamed, sampled.frames)), path.name
        assert np.all(np.diff(stream.times) > 0) and stream.times[-1] < sampled.n_frames / 29.97
