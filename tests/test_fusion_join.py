"""The master table joins both experts clip by clip and refuses mismatches loudly."""

from __future__ import annotations

import pandas as pd
import pytest
from fusion_fakes import expert_frames, write_expert_run

from mer_utils.data.cremad_vocabulary import PROB_COLUMNS
from mer_utils.fusion.join import build_master_table, expert_probabilities, load_expert_run
from mer_utils.core.predictions import PredictionsError


@pytest.fixture(scope="module")
def frames():
    return expert_frames(n_per_class=10, n_folds=2, split="speaker-kfold2_seed0")


def test_master_table_has_both_experts_side_by_side(frames):
    master, dropped = build_master_table(frames)
    assert dropped.empty
    assert len(master) == len(frames["audio"])
    assert list(master.columns[:5]) == ["clip_id", "split", "fold", "subset", "y_true"]
    assert [c for c in master.columns if c.startswith("visual_p_")] == [f"visual_{c}" for c in PROB_COLUMNS]
    # Rows follow fold, subset, clip order and carry each expert's own probabilities.
    assert master[["fold", "subset", "clip_id"]].equals(
        master[["fold", "subset", "clip_id"]].sort_values(["fold", "subset", "clip_id"]))
    audio = frames["audio"].set_index(["clip_id", "fold", "subset"]).loc[
        list(zip(master["clip_id"], master["fold"], master["subset"]))]
    assert (expert_probabilities(master, "audio") == audio.filter(regex="^p_").to_numpy()).all()


def test_different_splits_are_refused_naming_both(frames):
    visual = frames["visual"].assign(split="random_seed0")
    with pytest.raises(ValueError, match=r"different splits.*speaker-kfold2_seed0.*random_seed0"):
        build_master_table({"audio": frames["audio"], "visual": visual},
                           sources={"audio": "runs/a", "visual": "runs/v"})


def test_missing_clips_are_refused_with_their_names(frames):
    visual = frames["visual"].iloc[3:]
    missing = frames["visual"]["clip_id"].iloc[0]
    with pytest.raises(ValueError, match=rf"3 clip rows of audio \(runs/a\) are missing from visual.*{missing}"):
        build_master_table({"audio": frames["audio"], "visual": visual}, sources={"audio": "runs/a"})


def test_intersect_keeps_common_clips_and_lists_the_rest(frames):
    visual = frames["visual"].iloc[3:]
    master, dropped = build_master_table({"audio": frames["audio"], "visual": visual}, on_missing="intersect")
    assert len(master) == len(frames["audio"]) - 3
    assert sorted(dropped["clip_id"]) == sorted(frames["visual"]["clip_id"].iloc[:3])
    assert set(dropped["only_in"]) == {"audio"}


def test_disagreeing_true_labels_are_refused(frames):
    visual = frames["visual"].copy()
    visual.loc[0, "y_true"] = "SAD" if visual.loc[0, "y_true"] != "SAD" else "ANG"
    with pytest.raises(ValueError, match="different true labels.*label mappings disagree"):
        build_master_table({"audio": frames["audio"], "visual": visual})


def test_a_csv_with_another_label_order_is_refused(tmp_path, frames):
    run_dir = write_expert_run(tmp_path, "audio", frames["audio"], protocol="speaker-kfold")
    path = run_dir / "predictions_test.csv"
    table = pd.read_csv(path)
    swapped = list(table.columns)
    i, j = swapped.index("p_ANG"), swapped.index("p_SAD")
    swapped[i], swapped[j] = swapped[j], swapped[i]
    table[swapped].to_csv(path, index=False)
    with pytest.raises(PredictionsError, match="another label set or order"):
        load_expert_run(run_dir, modality="audio")


def test_swapped_run_folders_are_refused(tmp_path, frames):
    run_dir = write_expert_run(tmp_path, "visual", frames["visual"], protocol="speaker-kfold")
    with pytest.raises(ValueError, match="modality is 'visual', expected 'audio'.*swap"):
        load_expert_run(run_dir, modality="audio")
    with pytest.raises(FileNotFoundError, match="not a finished audio run"):
        load_expert_run(tmp_path / "nowhere", modality="audio")
