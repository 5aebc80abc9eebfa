"""Zero-shot baseline: the FER2013 model's 7 classes mapped onto CREMA-D's 6.

FER2013 has no training on CREMA-D; its frame probabilities are averaged over
the K crops, "surprise" (absent from CREMA-D) is dropped and the remaining
six are renormalised. It is the floor a trained visual expert must beat.
"""

from __future__ import annotations

import numpy as np

from mer_utils.data.cremad_vocabulary import EMOTIONS
from mer_utils.experts.visual.fer2013 import FER2013_CLASSES

FER2013_TO_CREMAD = {"angry": "ANG", "disgust": "DIS", "fear": "FEA", "happy": "HAP", "sad": "SAD",
                     "neutral": "NEU"}  # "surprise" has no CREMA-D counterpart


def map_fer2013_to_cremad(fer_probs: np.ndarray) -> np.ndarray:
    """``(..., 7)`` FER2013 probabilities -> ``(..., 6)`` in :data:`EMOTIONS` order, renormalised.

    >>> p = np.array([0.1, 0.0, 0.1, 0.4, 0.1, 0.2, 0.1])
    >>> map_fer2013_to_cremad(p).round(3).tolist()  # ANG DIS FEA HAP NEU SAD
    [0.125, 0.0, 0.125, 0.5, 0.125, 0.125]
    """
    fer_probs = np.asarray(fer_probs, dtype=float)
    if fer_probs.shape[-1] != len(FER2013_CLASSES):
        raise ValueError(f"expected {len(FER2013_CLASSES)} FER2013 probabilities {FER2013_CLASSES}, "
                         f"got shape {fer_probs.shape}")
    columns = [FER2013_CLASSES.index(next(k for k, v in FER2013_TO_CREMAD.items() if v == e)) for e in EMOTIONS]
    mapped = fer_probs[..., columns]
    total = mapped.sum(axis=-1, keepdims=True)
    # A frame that is pure "surprise" carries no information on the six: uniform.
    return np.where(total > 0, mapped / np.where(total > 0, total, 1), 1.0 / len(EMOTIONS))


def zero_shot_clip_probs(crops: np.ndarray, *, model=None, batch_size: int = 64) -> np.ndarray:
    """``(N, K, S, S, 3)`` uint8 crops -> ``(N, 6)`` zero-shot probabilities.

    Frame probabilities are averaged over the K frames before mapping.
    """
    import torch

    from mer_utils.experts.visual.fer2013 import load_fer2013_model, to_fer_input

    net = (model or load_fer2013_model()).fused_copy()  # same outputs, faster on CPU
    crops = np.asarray(crops)
    n, k = crops.shape[:2]
    frames = crops.reshape(n * k, *crops.shape[2:])
    probs = []
    with torch.inference_mode():
        for start in range(0, len(frames), batch_size):
            x = to_fer_input(frames[start: start + batch_size]).contiguous(memory_format=torch.channels_last)
            probs.append(net(x).softmax(dim=1).numpy())
    return map_fer2013_to_cremad(np.concatenate(probs).reshape(n, k, -1).mean(axis=1))


def run_zero_shot(config=None, **overrides):
    """Zero-shot predictions for every fold's ``val`` and ``test`` clips, as a run folder.

    The run is ``outputs/visual/<protocol>_fer2013-zeroshot_seed<seed>/`` with
    the same files as a trained run (backbone ``fer2013-zeroshot``), so the
    report lists it beside the trained experts; ``latest_<protocol>.json``
    is left to the trained expert.
    """
    import dataclasses

    import pandas as pd

    from mer_utils.experts.evaluation import save_run_outputs
    from mer_utils.core.predictions import make_predictions_frame
    from mer_utils.core.runs import new_run_dir, set_seed
    from mer_utils.protocols.splits import fold_subsets
    from mer_utils.experts.visual.config import VisualTrainConfig
    from mer_utils.experts.visual.crops import summarize_report
    from mer_utils.experts.visual.fer2013 import ensure_fer2013_weights, load_fer2013_model
    from mer_utils.experts.visual.train import STAGE, VisualRunResult, load_clip_data
    from mer_utils.protocols.prepare import prepare_protocol

    config = dataclasses.replace(config or VisualTrainConfig(), **overrides)
    set_seed(config.seed)
    model = load_fer2013_model(ensure_fer2013_weights(config.checkpoints))
    prepared = prepare_protocol(config.data_root, config.protocol, seed=config.seed, outputs=config.outputs,
                                published_dir=config.published_dir, metadata_dir=config.metadata_dir,
                                n_folds=config.folds, progress=config.progress)
    run_dir = new_run_dir(config.outputs, STAGE, f"{config.protocol}_fer2013-zeroshot_seed{config.seed}", config)
    clips = load_clip_data(prepared, config)
    proba = zero_shot_clip_probs(clips.crops, model=model)
    frames = []
    for fold in sorted(prepared.split["fold"].unique()):
        for subset, ids in fold_subsets(prepared.split, int(fold)).items():
            rows = [clips.row[c] for c in ids if c in clips.row]
            if subset == "train" or not rows:
                continue
            frames.append(make_predictions_frame(
                clip_ids=[clips.clip_ids[i] for i in rows], y_true=[EMOTIONS[clips.labels[i]] for i in rows],
                proba=proba[rows], split=prepared.split_name, fold=int(fold), subset=subset, modality="visual"))
    info = {"modality": "visual", "protocol": config.protocol, "split": prepared.split_name,
            "backbone": "fer2013-zeroshot", "mode": "zero-shot", "n_frames": config.n_frames,
            "faces": summarize_report(clips.report), "n_skipped": len(clips.skipped),
            "data_root": str(prepared.data_root)}
    metrics = save_run_outputs(run_dir, pd.concat(frames, ignore_index=True), info=info)
    return VisualRunResult(run_dir, metrics, None)
