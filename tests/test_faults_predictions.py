"""Planted faults in the files between the layers: predictions CSVs, split files, run folders.

Each is refused by the one reader that fusion and the report share, with a message that names the
file; nothing wrong is pooled, paired or silently regenerated."""

from __future__ import annotations

import json
import multiprocessing
import shutil

import pandas as pd
import pytest
from fusion_fakes import expert_frames, fake_manifest, write_expert_pair, write_expert_run

from mer_utils.cli import main
from mer_utils.core.predictions import PredictionsError, read_predictions


@pytest.fixture()
def pair(tmp_path):
    return write_expert_pair(tmp_path / "outputs", n_per_class=6)


def _edit(path, change):
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    change(frame)
    frame.to_csv(path, index=False)


def _both_refuse(audio, visual, capsys, *needles):
    """``mer fuse`` and ``mer report`` both exit 1, naming the file; no traceback."""
    outputs = audio.parent.parent
    for argv in (["fuse", "--audio-run", str(audio), "--visual-run", str(visual), "--outputs", str(outputs),
                  "--n-bootstrap", "10", "--checkpoints", str(outputs / "ck")],
                 ["report", "--outputs", str(outputs)]):
        assert main(argv) == 1, argv[0]
        err = capsys.readouterr().err
        assert all(n in err for n in needles), (argv[0], err)
        assert "Traceback" not in err


def test_y_pred_disagreeing_with_the_probabilities_is_refused(pair, capsys):
    audio, visual = pair
    path = audio / "predictions_test.csv"
    _edit(path, lambda f: f.__setitem__("y_pred", f["y_pred"].iloc[::-1].to_numpy()))
    _both_refuse(audio, visual, capsys, str(path), "y_pred disagrees")


def test_swapped_probability_values_are_refused(pair, capsys):
    audio, visual = pair
    path = audio / "predictions_val.csv"
    _edit(path, lambda f: f.__setitem__("p_ANG", f["p_SAD"].to_numpy()) or f.__setitem__(
        "p_SAD", pd.read_csv(path, dtype=str)["p_ANG"].to_numpy()))
    _both_refuse(audio, visual, capsys, str(path), "swapped or edited")


def test_reordered_probability_columns_are_refused(pair, capsys):
    audio, visual = pair
    path = visual / "predictions_test.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    columns = list(frame.columns)
    i, j = columns.index("p_ANG"), columns.index("p_SAD")
    columns[i], columns[j] = columns[j], columns[i]
    frame[columns].to_csv(path, index=False)  # headers move with their values: the label order changed
    _both_refuse(audio, visual, capsys, str(path), "expected")


def test_wrong_split_value_is_refused_by_the_report_too(pair, capsys):
    audio, visual = pair
    path = audio / "predictions_test.csv"
    _edit(path, lambda f: f.__setitem__("split", "speaker_seed0"))
    _both_refuse(audio, visual, capsys, str(path), "speaker_seed0")


@pytest.mark.parametrize("fault, needle", [
    ("blank_cell", "blank or non-numeric probability cell"),
    ("cut_mid_row", "incomplete"),
    ("zero_bytes", "empty or was cut off"),
])
def test_damaged_csv_is_named_not_a_bare_parser_error(pair, fault, needle):
    path = pair[0] / "predictions_test.csv"
    text = path.read_text()
    if fault == "blank_cell":
        lines = text.splitlines()
        cells = lines[3].split(",")
        cells[-2] = ""
        lines[3] = ",".join(cells)
        path.write_text("\n".join(lines) + "\n")
    elif fault == "cut_mid_row":
        path.write_text(text[: text.index("\n", len(text) // 2) + 12])
    else:
        path.write_text("")
    with pytest.raises(PredictionsError) as err:
        read_predictions(path)
    assert str(path) in str(err.value) and needle in str(err.value)
    assert "re-run the stage" in str(err.value)


def test_report_pools_seeds_but_not_two_fusion_systems(tmp_path):
    from mer_utils.fusion.run import fuse_runs
    from mer_utils.report.collect import collect_runs
    from mer_utils.report.tables import model_table

    outputs = tmp_path / "outputs"
    frames = expert_frames(n_per_class=6)
    audio_a = write_expert_run(outputs, "audio", frames["audio"], backbone="egemaps")
    audio_b = write_expert_run(outputs, "audio", frames["audio"], backbone="compare")
    visual = write_expert_run(outputs, "visual", frames["visual"])
    for audio in (audio_a, audio_b):
        fuse_runs(audio, visual, outputs=outputs, n_bootstrap=10, checkpoints=None, strategies=["weighted_average"])
    models, _ = model_table(collect_runs(outputs).runs)
    fused = models[models["modality"] == "audio_visual"]
    assert len(fused) == 2 and set(fused["n_test"]) == {1}  # two systems, not one strategy with n=2
    # Seeds of one system (settings equal but for the seed) do pool.
    for seed in (0, 1):
        run = outputs / "audio" / f"seeds-{seed}"
        shutil.copytree(audio_a, run)
        settings = {"backbone": "egemaps", "protocol": "random", "seed": seed}
        (run / "settings.json").write_text(json.dumps(settings))
        metrics = json.loads((run / "metrics.json").read_text())
        (run / "metrics.json").write_text(json.dumps({**metrics, "backbone": "egemaps-seeded"}))
    models, _ = model_table(collect_runs(outputs).runs)
    seeded = models[models["backbone"] == "egemaps-seeded"]
    assert len(seeded) == 1 and int(seeded["n_test"].iloc[0]) == 2


def _hold_lock(run_dir, part, ready, release):
    from mer_utils.core.run_lock import lock_run_dir

    lock_run_dir(run_dir, part)
    ready.set()
    release.wait(30)


def _holding(run_dir, part=""):
    """A second process that holds the lock of ``run_dir`` (or ``part`` of it) until released."""
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(run_dir, part, ready, release))
    holder.start()
    assert ready.wait(60)
    return holder, release


def test_a_run_folder_in_use_by_another_process_is_refused_naming_it(tmp_path):
    from mer_utils.core.run_lock import RunFolderBusy
    from mer_utils.core.runs import new_run_dir

    run_dir = new_run_dir(tmp_path, "audio", "demo", {"seed": 0}, settings={"seed": 0})
    from mer_utils.core.run_lock import release_run_dir

    release_run_dir(run_dir)
    holder, release = _holding(run_dir)
    try:
        with pytest.raises(RunFolderBusy) as err:
            new_run_dir(tmp_path, "audio", "demo", {"seed": 0}, settings={"seed": 0})
        assert str(run_dir) in str(err.value) and f"pid {holder.pid}" in str(err.value)
    finally:
        release.set()
        holder.join(30)
    # The holder is gone (its lock with it): the folder is free again.
    assert new_run_dir(tmp_path, "audio", "demo", {"seed": 0}, settings={"seed": 0}) == run_dir


def test_processes_given_other_folds_share_a_run_folder_but_never_a_fold(tmp_path):
    from mer_utils.core.run_lock import RunFolderBusy
    from mer_utils.core.runs import new_run_dir

    run_dir = tmp_path / "audio" / "kfold"
    holder, release = _holding(run_dir, "fold0")  # another process trains fold 0 (--run-folds 0)
    try:
        assert new_run_dir(tmp_path, "audio", "kfold", {}, lock_parts=["fold1"]) == run_dir
        with pytest.raises(RunFolderBusy) as err:
            new_run_dir(tmp_path, "audio", "kfold", {}, lock_parts=["fold0"])
        assert f"fold0 of {run_dir.resolve()} is in use" in str(err.value) and f"pid {holder.pid}" in str(err.value)
    finally:
        release.set()
        holder.join(30)


def test_ogm_ge_split_sharing_a_clip_between_train_and_test_is_refused(tmp_path, full_listing_manifest):
    from mer_utils.protocols.splits import make_split

    clips = full_listing_manifest.sample(60, random_state=0)
    published = tmp_path / "published" / "ogm-ge"
    published.mkdir(parents=True)
    rows = [f"{c},{c.split('_')[2]}" for c in clips["clip_id"]]
    (published / "train.csv").write_text("\n".join(rows[:45]) + "\n")
    (published / "test.csv").write_text("\n".join(rows[44:]) + "\n")  # clip 44 in both
    with pytest.raises(ValueError, match="two subsets of one fold") as err:
        make_split(full_listing_manifest, protocol="ogm-ge", published_dir=tmp_path / "published")
    assert clips["clip_id"].iloc[44] in str(err.value) and "train.csv" in str(err.value)


def test_mer_splits_writes_a_split_and_refuses_to_overwrite_a_hand_edit(tmp_path, full_listing_manifest, capsys):
    manifest = tmp_path / "manifest.csv"
    fake_manifest(list(full_listing_manifest["clip_id"])).to_csv(manifest, index=False)
    out = tmp_path / "splits"
    argv = ["splits", "--manifest", str(manifest), "--protocol", "speaker", "--out", str(out)]
    assert main(argv) == 0
    split = pd.read_csv(out / "speaker_seed0.csv")
    assert set(split["subset"]) == {"train", "val", "test"} and split["clip_id"].is_unique
    assert main(argv) == 0  # an unchanged file is regenerated in place
    edited = split.assign(subset=split["subset"].replace({"val": "train"}))
    edited.to_csv(out / "speaker_seed0.csv", index=False)
    assert main(argv) == 1
    assert "changed after it was written" in capsys.readouterr().err
    assert pd.read_csv(out / "speaker_seed0.csv").equals(edited)  # the edit is kept, not overwritten
