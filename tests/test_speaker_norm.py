"""Speaker normalisation: per-speaker statistics only, no labels, a defined single-clip fallback."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from mer_utils.experts.audio.variants import SpeakerNormalizer, sentence_normalise, speaker_statistics


def _features(seed=0):
    rng = np.random.default_rng(seed)
    speakers = np.repeat([11, 12, 13], 10)
    offsets = np.array([[0.0, 5.0], [30.0, -5.0], [-20.0, 0.0]])  # a strong per-speaker "voice"
    X = rng.normal(size=(30, 2)) * np.array([1.0, 3.0]) + offsets[np.repeat([0, 1, 2], 10)]
    return X, speakers


def test_each_speaker_is_standardised_with_its_own_statistics():
    X, speakers = _features()
    Z = SpeakerNormalizer(min_clips=2).fit(X).transform(X, speakers=speakers)
    for speaker in np.unique(speakers):
        rows = Z[speakers == speaker]
        np.testing.assert_allclose(rows.mean(axis=0), 0.0, atol=1e-9)
        np.testing.assert_allclose(rows.std(axis=0), 1.0, atol=1e-9)


def test_changing_one_speaker_never_changes_another_speakers_output():
    X, speakers = _features()
    norm = SpeakerNormalizer(min_clips=2).fit(X)
    before = norm.transform(X, speakers=speakers)
    X2 = X.copy()
    X2[speakers == 13] *= 100.0  # only speaker 13's clips change
    after = norm.transform(X2, speakers=speakers)
    np.testing.assert_array_equal(before[speakers != 13], after[speakers != 13])
    # Row order does not matter either: statistics follow the speaker id, not the position.
    order = np.random.default_rng(1).permutation(len(X))
    np.testing.assert_allclose(norm.transform(X[order], speakers=speakers[order]), before[order])


def test_labels_are_never_an_input():
    for func in (SpeakerNormalizer.fit, SpeakerNormalizer.transform, speaker_statistics, sentence_normalise):
        params = set(inspect.signature(func).parameters)
        assert not params & {"y", "labels", "emotions"}, f"{func.__name__} takes labels: {params}"


def test_a_single_clip_falls_back_to_the_training_statistics():
    X, speakers = _features()
    norm = SpeakerNormalizer(min_clips=8).fit(X)
    clip = np.array([[3.0, 4.0]])
    expected = (clip - X.mean(axis=0)) / X.std(axis=0)
    np.testing.assert_allclose(norm.transform(clip, speakers=["demo"]), expected)
    np.testing.assert_allclose(norm.transform(clip, speakers=None), expected)


def test_constant_features_and_checkpoint_round_trip():
    X, speakers = _features()
    X = np.c_[X, np.ones(len(X))]  # a feature constant for every speaker
    norm = SpeakerNormalizer(min_clips=2).fit(X)
    Z = norm.transform(X, speakers=speakers)
    assert np.isfinite(Z).all() and np.allclose(Z[:, 2], 0.0)
    rebuilt = SpeakerNormalizer(2, norm.global_mean.copy(), norm.global_scale.copy())
    np.testing.assert_array_equal(rebuilt.transform(X, speakers=speakers), Z)


def test_bad_arguments_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="min_clips"):
        SpeakerNormalizer(min_clips=1)
    with pytest.raises(RuntimeError, match="fit"):
        SpeakerNormalizer().transform(np.zeros((2, 2)), speakers=[1, 1])
    with pytest.raises(ValueError, match="shape"):
        SpeakerNormalizer().fit(np.zeros((3, 2))).transform(np.zeros((3, 5)), speakers=[1, 1, 1])


def test_sentence_groups_are_standardised_with_their_own_clips_and_small_groups_with_the_speakers():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3)) + 5
    speakers = np.array(["a"] * 14 + ["b"] * 6)
    # a: 8 clips of s1 and 6 of s2 (one of them with no sentence id); b: 6 clips, too few for speaker statistics
    sentences = np.array(["s1"] * 8 + ["s2"] * 5 + [None] + ["s1"] * 6, dtype=object)
    out = sentence_normalise(X, speakers, sentences, min_group_clips=6, min_clips=8)
    s1 = slice(0, 8)
    np.testing.assert_allclose(out[s1], (X[s1] - X[s1].mean(0)) / X[s1].std(0))
    # a's "s2" group has 5 clips (< 6) and the unknown sentence joins no group: the speaker's statistics
    a = X[:14]
    np.testing.assert_allclose(out[8:14], (X[8:14] - a.mean(0)) / a.std(0))
    # b's 6 s1 clips make a group of their own: groups never mix speakers
    np.testing.assert_allclose(out[14:], (X[14:] - X[14:].mean(0)) / X[14:].std(0))
    alone = sentence_normalise(X[14:], speakers[14:], [None] * 6, min_group_clips=6, min_clips=8)
    np.testing.assert_array_equal(alone, X[14:])  # no group, too few clips for the speaker: left as it is


def test_sentence_statistics_come_from_the_reference_pool():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(12, 2))
    speakers, sentences = ["a"] * 12, ["s"] * 12
    out = sentence_normalise(X[:3], speakers[:3], sentences[:3], reference=(X, speakers, sentences),
                             min_group_clips=6, min_clips=8)
    np.testing.assert_allclose(out, (X[:3] - X.mean(0)) / X.std(0))
    with pytest.raises(ValueError, match="sentence ids"):
        sentence_normalise(X, speakers, sentences[:5])
