"""Frame sampling and decoding: deterministic, covering the clip, reading the frames it names."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import shared
from mer_utils.experts.visual.video import read_all_frames, read_sampled_frames, sample_frame_indices, video_info


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


def test_short_clip_repeats_frames_to_give_k(tmp_path):
    sampled = read_sampled_frames(_numbered_video(tmp_path / "short.avi", 3), 5)
    assert sampled.indices.tolist() == [0, 0, 1, 2, 2] and len(sampled.frames) == 5


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
        info = video_info(path)
        assert (info.width, info.height) == (480, 360) and 29 < info.fps < 31
        sampled = read_sampled_frames(path, 8)
        every = read_all_frames(path)
        assert sampled.n_frames == len(every) and 50 <= len(every) <= 80
        assert np.array_equal(sampled.frames, every[sampled.indices])
