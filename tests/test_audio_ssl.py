"""Self-supervised speech backbones, on tiny random-weight models (no download).

The tiny wav2vec2 has the real architecture (convolutional encoder with a
320x stride, transformer, positional convolution) at toy width, so the code
paths of facebook/wav2vec2-base are exercised in seconds.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from mer_utils.experts.audio.loading import ClipSet
from mer_utils.experts.audio.checkpoint import load_audio_expert
from mer_utils.experts.audio.frozen import FrozenBackbone
from mer_utils.experts.audio.ssl_model import HeadConfig, SSLClassifier, build_classifier, classifier_from_spec
from mer_utils.experts.audio.config import AudioTrainConfig
from mer_utils.experts.audio.ssl_train import FinetuneBackbone
from mer_utils.experts.fine_tuning import ClassBalancedTrainer
from mer_utils.core.predictions import read_predictions
from tests.conftest import shared
from mer_utils.data.cremad_vocabulary import EMOTIONS

# No dropout and no SpecAugment: training is then a pure function of the data
# order, which lets the resume test compare against an uninterrupted run.
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
            conv_dim=(8, 8, 8), conv_kernel=(10, 4, 4), conv_stride=(5, 8, 8), num_feat_extract_layers=3,
            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, hidden_dropout=0.0,
            attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0, final_dropout=0.0,
            layerdrop=0.0, mask_time_prob=0.0)
FAST = dict(epochs=1, batch_size=4, grad_accum=1, lr=1e-3, head_lr=1e-2, save_every_steps=1, progress=False)
NO_DROPOUT = HeadConfig(dropout=0.0)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Toy-sized tensors: one thread is faster than two competing with other work."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    """A local model folder, as ``save_pretrained`` writes it (the offline path users take)."""
    from transformers import AutoModel, Wav2Vec2Config, Wav2Vec2FeatureExtractor

    path = tmp_path_factory.mktemp("tiny-wav2vec2")
    torch.manual_seed(0)
    AutoModel.from_config(Wav2Vec2Config(**TINY)).save_pretrained(path)
    Wav2Vec2FeatureExtractor(return_attention_mask=False).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from mer_utils.data.synthetic.corpus import make_synthetic_corpus

    return make_synthetic_corpus(tmp_path_factory.getbasetemp() / "audio_corpus_4actors", n_actors=4,
                                 sentences=("DFA",), seed=0, with_video=False)


@pytest.fixture(scope="module")
def clips(corpus):
    """Train on actors 1001-1002, validate on 1003, test on 1004 (6 emotions each)."""
    def actor(a):
        ids = [f"{a}_DFA_{e}_XX" for e in ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")]
        return ClipSet(ids, [corpus / "AudioWAV" / f"{c}.wav" for c in ids], [c[-6:-3] for c in ids], label_set=EMOTIONS)
    train = actor(1001)
    second = actor(1002)
    train = ClipSet(train.clip_ids + second.clip_ids, train.paths + second.paths, train.labels + second.labels, label_set=EMOTIONS)
    return {"train": train, "val": actor(1003), "test": actor(1004)}


def _finetune(tiny_model_dir, clips, work_dir):
    backbone = FinetuneBackbone(AudioTrainConfig(backbone=str(tiny_model_dir), **FAST), head=NO_DROPOUT)
    report = backbone.fit(clips["train"], clips["val"], work_dir=work_dir)
    return backbone, report


def test_finetune_saves_and_reloads_with_identical_probabilities(tiny_model_dir, clips, tmp_path):
    start = build_classifier(str(tiny_model_dir), labels=EMOTIONS).backbone.encoder.layers[0].attention.q_proj.weight.clone()
    backbone, report = _finetune(tiny_model_dir, clips, tmp_path / "work")
    assert report["optimizer_steps"] == 3 and report["best_epoch"] == 1
    trained = backbone.model.backbone.encoder.layers[0].attention.q_proj.weight
    assert not torch.equal(start, trained.detach())
    path = backbone.save(tmp_path / "best_wav2vec2_random")
    assert path.suffix == ".pt"
    payload = torch.load(path, weights_only=True)  # plain tensors and dicts: nothing executable
    assert payload["config"]["labels"] == ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"]
    assert payload["config"]["model_name"] == str(tiny_model_dir)
    expert = load_audio_expert(path, device="cpu")
    np.testing.assert_array_equal(expert.predict_proba(clips["test"].paths), backbone.predict_proba(clips["test"]))


def test_checkpoint_loads_without_the_model_folder_or_network(tiny_model_dir, clips, tmp_path, monkeypatch):
    backbone, _ = _finetune(tiny_model_dir, clips, tmp_path / "work")
    path = backbone.save(tmp_path / "ckpt")
    import transformers

    def no_download(*args, **kwargs):
        raise AssertionError("loading a checkpoint must not call from_pretrained")
    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", no_download)
    monkeypatch.setattr(transformers.AutoFeatureExtractor, "from_pretrained", no_download)
    proba = load_audio_expert(path, device="cpu").predict_proba(clips["val"].paths)
    assert proba.shape == (6, 6) and np.allclose(proba.sum(axis=1), 1)


@pytest.fixture(scope="module")
def noisy_model_dir(tmp_path_factory):
    """The tiny model with dropout everywhere and SpecAugment time masks (numpy-drawn) on."""
    from transformers import AutoModel, Wav2Vec2Config, Wav2Vec2FeatureExtractor

    path = tmp_path_factory.mktemp("tiny-noisy-wav2vec2")
    torch.manual_seed(0)
    noisy = {**TINY, "hidden_dropout": 0.1, "attention_dropout": 0.1, "activation_dropout": 0.1,
             "feat_proj_dropout": 0.1, "final_dropout": 0.1, "mask_time_prob": 0.3, "mask_time_length": 2}
    AutoModel.from_config(Wav2Vec2Config(**noisy)).save_pretrained(path)
    Wav2Vec2FeatureExtractor(return_attention_mask=False).save_pretrained(path)
    return path


def _killed_on_third_batch(monkeypatch, model_dir, clips, work):
    """A fine-tune that dies on its third training batch (a Colab disconnect), leaving its resume state."""
    real, calls = ClassBalancedTrainer.training_step, []

    def dies_on_third_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("runtime disconnected")
        return real(*args, **kwargs)
    monkeypatch.setattr(ClassBalancedTrainer, "training_step", dies_on_third_batch)
    with pytest.raises(KeyboardInterrupt):
        _finetune(model_dir, clips, work)
    monkeypatch.setattr(ClassBalancedTrainer, "training_step", real)


@pytest.mark.parametrize("noisy", [False, True], ids=["deterministic", "dropout-and-masking"])
def test_training_killed_midway_resumes_to_the_same_model(noisy, tiny_model_dir, noisy_model_dir, clips, tmp_path,
                                                          monkeypatch):
    """With dropout and masking on, equal weights need the python, numpy and torch RNGs restored too."""
    if noisy:
        tiny_model_dir = noisy_model_dir
    reference, _ = _finetune(tiny_model_dir, clips, tmp_path / "uninterrupted")
    _killed_on_third_batch(monkeypatch, tiny_model_dir, clips, tmp_path / "interrupted")
    resumed, report = _finetune(tiny_model_dir, clips, tmp_path / "interrupted")
    assert report["resumed_from"] == {"checkpoint": "checkpoint-2", "step": 2}
    assert report["optimizer_steps"] == 3
    for (name, a), b in zip(reference.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_truncated_resume_state_is_set_aside_and_the_fold_restarts(tiny_model_dir, clips, tmp_path, monkeypatch,
                                                                    capsys):
    _killed_on_third_batch(monkeypatch, tiny_model_dir, clips, tmp_path / "work")
    state = tmp_path / "work" / "train_state"
    assert sorted(p.name for p in state.iterdir()) == ["checkpoint-2"]  # the newest one kept
    optimizer = state / "checkpoint-2" / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[:100])  # a kill during a copy, a full disk
    _, report = _finetune(tiny_model_dir, clips, tmp_path / "work")
    out = capsys.readouterr().out
    assert "checkpoint-2 is unreadable (RuntimeError: optimizer.pt:" in out and "restarts from scratch" in out
    assert (state / "corrupt-checkpoint-2" / "optimizer.pt").exists()
    assert report["resumed_from"] is None and report["optimizer_steps"] == 3


def test_frozen_mode_caches_embeddings_and_its_checkpoint_runs_on_audio(tiny_model_dir, clips, tmp_path,
                                                                       monkeypatch):
    kwargs = dict(model_name=str(tiny_model_dir), cache_dir=tmp_path / "cache", progress=False)
    first = FrozenBackbone(**kwargs)
    report = first.fit(clips["train"], clips["val"])
    assert report["mode"] == "frozen" and 0 <= report["layer"] <= 2
    shards = sorted((tmp_path / "cache").rglob("shard-*.npz"))
    assert shards

    def recompute(*args, **kwargs):
        raise AssertionError("embeddings were recomputed instead of read from the cache")
    monkeypatch.setattr(SSLClassifier, "layer_embeddings", recompute)
    second = FrozenBackbone(**kwargs)
    assert second.fit(clips["train"], clips["val"])["val_ua"] == report["val_ua"]
    assert sorted((tmp_path / "cache").rglob("shard-*.npz")) == shards
    monkeypatch.undo()

    cached_proba = first.predict_proba(clips["train"])
    expert = load_audio_expert(first.save(tmp_path / "frozen"), device="cpu")
    np.testing.assert_allclose(expert.predict_proba(clips["train"].paths), cached_proba, atol=1e-5)


def test_weighted_probe_learns_layer_weights(tiny_model_dir, clips, tmp_path):
    backbone = FrozenBackbone(model_name=str(tiny_model_dir), probe="weighted", cache_dir=tmp_path, progress=False)
    report = backbone.fit(clips["train"], clips["val"])
    assert len(report["layer_weights"]) == 3 and abs(sum(report["layer_weights"]) - 1) < 1e-5
    assert np.isfinite(backbone.predict_proba(clips["test"])).all()


@pytest.mark.parametrize("family", ["hubert", "wavlm", "whisper"])
def test_other_speech_model_families_share_the_head_and_checkpoint(family):
    from transformers import AutoConfig, AutoModel

    from mer_utils.experts.audio.ssl_model import default_feature_extractor

    if family == "whisper":
        config = AutoConfig.for_model("whisper", d_model=16, encoder_layers=2, decoder_layers=1,
                                      encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                                      decoder_ffn_dim=32, num_mel_bins=80, max_source_positions=1500)
    else:
        keys = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "conv_dim",
                "conv_kernel", "conv_stride", "num_feat_extract_layers", "num_conv_pos_embeddings",
                "num_conv_pos_embedding_groups")
        config = AutoConfig.for_model(family, **{k: TINY[k] for k in keys})
    model = AutoModel.from_config(config)
    model = model.get_encoder() if family == "whisper" else model
    clf = SSLClassifier(model, default_feature_extractor(config), labels=EMOTIONS, head=HeadConfig(pooling="attentive"))
    waves = [np.random.default_rng(0).normal(size=n).astype(np.float32) * 0.1 for n in (16_000, 24_000)]
    proba = clf.predict_proba_waves(waves)
    assert proba.shape == (2, 6) and np.allclose(proba.sum(axis=1), 1)
    rebuilt = classifier_from_spec(clf.spec())
    rebuilt.load_state_dict(clf.state_dict())
    np.testing.assert_allclose(rebuilt.predict_proba_waves(waves), proba, atol=1e-6)


def test_missing_model_says_so_plainly(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(RuntimeError, match=r"Could not download 'facebook/wav2vec2-base' \(no network\?\)"):
        build_classifier("facebook/wav2vec2-base", labels=EMOTIONS)
    with pytest.raises(RuntimeError, match="Model folder '/no/such/model/folder' not found"):
        build_classifier("/no/such/model/folder", labels=EMOTIONS)


def test_runner_finetune_and_frozen_write_runs_and_stable_checkpoints(tiny_model_dir, corpus, tmp_path,
                                                                       monkeypatch):
    from mer_utils.experts.audio.train import train_audio

    secret = "hf_test_secret_never_written"
    monkeypatch.setenv("HF_TOKEN", secret)
    common = dict(data_root=str(corpus), protocol="speaker", backbone=str(tiny_model_dir),
                  outputs=str(tmp_path / "outputs"), checkpoints=str(tmp_path / "checkpoints"), progress=False)
    tuned = train_audio(mode="finetune", epochs=1, batch_size=4, grad_accum=1, **common)
    frozen = train_audio(mode="frozen", **common)
    with pytest.raises(ValueError, match="--epochs 1: not used by frozen mode"):
        train_audio(mode="frozen", epochs=1, **common)  # an option the mode ignores is refused, not dropped
    assert tuned.checkpoint.name == "best_wav2vec2_speaker_indep.pt"
    assert not list(tuned.run_dir.rglob("*_state*"))  # resume state removed once the fold is done
    assert frozen.checkpoint.name == "best_wav2vec2_frozen_speaker_indep.pt"
    for result in (tuned, frozen):
        frame = read_predictions(result.run_dir / "predictions_test.csv", expected_modality="audio")
        assert len(frame) == 6 and result.metrics["summary"]["test"]["ua"]["n"] == 1
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert not [p for p in written if secret.encode() in p.read_bytes()]


def test_tiny_model_predicts_every_real_clip(tiny_model_dir, clips, tmp_path):
    backbone, _ = _finetune(tiny_model_dir, clips, tmp_path / "work")
    expert = load_audio_expert(backbone.save(tmp_path / "ckpt"), device="cpu")
    real = sorted(shared("crema-d-sample", "AudioWAV").glob("*.wav"))
    real += sorted(shared("crema-d-sample", "AudioMP3").glob("*.mp3"))
    proba = expert.predict_proba(real)
    assert proba.shape == (12, 6) and np.isfinite(proba).all() and np.allclose(proba.sum(axis=1), 1)


def test_head_config_rejects_unknown_pooling():
    with pytest.raises(ValueError, match="pooling"):
        dataclasses.replace(NO_DROPOUT, pooling="max")


def test_demo_finds_a_fine_tuned_hubert_through_the_checkpoint_index(corpus, tmp_path):
    """Not only wav2vec2: whatever family was fine-tuned is indexed and found by the demo."""
    from transformers import AutoModel, HubertConfig, Wav2Vec2FeatureExtractor

    from mer_utils.core.checkpoint_index import find_entries
    from mer_utils.demo.predict import format_result, predict_clip
    from mer_utils.experts.audio.train import train_audio

    model_dir = tmp_path / "tiny-hubert"
    torch.manual_seed(0)
    AutoModel.from_config(HubertConfig(**TINY)).save_pretrained(model_dir)
    Wav2Vec2FeatureExtractor(return_attention_mask=False).save_pretrained(model_dir)
    checkpoints = tmp_path / "checkpoints"
    result = train_audio(data_root=str(corpus), protocol="speaker", backbone=str(model_dir), mode="finetune",
                         epochs=1, batch_size=4, grad_accum=1, outputs=str(tmp_path / "outputs"),
                         checkpoints=str(checkpoints), progress=False)
    assert result.checkpoint.name == "best_hubert_speaker_indep.pt"
    (entry,) = find_entries(checkpoints, modality="audio")
    assert entry["mode"] == "finetune" and entry["synthetic"] is True and entry["labels"] == list(EMOTIONS)
    wav = sorted(shared("crema-d-sample", "AudioWAV").glob("*.wav"))[0]
    # A synthetic-trained expert on a real recording: only when asked (the demo leaves it out otherwise).
    prediction = predict_clip(audio=wav, checkpoints=checkpoints, outputs=tmp_path / "outputs", allow_synthetic=True)
    assert Path(prediction.checkpoints["audio"]).name == "best_hubert_speaker_indep.pt"
    assert prediction.labels == EMOTIONS and prediction.audio_probs.shape == (6,)
    assert "audio expert trained on: cremad (SYNTHETIC corpus); protocol speaker" in format_result(prediction)
