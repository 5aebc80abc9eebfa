"""The fault tree of broken media: each planted fault gets its own status and fix, and no stage uses it.

A small synthetic corpus (6 actors x 2 sentences) is copied and broken the ways real copies break: a WAV
cut to half and to 100 bytes, an FLV cut to 1.5 KB and 10 KB, a PNG saved as a video, a Git LFS pointer
and an empty file. A video replaced by another of the same size must not be served from the crop cache.
"""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import shared
from mer_utils.cli import main
from mer_utils.data.manifest import build_manifest, default_manifest_path, problems_path_of
from mer_utils.data.media_health import FIXES, MIN_CLIP_SECONDS, audio_health, video_health

LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize 123456\n".format("0" * 64)
# clip id -> (kind, expected status)
FAULTS = {
    "1001_DFA_ANG_XX": ("audio", "truncated"),  # WAV cut to half its length
    "1001_DFA_DIS_XX": ("audio", "truncated"),  # WAV cut to 100 bytes (1.75 ms of audio)
    "1001_DFA_FEA_XX": ("video", "truncated"),  # FLV cut to 1.5 KB
    "1001_DFA_HAP_XX": ("video", "truncated"),  # FLV cut to 10 KB
    "1001_DFA_NEU_XX": ("video", "still_image"),  # a PNG renamed .flv
    "1001_DFA_SAD_XX": ("audio", "lfs_pointer"),
    "1002_DFA_ANG_XX": ("audio", "empty"),
}


def _cut(path, n_bytes: int) -> None:
    path.write_bytes(path.read_bytes()[:n_bytes])


@pytest.fixture(scope="module")
def clean_corpus(tmp_path_factory):
    from mer_utils.data.synthetic.corpus import make_synthetic_corpus

    return make_synthetic_corpus(tmp_path_factory.mktemp("clean") / "corpus", n_actors=6, sentences=("DFA", "ITS"),
                                 seed=0, progress=False)


@pytest.fixture(scope="module")
def faulty_corpus(clean_corpus, tmp_path_factory):
    import cv2

    root = tmp_path_factory.mktemp("faulty") / "corpus"
    shutil.copytree(clean_corpus, root)
    wav, flv = root / "AudioWAV", root / "VideoFlash"
    _cut(wav / "1001_DFA_ANG_XX.wav", (wav / "1001_DFA_ANG_XX.wav").stat().st_size // 2)
    _cut(wav / "1001_DFA_DIS_XX.wav", 100)
    _cut(flv / "1001_DFA_FEA_XX.flv", 1500)
    _cut(flv / "1001_DFA_HAP_XX.flv", 10_000)
    ok, png = cv2.imencode(".png", np.full((144, 192, 3), 128, np.uint8))
    (flv / "1001_DFA_NEU_XX.flv").write_bytes(png.tobytes())
    (wav / "1001_DFA_SAD_XX.wav").write_text(LFS_POINTER)
    (wav / "1002_DFA_ANG_XX.wav").write_bytes(b"")
    return root


def test_each_fault_gets_its_own_status_and_fix(faulty_corpus):
    result = build_manifest(faulty_corpus, progress=False)
    manifest = result.manifest.set_index("clip_id")
    for clip_id, (kind, status) in FAULTS.items():
        assert manifest.loc[clip_id, f"{kind}_status"] == status, clip_id
    untouched = manifest.drop(index=list(FAULTS))
    assert (untouched["audio_status"] == "ok").all() and (untouched["video_status"] == "ok").all()
    problems = result.problems.set_index("clip_id")
    assert set(problems.index) == set(FAULTS)
    for clip_id, (kind, status) in FAULTS.items():
        assert problems.loc[clip_id, "fix"] == FIXES[status]
    assert "re-download" in FIXES["truncated"] and "git lfs pull" in FIXES["lfs_pointer"]


def test_real_sample_clips_stay_ok():
    for path in sorted(shared("crema-d-sample").glob("*/*")):
        check = video_health if path.suffix == ".flv" else audio_health
        health = check(path)
        assert health.status == "ok" and 1.8 < health.duration_s < 2.8, (path.name, health)


def test_cut_mp3_and_short_or_still_media(tmp_path):
    import cv2

    mp3 = shared("crema-d-sample", "AudioMP3", "1002_DFA_ANG_XX.mp3")
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(mp3.read_bytes()[: mp3.stat().st_size // 2])
    assert audio_health(cut).status == "truncated"  # the Xing header still counts every frame
    short = tmp_path / "short.wav"
    sf.write(short, 0.3 * np.sin(np.arange(int(MIN_CLIP_SECONDS * 16000) // 2) / 3), 16000)
    assert audio_health(short).status == "too_short"  # intact, but 0.1 s says nothing
    one_frame = tmp_path / "one_frame.avi"
    writer = cv2.VideoWriter(str(one_frame), cv2.VideoWriter_fourcc(*"MJPG"), 15.0, (96, 64))
    writer.write(np.full((64, 96, 3), 90, np.uint8))
    writer.release()
    assert video_health(one_frame).status == "still_image"


def test_empty_or_stray_only_audio_folder_names_the_folder_and_layout(tmp_path, capsys):
    root = tmp_path / "crema"
    (root / "AudioWAV").mkdir(parents=True)
    with pytest.raises(RuntimeError, match=r"no CREMA-D clips found in .*crema.*AudioWAV/.*1001_DFA_ANG_XX\.wav"):
        build_manifest(root, progress=False)
    (root / "AudioWAV" / "notes.txt").write_text("stray")
    (root / "AudioWAV" / "take1.wav").write_bytes(b"RIFF")
    assert main(["manifest", "--data-root", str(root), "--out", str(tmp_path / "m.csv")]) == 1
    err = capsys.readouterr().err
    assert "no CREMA-D clips found" in err and "2 other files ignored" in err and "expected files named like" in err


def test_cut_input_is_announced_with_the_file_and_the_seconds(tmp_path):
    from mer_utils.experts.audio.loading import AudioSettings, InputCutWarning, load_waveforms

    long = tmp_path / "1001_DFA_ANG_XX.wav"
    sf.write(long, 0.3 * np.sin(np.arange(16000 * 20) / 5).astype(np.float32), 16000)
    with pytest.warns(InputCutWarning, match=r"1001_DFA_ANG_XX\.wav: only the first 6 s of its 20\.0 s"):
        waves, _ = load_waveforms([long], settings=AudioSettings(max_seconds=6.0), progress=False)
    assert len(waves[0]) == 6 * 16000
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputCutWarning)  # a clip within the cap is not announced
        load_waveforms([long], settings=AudioSettings(max_seconds=30.0), progress=False)


def test_crop_cache_recrops_a_same_size_replacement(faulty_corpus, tmp_path):
    from mer_utils.data.manifest import load_manifest, prepare_manifest
    from mer_utils.experts.visual.crops import CropConfig, load_clip_crops, prepare_crops

    root = tmp_path / "corpus"
    shutil.copytree(faulty_corpus, root)
    manifest = prepare_manifest(root, outputs=tmp_path / "out", progress=False)
    wanted = manifest[manifest["clip_id"].isin(["1003_DFA_ANG_XX", "1003_DFA_SAD_XX"])]
    config = CropConfig(n_frames=4)
    cache, _ = prepare_crops(wanted, root, config=config, outputs=tmp_path / "out", progress=False, n_jobs=1)
    target, donor = root / "VideoFlash" / "1003_DFA_ANG_XX.flv", root / "VideoFlash" / "1003_DFA_SAD_XX.flv"
    big, small = sorted([target.read_bytes(), donor.read_bytes()], key=len, reverse=True)
    # The target becomes the donor clip padded (or the donor the target) so that both keep one byte size.
    target.write_bytes(small + b"\0" * (len(big) - len(small)))
    donor.write_bytes(big)
    assert target.stat().st_size == donor.stat().st_size
    _, again = prepare_crops(wanted, root, config=config, outputs=tmp_path / "out", progress=False, n_jobs=1)
    assert set(again["status"]) == {"ok"}, "a replaced video must be cropped again, not read from the cache"
    fresh = load_clip_crops(cache, "1003_DFA_ANG_XX").crops
    _, third = prepare_crops(wanted, root, config=config, outputs=tmp_path / "out", progress=False, n_jobs=1)
    assert set(third["status"]) == {"cached"} and np.array_equal(load_clip_crops(cache, "1003_DFA_ANG_XX").crops,
                                                                  fresh)
    assert len(load_manifest(default_manifest_path(root, tmp_path / "out")))  # the manifest was cached there


def _predicted_clips(outputs) -> set[str]:
    found = set()
    for path in outputs.rglob("predictions_*.csv"):
        found |= set(pd.read_csv(path, usecols=["clip_id"])["clip_id"].astype(str))
    return found


@pytest.mark.slow
def test_run_all_on_the_broken_corpus_names_the_problems_and_uses_none_of_them(faulty_corpus, tmp_path, capsys):
    from mer_utils.pipeline import run_all

    outputs = tmp_path / "outputs"
    run_all(data_root=str(faulty_corpus), outputs=str(outputs), checkpoints=str(tmp_path / "checkpoints"),
            protocols=("random",), audio_backbone="librosa", progress=False)
    text = capsys.readouterr().out
    problems_csv = problems_path_of(default_manifest_path(faulty_corpus, outputs))
    assert f"problems: {len(FAULTS)} (empty 1, lfs_pointer 1, still_image 1, truncated 4), listed in {problems_csv}" \
        in text
    for status in ("truncated", "still_image", "lfs_pointer", "empty"):
        assert FIXES[status] in text
    assert "git lfs pull" in text and "problems: none" not in text
    listed = pd.read_csv(problems_csv)
    assert set(listed["clip_id"]) == set(FAULTS) and list(listed.columns) == ["path", "clip_id", "kind", "status", "fix"]
    predicted = _predicted_clips(outputs)
    assert predicted and not predicted & set(FAULTS), "a broken clip was trained on or scored"
    for skipped in outputs.rglob("skipped_clips.csv"):
        assert set(FAULTS) <= set(pd.read_csv(skipped)["clip_id"]), skipped


def _degraded_root(clean_corpus, tmp_path, keep: str):
    root = tmp_path / f"{keep}_only"
    root.mkdir()
    shutil.copytree(clean_corpus / keep, root / keep)
    shutil.copy(clean_corpus / "VideoDemographics.csv", root)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("keep, missing", [("AudioWAV", "video"), ("VideoFlash", "audio")])
def test_a_one_modality_download_runs_the_other_modality_and_says_what_to_add(clean_corpus, tmp_path, capsys,
                                                                                keep, missing):
    from mer_utils.pipeline import run_all

    root = _degraded_root(clean_corpus, tmp_path, keep)
    outputs = tmp_path / "outputs"
    result = run_all(data_root=str(root), outputs=str(outputs), checkpoints=str(tmp_path / "checkpoints"),
                     protocols=("random",), audio_backbone="librosa", progress=False)
    text = capsys.readouterr().out
    hint = {"video": "add VideoFlash/ (or VideoMP4/) to the data root",
            "audio": "add AudioWAV/ (or AudioMP3/) to the data root"}[missing]
    stage = {"video": "[3/6] visual expert and fusion skipped", "audio": "[2/6] audio expert skipped"}[missing]
    assert f"{stage}: no clip has usable {missing} ({missing}: not_provided 72); {hint}" in text
    assert result["report"].exists() and set(result["skipped_stages"]) == {missing}
    trained = {"AudioWAV": "audio", "VideoFlash": "visual"}[keep]
    assert list((outputs / trained).rglob("predictions_test.csv"))
    assert not (outputs / {"audio": "audio", "video": "visual"}[missing]).exists()


@pytest.mark.parametrize("keep, command, hint", [
    ("AudioWAV", "visual", "add VideoFlash/ (or VideoMP4/) to the data root"),
    ("VideoFlash", "audio", "add AudioWAV/ (or AudioMP3/) to the data root"),
])
def test_a_stage_without_its_modality_refuses_in_one_line(clean_corpus, tmp_path, capsys, keep, command, hint):
    root = _degraded_root(clean_corpus, tmp_path, keep)
    args = [command, "prepare" if command == "visual" else "train", "--data-root", str(root),
            "--outputs", str(tmp_path / "outputs"), "--no-progress"]
    assert main(args) == 1
    assert hint in capsys.readouterr().err
