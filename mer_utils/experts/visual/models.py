"""Frame encoder (FER2013 mini-Xception or timm) + temporal pooling (attention: Ilse et al., 2018) + classifier,
taking the cached ``(B, K, S, S, 3)`` uint8 crops as they are: a checkpoint needs nothing else to predict."""

from __future__ import annotations

import dataclasses

from mer_utils.core.config import one_of

BACKBONES_HELP = "'fer2013' (offline, FER2013 mini-Xception) or 'timm:<model name>' (ImageNet, e.g. timm:resnet18)"
POOLINGS = ("mean", "attention")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What rebuilds the network (saved in every checkpoint)."""

    backbone: str = "fer2013"
    pooling: str = "mean"
    hidden: int = 0
    dropout: float = 0.2
    input_size: int = 0  # encoder input side; 0 = the backbone's default (64 FER2013, 112 timm)
    labels: tuple = ()  # the corpus's label set: the head's outputs, in order

    def __post_init__(self):
        one_of(self.pooling, POOLINGS, "pooling")
        if len(self.labels) < 2:
            raise ValueError(f"a visual model needs the corpus's label set (two or more labels), got {self.labels}")
        if self.backbone != "fer2013" and not self.backbone.startswith("timm:"):
            raise ValueError(f"unknown backbone {self.backbone!r}; use {BACKBONES_HELP}")


def build_visual_model(spec: ModelSpec, *, pretrained: bool = True, weights_dir: str = "checkpoints"):
    """A :class:`VisualClassifier`, the FER2013 encoder's weights from ``weights_dir`` unless not ``pretrained``."""
    import torch  # here, and the classes below, so that importing this file needs no torch
    from torch import nn
    from torch.nn import functional as F

    def resize(x, size: int):
        return x if x.shape[-2:] == (size, size) else F.interpolate(x, size=(size, size), mode="bilinear",
                                                                    antialias=True, align_corners=False)

    class FER2013Encoder(nn.Module):
        """uint8 RGB frames -> 128-d mini-Xception features."""

        def __init__(self, input_size: int, pretrained: bool, weights_dir: str):
            super().__init__()
            from mer_utils.experts.visual.fer2013 import build_mini_xception, fer2013_weights, load_fer2013_model
            self.net = load_fer2013_model(fer2013_weights(weights_dir)) if pretrained else build_mini_xception()
            self.input_size = input_size or 64
            self.out_dim = self.net.feature_dim
            self.register_buffer("gray", torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1), persistent=False)

        def prepare(self, frames):  # (N, S, S, 3) uint8 -> (N, 1, 64, 64) in [-1, 1]
            x = (frames.permute(0, 3, 1, 2).float() * self.gray).sum(dim=1, keepdim=True)
            return resize(x, self.input_size) / 127.5 - 1.0

        def forward(self, frames):
            return self.net.features(self.prepare(frames))

        def fused_features(self, *, channels_last: bool = True):
            """``forward``'s features in eval mode, 3-5x faster on CPU (batch norms folded; ``channels_last=False``
            for ONNX). Inference only: PyTorch 2.13 crashes in backward with channels-last depthwise weights."""
            layout = torch.channels_last if channels_last else torch.contiguous_format
            net = self.net.fused_copy().to(memory_format=layout)
            return lambda frames: net.features(self.prepare(frames).contiguous(memory_format=layout))

    class TimmEncoder(nn.Module):
        """uint8 RGB frames -> pooled features of a timm ImageNet backbone."""

        def __init__(self, name: str, input_size: int, pretrained: bool):
            super().__init__()
            try:
                import timm
            except ImportError as err:
                raise ImportError(f"backbone 'timm:{name}' needs timm: pip install timm (Colab has it)") from err
            self.net = timm.create_model(name, pretrained=pretrained, num_classes=0)
            self.input_size = input_size or 112
            self.out_dim = self.net.num_features
            self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

        def forward(self, frames):
            x = frames.permute(0, 3, 1, 2).float() / 255.0
            return self.net((resize(x, self.input_size) - self.mean) / self.std)

    class AttentionPooling(nn.Module):
        def __init__(self, dim: int):
            super().__init__()
            self.score = nn.Sequential(nn.Linear(dim, 64), nn.Tanh(), nn.Linear(64, 1))

        def forward(self, x):  # (B, K, D) -> (B, D), plus the (B, K) weights
            weights = self.score(x).squeeze(-1).softmax(dim=1)
            return (weights.unsqueeze(-1) * x).sum(dim=1), weights

    class MeanPooling(nn.Module):
        def forward(self, x):
            return x.mean(dim=1), torch.full(x.shape[:2], 1.0 / x.shape[1], device=x.device)

    class VisualClassifier(nn.Module):
        """Frame encoder -> temporal pooling -> MLP head -> 6 logits per clip."""

        def __init__(self, spec: ModelSpec, *, pretrained: bool = True, weights_dir: str = "checkpoints"):
            super().__init__()
            self.spec = spec
            self.encoder = (FER2013Encoder(spec.input_size, pretrained, weights_dir) if spec.backbone == "fer2013" else
                            TimmEncoder(spec.backbone.split(":", 1)[1], spec.input_size, pretrained))
            dim = self.encoder.out_dim
            self.pool = AttentionPooling(dim) if spec.pooling == "attention" else MeanPooling()
            hidden = [nn.Linear(dim, spec.hidden), nn.ReLU(), nn.Dropout(spec.dropout)] if spec.hidden else []
            self.head = nn.Sequential(nn.LayerNorm(dim), nn.Dropout(spec.dropout), *hidden,
                                      nn.Linear(spec.hidden or dim, len(spec.labels)))  # hidden 0: a linear probe

        def frame_features(self, crops):  # (B, K, S, S, 3) uint8 -> (B, K, D)
            return self.encoder(crops.flatten(0, 1)).view(*crops.shape[:2], -1)

        def classify_features(self, features):  # (B, K, D) -> (B, 6) logits, (B, K) frame weights
            pooled, weights = self.pool(features)
            return self.head(pooled), weights

        def forward(self, crops):
            return self.classify_features(self.frame_features(crops))[0]

        def fast_frame_features(self, *, channels_last: bool = True):
            """``frame_features`` for eval mode without gradients, faster (see ``FER2013Encoder.fused_features``)."""
            fused = getattr(self.encoder, "fused_features", None)
            encode = fused(channels_last=channels_last) if fused else self.encoder
            return lambda crops: encode(crops.flatten(0, 1)).view(*crops.shape[:2], -1)

        def inference_module(self):
            """``(B, K, S, S, 3)`` uint8 -> ``(B, L)`` probabilities, ``(B, K)`` frame weights, folded (for ONNX)."""
            return ClipProbabilities(self)

    class ClipProbabilities(nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model.eval()
            self.encode = model.fast_frame_features(channels_last=False)

        def forward(self, crops):
            logits, weights = self.model.classify_features(self.encode(crops))
            return logits.softmax(dim=-1), weights

    return VisualClassifier(spec, pretrained=pretrained, weights_dir=str(weights_dir))
