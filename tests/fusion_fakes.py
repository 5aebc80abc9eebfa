"""Two fake experts with complementary strengths, written as real run folders.

The audio expert separates ANG, FEA and SAD well and confuses the rest; the
visual expert the opposite, as prosody and facial expression do on CREMA-D.
Fusion tests and report tests run the real code on these folders.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from mer_utils.core import runs
from mer_utils.data.cremad_vocabulary import EMOTIONS, SENTENCES
from mer_utils.core.evaluation import save_run_outputs
from mer_utils.data.manifest import MANIFEST_COLUMNS
from mer_utils.core.predictions import make_predictions_frame

STRONG = {"audio": ("ANG", "FEA", "SAD"), "visual": ("DIS", "HAP", "NEU")}
INTENSITY_CODES = ("LO", "MD", "HI", "XX")


def clip_ids(n_per_class: int, *, first_actor: int = 1001) -> list[str]:
    """Distinct CREMA-D-style clip ids, ``n_per_class`` per emotion."""
    out = []
    for emotion in EMOTIONS:
        # Actors vary fastest, so even a few clips span both sexes and several ages.
        combos = itertools.product(sorted(SENTENCES), INTENSITY_CODES, range(first_actor, first_actor + 91))
        out += [f"{a}_{s}_{emotion}_{i}" for s, i, a in itertools.islice(combos, n_per_class)]
    return out


def expert_proba(y: np.ndarray, modality: str, rng: np.random.Generator, *, strong=2.6, weak=0.6) -> np.ndarray:
    strength = np.array([strong if e in STRONG[modality] else weak for e in EMOTIONS])
    index = np.array([EMOTIONS.index(label) for label in y])
    logits = rng.normal(0.0, 1.0, (len(y), len(EMOTIONS)))
    logits[np.arange(len(y)), index] += strength[index]
    # An over-confident expert (as fine-tuned networks are): calibration should cool it.
    scale = 3.0 if modality == "audio" else 1.0
    proba = np.exp(scale * logits)
    return proba / proba.sum(axis=1, keepdims=True)


def expert_frames(
    *, n_per_class: int = 40, n_folds: int = 1, split: str = "random_seed0", seed: int = 0
) -> dict[str, pd.DataFrame]:
    """``{"audio": frame, "visual": frame}``: val and test rows of every fold."""
    rng = np.random.default_rng(seed)
    ids = clip_ids(2 * n_per_class * n_folds)
    y_all = np.array([c.split("_")[2] for c in ids])
    order = rng.permutation(len(ids))
    chunks = np.array_split(order, 2 * n_folds)
    frames = {"audio": [], "visual": []}
    for fold in range(n_folds):
        for subset, chunk in zip(("val", "test"), chunks[2 * fold: 2 * fold + 2]):
            chunk = np.sort(chunk)
            for modality in frames:
                frames[modality].append(make_predictions_frame(
                    clip_ids=[ids[i] for i in chunk], y_true=y_all[chunk],
                    proba=expert_proba(y_all[chunk], modality, rng), labels=EMOTIONS, split=split, fold=fold,
                    subset=subset, modality=modality))
    return {m: pd.concat(parts, ignore_index=True) for m, parts in frames.items()}


def fake_manifest(ids: list[str]) -> pd.DataFrame:
    """A manifest with every column the report joins on, for the given clips."""
    parts = pd.Series(ids).str.split("_", expand=True)
    actor = parts[0].astype(int)
    frame = pd.DataFrame({
        "clip_id": ids, "actor_id": actor, "sentence": parts[1], "sentence_text": parts[1].map(SENTENCES),
        "emotion": parts[2], "intensity": parts[3],
        "sex": np.where(actor % 2 == 0, "Female", "Male"), "age": 20 + (actor % 50),
        "race": "Caucasian", "ethnicity": "Not Hispanic",
        "audio_path": "AudioWAV/" + pd.Series(ids) + ".wav", "video_path": "VideoFlash/" + pd.Series(ids) + ".flv",
        "audio_status": "ok", "video_status": "ok", "duration_s": 2.0,
    })
    return frame.loc[:, list(MANIFEST_COLUMNS)]


def write_expert_run(
    outputs: Path, modality: str, frame: pd.DataFrame, *, protocol: str = "random", backbone: str | None = None,
    config_extra: dict | None = None,
) -> Path:
    """Write ``frame`` as a finished expert run and point ``latest_<protocol>`` at it."""
    backbone = backbone or {"audio": "egemaps", "visual": "hog"}[modality]
    split = str(frame["split"].iloc[0])
    config = {"protocol": protocol, "backbone": backbone, "seed": 0, **(config_extra or {})}
    run_dir = runs.new_run_dir(outputs, modality, f"{protocol}_{backbone}_seed0", config)
    save_run_outputs(run_dir, frame, info={"modality": modality, "protocol": protocol, "split": split,
                                           "backbone": backbone})
    runs.point_latest(outputs, modality, protocol, run_dir)
    return run_dir


def write_expert_pair(outputs: Path, *, protocol: str = "random", n_folds: int = 1, seed: int = 0,
                      split: str | None = None, n_per_class: int = 40, config_extra: dict | None = None):
    """Both experts of one protocol as run folders; returns ``(audio_dir, visual_dir)``."""
    frames = expert_frames(n_per_class=n_per_class, n_folds=n_folds, split=split or f"{protocol}_seed0",
                           seed=seed)
    return tuple(write_expert_run(outputs, m, frames[m], protocol=protocol, config_extra=config_extra)
                 for m in ("audio", "visual"))
