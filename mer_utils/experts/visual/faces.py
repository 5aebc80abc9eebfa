"""Follow one face through the sampled frames and turn it into a stable square crop; boxes are ``(x, y, w, h)``
floats in pixels of the full-size frame."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import NamedTuple, Protocol

import numpy as np

_LOCAL = threading.local()
# Frames in a row in which the followed face is missing while other faces are seen, before the track moves
# to the largest of those (the person left; a single missed detection must not swap people).
LOST_AFTER = 3


class FaceDetector(Protocol):
    """Anything with ``detect(frame_rgb) -> (n, 4)`` boxes ``(x, y, w, h)`` (MTCNN, RetinaFace ... plug in)."""

    def detect(self, frame: np.ndarray) -> np.ndarray: ...


def _cascade(name: str):
    """One classifier per thread: ``detectMultiScale`` on a shared one is not thread-safe."""
    import cv2
    cache = _LOCAL.__dict__.setdefault("cascades", {})
    if name not in cache:
        path = name if "/" in name else cv2.data.haarcascades + name
        cascade = cv2.CascadeClassifier(path)
        if cascade.empty():
            raise FileNotFoundError(f"Haar cascade {path} could not be loaded; it ships with opencv-python-headless.")
        cache[name] = cascade
    return cache[name]


@dataclass(frozen=True)
class HaarFaceDetector:
    """OpenCV's frontal-face Haar cascade (offline, fast). ``alt2``, not ``default``: it found a face in every sampled
    frame of the CREMA-D sample and the synthetic corpus, where ``default`` missed 9 % of the synthetic ones."""

    cascade: str = "haarcascade_frontalface_alt2.xml"
    scale_factor: float = 1.1
    min_neighbors: int = 5
    min_size_frac: float = 0.12
    detect_width: int = 160

    def detect(self, frame: np.ndarray) -> np.ndarray:
        import cv2
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
        scale = min(1.0, self.detect_width / gray.shape[1])
        if scale < 1.0:
            gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        min_side = max(8, int(round(self.min_size_frac * min(gray.shape))))
        boxes = _cascade(self.cascade).detectMultiScale(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(min_side, min_side))
        return np.asarray(boxes, dtype=float).reshape(-1, 4) / scale


class FaceTrack(NamedTuple):
    boxes: np.ndarray  # (K, 4) square crop boxes after fill, smoothing and margin
    detected: np.ndarray  # (K,) bool: the followed face was found in this frame (else a fallback box)
    n_several: int = 0  # frames in which the detector found more than one face


def largest_box(boxes: np.ndarray) -> np.ndarray | None:
    """The detection with the largest area, or None when there is none.

    >>> largest_box(np.array([[0, 0, 10, 10], [5, 5, 30, 20]])).tolist()
    [5, 5, 30, 20]
    """
    boxes = np.asarray(boxes).reshape(-1, 4)
    return boxes[int(np.argmax(boxes[:, 2] * boxes[:, 3]))] if len(boxes) else None


def overlap(boxes: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Intersection over union of each of ``boxes`` with ``box``.

    >>> overlap(np.array([[0, 0, 10, 10], [20, 0, 10, 10]]), np.array([5, 0, 10, 10])).round(3).tolist()
    [0.333, 0.0]
    """
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    x0, y0 = np.maximum(boxes[:, 0], box[0]), np.maximum(boxes[:, 1], box[1])
    x1 = np.minimum(boxes[:, 0] + boxes[:, 2], box[0] + box[2])
    y1 = np.minimum(boxes[:, 1] + boxes[:, 3], box[1] + box[3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    return inter / (boxes[:, 2] * boxes[:, 3] + box[2] * box[3] - inter)


def centre_box(frame_shape: tuple[int, ...], *, fraction: float = 0.6) -> np.ndarray:
    """A centred square covering ``fraction`` of the shorter side (no-face fallback)."""
    height, width = frame_shape[:2]
    side = fraction * min(height, width)
    return np.array([(width - side) / 2, (height - side) / 2, side, side])


def _median_box(boxes: list[np.ndarray]) -> np.ndarray:
    """Median of the boxes' centres and sizes: one spurious box cannot drag its neighbours' crops off the face."""
    boxes = np.asarray(boxes, dtype=float)
    cx, cy, w, h = np.median(np.column_stack([boxes[:, :2] + boxes[:, 2:] / 2, boxes[:, 2:]]), axis=0)
    return np.array([cx - w / 2, cy - h / 2, w, h])


def expand_box(box: np.ndarray, *, margin: float) -> np.ndarray:
    """Square box around ``box``'s centre, ``margin`` of its side added on each side.

    >>> expand_box(np.array([10., 20., 40., 20.]), margin=0.25).tolist()
    [0.0, 0.0, 60.0, 60.0]
    """
    x, y, w, h = box
    side = max(w, h) * (1 + 2 * margin)
    return np.array([x + w / 2 - side / 2, y + h / 2 - side / 2, side, side])


class TrackedFrame(NamedTuple):
    frame: np.ndarray  # the frame as given
    box: np.ndarray  # (4,) square crop box: filled, smoothed, with the margin
    detected: bool  # the followed face was found in this frame (else the box is a fallback)
    n_faces: int  # faces the detector found in this frame


def follow_face(frames: Iterable[np.ndarray], detector: FaceDetector, *, margin: float = 0.1, window: int = 3,
                max_wait: int = 64) -> Iterator[TrackedFrame]:
    """Follow one face through ``frames`` (an array or a stream) in constant memory, yielding each frame with its
    crop box once final (``window // 2`` frames later); which face and which fallback box: docs/visual.md."""
    if window < 1 or window % 2 == 0:
        raise ValueError(f"smoothing window must be a positive odd number, got {window}")
    half = window // 2
    held: deque[list] = deque()  # [frame, box or None (no face yet), detected, n_faces], not yet yielded
    past: deque[np.ndarray] = deque(maxlen=half)  # boxes of the last frames yielded, for smoothing
    followed, last, lost = None, None, 0

    def release() -> TrackedFrame:
        frame, box, detected, n_faces = held.popleft()
        smoothed = _median_box([*past, box, *(item[1] for item in islice(held, half))])
        past.append(box)
        return TrackedFrame(frame, expand_box(smoothed, margin=margin), detected, n_faces)

    for frame in frames:
        found = np.asarray(detector.detect(frame), dtype=float).reshape(-1, 4)
        pick = None
        if len(found) and followed is not None:
            overlaps = overlap(found, followed)
            lost = 0 if overlaps.max() > 0 else lost + 1
            pick = found[int(overlaps.argmax())] if lost == 0 else None
        if len(found) and (followed is None or lost >= LOST_AFTER):
            pick, lost = largest_box(found), 0
        if pick is not None:
            followed = last = pick
            for item in held:  # the frames before the first face take its box
                if item[1] is None:
                    item[1] = pick
        held.append([frame, last, pick is not None, len(found)])
        if last is None and len(held) > max_wait:  # no face for a long while: these frames are centred
            for item in held:
                item[1] = centre_box(item[0].shape)
            last = held[-1][1]
        # Boxes are filled front to back, so the frame ``half`` ahead having one means all before it do.
        while len(held) > half and held[half][1] is not None:
            yield release()
    for item in held:  # the end: frames still waiting never saw a face
        if item[1] is None:
            item[1] = centre_box(item[0].shape)
    while held:
        yield release()


def track_faces(frames: np.ndarray, detector: FaceDetector, *, margin: float = 0.1, window: int = 3) -> FaceTrack:
    """Detect, fill, smooth and expand (:func:`follow_face`): one square crop box per frame."""
    if len(frames) == 0:
        raise ValueError("track_faces needs at least one frame")
    tracked = list(follow_face(frames, detector, margin=margin, window=window))
    return FaceTrack(np.array([t.box for t in tracked]), np.array([t.detected for t in tracked]),
                     sum(t.n_faces > 1 for t in tracked))


def crop_box(frame: np.ndarray, box: np.ndarray, *, size: int) -> np.ndarray:
    """Cut ``box`` out of ``frame``, resized to ``size x size``; edge pixels repeated where it leaves the frame."""
    import cv2
    x, y, w, h = (int(round(v)) for v in box)
    w, h = max(w, 1), max(h, 1)
    height, width = frame.shape[:2]
    pad = max(0, -x, -y, x + w - width, y + h - height)
    if pad:
        frame = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x, y = x + pad, y + pad
    patch = frame[y: y + h, x: x + w]
    interpolation = cv2.INTER_AREA if w > size else cv2.INTER_LINEAR
    return cv2.resize(patch, (size, size), interpolation=interpolation)


def crop_faces(frames: np.ndarray, boxes: np.ndarray, *, size: int) -> np.ndarray:
    """``(K, size, size, C)`` uint8 crops, one per frame and box."""
    return np.stack([crop_box(frame, box, size=size) for frame, box in zip(frames, boxes)])
