"""Acoustic feature sets, one fixed-length vector of functionals per clip (``FEATURE_SETS``, described in
docs/audio.md), and the on-disk cache of per-clip arrays in atomic ``shard-*.npz`` files, one per chunk."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import uuid
import warnings
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from mer_utils.core.atomic_io import atomic_path
from mer_utils.experts.audio.loading import AudioLoadError, AudioSettings, load_waveform
from mer_utils.experts.audio.speaker_encoder import ge2e_features, weights_fingerprint, weights_path


OPENSMILE_LICENCE = "openSMILE: research and education only (audEERING licence)"
# Each feature set's licence (what the sets are: docs/audio.md).
FEATURE_SETS = {"egemaps": OPENSMILE_LICENCE, "compare": OPENSMILE_LICENCE,
                "librosa": "ISC (librosa): permissive, commercial use allowed",
                "ge2e": "Apache-2.0 (Resemblyzer code and its pretrained.pt weights): commercial use allowed"}
# Bumped when one set's definition changes, so its cached vectors are recomputed (the others' stay).
SET_VERSIONS = {"ge2e": 2}  # 2: layer-2 percentiles added
FEATURES_VERSION = 1  # bumped when every set's definition changes


def check_feature_set(name: str) -> str:
    if name not in FEATURE_SETS:
        raise ValueError(f"unknown acoustic feature set {name!r}; choose one of {sorted(FEATURE_SETS)}")
    return name


def check_feature_set_available(name: str) -> str:
    """``check_feature_set``; an ``ImportError`` naming the pip install when a set's weights are missing."""
    if check_feature_set(name) == "ge2e":
        weights_path()
    return name


def feature_set_fingerprint(name: str) -> dict | None:
    """What a checkpoint records about a set computed by pretrained weights (``None`` for the others)."""
    return weights_fingerprint() if check_feature_set_available(name) == "ge2e" else None


@functools.cache  # one openSMILE extractor per process: building it parses a config file
def _smile(name: str):
    import opensmile

    feature_set = {"egemaps": opensmile.FeatureSet.eGeMAPSv02, "compare": opensmile.FeatureSet.ComParE_2016}[name]
    return opensmile.Smile(feature_set=feature_set, feature_level=opensmile.FeatureLevel.Functionals)


def librosa_features(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """The permissive feature set: 231 functionals of 32 frame descriptors (10 ms hop)."""
    import librosa

    n_fft, hop = 512, 160  # 32 ms windows, 10 ms hop at 16 kHz
    spec = np.abs(librosa.stft(wave, n_fft=n_fft, hop_length=hop)) ** 2
    mel = librosa.feature.melspectrogram(S=spec, sr=sample_rate, n_mels=40)
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=20)
    mag = np.sqrt(spec)
    shape = np.vstack([
        librosa.feature.spectral_centroid(S=mag, sr=sample_rate),
        librosa.feature.spectral_bandwidth(S=mag, sr=sample_rate),
        librosa.feature.spectral_rolloff(S=mag, sr=sample_rate),
        librosa.feature.spectral_flatness(S=mag),
        librosa.feature.spectral_contrast(S=mag, sr=sample_rate, fmin=100.0, n_bands=5),
    ]) / np.array([[4000.0]] * 3 + [[1.0]] * 7)  # Hz-valued rows to ~unit scale
    log_rms = np.log(librosa.feature.rms(S=mag, frame_length=n_fft) + 1e-6)
    zcr = librosa.feature.zero_crossing_rate(wave, frame_length=n_fft, hop_length=hop)
    n = min(mfcc.shape[1], zcr.shape[1])
    lld = np.vstack([mfcc[:, :n], shape[:, :n], log_rms[:, :n], zcr[:, :n]])
    deltas = librosa.feature.delta(lld, width=min(9, n - (1 - n % 2))) if n >= 3 else np.zeros_like(lld)
    # Pitch: YIN over voiced (loud) frames only, in semitones re 100 Hz.
    f0 = librosa.yin(wave, fmin=60.0, fmax=500.0, sr=sample_rate, frame_length=1024, hop_length=hop)[:n]
    voiced = log_rms[0, : len(f0)] > np.percentile(log_rms, 40)
    pitch = 12 * np.log2(f0[voiced] / 100.0) if voiced.any() else np.zeros(1)
    extra = np.r_[pitch.mean(), pitch.std(), np.percentile(pitch, [10, 50, 90]), voiced.mean(),
                  len(wave) / sample_rate]
    functionals = [lld.mean(axis=1), lld.std(axis=1), *np.percentile(lld, [10, 50, 90], axis=1)]
    return np.concatenate([*functionals, np.abs(deltas).mean(axis=1), deltas.std(axis=1), extra])


def extract_features(wave: np.ndarray, feature_set: str, *, sample_rate: int = 16_000,
                     encoder=None) -> np.ndarray:
    """One float32 vector of functionals for a prepared waveform (``encoder``: an ONNX copy's GE2E network)."""
    check_feature_set(feature_set)
    if feature_set == "librosa":
        vector = librosa_features(np.asarray(wave, dtype=np.float32), sample_rate)
    elif feature_set == "ge2e":
        vector = ge2e_features(np.asarray(wave, dtype=np.float32), sample_rate, network=encoder)
    else:
        vector = _smile(feature_set).process_signal(np.asarray(wave, dtype=np.float32), sample_rate).to_numpy()[0]
    return np.nan_to_num(np.asarray(vector, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)


def _extract_file(path: str, feature_set: str, settings: AudioSettings) -> tuple[np.ndarray | None, str]:
    try:
        wave = load_waveform(path, settings=settings)
        return extract_features(wave, feature_set, sample_rate=settings.sample_rate), ""
    except (AudioLoadError, ValueError) as err:
        return None, str(err)


def file_key(path: str | os.PathLike) -> str:
    """``"<name>:<size>:<mtime_ns>"`` of a media file (no decoding)."""
    stat = os.stat(path)
    return f"{Path(path).name}:{stat.st_size}:{stat.st_mtime_ns}"


def clip_keys(paths) -> list[str]:
    """One key per path; a missing file gets a key no cache holds."""
    return [file_key(p) if os.path.exists(p) else f"missing:{p}" for p in paths]


def namespace(name: str, settings: Mapping) -> str:
    """A folder name for ``name`` extracted with ``settings`` (any JSON-able dict).

    >>> namespace("egemaps", {"sample_rate": 16000})[:8]
    'egemaps-'
    """
    digest = hashlib.sha256(json.dumps(dict(settings), sort_keys=True, default=str).encode()).hexdigest()[:10]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return f"{safe}-{digest}"


class FeatureCache:
    """Arrays keyed by string, persisted as shards under ``root/namespace``.

    >>> import tempfile
    >>> cache = FeatureCache(tempfile.mkdtemp(), "demo")
    >>> _ = cache.put({"a.wav:1:2": np.ones(3)})
    >>> FeatureCache(cache.directory.parent, "demo").get(["a.wav:1:2", "b"]).keys()
    dict_keys(['a.wav:1:2'])
    """

    def __init__(self, root: str | os.PathLike, name: str):
        self.directory = Path(root) / name
        self._index: dict[str, np.ndarray] | None = None

    def _load(self) -> dict[str, np.ndarray]:
        if self._index is None:
            self._index = {}
            for shard in sorted(self.directory.glob("shard-*.npz")):
                try:
                    with np.load(shard, allow_pickle=False) as data:
                        keys, values = data["keys"], data["values"]
                except (OSError, ValueError, KeyError) as err:
                    warnings.warn(f"ignoring unreadable feature-cache shard {shard} ({err}); delete it", stacklevel=2)
                    continue
                self._index.update(zip(keys.tolist(), values))
        return self._index

    def __len__(self) -> int:
        return len(self._load())

    def get(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """The cached arrays among ``keys`` (missing keys are left out)."""
        index = self._load()
        return {k: index[k] for k in keys if k in index}

    def put(self, items: Mapping[str, np.ndarray]) -> Path | None:
        """Write ``items`` (same-shaped arrays) as one new shard; returns its path."""
        if not items:
            return None
        keys = np.array(list(items.keys()))
        values = np.stack([np.asarray(v) for v in items.values()])
        path = self.directory / f"shard-{uuid.uuid4().hex[:12]}.npz"
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, keys=keys, values=values)
        self._load().update(zip(keys.tolist(), values))
        return path


def assemble(paths, keys: list[str], found: dict, errors: dict, what: str = "") -> tuple[np.ndarray, np.ndarray,
                                                                                       list[dict]]:
    """``(X, ok, skipped)``: the rows of ``keys`` in ``found`` (zeros elsewhere), the mask of rows found and
    ``[{"path", "reason"}]`` of the others (``errors``: row index -> reason); no row found raises."""
    ok = np.array([k in found for k in keys], dtype=bool)
    if not ok.any():
        raise AudioLoadError(f"no clip could be decoded{what}; first error: {next(iter(errors.values()), 'none')}")
    rows = [found[k] for k in keys if k in found]
    X = np.zeros((len(keys), *np.shape(rows[0])), dtype=np.float32)
    X[ok] = rows
    return X, ok, [{"path": str(paths[i]), "reason": errors.get(i, "not found")} for i in np.flatnonzero(~ok)]


_ANNOUNCED: set[tuple[str, str]] = set()  # (cache folder, namespace) already reported in this process


def features_for_files(
    paths: Sequence[str | os.PathLike], *, feature_set: str, settings: AudioSettings = AudioSettings(),
    cache_dir: str | os.PathLike | None = None, n_jobs: int = 1, chunk_size: int = 256, progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """``(X (n, d) float32, ok, skipped)``: features of ``paths`` (zero rows where decoding failed), computed once
    and cached; ``skipped`` is ``[{"path", "reason"}]``."""
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    check_feature_set_available(feature_set)  # before any worker starts: one clear error, not one per clip
    paths = [str(p) for p in paths]
    keys = clip_keys(paths)
    extra = {"set_version": SET_VERSIONS[feature_set]} if feature_set in SET_VERSIONS else {}
    served = (str(cache_dir), namespace(feature_set, {**settings.to_dict(), "version": FEATURES_VERSION, **extra}))
    cache = FeatureCache(cache_dir, served[1]) if cache_dir else None
    found = cache.get(keys) if cache is not None else {}
    todo = [i for i, k in enumerate(keys) if k not in found]
    errors: dict[int, str] = {}
    desc = f"{feature_set} features"
    if not todo and progress and served not in _ANNOUNCED:
        # A cached step says so once, instead of a full bar for every subset a run reads.
        print(f"{desc}: {len(paths)} clips from the cache in {cache_dir}")
    _ANNOUNCED.add(served)
    with tqdm(total=len(paths), initial=len(paths) - len(todo), desc=desc, disable=not (progress and todo),
              leave=False) as bar, Parallel(n_jobs=n_jobs) as parallel:
        for start in range(0, len(todo), chunk_size):
            chunk = todo[start:start + chunk_size]
            results = parallel(delayed(_extract_file)(paths[i], feature_set, settings) for i in chunk)
            fresh = {keys[i]: vec for i, (vec, _) in zip(chunk, results) if vec is not None}
            errors.update({i: err for i, (vec, err) in zip(chunk, results) if vec is None})
            found.update(fresh)
            if cache is not None:
                cache.put(fresh)  # one shard per chunk: an interruption loses at most a chunk
            bar.update(len(chunk))
    return assemble(paths, keys, found, errors, f" for {feature_set} features")


def feature_blocks(paths: Sequence[str | os.PathLike], feature_sets: Sequence[str], **kwargs
                   ) -> tuple[dict[str, np.ndarray], np.ndarray, list[dict]]:
    """``({set: (n, d) float64}, ok, skipped)`` of :func:`features_for_files` for each set (``ok``: in all)."""
    blocks, ok, skipped = {}, np.ones(len(paths), dtype=bool), []
    for name in feature_sets:
        X, ok_set, bad = features_for_files(paths, feature_set=name, **kwargs)
        blocks[name] = np.asarray(X, dtype=np.float64)
        ok &= ok_set
        skipped += bad
    return blocks, ok, skipped


def default_cache_dir(outputs: str | os.PathLike = "outputs") -> Path:
    return Path(outputs) / "cache" / "audio_features"
