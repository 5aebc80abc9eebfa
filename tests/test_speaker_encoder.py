"""The ``ge2e`` feature set: the pretrained speaker encoder that the Resemblyzer package ships."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from mer_utils.core.atomic_io import read_json
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
    assert "Apache" in FEATURE_SETS["ge2e"]


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
    meta = read_json(result.checkpoint.with_suffix(".json"))
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


def test_mer_export_onnx_copies_the_encoder_of_a_ge2e_checkpoint_and_the_demo_answers_as_torch(ge2e_run):
    from mer_utils.cli import main
    from mer_utils.core.checkpoint_index import find_entries

    _, result = ge2e_run
    checkpoints = result.checkpoint.parent
    assert main(["export", "onnx", "--checkpoints", str(checkpoints)]) == 0
    (entry,) = find_entries(checkpoints, modality="audio")
    record = entry["onnx"]
    assert record["path"].endswith(".ge2e.onnx") and (checkpoints / record["path"]).is_file()
    assert 0 <= record["max_abs_diff"] <= 1e-4
    # The demo's speech expert runs the listed copy, with torch's answers.
    from mer_utils.experts.audio.checkpoint import load_audio_expert
    from mer_utils.experts.onnx_export import with_listed_copy

    on_torch = load_audio_expert(result.checkpoint)
    on_onnx = with_listed_copy("audio", on_torch, checkpoints, entry)
    assert on_torch.encoder is None and on_onnx.encoder is not None
    waves = [_voice(0.6), _voice(2.5, f0=240, seed=1)]  # two lengths: the copy keeps the time axis free
    np.testing.assert_allclose(on_onnx.predict_proba(waves), on_torch.predict_proba(waves), atol=1e-5)
    # Its file gone: torch answers.
    (checkpoints / record["path"]).unlink()
    assert with_listed_copy("audio", on_torch, checkpoints, entry) is on_torch
