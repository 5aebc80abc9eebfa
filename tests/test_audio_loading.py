"""Audio input: decoding, resampling, down-mixing, trimming, cap/pad, broken files."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from mer_utils.experts.audio.loading import (AudioLoadError, AudioSettings, as_waveforms, load_waveform,
                                     load_waveforms, prepare_waveform)
from tests.conftest import shared

SR = 16_000


def _tone(seconds: float, sr: int = SR, freq: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_resamples_downmixes_and_trims(tmp_path):
    tone = _tone(1.0, sr=44_100)
    silence = np.zeros(int(0.4 * 44_100), dtype=np.float32)
    mono = np.r_[silence, tone, silence]
    stereo = np.stack([mono, mono], axis=1)
    path = tmp_path / "stereo_44k.wav"
    sf.write(path, stereo, 44_100)
    wave = load_waveform(path, settings=AudioSettings(max_seconds=None))
    assert wave.dtype == np.float32 and wave.ndim == 1
    # 0.8 s of silence trimmed (to the 128 ms frame): about one second remains.
    assert 1.0 <= len(wave) / SR < 1.2
    untrimmed = load_waveform(path, settings=AudioSettings(trim_top_db=None, max_seconds=None))
    assert abs(len(untrimmed) / SR - 1.8) < 0.01


def test_caps_and_pads_to_configured_length():
    settings = AudioSettings(trim_top_db=None, max_seconds=1.0, min_seconds=0.5)
    assert len(prepare_waveform(_tone(3.0), SR, settings=settings)) == SR
    assert len(prepare_waveform(_tone(0.1), SR, settings=settings)) == SR // 2


def test_broken_file_is_reported_with_its_name(tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, _tone(0.6), SR)
    pointer = tmp_path / "1001_DFA_ANG_XX.wav"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 1\n")
    with pytest.raises(AudioLoadError, match="1001_DFA_ANG_XX.wav.*git lfs pull"):
        load_waveform(pointer)
    waves, skipped = load_waveforms([good, pointer, tmp_path / "absent.wav"], progress=False)
    assert waves[0] is not None and waves[1] is None and waves[2] is None
    assert [s["path"] for s in skipped] == [str(pointer), str(tmp_path / "absent.wav")]
    assert "not found" in skipped[1]["reason"]


def test_inputs_may_be_paths_arrays_or_tuples(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, _tone(1.0), SR)
    settings = AudioSettings(trim_top_db=None)
    from_path, from_array, from_tuple = as_waveforms(
        [path, _tone(1.0), (_tone(1.0, sr=8000), 8000)], settings=settings)
    assert len(from_path) == len(from_array) == SR
    assert abs(len(from_tuple) - SR) <= 1


def test_real_cremad_wav_and_mp3_clips_load_as_16k_mono():
    wav_dir = shared("crema-d-sample", "AudioWAV")
    mp3_dir = shared("crema-d-sample", "AudioMP3")
    for path in sorted(wav_dir.glob("*.wav")) + sorted(mp3_dir.glob("*.mp3")):
        wave = load_waveform(path)
        # Real clips last 1.3-2.8 s; trimming removes pauses, never the speech.
        assert 0.8 < len(wave) / SR < 2.8, path.name
        assert np.abs(wave).max() > 0.01, path.name


def test_an_all_quiet_clip_is_kept_whole_rather_than_trimmed_to_nothing():
    quiet = np.random.default_rng(0).normal(0, 1e-4, SR).astype(np.float32)
    settings = AudioSettings(max_seconds=None)
    assert len(prepare_waveform(quiet, SR, settings=settings)) == SR
    tone = np.r_[np.zeros(8000, np.float32), _tone(0.7), np.zeros(8000, np.float32)]
    assert 0.7 * SR <= len(prepare_waveform(tone, SR, settings=settings)) < 0.9 * SR  # the silences are cut
