"""One fold of the visual expert on :mod:`mer_utils.experts.fine_tuning`. Augmentation draws from the global torch
generator, which Trainer seeds and restores with each checkpoint: a resumed fold continues as an uninterrupted one."""

from __future__ import annotations

import contextlib
import functools
import os

import numpy as np
import torch
from torch import nn

from mer_utils.core.labels import class_weights
from mer_utils.experts.fine_tuning import fine_tune, training_arguments
from mer_utils.experts.visual.config import VisualTrainConfig


def augment_crops(crops: torch.Tensor) -> torch.Tensor:
    """Mirror, shift by up to 1/16 of the side, jitter brightness/contrast: uint8 -> float 0..255."""
    x = crops.float()
    batch, side = x.shape[0], x.shape[-2]
    flip = (torch.rand(batch) < 0.5).to(x.device)
    x[flip] = x[flip].flip(-2)  # (B, K, S, S, 3): dim -2 is the width
    shift = max(1, side // 16)
    dy, dx = (int(v) for v in torch.randint(-shift, shift + 1, (2,)))
    x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    gain = (1 + 0.2 * (torch.rand(batch, 1, 1, 1, 1) - 0.5) * 2).to(x.device)
    bias = (20 * (torch.rand(batch, 1, 1, 1, 1) - 0.5) * 2).to(x.device)
    mean = x.mean(dim=(1, 2, 3, 4), keepdim=True)
    return ((x - mean) * gain + mean + bias).clamp(0, 255)


class FoldModel(nn.Module):
    """The classifier as the trainer sees it: a batch's tensors in, logits out, augmented in training mode
    (frozen: mirrored features and a random subset of frames; fine-tuning: :func:`augment_crops`)."""

    def __init__(self, model, config: VisualTrainConfig):
        super().__init__()
        self.model, self.frozen, self.augment = model, config.mode == "frozen", config.augment

    def forward(self, features=None, mirrored=None, crops=None):
        augment = self.training and self.augment
        if not self.frozen:
            return self.model(augment_crops(crops) if augment else crops)
        if augment:
            mirror = (torch.rand(len(features)) < 0.5).to(features.device)
            features = torch.where(mirror[:, None, None], mirrored, features)
            k = features.shape[1]
            keep = max(1, k // 2) + int(torch.randint(0, k - max(1, k // 2) + 1, (1,)))
            features = features[:, torch.randperm(k)[:keep].sort().values.to(features.device)]
        return self.model.classify_features(features)[0]


def collate_rows(data: dict, items: list) -> dict:
    """``[(clip row, label index), ...]`` -> those rows of every tensor in ``data`` (on the CPU) and the labels."""
    rows = torch.as_tensor([row for row, _ in items])
    return {**{name: tensor[rows] for name, tensor in data.items()}, "labels": torch.as_tensor([y for _, y in items])}


def fit_fold(model, data: dict, y: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray, *,
             config: VisualTrainConfig, fold: int, work_dir: str | os.PathLike):
    """:func:`~mer_utils.experts.fine_tuning.fine_tune` on clip rows; the report's history rows name the fold."""
    from mer_utils.experts.distributed import one_torch_thread, pick_device

    frozen = config.mode == "frozen"
    model.encoder.requires_grad_(not frozen).train(not frozen and model.training)  # frozen: batch norms in eval too
    head = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    encoder = [] if frozen else [{"params": list(model.encoder.parameters()), "lr": config.encoder_lr}]
    optimizer = torch.optim.AdamW([{"params": head, "lr": config.lr}, *encoder], weight_decay=config.weight_decay)
    args = training_arguments(
        work_dir, epochs=config.epochs, batch_size=config.batch_size, grad_accum=1, seed=config.seed * 1_000 + fold,
        device=pick_device(config.device), eval_batch_size=128, progress=config.progress,
        lr_scheduler_type="constant", max_grad_norm=0.0, ddp_find_unused_parameters=not frozen)
    pairs = {name: [(int(i), int(y[i])) for i in index] for name, index in (("train", train_idx), ("val", val_idx))}
    # A small head on precomputed features: extra threads only add synchronisation.
    with one_torch_thread() if frozen else contextlib.nullcontext():
        trainer, report = fine_tune(
            FoldModel(model, config), pairs["train"], pairs["val"], args=args,
            collate=functools.partial(collate_rows, data),
            class_weights=class_weights(y[train_idx], model.spec.labels, allow_absent=True),
            optimizer=optimizer, patience=config.patience)
    return trainer, {**report, "history": [{"fold": fold, **row} for row in report["history"]]}
