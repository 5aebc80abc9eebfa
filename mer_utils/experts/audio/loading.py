"""Audio input: any WAV/MP3 in, 16 kHz mono float32 out, prepared alike (resampled, down-mixed, edges trimmed,
capped and padded) for training and the demo, so a checkpoint never meets input it was not trained on; the
:class:`ClipSet` a backbone consumes."""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from mer_utils.core.config import DictIO
from mer_utils.core.labels import check_label_set
from mer_utils.data.media_health import SAMPLE_RATE

if TYPE_CHECKING:  # pandas and the data layer load with a manifest: a demo that only predicts needs neither
    import pandas as pd


class AudioLoadError(RuntimeError):
    """A clip cannot be decoded; the message names the file and the fix."""


class InputCutWarning(UserWarning):
    """Input longer than ``AudioSettings.max_seconds`` was cut: the model hears only its start."""


@dataclasses.dataclass(frozen=True)
class AudioSettings(DictIO):
    """How a clip is turned into model input (stored in every checkpoint)."""

    sample_rate: int = SAMPLE_RATE  # every backbone here expects 16 kHz
    trim_top_db: float | None = 30.0  # trim edges quieter than peak - top_db; None keeps them
    max_seconds: float | None = 6.0  # CREMA-D clips last 1-5 s; longer input is cut at the end
    min_seconds: float = 0.5  # shorter input is zero-padded (SSL front-ends need ~25 ms at least)


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Decode a file (WAV, FLAC, OGG, MP3: libsndfile) to mono float32 samples and its native sample rate."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise AudioLoadError(f"Audio file not found: {path}. Check --data-root, or rebuild the manifest.")
    try:
        samples, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as err:
        with open(path, "rb") as handle:
            lfs = handle.read(64).startswith(b"version https://git-lfs")
        hint = ("It is a Git LFS pointer, not audio: run `git lfs pull` in the CREMA-D clone." if lfs else
                "Re-download it, or convert it to 16 kHz WAV (`ffmpeg -i IN -ar 16000 -ac 1 OUT.wav`).")
        raise AudioLoadError(f"Cannot decode {path} ({err}). {hint}") from None
    if samples.size == 0:
        raise AudioLoadError(f"{path} decodes to no samples; re-download it")
    return np.ascontiguousarray(samples.mean(axis=1), dtype=np.float32), int(sr)


def prepare_waveform(samples: np.ndarray, sample_rate: int, *, settings: AudioSettings = AudioSettings(),
                     source: str = "audio input") -> np.ndarray:
    """Resample, down-mix, trim silence, then cap (with an :class:`InputCutWarning` naming ``source``) and pad.

    >>> wave = np.r_[np.zeros(8000), np.sin(np.arange(16000) / 5), np.zeros(8000)]
    >>> out = prepare_waveform(wave, 16000, settings=AudioSettings(max_seconds=None))
    >>> 15000 < len(out) < 18000  # the half-second silences are gone
    True
    """
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 2:
        # (channels, n) or (n, channels): average along the shorter axis.
        samples = samples.mean(axis=int(np.argmin(samples.shape)))
    if samples.ndim != 1 or samples.size == 0:
        raise ValueError(f"expected a non-empty 1-D (or 2-D multichannel) waveform, got shape {samples.shape}")
    sr = settings.sample_rate
    import librosa

    if sample_rate != sr:
        samples = librosa.resample(samples, orig_sr=sample_rate, target_sr=sr)
    if settings.trim_top_db is not None:
        # On CREMA-D room noise sits 32-35 dB below the speech peak: 30 dB removes only the pauses.
        trimmed, _ = librosa.effects.trim(samples, top_db=settings.trim_top_db)
        samples = trimmed if trimmed.size else samples  # an all-quiet clip is kept whole
    if settings.max_seconds is not None and len(samples) > int(round(settings.max_seconds * sr)):
        warnings.warn(f"{source}: only the first {settings.max_seconds:g} s of its {len(samples) / sr:.1f} s "
                      "(after trimming silence) are used; the rest is cut (AudioSettings.max_seconds)",
                      InputCutWarning, stacklevel=2)
        samples = samples[: int(round(settings.max_seconds * sr))]
    samples = np.pad(samples, (0, max(0, int(round(settings.min_seconds * sr)) - len(samples))))
    return np.ascontiguousarray(samples, dtype=np.float32)


def load_waveform(path: str | os.PathLike, *, settings: AudioSettings = AudioSettings()) -> np.ndarray:
    samples, sr = read_audio(path)
    return prepare_waveform(samples, sr, settings=settings, source=str(path))


def load_waveforms(
    paths: Sequence[str | os.PathLike], *, settings: AudioSettings = AudioSettings(), progress: bool = True,
    desc: str = "loading audio",
) -> tuple[list[np.ndarray | None], list[dict]]:
    """``(waves, skipped)``: one array per path (``None`` where decoding failed) and ``[{"path", "reason"}]``."""
    from tqdm.auto import tqdm

    waves, skipped = [], []
    for path in tqdm(paths, desc=desc, disable=not progress, leave=False):
        try:
            waves.append(load_waveform(path, settings=settings))
        except (AudioLoadError, ValueError) as err:
            waves.append(None)
            skipped.append({"path": str(path), "reason": str(err)})
    return waves, skipped


def as_waveforms(inputs: Iterable, *, settings: AudioSettings = AudioSettings()) -> list[np.ndarray]:
    """Prepared waveforms of paths, 16 kHz arrays or ``(samples, sample_rate)`` tuples."""
    waves = []
    for item in inputs:
        if isinstance(item, (str, os.PathLike)):
            waves.append(load_waveform(item, settings=settings))
        else:
            samples, rate = item if isinstance(item, tuple) and len(item) == 2 else (item, settings.sample_rate)
            waves.append(prepare_waveform(samples, int(rate), settings=settings))
    return waves


@dataclasses.dataclass
class ClipSet:
    """Clip ids, absolute audio paths, (optional) emotion labels, speaker ids and the label set: what every backbone's
    ``fit(train, val, work_dir=)`` and ``predict_proba(clips) -> (n, K)`` (NaN rows: undecodable clips) take."""

    clip_ids: list[str]
    paths: list[Path]
    labels: list[str] | None = None
    speakers: list | None = None  # actor ids, for speaker normalisation (never labels)
    label_set: tuple[str, ...] | None = None  # the corpus's classes, in order (required with labels)
    sentences: list | None = None  # what each clip says (the manifest's sentence id), for sentence normalisation

    def __post_init__(self):
        for what, values in (("paths", self.paths), ("sentence ids", self.sentences), ("labels", self.labels)):
            if values is not None and len(values) != len(self.clip_ids):
                raise ValueError(f"{len(self.clip_ids)} clip ids but {len(values)} {what}")
        if self.label_set is not None:
            self.label_set = check_label_set(self.label_set)
        if self.labels is not None:
            if self.label_set is None:
                raise ValueError("a labelled clip set needs its label_set (the corpus's classes, in order)")
            unknown = sorted(set(self.labels) - set(self.label_set))
            if unknown:
                raise ValueError(f"labels {unknown} are not in the corpus's label set {list(self.label_set)}")

    def __len__(self) -> int:
        return len(self.clip_ids)

    def take(self, index: Sequence[int] | np.ndarray) -> "ClipSet":
        index = np.flatnonzero(index) if np.asarray(index).dtype == bool else np.asarray(index, dtype=int)
        return ClipSet([self.clip_ids[i] for i in index], [self.paths[i] for i in index],
                       None if self.labels is None else [self.labels[i] for i in index],
                       None if self.speakers is None else [self.speakers[i] for i in index], self.label_set,
                       None if self.sentences is None else [self.sentences[i] for i in index])

    def label_indices(self) -> np.ndarray:
        if self.labels is None:
            raise ValueError("this clip set has no labels")
        return np.array([self.label_set.index(label) for label in self.labels], dtype=int)

    @classmethod
    def from_manifest(cls, manifest: pd.DataFrame, data_root: str | os.PathLike, clip_ids: Sequence[str], *,
                      labels: Sequence[str]) -> "ClipSet":
        """Clips of ``clip_ids``, in that order; ``labels`` is the corpus's label set."""
        from mer_utils.data.manifest import media_path

        table = manifest.set_index("clip_id")
        missing = [c for c in clip_ids if c not in table.index]
        if missing:
            raise ValueError(f"{len(missing)} split clips are not in the manifest (e.g. {missing[0]}); "
                             "the split and the manifest come from different data roots")
        rows = table.loc[list(clip_ids)]
        no_audio = rows.index[rows["audio_path"].astype(str) == ""].tolist()
        if no_audio:
            raise ValueError(f"{len(no_audio)} clips have no audio file (e.g. {no_audio[0]}); "
                             "add AudioWAV/ (or AudioMP3/) to the data root")
        paths = [media_path(data_root, rel) for rel in rows["audio_path"].astype(str)]
        sentences = rows["sentence"].tolist() if "sentence" in rows.columns else None
        return cls(list(clip_ids), paths, rows["emotion"].astype(str).tolist(), rows["actor_id"].tolist(),
                   tuple(labels), sentences)
