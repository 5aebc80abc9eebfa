"""`mer export onnx`: ONNX copies of the face models next to their checkpoints, listed in the index with their
difference from torch, run by the demo when listed and present, torch otherwise, shipped by `mer hub push`."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, shared

LABELS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
CORPUS = {"name": "synthetic-test", "labels": list(LABELS), "synthetic": True}


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


@pytest.fixture
def exported(tmp_path):
    """A checkpoint folder with one indexed visual checkpoint, exported by `mer export onnx`."""
    from mer_utils.cli import main
    from mer_utils.core.checkpoint_index import register_checkpoint

    checkpoints = tmp_path / "checkpoints"
    weights = _checkpoint(checkpoints / "best_visual_model", seed=0)
    register_checkpoint(checkpoints, modality="visual", protocol="speaker", path=weights, corpus=CORPUS,
                        corpus_key="synthetic-test-0")
    assert main(["export", "onnx", "--checkpoints", str(checkpoints)]) == 0
    return checkpoints, weights


def _entry(checkpoints):
    from mer_utils.core.checkpoint_index import find_entries

    (entry,) = find_entries(checkpoints, modality="visual")
    return entry


def test_export_writes_a_listed_copy_with_its_difference_and_the_demo_answers_as_torch(exported):
    from mer_utils.experts.onnx_export import with_listed_copy
    from mer_utils.experts.visual.checkpoint import load_visual_expert

    checkpoints, weights = exported
    entry = _entry(checkpoints)
    assert entry["onnx"]["path"] == "best_visual_model.onnx" and (checkpoints / "best_visual_model.onnx").is_file()
    assert 0 <= entry["onnx"]["max_abs_diff"] <= 1e-4
    on_torch = load_visual_expert(weights)
    on_onnx = with_listed_copy("visual", on_torch, checkpoints, entry)
    assert on_torch.network is None and on_onnx.network is not None
    crops = np.random.default_rng(1).integers(0, 256, (3, 8, 64, 64, 3), dtype=np.uint8)
    np.testing.assert_allclose(on_onnx.predict_crops(crops[0]), on_torch.predict_crops(crops[0]), atol=1e-5)
    np.testing.assert_allclose(on_onnx.predict_crops(crops), on_torch.predict_crops(crops), atol=1e-5)  # a batch


def test_a_missing_or_stale_copy_leaves_torch_answering(exported):
    from mer_utils.experts.onnx_export import with_listed_copy
    from mer_utils.experts.visual.checkpoint import load_visual_expert

    checkpoints, weights = exported
    entry = _entry(checkpoints)
    expert = load_visual_expert(weights)
    _checkpoint(checkpoints / "best_visual_model", seed=2)  # weights replaced in place, index not re-exported
    assert with_listed_copy("visual", expert, checkpoints, entry) is expert
    (checkpoints / "best_visual_model.onnx").unlink()
    assert with_listed_copy("visual", expert, checkpoints, entry) is expert
    assert not list(checkpoints.glob("*.failed")) and not list(checkpoints.glob("*.corrupt"))


def test_hub_push_ships_the_copies(exported):
    from mer_utils.demo.hub import checkpoint_set_files

    checkpoints, _ = exported
    assert "best_visual_model.onnx" in {p.as_posix() for p in checkpoint_set_files(checkpoints)}


def test_nothing_to_export_says_how_to_get_checkpoints(tmp_path):
    from mer_utils.experts.onnx_export import export_checkpoints

    with pytest.raises(FileNotFoundError, match="nothing to export.*mer run-all"):
        export_checkpoints(tmp_path)


def _predict(args) -> str:
    out = subprocess.run([sys.executable, "-m", "mer_utils", "predict", *args], capture_output=True, text=True,
                         check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}).stdout
    return out[out.index("emotion"):out.index("top emotion")]


def test_mer_predict_on_a_real_video_answers_as_torch_does_with_the_exported_fer2013_model(tmp_path):
    # The zero-shot FER2013 face model (no trained checkpoint) on a real CREMA-D FLV.
    from mer_utils.cli import main
    from mer_utils.core.atomic_io import read_json
    from mer_utils.experts.visual.fer2013 import ensure_fer2013_weights

    video = shared("crema-d-sample", "VideoFlash", "1001_DFA_HAP_XX.flv")
    checkpoints = tmp_path / "checkpoints"
    ensure_fer2013_weights(checkpoints, cache_dir=REPO / "checkpoints" / ".cache")
    args = [str(video), "--checkpoints", str(checkpoints), "--no-figure", "--out", str(tmp_path / "demo")]
    on_torch = _predict(args)
    assert main(["export", "onnx", "--checkpoints", str(checkpoints)]) == 0
    record = read_json(checkpoints / "fer2013_mini_xception.json")["onnx"]
    assert record["path"] == "fer2013_mini_xception.onnx" and record["max_abs_diff"] <= 1e-4
    on_onnx = _predict(args)
    assert on_torch == on_onnx and "happy" in on_onnx
