"""The ``ge2e`` feature set: the pretrained speaker encoder that the Resemblyzer package ships."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from mer_utils.experts.audio import speaker_encoder
from mer_utils.experts.audio.features import FEATURE_SETS, extract_features, features_for_files
from tests.conftest import shared

pytestmark = pytest.mark.skipif(importlib.util.find_spec("resemblyzer") is None,
                                reason="the ge2e feature set needs `pip install resemblyzer==0.1.4`")


def _voice(seconds=1.5, f0=150.0, sr=16_000, seed=0, level=0.2):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    wave = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 12)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (level * wave / np.abs(wave).max() + 0.001 * rng.normal(size=t.size)).astype(np.float32)


def test_ge2e_gives_fixed_length_finite_vectors_that_tell_voices_apart():
    low, high = extract_features(_voice(0.8), "ge2e"), extract_features(_voice(2.5, f0=240), "ge2e")
    assert low.shape == high.shape == (speaker_encoder.DIM,) == (1792,)
    assert np.isfinite(low).all() and np.isfinite(high).all()
    assert not np.allclose(low, high, atol=1e-3)
    assert "Apache" in FEATURE_SETS["ge2e"].licence


def test_quiet_recordings_are_raised_to_the_encoders_level():
    """A clip recorded 10 dB quieter gives the same features (Resemblyzer's increase-only volume norm)."""
    quiet = _voice(level=0.01)
    np.testing.assert_allclose(extract_features(quiet, "ge2e"), extract_features(quiet * np.float32(10 ** 0.5), "ge2e"),
                               atol=1e-4)


def test_the_pretrained_weights_are_loaded_real_voices_are_told_apart():
    """GE2E was trained to separate speakers: two RAVDESS actors of the same sex are told apart by the
    nearest centroid of the other clips (a randomly initialised LSTM would not do this reliably)."""
    from mer_utils.data.manifest import build_manifest

    root = shared("ravdess-dev")
    manifest = build_manifest(root, progress=False).manifest
    clips = manifest[manifest["actor_id"].isin([1, 3])].groupby("actor_id").head(8)  # two men, 8 clips each
    X, ok, _ = features_for_files([root / p for p in clips["audio_path"]], feature_set="ge2e", cache_dir=None,
                                  progress=False)
    assert ok.all()
    X = (X - X.mean(axis=0)) / (X.std(axis=0) + 1e-6)
    actors = clips["actor_id"].to_numpy()
    hits = 0
    for i in range(len(X)):
        others = np.arange(len(X)) != i
        centroids = {a: X[others & (actors == a)].mean(axis=0) for a in (1, 3)}
        hits += min(centroids, key=lambda a: np.linalg.norm(X[i] - centroids[a])) == actors[i]
    assert hits >= 15  # of 16


def test_missing_package_is_named_with_its_pip_install(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "resemblyzer" else real(name, *a))
    with pytest.raises(ImportError, match=r"pip install resemblyzer==0\.1\.4"):
        features_for_files([tmp_path / "a.wav"], feature_set="ge2e", cache_dir=None, progress=False)
    with pytest.raises(ImportError, match=r"pip install resemblyzer==0\.1\.4"):
        speaker_encoder.weights_path()


@pytest.fixture(scope="module")
def ge2e_run(tmp_path_factory):
    from mer_utils.data.synthetic.corpus import make_synthetic_corpus
    from mer_utils.experts.audio.train import train_audio

    base = tmp_path_factory.mktemp("ge2e")
    corpus = make_synthetic_corpus(base / "corpus", n_actors=8, sentences=("DFA", "IEO", "ITS"), seed=0,
                                   with_video=False)
    result = train_audio(data_root=str(corpus), protocol="speaker", backbone="librosa,ge2e",
                         outputs=str(base / "outputs"), checkpoints=str(base / "checkpoints"), progress=False)
    return corpus, result


def test_ge2e_checkpoint_round_trips_and_reproduces_the_run(ge2e_run):
    from mer_utils.experts.audio.checkpoint import load_audio_expert
    from tests.conftest import rescored_test_clips

    corpus, result = ge2e_run
    assert [b["feature_sets"] for b in result.metrics["folds"][0]["blocks"]] == [["librosa"], ["ge2e"]]
    expert = load_audio_expert(result.checkpoint)
    meta = expert.metadata()
    assert meta["encoders"]["ge2e"] == speaker_encoder.weights_fingerprint() and "Apache" in meta["licence"]
    proba, written = rescored_test_clips(expert, corpus, result)
    np.testing.assert_allclose(proba, written, atol=2e-6)


def test_a_checkpoint_of_other_encoder_statistics_is_refused_at_load(ge2e_run, monkeypatch, tmp_path):
    import shutil

    import mer_utils.experts.audio.classical as classical
    from mer_utils.experts.audio.checkpoint import load_audio_expert

    _, result = ge2e_run
    checkpoint = shutil.copy(result.checkpoint, tmp_path / "older.safetensors")
    # The installed encoder computes other statistics than the checkpoint was fitted on (same weights).
    other = {**speaker_encoder.weights_fingerprint(), "statistics": "mean,std of layers 2-3"}
    monkeypatch.setattr(classical, "feature_set_fingerprint", lambda part: other if part == "ge2e" else None)
    with pytest.raises(ValueError, match=r"computed as .*mean,std of layers 2-3; 10/50/90th.*retrain it"):
        load_audio_expert(checkpoint)


def test_a_checkpoint_refuses_other_encoder_weights(ge2e_run, monkeypatch, tmp_path):
    import shutil

    import mer_utils.experts.audio.classical as classical
    from mer_utils.experts.audio.checkpoint import load_audio_expert

    _, result = ge2e_run
    checkpoint = shutil.copy(result.checkpoint, tmp_path / "copy.safetensors")  # a path the loader has not cached
    other = {**speaker_encoder.weights_fingerprint(), "version": "9.9", "weights_sha256": "0" * 64}
    monkeypatch.setattr(classical, "feature_set_fingerprint", lambda part: other if part == "ge2e" else None)
    with pytest.raises(ValueError, match=r"installed weights differ.*pip install resemblyzer==0\.1\.4"):
        load_audio_expert(checkpoint)


def test_the_encoder_runs_in_onnx_runtime_with_torchs_features_and_no_torch(tmp_path, monkeypatch):
    import json
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    waves = [_voice(0.6), _voice(2.5, f0=240, seed=1)]  # two lengths: the export keeps the time axis free
    monkeypatch.delitem(speaker_encoder._ENCODER, "network", raising=False)
    on_torch = [speaker_encoder.ge2e_features(w) for w in waves]
    env = {"MER_ONNX": "1", "MER_ONNX_CACHE": str(tmp_path / "onnx_cache")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delitem(speaker_encoder._ENCODER, "network")
    exported = [speaker_encoder.ge2e_features(w) for w in waves]  # the first call exports
    assert len(list((tmp_path / "onnx_cache").glob("ge2e-layers-*.onnx"))) == 1
    for ours, theirs in zip(exported, on_torch):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)
    np.save(tmp_path / "wave.npy", waves[1])
    code = ("import sys, json, numpy as np\nfrom mer_utils.experts.audio.features import extract_features\n"
            f"v = extract_features(np.load({str(tmp_path / 'wave.npy')!r}), 'ge2e')\n"
            "print(json.dumps({'v': v.tolist(), 'torch': 'torch' in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO,
                         env={**os.environ, **env, "PYTHONPATH": str(REPO)}).stdout
    fresh = json.loads(out.strip().splitlines()[-1])
    assert fresh["torch"] is False
    np.testing.assert_allclose(fresh["v"], on_torch[1], atol=1e-5)
    monkeypatch.delitem(speaker_encoder._ENCODER, "network")  # later tests get torch again (MER_ONNX=0)
