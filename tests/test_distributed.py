"""Data-parallel runs through Accelerate: two CPU processes (gloo) on the synthetic corpus.

One launch (each costs seconds of imports) serves every multi-process test:
an uninterrupted fine-tune, a frozen run, then a second fine-tune killed
mid-epoch (both processes raise at the same batch, as a lost runtime would
stop them) and rerun, which resumes from the saved Trainer checkpoint. The tiny
wav2vec2 has dropout and time masking on, so equal weights after the resume
mean every RNG stream (python, numpy, torch, per process) was restored.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from tests.conftest import REPO
from tests.test_audio_ssl import TINY

NOISY = {**TINY, "hidden_dropout": 0.1, "attention_dropout": 0.1, "activation_dropout": 0.1,
         "feat_proj_dropout": 0.1, "final_dropout": 0.1, "mask_time_prob": 0.3, "mask_time_length": 2}
# A launched helper: `mer` commands in a row, dying at the STOP_AT_BATCH-th training batch of each
# process (a kill: that command fails, the next one runs); the exit codes are printed.
HELPER = """
import os, sys
from mer_utils.experts.fine_tuning import ClassBalancedTrainer
stop = int(os.environ.get("STOP_AT_BATCH", "0"))
real, calls = ClassBalancedTrainer.training_step, []
def dies(*args, **kwargs):
    calls.append(1)
    if len(calls) == stop:
        raise RuntimeError("killed at batch %d" % stop)
    return real(*args, **kwargs)
ClassBalancedTrainer.training_step = dies
from mer_utils.cli import main
codes = [main(argv.split()) for argv in " ".join(sys.argv[1:]).split(" :: ")]
# One write, flushed: both processes share the pipe, and print's separate pieces could interleave.
sys.stdout.write("exit codes %s\\n" % codes)
sys.stdout.flush()
raise SystemExit(codes[-1])
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(helper, *commands, stop_at: int = 0) -> subprocess.CompletedProcess:
    """``accelerate launch`` with 2 CPU processes (gloo), from the repository's interpreter."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
           "STOP_AT_BATCH": str(stop_at)}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), str(helper), " :: ".join(commands)]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from transformers import AutoModel, Wav2Vec2Config, Wav2Vec2FeatureExtractor

    from mer_utils.data.synthetic.corpus import make_synthetic_corpus

    root = tmp_path_factory.mktemp("ddp")
    model_dir = root / "tiny-noisy-wav2vec2"
    torch.manual_seed(0)
    AutoModel.from_config(Wav2Vec2Config(**NOISY)).save_pretrained(model_dir)
    Wav2Vec2FeatureExtractor(return_attention_mask=False).save_pretrained(model_dir)
    corpus = make_synthetic_corpus(root / "corpus", n_actors=4, sentences=("DFA",), seed=0, with_video=False)
    helper = root / "launched_mer.py"
    helper.write_text(HELPER)
    return root, model_dir, corpus, helper


def _args(setup, out: str, mode: str = "finetune") -> str:
    root, model_dir, corpus, _ = setup
    common = (f"audio train --data-root {corpus} --backbone {model_dir} --mode {mode} --protocol speaker "
              f"--outputs {root / out / 'outputs'} --checkpoints {root / out / 'checkpoints'} --no-progress")
    # 12 training clips: 2 per device x 2 processes = an effective batch of 4, 3 steps per epoch.
    return common + (" --epochs 1 --batch-size 2 --grad-accum 2 --save-every-steps 1" if mode == "finetune" else "")


@pytest.fixture(scope="module")
def launched(setup):
    root, _, _, helper = setup
    # The uninterrupted fine-tune trains 3 batches per process: the 6th is the killed run's 3rd.
    out = _launch(helper, _args(setup, "a"), _args(setup, "a", "frozen"), _args(setup, "b"), _args(setup, "b"),
                  stop_at=6)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def _run_dir(root, out: str, mode: str = "finetune"):
    (run,) = (root / out / "outputs" / "audio").glob(f"*/speaker_*_{mode}_adapt-none_seed0-*")
    return run


@pytest.mark.slow  # the module's one 2-process launch, ~35 s on 2 cores
def test_two_processes_write_one_run_with_every_test_clip_once(setup, launched):
    from mer_utils.core.evaluation import score_predictions
    from mer_utils.core.predictions import read_predictions

    root = setup[0]
    run = _run_dir(root, "a")
    assert launched.stdout.count("run: ") == 3, "rank 0 alone reports (one line per finished command)"
    assert "effective batch 4 = 2 per device x 2 x 1 accumulated" in launched.stdout
    env = json.loads((run / "env.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    assert env["num_processes"] == 2
    (fold,) = metrics["folds"]
    assert (fold["num_processes"], fold["per_device_batch_size"], fold["effective_batch_size"]) == (2, 2, 4)
    split = pd.read_csv(root / "a" / "outputs" / "splits" / "speaker_seed0.csv")
    frames = {s: read_predictions(run / f"predictions_{s}.csv", expected_modality="audio") for s in ("val", "test")}
    for subset, frame in frames.items():
        assert sorted(frame["clip_id"]) == sorted(split.loc[split["subset"] == subset, "clip_id"])  # each once
    per_fold, _ = score_predictions(pd.concat(frames.values(), ignore_index=True))
    assert per_fold == metrics["per_fold"]
    assert not [p.name for p in run.rglob("*") if "state" in p.name or p.name.endswith(".tmp")]
    assert (root / "a" / "checkpoints" / "best_wav2vec2_speaker_indep.pt").is_file()


@pytest.mark.slow  # the module's one 2-process launch, ~35 s on 2 cores
def test_killed_two_process_fine_tune_resumes_to_the_same_weights(setup, launched):
    root = setup[0]
    assert "killed at batch 6" in launched.stderr and launched.stdout.count("exit codes [0, 0, 1, 0]") == 2
    metrics = json.loads((_run_dir(root, "b") / "metrics.json").read_text())
    assert metrics["folds"][0]["resumed_from"] == {"checkpoint": "checkpoint-2", "step": 2}
    straight = torch.load(_run_dir(root, "a") / "best_model.pt", weights_only=True)["state_dict"]
    resumed = torch.load(_run_dir(root, "b") / "best_model.pt", weights_only=True)["state_dict"]
    for name, tensor in straight.items():
        assert torch.equal(tensor, resumed[name]), name


@pytest.mark.slow  # the module's one 2-process launch, ~35 s on 2 cores
def test_sharded_frozen_embeddings_equal_one_process(setup, launched):
    from mer_utils.core.predictions import read_predictions
    from mer_utils.experts.audio.features import file_key
    from mer_utils.experts.audio.frozen import layer_embeddings_for_files
    from mer_utils.experts.audio.loading import AudioSettings
    from mer_utils.experts.audio.ssl_model import HeadConfig, build_classifier
    from mer_utils.data.cremad_vocabulary import EMOTIONS

    root, model_dir, corpus, _ = setup
    (shard_dir,) = {p.parent for p in (root / "a" / "outputs").rglob("shard-*.npz")}
    cached = {}
    for shard in shard_dir.glob("shard-*.npz"):
        with np.load(shard) as data:
            assert not set(data["keys"].tolist()) & set(cached), "a clip extracted twice"
            cached.update(zip(data["keys"].tolist(), data["values"]))
    assert len(cached) == 24, "every clip extracted once, by one of the two processes"
    paths = sorted(str(p) for p in (corpus / "AudioWAV").glob("*.wav"))
    model = build_classifier(str(model_dir), labels=EMOTIONS, head=HeadConfig(dropout=0.0))
    # `mer audio train`'s default audio settings, extracted here by one process without a cache.
    E, ok, _ = layer_embeddings_for_files(model, paths, model_name=str(model_dir), settings=AudioSettings(),
                                          cache_dir=None, progress=False)

    assert ok.all()
    np.testing.assert_allclose(np.stack([cached[file_key(p)] for p in paths]), E, atol=1e-6)
    frame = read_predictions(_run_dir(root, "a", "frozen") / "predictions_test.csv")
    assert frame["clip_id"].is_unique and len(frame) == 6


def test_folds_run_by_separate_processes_land_in_one_run(setup, tmp_path):
    """`--run-folds` splits speaker-kfold over processes (one per GPU); the last to finish writes the run."""
    from mer_utils.experts.audio.train import train_audio

    _, model_dir, corpus, _ = setup
    common = dict(data_root=str(corpus), backbone=str(model_dir), mode="frozen", protocol="speaker-kfold", folds=2,
                  outputs=str(tmp_path / "outputs"), checkpoints=str(tmp_path / "checkpoints"), progress=False)
    first = train_audio(run_folds=(1,), **common)
    assert first.pending == (0,) and not (first.run_dir / "metrics.json").exists()
    assert not (tmp_path / "checkpoints" / "index.json").exists(), "nothing published from half a run"
    second = train_audio(run_folds=(0,), **common)
    assert second.run_dir == first.run_dir and second.pending == ()
    assert sorted({row["fold"] for row in second.metrics["per_fold"]}) == [0, 1]
    best = max(second.metrics["folds"], key=lambda r: next(
        row["ua"] for row in second.metrics["per_fold"] if row["fold"] == r["fold"] and row["subset"] == "val"))
    assert second.metrics["checkpoint_fold"] == best["fold"] and second.checkpoint.exists()
    with pytest.raises(ValueError, match="--run-folds 7: the split speaker-kfold"):
        train_audio(run_folds=(7,), **common)


def test_truncated_visual_resume_state_is_set_aside(tmp_path, capsys, monkeypatch):
    from mer_utils.data.cremad_vocabulary import EMOTIONS
    from mer_utils.experts.fine_tuning import ClassBalancedTrainer
    from mer_utils.experts.visual.config import VisualTrainConfig
    from mer_utils.experts.visual.train import fit_fold
    from mer_utils.experts.visual.models import ModelSpec, build_visual_model

    rng = np.random.default_rng(0)
    y = np.arange(36) % 6
    feats = rng.normal(size=(36, 4, 8)).astype(np.float32)
    data = {"features": torch.from_numpy(feats), "mirrored": torch.from_numpy(feats[:, ::-1].copy())}

    def fit(work):
        torch.manual_seed(0)
        model = build_visual_model(ModelSpec(labels=EMOTIONS), pretrained=False)
        model.head[0], model.head[-1] = torch.nn.LayerNorm(8), torch.nn.Linear(8, 6)
        return fit_fold(model, data, y, np.arange(30), np.arange(30, 36), fold=0, work_dir=work,
                        config=VisualTrainConfig(epochs=2, patience=100, device="cpu", progress=False))[1]["history"]
    straight = fit(tmp_path / "straight")
    real = ClassBalancedTrainer.training_step

    def killed_in_epoch_two(self, *args, **kwargs):
        if self.state.global_step == 1:
            raise KeyboardInterrupt("runtime disconnected")
        return real(self, *args, **kwargs)
    monkeypatch.setattr(ClassBalancedTrainer, "training_step", killed_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        fit(tmp_path / "work")
    monkeypatch.undo()
    weights = tmp_path / "work" / "train_state" / "checkpoint-1" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    history = fit(tmp_path / "work")
    out = capsys.readouterr().out
    assert "checkpoint-1 is unreadable (RuntimeError: model.safetensors:" in out and "restarts from scratch" in out
    assert (tmp_path / "work" / "train_state" / "corrupt-checkpoint-1").is_dir() and history == straight
