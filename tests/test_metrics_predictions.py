"""Metrics (scikit-learn backed) and the predictions contract."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mer_utils.data.cremad_vocabulary import EMOTIONS, PROB_COLUMNS
from mer_utils.core.evaluation import save_run_outputs
from mer_utils.core.metrics import aggregate_scores, classification_scores, confusion_frame, format_mean_std
from mer_utils.core.predictions import (
    PredictionsError, make_predictions_frame, read_predictions, write_predictions,
)


def _frame(n=12, subset="test", split="random_seed0", seed=0, fold=0):
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.ones(6), size=n)
    y_true = [EMOTIONS[i % 6] for i in range(n)]
    return make_predictions_frame(clip_ids=[f"10{i:02d}_DFA_{y}_XX" for i, y in enumerate(y_true)], y_true=y_true,
                                  proba=proba, labels=EMOTIONS, split=split, fold=fold, subset=subset,
                                  modality="audio")


def test_scores_match_hand_computed_values():
    y_true = ["ANG", "ANG", "ANG", "SAD"]
    y_pred = ["ANG", "ANG", "SAD", "SAD"]
    s = classification_scores(y_true, y_pred)
    assert s["wa"] == pytest.approx(0.75)
    assert s["ua"] == pytest.approx((2 / 3 + 1) / 2)  # mean recall over present classes
    assert s["per_class"]["SAD"]["precision"] == pytest.approx(0.5)
    cm = confusion_frame(y_true, y_pred, labels=EMOTIONS, normalize=True)
    assert cm.loc["ANG", "SAD"] == pytest.approx(1 / 3) and cm.loc["DIS"].sum() == 0


def test_aggregation_over_folds():
    agg = aggregate_scores([{"wa": 0.5, "ua": 0.4, "macro_f1": 0.3}, {"wa": 0.7, "ua": 0.6, "macro_f1": 0.5}])
    assert agg["wa"]["mean"] == pytest.approx(0.6) and agg["wa"]["std"] == pytest.approx(np.sqrt(0.02))
    assert format_mean_std(0.612, 0.013) == "61.2 ± 1.3"


def test_predictions_round_trip(tmp_path):
    frame = _frame()
    path = write_predictions(tmp_path / "p.csv", frame)
    back = read_predictions(path, expected_split="random_seed0", expected_modality="audio")
    assert list(back.columns[-6:]) == list(PROB_COLUMNS)
    np.testing.assert_allclose(back[list(PROB_COLUMNS)].sum(axis=1), 1, atol=1e-5)
    assert (back["y_pred"] == frame["y_pred"]).all()


@pytest.mark.parametrize("mutate, message", [
    (lambda f: f.drop(columns="modality"), "missing columns"),
    (lambda f: f.rename(columns={"p_ANG": "p_X", "p_DIS": "p_ANG"}).rename(columns={"p_X": "p_DIS"}), "another label set or order"),
    (lambda f: f.assign(p_ANG=f["p_ANG"] + 0.5), "sum to"),
    (lambda f: f.assign(split=["a"] * 6 + ["b"] * 6), "one split per file"),
    (lambda f: f.assign(y_pred="JOY"), "outside"),
    (lambda f: f.assign(subset="dev"), "unknown subset"),
])
def test_reader_refuses_broken_files(tmp_path, mutate, message):
    path = tmp_path / "bad.csv"
    mutate(_frame()).to_csv(path, index=False)
    with pytest.raises(PredictionsError, match=message) as info:
        read_predictions(path, expected_labels=EMOTIONS)
    assert "bad.csv" in str(info.value)


def test_reader_refuses_other_split(tmp_path):
    path = write_predictions(tmp_path / "p.csv", _frame())
    with pytest.raises(PredictionsError, match="expected 'speaker_seed0'"):
        read_predictions(path, expected_split="speaker_seed0")


def test_missing_predictions_file_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="mer audio train"):
        read_predictions(tmp_path / "nope.csv")


def test_save_run_outputs_writes_contract_files(tmp_path):
    frames = [_frame(subset=s, fold=f, seed=f * 2 + i) for f in range(2) for i, s in enumerate(("val", "test"))]
    metrics = save_run_outputs(tmp_path, pd.concat(frames, ignore_index=True),
                               info={"modality": "audio", "protocol": "random", "split": "random_seed0",
                                     "backbone": "toy"})
    assert {"predictions_val.csv", "predictions_test.csv", "metrics.json", "confusion_test.png",
            "confusion_test.csv"} <= {p.name for p in tmp_path.iterdir()}
    assert metrics["summary"]["test"]["ua"]["n"] == 2 and len(metrics["per_fold"]) == 4
    assert len(read_predictions(tmp_path / "predictions_test.csv")) == 24
