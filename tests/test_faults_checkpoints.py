"""Planted checkpoint faults: every broken, foreign or malicious file is refused with one message that
names the file and the fix; nothing half-loaded is used, and a broken file never hides a valid one."""

from __future__ import annotations

import numpy as np
import pytest

from mer_utils.core.checkpoint_gate import CheckpointError

LABELS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
CORPUS = {"name": "cremad", "labels": list(LABELS), "synthetic": True}


@pytest.fixture(scope="module")
def acoustic(tmp_path_factory):
    """A real acoustic checkpoint (the one model kind every CPU user has), fitted on random features."""
    from mer_utils.experts.audio.classical import AcousticExpert, recipe_for
    from mer_utils.experts.audio.loading import AudioSettings
    from mer_utils.experts.audio.variants import fit_recipe_held_out

    rng = np.random.default_rng(0)
    recipe = recipe_for("librosa", c_grid=(1.0,), refit=False)

    def block(n):
        return {"X": {"librosa": rng.normal(size=(n, 12))}, "y": np.arange(n) % 6, "speakers": np.arange(n) % 3}

    models, _, _ = fit_recipe_held_out(recipe, block(60), block(30), labels=LABELS)
    expert = AcousticExpert(feature_set="librosa", settings=AudioSettings(), models=models, recipe=recipe,
                            labels=LABELS)
    return expert.save(tmp_path_factory.mktemp("ck") / "best_audio_librosa_speaker_indep")


def _copy(src, dst_dir, name=None):
    dst = dst_dir / (name or src.name)
    dst.write_bytes(src.read_bytes())
    return dst


def _load(path):
    from mer_utils.experts.audio.checkpoint import load_audio_expert

    return load_audio_expert(path)


def test_valid_acoustic_checkpoint_loads(acoustic):
    assert _load(acoustic).labels == LABELS


@pytest.mark.parametrize("fault, reason", [
    ("truncated", "truncated or not in safetensors format"),
    ("not_safetensors", "truncated or not in safetensors format"),
])
def test_truncated_or_foreign_safetensors_refused_naming_the_file(acoustic, tmp_path, fault, reason):
    data = acoustic.read_bytes()
    bad = tmp_path / acoustic.name
    bad.write_bytes(data[: len(data) // 2] if fault == "truncated" else b"PK\x03\x04 a zip renamed" * 50)
    with pytest.raises(CheckpointError) as err:
        _load(bad)
    message = str(err.value)
    assert str(bad) in message and reason in message and "mer audio train" in message


def _rewrite(path, dst, change):
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(path), framework="numpy") as handle:
        meta, arrays = handle.metadata(), {k: handle.get_tensor(k) for k in handle.keys()}
    change(arrays)
    save_file(arrays, str(dst), metadata=meta)
    return dst


def test_nan_weights_refused_not_answered_as_the_first_label(acoustic, tmp_path):
    bad = _rewrite(acoustic, tmp_path / acoustic.name,
                   lambda a: a.__setitem__("block0.coef", np.full_like(a["block0.coef"], np.nan)))
    with pytest.raises(CheckpointError, match="NaN or infinite") as err:
        _load(bad)
    assert "block0.coef" in str(err.value) and str(bad) in str(err.value)


def test_wrong_shaped_head_refused_at_load_not_inside_a_matmul(acoustic, tmp_path):
    bad = _rewrite(acoustic, tmp_path / acoustic.name,
                   lambda a: a.__setitem__("block0.coef", a["block0.coef"][:, :5].copy()))
    with pytest.raises(CheckpointError, match="do not fit") as err:
        _load(bad)
    assert str(bad) in str(err.value)


class _Payload:
    """Unpickling this would call ``_mark`` (a stand-in for a malicious ``os.system``)."""

    def __reduce__(self):
        return (_mark, ("ran",))


RAN = []


def _mark(value):
    RAN.append(value)
    return value


def _malicious_pt(path):
    path.write_bytes(b"")
    import torch

    torch.save({"format": "mer-audio-ssl-v1", "payload": _Payload()}, path)
    RAN.clear()
    return path


def test_malicious_pt_is_not_loaded_and_the_message_is_the_toolkits(tmp_path):
    bad = _malicious_pt(tmp_path / "best_wav2vec2_speaker_indep.pt")
    with pytest.raises(CheckpointError) as err:
        _load(bad)
    message = str(err.value)
    assert RAN == [], "the pickle's code ran"
    assert str(bad) in message and "not a checkpoint the toolkit wrote" in message and "not loaded" in message
    assert "weights_only=False" not in message  # torch's advice to run the code is not passed on


def test_truncated_speech_model_checkpoint_refused(tmp_path):
    import torch

    path = tmp_path / "best_wav2vec2_speaker_indep.pt"
    torch.save({"format": "mer-audio-ssl-v1", "state_dict": {"w": torch.zeros(4096)}, "config": {}}, path)
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as err:
        _load(path)
    assert str(path) in str(err.value)


def test_demo_skips_a_broken_checkpoint_in_front_of_a_valid_one(acoustic, tmp_path, caplog):
    from mer_utils.core.checkpoint_index import register_checkpoint
    from mer_utils.demo.selection import find_real_first

    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    good = _copy(acoustic, checkpoints)
    bad = _malicious_pt(checkpoints / "best_wav2vec2_speaker_indep.pt")
    register_checkpoint(checkpoints, modality="audio", protocol="random", path=good, corpus=CORPUS, corpus_key="k",
                        speaker_independent=False)
    # Speaker-independent: the malicious file is the first candidate.
    register_checkpoint(checkpoints, modality="audio", protocol="speaker", path=bad, corpus=CORPUS, corpus_key="k",
                        speaker_independent=True)
    path, entry, _, _ = find_real_first("audio", checkpoints, synthetic_input=True, allow_synthetic=True)
    assert path == good.resolve() and entry["protocol"] == "random"
    assert RAN == [] and str(bad) in caplog.text
    bad.unlink()
    _copy(acoustic, checkpoints, bad.name).write_bytes(b"\0" * 100)
    good.write_bytes(good.read_bytes()[:50])
    assert find_real_first("audio", checkpoints, synthetic_input=True, allow_synthetic=True)[0] is None
    assert "no usable audio checkpoint" in caplog.text


def test_visual_checkpoint_faults(tmp_path):
    from mer_utils.experts.visual.checkpoint import load_visual_expert, save_visual_checkpoint
    from mer_utils.experts.visual.crops import CropConfig
    from mer_utils.experts.visual.models import ModelSpec, build_visual_model

    spec = ModelSpec(labels=LABELS)
    weights = save_visual_checkpoint(tmp_path / "best_visual_model", build_visual_model(spec, pretrained=False),
                                     crop_config=CropConfig())
    assert load_visual_expert(weights).labels == LABELS
    other = save_visual_checkpoint(tmp_path / "other", build_visual_model(ModelSpec(labels=LABELS[:4]),
                                                                          pretrained=False), crop_config=CropConfig())
    (tmp_path / "best_visual_model.safetensors").write_bytes(other.read_bytes())  # a head of 4 classes, not 6
    with pytest.raises(CheckpointError, match="do not fit") as err:
        load_visual_expert(weights)
    assert "best_visual_model.safetensors" in str(err.value) and "mer visual train" in str(err.value)
    (tmp_path / "best_visual_model.json").write_text('{"format": "mer-visual-1", "labels": [')
    with pytest.raises(CheckpointError, match="JSON is truncated") as err:
        load_visual_expert(weights)
    assert "best_visual_model.json" in str(err.value)


@pytest.mark.parametrize("text, reason", [
    ('{"format": 1, "strategy": "product", "rule": {"rule": "log_linear", "weights": [0.5]}}', "weights [0.5]"),
    ('{"format": 1, "strategy": "product", "rule": {"rule": "log_linear", "weights": [0.5, NaN]}}', "weights"),
    ('{"format": 1, "strategy": "stacking", "rule": {"rule": "stacking"}}', "lacks"),
    ('{"format": 1, "strategy": "product", "rule": {"rule": "log_linear", "weights": [0.5, 0.5]}, '
     '"temperatures": {"audio": 0}}', "temperatures"),
    ('{"format": 1, "strategy": "prod', "JSON is truncated"),
])
def test_broken_fusion_rule_refused(tmp_path, text, reason):
    from mer_utils.fusion.rules import load_fusion_rule

    path = tmp_path / "best_fusion.json"
    path.write_text(text)
    with pytest.raises(CheckpointError) as err:
        load_fusion_rule(path)
    assert str(path) in str(err.value) and reason in str(err.value) and "mer fuse" in str(err.value)


def test_cli_prints_the_refusal_without_a_traceback(acoustic, tmp_path, capsys):
    from mer_utils.cli import main

    bad = tmp_path / acoustic.name
    bad.write_bytes(acoustic.read_bytes()[:100])
    wav = tmp_path / "clip.wav"
    import soundfile as sf

    sf.write(wav, np.zeros(16000, dtype=np.float32), 16000)
    assert main(["predict", str(wav), "--audio-checkpoint", str(bad), "--checkpoints",
                 str(tmp_path / "none")]) != 0
    err = capsys.readouterr().err
    assert str(bad) in err and "Traceback" not in err
