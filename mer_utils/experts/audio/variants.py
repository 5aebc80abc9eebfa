"""The one offline SER model on precomputed features (:class:`Recipe`), how it scores a clip (speaker
normalisation: each speaker z-scored with its unlabelled clips) and its plain-array form (no pickle)."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from typing import Sequence

import numpy as np
from scipy.special import softmax

from mer_utils.core.config import DictIO
from mer_utils.core.metrics import ua_score
from mer_utils.experts.audio import DEFAULT_C_GRID

SPEAKER_NORM_MODES = ("meanstd",)  # "mean" and "rank" were measured and dropped (docs/ravdess.md)
DEFAULT_MIN_CLIPS = 8
# A (speaker, sentence) group needs this many clips for statistics of its own: CREMA-D gives each
# actor one clip of each of its six emotions per sentence (sentence normalisation, below).
DEFAULT_MIN_GROUP_CLIPS = 6


def _safe_scale(std: np.ndarray) -> np.ndarray:
    # A feature constant for a speaker (or the corpus) carries nothing: divide by 1, not 0.
    std = np.asarray(std, dtype=np.float64).copy()
    std[~np.isfinite(std) | (std <= 1e-12)] = 1.0
    return std


def speaker_statistics(X: np.ndarray, speakers: Sequence) -> dict:
    """``{speaker: (n_clips, mean, std)}`` of the rows of ``X`` per speaker.

    >>> stats = speaker_statistics(np.array([[1.0], [3.0], [10.0]]), ["a", "a", "b"])
    >>> stats["a"][0], stats["a"][1].tolist(), stats["b"][2].tolist()
    (2, [2.0], [1.0])
    """
    X = np.asarray(X, dtype=np.float64)
    speakers = np.asarray(speakers)
    if X.ndim != 2 or len(speakers) != len(X):
        raise ValueError(f"X must be (n, d) with one speaker per row; got X {X.shape} and {len(speakers)} speakers")
    stats = {}
    for speaker in np.unique(speakers):
        rows = X[speakers == speaker]
        stats[speaker] = (len(rows), rows.mean(axis=0), _safe_scale(rows.std(axis=0)))
    return stats


@dataclasses.dataclass
class SpeakerNormalizer:
    """Per-speaker z-scoring; speakers with fewer than ``min_clips`` clips get the global (training) statistics.

    >>> X = np.array([[0.0], [2.0], [10.0], [14.0]])
    >>> norm = SpeakerNormalizer(min_clips=2).fit(X)
    >>> norm.transform(X, speakers=[1, 1, 2, 2]).ravel().tolist()
    [-1.0, 1.0, -1.0, 1.0]
    """

    min_clips: int = DEFAULT_MIN_CLIPS  # a mean and spread of two or three clips would be noise
    global_mean: np.ndarray | None = None  # set by fit() from the training clips; stored in checkpoints
    global_scale: np.ndarray | None = None

    def __post_init__(self):
        if self.min_clips < 2:
            raise ValueError(f"min_clips must be >= 2 (a spread needs two clips), got {self.min_clips}")

    def fit(self, X: np.ndarray) -> "SpeakerNormalizer":
        X = np.asarray(X, dtype=np.float64)
        self.global_mean, self.global_scale = X.mean(axis=0), _safe_scale(X.std(axis=0))
        return self

    def transform(self, X: np.ndarray, *, speakers: Sequence | None,
                  reference: tuple[np.ndarray, Sequence] | None = None) -> np.ndarray:
        """Normalised copy of ``X``; ``speakers=None`` scores every row alone; ``reference=(X_pool,
        speakers_pool)`` gives each speaker's statistics instead of ``X``."""
        if self.global_mean is None:
            raise RuntimeError("call fit() on training features before transform()")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.global_mean):
            raise ValueError(f"expected features of shape (n, {len(self.global_mean)}), got {X.shape}")
        out = (X - self.global_mean) / self.global_scale
        if speakers is None:
            return out
        stats = speaker_statistics(*reference) if reference is not None else speaker_statistics(X, speakers)
        for speaker in np.unique(np.asarray(speakers)):
            n, mean, std = stats.get(speaker, (0, None, None))
            if n < self.min_clips:
                continue  # too few clips for trustworthy statistics: keep the global fallback
            rows = np.asarray(speakers) == speaker
            out[rows] = (X[rows] - mean) / std
        return out


def sentence_normalise(X: np.ndarray, speakers: Sequence, sentences: Sequence, *,
                       reference: tuple[np.ndarray, Sequence, Sequence] | None = None,
                       min_group_clips: int = DEFAULT_MIN_GROUP_CLIPS,
                       min_clips: int = DEFAULT_MIN_CLIPS) -> np.ndarray:
    """Z-score each row within its (speaker, sentence) group (acted corpora read the same sentences in every
    emotion, and the words move the features as much as the emotion does).

    Statistics come from ``reference=(X, speakers, sentences)`` when given, else the rows of ``X``. A row whose
    group has fewer than ``min_group_clips`` clips, or no sentence id, gets its speaker's statistics; a speaker
    with fewer than ``min_clips`` clips is left as it is.

    >>> X = np.array([[0.0], [2.0], [10.0], [14.0]])
    >>> sentence_normalise(X, [1, 1, 1, 1], ["a", "a", "b", "b"], min_group_clips=2, min_clips=2).ravel().tolist()
    [-1.0, 1.0, -1.0, 1.0]
    """
    X = np.asarray(X, dtype=np.float64)
    keys = _group_keys(speakers, sentences)
    if len(keys) != len(X):
        raise ValueError(f"{len(X)} rows but {len(keys)} speaker/sentence ids")
    pool_X, pool_keys = (X, keys) if reference is None else (reference[0], _group_keys(*reference[1:]))
    # One string per group for speaker_statistics (a pair would become a 2-D array); \x1f (the ASCII unit
    # separator) appears in no speaker or sentence id.
    group_stats = speaker_statistics(pool_X, ["\x1f".join(key) for key in pool_keys])
    speaker_stats = speaker_statistics(pool_X, [s for s, _ in pool_keys])
    out = X.copy()
    for row, (speaker, sentence) in enumerate(keys):
        n, mean, std = group_stats.get(f"{speaker}\x1f{sentence}", (0, None, None)) if sentence else (0, None, None)
        if n < min_group_clips:
            n, mean, std = speaker_stats.get(speaker, (0, None, None))
            if n < min_clips:
                continue
        out[row] = (X[row] - mean) / std
    return out


def known_sentence(value) -> bool:
    """False for a missing sentence id: None, NaN (a blank manifest cell) or ""."""
    return value is not None and value == value and str(value) != ""  # NaN != NaN


def _group_keys(speakers: Sequence, sentences: Sequence) -> list[tuple[str, str]]:
    """``(speaker, sentence)`` string pairs; an unknown sentence becomes ""."""
    speakers, sentences = list(speakers), list(sentences)
    if len(speakers) != len(sentences):
        raise ValueError(f"{len(speakers)} speaker ids but {len(sentences)} sentence ids")
    return [(str(s), str(g) if known_sentence(g) else "") for s, g in zip(speakers, sentences)]

COMBINES = ("concat", "average")
ARRAYS_FORMAT = "mer-recipe-arrays/1"


@dataclasses.dataclass(frozen=True)
class Recipe(DictIO):
    """Feature sets, how their models combine, the ``C`` grid, refit, and how a test clip is scored."""

    feature_sets: tuple[str, ...] = ("ge2e",)  # "a+b" inside an averaged recipe: one model on a and b stacked
    combine: str = "concat"  # "concat": one model on stacked features; "average": one model per set
    speaker_norm: str | None = None  # None (each clip alone) or "meanstd" (z-score per speaker)
    min_clips: int = DEFAULT_MIN_CLIPS
    c_grid: tuple[float, ...] = DEFAULT_C_GRID
    refit: bool = False  # refit the chosen C on train+val (then val scores are no longer out-of-sample)
    balance: bool = False  # match each whole speaker's mean prediction to the training prior (balance_per_speaker)
    sentence_norm: bool = False  # z-score per (speaker, sentence) first (data then carry "sentences")

    def __post_init__(self):
        if self.combine not in COMBINES:
            raise ValueError(f"combine must be one of {COMBINES}, got {self.combine!r}")
        if self.speaker_norm is not None and self.speaker_norm not in SPEAKER_NORM_MODES:
            raise ValueError(f"unknown speaker_norm {self.speaker_norm!r}; choose None or one of {SPEAKER_NORM_MODES}")
        if not self.feature_sets:
            raise ValueError("a recipe needs at least one feature set")
        if not self.c_grid:
            raise ValueError("c_grid needs at least one value")
        if (self.sentence_norm or self.balance) and self.speaker_norm is None:
            raise ValueError("sentence_norm and balance refine speaker adaptation: set speaker_norm too (e.g. 'meanstd')")

    @property
    def name(self) -> str:
        sets = "+".join(self.feature_sets) if self.combine == "concat" else f"avg({','.join(self.feature_sets)})"
        flags = {f"speakernorm-{self.speaker_norm}": self.speaker_norm, "sentencenorm": self.sentence_norm,
                 "refit": self.refit, "balance": self.balance}
        return " ".join([sets, "logreg", *(flag for flag, on in flags.items() if on)])

    @property
    def blocks(self) -> list[tuple[str, ...]]:
        if self.combine == "concat":
            return [tuple(part for s in self.feature_sets for part in s.split("+"))]
        return [tuple(s.split("+")) for s in self.feature_sets]

    @property
    def base_feature_sets(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(part for s in self.feature_sets for part in s.split("+")))


# `mer audio train`'s default (--adapt none): GE2E statistics, each clip scored alone (docs/ravdess.md).
DEFAULT_RECIPE = Recipe(feature_sets=("ge2e",), refit=True)


def without_speaker_statistics(recipe: Recipe) -> Recipe:
    """The recipe for speakers with fewer than ``min_clips`` clips (the demo's one recording)."""
    return dataclasses.replace(recipe, speaker_norm=None, sentence_norm=False, balance=False)


@dataclasses.dataclass
class FittedModel:
    """Speaker normaliser (optional) -> standardiser -> multinomial logistic regression, for one feature block."""

    normalizer: SpeakerNormalizer | None
    mean: np.ndarray
    scale: np.ndarray
    classes: np.ndarray  # label indices the classifier knows (a subset of the labels when data lack a class)
    C: float
    n_labels: int  # size of the label set the probabilities span
    coef: np.ndarray  # (n_classes, d) on standardised features
    intercept: np.ndarray
    prior: np.ndarray  # training class frequencies over all labels (for ``balance``)

    def proba(self, Z: np.ndarray) -> np.ndarray:
        """``(n, n_labels)`` probabilities of rows already normalised per speaker (:func:`_block_rows`)."""
        logits = ((np.asarray(Z, dtype=np.float64) - self.mean) / self.scale) @ self.coef.T + self.intercept
        if logits.shape[1] == 1:  # a binary logistic model: one logit for the second class
            logits = np.hstack([np.zeros_like(logits), logits])
        known = softmax(logits, axis=1)
        proba = np.zeros((len(known), self.n_labels))
        proba[:, self.classes] = known
        return proba


def _fit_head(C: float, X: np.ndarray, y: np.ndarray, normalizer, seed: int, n_labels: int) -> FittedModel:
    from sklearn.linear_model import LogisticRegression

    mean, scale = X.mean(axis=0), _safe_scale(X.std(axis=0))
    model = LogisticRegression(C=C, class_weight="balanced", max_iter=3000, random_state=seed)
    model.fit((X - mean) / scale, y)
    return FittedModel(normalizer, mean, scale, np.asarray(model.classes_, dtype=int), C, n_labels,
                       coef=np.asarray(model.coef_, dtype=np.float64),
                       intercept=np.asarray(model.intercept_, dtype=np.float64),
                       prior=np.bincount(y, minlength=n_labels) / len(y))


def _stack(X: dict, block: Sequence[str]) -> np.ndarray:
    return np.hstack([np.asarray(X[s], dtype=np.float64) for s in block])


def _block_rows(block: Sequence[str], data: dict, normalizer: SpeakerNormalizer | None) -> np.ndarray:
    """The sets of ``block`` side by side, z-scored per speaker (statistics from ``data["reference"]`` if any)."""
    X, reference = _stack(data["X"], block), data.get("reference")
    if normalizer is None:
        return X
    reference = None if reference is None else (_stack(reference[0], block), reference[1])
    return normalizer.transform(X, speakers=data["speakers"], reference=reference)


def _sentence_normalised(recipe: Recipe, data: dict) -> dict:
    """``data`` (and its pool) normalised per speaker and sentence when the recipe asks and sentences are known."""
    X, speakers, sentences, reference = data["X"], data.get("speakers"), data.get("sentences"), data.get("reference")
    if not recipe.sentence_norm or sentences is None or speakers is None:
        return data
    if reference is not None and len(reference) < 3:
        raise ValueError("sentence_norm with a reference pool needs the pool's sentence ids: "
                         "reference=(features, speakers, sentences)")
    normalised = {name: sentence_normalise(rows, speakers, sentences, min_clips=recipe.min_clips,
                                           reference=None if reference is None
                                           else (reference[0][name], reference[1], reference[2]))
                  for name, rows in X.items()}
    if reference is not None:
        reference = ({name: sentence_normalise(rows, reference[1], reference[2], min_clips=recipe.min_clips)
                      for name, rows in reference[0].items()}, reference[1])
    return {**data, "X": normalised, "reference": reference}


def fit_recipe_held_out(recipe: Recipe, train: dict, val: dict, *, seed: int = 0,
                        labels: tuple[str, ...]) -> tuple[list[FittedModel], list[FittedModel], dict]:
    """``(models, held_out, report)``: one model per block, ``C`` chosen by validation UA, and the same models
    fitted on ``train`` alone (out-of-sample validation predictions when ``recipe.refit`` saw val).
    ``train``/``val``: ``{"X": {set: (n, d)}, "y", "speakers"}``, optionally ``"sentences"`` and ``"reference":
    ({set: pool rows}, pool speakers[, pool sentences])`` (the unlabelled clips of each speaker's statistics)."""
    n_labels = len(labels)
    models, held_out, report = [], [], {"recipe": recipe.name, "selected_on": "val", "blocks": []}
    raw_train = train  # a lone clip has no sentence group: the fallback statistics describe raw features
    if recipe.sentence_norm:
        train, val = _sentence_normalised(recipe, train), _sentence_normalised(recipe, val)
        report["sentence_groups"] = {"train_clips_with_sentence": _count_known(train.get("sentences")),
                                     "val_clips_with_sentence": _count_known(val.get("sentences"))}
    for block in recipe.blocks:
        normalizer = None
        if recipe.speaker_norm:  # global statistics (the single-clip fallback) from the clean training clips
            normalizer = SpeakerNormalizer(min_clips=recipe.min_clips).fit(_stack(raw_train["X"], block))
        # Speaker statistics stay within each subset: train and val are normalised separately.
        Z_tr, Z_va = _block_rows(block, train, normalizer), _block_rows(block, val, normalizer)
        y_tr = np.asarray(train["y"])
        scores, fitted = {}, {}
        for C in sorted(recipe.c_grid):
            fitted[C] = _fit_head(C, Z_tr, y_tr, normalizer, seed, n_labels)
            scores[C] = ua_score(val["y"], fitted[C].proba(Z_va).argmax(axis=1))
        best = max(sorted(scores), key=lambda c: (scores[c], -c))  # ties: stronger regularisation
        held_out.append(fitted[best])
        models.append(_fit_head(best, np.vstack([Z_tr, Z_va]), np.r_[y_tr, val["y"]], normalizer, seed, n_labels)
                      if recipe.refit else fitted[best])
        report["blocks"].append({"feature_sets": list(block), "C": best, "n_features": int(Z_tr.shape[1]),
                                 "val_ua_per_C": {str(c): s for c, s in scores.items()}})
    return models, held_out, report


def balance_per_speaker(proba: np.ndarray, speakers: Sequence, prior: np.ndarray, *,
                        min_clips: int = DEFAULT_MIN_CLIPS, n_iter: int = 50) -> np.ndarray:
    """Rescale each speaker's class columns (Sinkhorn, labels unused) until the speaker's mean prediction
    matches ``prior``; speakers with fewer than ``min_clips`` clips are left as they are."""
    proba = np.asarray(proba, dtype=np.float64)
    out = proba.copy()
    speakers = np.asarray(speakers)
    target = np.asarray(prior, dtype=np.float64)
    active = target > 0
    for speaker in np.unique(speakers):
        rows = speakers == speaker
        if rows.sum() < min_clips:
            continue
        Q = np.clip(proba[rows], 1e-12, None)
        for _ in range(n_iter):
            col = Q.mean(axis=0)
            Q[:, active] *= target[active] / col[active]
            Q[:, ~active] = 0.0
            Q /= Q.sum(axis=1, keepdims=True)
        out[rows] = Q
    return out


def predict_recipe(models: Sequence[FittedModel], recipe: Recipe, X: dict, speakers: Sequence | None,
                   reference: tuple | None = None, sentences: Sequence | None = None) -> np.ndarray:
    """``(n, n_labels)`` probabilities, the mean over blocks (then prior matching when ``recipe.balance``).
    ``reference``: see :func:`fit_recipe_held_out`; ``sentences``: one id per row (for ``sentence_norm``)."""
    data = _sentence_normalised(recipe, {"X": X, "speakers": speakers, "sentences": sentences, "reference": reference})
    proba = np.mean([m.proba(_block_rows(b, data, m.normalizer)) for m, b in zip(models, recipe.blocks)], axis=0)
    if recipe.balance and speakers is not None:
        prior = np.mean([m.prior for m in models], axis=0)
        whole = _whole_speakers(speakers, reference)
        proba[whole] = balance_per_speaker(proba[whole], np.asarray(speakers)[whole], prior, min_clips=recipe.min_clips)
    return proba


def _whole_speakers(speakers: Sequence, reference: tuple | None) -> np.ndarray:
    """Rows whose speaker is scored with all of their pool clips: only then need they spread like the prior."""
    speakers = np.asarray(speakers)
    if reference is None:
        return np.ones(len(speakers), dtype=bool)
    in_pool, scored = Counter(np.asarray(reference[1]).tolist()), Counter(speakers.tolist())
    return np.array([scored[s] >= in_pool.get(s, 0) for s in speakers.tolist()], dtype=bool)


def predict_with_fallback(models: Sequence[FittedModel], recipe: Recipe, fallback_models: Sequence[FittedModel],
                          fallback_recipe: Recipe, X: dict, speakers: Sequence | None,
                          reference: tuple | None = None, sentences: Sequence | None = None) -> np.ndarray:
    """``recipe``'s probabilities for speakers with at least ``min_clips`` clips in ``X`` (or ``reference``),
    ``fallback_recipe``'s for the others (every row when ``speakers`` is None)."""
    X = {k: np.asarray(v) for k, v in X.items()}
    n = len(next(iter(X.values())))
    few = np.ones(n, dtype=bool)
    if speakers is not None:
        count_of = Counter(np.asarray(speakers if reference is None else reference[1]).tolist())
        few = np.array([count_of.get(s, 0) < recipe.min_clips for s in np.asarray(speakers).tolist()], dtype=bool)
    proba = np.zeros((n, models[0].n_labels))
    if (~few).any():
        sentences = None if sentences is None else np.asarray(sentences, dtype=object)[~few]
        proba[~few] = predict_recipe(models, recipe, {k: v[~few] for k, v in X.items()}, np.asarray(speakers)[~few],
                                     reference, sentences)
    if few.any():
        proba[few] = predict_recipe(fallback_models, fallback_recipe, {k: v[few] for k, v in X.items()}, None)
    return proba


def fitted_to_arrays(models: Sequence[FittedModel], recipe: Recipe) -> tuple[dict[str, np.ndarray], dict]:
    """``(arrays, meta)``: every fitted number as a named array, and JSON-able metadata."""
    arrays: dict[str, np.ndarray] = {}
    blocks = []
    for i, (model, block) in enumerate(zip(models, recipe.blocks)):
        p = f"block{i}."
        arrays.update({p + "mean": model.mean, p + "scale": model.scale, p + "coef": model.coef,
                       p + "intercept": model.intercept, p + "classes": np.asarray(model.classes, dtype=np.int64),
                       p + "prior": np.asarray(model.prior, dtype=np.float64)})
        entry = {"feature_sets": list(block), "C": float(model.C), "head": "softmax",
                 "n_labels": int(model.n_labels), "normalizer": None}
        if model.normalizer is not None:
            arrays.update({p + "speaker_norm_mean": model.normalizer.global_mean,
                           p + "speaker_norm_scale": model.normalizer.global_scale})
            entry["normalizer"] = {"mode": "meanstd", "min_clips": model.normalizer.min_clips}
        blocks.append(entry)
    meta = {"format": ARRAYS_FORMAT, "recipe": recipe.to_dict(), "blocks": blocks}
    json.dumps(meta)  # must be JSON-able
    return {k: np.asarray(v) for k, v in arrays.items()}, meta


def fitted_from_arrays(arrays: dict, meta: dict, prefix: str = "") -> tuple[list[FittedModel], Recipe]:
    """Inverse of :func:`fitted_to_arrays`: ``(models, recipe)`` from the arrays named ``<prefix>block<i>.*``."""
    if meta.get("format") != ARRAYS_FORMAT:
        raise ValueError(f"not a fitted-recipe array set (format {meta.get('format')!r}, expected {ARRAYS_FORMAT!r})")
    recipe = Recipe.from_dict(meta["recipe"])
    models = []
    for i, entry in enumerate(meta["blocks"]):
        p = f"{prefix}block{i}."
        normalizer = None
        if entry["normalizer"] is not None:
            normalizer = SpeakerNormalizer(int(entry["normalizer"]["min_clips"]), *(
                np.asarray(arrays[p + k], dtype=np.float64) for k in ("speaker_norm_mean", "speaker_norm_scale")))
        _check_block_shapes(arrays, p, int(entry["n_labels"]))
        f64 = {k: np.asarray(arrays[p + k], dtype=np.float64) for k in ("mean", "scale", "coef", "intercept", "prior")}
        models.append(FittedModel(normalizer, classes=np.asarray(arrays[p + "classes"], dtype=int),
                                  C=float(entry["C"]), n_labels=int(entry["n_labels"]), **f64))
    return models, recipe


def _check_block_shapes(arrays: dict, prefix: str, n_labels: int) -> None:
    """One block's arrays must agree (else a matrix product fails later, far from the file it came from)."""
    mean, scale = np.shape(arrays[prefix + "mean"]), np.shape(arrays[prefix + "scale"])
    coef, intercept = np.shape(arrays[prefix + "coef"]), np.shape(arrays[prefix + "intercept"])
    classes = np.shape(arrays[prefix + "classes"])
    if not (len(mean) == 1 and scale == mean and len(coef) == 2 and coef[1] == mean[0]
            and intercept == (coef[0],) and classes[0] <= n_labels and coef[0] in (1, classes[0])):
        raise ValueError(f"shapes do not fit: {prefix}mean {mean}, scale {scale}, coef {coef}, intercept {intercept}, "
                         f"classes {classes} for {n_labels} labels")


def _count_known(sentences) -> int:
    return 0 if sentences is None else sum(map(known_sentence, sentences))
