"""The offline acoustic backbone: feature functionals + standardised logistic regression.

``feature_set`` may join sets with ``+`` (``egemaps+librosa``, the default:
their vectors are concatenated). With ``speaker_norm`` (default
``"meanstd"``) each speaker's clips are first z-scored with that speaker's own
statistics (:mod:`mer_utils.experts.audio.speaker_norm`; transductive, label-free);
a clip scored alone, as in the demo, uses the training set's global
statistics, which the checkpoint stores.

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

from mer_utils.core.atomic_io import atomic_path, write_json
from mer_utils.experts.audio import DEFAULT_C_GRID
from mer_utils.experts.audio.backbone import ClipSet, class_weights
from mer_utils.experts.audio.features import (FEATURE_SETS, check_feature_set, extract_features,
                                      features_for_files)
from mer_utils.experts.audio.loading import AudioSettings, as_waveforms
from mer_utils.experts.audio.speaker_norm import DEFAULT_MIN_CLIPS, SpeakerNormalizer

CHECKPOINT_KIND = "mer-audio-acoustic"


def feature_parts(feature_set: str) -> list[str]:
    """``"egemaps+librosa"`` -> ``["egemaps", "librosa"]``, each checked."""
    return [check_feature_set(part) for part in feature_set.split("+")]


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
    coef: np.ndarray  # (K, d), rows in ``labels`` order
    intercept: np.ndarray  # (K,)
    labels: tuple[str, ...] = ()
    info: dict = dataclasses.field(default_factory=dict)
    normalizer: SpeakerNormalizer | None = None

    def proba_from_features(self, X: np.ndarray, speakers: Sequence | None = None,
                            reference: tuple | None = None) -> np.ndarray:
        """``speakers=None`` scores each row alone (global statistics when speaker-normalised);
        ``reference`` = (features, speakers) of the clips that define each speaker's statistics."""
        X = np.asarray(X, dtype=np.float64)
        if self.normalizer is not None:
            X = self.normalizer.transform(X, speakers=speakers, reference=reference)
        z = (X - self.mean) / self.scale
        return softmax(z @ self.coef.T + self.intercept)

    def predict_proba(self, inputs: Iterable, speakers: Sequence | None = None) -> np.ndarray:
        """``(n, K)`` probabilities (``labels`` order) for paths, 16 kHz arrays or ``(array, rate)`` tuples."""
        waves = as_waveforms(inputs, settings=self.settings)
        if not waves:
            return np.zeros((0, len(self.labels)))
        rate = self.settings.sample_rate
        X = np.stack([np.concatenate([extract_features(w, part, sample_rate=rate)
                                      for part in feature_parts(self.feature_set)]) for w in waves])
        return self.proba_from_features(X, speakers)

    def metadata(self) -> dict:
        licences = sorted({FEATURE_SETS[part].licence for part in feature_parts(self.feature_set)})
        return {"kind": CHECKPOINT_KIND, "feature_set": self.feature_set, "labels": list(self.labels),
                "audio": self.settings.to_dict(), "licence": "; ".join(licences),
                "speaker_norm": self.normalizer.config() if self.normalizer else None, "info": self.info}

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``<path>.safetensors`` (arrays + metadata) and a readable ``<path>.json``."""
        from safetensors.numpy import save_file

        path = Path(path).with_suffix(".safetensors")
        arrays = {"mean": self.mean, "scale": self.scale, "coef": self.coef, "intercept": self.intercept,
                  **(self.normalizer.arrays() if self.normalizer else {})}
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
        norm = meta.get("speaker_norm")
        normalizer = SpeakerNormalizer.from_arrays(arrays, norm) if norm else None
        arrays = {k: arrays[k] for k in ("mean", "scale", "coef", "intercept")}
        return cls(feature_set=meta["feature_set"], settings=AudioSettings.from_dict(meta["audio"]),
                   labels=tuple(meta["labels"]), info=meta.get("info", {}), normalizer=normalizer, **arrays)


@dataclasses.dataclass
class AcousticBackbone:
    """``fit``/``predict_proba`` on clips, with features cached on disk."""

    feature_set: str = "egemaps+librosa"
    settings: AudioSettings = AudioSettings()
    speaker_norm: str | None = "meanstd"  # None: global standardisation only
    min_clips: int = DEFAULT_MIN_CLIPS  # speakers with fewer clips use the global statistics
    # Every usable clip of the corpus (labels unused): each speaker's statistics come from all of
    # that speaker's clips, so train, validation and test are normalised alike under any split.
    speaker_pool: ClipSet | None = None
    labels: tuple = ()  # the corpus's label set; taken from the training clips when empty
    c_grid: Sequence[float] = DEFAULT_C_GRID
    cache_dir: str | os.PathLike | None = None
    n_jobs: int = 1
    progress: bool = True
    seed: int = 0
    expert: AcousticExpert | None = None
    skipped: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        feature_parts(self.feature_set)

    @property
    def name(self) -> str:
        return self.feature_set

    def features(self, clips: ClipSet) -> tuple[np.ndarray, np.ndarray]:
        blocks, ok = [], np.ones(len(clips), dtype=bool)
        for part in feature_parts(self.feature_set):
            X, ok_part, skipped = features_for_files(clips.paths, feature_set=part, settings=self.settings,
                                                     cache_dir=self.cache_dir, n_jobs=self.n_jobs,
                                                     progress=self.progress)
            self.skipped.update({item["path"]: item["reason"] for item in skipped})
            blocks.append(X)
            ok &= ok_part
        return np.hstack(blocks), ok

    def _speakers(self, clips: ClipSet, ok: np.ndarray) -> np.ndarray | None:
        return None if clips.speakers is None else np.asarray(clips.speakers)[ok]

    def _reference(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Features and speakers of the pool (features come from the cache after the first call)."""
        if self.speaker_pool is None or self.speaker_pool.speakers is None:
            return None
        X, ok = self.features(self.speaker_pool)
        return X[ok].astype(np.float64), self._speakers(self.speaker_pool, ok)

    def fit(self, train: ClipSet, val: ClipSet, *, work_dir: Path | None = None) -> dict:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        X_train, ok_train = self.features(train)
        X_val, ok_val = self.features(val)
        y_train, y_val = train.label_indices()[ok_train], val.label_indices()[ok_val]
        X_train, X_val = X_train[ok_train].astype(np.float64), X_val[ok_val].astype(np.float64)
        self.labels = train.label_set
        class_weights(y_train, self.labels)  # refuses a training subset that lacks a class
        normalizer = None
        if self.speaker_norm:
            # Statistics stay within each subset and speaker; labels are never read.
            normalizer = SpeakerNormalizer(mode=self.speaker_norm, min_clips=self.min_clips).fit(X_train)
            reference = self._reference()
            X_train = normalizer.transform(X_train, speakers=self._speakers(train, ok_train), reference=reference)
            X_val = normalizer.transform(X_val, speakers=self._speakers(val, ok_val), reference=reference)
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
                  "speaker_norm": normalizer.config() if normalizer else None,
                  "C": best, "n_features": int(X_train.shape[1]), "n_train": int(len(y_train)),
                  "n_val": int(len(y_val))}
        coef, intercept = models[best].coef_, models[best].intercept_
        if coef.shape[0] == 1:  # two classes: scikit-learn keeps one row; softmax over [0, w.z + b] is the same model
            coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.r_[0.0, intercept]
        self.expert = AcousticExpert(feature_set=self.feature_set, settings=self.settings, mean=scaler.mean_,
                                     scale=scaler.scale_, coef=coef, intercept=intercept, labels=self.labels, info=report,
                                     normalizer=normalizer)
        return report

    def predict_proba(self, clips: ClipSet) -> np.ndarray:
        if self.expert is None:
            raise RuntimeError("call fit() before predict_proba()")
        X, ok = self.features(clips)
        proba = np.full((len(clips), len(self.expert.labels)), np.nan)
        proba[ok] = self.expert.proba_from_features(X[ok], self._speakers(clips, ok), reference=self._reference())
        return proba

    def save(self, path: str | os.PathLike) -> Path:
        if self.expert is None:
            raise RuntimeError("call fit() before save()")
        return self.expert.save(path)


def _ua(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(y_true, y_pred))
