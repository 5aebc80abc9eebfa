"""Fine-tuning a speech model for SER, resumable after a Colab disconnect.

Class-balanced cross-entropy, AdamW with a lower learning rate for the
pretrained backbone than for the head, linear warm-up then linear decay,
gradient accumulation, optional frozen convolutional encoder, mixed precision
on GPU, early stopping on validation UA.

Resuming: every ``save_every_steps`` optimizer steps and at each epoch end the
model, optimizer, scheduler and loss-scaler states go to
``<work_dir>/train_state.pt``. The batch order of an epoch is a pure function
of (seed, epoch), so a resumed run skips exactly the batches already seen.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mer_utils.atomic_io import atomic_path
from mer_utils.audio.backbone import ClipSet, class_weights
from mer_utils.audio.loading import AudioSettings, load_waveforms
from mer_utils.audio.ssl_model import HeadConfig, SSLClassifier, build_classifier, freeze_feature_encoder
from mer_utils.constants import EMOTIONS


@dataclasses.dataclass(frozen=True)
class FinetuneSettings:
    """Optimisation settings of fine-tuning."""

    epochs: int = 10
    batch_size: int = 8
    grad_accum: int = 4  # effective batch = batch_size * grad_accum
    lr: float = 3e-5  # pretrained backbone
    head_lr: float = 1e-3  # layer weights, pooling and classifier
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    patience: int = 3  # epochs without validation-UA gain before stopping
    freeze_feature_encoder: bool = True
    amp: bool = True  # mixed precision on CUDA (bf16 where supported, else fp16)
    save_every_steps: int = 50
    seed: int = 0


def _save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _fingerprint(settings: FinetuneSettings, model: SSLClassifier, n_train: int) -> str:
    blob = json.dumps({"settings": dataclasses.asdict(settings), "n_train": n_train,
                       "head": dataclasses.asdict(model.head_config),
                       "backbone": model.backbone.config.to_dict()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _autocast(device: torch.device, enabled: bool):
    if device.type != "cuda" or not enabled:
        return torch.autocast(device_type=device.type, enabled=False), None
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype), dtype


def _optimizer(model: SSLClassifier, settings: FinetuneSettings) -> torch.optim.Optimizer:
    backbone_ids = {id(p) for p in model.backbone.parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trainable if id(p) in backbone_ids], "lr": settings.lr},
              {"params": [p for p in trainable if id(p) not in backbone_ids], "lr": settings.head_lr}]
    return torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=settings.weight_decay)


def _train_batch(model, waves, labels, loss_fn, *, device, autocast, scaler, scale: float) -> float:
    batch = model.prepare(waves, device)
    with autocast:
        logits = model(batch["inputs"], batch["n_samples"])
        loss = loss_fn(logits.float(), labels.to(device)) * scale
    scaler.scale(loss).backward() if scaler is not None else loss.backward()
    return float(loss) / scale


def validation_ua(model: SSLClassifier, waves: list, labels: np.ndarray, *, device) -> float:
    from sklearn.metrics import balanced_accuracy_score

    proba = model.predict_proba_waves(waves, device=device)
    return float(balanced_accuracy_score(labels, proba.argmax(axis=1)))


def finetune(
    model: SSLClassifier, train_waves: list, y_train: np.ndarray, val_waves: list, y_val: np.ndarray, *,
    settings: FinetuneSettings, work_dir: str | os.PathLike, device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict:
    """Train ``model`` in place; on return it holds the best-validation-UA weights.

    Returns a report: best epoch and UA, per-epoch history, where it resumed.
    """
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    if settings.epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {settings.epochs}")
    device = torch.device(device)
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    state_path, best_path = work_dir / "train_state.pt", work_dir / "best_state.pt"
    model.to(device)
    if settings.freeze_feature_encoder:
        freeze_feature_encoder(model)
    loss_fn = nn.CrossEntropyLoss(weight=torch.tensor(class_weights(y_train), dtype=torch.float32, device=device))
    optimizer = _optimizer(model, settings)
    n_batches = math.ceil(len(train_waves) / settings.batch_size)
    total_steps = settings.epochs * math.ceil(n_batches / settings.grad_accum)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(settings.warmup_ratio * total_steps), total_steps)
    autocast, amp_dtype = _autocast(device, settings.amp)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    fingerprint = _fingerprint(settings, model, len(train_waves))
    state = {"epoch": 0, "batch": 0, "step": 0, "best_ua": -1.0, "best_epoch": -1, "bad_epochs": 0,
             "history": [], "done": False, "fingerprint": fingerprint}
    resumed_from = None
    if state_path.exists():
        saved = torch.load(state_path, map_location=device, weights_only=True)
        if saved["meta"]["fingerprint"] == fingerprint:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            if scaler is not None and saved.get("scaler"):
                scaler.load_state_dict(saved["scaler"])
            state = saved["meta"]
            resumed_from = {"epoch": state["epoch"], "batch": state["batch"], "step": state["step"]}

    def checkpoint_state():
        _save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
               "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler else {},
               "meta": state}, state_path)

    labels = torch.as_tensor(y_train, dtype=torch.long)
    while not state["done"] and state["epoch"] < settings.epochs:
        epoch = state["epoch"]
        order = torch.randperm(len(train_waves), generator=torch.Generator().manual_seed(settings.seed * 1009 + epoch))
        batches = [order[i:i + settings.batch_size] for i in range(0, len(order), settings.batch_size)]
        model.train()
        losses = []
        bar = tqdm(range(state["batch"], len(batches)), desc=f"epoch {epoch + 1}/{settings.epochs}",
                   disable=not progress, leave=False)
        for b in bar:
            idx = batches[b].tolist()
            group_start = b - b % settings.grad_accum
            group = min(settings.grad_accum, len(batches) - group_start)  # the last group may be short
            last_in_group = b + 1 == group_start + group
            losses.append(_train_batch(model, [train_waves[i] for i in idx], labels[idx], loss_fn, device=device,
                                       autocast=autocast, scaler=scaler, scale=1.0 / group))
            if not last_in_group:
                continue
            if scaler is not None:
                scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], settings.max_grad_norm)
            scaler.step(optimizer) if scaler is not None else optimizer.step()
            if scaler is not None:
                scaler.update()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state["step"] += 1
            state["batch"] = b + 1
            if state["step"] % settings.save_every_steps == 0:
                checkpoint_state()
        ua = validation_ua(model, val_waves, y_val, device=device)
        state["history"].append({"epoch": epoch + 1, "val_ua": ua,
                                 "train_loss": float(np.mean(losses)) if losses else None})
        if ua > state["best_ua"]:
            state.update(best_ua=ua, best_epoch=epoch + 1, bad_epochs=0)
            _save(model.state_dict(), best_path)
        else:
            state["bad_epochs"] += 1
        state.update(epoch=epoch + 1, batch=0, done=state["bad_epochs"] >= settings.patience)
        checkpoint_state()
    state["done"] = True
    checkpoint_state()
    model.load_state_dict(torch.load(best_path, map_location=device, weights_only=True))
    return {"best_epoch": state["best_epoch"], "best_val_ua": state["best_ua"], "history": state["history"],
            "optimizer_steps": state["step"], "resumed_from": resumed_from,
            "amp": str(amp_dtype).replace("torch.", "") if amp_dtype else "off", "device": str(device)}


def pick_device(device: str | None = None) -> str:
    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclasses.dataclass
class FinetuneBackbone:
    """``fine-tune`` mode: the whole speech model is trained with the head."""

    model_name: str
    head: HeadConfig = HeadConfig()
    train_settings: FinetuneSettings = FinetuneSettings()
    settings: AudioSettings = AudioSettings()
    device: str | None = None
    progress: bool = True
    model: SSLClassifier | None = None
    skipped: dict = dataclasses.field(default_factory=dict)
    report: dict = dataclasses.field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.model_name

    def _waves(self, clips: ClipSet, desc: str) -> tuple[list, np.ndarray]:
        waves, skipped = load_waveforms(clips.paths, settings=self.settings, progress=self.progress, desc=desc)
        self.skipped.update({item["path"]: item["reason"] for item in skipped})
        ok = np.array([w is not None for w in waves])
        return [w for w in waves if w is not None], ok

    def fit(self, train: ClipSet, val: ClipSet, *, work_dir: Path) -> dict:
        torch.manual_seed(self.train_settings.seed)
        self.model = build_classifier(self.model_name, head=self.head)
        train_waves, ok_train = self._waves(train, "loading train audio")
        val_waves, ok_val = self._waves(val, "loading val audio")
        report = finetune(self.model, train_waves, train.label_indices()[ok_train], val_waves,
                          val.label_indices()[ok_val], settings=self.train_settings, work_dir=work_dir,
                          device=pick_device(self.device), progress=self.progress)
        self.report = {"model_name": self.model_name, "mode": "finetune", "selected_on": "val",
                       "head": dataclasses.asdict(self.head), **report}
        return self.report

    def predict_proba(self, clips: ClipSet) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("call fit() before predict_proba()")
        waves, ok = self._waves(clips, "loading audio")
        proba = np.full((len(clips), len(EMOTIONS)), np.nan)
        proba[ok] = self.model.predict_proba_waves(waves, device=pick_device(self.device))
        return proba

    def save(self, path: str | os.PathLike) -> Path:
        from mer_utils.audio.checkpoint import save_ssl_checkpoint

        if self.model is None:
            raise RuntimeError("call fit() before save()")
        return save_ssl_checkpoint(self.model, path, model_name=self.model_name, settings=self.settings,
                                   info=self.report)
