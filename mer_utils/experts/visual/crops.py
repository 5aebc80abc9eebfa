"""Face crops, extracted once per clip and cached in ``outputs/cache/face_crops/<corpus>-<tag>/<config key>/``.
Entries are safetensors, not ``.npz``: ``np.load`` is not thread-safe in CPython 3.11 (python/cpython#106905)."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from mer_utils.core.atomic_io import atomic_path, write_csv, write_json
from mer_utils.experts.visual.faces import HaarFaceDetector, crop_faces, track_faces
from mer_utils.experts.visual.video import read_sampled_frames
if TYPE_CHECKING:  # pandas (and the data layer) load with a manifest: scoring one video needs neither
    import pandas as pd

CACHE_VERSION = 2  # 2: safetensors entries; the face followed from frame to frame, not the largest per frame
REPORT_COLUMNS = ("clip_id", "status", "n_frames", "n_detected", "n_fallback", "error")
FINGERPRINT_BYTES = 64 * 1024


@dataclasses.dataclass(frozen=True)
class CropConfig:
    """How a clip becomes face crops (every field is part of the cache key)."""

    n_frames: int = 8  # frames sampled uniformly per clip (K)
    crop_size: int = 64  # side of the square RGB crop, pixels
    margin: float = 0.1  # added on each side, fraction of the face box
    smooth_window: int = 3  # running-median window over frames (odd)
    detector: str = "haar"  # face detector name
    cascade: str = "haarcascade_frontalface_alt2.xml"  # OpenCV Haar cascade file (haar detector)
    min_size_frac: float = 0.12  # smallest face / shorter frame side
    min_neighbors: int = 5  # Haar cascade minNeighbors
    detect_width: int = 160  # frames are downscaled to this width to detect

    def key(self) -> str:
        """Short hash of the settings: equal key, interchangeable crops."""
        text = json.dumps({"v": CACHE_VERSION, **dataclasses.asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def frame_side(self) -> int:
        """Shorter frame side, pixels, at which the smallest face the detector reports still fills ``crop_size``."""
        return math.ceil(self.crop_size / self.min_size_frac)

    def make_detector(self):
        if self.detector != "haar":
            raise ValueError(f"unknown detector {self.detector!r}; built in: 'haar'. Pass a FaceDetector object "
                             "to prepare_crops(detector=...) and name it in CropConfig.detector.")
        return HaarFaceDetector(cascade=self.cascade, min_size_frac=self.min_size_frac,
                                min_neighbors=self.min_neighbors, detect_width=self.detect_width)


class ClipCrops(NamedTuple):
    crops: np.ndarray  # (K, S, S, 3) uint8 RGB
    boxes: np.ndarray  # (K, 4) crop boxes (x, y, w, h) in frame pixels
    frame_indices: np.ndarray  # (K,) sampled frame numbers
    detected: np.ndarray  # (K,) bool
    n_frames: int  # frames in the clip
    frames: np.ndarray | None = None  # the full sampled frames, when asked for


def extract_clip_crops(path: str | os.PathLike, config: CropConfig, *, detector=None,
                       keep_frames: bool = False) -> ClipCrops:
    """Decode K frames of one video, track the face, crop it."""
    sampled = read_sampled_frames(path, config.n_frames)
    track = track_faces(sampled.frames, detector or config.make_detector(), margin=config.margin,
                        window=config.smooth_window)
    return ClipCrops(crop_faces(sampled.frames, track.boxes, size=config.crop_size), track.boxes, sampled.indices,
                     track.detected, sampled.n_frames, sampled.frames if keep_frames else None)


def source_fingerprint(path: str | os.PathLike) -> str:
    """Size and sha1 of the first and last 64 KiB of a video (not its mtime: copying a corpus changes that)."""
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        digest.update(handle.read(FINGERPRINT_BYTES))
        if size > FINGERPRINT_BYTES:
            handle.seek(max(FINGERPRINT_BYTES, size - FINGERPRINT_BYTES))
            digest.update(handle.read())
    return f"{size}-{digest.hexdigest()}"


def _read(path: Path, names: tuple[str, ...]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Arrays ``names`` and the metadata of one entry (data only: safetensors holds no code)."""
    from safetensors import safe_open
    with safe_open(str(path), framework="numpy") as entry:
        return {name: entry.get_tensor(name) for name in names}, entry.metadata() or {}


def load_clip_crops(cache_dir: str | os.PathLike, clip_id: str) -> ClipCrops:
    """Read one clip's cached crops."""
    path = Path(cache_dir) / f"{clip_id}.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"No face crops for {clip_id} in {cache_dir}; run `mer visual prepare` first.")
    data, meta = _read(path, ("crops", "boxes", "frame_indices", "detected"))
    return ClipCrops(data["crops"], data["boxes"], data["frame_indices"], data["detected"], int(meta["n_frames"]))


def _report_row(clip_id: str, status: str, n_frames: int = 0, detected=(), error: str = "") -> dict:
    detected = np.asarray(detected, dtype=bool)
    return dict(zip(REPORT_COLUMNS, (clip_id, status, n_frames, int(detected.sum()), int((~detected).sum()), error)))


def _prepare_one(clip_id: str, video: Path, cache_dir: Path, config: CropConfig, detector) -> dict:
    from safetensors import SafetensorError
    from safetensors.numpy import save
    try:
        fingerprint = source_fingerprint(video)
        path = cache_dir / f"{clip_id}.safetensors"
        with contextlib.suppress(OSError, SafetensorError):  # no entry, or a truncated or foreign one: extract again
            data, meta = _read(path, ("detected",))
            if meta.get("source_fingerprint") == fingerprint:
                return _report_row(clip_id, "cached", int(meta["n_frames"]), data["detected"])
        crops = extract_clip_crops(video, config, detector=detector)
        arrays = {"crops": crops.crops, "boxes": crops.boxes.astype(np.float32),
                  "frame_indices": np.asarray(crops.frame_indices, np.int64), "detected": crops.detected}
        meta = {"n_frames": str(crops.n_frames), "source_fingerprint": fingerprint}
        with atomic_path(path) as tmp:
            tmp.write_bytes(save(arrays, metadata=meta))
        return _report_row(clip_id, "ok", crops.n_frames, crops.detected)
    except (OSError, RuntimeError, ValueError) as err:
        return _report_row(clip_id, "failed", error=str(err))


def prepare_crops(manifest: pd.DataFrame, data_root: str | os.PathLike, *, config: CropConfig = CropConfig(),
                  cache_dir: str | os.PathLike | None = None, outputs: str | os.PathLike = "outputs",
                  n_jobs: int | None = None, detector=None, progress: bool = True) -> tuple[Path, pd.DataFrame]:
    """Extract (or reuse) face crops of every clip with a usable video in threads; returns the cache folder and the
    report (also its ``prepare_report.csv``: ``failed`` with their error, ``skipped`` when the manifest says so)."""
    import pandas as pd
    from tqdm.auto import tqdm

    from mer_utils.data.manifest import modality_gap

    if missing := [c for c in ("clip_id", "video_path", "video_status") if c not in manifest.columns]:
        raise ValueError(f"manifest lacks column {missing[0]!r}; build it with "
                         "mer_utils.data.manifest.prepare_manifest")
    if gap := modality_gap(manifest, "video"):  # e.g. audio only: say what to add, not "no clip could be cropped"
        raise RuntimeError(f"no face crops can be made from {data_root}: {gap}")
    root = Path(data_root).resolve()
    tag = f"{root.name}-{hashlib.sha256(str(root).encode()).hexdigest()[:8]}"
    cache_dir = Path(cache_dir or Path(outputs) / "cache" / "face_crops" / tag / config.key())
    cache_dir.mkdir(parents=True, exist_ok=True)
    write_json(cache_dir / "config.json", {"cache_version": CACHE_VERSION, "key": config.key(),
                                           **dataclasses.asdict(config)})
    usable = manifest["video_status"] == "ok"
    rows = [_report_row(c, "skipped", error=f"video_status={s}")
            for c, s in manifest.loc[~usable, ["clip_id", "video_status"]].values]
    jobs = [(c, Path(data_root) / p) for c, p in manifest.loc[usable, ["clip_id", "video_path"]].values]
    import cv2
    detector = detector or config.make_detector()
    n_jobs = n_jobs or min(8, os.cpu_count() or 1)
    # Parallel over clips, not inside OpenCV: one OpenCV thread per worker avoids oversubscribing the cores.
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1 if n_jobs > 1 else threads)
    try:
        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            futures = pool.map(lambda job: _prepare_one(job[0], job[1], cache_dir, config, detector), jobs)
            rows += list(tqdm(futures, total=len(jobs), desc="face crops", unit="clip", disable=not progress))
    finally:
        cv2.setNumThreads(threads)
    report = pd.DataFrame(rows, columns=list(REPORT_COLUMNS)).sort_values("clip_id", kind="stable")
    write_csv(cache_dir / "prepare_report.csv", report)
    failed = report[report["status"] == "failed"]
    if len(failed):
        first = failed.iloc[0]
        print(f"face crops: {len(failed)} clip(s) could not be decoded and are skipped, e.g. {first['clip_id']}: "
              f"{first['error']} (full list: {cache_dir / 'prepare_report.csv'})")
    return cache_dir, report.reset_index(drop=True)


def summarize_report(report: pd.DataFrame) -> dict:
    """Counts per status and the share of sampled frames with a detected face."""
    done = report[report["status"].isin(["ok", "cached"])]
    sampled = int(done["n_detected"].sum() + done["n_fallback"].sum())
    return {"clips": len(report), **{status: int(n) for status, n in report["status"].value_counts().items()},
            "face_rate": float(done["n_detected"].sum() / sampled) if sampled else float("nan"),
            "clips_with_fallback": int((done["n_fallback"] > 0).sum())}
