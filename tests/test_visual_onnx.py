"""Face models in ONNX Runtime: exported once per checkpoint, torch's answers, no torch import afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, shared

LABELS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")


@pytest.fixture
def onnx_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MER_ONNX", "1")
    monkeypatch.setenv("MER_ONNX_CACHE", str(tmp_path / "onnx_cache"))
    from mer_utils.experts.visual.checkpoint import load_visual_expert

    load_visual_expert.cache_clear()
    yield tmp_path / "onnx_cache"
    load_visual_expert.cache_clear()


def _checkpoint(path, seed: int):
    import torch

    from mer_utils.experts.visual.checkpoint import save_visual_checkpoint
    from mer_utils.experts.visual.crops import CropConfig
    from mer_utils.experts.visual.models import ModelSpec, build_visual_model

    torch.manual_seed(seed)
    model = build_visual_model(ModelSpec(labels=LABELS, pooling="attention", hidden=16), pretrained=False)
    with torch.no_grad():  # batch-norm statistics away from the identity, so folding them is tested
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    return save_visual_checkpoint(path, model, crop_config=CropConfig())


def _torch_probs(weights, crops):
    from mer_utils.experts.visual.checkpoint import VisualExpert, load_visual_model

    return VisualExpert(*load_visual_model(weights)).predict_crops(crops)


def test_a_visual_checkpoint_runs_in_onnx_runtime_with_torchs_answers_and_no_torch(onnx_cache, tmp_path):
    from mer_utils.experts import onnx_runtime
    from mer_utils.experts.visual.checkpoint import load_visual_expert

    weights = _checkpoint(tmp_path / "best_visual_model", seed=0)
    crops = np.random.default_rng(1).integers(0, 256, (3, 8, 64, 64, 3), dtype=np.uint8)
    expert = load_visual_expert(weights)  # the first load exports, after the checkpoint's checks
    assert expert.network is not None and len(list(onnx_cache.glob("visual-clip-*.onnx"))) == 1
    np.testing.assert_allclose(expert.predict_crops(crops[0]), _torch_probs(weights, crops[0]), atol=1e-5)
    np.testing.assert_allclose(expert.predict_crops(crops), _torch_probs(weights, crops), atol=1e-5)  # a batch

    # A new process scores from the cached export alone: torch is never imported.
    np.save(tmp_path / "crops.npy", crops[0])
    code = ("import sys, json, numpy as np\nfrom mer_utils.experts.visual.checkpoint import load_visual_expert\n"
            f"p = load_visual_expert({str(weights)!r}).predict_crops(np.load({str(tmp_path / 'crops.npy')!r}))\n"
            "print(json.dumps({'probs': p.tolist(), 'torch': 'torch' in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}).stdout
    fresh = json.loads(out.strip().splitlines()[-1])
    assert fresh["torch"] is False
    np.testing.assert_allclose(fresh["probs"], _torch_probs(weights, crops[0]), atol=1e-5)

    # Retrained in place: the new weights get their own export, never the stale one.
    _checkpoint(tmp_path / "best_visual_model", seed=2)
    retrained = load_visual_expert(weights)
    assert len(list(onnx_cache.glob("visual-clip-*.onnx"))) == 2
    np.testing.assert_allclose(retrained.predict_crops(crops[0]), _torch_probs(weights, crops[0]), atol=1e-5)
    assert not np.allclose(retrained.predict_crops(crops[0]), fresh["probs"], atol=1e-3)

    # A cut file in the cache is set aside (then exported again), never run.
    key = onnx_runtime.content_key("visual-clip", weights, weights.with_suffix(".json"))
    cached = onnx_cache / f"{key}.onnx"
    cached.write_bytes(cached.read_bytes()[:1000])
    assert onnx_runtime.cached_network(key) is None
    assert cached.with_suffix(".corrupt").is_file() and not cached.exists()


def test_an_export_that_fails_leaves_a_note_and_torch_answers(onnx_cache, tmp_path, monkeypatch):
    import torch

    from mer_utils.experts.visual.checkpoint import load_visual_expert

    calls = []

    def broken_export(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("unsupported operator aten::something")

    monkeypatch.setattr(torch.onnx, "export", broken_export)
    weights = _checkpoint(tmp_path / "best_visual_model", seed=0)
    crops = np.random.default_rng(1).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    expert = load_visual_expert(weights)
    assert expert.network is None and expert.model is not None
    (note,) = onnx_cache.glob("*.failed")
    assert "unsupported operator" in json.loads(note.read_text())["reason"]
    np.testing.assert_allclose(expert.predict_crops(crops), _torch_probs(weights, crops), atol=1e-6)
    load_visual_expert.cache_clear()
    assert load_visual_expert(weights).network is None and len(calls) == 1  # not retried for the same bytes


def _predict(args, env) -> tuple[str, bool]:
    code = ("import sys\nfrom mer_utils.cli import main\nstatus = main(sys.argv[1:])\n"
            "print('TORCH:', 'torch' in sys.modules)\nsys.exit(status)")
    out = subprocess.run([sys.executable, "-c", code, "predict", *args], capture_output=True, text=True,
                         check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **env}).stdout
    table = out[out.index("emotion"):out.index("top emotion")]
    return table, "TORCH: True" in out


def test_mer_predict_on_a_real_video_answers_as_torch_does_without_importing_it(tmp_path):
    # The zero-shot FER2013 face model (no trained checkpoint) on a real CREMA-D FLV.
    from mer_utils.experts.visual.fer2013 import ensure_fer2013_weights

    video = shared("crema-d-sample", "VideoFlash", "1001_DFA_HAP_XX.flv")
    checkpoints = tmp_path / "checkpoints"
    ensure_fer2013_weights(checkpoints, cache_dir=REPO / "checkpoints" / ".cache")
    args = [str(video), "--checkpoints", str(checkpoints), "--no-figure", "--out", str(tmp_path / "demo")]
    on_torch, _ = _predict(args, {"MER_ONNX": "0"})
    onnx_env = {"MER_ONNX": "1", "MER_ONNX_CACHE": str(tmp_path / "onnx_cache")}
    exporting, _ = _predict(args, onnx_env)  # the first run exports the face model
    cold, torch_imported = _predict(args, onnx_env)
    assert not torch_imported
    assert on_torch == exporting == cold and "happy" in cold
