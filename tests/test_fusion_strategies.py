"""Strategies, calibration and significance on complementary fake experts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fusion_fakes import expert_frames
from sklearn.base import clone
from sklearn.metrics import log_loss

from mer_utils.data.cremad_vocabulary import EMOTIONS
from mer_utils.fusion.rules import apply_rule, apply_temperature, fit_temperature
from mer_utils.fusion.config import STRATEGY_NAMES
from mer_utils.fusion.join import build_master_table, expert_probabilities
from mer_utils.fusion.significance import bootstrap_ci, mcnemar_test, vectorised_scores
from mer_utils.fusion.strategies import MaxConfidenceFusion, WeightedRuleFusion, make_strategy, simplex_grid
from mer_utils.core.metrics import classification_scores, ua_score


@pytest.fixture(scope="module")
def val():
    master, _ = build_master_table(expert_frames(n_per_class=40, seed=3))
    rows = master[master["subset"] == "val"]
    audio, visual = expert_probabilities(rows, "audio"), expert_probabilities(rows, "visual")
    return np.hstack([audio, visual]), rows["y_true"].to_numpy(dtype=str), audio, visual


def _ua(y, proba):
    return ua_score(y, np.asarray(EMOTIONS)[proba.argmax(axis=1)])


def test_every_strategy_beats_the_weaker_expert_and_averaging_matches_the_better(val):
    X, y, audio, visual = val
    singles = sorted([_ua(y, audio), _ua(y, visual)])
    for name in STRATEGY_NAMES:
        fused = make_strategy(name, labels=EMOTIONS).fit(X, y)
        assert fused.predict_proba(X).shape == (len(y), len(EMOTIONS))
        assert _ua(y, fused.predict_proba(X)) > singles[0], name
    # The weight grid contains both single experts, so the tuned average is never worse than the better one.
    assert _ua(y, WeightedRuleFusion(labels=EMOTIONS).fit(X, y).predict_proba(X)) >= singles[1]


def test_exported_rules_reproduce_every_fitted_strategy(val):
    X, y, audio, visual = val
    for name in STRATEGY_NAMES:
        fitted = make_strategy(name, labels=EMOTIONS).fit(X, y)
        rule = json.loads(json.dumps(fitted.export()))  # what a JSON file gives back
        assert apply_rule(rule, [audio, visual], EMOTIONS) == pytest.approx(fitted.predict_proba(X), abs=1e-9), name
    # A validation set with two classes gives scikit-learn's one-row binary regression.
    two = np.isin(y, ["ANG", "SAD"])
    stacking = make_strategy("stacking", labels=EMOTIONS).fit(X[two], y[two])
    assert apply_rule(stacking.export(), [audio, visual], EMOTIONS) == pytest.approx(stacking.predict_proba(X), abs=1e-9)


def test_weight_search_follows_the_informative_expert(val):
    X, y, audio, visual = val
    noise = np.random.default_rng(0).dirichlet(np.ones(6), size=len(y))
    fitted = WeightedRuleFusion(labels=EMOTIONS, grid_step=0.1).fit(np.hstack([audio, noise]), y)
    assert fitted.weights_[0] > 0.5, "an expert of pure noise should not get most of the weight"
    assert fitted.fitted_params()["weights"][0] == pytest.approx(fitted.weights_[0])


def test_product_rule_is_the_equal_weight_geometric_mean():
    a = np.array([[0.6, 0.2, 0.1, 0.05, 0.03, 0.02]])
    b = np.array([[0.1, 0.5, 0.2, 0.1, 0.05, 0.05]])
    product = make_strategy("product", labels=EMOTIONS)
    assert clone(product).get_params() == {"labels": EMOTIONS, "rule": "log_linear", "search": False, "grid_step": 0.05}
    fused = product.fit(np.hstack([a, b]), ["ANG"]).predict_proba(np.hstack([a, b]))
    expected = np.sqrt(a * b) / np.sqrt(a * b).sum()
    assert fused == pytest.approx(expected)


def test_max_confidence_trusts_the_surer_expert():
    a = np.array([[0.9, 0.02, 0.02, 0.02, 0.02, 0.02], [0.3, 0.2, 0.2, 0.1, 0.1, 0.1]])
    b = np.array([[0.1, 0.5, 0.1, 0.1, 0.1, 0.1], [0.02, 0.02, 0.02, 0.02, 0.02, 0.9]])
    X = np.hstack([a, b])
    assert MaxConfidenceFusion(labels=EMOTIONS).fit(X, ["ANG", "SAD"]).predict(X).tolist() == ["ANG", "SAD"]


def test_simplex_grid_and_bad_step():
    assert simplex_grid(3, 0.5).sum(axis=1).tolist() == [1.0] * 6
    with pytest.raises(ValueError, match="grid_step must divide 1"):
        simplex_grid(2, 0.3)
    with pytest.raises(ValueError, match="unknown fusion strategy 'mean'"):
        make_strategy("mean", labels=EMOTIONS)
    with pytest.raises(ValueError, match="unknown weighted rule 'median'"):
        WeightedRuleFusion(labels=EMOTIONS, rule="median").fit(np.full((1, 12), 1 / 6), ["ANG"])


def test_temperature_cools_an_overconfident_expert_without_changing_its_choice(val):
    _, y, audio, _ = val
    temperature = fit_temperature(audio, y, labels=EMOTIONS)
    calibrated = apply_temperature(audio, temperature)
    assert temperature > 1.5  # the fake audio expert is made 3x over-confident
    assert log_loss(y, calibrated, labels=list(EMOTIONS)) < log_loss(y, audio, labels=list(EMOTIONS))
    assert (calibrated.argmax(axis=1) == audio.argmax(axis=1)).all()


def testvectorised_scores_equal_scikit_learn(val):
    _, y, audio, _ = val
    y_pred = np.asarray(EMOTIONS)[audio.argmax(axis=1)]
    index = {e: i for i, e in enumerate(EMOTIONS)}
    fast = vectorised_scores(np.array([index[v] for v in y]), np.array([index[v] for v in y_pred]), 6)
    reference = classification_scores(y, y_pred)
    for key in ("wa", "ua", "macro_f1"):
        assert float(fast[key]) == pytest.approx(reference[key])


def test_bootstrap_interval_brackets_the_score_and_is_reproducible(val):
    _, y, audio, _ = val
    y_pred = np.asarray(EMOTIONS)[audio.argmax(axis=1)]
    ci = bootstrap_ci(y, y_pred, labels=EMOTIONS, n_bootstrap=300, seed=1)
    scores = classification_scores(y, y_pred)
    for key in ("wa", "ua", "macro_f1"):
        low, high = ci[key]
        assert low < scores[key] < high
        assert 0.02 < high - low < 0.4  # a few hundred clips: a few points either way
    assert bootstrap_ci(y, y_pred, labels=EMOTIONS, n_bootstrap=300, seed=1) == ci


def test_mcnemar_exact_p_value():
    y = ["ANG"] * 30
    a = ["ANG"] * 30
    b = ["ANG"] * 20 + ["SAD"] * 10  # a right on 10 clips b gets wrong, never the reverse
    result = mcnemar_test(y, a, b)
    assert (result["a_only"], result["b_only"]) == (10, 0)
    assert result["p_value"] == pytest.approx(2 * 0.5 ** 10)
    assert mcnemar_test(y, a, a)["p_value"] == 1.0
