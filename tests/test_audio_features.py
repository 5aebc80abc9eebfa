"""Acoustic feature sets and the on-disk feature cache."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

import mer_utils.experts.audio.features as features
from mer_utils.experts.audio.features import FeatureCache, extract_features, features_for_files
from tests.conftest import shared


def _voice(seconds=1.0, f0=150.0, sr=16_000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    wave = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 12)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (0.2 * wave + 0.01 * rng.normal(size=t.size)).astype(np.float32)


@pytest.mark.parametrize("name, dim", [("egemaps", 88), ("compare", 6373), ("librosa", 231)])
def test_feature_sets_give_fixed_length_finite_vectors(name, dim):
    short, long = extract_features(_voice(0.6), name), extract_features(_voice(2.5, f0=220), name)
    assert short.shape == long.shape == (dim,)
    assert np.isfinite(short).all() and np.isfinite(long).all()
    assert not np.allclose(short, long)


def test_unknown_feature_set_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="egemaps"):
        extract_features(_voice(), "mfcc")


def test_every_real_cremad_clip_gets_features(tmp_path):
    clips = sorted(shared("crema-d-sample", "AudioWAV").glob("*.wav"))
    assert len(clips) == 6
    X, ok, skipped = features_for_files(clips, feature_set="librosa", cache_dir=tmp_path, progress=False)
    assert ok.all() and not skipped and X.shape == (6, 231)
    # Six different emotions of one actor: six different vectors.
    assert len({row.tobytes() for row in X}) == 6


def test_cache_is_reused_and_refreshed_when_a_file_changes(tmp_path, monkeypatch):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"clip{i}.wav")
        sf.write(paths[-1], _voice(0.8, f0=120 + 40 * i, seed=i), 16_000)
    cache_dir = tmp_path / "cache"
    first, ok, _ = features_for_files(paths, feature_set="egemaps", cache_dir=cache_dir, progress=False)
    assert ok.all()

    calls = []
    real = features._extract_file
    monkeypatch.setattr(features, "_extract_file", lambda *a: calls.append(a[0]) or real(*a))
    again, _, _ = features_for_files(paths, feature_set="egemaps", cache_dir=cache_dir, progress=False)
    assert calls == [] and np.array_equal(first, again)

    sf.write(paths[1], _voice(0.8, f0=300, seed=9), 16_000)
    os.utime(paths[1], ns=(1, 1))  # a different mtime, whatever the clock resolution
    refreshed, _, _ = features_for_files(paths, feature_set="egemaps", cache_dir=cache_dir, progress=False)
    assert calls == [str(paths[1])]
    assert np.array_equal(refreshed[0], first[0]) and not np.array_equal(refreshed[1], first[1])


def test_broken_clip_is_skipped_and_reported(tmp_path):
    good, bad = tmp_path / "good.wav", tmp_path / "bad.wav"
    sf.write(good, _voice(), 16_000)
    bad.write_bytes(b"\x00" * 2048)
    X, ok, skipped = features_for_files([good, bad], feature_set="librosa", cache_dir=None, progress=False)
    assert ok.tolist() == [True, False]
    assert skipped[0]["path"] == str(bad) and "bad.wav" in skipped[0]["reason"]
    assert not X[1].any()


def test_cache_shards_survive_a_new_process(tmp_path):
    cache = FeatureCache(tmp_path, "ns")
    cache.put({"a": np.arange(3.0), "b": np.ones(3)})
    cache.put({"c": np.zeros(3)})
    reopened = FeatureCache(tmp_path, "ns")
    assert len(reopened) == 3 and reopened.get(["a"])["a"].tolist() == [0.0, 1.0, 2.0]
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "ns").iterdir()) == ["shard", "shard"]
