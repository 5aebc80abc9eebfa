"""Visual checkpoints: ``<name>.safetensors`` (every weight, the encoder's too) + ``<name>.json`` (model spec,
preprocessing, labels); loading needs neither training code nor the FER2013 weights file."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mer_utils.core.atomic_io import read_json
from mer_utils.core.checkpoint_gate import CheckpointError, cached_by_file, opening_checkpoint, refuse_non_finite
from mer_utils.experts import save_with_json
from mer_utils.experts.visual.crops import CropConfig, extract_clip_crops
from mer_utils.experts.visual.models import ModelSpec, build_visual_model

CHECKPOINT_FORMAT = "mer-visual-1"
BEST_NAME = "best_visual_model"
_FIX = "retrain it with `mer visual train` (or pull a checkpoint set again)"


def _paths(path: str | os.PathLike) -> tuple[Path, Path]:
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def save_visual_checkpoint(path: str | os.PathLike, model, *, crop_config, extra: dict | None = None) -> Path:
    """Write ``<path>.safetensors`` and ``<path>.json``; returns the weights path."""
    state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    meta = {"format": CHECKPOINT_FORMAT, "labels": list(model.spec.labels),
            "model": {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(model.spec).items()},
            "crop": dataclasses.asdict(crop_config), **(extra or {})}
    return save_with_json(_paths(path)[0], state, meta, metadata={"format": CHECKPOINT_FORMAT})


def load_visual_model(path: str | os.PathLike):
    """``(model in eval mode, metadata dict)`` from a checkpoint written by :func:`save_visual_checkpoint`."""
    from safetensors.torch import load_file
    weights, meta_path = _paths(path)
    if missing := [p for p in (weights, meta_path) if not p.is_file()]:
        raise FileNotFoundError(f"Visual checkpoint file {missing[0]} not found; train one with `mer visual train` "
                                "(it writes checkpoints/best_visual_model.safetensors and .json).")
    with opening_checkpoint(meta_path, kind="visual", fix=_FIX):
        meta = read_json(meta_path)
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{meta_path}: format {meta.get('format')!r}, expected {CHECKPOINT_FORMAT!r}; it "
                                  f"was not used. Fix: {_FIX}.")
        spec = ModelSpec(**{**meta["model"], "labels": tuple(meta["model"]["labels"])})
        model = build_visual_model(spec, pretrained=False)
    with opening_checkpoint(weights, kind="visual", fix=_FIX):
        state = load_file(str(weights))
        refuse_non_finite(state.items(), path=weights, kind="visual", fix=_FIX)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise CheckpointError(f"{weights}: weights do not fit {spec} (missing {missing[:3]}, unexpected "
                                  f"{unexpected[:3]}); it was not used. Fix: {_FIX}.")
    return model.eval(), meta


class VideoPrediction(NamedTuple):
    probs: np.ndarray  # (K,) in the checkpoint's label order
    frames: np.ndarray  # (K, H, W, 3) sampled RGB frames
    boxes: np.ndarray  # (K, 4) face crop boxes (x, y, w, h)
    detected: np.ndarray  # (K,) bool: face found (else fallback box)
    frame_indices: np.ndarray  # (K,)
    crops: np.ndarray  # (K, S, S, 3) what the model saw


class VisualExpert:
    """A trained visual model with its preprocessing: ``predict_video(video).probs`` in ``labels`` order."""

    def __init__(self, model, meta: dict, *, network=None):
        # ``network``: the same model's ONNX copy (`mer export onnx`: experts/onnx_export.py), run instead.
        self.model, self.meta, self.network = model, meta, network
        self.labels = tuple(meta["labels"])
        self.crop_config = CropConfig(**meta["crop"])

    def predict_crops(self, crops: np.ndarray) -> np.ndarray:
        """``(K, S, S, 3)`` or ``(B, K, S, S, 3)`` uint8 crops -> ``(L,)`` or ``(B, L)`` probabilities."""
        single = crops.ndim == 4
        batch = np.asarray(crops)[None] if single else np.asarray(crops)
        if self.network is not None:
            probs = self.network(batch)
        else:
            import torch
            with torch.inference_mode():
                logits, _ = self.model.classify_features(self.model.fast_frame_features()(torch.as_tensor(batch)))
                probs = logits.softmax(dim=-1).numpy()
        return probs[0] if single else probs

    def predict_video(self, path: str | os.PathLike, *, detector=None) -> VideoPrediction:
        """Sample frames, find the face, crop and classify one video file."""
        clip = extract_clip_crops(path, self.crop_config, detector=detector, keep_frames=True)
        return VideoPrediction(self.predict_crops(clip.crops), clip.frames, clip.boxes, clip.detected,
                               clip.frame_indices, clip.crops)


@cached_by_file
def load_visual_expert(path: str | os.PathLike = f"checkpoints/{BEST_NAME}") -> VisualExpert:
    """A visual checkpoint for prediction on torch (ONNX: :func:`mer_utils.experts.onnx_export.with_listed_copy`)."""
    return VisualExpert(*load_visual_model(path))
