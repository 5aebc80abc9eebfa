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

from mer_utils.core.atomic_io import atomic_path
from mer_utils.core.labels import class_weights
from mer_utils.experts.audio.backbone import ClipSet
from mer_utils.experts.audio.loading import AudioSettings, load_waveforms
from mer_utils.experts.audio.ssl_model import HeadConfig, SSLClassifier, build_classifier, freeze_feature_encoder


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
    (scaler.scale(loss) if scaler is not None else loss).backward()
    return float(loss.detach()) / scale


def _optimizer_step(model, optimizer, scheduler, scaler, max_grad_norm: float) -> None:
    if scaler is not None:
        scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
    nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], max_grad_norm)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)


def validation_ua(model: SSLClassifier, waves: list, labels: np.ndarray, *, device) -> float:
    from sklearn.metrics import balanced_accuracy_score

    proba = model.predict_proba_waves(waves, device=device)
    return float(balanced_accuracy_score(labels, proba.argmax(axis=1)))


class _Trainer:
    """The mutable pieces of one fine-tuning run and their save/restore."""

    def __init__(self, model, y_train, n_train: int, settings: FinetuneSettings, device, work_dir: Path):
        from transformers import get_linear_schedule_with_warmup

        self.model, self.settings, self.device = model, settings, device
        self.state_path, self.best_path = work_dir / "train_state.pt", work_dir / "best_state.pt"
        weights = torch.tensor(class_weights(y_train, model.labels), dtype=torch.float32, device=device)
        self.loss_fn = nn.CrossEntropyLoss(weight=weights)
        self.optimizer = _optimizer(model, settings)
        n_batches = math.ceil(n_train / settings.batch_size)
        total = settings.epochs * math.ceil(n_batches / settings.grad_accum)
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, int(settings.warmup_ratio * total), total)
        self.autocast, self.amp_dtype = _autocast(device, settings.amp)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.state = {"epoch": 0, "batch": 0, "step": 0, "best_ua": -1.0, "best_epoch": -1, "bad_epochs": 0,
                      "history": [], "done": False, "fingerprint": _fingerprint(settings, model, n_train)}

    def restore(self) -> dict | None:
        """Load the saved state of this very run, if any; returns where it resumes."""
        if not self.state_path.exists():
            return None
        saved = torch.load(self.state_path, map_location=self.device, weights_only=True)
        if saved["meta"]["fingerprint"] != self.state["fingerprint"]:
            return None  # settings or data changed: start afresh
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        if self.scaler is not None and saved.get("scaler"):
            self.scaler.load_state_dict(saved["scaler"])
        self.state = saved["meta"]
        return {k: self.state[k] for k in ("epoch", "batch", "step")}

    def save(self) -> None:
        _save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
               "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict() if self.scaler else {},
               "meta": self.state}, self.state_path)

    def run_epoch(self, train_waves: list, labels: torch.Tensor, progress: bool) -> list[float]:
        from tqdm.auto import tqdm

        s, state = self.settings, self.state
        # The epoch's batch order depends on (seed, epoch) only, so a resumed epoch replays it exactly.
        generator = torch.Generator().manual_seed(s.seed * 1009 + state["epoch"])
        order = torch.randperm(len(train_waves), generator=generator)
        batches = [order[i:i + s.batch_size] for i in range(0, len(order), s.batch_size)]
        self.model.train()
        losses = []
        for b in tqdm(range(state["batch"], len(batches)), desc=f"epoch {state['epoch'] + 1}/{s.epochs}",
                      disable=not progress, leave=False):
            group_start = b - b % s.grad_accum
            group = min(s.grad_accum, len(batches) - group_start)  # the last group may be short
            idx = batches[b].tolist()
            losses.append(_train_batch(self.model, [train_waves[i] for i in idx], labels[idx], self.loss_fn,
                                       device=self.device, autocast=self.autocast, scaler=self.scaler,
                                       scale=1.0 / group))
            if b + 1 == group_start + group:
                _optimizer_step(self.model, self.optimizer, self.scheduler, self.scaler, s.max_grad_norm)
                state["step"] += 1
                state["batch"] = b + 1  # saved only at step boundaries: no half-accumulated gradient is lost
                if state["step"] % s.save_every_steps == 0:
                    self.save()
        return losses

    def end_epoch(self, ua: float, losses: list[float]) -> None:
        state = self.state
        state["history"].append({"epoch": state["epoch"] + 1, "val_ua": ua,
                                 "train_loss": float(np.mean(losses)) if losses else None})
        if ua > state["best_ua"]:
            state.update(best_ua=ua, best_epoch=state["epoch"] + 1, bad_epochs=0)
            _save(self.model.state_dict(), self.best_path)
        else:
            state["bad_epochs"] += 1
        state.update(epoch=state["epoch"] + 1, batch=0, done=state["bad_epochs"] >= self.settings.patience)
        self.save()


def finetune(
    model: SSLClassifier, train_waves: list, y_train: np.ndarray, val_waves: list, y_val: np.ndarray, *,
    settings: FinetuneSettings, work_dir: str | os.PathLike, device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict:
    """Train ``model`` in place; on return it holds the best-validation-UA weights.

    Returns a report: best epoch and UA, per-epoch history, where it resumed.
    """
    if settings.epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {settings.epochs}")
    device = torch.device(device)
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    model.to(device)
    if settings.freeze_feature_encoder:
        freeze_feature_encoder(model)
    trainer = _Trainer(model, y_train, len(train_waves), settings, device, work_dir)
    resumed_from = trainer.restore()
    labels = torch.as_tensor(y_train, dtype=torch.long)
    while not trainer.state["done"] and trainer.state["epoch"] < settings.epochs:
        losses = trainer.run_epoch(train_waves, labels, progress)
        trainer.end_epoch(validation_ua(model, val_waves, y_val, device=device), losses)
    trainer.state["done"] = True
    trainer.save()
    model.load_state_dict(torch.load(trainer.best_path, map_location=device, weights_only=True))
    state, amp = trainer.state, trainer.amp_dtype
    return {"best_epoch": state["best_epoch"], "best_val_ua": state["best_ua"], "history": state["history"],
            "optimizer_steps": state["step"], "resumed_from": resumed_from,
            "amp": str(amp).replace("torch.", "") if amp else "off", "device": str(device)}


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
    labels: tuple = ()  # the corpus's label set (the classifier's outputs)
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
        self.labels = train.label_set
        self.model = build_classifier(self.model_name, labels=self.labels, head=self.head)
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
        proba = np.full((len(clips), len(self.labels)), np.nan)
        proba[ok] = self.model.predict_proba_waves(waves, device=pick_device(self.device))
        return proba

    def save(self, path: str | os.PathLike) -> Path:
        from mer_utils.experts.audio.checkpoint import save_fitted_ssl

        return save_fitted_ssl(self, path)
