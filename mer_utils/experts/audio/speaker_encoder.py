"""The ``ge2e`` feature set: hidden-state statistics of Resemblyzer's pretrained GE2E speaker encoder, whose
weights are read into ``torch.nn.LSTM`` layers built here (its modules are never imported: docs/audio.md)."""

from __future__ import annotations

import functools
import importlib.util
from importlib.metadata import version
from pathlib import Path

import numpy as np

from mer_utils.core.atomic_io import sha256_file
from mer_utils.experts.distributed import one_torch_thread

PACKAGE = "resemblyzer"
INSTALL_HINT = "pip install resemblyzer==0.1.4  (or: pip install --no-deps resemblyzer==0.1.4)"
SAMPLE_RATE = 16_000  # the encoder's training rate
N_MELS, WINDOW_MS, HOP_MS = 40, 25, 10
HIDDEN, N_LAYERS = 256, 3
LAYERS_USED = (2, 3)  # 1-based LSTM layers whose outputs are summarised
# Layer 2 also gets these percentiles over time: they add its shape beyond mean and spread, and lifted
# the validation UA of the speaker-and-sentence-normalised model (docs/ravdess.md, fourth round).
PERCENTILE_LAYER, PERCENTILES = 2, (10, 50, 90)
STATISTICS = "mean,std of layers 2-3; 10/50/90th percentiles of layer 2"  # recorded in checkpoints
TARGET_DBFS = -30.0  # Resemblyzer's audio_norm_target_dBFS (quiet clips are raised to it)
DIM = HIDDEN * (2 * len(LAYERS_USED) + len(PERCENTILES))  # 1,792


def weights_path() -> Path:
    """``pretrained.pt`` of the installed Resemblyzer package (found without importing it)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise ImportError(f"the 'ge2e' feature set needs the Resemblyzer package, which is not installed: {INSTALL_HINT}")
    path = Path(spec.origin).parent / "pretrained.pt"
    if not path.is_file():
        raise ImportError(f"Resemblyzer is installed at {path.parent} but has no pretrained.pt; "
                          f"reinstall it: {INSTALL_HINT}")
    return path


@functools.cache
def weights_fingerprint() -> dict:
    """Package version and sha256 of the weights: stored in a checkpoint, checked when it is loaded."""
    return {"package": PACKAGE, "version": version(PACKAGE), "weights_sha256": sha256_file(weights_path()),
            "layers": list(LAYERS_USED), "statistics": STATISTICS}


def mel_frames(wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """``(frames, 40)`` mel power frames as the encoder was trained on them (not log-compressed)."""
    import librosa

    wave = np.asarray(wave, dtype=np.float32)
    if sample_rate != SAMPLE_RATE:
        wave = librosa.resample(wave, orig_sr=sample_rate, target_sr=SAMPLE_RATE)
    rms = float(np.sqrt(np.mean(wave.astype(np.float64) ** 2)))
    if rms > 0:  # raise quiet clips to the training level, never lower loud ones (increase_only)
        gain_db = TARGET_DBFS - 20 * np.log10(rms)
        wave = wave * np.float32(10 ** (max(gain_db, 0.0) / 20))
    mel = librosa.feature.melspectrogram(y=wave, sr=SAMPLE_RATE, n_fft=SAMPLE_RATE * WINDOW_MS // 1000,
                                         hop_length=SAMPLE_RATE * HOP_MS // 1000, n_mels=N_MELS)
    return mel.astype(np.float32).T


@functools.cache
def layer_outputs_module():
    """``(1, T, 40)`` mel frames -> outputs of LSTM layers ``LAYERS_USED`` (the module ``mer export onnx`` exports)."""
    import torch

    state = torch.load(weights_path(), map_location="cpu", weights_only=True)["model_state"]
    layers = []
    for index in range(N_LAYERS):  # one nn.LSTM per layer, so every layer's outputs are visible
        layer = torch.nn.LSTM(N_MELS if index == 0 else HIDDEN, HIDDEN, num_layers=1, batch_first=True)
        layer.load_state_dict({f"{name}_l0": state[f"lstm.{name}_l{index}"]
                               for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")})
        layers.append(layer.eval())

    class LayerOutputs(torch.nn.Module):
        def __init__(self, layers):
            super().__init__()
            self.layers = torch.nn.ModuleList(layers)

        def forward(self, frames):
            outputs, hidden = [], frames
            for index, layer in enumerate(self.layers, start=1):
                hidden, _ = layer(hidden)
                if index in LAYERS_USED:
                    outputs.append(hidden)
            return tuple(outputs)

    return LayerOutputs(layers).eval()


def encoder_network(frames: np.ndarray) -> list[np.ndarray]:
    """``(1, T, 40)`` float32 mel frames -> one ``(1, T, 256)`` array per used layer, on torch (one thread)."""
    import torch

    with one_torch_thread(), torch.no_grad():  # extraction workers already run in parallel
        return [out.numpy() for out in layer_outputs_module()(torch.from_numpy(frames))]


def ge2e_features(wave: np.ndarray, sample_rate: int = SAMPLE_RATE, *, network=None) -> np.ndarray:
    """``DIM`` values (``STATISTICS``) of the whole utterance run through ``network`` (an ONNX copy's), else torch."""
    stats, percentiles = [], []
    outputs = (network or encoder_network)(np.ascontiguousarray(mel_frames(wave, sample_rate)[None]))
    for layer, out in zip(LAYERS_USED, outputs):
        out = out[0].astype(np.float64)
        stats += [out.mean(axis=0), out.std(axis=0)]
        if layer == PERCENTILE_LAYER:
            percentiles = [np.percentile(out, PERCENTILES, axis=0).ravel()]
    return np.concatenate(stats + percentiles).astype(np.float32)
