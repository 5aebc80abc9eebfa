"""The synthetic corpus: CREMA-D layout, formats, determinism, re-runs, learnable cues."""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mer_utils.data.cremad_vocabulary import EMOTIONS, SENTENCES
from mer_utils.data.media_health import SAMPLE_RATE
from mer_utils.data.synthetic.corpus import CONFIG_NAME, make_synthetic_corpus

N_ACTORS = 4
SMALL = dict(n_actors=N_ACTORS, sentences=("DFA", "IEO"))
NAME = re.compile(rf"^(10\d\d)_({'|'.join(SENTENCES)})_({'|'.join(EMOTIONS)})_(LO|MD|HI|XX)$")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_synthetic_corpus(tmp_path_factory.mktemp("synth") / "corpus", **SMALL)


def _stems(folder: Path, pattern: str) -> list[str]:
    return sorted(p.stem for p in folder.glob(pattern))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _frames(path: Path) -> np.ndarray:
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return np.array(frames)


def test_every_file_has_a_valid_cremad_name(corpus):
    wavs, flvs = _stems(corpus / "AudioWAV", "*.wav"), _stems(corpus / "VideoFlash", "*.flv")
    assert wavs == flvs
    bad = [s for s in wavs if not NAME.match(s)]
    assert not bad, f"invalid CREMA-D names: {bad[:5]}"
    # Like the real corpus: IEO at three levels (NEU only XX), other sentences XX.
    levels = {(s.split("_")[1], s.split("_")[2]): set() for s in wavs}
    for s in wavs:
        levels[(s.split("_")[1], s.split("_")[2])].add(s.split("_")[3])
    assert levels[("IEO", "ANG")] == {"LO", "MD", "HI"}
    assert levels[("IEO", "NEU")] == {"XX"} and levels[("DFA", "SAD")] == {"XX"}
    assert not list(corpus.rglob(".*.flv")) and not (corpus / ".partial").exists()


def test_counts_are_balanced_across_emotions_and_actors(corpus):
    frame = pd.DataFrame([s.split("_") for s in _stems(corpus / "AudioWAV", "*.wav")],
                         columns=["actor", "sentence", "emotion", "level"])
    per_emotion = frame["emotion"].value_counts().to_dict()
    # Per actor: DFA x 1 + IEO x 3 levels for the five emotions, DFA + IEO_XX for neutral.
    assert per_emotion == {**{e: 4 * N_ACTORS for e in EMOTIONS if e != "NEU"}, "NEU": 2 * N_ACTORS}
    assert frame["actor"].value_counts().nunique() == 1
    assert sorted(frame["actor"].unique()) == [str(1001 + i) for i in range(N_ACTORS)]


def test_demographics_look_like_the_official_file(corpus):
    path = corpus / "VideoDemographics.csv"
    assert path.read_text().splitlines()[0] == '"ActorID","Age","Sex","Race","Ethnicity"'
    assert path.read_text().splitlines()[1].startswith("1001,")  # numbers unquoted, as in the official file
    demo = pd.read_csv(path)
    assert demo["ActorID"].tolist() == [1001 + i for i in range(N_ACTORS)]
    assert set(demo["Sex"]) == {"Male", "Female"}
    assert demo["Age"].between(20, 74).all()
    assert "SYNTHETIC" in (corpus / "README.txt").read_text() and "seed: 0" in (corpus / "README.txt").read_text()


def test_wavs_are_16khz_mono_pcm16_and_not_silent(corpus):
    import soundfile as sf

    for path in sorted((corpus / "AudioWAV").glob("*.wav"))[::7]:
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.subtype) == (SAMPLE_RATE, 1, "PCM_16"), path.name
        assert 1.4 <= info.duration <= 1.8, path.name
        samples, _ = sf.read(str(path))
        assert np.sqrt(np.mean(samples**2)) > 3e-3, f"{path.name} is silent"


def test_videos_decode_and_show_a_face_the_haar_cascade_finds(corpus):
    import cv2

    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    found = total = 0
    for emotion in EMOTIONS:
        frames = _frames(corpus / "VideoFlash" / f"1002_DFA_{emotion}_XX.flv")
        assert frames.shape[1:] == (144, 192, 3) and 20 <= len(frames) <= 28
        for frame in frames[::4]:
            gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            faces = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(40, 40))
            found += len(faces) > 0
            total += 1
    assert found / total >= 0.9, f"face found in {found}/{total} frames"


def test_same_seed_gives_the_same_clips_whatever_the_corpus_size(corpus, tmp_path):
    # A clip depends only on the seed and its own name, so a smaller corpus repeats it exactly.
    small = make_synthetic_corpus(tmp_path / "small", n_actors=2, sentences=("DFA",))
    wavs = sorted((small / "AudioWAV").glob("*.wav"))
    assert len(wavs) == 12
    assert all(_sha(p) == _sha(corpus / "AudioWAV" / p.name) for p in wavs)
    clip = "1001_DFA_HAP_XX.flv"
    assert np.array_equal(_frames(small / "VideoFlash" / clip), _frames(corpus / "VideoFlash" / clip))


def test_another_seed_gives_other_audio(corpus, tmp_path):
    other = make_synthetic_corpus(tmp_path / "seed1", n_actors=2, sentences=("DFA",), seed=1, with_video=False)
    wavs = sorted((other / "AudioWAV").glob("*.wav"))
    assert wavs and not any(_sha(p) == _sha(corpus / "AudioWAV" / p.name) for p in wavs)
    assert not (other / "VideoFlash").exists()


def test_rerun_is_skipped_and_other_parameters_are_refused(corpus):
    before = {p: p.stat().st_mtime_ns for p in (corpus / "AudioWAV").glob("*.wav")}
    start = time.perf_counter()
    assert make_synthetic_corpus(corpus, **SMALL) == corpus
    assert time.perf_counter() - start < 1.0
    assert {p: p.stat().st_mtime_ns for p in (corpus / "AudioWAV").glob("*.wav")} == before
    with pytest.raises(ValueError, match="other parameters"):
        make_synthetic_corpus(corpus, **SMALL, seed=3)


def test_an_interrupted_corpus_is_completed_with_the_same_bytes(tmp_path):
    root = make_synthetic_corpus(tmp_path / "c", n_actors=2, sentences=("TSI",), with_video=False)
    lost = root / "AudioWAV" / "1002_TSI_SAD_XX.wav"
    digest = _sha(lost)
    lost.unlink()
    make_synthetic_corpus(root, n_actors=2, sentences=("TSI",), with_video=False)
    assert _sha(lost) == digest


def test_a_folder_holding_other_audio_is_refused(tmp_path):
    (tmp_path / "AudioWAV").mkdir()
    (tmp_path / "AudioWAV" / "1001_DFA_ANG_XX.wav").write_bytes(b"real clip")
    with pytest.raises(ValueError, match=f"no {CONFIG_NAME}"):
        make_synthetic_corpus(tmp_path, n_actors=2, sentences=("DFA",))


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_actors=1), "n_actors"),
    (dict(sentences=("DFA", "XYZ")), "sentences"),
])
def test_bad_arguments_are_named(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_synthetic_corpus(tmp_path, **kwargs)


def test_audio_emotion_cues_are_learnable(corpus):
    import librosa
    import soundfile as sf
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, labels = [], []
    for path in sorted((corpus / "AudioWAV").glob("*.wav")):
        samples, sr = sf.read(str(path), dtype="float32")
        mfcc = librosa.feature.mfcc(y=samples, sr=sr, n_mfcc=20)
        log_rms = np.log(librosa.feature.rms(y=samples)[0] + 1e-6)
        features.append(np.r_[mfcc.mean(1), mfcc.std(1), log_rms.mean(), log_rms.std()])
        labels.append(path.stem.split("_")[2])
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.3, max_iter=2000))
    accuracy = cross_val_score(model, np.array(features), np.array(labels),
                               cv=StratifiedKFold(4, shuffle=True, random_state=0)).mean()
    # Chance is 1/6; seeds 0-4 give 0.61-0.70 on this 88-clip corpus.
    assert accuracy > 0.4, f"random-split accuracy {accuracy:.2f} is too close to chance"
