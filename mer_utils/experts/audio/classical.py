"""The offline acoustic backbone: feature functionals + linear models fitted as a :class:`Recipe`; a backbone
name spells its recipe (``a+b`` stacks sets, ``a,b`` averages one model per item). How ``--adapt`` scores, refit
and the single-clip fallback: docs/audio.md. Checkpoints are safetensors arrays + JSON: loading unpickles nothing."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from mer_utils.core.adaptation import DEFAULT_ADAPTATION, check_adaptation
from mer_utils.core.checkpoint_gate import CheckpointError
from mer_utils.core.labels import class_weights
from mer_utils.experts import save_with_json
from mer_utils.experts.audio import DEFAULT_BACKBONE, DEFAULT_C_GRID
from mer_utils.experts.audio.features import (FEATURE_SETS, check_feature_set, extract_features, feature_blocks,
                                              feature_set_fingerprint)
from mer_utils.experts.audio.loading import AudioSettings, ClipSet, as_waveforms
from mer_utils.experts.audio.variants import (Recipe, fit_recipe_held_out, fitted_from_arrays, fitted_to_arrays,
                                              predict_recipe, predict_with_fallback, without_speaker_statistics)

CHECKPOINT_KIND = "mer-audio-acoustic-2"


def recipe_for(backbone: str, *, adapt: str = DEFAULT_ADAPTATION, c_grid: Sequence[float] = DEFAULT_C_GRID,
               refit: bool = True) -> Recipe:
    """The recipe a backbone name spells, scored as ``adapt`` says.

    >>> recipe_for("egemaps,librosa").name
    'avg(egemaps,librosa) logreg refit'
    >>> recipe_for("egemaps+librosa", adapt="speaker", refit=False).name
    'egemaps+librosa logreg speakernorm-meanstd'
    >>> recipe_for("ge2e", adapt="balanced").name
    'ge2e logreg speakernorm-meanstd sentencenorm refit balance'
    """
    for part in backbone.replace(",", "+").split("+"):
        check_feature_set(part)
    items = tuple(backbone.split(","))
    combine = "average" if len(items) > 1 else "concat"
    feature_sets = items if combine == "average" else tuple(items[0].split("+"))
    adapt = check_adaptation(adapt)  # speaker: z-score per speaker; balanced: also per sentence, and prior matching
    return Recipe(feature_sets=feature_sets, combine=combine, c_grid=tuple(float(c) for c in c_grid), refit=refit,
                  speaker_norm=None if adapt == "none" else "meanstd", sentence_norm=adapt == "balanced",
                  balance=adapt == "balanced")


@dataclasses.dataclass
class AcousticExpert:
    """A fitted acoustic model (and its single-clip fallback): features -> probabilities over ``labels``."""

    feature_set: str  # the backbone name
    settings: AudioSettings
    models: list
    recipe: Recipe
    fallback: list | None = None  # models of the recipe without speaker statistics
    labels: tuple[str, ...] = ()
    info: dict = dataclasses.field(default_factory=dict)
    encoder: object = None  # the GE2E network features are computed with: an ONNX copy's, else torch (None)

    @property
    def fallback_recipe(self) -> Recipe:
        return without_speaker_statistics(self.recipe)

    def proba_from_features(self, X: dict, speakers: Sequence | None = None,
                            reference: tuple | None = None, sentences: Sequence | None = None) -> np.ndarray:
        """``X``: ``{feature set: (n, d)}``; ``speakers=None`` scores each row alone (the fallback); ``reference``
        and ``sentences``: see :func:`~mer_utils.experts.audio.variants.predict_recipe`."""
        if self.fallback is None or self.recipe.speaker_norm is None:
            return predict_recipe(self.models, self.recipe, X, speakers, reference, sentences)
        return predict_with_fallback(self.models, self.recipe, self.fallback, self.fallback_recipe, X, speakers,
                                     reference, sentences)

    def predict_proba(self, inputs: Iterable, speakers: Sequence | None = None,
                      sentences: Sequence | None = None) -> np.ndarray:
        """``(n, K)`` probabilities for paths, 16 kHz arrays or ``(array, rate)`` tuples."""
        waves = as_waveforms(inputs, settings=self.settings)
        if not waves:
            return np.zeros((0, len(self.labels)))
        rate = self.settings.sample_rate
        features = {name: np.stack([extract_features(w, name, sample_rate=rate, encoder=self.encoder) for w in waves])
                    for name in self.recipe.base_feature_sets}
        return self.proba_from_features(features, speakers, sentences=sentences)

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``<path>.safetensors`` (arrays + metadata) and a readable ``<path>.json``."""
        arrays, model_meta = fitted_to_arrays(self.models, self.recipe)
        sets = self.recipe.base_feature_sets
        encoders = {part: feature_set_fingerprint(part) for part in sets}
        meta = {"kind": CHECKPOINT_KIND, "feature_set": self.feature_set, "labels": list(self.labels),
                "audio": self.settings.to_dict(), "licence": "; ".join(sorted({FEATURE_SETS[p] for p in sets})),
                "info": self.info, "encoders": {k: v for k, v in encoders.items() if v is not None},
                "models": model_meta}
        if self.fallback is not None:
            fallback_arrays, meta["fallback"] = fitted_to_arrays(self.fallback, self.fallback_recipe)
            arrays.update({f"fallback.{k}": v for k, v in fallback_arrays.items()})
        return save_with_json(path, arrays, meta, metadata={"mer": json.dumps(meta)})

    @classmethod
    def load(cls, path: str | os.PathLike) -> "AcousticExpert":
        from safetensors import safe_open

        path = Path(path)
        with safe_open(str(path), framework="numpy") as handle:
            raw = (handle.metadata() or {}).get("mer")
            arrays = {key: handle.get_tensor(key) for key in handle.keys()}
        meta = json.loads(raw) if raw else {}
        if meta.get("kind") != CHECKPOINT_KIND:
            raise ValueError(f"{path} is not an acoustic SER checkpoint of this toolkit version (metadata kind "
                             f"{meta.get('kind')!r}, expected {CHECKPOINT_KIND!r}); retrain it with `mer audio train`")
        _check_encoders(path, meta.get("encoders", {}))
        models, recipe = fitted_from_arrays(arrays, meta["models"])
        fallback = fitted_from_arrays(arrays, meta["fallback"], "fallback.")[0] if meta.get("fallback") else None
        return cls(feature_set=meta["feature_set"], settings=AudioSettings.from_dict(meta["audio"]), models=models,
                   recipe=recipe, fallback=fallback, labels=tuple(meta["labels"]), info=meta.get("info", {}))


def _check_encoders(path: Path, recorded: dict) -> None:
    """Refuse pretrained feature extractors other than the fitted ones (silently wrong probabilities otherwise)."""
    for part, expected in recorded.items():
        wanted = f"{expected.get('package')}=={expected.get('version')}"
        try:
            installed = feature_set_fingerprint(part)
        except ImportError as err:
            raise CheckpointError(f"{path} needs the {part!r} feature set: {err}") from None
        if installed is None or installed.get("weights_sha256") != expected.get("weights_sha256"):
            raise CheckpointError(
                f"{path} was fitted on {part!r} features of {wanted} (weights sha256 "
                f"{str(expected.get('weights_sha256'))[:12]}), but the installed weights differ "
                f"({(installed or {}).get('package')} {(installed or {}).get('version')}); it was not used. "
                f"Fix: pip install {wanted}, or retrain it with `mer audio train`.")
        # Same weights, other statistics (a checkpoint from before the set gained them: no record).
        fitted_on = expected.get("statistics", "an earlier definition")
        if installed.get("statistics") is not None and fitted_on != installed["statistics"]:
            raise CheckpointError(
                f"{path} was fitted on {part!r} features computed as {fitted_on!r}; this version of the toolkit "
                f"computes {installed['statistics']!r} (another length); it was not used. Fix: retrain it with "
                f"`mer audio train`.")


@dataclasses.dataclass
class AcousticBackbone:
    """``fit``/``predict_proba`` on clips, with features cached on disk."""

    feature_set: str = DEFAULT_BACKBONE
    settings: AudioSettings = AudioSettings()
    adapt: str = DEFAULT_ADAPTATION  # how test clips are scored (mer_utils.core.adaptation)
    refit: bool = True  # refit the chosen C on train+val for the test predictions
    # Every usable clip of the corpus (labels unused): each speaker's statistics come from all of
    # that speaker's clips, so train, validation and test are normalised alike under any split.
    speaker_pool: ClipSet | None = None
    labels: tuple = ()  # the corpus's label set; taken from the training clips
    c_grid: Sequence[float] = DEFAULT_C_GRID
    cache_dir: str | os.PathLike | None = None
    n_jobs: int = 1
    progress: bool = True
    seed: int = 0
    expert: AcousticExpert | None = None
    held_out: AcousticExpert | None = None  # fitted on train alone: the out-of-sample validation predictions
    skipped: dict = dataclasses.field(default_factory=dict)
    _pool: tuple | None = dataclasses.field(default=None, repr=False)  # (pool clip set, its reference)

    def __post_init__(self):
        self.recipe = recipe_for(self.feature_set, adapt=self.adapt, c_grid=self.c_grid, refit=self.refit)

    @property
    def uses_speaker_pool(self) -> bool:
        return self.recipe.speaker_norm is not None

    def _data(self, clips: ClipSet, reference) -> tuple[dict, np.ndarray]:
        X, ok, skipped = feature_blocks(clips.paths, self.recipe.base_feature_sets, settings=self.settings,
                                        cache_dir=self.cache_dir, n_jobs=self.n_jobs, progress=self.progress)
        self.skipped.update({item["path"]: item["reason"] for item in skipped})
        data = {"X": {k: v[ok] for k, v in X.items()},
                "speakers": None if clips.speakers is None else np.asarray(clips.speakers)[ok], "reference": reference,
                "sentences": None if clips.sentences is None else np.asarray(clips.sentences, dtype=object)[ok]}
        if clips.labels is not None:
            data["y"] = clips.label_indices()[ok]
        return data, ok

    def _reference(self) -> tuple[dict, np.ndarray] | None:
        """Features and speakers of the pool, read once."""
        if self.speaker_pool is None or self.speaker_pool.speakers is None or not self.uses_speaker_pool:
            return None
        if self._pool is None or self._pool[0] is not self.speaker_pool:
            pool, _ = self._data(self.speaker_pool, None)
            sentences = () if pool["sentences"] is None else (pool["sentences"],)
            self._pool = (self.speaker_pool, (pool["X"], pool["speakers"], *sentences))
        return self._pool[1]

    def fit(self, train: ClipSet, val: ClipSet, *, work_dir: Path | None = None) -> dict:
        self.labels = train.label_set
        reference = self._reference()
        train_data, _ = self._data(train, reference)
        val_data, _ = self._data(val, reference)
        class_weights(train_data["y"], self.labels)  # refuses a training subset that lacks a class
        models, held_out, report = fit_recipe_held_out(self.recipe, train_data, val_data, seed=self.seed,
                                                       labels=self.labels)
        fallback = None
        if self.uses_speaker_pool:
            fallback_recipe = without_speaker_statistics(self.recipe)
            fallback, _, fallback_report = fit_recipe_held_out(fallback_recipe, train_data, val_data,
                                                               seed=self.seed, labels=self.labels)
            report["fallback"] = {"recipe": fallback_recipe.name, "blocks": fallback_report["blocks"]}
        report = {"feature_set": self.feature_set, "classifier": "LogisticRegression(class_weight=balanced)",
                  **report, "adaptation": self.adapt, "min_clips": self.recipe.min_clips, "refit": self.refit,
                  "C": report["blocks"][0]["C"] if len(report["blocks"]) == 1 else [b["C"] for b in report["blocks"]],
                  "n_features": int(sum(b["n_features"] for b in report["blocks"])),
                  "n_train": int(len(train_data["y"])), "n_val": int(len(val_data["y"]))}
        common = dict(feature_set=self.feature_set, settings=self.settings, recipe=self.recipe, fallback=fallback,
                      labels=self.labels, info=report)
        self.expert = AcousticExpert(models=models, **common)
        self.held_out = AcousticExpert(models=held_out, **common)
        return report

    def predict_proba(self, clips: ClipSet, *, subset: str = "test") -> np.ndarray:
        """``(n, K)`` probabilities, NaN rows for undecodable clips; ``subset="val"``: the train-only model."""
        if self.expert is None:
            raise RuntimeError("call fit() before predict_proba()")
        expert = self.held_out if subset == "val" else self.expert
        data, ok = self._data(clips, self._reference())
        proba = np.full((len(clips), len(self.labels)), np.nan)
        proba[ok] = expert.proba_from_features(data["X"], data["speakers"], reference=data["reference"],
                                               sentences=data["sentences"])
        return proba

    def save(self, path: str | os.PathLike) -> Path:
        if self.expert is None:
            raise RuntimeError("call fit() before save()")
        return self.expert.save(path)
