"""Speaker normalisation: z-score each speaker's clips with that speaker's own statistics (test-time adaptation).

Transductive and label-free: statistics come from a speaker's unlabelled clips (the ``reference`` pool, else the
rows scored); a speaker with fewer than ``min_clips`` clips keeps the training set's global statistics.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

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

    mode: str = "meanstd"
    min_clips: int = DEFAULT_MIN_CLIPS  # a mean and spread of two or three clips would be noise
    global_mean: np.ndarray | None = None  # set by fit() from the training clips; stored in checkpoints
    global_scale: np.ndarray | None = None

    def __post_init__(self):
        if self.mode not in SPEAKER_NORM_MODES:
            raise ValueError(f"unknown speaker normalisation mode {self.mode!r}; choose one of {SPEAKER_NORM_MODES}")
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

    def arrays(self) -> dict[str, np.ndarray]:
        return {"speaker_norm_mean": self.global_mean, "speaker_norm_scale": self.global_scale}

    def config(self) -> dict:
        return {"mode": self.mode, "min_clips": self.min_clips}

    @classmethod
    def from_arrays(cls, arrays: dict, config: dict) -> "SpeakerNormalizer":
        return cls(mode=config["mode"], min_clips=int(config["min_clips"]),
                   global_mean=np.asarray(arrays["speaker_norm_mean"], dtype=np.float64),
                   global_scale=np.asarray(arrays["speaker_norm_scale"], dtype=np.float64))


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
    if reference is None:
        pool_X, pool_keys = X, keys
    else:
        pool_X = np.asarray(reference[0], dtype=np.float64)
        pool_keys = _group_keys(reference[1], reference[2])
    # One string per group for speaker_statistics (a pair would become a 2-D array); \x1f (the ASCII unit
    # separator) appears in no speaker or sentence id.
    group_stats = speaker_statistics(pool_X, [f"{s}\x1f{g}" for s, g in pool_keys])
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
