"""The visual expert end to end on the synthetic corpus: learns, writes the contract, reloads, resumes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from mer_utils.data.cremad_vocabulary import EMOTIONS


@pytest.fixture(scope="module")
def run(synthetic_corpus, tmp_path_factory):
    from mer_utils.experts.visual.fer2013 import ensure_fer2013_weights
    from mer_utils.experts.visual.train import train_visual

    folder = tmp_path_factory.mktemp("visual")
    checkpoints = folder / "checkpoints"
    ensure_fer2013_weights(checkpoints, cache_dir=REPO / "checkpoints" / ".cache")
    result = train_visual(data_root=str(synthetic_corpus), protocol="random", outputs=str(folder / "outputs"),
                          checkpoints=str(checkpoints), progress=False)
    return folder, result


def test_training_beats_chance_and_writes_the_contract(run):
    from mer_utils.core.predictions import read_predictions
    from mer_utils.core.runs import resolve_latest

    folder, result = run
    metrics = result.metrics
    assert metrics["modality"] == "visual" and metrics["backbone"] == "fer2013" and metrics["split"] == "random_seed0"
    assert metrics["summary"]["test"]["ua"]["mean"] > 0.3, "chance is 1/6"
    assert metrics["faces"]["face_rate"] >= 0.95
    for subset in ("val", "test"):
        frame = read_predictions(result.run_dir / f"predictions_{subset}.csv", expected_split="random_seed0",
                                 expected_modality="visual")
        assert set(frame["subset"]) == {subset} and len(frame) > 10
    assert (result.run_dir / "confusion_test.png").stat().st_size > 5_000
    assert resolve_latest(folder / "outputs", "visual", "random") == result.run_dir.resolve()


def test_checkpoint_reload_reproduces_the_test_probabilities(run):
    from mer_utils.core.predictions import read_predictions
    from mer_utils.experts.visual.checkpoint import load_visual_expert
    from mer_utils.experts.visual.crops import load_clip_crops

    _, result = run
    # The random protocol's stable name; the speaker protocol keeps best_visual_model.* (the demo's).
    assert result.checkpoint.name == "best_visual_model_random.safetensors"
    expert = load_visual_expert(result.checkpoint)
    assert expert.labels == EMOTIONS and expert.meta["fold"] == result.metrics["checkpoint_fold"]
    test = read_predictions(result.run_dir / "predictions_test.csv").head(12)
    crops = np.stack([load_clip_crops(result.metrics["crop_cache"], c).crops for c in test["clip_id"]])
    assert np.abs(expert.predict_crops(crops) - test.filter(regex="^p_").to_numpy()).max() < 1e-4


def test_checkpoint_loads_without_training_code_and_predicts_a_video(run, synthetic_corpus):
    _, result = run
    video = sorted((synthetic_corpus / "VideoFlash").glob("*.flv"))[0]
    script = (
        "import sys\n"
        "from mer_utils.experts.visual.checkpoint import load_visual_expert\n"
        f"r = load_visual_expert({str(result.checkpoint)!r}).predict_video({str(video)!r})\n"
        "assert 'mer_utils.experts.visual.train' not in sys.modules, 'training code imported'\n"
        "print(round(float(r.probs.sum()), 4), r.frames.shape[0], r.boxes.shape, int(r.detected.sum()))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    total, k, boxes, found = out.stdout.split(maxsplit=3)
    assert (total, k, boxes) == ("1.0", "8", "(8,") and int(found.split()[-1]) >= 7


def test_rerun_reuses_finished_folds(run, monkeypatch):
    from mer_utils.experts.visual.train import VisualExpert, train_visual

    folder, result = run
    # A retrain of a finished fold would reproduce the same seeded summary: make it fail instead.
    monkeypatch.setattr(VisualExpert, "fit_fold", lambda *a, **k: pytest.fail("a finished fold was retrained"))
    again = train_visual(data_root=result.metrics["data_root"], protocol="random", outputs=str(folder / "outputs"),
                         checkpoints=str(folder / "checkpoints"), progress=False)
    assert again.metrics["summary"] == result.metrics["summary"]


def test_zero_shot_baseline_and_cli(run, capsys):
    from mer_utils.cli import main
    from mer_utils.core.predictions import read_predictions

    folder, result = run
    common = ["--data-root", result.metrics["data_root"], "--outputs", str(folder / "outputs"),
              "--checkpoints", str(folder / "checkpoints"), "--no-progress"]
    assert main(["visual", "zero-shot", "--protocol", "random", *common]) == 0
    (zero,) = (folder / "outputs" / "visual").glob("*/random_fer2013-zeroshot_seed0-*")
    frame = read_predictions(zero / "predictions_test.csv", expected_modality="visual")
    assert len(frame) == len(read_predictions(result.run_dir / "predictions_test.csv"))
    assert main(["visual", "prepare", *common]) == 0
    assert "face_rate=1.000" in capsys.readouterr().out


def _toy_features(n=60, k=4, d=8, seed=0):
    import torch

    rng = np.random.default_rng(seed)
    y = np.arange(n) % len(EMOTIONS)
    feats = rng.normal(size=(n, k, d)).astype(np.float32)
    feats[np.arange(n), :, y % d] += 2.0  # a learnable cue
    return {"features": torch.from_numpy(feats), "mirrored": torch.from_numpy(feats[:, ::-1].copy())}, y


def _head_model():
    import torch

    from mer_utils.experts.visual.models import ModelSpec, build_visual_model

    torch.manual_seed(0)
    model = build_visual_model(ModelSpec(labels=EMOTIONS), pretrained=False)
    model.head[-1] = torch.nn.Linear(8, 6)  # toy 8-d features instead of the encoder's 128
    model.head[0] = torch.nn.LayerNorm(8)
    return model


def test_interrupted_training_resumes_exactly(tmp_path, monkeypatch):
    """Killed in its third epoch, the fold resumes from its last epoch's checkpoint (augmentation and dropout
    draws included) and ends as the uninterrupted fold."""
    import torch

    from mer_utils.experts.fine_tuning import ClassBalancedTrainer
    from mer_utils.experts.visual.config import VisualTrainConfig
    from mer_utils.experts.visual.train import fit_fold

    data, y = _toy_features()
    train, val = np.arange(0, 48), np.arange(48, 60)  # 2 batches of 32 per epoch
    config = VisualTrainConfig(epochs=6, patience=100, device="cpu", progress=False)
    straight = _head_model()
    _, report = fit_fold(straight, data, y, train, val, config=config, fold=0, work_dir=tmp_path / "straight")
    real, calls = ClassBalancedTrainer.training_step, []

    def dies_on_fifth_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt("runtime disconnected")
        return real(*args, **kwargs)
    monkeypatch.setattr(ClassBalancedTrainer, "training_step", dies_on_fifth_batch)
    with pytest.raises(KeyboardInterrupt):
        fit_fold(_head_model(), data, y, train, val, config=config, fold=0, work_dir=tmp_path / "work")
    monkeypatch.undo()
    resumed = _head_model()
    _, report2 = fit_fold(resumed, data, y, train, val, config=config, fold=0, work_dir=tmp_path / "work")
    assert report2["resumed_from"] == {"checkpoint": "checkpoint-4", "step": 4}
    assert [h["val_ua"] for h in report2["history"]] == [h["val_ua"] for h in report["history"]]
    assert report2["best_epoch"] == report["best_epoch"]
    assert all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()))


def test_timm_backbone_builds_when_timm_is_installed():
    pytest.importorskip("timm")
    import torch

    from mer_utils.experts.visual.models import ModelSpec, build_visual_model

    model = build_visual_model(ModelSpec(backbone="timm:resnet18", pooling="attention", labels=EMOTIONS), pretrained=False)
    logits = model(torch.randint(0, 255, (2, 3, 64, 64, 3), dtype=torch.uint8))
    assert logits.shape == (2, len(EMOTIONS))
