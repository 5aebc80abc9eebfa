"""Offline recipes: fit/predict on synthetic functionals, array round trip, speaker adaptation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mer_utils.experts.audio.variants import (DEFAULT_RECIPE, Recipe, balance_per_speaker, fit_recipe_held_out,
                                              fitted_from_arrays, fitted_to_arrays, predict_recipe,
                                              predict_with_fallback, without_speaker_statistics)

LABELS = ("ANG", "HAP", "SAD")


def _corpus(n_speakers=8, per_class=6, dims=(5, 12), seed=0, labels=LABELS):
    """Functionals = per-speaker offset + class signal + noise, for two feature sets."""
    rng = np.random.default_rng(seed)
    rows, X = [], {f"set{i}": [] for i in range(len(dims))}
    centres = [rng.normal(size=(len(labels), d)) * 1.5 for d in dims]
    for s in range(n_speakers):
        offsets = [rng.normal(size=d) * 5 for d in dims]
        for c in range(len(labels)):
            for k in range(per_class):
                rows.append({"clip_id": f"s{s}_c{c}_{k}", "actor_id": s + 1, "emotion": labels[c],
                             "sex": "Male" if s % 2 else "Female"})
                for i, d in enumerate(dims):
                    X[f"set{i}"].append(offsets[i] + centres[i][c] + rng.normal(size=d))
    return pd.DataFrame(rows), {k: np.asarray(v) for k, v in X.items()}


def _data(manifest, X, actors, labels=LABELS):
    rows = manifest["actor_id"].isin(actors).to_numpy()
    return {"X": {k: v[rows] for k, v in X.items()}, "y": manifest.loc[rows, "emotion"].map(labels.index).to_numpy(),
            "speakers": manifest.loc[rows, "actor_id"].to_numpy()}


RECIPES = [
    Recipe(feature_sets=("set0", "set1"), speaker_norm="meanstd", c_grid=(0.1, 1.0)),
    Recipe(feature_sets=("set0", "set1"), combine="average", speaker_norm="meanstd", refit=True, c_grid=(0.1, 1.0)),
    Recipe(feature_sets=("set0", "set1"), speaker_norm="meanstd", balance=True, c_grid=(1.0,)),
    Recipe(feature_sets=("set0",), c_grid=(1.0,)),
]


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda r: r.name)
def test_fit_predict_and_exact_array_round_trip(recipe):
    manifest, X = _corpus()
    train, val, test = (_data(manifest, X, a) for a in ([1, 2, 3, 4, 5], [6], [7, 8]))
    models, _, report = fit_recipe_held_out(recipe, train, val, labels=LABELS)
    proba = predict_recipe(models, recipe, test["X"], test["speakers"])
    assert proba.shape == (len(test["y"]), len(LABELS))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    if recipe.speaker_norm:  # without it the strong synthetic speaker offsets swamp the class signal
        assert (proba.argmax(axis=1) == test["y"]).mean() > 0.6
    json.dumps(report)

    arrays, meta = fitted_to_arrays(models, recipe)
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in arrays.values())
    meta = json.loads(json.dumps(meta))  # survives JSON
    rebuilt, recipe2 = fitted_from_arrays(dict(arrays), meta)
    assert recipe2 == recipe
    for speakers in (test["speakers"], None):
        np.testing.assert_allclose(predict_recipe(rebuilt, recipe2, test["X"], speakers),
                                   predict_recipe(models, recipe, test["X"], speakers), rtol=1e-10, atol=1e-12)


def test_linear_head_matches_sklearn_probabilities():
    from sklearn.linear_model import LogisticRegression

    manifest, X = _corpus()
    train, val = _data(manifest, X, [1, 2, 3, 4]), _data(manifest, X, [5])
    recipe = Recipe(feature_sets=("set0",), c_grid=(0.5,))
    (model,), _, _ = fit_recipe_held_out(recipe, train, val, labels=LABELS)
    Z = (train["X"]["set0"] - model.mean) / model.scale
    ref = LogisticRegression(C=0.5, class_weight="balanced", max_iter=3000, random_state=0).fit(Z, train["y"])
    np.testing.assert_allclose(model.proba(train["X"]["set0"]), ref.predict_proba(Z), atol=1e-8)


def test_missing_class_and_label_set_parameter():
    labels = ("ANG", "HAP", "NEU", "SAD")
    manifest, X = _corpus(labels=labels)
    rows = manifest["emotion"].ne("NEU").to_numpy()  # NEU never seen in training
    manifest, X = manifest[rows].reset_index(drop=True), {k: v[rows] for k, v in X.items()}
    recipe = Recipe(feature_sets=("set0",), speaker_norm="meanstd", c_grid=(1.0,))
    models, _, _ = fit_recipe_held_out(recipe, _data(manifest, X, [1, 2, 3, 4, 5], labels),
                                       _data(manifest, X, [6], labels), labels=labels)
    proba = predict_recipe(models, recipe, _data(manifest, X, [7], labels)["X"], None)
    assert proba.shape[1] == 4 and np.allclose(proba[:, labels.index("NEU")], 0.0)


def test_balance_matches_the_prior_per_speaker_and_leaves_small_speakers_alone():
    rng = np.random.default_rng(0)
    proba = rng.dirichlet([5, 1, 1], size=20)  # a speaker heard as mostly class 0
    speakers = np.array(["a"] * 12 + ["c"] * 8)
    prior = np.array([0.5, 0.25, 0.25])
    out = balance_per_speaker(proba, speakers, prior, min_clips=10)
    np.testing.assert_allclose(out[:12].mean(axis=0), prior, atol=1e-3)
    np.testing.assert_array_equal(out[12:], proba[12:])  # "c" has 8 < 10 clips: untouched
    np.testing.assert_allclose(out.sum(axis=1), 1.0)


def test_default_recipe_scores_each_clip_alone_and_is_serialisable():
    from mer_utils.experts.audio.classical import recipe_for

    assert DEFAULT_RECIPE.speaker_norm is None and not DEFAULT_RECIPE.balance and not DEFAULT_RECIPE.sentence_norm
    assert recipe_for("ge2e") == DEFAULT_RECIPE  # `mer audio train`'s default is the package default
    assert Recipe.from_dict(json.loads(json.dumps(DEFAULT_RECIPE.to_dict()))) == DEFAULT_RECIPE


def test_fallback_model_scores_speakers_with_too_few_clips():
    manifest, X = _corpus()
    train, val, test = (_data(manifest, X, a) for a in ([1, 2, 3, 4, 5], [6], [7, 8]))
    recipe = Recipe(feature_sets=("set0", "set1"), combine="average", speaker_norm="meanstd", c_grid=(1.0,))
    fallback = Recipe(feature_sets=("set0", "set1"), combine="average", c_grid=(1.0,))
    models, _, _ = fit_recipe_held_out(recipe, train, val, labels=LABELS)
    fb_models, _, _ = fit_recipe_held_out(fallback, train, val, labels=LABELS)
    speakers = test["speakers"].copy()
    speakers[0] = 99  # a speaker with one clip
    proba = predict_with_fallback(models, recipe, fb_models, fallback, test["X"], speakers)
    alone = {k: v[:1] for k, v in test["X"].items()}
    np.testing.assert_allclose(proba[:1], predict_recipe(fb_models, fallback, alone, None))
    rest = {k: v[1:] for k, v in test["X"].items()}
    np.testing.assert_allclose(proba[1:], predict_recipe(models, recipe, rest, speakers[1:]))
    np.testing.assert_allclose(predict_with_fallback(models, recipe, fb_models, fallback, test["X"], None),
                               predict_recipe(fb_models, fallback, test["X"], None))
    adapted = Recipe(feature_sets=("ge2e",), speaker_norm="meanstd", sentence_norm=True, balance=True, refit=True)
    assert without_speaker_statistics(adapted) == DEFAULT_RECIPE  # an adapted model's single-clip model


@pytest.mark.parametrize("balance", [False, True])
def test_a_test_speakers_predictions_depend_on_their_own_clips_only(balance):
    manifest, X = _corpus()
    train, val, test = (_data(manifest, X, a) for a in ([1, 2, 3, 4, 5], [6], [7, 8]))
    recipe = Recipe(feature_sets=("set0", "set1"), combine="average", speaker_norm="meanstd", refit=True,
                    balance=balance, c_grid=(1.0,))
    models, _, _ = fit_recipe_held_out(recipe, train, val, labels=LABELS)
    before = predict_recipe(models, recipe, test["X"], test["speakers"])
    other = test["speakers"] == 8
    changed = {k: np.where(other[:, None], v * 3.0 + 7.0, v) for k, v in test["X"].items()}
    after = predict_recipe(models, recipe, changed, test["speakers"])
    np.testing.assert_allclose(after[~other], before[~other])
    order = np.random.default_rng(0).permutation(len(other))  # statistics follow speaker ids, not positions
    shuffled = predict_recipe(models, recipe, {k: v[order] for k, v in test["X"].items()}, test["speakers"][order])
    np.testing.assert_allclose(shuffled, before[order], atol=1e-9)


def test_unknown_combine_and_speaker_norm_are_refused_by_name():
    with pytest.raises(ValueError, match="combine must be one of"):
        Recipe(feature_sets=("set0", "set1"), combine="median")
    with pytest.raises(ValueError, match="unknown speaker_norm 'quantile'"):
        Recipe(feature_sets=("set0",), speaker_norm="quantile")


def test_sentence_norm_removes_what_each_sentence_adds_and_is_checked():
    """Each speaker reads two sentences in every emotion; the sentence shifts every feature. Normalised per
    speaker and sentence, the shift is gone: a held-out speaker is scored as if both sentences were one."""
    manifest, X = _corpus(per_class=8)
    sentences = np.where(np.arange(len(manifest)) % 2, "s1", "s2").astype(object)
    shifted = {k: v + np.where(sentences == "s1", 6.0, 0.0)[:, None] for k, v in X.items()}
    recipe = Recipe(feature_sets=("set0", "set1"), combine="average", speaker_norm="meanstd", sentence_norm=True,
                    c_grid=(1.0,))
    data = []
    for actors in ([1, 2, 3, 4, 5], [6], [7, 8]):
        d = _data(manifest, shifted, actors)
        d["sentences"] = sentences[manifest["actor_id"].isin(actors).to_numpy()]
        data.append(d)
    models, _, report = fit_recipe_held_out(recipe, data[0], data[1], labels=LABELS)
    assert report["sentence_groups"] == {"train_clips_with_sentence": 120, "val_clips_with_sentence": 24}
    test = data[2]
    proba = predict_recipe(models, recipe, test["X"], test["speakers"], sentences=test["sentences"])
    unshifted = {k: v[manifest["actor_id"].isin([7, 8]).to_numpy()] for k, v in X.items()}
    same_clips = predict_recipe(models, recipe, unshifted, test["speakers"], sentences=test["sentences"])
    np.testing.assert_allclose(proba, same_clips, atol=1e-9)  # the sentence offset no longer matters
    assert "sentencenorm" in recipe.name and recipe == Recipe.from_dict(json.loads(json.dumps(recipe.to_dict())))
    with pytest.raises(ValueError, match="set speaker_norm too"):
        Recipe(feature_sets=("set0",), sentence_norm=True)
    with pytest.raises(ValueError, match="set speaker_norm too"):
        Recipe(feature_sets=("set0",), balance=True)


def test_balance_leaves_a_sample_of_a_speakers_clips_as_it_is():
    """A random split scores a sample of each speaker's clips, which need not spread like the prior:
    prior matching applies only to speakers scored with all of their clips in the reference pool."""
    manifest, X = _corpus()
    train, val, test = (_data(manifest, X, a) for a in ([1, 2, 3, 4, 5], [6], [7, 8]))
    plain = Recipe(feature_sets=("set0",), speaker_norm="meanstd", c_grid=(1.0,))
    balanced = Recipe(feature_sets=("set0",), speaker_norm="meanstd", balance=True, c_grid=(1.0,))
    models, _, _ = fit_recipe_held_out(plain, train, val, labels=LABELS)
    pool = (test["X"], test["speakers"])
    sample = np.flatnonzero(test["speakers"] == 7)[:10]  # 10 of speaker 7's 18 clips
    part = {k: v[sample] for k, v in test["X"].items()}
    np.testing.assert_allclose(predict_recipe(models, balanced, part, test["speakers"][sample], pool),
                               predict_recipe(models, plain, part, test["speakers"][sample], pool))
    whole = predict_recipe(models, balanced, test["X"], test["speakers"], pool)
    assert not np.allclose(whole, predict_recipe(models, plain, test["X"], test["speakers"], pool))
