"""RAVDESS file names on the real ravdess-dev files."""

from __future__ import annotations

import shutil

import pytest

from conftest import shared
from mer_utils.cli import main
from mer_utils.data.manifest import build_manifest
from mer_utils.data.ravdess import parse_ravdess_name
from mer_utils.protocols.splits import make_split


def test_real_files_parse_to_the_documented_counts():
    full = build_manifest(shared("ravdess-dev"), dataset="ravdess", keep_all_emotions=True, progress=False).manifest
    assert len(full) == 720 and full["actor_id"].nunique() == 12
    assert full.drop_duplicates("actor_id")["sex"].value_counts().to_dict() == {"Male": 6, "Female": 6}
    per_actor = full.groupby(["actor_id", "emotion"]).size().unstack()
    assert (per_actor["NEU"] == 4).all() and (per_actor.drop(columns="NEU") == 8).all().all()
    six = build_manifest(shared("ravdess-dev"), progress=False).manifest  # detected from the layout
    assert len(six) == 528 and set(six["emotion"]) == {"ANG", "DIS", "FEA", "HAP", "NEU", "SAD"}
    assert (six["audio_status"] == "ok").all() and (six["video_status"] == "not_provided").all()
    assert set(six["intensity"]) == {"normal", "strong"}


def test_sex_follows_actor_parity():
    assert parse_ravdess_name("03-01-01-01-01-01-02")["sex"] == "Female"
    assert parse_ravdess_name("03-01-08-02-02-02-11")["emotion"] == "SUR"
    with pytest.raises(ValueError, match="not a RAVDESS file name"):
        parse_ravdess_name("1001_DFA_ANG_XX")


def test_song_and_video_files_are_skipped_with_a_note(tmp_path, capsys):
    actor = tmp_path / "rav" / "Actor_01"
    actor.mkdir(parents=True)
    source = shared("ravdess-dev", "Actor_01")
    for name in ("03-01-05-01-01-01-01.wav", "03-01-04-01-01-01-01.wav"):
        shutil.copy(source / name, actor / name)
    shutil.copy(source / "03-01-05-01-01-01-01.wav", actor / "03-02-05-01-01-01-01.wav")  # song
    (actor / "01-01-05-01-01-01-01.mp4").write_bytes(b"\0" * 2048)  # video
    result = build_manifest(tmp_path / "rav", progress=False)
    assert len(result.manifest) == 2
    assert set(result.problems["status"]) == {"skipped_song", "skipped_video"}
    assert main(["manifest", "--data-root", str(tmp_path / "rav"), "--out", str(tmp_path / "m.csv")]) == 0
    assert "skipped_song 1" in capsys.readouterr().out


def test_speaker_protocols_work_on_ravdess_and_refuse_a_shared_actor():
    from mer_utils.protocols.splits import check_speaker_independent

    manifest = build_manifest(shared("ravdess-dev"), progress=False).manifest
    split = make_split(manifest, protocol="speaker-kfold", n_folds=5)
    assert split["fold"].nunique() == 5 and len(split[split["subset"] == "test"]) == len(manifest)
    # One test clip's actor also given a training clip: the check that guards every split must refuse it.
    fold0 = split[split["fold"] == 0]
    actor_of = manifest.set_index("clip_id")["actor_id"]
    test_actor = actor_of.loc[fold0.loc[fold0["subset"] == "test", "clip_id"]].iloc[0]
    stolen = manifest.loc[manifest["actor_id"] == test_actor, "clip_id"].iloc[0]
    leaked = split.copy()
    leaked.loc[fold0.index[fold0["subset"] == "train"][0], "clip_id"] = stolen
    with pytest.raises(ValueError, match="fold 0 is not speaker-independent"):
        check_speaker_independent(leaked, manifest)
