"""Real models first: which experts answer a real CREMA-D video after the main job's synthetic training, after a
real speech expert is trained on RAVDESS, and on a clip of the synthetic corpus; the untuned fusion for experts
never validated together; the licence a real checkpoint carries into the index and the model card."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, shared

pytestmark = pytest.mark.slow  # the fixtures train three small experts (about 35 s together)


def real_flv(emotion: str) -> Path:
    return shared("crema-d-sample", "VideoFlash", f"1001_DFA_{emotion}_XX.flv")


@pytest.fixture(scope="module")
def synthetic_set(tmp_path_factory):
    """What `mer run-all` leaves, in small: speech and face experts trained on a synthetic corpus (with video),
    speaker-independent, fused on their validation predictions."""
    from mer_utils.data.synthetic.corpus import make_synthetic_corpus
    from mer_utils.experts.audio.train import train_audio
    from mer_utils.experts.visual.fer2013 import ensure_fer2013_weights
    from mer_utils.experts.visual.train import train_visual
    from mer_utils.fusion.run import fuse_runs

    base = tmp_path_factory.mktemp("run_all_like")
    corpus = make_synthetic_corpus(base / "corpus", n_actors=8, sentences=("DFA",), progress=False)
    checkpoints, outputs = base / "checkpoints", base / "outputs"
    ensure_fer2013_weights(checkpoints, cache_dir=REPO / "checkpoints" / ".cache")
    common = {"data_root": str(corpus), "protocol": "speaker", "outputs": str(outputs),
              "checkpoints": str(checkpoints), "progress": False}
    audio = train_audio(backbone="egemaps", **common)
    visual = train_visual(**common)
    fuse_runs(audio.run_dir, visual.run_dir, outputs=outputs, checkpoints=checkpoints, n_bootstrap=50)
    return corpus, checkpoints


@pytest.fixture(scope="module")
def then_real_speech(synthetic_set, real_speech_checkpoints, tmp_path_factory):
    """The synthetic set after a real speech expert (RAVDESS) was trained into the same checkpoint folder."""
    from mer_utils.core.atomic_io import write_json
    from mer_utils.core.checkpoint_index import INDEX_FORMAT, index_path, read_index

    checkpoints = tmp_path_factory.mktemp("then_real") / "checkpoints"
    shutil.copytree(synthetic_set[1], checkpoints)
    shutil.copytree(real_speech_checkpoints / "ravdess", checkpoints / "ravdess")  # index paths are relative
    entries = read_index(checkpoints) + read_index(real_speech_checkpoints)
    write_json(index_path(checkpoints), {"format": INDEX_FORMAT, "entries": entries})
    return checkpoints


def _predict(capsys, *args) -> str:
    from mer_utils.cli import main

    assert main(["predict", *map(str, args)]) == 0
    return capsys.readouterr().out


def test_after_the_synthetic_training_a_real_video_gets_the_zero_shot_face_and_no_synthetic_expert(
        synthetic_set, capsys, tmp_path):
    out = _predict(capsys, real_flv("HAP"), "--checkpoints", synthetic_set[1], "--out", tmp_path)
    # Both synthetic-trained experts are left out, each with how to get a real one.
    assert "left out: the speech expert" in out and "left out: the face expert" in out
    assert "`mer download ravdess --out DIR && mer audio train --data-root DIR --protocol speaker`" in out
    assert "VISUAL_01" in out and "--allow-synthetic" in out
    assert "audio expert trained on" not in out and "NOT meaningful" not in out
    visual = next(line for line in out.splitlines() if line.startswith("visual expert trained on:"))
    assert "FER2013" in visual and "zero-shot" in visual and "SYNTHETIC" not in visual
    assert "top emotion: HAP" in out  # the zero-shot face on the real smile


def test_allow_synthetic_brings_the_synthetic_experts_back_with_the_warning(synthetic_set, capsys, tmp_path):
    out = _predict(capsys, real_flv("HAP"), "--checkpoints", synthetic_set[1], "--out", tmp_path, "--allow-synthetic")
    assert "trained on the SYNTHETIC corpus" in out and "NOT meaningful" in out and "left out" not in out
    assert "visual expert trained on: cremad (SYNTHETIC corpus)" in out
    assert "tuned on validation" in out  # the rule fused on both synthetic experts' validation clips


def test_a_clip_of_the_synthetic_corpus_is_answered_by_the_synthetic_experts_and_their_tuned_rule(synthetic_set):
    from mer_utils.demo.predict import format_result, predict_clip

    corpus, checkpoints = synthetic_set
    result = predict_clip(video=sorted((corpus / "VideoFlash").glob("*"))[0], checkpoints=checkpoints)
    text = format_result(result)
    assert result.inputs.synthetic and not result.provenance["visual"].get("zero_shot")
    assert "left out" not in text and "NOT meaningful" not in text and "untuned" not in result.fusion


def test_after_training_on_ravdess_the_real_speech_expert_answers_with_the_face(then_real_speech, capsys, tmp_path):
    out = _predict(capsys, real_flv("ANG"), "--checkpoints", then_real_speech, "--out", tmp_path)
    audio = next(line for line in out.splitlines() if line.startswith("audio expert trained on:"))
    visual = next(line for line in out.splitlines() if line.startswith("visual expert trained on:"))
    assert "ravdess (real data); protocol speaker" in audio and "6 speakers" in audio
    assert "FER2013" in visual and "zero-shot" in visual
    assert "left out: the speech expert" not in out and "left out: the face expert" in out
    fusion = next(line for line in out.splitlines() if line.startswith("fusion:"))
    assert "UNTUNED" in fusion and "no fusion rule was tuned with these two experts together" in fusion
    assert "NOT meaningful" not in out


def test_a_recording_with_only_a_synthetic_speech_expert_says_how_to_get_a_real_one(synthetic_set):
    from mer_utils.demo.predict import predict_clip

    wav = shared("crema-d-sample", "AudioWAV", "1001_DFA_SAD_XX.wav")
    with pytest.raises(FileNotFoundError, match=r"no audio checkpoint trained on real data.*mer download ravdess"
                                                r".*--allow-synthetic"):
        predict_clip(audio=wav, checkpoints=synthetic_set[1])


def test_the_real_speech_expert_carries_its_licence_into_the_index_and_the_model_card(real_speech_checkpoints):
    from mer_utils.core.atomic_io import sha256_file
    from mer_utils.core.checkpoint_index import read_index
    from mer_utils.demo.hub import checkpoint_set_files, model_card

    entry = next(e for e in read_index(real_speech_checkpoints) if e["modality"] == "audio")
    assert entry["corpus"] == "ravdess" and not entry["synthetic"] and entry["licence"] == "CC BY-NC-SA 4.0"
    files = checkpoint_set_files(real_speech_checkpoints)
    card = model_card(real_speech_checkpoints, files,
                      {str(f): sha256_file(real_speech_checkpoints / f) for f in files})
    assert "license: cc-by-nc-sa-4.0" in card
    assert f"Weights `{entry['path']}` (audio, trained on ravdess): CC BY-NC-SA 4.0" in card


def test_the_untuned_rule_calibrates_each_expert_on_its_own_validation_clips(real_speech_checkpoints):
    from mer_utils.core.checkpoint_index import read_index
    from mer_utils.fusion.rules import expert_temperature, untuned_rule

    entry = next(e for e in read_index(real_speech_checkpoints) if e["modality"] == "audio")
    temperature, why = expert_temperature(entry)
    assert temperature != 1.0 and why.startswith("fitted on its") and "validation clips" in why
    assert expert_temperature({"zero_shot": True}) == (1.0, "zero-shot, no validation predictions")
    rule = untuned_rule(entry, {"zero_shot": True})
    assert rule.temperatures == {"audio": temperature, "visual": 1.0} and "UNTUNED" in rule.description


def test_an_over_confident_expert_does_not_veto_the_other():
    from mer_utils.fusion.rules import DEFAULT_RULE, untuned_rule

    # The speech expert on a real CREMA-D anger clip: 0.94 disgust; the face: anger first, disgust last.
    speech = np.array([0.0001, 0.94, 0.0001, 0.002, 0.0001, 0.0577])
    face = np.array([0.408, 0.0001, 0.075, 0.073, 0.345, 0.0989])
    assert int(np.argmax(DEFAULT_RULE.fuse(speech, face))) != 0  # the product rule follows the louder expert
    fused = untuned_rule({}, {}).fuse(speech, face)
    assert int(np.argmax(fused)) == 0 and np.isclose(fused.sum(), 1.0)
    # Where both agree, the fused answer agrees; a batch (timeline windows) fuses row by row.
    batch = untuned_rule({}, {}).fuse(np.stack([speech, face]), np.stack([face, face]))
    assert batch.shape == (2, 6) and int(np.argmax(batch[1])) == 0


def test_an_expert_with_more_emotions_answers_over_the_six():
    from mer_utils.demo.selection import DEMO_LABELS, OverLabels, over_demo_labels

    class EightEmotions:  # the label order of RAVDESS read with all_emotions=True
        labels = ("ANG", "CAL", "DIS", "FEA", "HAP", "NEU", "SAD", "SUR")

        def predict_proba(self, inputs):
            return np.tile([0.1, 0.3, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1], (len(inputs), 1))

    view = over_demo_labels(EightEmotions())
    assert isinstance(view, OverLabels) and view.labels == DEMO_LABELS
    probs = view.predict_proba([None, None])
    assert probs.shape == (2, 6) and np.allclose(probs, 1 / 6)  # calm and surprised dropped, the rest renormalised
