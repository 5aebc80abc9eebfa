"""Face boxes: largest face, fallback counting, smoothing, margins, crops; the real CREMA-D sample."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import shared
from mer_utils.experts.visual.crops import CropConfig, extract_clip_crops, load_clip_crops, prepare_crops, summarize_report
from mer_utils.experts.visual.faces import (HaarFaceDetector, crop_box, expand_box, fill_missing, largest_box,
                                    smooth_boxes, track_faces)


class ScriptedDetector:
    """Returns a fixed box, or nothing for the frames listed in ``misses``."""

    def __init__(self, misses):
        self.misses, self.calls = set(misses), 0

    def detect(self, frame):
        hit = self.calls not in self.misses
        self.calls += 1
        return np.array([[40.0, 30.0, 20.0, 20.0], [0.0, 0.0, 5.0, 5.0]]) if hit else np.zeros((0, 4))


def test_missing_boxes_take_the_last_good_one_and_are_counted():
    a, b = np.array([1.0, 1, 10, 10]), np.array([5.0, 5, 10, 10])
    boxes, n = fill_missing([None, a, None, None, b, None], (100, 100, 3))
    assert n == 4
    assert boxes.tolist() == [a.tolist(), a.tolist(), a.tolist(), a.tolist(), b.tolist(), b.tolist()]
    boxes, n = fill_missing([None, None], (100, 200, 3))
    assert n == 2 and boxes[0].tolist() == [70.0, 20.0, 60.0, 60.0], "no face at all: centred square"


def test_track_keeps_the_largest_face_and_counts_fallbacks():
    frames = np.zeros((6, 100, 120, 3), np.uint8)
    track = track_faces(frames, ScriptedDetector(misses={2, 3}), margin=0.25, window=3)
    assert track.n_fallback == 2 and track.detected.tolist() == [True, True, False, False, True, True]
    assert np.allclose(track.boxes, [[35.0, 25.0, 30.0, 30.0]] * 6), "largest box, squared, 25 % margin each side"


def test_median_smoothing_ignores_a_single_jump_and_helpers_behave():
    boxes = np.array([[10, 10, 20, 20]] * 2 + [[80, 80, 20, 20]] + [[10, 10, 20, 20]] * 2, float)
    assert np.allclose(smooth_boxes(boxes, window=3), boxes[[0, 0, 0, 0, 0]])
    with pytest.raises(ValueError, match="odd"):
        smooth_boxes(boxes, window=2)
    assert largest_box(np.zeros((0, 4))) is None
    assert expand_box(np.array([0.0, 0, 10, 20]), margin=0.0).tolist() == [-5.0, 0.0, 20.0, 20.0]


def test_crop_at_the_border_is_padded_not_shifted():
    frame = np.zeros((50, 50, 3), np.uint8)
    frame[:10, :10] = 255  # a bright corner
    crop = crop_box(frame, np.array([-10.0, -10, 20, 20]), size=20)
    assert crop.shape == (20, 20, 3)
    assert crop[10:, 10:].mean() > 250, "the box's lower-right quarter is the bright corner"


def test_real_flvs_face_found_in_95_percent_and_crops_centred(tmp_path):
    folder = shared("crema-d-sample", "VideoFlash")
    config = CropConfig(n_frames=16, crop_size=96)
    detector, found, total, offsets = config.make_detector(), 0, 0, []
    loose = HaarFaceDetector(cascade=config.cascade, min_size_frac=0.3, detect_width=96)
    for path in sorted(folder.glob("*.flv")):
        clip = extract_clip_crops(path, config, detector=detector)
        found, total = found + int(clip.detected.sum()), total + len(clip.detected)
        for crop in clip.crops[::4]:
            box = largest_box(loose.detect(crop))
            assert box is not None, f"no face inside the crop of {path.name}"
            offsets.append((box[:2] + box[2:] / 2 - 48) / 96)
    assert found / total >= 0.95, f"face found in only {found}/{total} sampled frames"
    assert np.abs(np.array(offsets)).max() < 0.1, "the face must sit in the middle of its crop"


def test_prepare_reports_an_undecodable_clip_and_reuses_the_cache(tmp_path):
    real = shared("crema-d-sample", "VideoFlash", "1001_DFA_HAP_XX.flv")
    root = tmp_path / "corpus" / "VideoFlash"
    root.mkdir(parents=True)
    (root / "1001_DFA_HAP_XX.flv").write_bytes(real.read_bytes())
    (root / "1001_DFA_SAD_XX.flv").write_bytes(b"\x00" * 2048)  # passes a size check, not a decoder
    manifest = pd.DataFrame({"clip_id": ["1001_DFA_HAP_XX", "1001_DFA_SAD_XX", "1001_DFA_NEU_XX"],
                             "video_path": ["VideoFlash/1001_DFA_HAP_XX.flv", "VideoFlash/1001_DFA_SAD_XX.flv", ""],
                             "video_status": ["ok", "ok", "missing"]})
    config = CropConfig(n_frames=4)
    cache, report = prepare_crops(manifest, tmp_path / "corpus", config=config, outputs=tmp_path / "out",
                                  n_jobs=2, progress=False)
    status = dict(zip(report["clip_id"], report["status"]))
    assert status == {"1001_DFA_HAP_XX": "ok", "1001_DFA_SAD_XX": "failed", "1001_DFA_NEU_XX": "skipped"}
    assert "1001_DFA_SAD_XX.flv" in report.set_index("clip_id").loc["1001_DFA_SAD_XX", "error"]
    assert (cache / "prepare_report.csv").exists() and cache.name == config.key()
    crops = load_clip_crops(cache, "1001_DFA_HAP_XX")
    assert crops.crops.shape == (4, 64, 64, 3) and crops.crops.dtype == np.uint8
    _, again = prepare_crops(manifest, tmp_path / "corpus", config=config, outputs=tmp_path / "out", progress=False)
    assert dict(zip(again["clip_id"], again["status"]))["1001_DFA_HAP_XX"] == "cached"
    assert summarize_report(again)["face_rate"] == 1.0
    assert CropConfig(n_frames=8).key() != config.key(), "another K must not reuse these crops"
