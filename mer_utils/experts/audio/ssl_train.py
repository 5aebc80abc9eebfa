"""``--mode finetune``: a speech model trained with its head on :mod:`mer_utils.experts.fine_tuning`
(``transformers.Trainer``, resumable, one process or N; docs/audio.md and docs/scaling.md)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from mer_utils.core.labels import class_weights
from mer_utils.experts import distributed
from mer_utils.experts.audio.checkpoint import save_fitted_ssl
from mer_utils.experts.audio.loading import AudioSettings, ClipSet, load_waveforms
from mer_utils.experts.audio.ssl_model import HeadConfig, SSLClassifier, build_classifier
from mer_utils.experts.fine_tuning import (accumulation_steps, fine_tune, mixed_precision, predict_proba,
                                           training_arguments)

if TYPE_CHECKING:
    from mer_utils.experts.audio.config import AudioTrainConfig

WEIGHT_DECAY, MAX_GRAD_NORM = 0.01, 1.0


@dataclasses.dataclass(frozen=True)
class WaveBatches:
    """``[(waveform, label index), ...]`` -> the model's padded inputs and the labels."""

    model: SSLClassifier

    def __call__(self, items: list) -> dict:
        return {**self.model.prepare([wave for wave, _ in items]), "labels": torch.tensor([y for _, y in items])}


def finetune(model: SSLClassifier, train_waves: list, y_train: np.ndarray, val_waves: list, y_val: np.ndarray, *,
             config: AudioTrainConfig, work_dir: str | os.PathLike):
    """Train ``model`` in place (on return: the best-validation-UA weights, on every process) with the finetune
    fields, seed, device and progress of ``config``; returns the trainer (it predicts, sharded) and its report."""
    if config.epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {config.epochs}")
    accum, _ = accumulation_steps(batch_size=config.batch_size, grad_accum=config.grad_accum,
                                  effective_batch_size=config.effective_batch_size,
                                  num_processes=distributed.world_size())
    if config.freeze_feature_encoder and getattr(model.backbone, "feature_extractor", None) is not None:
        model.backbone.feature_extractor.requires_grad_(False)  # the convolutional waveform encoder
    backbone_ids = {id(p) for p in model.backbone.parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trainable if id(p) in backbone_ids], "lr": config.lr},
              {"params": [p for p in trainable if id(p) not in backbone_ids], "lr": config.head_lr}]
    precision = mixed_precision(config.amp, config.amp_dtype, "cpu" if distributed.use_cpu(config.device) else "cuda")
    args = training_arguments(
        work_dir, epochs=config.epochs, batch_size=config.batch_size, grad_accum=accum, seed=config.seed,
        device=config.device, precision=precision, eval_batch_size=1, progress=config.progress,
        lr_scheduler_type="linear", warmup_steps=config.warmup_ratio, max_grad_norm=MAX_GRAD_NORM,
        # A one-layer head leaves the layers above it without gradients: DDP must be told.
        ddp_find_unused_parameters=isinstance(model.head_config.layer, int))
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=WEIGHT_DECAY)
    return fine_tune(model, list(zip(train_waves, y_train.tolist())), list(zip(val_waves, y_val.tolist())), args=args,
                     collate=WaveBatches(model), class_weights=class_weights(y_train, model.labels),
                     optimizer=optimizer, patience=config.patience, save_every=config.save_every_steps)


@dataclasses.dataclass
class FinetuneBackbone:
    """``fine-tune`` mode: the whole speech model ``config.backbone`` is trained with the head."""

    config: AudioTrainConfig  # its finetune fields, seed, device and progress
    head: HeadConfig = HeadConfig()
    settings: AudioSettings = AudioSettings()
    labels: tuple = ()  # the corpus's label set (the classifier's outputs)
    model: SSLClassifier | None = None
    skipped: dict = dataclasses.field(default_factory=dict)
    report: dict = dataclasses.field(default_factory=dict)
    trainer: object = dataclasses.field(default=None, repr=False)

    @property
    def model_name(self) -> str:
        return self.config.backbone

    def _waves(self, clips: ClipSet, desc: str) -> tuple[list, np.ndarray]:
        waves, skipped = load_waveforms(clips.paths, settings=self.settings,
                                        progress=self.config.progress and distributed.is_main_process(), desc=desc)
        self.skipped.update({item["path"]: item["reason"] for item in skipped})
        ok = np.array([w is not None for w in waves])
        return [w for w in waves if w is not None], ok

    def fit(self, train: ClipSet, val: ClipSet, *, work_dir: Path) -> dict:
        torch.manual_seed(self.config.seed)  # the head's initial weights: the same on every process
        self.labels = train.label_set
        self.model = build_classifier(self.model_name, labels=self.labels, head=self.head)
        train_waves, ok_train = self._waves(train, "loading train audio")
        val_waves, ok_val = self._waves(val, "loading val audio")
        self.trainer, report = finetune(self.model, train_waves, train.label_indices()[ok_train], val_waves,
                                        val.label_indices()[ok_val], config=self.config, work_dir=work_dir)
        self.report = {"model_name": self.model_name, "mode": "finetune", "selected_on": "val",
                       "head": dataclasses.asdict(self.head), **report}
        return self.report

    def predict_proba(self, clips: ClipSet) -> np.ndarray:
        if self.trainer is None:
            raise RuntimeError("call fit() before predict_proba()")
        waves, ok = self._waves(clips, "loading audio")
        proba = np.full((len(clips), len(self.labels)), np.nan)
        proba[ok] = predict_proba(self.trainer, waves)
        return proba

    def save(self, path: str | os.PathLike) -> Path:
        return save_fitted_ssl(self, path)
