"""Self-supervised speech models (any ``transformers`` Auto id or folder) with a SUPERB-style emotion head.
Weighting and mean pooling are linear, so a probe on cached mean-pooled layer embeddings (``frozen`` mode) is
exactly this head: both modes save one checkpoint format."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


@dataclasses.dataclass(frozen=True)
class HeadConfig:
    layer: str | int = "weighted"  # "weighted" (learnable sum of all layers) or one layer index
    pooling: str = "mean"  # "mean" or "attentive" over the valid frames
    hidden: int = 0  # 0: linear head; >0: one hidden ReLU layer of this size
    dropout: float = 0.1

    def __post_init__(self):
        if self.pooling not in ("mean", "attentive"):
            raise ValueError(f"pooling must be 'mean' or 'attentive', got {self.pooling!r}")
        if not (self.layer == "weighted" or isinstance(self.layer, int)):
            raise ValueError(f"layer must be 'weighted' or an int, got {self.layer!r}")


def _load_error(name: str, err: Exception) -> RuntimeError:
    looks_local = name.startswith((".", "/", "~")) or os.path.sep in name.strip("/").replace("/", "", 1)
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    if looks_local and not Path(name).expanduser().exists():
        return RuntimeError(f"Model folder {name!r} not found. Pass an existing folder (with config.json and "
                            "weights, as written by save_pretrained) or a Hugging Face model id.")
    if any(s in str(err).lower() for s in ("gated", "401", "403", "private", "authenticat")):
        return RuntimeError(f"Model {name!r} is gated or private. Accept its terms on huggingface.co, then set "
                            "the HF_TOKEN environment variable (in Colab: Secrets panel, name HF_TOKEN). "
                            f"Hub said: {text}")
    return RuntimeError(f"Could not download {name!r} (no network?). In Colab this downloads automatically; "
                        "offline, pass a local folder written by save_pretrained(), or use an offline acoustic "
                        f"backbone (egemaps, compare, librosa). Hub said: {text}")


def _encoder_only(model: nn.Module) -> nn.Module:
    # Whisper and other encoder-decoders: emotion needs the audio encoder only.
    return model.get_encoder() if getattr(model.config, "is_encoder_decoder", False) else model


def default_feature_extractor(config):
    """The extractor a model of this (code-built) config expects."""
    from transformers import Wav2Vec2FeatureExtractor, WhisperFeatureExtractor

    if config.model_type == "whisper":
        return WhisperFeatureExtractor(feature_size=config.num_mel_bins)
    # wav2vec2-base style models (group norm) were trained without attention masks.
    uses_mask = getattr(config, "feat_extract_norm", "group") == "layer"
    return Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=uses_mask)


def plain_json(obj):
    """JSON round trip: tuples to lists, numpy scalars out, so torch.load(weights_only=True) accepts it."""
    return json.loads(json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


class SSLClassifier(nn.Module):
    """Speech backbone + layer weighting + pooling + classifier."""

    def __init__(self, backbone: nn.Module, feature_extractor, *, labels: tuple[str, ...],
                 head: HeadConfig = HeadConfig()):
        super().__init__()
        self.labels = tuple(labels)  # the classifier's outputs, in order (the corpus's label set)
        # LayerDrop off: the layer-weighted sum needs every layer's hidden state at every step.
        for key in ("layerdrop", "encoder_layerdrop"):
            if hasattr(backbone.config, key):
                setattr(backbone.config, key, 0.0)
        for module in backbone.modules():
            if isinstance(getattr(module, "layerdrop", None), float):
                module.layerdrop = 0.0
        self.backbone = backbone
        self.feature_extractor = feature_extractor
        self.head_config = head
        config = backbone.config  # n_layers counts the input embedding's hidden state too
        if getattr(config, "is_encoder_decoder", False) or config.model_type == "whisper":
            self.n_layers, width = config.encoder_layers + 1, config.d_model
        else:
            self.n_layers, width = config.num_hidden_layers + 1, config.hidden_size
        if isinstance(head.layer, int) and not -self.n_layers <= head.layer < self.n_layers:
            raise ValueError(f"layer {head.layer} out of range for a model with {self.n_layers} hidden states")
        self.layer_logits = nn.Parameter(torch.zeros(self.n_layers))
        self.attention = nn.Linear(width, 1) if head.pooling == "attentive" else None
        # Identity for fine-tuning; a frozen probe stores its training statistics here.
        self.register_buffer("feat_mean", torch.zeros(width))
        self.register_buffer("feat_std", torch.ones(width))
        layers = [nn.Dropout(head.dropout)]
        if head.hidden:
            layers += [nn.Linear(width, head.hidden), nn.ReLU(), nn.Dropout(head.dropout)]
        layers.append(nn.Linear(head.hidden or width, len(self.labels)))
        self.classifier = nn.Sequential(*layers)

    def prepare(self, waves: list[np.ndarray], device: torch.device | str = "cpu") -> dict:
        """Feature-extract and pad a list of 16 kHz waveforms into model inputs."""
        fe = self.feature_extractor
        batch = fe([np.asarray(w, dtype=np.float32) for w in waves], sampling_rate=fe.sampling_rate,
                   padding=True if fe.model_input_names[0] == "input_values" else "max_length",
                   return_attention_mask=True, return_tensors="pt")
        name = fe.model_input_names[0]
        inputs = {name: batch[name].to(device)}
        if getattr(fe, "return_attention_mask", False) and name == "input_values":
            inputs["attention_mask"] = batch["attention_mask"].to(device)
        return {"inputs": inputs, "n_samples": torch.tensor([len(w) for w in waves], device=device)}

    def frame_mask(self, n_samples: torch.Tensor, n_frames: int) -> torch.Tensor:
        if hasattr(self.backbone, "_get_feat_extract_output_lengths"):
            lengths = self.backbone._get_feat_extract_output_lengths(n_samples)
        else:  # Whisper: 10 ms mel frames, then a stride-2 convolution
            lengths = torch.div(n_samples + 319, 320, rounding_mode="floor")
        lengths = lengths.clamp(min=1, max=n_frames)
        return torch.arange(n_frames, device=n_samples.device)[None, :] < lengths[:, None]

    def hidden_states(self, inputs: dict) -> tuple[torch.Tensor, ...]:
        out = self.backbone(**inputs, output_hidden_states=True, return_dict=True)
        # Per-frame layer norm puts all layers on one scale before mixing (as SUPERB does).
        return tuple(F.layer_norm(h, h.shape[-1:]) for h in out.hidden_states)

    def mix(self, stacked: torch.Tensor) -> torch.Tensor:
        """Combine layers along dim 0 (layers first)."""
        if isinstance(self.head_config.layer, int):
            return stacked[self.head_config.layer]
        weights = torch.softmax(self.layer_logits, dim=0).to(stacked.dtype)
        return torch.einsum("l,l...->...", weights, stacked)

    def pool(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask = mask.to(frames.dtype)
        if self.attention is not None:
            scores = self.attention(frames).squeeze(-1).masked_fill(mask == 0, float("-inf"))
            return torch.einsum("bt,bth->bh", torch.softmax(scores, dim=1), frames)
        return (frames * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier((pooled - self.feat_mean) / self.feat_std)

    def forward(self, inputs: dict, n_samples: torch.Tensor) -> torch.Tensor:
        states = self.hidden_states(inputs)
        mask = self.frame_mask(n_samples, states[0].shape[1])
        return self.classify(self.pool(self.mix(torch.stack(states)), mask))

    @torch.no_grad()
    def layer_embeddings(self, inputs: dict, n_samples: torch.Tensor) -> torch.Tensor:
        """Mean-pooled, layer-normed embedding of every layer: ``(batch, layers, width)``."""
        states = self.hidden_states(inputs)
        mask = self.frame_mask(n_samples, states[0].shape[1]).to(states[0].dtype)
        return torch.stack([(h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True) for h in states], dim=1)

    @torch.no_grad()
    def predict_proba_waves(self, waves: list[np.ndarray], *, device: str = "cpu") -> np.ndarray:
        """Probabilities, one clip at a time (no padding: a clip's score never depends on its batch)."""
        self.eval()
        out = []
        for wave in waves:
            batch = self.prepare([wave], device)
            out.append(torch.softmax(self(batch["inputs"], batch["n_samples"]).float(), dim=-1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.classifier[-1].out_features))

    def spec(self) -> dict:
        return plain_json({"backbone_config": self.backbone.config.to_dict(),
                           "feature_extractor": self.feature_extractor.to_dict(),
                           "head": dataclasses.asdict(self.head_config), "labels": list(self.labels)})


def build_classifier(name: str, *, labels: tuple[str, ...], head: HeadConfig = HeadConfig(),
                     token: str | None = None) -> SSLClassifier:
    """Pretrained backbone ``name`` (hub id or folder, with plain errors) with a fresh head over ``labels``."""
    from transformers import AutoFeatureExtractor, AutoModel

    # token=None: huggingface_hub finds HF_TOKEN, Colab's HF_TOKEN secret or a `hf auth login` token itself.
    try:
        model = AutoModel.from_pretrained(name, token=token)
        extractor = AutoFeatureExtractor.from_pretrained(name, token=token)
    except OSError as err:
        raise _load_error(name, err) from None  # the hub's chained traceback only repeats the URL
    return SSLClassifier(_encoder_only(model), extractor, labels=labels, head=head)


def classifier_from_spec(spec: dict) -> SSLClassifier:
    """Same architecture as a saved :meth:`SSLClassifier.spec`, random weights (no download)."""
    import transformers

    values = spec["feature_extractor"]
    cls = getattr(transformers, str(values.get("feature_extractor_type", "")), None)
    if cls is None or not issubclass(cls, transformers.FeatureExtractionMixin):
        raise ValueError(f"unknown feature extractor type {values.get('feature_extractor_type')!r}")
    backbone = transformers.AutoModel.from_config(transformers.AutoConfig.for_model(**spec["backbone_config"]))
    return SSLClassifier(_encoder_only(backbone), cls.from_dict(values), labels=tuple(spec["labels"]),
                         head=HeadConfig(**spec["head"]))
