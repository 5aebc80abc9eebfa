"""Face boxes: largest face, fallback counting, smoothing, margins, crops; the real CREMA-D sample."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import shared
from mer_utils.experts.visual.crops import CropConfig, extract_clip_crops, load_clip_crops, prepare_crops, summarize_report
from mer_utils.experts.visual.faces import HaarFaceDetector, crop_box, expand_box, largest_box, track_faces
from mer_utils.experts.visual.video import read_sampled_frames


class ScriptedDetector:
    """Returns a fixed box, or nothing for the frames listed in ``misses``."""

    def __init__(self, misses):
        self.misses, self.calls = set(misses), 0

    def detect(self, frame):
        hit = self.calls not in self.misses
        self.calls += 1
        return np.array([[40.0, 30.0, 20.0, 20.0], [0.0, 0.0, 5.0, 5.0]]) if hit else np.zeros((0, 4))


class ListDetector:
    """Returns the boxes listed for each call in turn."""

    def __init__(self, per_frame):
        self.per_frame, self.calls = list(per_frame), 0

    def detect(self, frame):
        self.calls += 1
        return np.asarray(self.per_frame[self.calls - 1], dtype=float).reshape(-1, 4)


def test_missing_boxes_take_the_last_good_one_and_are_counted():
    a, b = [1.0, 1, 10, 10], [5.0, 5, 10, 10]
    frames = np.zeros((6, 100, 100, 3), np.uint8)
    track = track_faces(frames, ListDetector([[], a, [], [], b, []]), margin=0.0, window=1)
    assert track.detected.tolist() == [False, True, False, False, True, False]
    assert track.boxes.tolist() == [a, a, a, a, b, b], "the first face's box before it, the last one after"
    track = track_faces(np.zeros((2, 100, 200, 3), np.uint8), ListDetector([[], []]), margin=0.0, window=1)
    assert not track.detected.any() and track.boxes[0].tolist() == [70.0, 20.0, 60.0, 60.0], "no face: centred square"


def test_track_keeps_the_largest_face_and_counts_fallbacks():
    frames = np.zeros((6, 100, 120, 3), np.uint8)
    track = track_faces(frames, ScriptedDetector(misses={2, 3}), margin=0.25, window=3)
    assert track.detected.tolist() == [True, True, False, False, True, True]
    assert np.allclose(track.boxes, [[35.0, 25.0, 30.0, 30.0]] * 6), "largest box, squared, 25 % margin each side"


def test_median_smoothing_ignores_a_single_jump_and_helpers_behave():
    steady, jump = [10.0, 10, 20, 20], [16.0, 16, 20, 20]
    frames = np.zeros((5, 100, 100, 3), np.uint8)
    track = track_faces(frames, ListDetector([steady, steady, jump, steady, steady]), margin=0.0, window=3)
    assert np.allclose(track.boxes, [steady] * 5)
    with pytest.raises(ValueError, match="odd"):
        track_faces(frames, ListDetector([steady] * 5), window=2)
    assert largest_box(np.zeros((0, 4))) is None
    assert expand_box(np.array([0.0, 0, 10, 20]), margin=0.0).tolist() == [-5.0, 0.0, 20.0, 20.0]


def two_people(face: np.ndarray, *, sizes: list[tuple[int, int]], width: int = 640, height: int = 320) -> np.ndarray:
    """Frames of two people side by side, both the same real face: person A on the left, B on the right,
    at the given sizes (0: not in that frame)."""
    import cv2

    frames = np.full((len(sizes), height, width, 3), 110, np.uint8)
    for frame, pair in zip(frames, sizes):
        for left, side in zip((60, width // 2 + 60), pair):
            if side:
                top = (height - side) // 2
                frame[top: top + side, left: left + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
    return frames


def real_face(emotion: str = "HAP") -> np.ndarray:
    """The face of a real CREMA-D frame, with some hair and chin around it."""
    frame = read_sampled_frames(shared("crema-d-sample", "VideoFlash", f"1001_DFA_{emotion}_XX.flv"), 4).frames[0]
    box = expand_box(largest_box(CropConfig().make_detector().detect(frame)), margin=0.25)
    return crop_box(frame, box, size=int(box[2]))


def test_two_people_the_crop_stays_on_one_and_the_frames_with_two_are_counted():
    # A is the larger at first; then B comes closer (larger than A), and A leaves the picture for one frame.
    sizes = [(170, 140)] * 3 + [(170, 210)] * 3 + [(0, 210)] + [(170, 140)]
    frames = two_people(real_face(), sizes=sizes)
    track = track_faces(frames, CropConfig().make_detector(), margin=0.1, window=3)
    centres = track.boxes[:, 0] + track.boxes[:, 2] / 2
    assert (np.abs(centres - (60 + 85)) < 25).all(), f"the crop left person A: centres {centres.round()}"
    assert track.detected.tolist() == [True] * 6 + [False, True], "A's box is kept while A is away"
    assert track.n_several == 7, "every frame with both people is counted"


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


def test_the_crop_cache_is_read_in_worker_threads_without_ast(tmp_path, monkeypatch):
    """A re-run crashed now and then with ``SystemError: AST constructor recursion depth mismatch``: the
    pool threads read cache entries with ``np.load``, whose header parser is ``ast.literal_eval``, not
    thread-safe in CPython 3.11 (python/cpython#106905). No worker thread may parse with ``ast``."""
    import ast
    import threading
    from concurrent.futures import ThreadPoolExecutor

    real = shared("crema-d-sample", "VideoFlash", "1001_DFA_HAP_XX.flv").read_bytes()
    (tmp_path / "corpus" / "VideoFlash").mkdir(parents=True)
    ids = [f"10{n:02d}_DFA_HAP_XX" for n in range(1, 7)]
    for clip_id in ids:
        (tmp_path / "corpus" / "VideoFlash" / f"{clip_id}.flv").write_bytes(real)
    manifest = pd.DataFrame({"clip_id": ids, "video_path": [f"VideoFlash/{c}.flv" for c in ids],
                             "video_status": "ok"})
    config = CropConfig(n_frames=4)
    cache, first = prepare_crops(manifest, tmp_path / "corpus", config=config, outputs=tmp_path / "out",
                                 n_jobs=3, progress=False)
    assert set(first["status"]) == {"ok"}

    def main_thread_only(original):
        def guarded(*args, **kwargs):
            if threading.current_thread() is not threading.main_thread():
                raise RuntimeError(f"{original.__name__} called in a worker thread")
            return original(*args, **kwargs)
        return guarded

    monkeypatch.setattr(ast, "literal_eval", main_thread_only(ast.literal_eval))
    monkeypatch.setattr(np, "load", main_thread_only(np.load))
    _, again = prepare_crops(manifest, tmp_path / "corpus", config=config, outputs=tmp_path / "out",
                             n_jobs=3, progress=False)
    assert set(again["status"]) == {"cached"}, again["error"].tolist()
    expected = load_clip_crops(cache, ids[0]).crops
    with ThreadPoolExecutor(max_workers=6) as pool:  # many readers at once, as a training loader would
        loaded = list(pool.map(lambda c: load_clip_crops(cache, c).crops, ids * 20))
    assert all(np.array_equal(crops, expected) for crops in loaded)
