"""Audio input: any WAV/MP3 in, 16 kHz mono float32 out, prepared alike (resampled, down-mixed, edges trimmed,
capped and padded) for training and the demo, so a checkpoint never meets input it was not trained on.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from mer_utils.data.media_health import SAMPLE_RATE


class AudioLoadError(RuntimeError):
    """A clip cannot be decoded; the message names the file and the fix."""


class InputCutWarning(UserWarning):
    """Input longer than ``AudioSettings.max_seconds`` was cut: the model hears only its start."""


@dataclasses.dataclass(frozen=True)
class AudioSettings:
    """How a clip is turned into model input (stored in every checkpoint)."""

    sample_rate: int = SAMPLE_RATE  # every backbone here expects 16 kHz
    trim_top_db: float | None = 30.0  # trim edges quieter than peak - top_db; None keeps them
    max_seconds: float | None = 6.0  # CREMA-D clips last 1-5 s; longer input is cut at the end
    min_seconds: float = 0.5  # shorter input is zero-padded (SSL front-ends need ~25 ms at least)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "AudioSettings":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


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
        import warnings

        warnings.warn(f"{source}: only the first {settings.max_seconds:g} s of its {len(samples) / sr:.1f} s "
                      "(after trimming silence) are used; the rest is cut (AudioSettings.max_seconds)",
                      InputCutWarning, stacklevel=2)
        samples = samples[: int(round(settings.max_seconds * sr))]
    min_len = int(round(settings.min_seconds * sr))
    if len(samples) < min_len:
        samples = np.pad(samples, (0, min_len - len(samples)))
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

    waves: list[np.ndarray | None] = []
    skipped: list[dict] = []
    for path in tqdm(paths, desc=desc, disable=not progress, leave=False):
        try:
            waves.append(load_waveform(path, settings=settings))
        except (AudioLoadError, ValueError) as err:
            waves.append(None)
            skipped.append({"path": str(path), "reason": str(err)})
    return waves, skipped


def as_waveforms(inputs: Iterable, *, settings: AudioSettings = AudioSettings()) -> list[np.ndarray]:
    """Prepared waveforms of paths, 16 kHz arrays or ``(samples, sample_rate)`` tuples (what ``predict_proba``
    of an expert accepts)."""
    waves = []
    for item in inputs:
        if isinstance(item, (str, os.PathLike)):
            waves.append(load_waveform(item, settings=settings))
        elif isinstance(item, tuple) and len(item) == 2:
            waves.append(prepare_waveform(item[0], int(item[1]), settings=settings))
        else:
            waves.append(prepare_waveform(np.asarray(item), settings.sample_rate, settings=settings))
    return waves
