"""Manifest: real sample clips, real metadata, planted faults, re-runs."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import shared
from mer_utils.cli import main
from mer_utils.data.manifest import (MANIFEST_COLUMNS, build_manifest, load_manifest, prepare_manifest,
                                     summarize_manifest)


def test_real_sample_clips_parse_with_demographics_and_votes():
    result = build_manifest(shared("crema-d-sample"), metadata_dir=shared("crema-d-meta"), progress=False)
    m = result.manifest.set_index("clip_id")
    assert list(result.manifest.columns[: len(MANIFEST_COLUMNS)]) == list(MANIFEST_COLUMNS)
    assert len(m) == 12 and set(m["emotion"]) == {"ANG", "DIS", "FEA", "HAP", "NEU", "SAD"}
    row = m.loc["1001_DFA_ANG_XX"]
    assert (row["sex"], int(row["age"]), row["sentence_text"]) == ("Male", 51, "Don't forget a jacket")
    assert row["audio_path"] == "AudioWAV/1001_DFA_ANG_XX.wav" and row["video_status"] == "ok"
    assert 1.8 < row["duration_s"] < 2.4
    assert row["vote_voice"] == "A"  # the crowd heard anger in this clip
    # Actor 1002 has only MP3 audio: it is used, and its missing video is reported.
    assert m.loc["1002_DFA_SAD_XX", "audio_path"] == "AudioMP3/1002_DFA_SAD_XX.mp3"
    assert m.loc["1002_DFA_SAD_XX", "video_status"] == "missing"
    assert set(result.problems["clip_id"]) == {f"1002_DFA_{e}_XX" for e in ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"]}


def test_real_metadata_counts():
    meta = shared("crema-d-meta")
    demo = pd.read_csv(meta / "VideoDemographics.csv")
    assert len(demo) == 91 and (demo["Sex"] == "Male").sum() == 48 and (demo["Sex"] == "Female").sum() == 43
    from mer_utils.data.cremad_vocabulary import parse_clip_id

    names = pd.DataFrame([parse_clip_id(n)._asdict() for n in pd.read_csv(meta / "SentenceFilenames.csv")["Filename"]])
    assert len(names) == 7442 and names["actor_id"].nunique() == 91
    assert (names["sentence"] == "IEO").sum() == 1456
    counts = names["emotion"].value_counts()
    assert counts["NEU"] == 1087 and (counts.drop("NEU") == 1271).all()
    assert (names["intensity"].value_counts()[["LO", "MD", "HI"]] == 455).all()


def test_full_listing_summary_says_complete(full_listing_manifest):
    text = summarize_manifest(full_listing_manifest)
    assert "7442 clips from 91 actors" in text and "matches 7442 clips / 91 actors" in text
    assert "Female 43, Male 48" in text


@pytest.fixture()
def faulty_root(tmp_path):
    """Real clips plus every kind of planted fault."""
    root = tmp_path / "crema"
    wav_dir, flv_dir = root / "AudioWAV", root / "VideoFlash"
    shutil.copytree(shared("crema-d-sample", "AudioWAV"), wav_dir)
    shutil.copytree(shared("crema-d-sample", "VideoFlash"), flv_dir)
    (wav_dir / "1003_DFA_ANG_XX.wav").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n")
    (wav_dir / "1003_DFA_DIS_XX.wav").write_bytes(b"")
    sf.write(wav_dir / "1003_DFA_FEA_XX.wav", np.zeros((0,), dtype=np.float32), 16000)
    sf.write(wav_dir / "1003_DFA_HAP_XX.wav", np.zeros(16000, dtype=np.float32), 16000)
    sf.write(wav_dir / "1003_DFA_NEU_XX.wav", 0.1 * np.ones(16000 * 12, dtype=np.float32), 16000)
    sf.write(wav_dir / "1003_DFA_SAD_XX.wav", 0.1 * np.random.default_rng(0).standard_normal((32000, 2)), 44100)
    (wav_dir / "1004_DFA_ANG_XX.wav").write_bytes(b"RIFF garbage that is not audio" * 50)
    (wav_dir / "notes.txt").write_text("stray")
    (wav_dir / "1001_XYZ_ANG_XX.wav").write_bytes(b"x")
    (flv_dir / "1003_DFA_ANG_XX.flv").write_bytes(b"")
    return root


def test_planted_faults_are_classified(faulty_root):
    result = build_manifest(faulty_root, progress=False)
    status = result.manifest.set_index("clip_id")["audio_status"]
    assert status["1003_DFA_ANG_XX"] == "lfs_pointer"
    assert status["1003_DFA_DIS_XX"] == "empty"
    assert status["1003_DFA_FEA_XX"] == "no_samples"
    assert status["1003_DFA_HAP_XX"] == "silent"
    assert status["1003_DFA_NEU_XX"] == "too_long"
    assert status["1003_DFA_SAD_XX"] == "ok"  # stereo 44.1 kHz is fine
    assert status["1004_DFA_ANG_XX"] == "unreadable"
    video = result.manifest.set_index("clip_id")["video_status"]
    assert video["1003_DFA_ANG_XX"] == "empty" and video["1003_DFA_DIS_XX"] == "missing"
    problems = result.problems.set_index("path")
    assert problems.loc["AudioWAV/notes.txt", "status"] == "not_a_clip"
    assert "sentence" in problems.loc["AudioWAV/1001_XYZ_ANG_XX.wav", "fix"]
    assert "git lfs pull" in problems.loc["AudioWAV/1003_DFA_ANG_XX.wav", "fix"]


def test_cli_prints_summary_and_writes_problems(faulty_root, tmp_path, capsys):
    out = tmp_path / "m" / "manifest.csv"
    assert main(["manifest", "--data-root", str(faulty_root), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "lfs_pointer" in text and "git lfs pull" in text
    problems = pd.read_csv(out.with_name("manifest_problems.csv"))
    assert {"lfs_pointer", "empty", "not_a_clip"} <= set(problems["status"])
    assert len(load_manifest(out)) == 13  # 6 real + 6 planted + 1 unreadable


def test_missing_root_error_names_the_layout(tmp_path, capsys):
    assert main(["manifest", "--data-root", str(tmp_path / "nope"), "--out", str(tmp_path / "m.csv")]) == 1
    assert "AudioWAV/" in capsys.readouterr().err


def test_rerun_is_cached_and_identical(faulty_root, tmp_path):
    out = tmp_path / "manifest.csv"
    first = prepare_manifest(faulty_root, out, progress=False)
    content = out.read_bytes()
    start = time.perf_counter()
    second = prepare_manifest(faulty_root, out, progress=False)
    assert time.perf_counter() - start < 1.0
    assert out.read_bytes() == content and len(first) == len(second)
    # A changed input is noticed.
    (faulty_root / "AudioWAV" / "1003_DFA_ANG_XX.wav").write_bytes(b"")  # the LFS pointer, now truncated
    third = prepare_manifest(faulty_root, out, progress=False)
    assert third.set_index("clip_id").loc["1003_DFA_ANG_XX", "audio_status"] == "empty"


def test_audio_only_download_marks_video_not_provided(tmp_path):
    root = tmp_path / "crema"
    shutil.copytree(shared("crema-d-sample", "AudioWAV"), root / "AudioWAV")
    result = build_manifest(root, progress=False)
    assert set(result.manifest["video_status"]) == {"not_provided"}
    assert result.problems.empty


def test_summary_without_the_problems_table_still_names_each_broken_clip_and_fix(faulty_root):
    # What `mer run-all` once printed: "problems: none" beside "audio: empty 1, lfs_pointer 1".
    text = summarize_manifest(build_manifest(faulty_root, progress=False).manifest)
    assert "problems: none" not in text
    assert "lfs_pointer (1, e.g. AudioWAV/1003_DFA_ANG_XX.wav): this is a Git LFS pointer" in text
    assert "git lfs pull" in text and "empty (2" in text  # an empty WAV and an empty FLV
