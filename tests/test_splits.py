"""Splits: disjointness, stratification, published imports, files."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import shared
from mer_utils.cli import main
from mer_utils.protocols.splits import check_speaker_independent, load_split, make_split, write_split


def _actors(split, manifest, fold, subset):
    ids = split[(split["fold"] == fold) & (split["subset"] == subset)]["clip_id"]
    return set(manifest.set_index("clip_id").loc[ids, "actor_id"])


def test_random_split_is_stratified_and_leaky(full_listing_manifest):
    split = make_split(full_listing_manifest, protocol="random", seed=0)
    sizes = split["subset"].value_counts(normalize=True)
    assert abs(sizes["train"] - 0.7) < 0.01 and abs(sizes["test"] - 0.2) < 0.01
    test = split[split["subset"] == "test"].merge(full_listing_manifest, on="clip_id")
    share = test["emotion"].value_counts(normalize=True)
    overall = full_listing_manifest["emotion"].value_counts(normalize=True)
    assert (share - overall).abs().max() < 0.005
    assert split.attrs["info"]["actor_overlap"][0]["shared_train_test"] == 91  # the leakage it shows


def test_speaker_split_is_actor_disjoint_and_sex_balanced(full_listing_manifest):
    split = make_split(full_listing_manifest, protocol="speaker", seed=3)
    sets = {s: _actors(split, full_listing_manifest, 0, s) for s in ("train", "val", "test")}
    assert not (sets["train"] & sets["test"]) and not (sets["train"] & sets["val"]) and not (sets["val"] & sets["test"])
    assert sum(len(s) for s in sets.values()) == 91
    sex = full_listing_manifest.drop_duplicates("actor_id").set_index("actor_id")["sex"]
    test_female = (sex.loc[sorted(sets["test"])] == "Female").mean()
    assert abs(test_female - 43 / 91) < 0.1


def test_speaker_kfold_covers_every_actor_once_in_test(full_listing_manifest):
    split = make_split(full_listing_manifest, protocol="speaker-kfold", n_folds=5, seed=0)
    test_actors = [_actors(split, full_listing_manifest, f, "test") for f in range(5)]
    assert sum(len(a) for a in test_actors) == 91 and len(set().union(*test_actors)) == 91
    for fold in range(5):
        assert not (_actors(split, full_listing_manifest, fold, "val") & test_actors[fold])
    assert split["split"].iloc[0] == "speaker-kfold5_seed0"


def test_speaker_check_refuses_overlap(full_listing_manifest):
    split = make_split(full_listing_manifest, protocol="random", seed=0)
    with pytest.raises(ValueError, match="not speaker-independent"):
        check_speaker_independent(split, full_listing_manifest)


def test_seed_changes_split_and_is_reproducible(full_listing_manifest):
    a = make_split(full_listing_manifest, protocol="speaker", seed=0)
    b = make_split(full_listing_manifest, protocol="speaker", seed=0)
    c = make_split(full_listing_manifest, protocol="speaker", seed=1)
    assert a.equals(b) and not a.equals(c)


def test_broken_clips_are_excluded_and_reported(full_listing_manifest):
    manifest = full_listing_manifest.copy()
    manifest.loc[manifest["clip_id"] == "1076_MTI_SAD_XX", "audio_status"] = "silent"
    split = make_split(manifest, protocol="random", seed=0)
    assert "1076_MTI_SAD_XX" not in set(split["clip_id"])
    assert split.attrs["info"]["excluded"] == [{"clip_id": "1076_MTI_SAD_XX", "reason": "audio silent"}]


def test_ogm_ge_import_overlaps_all_actors(full_listing_manifest):
    split = make_split(full_listing_manifest, protocol="ogm-ge", published_dir=shared("published-splits"))
    assert (split["subset"] == "test").sum() == 744
    assert (split["subset"] != "test").sum() == 6698  # validation carved from train only
    overlap = split.attrs["info"]["actor_overlap"][0]
    assert overlap["shared_train_test"] == 91 and not split.attrs["info"]["speaker_independent"]


def test_audeering_and_hicmae_imports(full_listing_manifest):
    published = shared("published-splits")
    aud = make_split(full_listing_manifest, protocol="audeering", published_dir=published)
    assert [len(_actors(aud, full_listing_manifest, 0, s)) for s in ("train", "val", "test")] == [56, 18, 17]
    hic = make_split(full_listing_manifest, protocol="hicmae", published_dir=published)
    assert hic["fold"].nunique() == 5
    original_test = pd.read_csv(published / "hicmae/split01_test.csv", sep=r"\s+", header=None)
    assert (hic[(hic["fold"] == 0)]["subset"] == "test").sum() == len(original_test)
    for fold in range(5):
        source = pd.read_csv(published / f"hicmae/split0{fold + 1}_test.csv", sep=r"\s+", header=None)
        source_actors = {int(p.rstrip("/").split("/")[-1][:4]) for p in source[0]}
        assert _actors(hic, full_listing_manifest, fold, "test") == source_actors
        assert not _actors(hic, full_listing_manifest, fold, "val") & source_actors


def test_published_import_without_files_says_what_is_needed(full_listing_manifest, tmp_path):
    with pytest.raises(ValueError, match="--published-dir"):
        make_split(full_listing_manifest, protocol="hicmae")
    with pytest.raises(FileNotFoundError, match="ogm-ge/train.csv"):
        make_split(full_listing_manifest, protocol="ogm-ge", published_dir=tmp_path)


def test_split_files_round_trip_and_cli(full_listing_manifest, tmp_path, capsys):
    path = write_split(make_split(full_listing_manifest, protocol="speaker-kfold", n_folds=5), tmp_path)
    loaded = load_split(path)
    assert list(loaded.columns) == ["clip_id", "split", "fold", "subset"]
    assert loaded.attrs["info"]["protocol"] == "speaker-kfold"
    manifest_csv = tmp_path / "manifest.csv"
    full_listing_manifest.to_csv(manifest_csv, index=False)
    assert main(["splits", "--manifest", str(manifest_csv), "--protocol", "speaker", "--out", str(tmp_path)]) == 1
    assert "not a mer manifest" in capsys.readouterr().err  # fixture lacks duration_s etc.
