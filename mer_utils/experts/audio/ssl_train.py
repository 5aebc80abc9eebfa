"""Fine-tuning a speech model for SER (``--mode finetune``) on :mod:`mer_utils.experts.fine_tuning`
(``transformers.Trainer``).

Class-balanced cross-entropy, AdamW with a lower learning rate for the
pretrained backbone than for the head, linear warm-up then linear decay,
gradient clipping, optional frozen convolutional encoder, model selection and
early stopping on validation UA; a resumable checkpoint every
``save_every_steps`` optimizer steps and at each epoch end. One process or N
(``accelerate launch`` / ``torchrun``, see docs/scaling.md): the effective
batch stays what it is on one process, and validation and test clips are
scored one at a time (a clip's score never depends on its batch), each
exactly once.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import torch

from mer_utils.core.labels import class_weights
from mer_utils.experts import distributed
from mer_utils.experts.audio.backbone import ClipSet
from mer_utils.experts.audio.loading import AudioSettings, load_waveforms
from mer_utils.experts.audio.ssl_model import HeadConfig, SSLClassifier, build_classifier, freeze_feature_encoder
from mer_utils.experts.fine_tuning import (accumulation_steps, fine_tune, mixed_precision, predict_proba,
                                           training_arguments)


@dataclasses.dataclass(frozen=True)
class FinetuneSettings:
    """Optimisation settings of fine-tuning."""

    epochs: int = 10
    batch_size: int = 8  # clips per forward pass on one device
    grad_accum: int = 4  # effective batch = batch_size * grad_accum (kept under N processes)
    effective_batch_size: int | None = None  # clips per optimizer step over all processes (None: as above)
    lr: float = 3e-5  # pretrained backbone
    head_lr: float = 1e-3  # layer weights, pooling and classifier
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    patience: int = 3  # epochs without validation-UA gain before stopping
    freeze_feature_encoder: bool = True
    amp: bool = True  # mixed precision (see amp_dtype)
    amp_dtype: str = "auto"  # auto: bf16 where supported else fp16 on GPU, off on CPU; or fp16 / bf16
    save_every_steps: int = 50
    seed: int = 0


def _optimizer(model: SSLClassifier, settings: FinetuneSettings) -> torch.optim.Optimizer:
    backbone_ids = {id(p) for p in model.backbone.parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trainable if id(p) in backbone_ids], "lr": settings.lr},
              {"params": [p for p in trainable if id(p) not in backbone_ids], "lr": settings.head_lr}]
    return torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=settings.weight_decay)


@dataclasses.dataclass(frozen=True)
class WaveBatches:
    """``[(waveform, label index), ...]`` -> the model's padded inputs and the labels."""

    model: SSLClassifier

    def __call__(self, items: list) -> dict:
        return {**self.model.prepare([wave for wave, _ in items]), "labels": torch.tensor([y for _, y in items])}


def finetune(model: SSLClassifier, train_waves: list, y_train: np.ndarray, val_waves: list, y_val: np.ndarray, *,
             settings: FinetuneSettings, work_dir: str | os.PathLike, device: str | None = None,
             progress: bool = True):
    """Train ``model`` in place; on return it holds the best-validation-UA weights (on every process).

    Returns the trainer (it predicts, sharded) and a report: best epoch and UA, per-epoch history, where it
    resumed, the process layout and the effective batch size.
    """
    if settings.epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {settings.epochs}")
    accum, _ = accumulation_steps(batch_size=settings.batch_size, grad_accum=settings.grad_accum,
                                  effective_batch_size=settings.effective_batch_size,
                                  num_processes=distributed.world_size())
    if settings.freeze_feature_encoder:
        freeze_feature_encoder(model)
    precision = mixed_precision(settings.amp, settings.amp_dtype, "cpu" if distributed.use_cpu(device) else "cuda")
    args = training_arguments(
        work_dir, epochs=settings.epochs, batch_size=settings.batch_size, grad_accum=accum, seed=settings.seed,
        device=device, precision=precision, eval_batch_size=1, progress=progress, lr_scheduler_type="linear",
        warmup_steps=settings.warmup_ratio, max_grad_norm=settings.max_grad_norm,
        # A one-layer head leaves the layers above it without gradients: DDP must be told.
        ddp_find_unused_parameters=isinstance(model.head_config.layer, int))
    trainer, report = fine_tune(
        model, list(zip(train_waves, y_train.tolist())), list(zip(val_waves, y_val.tolist())), args=args,
        collate=WaveBatches(model), class_weights=class_weights(y_train, model.labels),
        optimizer=_optimizer(model, settings), patience=settings.patience, save_every=settings.save_every_steps)
    return trainer, report


@dataclasses.dataclass
class FinetuneBackbone:
    """``fine-tune`` mode: the whole speech model is trained with the head."""

    model_name: str
    head: HeadConfig = HeadConfig()
    train_settings: FinetuneSettings = FinetuneSettings()
    settings: AudioSettings = AudioSettings()
    device: str | None = None
    progress: bool = True
    labels: tuple = ()  # the corpus's label set (the classifier's outputs)
    model: SSLClassifier | None = None
    skipped: dict = dataclasses.field(default_factory=dict)
    report: dict = dataclasses.field(default_factory=dict)
    trainer: object = dataclasses.field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.model_name

    def _waves(self, clips: ClipSet, desc: str) -> tuple[list, np.ndarray]:
        waves, skipped = load_waveforms(clips.paths, settings=self.settings,
                                        progress=self.progress and distributed.is_main_process(), desc=desc)
        self.skipped.update({item["path"]: item["reason"] for item in skipped})
        ok = np.array([w is not None for w in waves])
        return [w for w in waves if w is not None], ok

    def fit(self, train: ClipSet, val: ClipSet, *, work_dir: Path) -> dict:
        s = self.train_settings
        torch.manual_seed(s.seed)  # the head's initial weights: the same on every process
        self.labels = train.label_set
        self.model = build_classifier(self.model_name, labels=self.labels, head=self.head)
        train_waves, ok_train = self._waves(train, "loading train audio")
        val_waves, ok_val = self._waves(val, "loading val audio")
        self.trainer, report = finetune(self.model, train_waves, train.label_indices()[ok_train], val_waves,
                                        val.label_indices()[ok_val], settings=s, work_dir=work_dir,
                                        device=self.device, progress=self.progress)
        self.report = {"model_name": self.model_name, "mode": "finetune", "selected_on": "val",
                       "head": dataclasses.asdict(self.head), **report}
        return self.report

    def predict_proba(self, clips: ClipSet) -> np.ndarray:
        """Probabilities of ``clips`` (NaN rows for clips that could not be decoded), sharded over the processes."""
        if self.trainer is None:
            raise RuntimeError("call fit() before predict_proba()")
        waves, ok = self._waves(clips, "loading audio")
        proba = np.full((len(clips), len(self.labels)), np.nan)
        proba[ok] = predict_proba(self.trainer, waves)
        return proba

    def save(self, path: str | os.PathLike) -> Path:
        from mer_utils.experts.audio.checkpoint import save_fitted_ssl

        return save_fitted_ssl(self, path)
