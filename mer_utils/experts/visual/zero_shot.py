"""Zero-shot baseline: the FER2013 model's frame probabilities, averaged over the K crops, mapped onto a corpus's
label set (classes it lacks dropped, the rest renormalised): the floor a trained visual expert must beat."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from mer_utils.core.evaluation import save_run_outputs
from mer_utils.core.run_lock import releasing_run_locks
from mer_utils.core.runs import corpus_key, new_run_dir, set_seed
from mer_utils.experts.runner import RunResult
from mer_utils.experts.visual.crops import summarize_report
from mer_utils.experts.visual.fer2013 import FER2013_CLASSES, fer2013_weights, fer_input_array, load_fer2013_network


def map_fer2013(fer_probs: np.ndarray, labels: tuple[str, ...]) -> np.ndarray:
    """``(..., 7)`` FER2013 probabilities -> ``(..., len(labels))`` in ``labels`` order, renormalised.

    >>> p = np.array([0.1, 0.0, 0.1, 0.4, 0.1, 0.2, 0.1])
    >>> map_fer2013(p, ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")).round(3).tolist()  # ANG DIS FEA HAP NEU SAD
    [0.125, 0.0, 0.125, 0.5, 0.125, 0.125]
    """
    fer_probs = np.asarray(fer_probs, dtype=float)
    if fer_probs.shape[-1] != len(FER2013_CLASSES):
        raise ValueError(f"expected {len(FER2013_CLASSES)} FER2013 probabilities {FER2013_CLASSES}, "
                         f"got shape {fer_probs.shape}")
    code_to_class = {name[:3].upper(): name for name in FER2013_CLASSES}  # the corpus readers' codes: ANG, DIS ...
    if unknown := [label for label in labels if label not in code_to_class]:
        raise ValueError(f"the FER2013 face model knows {sorted(code_to_class)}; labels {unknown} have no "
                         "counterpart, so it cannot answer for this label set zero-shot (train a visual expert)")
    mapped = fer_probs[..., [FER2013_CLASSES.index(code_to_class[label]) for label in labels]]
    total = mapped.sum(axis=-1, keepdims=True)
    # A frame that is pure "surprise" (when the set lacks it) carries no information: uniform.
    return np.where(total > 0, mapped / np.where(total > 0, total, 1), 1.0 / len(labels))


def zero_shot_clip_probs(crops: np.ndarray, *, labels: tuple[str, ...], network=None,
                         batch_size: int = 64) -> np.ndarray:
    """``(N, K, S, S, 3)`` uint8 crops -> ``(N, len(labels))``; ``network``: :func:`load_fer2013_network`'s."""
    network = network or load_fer2013_network(fer2013_weights())
    crops = np.asarray(crops)
    n, k = crops.shape[:2]
    frames = crops.reshape(n * k, *crops.shape[2:])
    probs = [network(fer_input_array(frames[start: start + batch_size]))
             for start in range(0, len(frames), batch_size)]
    return map_fer2013(np.concatenate(probs).reshape(n, k, -1).mean(axis=1), labels)


@releasing_run_locks
def run_zero_shot(config=None, **overrides):
    """Zero-shot predictions of every fold's ``val`` and ``test`` clips in a run folder
    ``outputs/visual/<protocol>_fer2013-zeroshot_seed<seed>/`` (no ``latest_`` pointer: that is the trained one's)."""
    from mer_utils.protocols.splits import fold_subsets
    from mer_utils.experts.visual.config import VisualTrainConfig
    from mer_utils.experts.visual.train import STAGE, load_clip_data, prepare_visual_protocol
    config = dataclasses.replace(config or VisualTrainConfig(), **overrides)
    set_seed(config.seed)
    network = load_fer2013_network(fer2013_weights(config.checkpoints))
    prepared = prepare_visual_protocol(config)
    key = corpus_key(prepared.corpus.name, prepared.manifest)
    run_dir = new_run_dir(config.outputs, STAGE, f"{config.protocol}_fer2013-zeroshot_seed{config.seed}", config,
                          corpus_key=key, settings={**config.result_settings(), "zero_shot": True})
    clips = load_clip_data(prepared, config)
    proba = zero_shot_clip_probs(clips.crops, labels=prepared.labels, network=network)
    frames = []
    for fold in sorted(prepared.split["fold"].unique()):
        for subset, ids in fold_subsets(prepared.split, int(fold)).items():
            rows = clips.rows(ids)
            if subset != "train" and len(rows):
                frames.append(clips.predictions(prepared, rows, proba[rows], fold=int(fold), subset=subset))
    info = {"modality": "visual", "protocol": config.protocol, "split": prepared.split_name,
            "backbone": "fer2013-zeroshot", "mode": "zero-shot", "n_frames": config.n_frames,
            "corpus": prepared.corpus.name, "corpus_key": key, "synthetic": prepared.corpus.synthetic,
            "faces": summarize_report(clips.report), "n_skipped": len(clips.skipped),
            "data_root": str(prepared.data_root)}
    metrics = save_run_outputs(run_dir, pd.concat(frames, ignore_index=True), info=info)
    return RunResult(run_dir, metrics, None)
