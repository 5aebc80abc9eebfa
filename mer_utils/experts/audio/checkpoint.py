"""Saving and loading SER checkpoints (:func:`load_audio_expert` for the demo): speech models as ``*.pt`` of plain
tensors and dicts (``weights_only=True``, rebuilt from the saved config), acoustic ones as ``*.safetensors``."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from mer_utils.core.atomic_io import atomic_path
from mer_utils.core.checkpoint_gate import (CheckpointError, cached_by_file, opening_checkpoint, refuse_non_finite,
                                            safetensors_arrays)
from mer_utils.experts.audio.loading import AudioSettings, as_waveforms

SSL_FORMAT = "mer-audio-ssl-v1"
_RETRAIN_SSL = "retrain it with `mer audio train --mode finetune` (or pull a checkpoint set again)"


def protocol_tag(protocol: str) -> str:
    """The protocol's name in checkpoint file names.

    >>> protocol_tag("speaker"), protocol_tag("speaker-kfold"), protocol_tag("random")
    ('speaker_indep', 'speaker_kfold', 'random')
    """
    return "speaker_indep" if protocol == "speaker" else protocol.replace("-", "_")


def checkpoint_stem(*, backbone: str, protocol: str, mode: str, family: str | None = None,
                    adapt: str = "none") -> str:
    """Stable checkpoint names (without suffix); an adapted model never takes a single-clip model's name.

    >>> checkpoint_stem(backbone="egemaps", protocol="speaker", mode="offline")
    'best_audio_egemaps_speaker_indep'
    >>> checkpoint_stem(backbone="egemaps,librosa,compare", protocol="speaker", mode="offline")
    'best_audio_egemaps-librosa-compare_speaker_indep'
    >>> checkpoint_stem(backbone="facebook/wav2vec2-base", protocol="random", mode="finetune", family="wav2vec2")
    'best_wav2vec2_random'
    >>> checkpoint_stem(backbone="ge2e", protocol="speaker", mode="offline", adapt="balanced")
    'best_audio_ge2e_speaker_indep_adapt-balanced'
    """
    tag = protocol_tag(protocol)
    if mode == "offline":  # "," (averaged sets) is spelled "-" in file names
        return f"best_audio_{backbone.replace(',', '-')}_{tag}" + ("" if adapt == "none" else f"_adapt-{adapt}")
    family = family or "ssl"
    return f"best_{family}_{tag}" if mode == "finetune" else f"best_{family}_frozen_{tag}"


def save_fitted_ssl(backbone, path: str | os.PathLike) -> Path:
    """Save a fitted speech-model backbone (fine-tuned or frozen-probe) as a ``.pt`` checkpoint."""
    import torch

    from mer_utils.experts.audio.ssl_model import plain_json

    if backbone.model is None:
        raise RuntimeError("call fit() before save()")
    path = Path(path).with_suffix(".pt")
    config = {**backbone.model.spec(), "model_name": backbone.model_name, "audio": backbone.settings.to_dict(),
              "info": plain_json(backbone.report or {})}
    state = {k: v.detach().cpu().contiguous() for k, v in backbone.model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"format": SSL_FORMAT, "state_dict": state, "config": config}, tmp)
    return path


@dataclasses.dataclass
class SSLExpert:
    """A loaded speech-model checkpoint: ``predict_proba(paths or waveforms) -> (n, K)`` over ``labels``."""

    model: object
    settings: AudioSettings
    config: dict
    device: str = "cpu"
    labels: tuple[str, ...] = ()

    def predict_proba(self, inputs: Iterable) -> np.ndarray:
        return self.model.predict_proba_waves(as_waveforms(inputs, settings=self.settings), device=self.device)


def load_ssl_expert(path: str | os.PathLike, *, device: str | None = None) -> SSLExpert:
    import torch

    from mer_utils.experts.audio.ssl_model import classifier_from_spec

    path = Path(path)
    with opening_checkpoint(path, kind="speech-model SER", fix=_RETRAIN_SSL):
        payload = torch.load(path, map_location="cpu", weights_only=True)  # never unpickles code
        if not isinstance(payload, dict) or payload.get("format") != SSL_FORMAT:
            raise CheckpointError(f"{path}: not a {SSL_FORMAT} checkpoint (a file of another tool, or of an older "
                                  f"version); it was not used. Fix: {_RETRAIN_SSL}.")
        refuse_non_finite(payload["state_dict"].items(), path=path, kind="speech-model SER", fix=_RETRAIN_SSL)
        config = payload["config"]
        model = classifier_from_spec(config)
        model.load_state_dict(payload["state_dict"], strict=True)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    return SSLExpert(model=model, settings=AudioSettings.from_dict(config["audio"]), config=config, device=device,
                     labels=tuple(config["labels"]))


@cached_by_file
def load_audio_expert(path: str | os.PathLike, *, device: str | None = None):
    """Load any SER checkpoint of this package: ``predict_proba(inputs) -> (n, K)`` in the order of its
    ``labels``, for file paths, 16 kHz mono arrays or ``(array, sample_rate)`` tuples."""
    from mer_utils.experts.audio.classical import AcousticExpert

    path = Path(path)
    if path.suffix == ".json":
        path = path.with_suffix(".safetensors")
    if not path.exists():
        raise FileNotFoundError(f"SER checkpoint not found: {path}. Train one with `mer audio train` "
                                "(it is written to checkpoints/).")
    if path.suffix == ".pt":
        return load_ssl_expert(path, device=device)
    if path.suffix == ".safetensors":
        fix = "retrain it with `mer audio train` (or pull a checkpoint set again)"
        with opening_checkpoint(path, kind="acoustic SER", fix=fix):
            refuse_non_finite(safetensors_arrays(path), path=path, kind="acoustic SER", fix=fix)
            return AcousticExpert.load(path)
    raise CheckpointError(f"{path}: unknown checkpoint type; expected .pt (speech model) or .safetensors (acoustic)")
