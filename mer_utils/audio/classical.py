"""The offline acoustic backbone: feature functionals + standardised logistic regression.

Runs on any CPU in minutes. The regularisation strength ``C`` is chosen by
validation UA; the model kept is the one fitted on the training subset alone
(no refit on train+val), so the validation predictions handed to fusion stay
out-of-sample. The checkpoint is plain arrays (scaler mean/scale,
coefficients, intercepts) in safetensors with JSON metadata: a multinomial
logistic regression is rebuilt exactly as ``softmax(z @ coef.T + intercept)``,
so loading never unpickles anything.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from mer_utils.atomic_io import atomic_path, write_json
from mer_utils.audio.backbone import ClipSet, class_weights
from mer_utils.audio.features import (FEATURE_SETS, check_feature_set, extract_features,
                                      features_for_files)
from mer_utils.audio.loading import AudioSettings, as_waveforms
from mer_utils.constants import EMOTIONS

CHECKPOINT_KIND = "mer-audio-acoustic"
DEFAULT_C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


@dataclasses.dataclass
class AcousticExpert:
    """A fitted acoustic model: features -> standardise -> linear -> softmax."""

    feature_set: str
    settings: AudioSettings
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # (6, d), rows in ``labels`` order
    intercept: np.ndarray  # (6,)
    labels: tuple[str, ...] = EMOTIONS
    info: dict = dataclasses.field(default_factory=dict)

    def proba_from_features(self, X: np.ndarray) -> np.ndarray:
        z = (np.asarray(X, dtype=np.float64) - self.mean) / self.scale
        return softmax(z @ self.coef.T + self.intercept)

    def predict_proba(self, inputs: Iterable) -> np.ndarray:
        """``(n, 6)`` probabilities for paths, 16 kHz arrays or ``(array, rate)`` tuples."""
        waves = as_waveforms(inputs, settings=self.settings)
        if not waves:
            return np.zeros((0, len(self.labels)))
        X = np.stack([extract_features(w, self.feature_set, sample_rate=self.settings.sample_rate) for w in waves])
        return self.proba_from_features(X)

    def metadata(self) -> dict:
        return {"kind": CHECKPOINT_KIND, "feature_set": self.feature_set, "labels": list(self.labels),
                "audio": self.settings.to_dict(), "licence": FEATURE_SETS[self.feature_set].licence,
                "info": self.info}

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``<path>.safetensors`` (arrays + metadata) and a readable ``<path>.json``."""
        from safetensors.numpy import save_file

        path = Path(path).with_suffix(".safetensors")
        arrays = {"mean": self.mean, "scale": self.scale, "coef": self.coef, "intercept": self.intercept}
        meta = self.metadata()
        with atomic_path(path) as tmp:
            save_file({k: np.ascontiguousarray(v, dtype=np.float64) for k, v in arrays.items()}, str(tmp),
                      metadata={"mer": json.dumps(meta)})
        write_json(path.with_suffix(".json"), meta)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "AcousticExpert":
        from safetensors import safe_open

        path = Path(path)
        with safe_open(str(path), framework="numpy") as handle:
            raw = (handle.metadata() or {}).get("mer")
            arrays = {key: handle.get_tensor(key) for key in handle.keys()}
        meta = json.loads(raw) if raw else {}
        if meta.get("kind") != CHECKPOINT_KIND:
            raise ValueError(f"{path} is not an acoustic SER checkpoint (metadata kind {meta.get('kind')!r})")
        if tuple(meta["labels"]) != EMOTIONS:
            raise ValueError(f"{path}: label order {meta['labels']} differs from {EMOTIONS}")
        return cls(feature_set=meta["feature_set"], settings=AudioSettings.from_dict(meta["audio"]),
                   labels=tuple(meta["labels"]), info=meta.get("info", {}), **arrays)


@dataclasses.dataclass
class AcousticBackbone:
    """``fit``/``predict_proba`` on clips, with features cached on disk."""

    feature_set: str = "librosa"
    settings: AudioSettings = AudioSettings()
    c_grid: Sequence[float] = DEFAULT_C_GRID
    cache_dir: str | os.PathLike | None = None
    n_jobs: int = 1
    progress: bool = True
    seed: int = 0
    expert: AcousticExpert | None = None
    skipped: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        check_feature_set(self.feature_set)

    @property
    def name(self) -> str:
        return self.feature_set

    def features(self, clips: ClipSet) -> tuple[np.ndarray, np.ndarray]:
        X, ok, skipped = features_for_files(clips.paths, feature_set=self.feature_set, settings=self.settings,
                                            cache_dir=self.cache_dir, n_jobs=self.n_jobs, progress=self.progress)
        self.skipped.update({item["path"]: item["reason"] for item in skipped})
        return X, ok

    def fit(self, train: ClipSet, val: ClipSet, *, work_dir: Path | None = None) -> dict:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        X_train, ok_train = self.features(train)
        X_val, ok_val = self.features(val)
        y_train, y_val = train.label_indices()[ok_train], val.label_indices()[ok_val]
        X_train, X_val = X_train[ok_train], X_val[ok_val]
        class_weights(y_train)  # refuses a training subset that lacks a class
        scaler = StandardScaler().fit(X_train)
        scaler.scale_[scaler.scale_ == 0] = 1.0  # constant features carry nothing; avoid 0/0
        z_train, z_val = scaler.transform(X_train), scaler.transform(X_val)
        scores, models = {}, {}
        for c in sorted(self.c_grid):
            model = LogisticRegression(C=c, class_weight="balanced", max_iter=3000, random_state=self.seed)
            models[c] = model.fit(z_train, y_train)
            scores[c] = _ua(y_val, model.predict(z_val))
        # Highest validation UA; ties go to the smaller C (stronger regularisation).
        best = max(sorted(scores), key=lambda c: (scores[c], -c))
        report = {"feature_set": self.feature_set, "classifier": "LogisticRegression(class_weight=balanced)",
                  "selected_on": "val", "val_ua_per_C": {str(c): s for c, s in scores.items()},
                  "C": best, "n_features": int(X_train.shape[1]), "n_train": int(len(y_train)),
                  "n_val": int(len(y_val))}
        self.expert = AcousticExpert(feature_set=self.feature_set, settings=self.settings, mean=scaler.mean_,
                                     scale=scaler.scale_, coef=models[best].coef_,
                                     intercept=models[best].intercept_, info=report)
        return report

    def predict_proba(self, clips: ClipSet) -> np.ndarray:
        if self.expert is None:
            raise RuntimeError("call fit() before predict_proba()")
        X, ok = self.features(clips)
        proba = np.full((len(clips), len(EMOTIONS)), np.nan)
        proba[ok] = self.expert.proba_from_features(X[ok])
        return proba

    def save(self, path: str | os.PathLike) -> Path:
        if self.expert is None:
            raise RuntimeError("call fit() before save()")
        return self.expert.save(path)


def _ua(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(y_true, y_pred))
