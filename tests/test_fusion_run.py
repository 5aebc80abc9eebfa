"""``fuse_runs`` / ``mer fuse`` end to end on fake expert run folders."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fusion_fakes import expert_frames, write_expert_pair, write_expert_run

from mer_utils.core.atomic_io import read_json
from mer_utils.cli import main
from mer_utils.data.cremad_vocabulary import EMOTIONS
from mer_utils.fusion.rules import FusionRule, load_fusion_rule
from mer_utils.fusion.join import build_master_table
from mer_utils.core.checkpoint_index import read_index
from mer_utils.fusion.run import export_rule, fuse_runs, latest_expert_runs
from mer_utils.fusion.tuning import fuse_master
from mer_utils.core.predictions import read_predictions
from mer_utils.core.runs import resolve_latest


@pytest.fixture(scope="module")
def fused(tmp_path_factory):
    outputs = tmp_path_factory.mktemp("fuse") / "outputs"
    audio, visual = write_expert_pair(outputs, protocol="random", n_per_class=30)
    return outputs, fuse_runs(audio, visual, outputs=outputs, n_bootstrap=200,
                              checkpoints=outputs.parent / "checkpoints")


def test_run_folder_follows_the_contract(fused):
    outputs, run_dir = fused
    for name in ("config.json", "env.json", "metrics.json", "master.csv", "fusion_results.csv",
                 "fusion_results.md", "predictions_val.csv", "predictions_test.csv", "confusion_test.png",
                 "strategies/stacking_test.csv", "strategies/weighted_average_val.csv"):
        assert (run_dir / name).exists(), name
    test = read_predictions(run_dir / "predictions_test.csv", expected_modality="audio_visual",
                            expected_split="random_seed0")
    metrics = read_json(run_dir / "metrics.json")
    assert metrics["modality"] == "audio_visual" and metrics["protocol"] == "random"
    assert metrics["backbone"] == f"fusion:{metrics['strategy']}"
    assert metrics["experts"]["audio"]["run_dir"] == "audio/random_egemaps_seed0"
    assert set(metrics["summary"]) == {"val", "test"} and len(test) == metrics["per_fold"][1]["n"]
    assert resolve_latest(outputs, "fusion", "random") == run_dir.resolve()
    assert read_json(run_dir / "config.json")["n_bootstrap"] == 200


def test_fusion_beats_the_weaker_expert_and_matches_the_better_on_validation(fused):
    _, run_dir = fused
    table = pd.read_csv(run_dir / "fusion_results.csv").set_index("method")
    singles = table.loc[["audio", "visual"], "val_ua_mean"].sort_values()
    chosen = table.index[table["chosen"]][0]
    assert table.loc[chosen, "val_ua_mean"] > singles.iloc[0]
    assert table.loc[chosen, "val_ua_mean"] >= singles.iloc[1]
    assert table.loc["weighted_average", "val_ua_mean"] >= singles.iloc[1]
    # The table reports test scores with an interval and a paired test against the best single expert.
    row = table.loc[chosen]
    assert row["test_ua_ci_low"] <= row["test_ua_mean"] <= row["test_ua_ci_high"]
    assert row["mcnemar_p"] < 0.05
    assert np.isnan(table.loc[singles.index[-1], "mcnemar_p"])
    assert "McNemar p vs" in (run_dir / "fusion_results.md").read_text()


def _poison_test(master: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Scramble every test label (the experts' probabilities stay as they were)."""
    poisoned = master.copy()
    is_test = poisoned["subset"] == "test"
    rng = np.random.default_rng(seed)
    poisoned.loc[is_test, "y_true"] = rng.choice(EMOTIONS, size=int(is_test.sum()))
    return poisoned


def test_choices_never_read_the_test_set():
    master, _ = build_master_table(expert_frames(n_per_class=25, n_folds=2, split="speaker-kfold2_seed0"))
    clean = fuse_master(master, seed=0)
    poisoned = fuse_master(_poison_test(master, seed=7), seed=0)
    assert poisoned.chosen == clean.chosen and poisoned.best_single == clean.best_single
    assert poisoned.params == clean.params and poisoned.temperatures == clean.temperatures
    assert poisoned.selection.equals(clean.selection)
    for name in clean.strategies:
        probs = [f for f in clean.predictions[name].columns if f.startswith("p_")]
        assert np.array_equal(poisoned.predictions[name][probs].to_numpy(), clean.predictions[name][probs].to_numpy())


def test_test_rows_can_be_replaced_without_changing_any_choice():
    # Other clips, other labels, other probabilities on test: every tuned value stays the same.
    master, _ = build_master_table(expert_frames(n_per_class=25, seed=2))
    other_test, _ = build_master_table(expert_frames(n_per_class=25, seed=9))
    swapped = pd.concat([master[master["subset"] == "val"], other_test[other_test["subset"] == "test"]])
    a, b = fuse_master(master), fuse_master(swapped)
    assert (a.chosen, a.params, a.temperatures) == (b.chosen, b.params, b.temperatures)


def test_kfold_runs_are_fused_per_fold(tmp_path):
    outputs = tmp_path / "outputs"
    audio, visual = write_expert_pair(outputs, protocol="speaker-kfold", n_folds=3, split="speaker-kfold3_seed0",
                                      n_per_class=12)
    run_dir = fuse_runs(audio, visual, outputs=outputs, strategies=["weighted_average", "product"],
                        n_bootstrap=100, calibrate=False, checkpoints=None)
    metrics = read_json(run_dir / "metrics.json")
    assert [p["fold"] for p in metrics["params"]] == [0, 1, 2]
    assert metrics["summary"]["test"]["ua"]["n"] == 3 and metrics["temperatures"][0]["audio"] == 1.0
    assert "±" in (run_dir / "fusion_results.md").read_text()


def test_mismatched_protocols_are_refused(tmp_path):
    outputs = tmp_path / "outputs"
    audio = write_expert_run(outputs, "audio", expert_frames(n_per_class=6)["audio"], protocol="random")
    visual = write_expert_run(outputs, "visual", expert_frames(n_per_class=6, split="speaker_seed0")["visual"],
                              protocol="speaker")
    with pytest.raises(ValueError, match="protocol 'random' but the visual run .* has 'speaker'"):
        fuse_runs(audio, visual, outputs=outputs, checkpoints=None)


def test_cli_fuses_the_latest_runs_of_a_protocol(fused, capsys):
    outputs, run_dir = fused
    code = main(["fuse", "--protocol", "random", "--outputs", str(outputs), "--n-bootstrap", "50",
                 "--strategies", "weighted_average", "max_confidence", "--name", "cli",
                 "--checkpoints", str(outputs.parent / "cli_checkpoints")])
    out = capsys.readouterr().out
    assert code == 0 and "chosen on validation:" in out and "weighted_average" in out
    assert len(list((outputs / "fusion").glob("**/cli-*/predictions_test.csv"))) == 1
    assert main(["fuse", "--protocol", "speaker", "--outputs", str(outputs)]) == 1
    assert "no audio and no visual run of protocol 'speaker'" in capsys.readouterr().err


def test_missing_expert_runs_name_what_makes_them(tmp_path):
    outputs = tmp_path / "outputs"
    write_expert_pair(outputs, protocol="random", n_per_class=6)
    assert set(latest_expert_runs(outputs, "random")) == {"audio", "visual"}
    with pytest.raises(FileNotFoundError, match=r"no audio and no visual run of protocol 'speaker'") as err:
        latest_expert_runs(outputs, "speaker")
    assert "AUDIO_03_modeling_SER_speaker_independent_v01.ipynb" in str(err.value)
    assert "VISUAL_01_modeling_FER_CREMA-D_video_v01.ipynb" in str(err.value)
    assert "`mer visual train --protocol speaker" in str(err.value)


def test_the_exported_rule_reproduces_the_chosen_fusion(fused):
    outputs, run_dir = fused
    rule = load_fusion_rule(outputs.parent / "checkpoints" / "best_fusion.json")
    assert rule == load_fusion_rule(run_dir / "fusion_rule.json")
    assert rule.strategy == read_json(run_dir / "metrics.json")["strategy"] and rule.protocol == "random"
    master = pd.read_csv(run_dir / "master.csv", keep_default_na=False)
    test = master[master["subset"] == "test"]
    audio = test[[c for c in master.columns if c.startswith("audio_p_")]].to_numpy()
    visual = test[[c for c in master.columns if c.startswith("visual_p_")]].to_numpy()
    expected = read_predictions(run_dir / "predictions_test.csv").filter(regex="^p_").to_numpy()
    assert rule.fuse(audio, visual) == pytest.approx(expected, abs=2e-5)  # CSVs keep 6 decimals
    assert rule.fuse(audio[0], visual[0]).shape == (len(EMOTIONS),)
    assert "tuned on validation of random_seed0" in rule.description


def test_a_speaker_independent_rule_is_not_replaced_by_a_random_split_one(tmp_path):
    speaker = FusionRule(strategy="product", rule={"rule": "log_linear", "weights": [0.5, 0.5]}, protocol="speaker")
    random = FusionRule(strategy="max_confidence", rule={"rule": "max_confidence"}, protocol="random")
    info = {"corpus": "cremad", "corpus_key": "cremad-0000", "synthetic": True}
    metrics = {"summary": {"test": {"ua": {"mean": 0.5}}}}
    export_rule(speaker, tmp_path, info, metrics, tmp_path / "run")
    export_rule(random, tmp_path, info, metrics, tmp_path / "run")
    index = read_index(tmp_path)
    assert {(e["modality"], e["protocol"]) for e in index} == {("fusion", "speaker"), ("fusion", "random")}
    assert load_fusion_rule(tmp_path / "best_fusion.json").protocol == "speaker"
    assert load_fusion_rule(tmp_path / "best_fusion_random.json") == random
    assert "no fusion run exported yet" in load_fusion_rule(tmp_path / "absent.json").description
