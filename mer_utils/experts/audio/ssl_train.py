"""Fine-tuning a speech model for SER, data-parallel through Accelerate and resumable after a disconnect.

Class-balanced cross-entropy, AdamW with a lower learning rate for the
pretrained backbone than for the head, linear warm-up then linear decay,
gradient accumulation and mixed precision through
:class:`accelerate.Accelerator`, optional frozen convolutional encoder, early
stopping on validation UA.

One process or N (``accelerate launch`` / ``torchrun``, see docs/scaling.md):
the training clips are sharded over the processes by the prepared data
loader, the effective batch (per-device batch x processes x accumulation)
stays what it is on one process (:func:`mer_utils.experts.distributed.accumulation_steps`),
and validation/test clips are sharded and gathered with ``gather_for_metrics``
so every clip is predicted exactly once.

Resuming: every ``save_every_steps`` optimizer steps and at each epoch end
``accelerator.save_state`` writes ``<work_dir>/train_state/`` (model,
optimizer, scheduler, loss scaler and the python, numpy and torch RNG states
of every process) plus ``meta.json`` (epoch, batch, history). The batch order
of an epoch is a pure function of (seed, epoch), so a resumed run skips
exactly the batches already seen and, with the RNGs restored, continues as an
uninterrupted one would (dropout and SpecAugment masks included). An
unreadable state is set aside as ``train_state.corrupt`` and the fold restarts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mer_utils.core.atomic_io import atomic_path, read_json, write_json
from mer_utils.core.labels import class_weights
from mer_utils.experts import distributed
from mer_utils.experts.audio.backbone import ClipSet
from mer_utils.experts.audio.loading import AudioSettings, load_waveforms
from mer_utils.experts.audio.ssl_model import HeadConfig, SSLClassifier, build_classifier, freeze_feature_encoder

STATE_DIR, BEST_FILE = "train_state", "best_state.pt"


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


def _save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _fingerprint(settings: FinetuneSettings, model: SSLClassifier, n_train: int, num_processes: int) -> str:
    # The process count is part of it: a state saved by N processes holds N RNG streams and N shards.
    blob = json.dumps({"settings": dataclasses.asdict(settings), "n_train": n_train, "processes": num_processes,
                       "head": dataclasses.asdict(model.head_config),
                       "backbone": model.backbone.config.to_dict()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _optimizer(model: SSLClassifier, settings: FinetuneSettings) -> torch.optim.Optimizer:
    backbone_ids = {id(p) for p in model.backbone.parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trainable if id(p) in backbone_ids], "lr": settings.lr},
              {"params": [p for p in trainable if id(p) not in backbone_ids], "lr": settings.head_lr}]
    return torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=settings.weight_decay)


class EpochPermutation(torch.utils.data.Sampler):
    """The clips of an epoch in an order that depends on (seed, epoch) only: the same on every process
    (each then takes its shard) and again after a resume."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1009 + self.epoch)
        return iter(torch.randperm(self.n, generator=generator).tolist())

    def __len__(self) -> int:
        return self.n


def _index_loader(n: int, batch_size: int, sampler=None):
    # Batches of clip indices; the waveforms stay in the caller's list. Its own generator keeps the
    # loader from drawing on the global torch RNG (which a resume restores for dropout and masking).
    return torch.utils.data.DataLoader(range(n), batch_size=batch_size, sampler=sampler, shuffle=False,
                                       collate_fn=torch.tensor, generator=torch.Generator().manual_seed(0))


def _train_batch(accelerator, model, waves, labels, loss_fn) -> float:
    """Forward and backward of one batch (inside ``accelerator.accumulate``)."""
    core = accelerator.unwrap_model(model)
    batch = core.prepare(waves, accelerator.device)
    logits = model(batch["inputs"], batch["n_samples"])  # the prepared model autocasts under mixed precision
    loss = loss_fn(logits.float(), labels.to(accelerator.device))
    accelerator.backward(loss)
    return float(loss.detach())


def predict_proba_sharded(accelerator, model: SSLClassifier, waves: list) -> np.ndarray:
    """Probabilities of every clip in ``waves``, one clip at a time (a clip's score never depends on its
    batch), sharded over the processes and gathered exactly once."""
    core = accelerator.unwrap_model(model)
    if not waves:
        return np.zeros((0, core.classifier[-1].out_features))
    return distributed.gather_predictions(accelerator, len(waves), lambda idx: torch.as_tensor(
        core.predict_proba_waves([waves[int(idx[0])]], device=accelerator.device)))


def validation_ua(accelerator, model, waves: list, labels: np.ndarray) -> float:
    from sklearn.metrics import balanced_accuracy_score

    proba = predict_proba_sharded(accelerator, model, waves)
    return float(balanced_accuracy_score(labels, proba.argmax(axis=1)))


def _readable_state(state_dir: Path, process_index: int) -> None:
    """Raise if any file of a saved state cannot be read (before anything is loaded into the model:
    a half-restored model could not start afresh). ``accelerator.load_state`` alone would skip a bad
    RNG file silently, and a resumed run would then differ from an uninterrupted one."""
    from accelerate.utils import load
    from safetensors.torch import load_file

    files = [state_dir / "meta.json", state_dir / f"random_states_{process_index}.pkl"]
    files += sorted(p for p in state_dir.iterdir() if p.suffix in (".bin", ".safetensors", ".pt")
                    and p.name not in {f.name for f in files})
    for path in files:
        try:
            if path.suffix == ".json":
                read_json(path)
            elif path.suffix == ".safetensors":
                load_file(path)
            else:
                load(path, map_location="cpu")
        except Exception as err:
            raise RuntimeError(f"{path.name}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") \
                from err


class _Trainer:
    """The mutable pieces of one fine-tuning run, prepared by Accelerate, and their save/restore."""

    def __init__(self, accelerator, model, y_train, n_train: int, settings: FinetuneSettings, accum: int,
                 work_dir: Path):
        from transformers import get_linear_schedule_with_warmup

        self.accelerator, self.settings, self.work_dir = accelerator, settings, work_dir
        self.state_dir, self.best_path = work_dir / STATE_DIR, work_dir / BEST_FILE
        weights = torch.tensor(class_weights(y_train, model.labels), dtype=torch.float32)
        self.loss_fn = nn.CrossEntropyLoss(weight=weights.to(accelerator.device))
        fingerprint = _fingerprint(settings, model, n_train, accelerator.num_processes)
        self.sampler = EpochPermutation(n_train, settings.seed)
        optimizer = _optimizer(model, settings)
        loader = _index_loader(n_train, settings.batch_size, self.sampler)
        # Optimizer steps of this process; a prepared scheduler steps once per process and step (HF pattern).
        per_process = math.ceil(n_train / (settings.batch_size * accelerator.num_processes))
        total = settings.epochs * math.ceil(per_process / accum) * accelerator.num_processes
        scheduler = get_linear_schedule_with_warmup(optimizer, int(settings.warmup_ratio * total), total)
        self.model, self.optimizer, self.loader, self.scheduler = accelerator.prepare(model, optimizer, loader,
                                                                                      scheduler)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.state = {"epoch": 0, "batch": 0, "step": 0, "best_ua": -1.0, "best_epoch": -1, "bad_epochs": 0,
                      "history": [], "done": False, "fingerprint": fingerprint}

    def restore(self) -> dict | None:
        """Load the saved state of this very run, if any; returns where it resumes."""
        acc = self.accelerator
        meta, error = None, None
        if self.state_dir.is_dir():
            try:
                _readable_state(self.state_dir, acc.process_index)
                meta = read_json(self.state_dir / "meta.json")
                if meta["best_epoch"] > 0:
                    torch.load(self.best_path, map_location="cpu", weights_only=True)
            except Exception as err:  # truncated by a kill or a full disk: never block the run
                error = err
        if not distributed.all_true(error is None):
            if acc.is_main_process:
                distributed.set_aside_corrupt(self.state_dir, error or "unreadable on another process")
            acc.wait_for_everyone()
            return None
        same_run = meta is not None and meta["fingerprint"] == self.state["fingerprint"]
        if not distributed.all_true(same_run):
            return None  # nothing saved, or settings, data or process count changed: start afresh
        acc.load_state(str(self.state_dir))
        self.state = meta
        return {k: self.state[k] for k in ("epoch", "batch", "step")}

    def save(self) -> None:
        """``save_state`` into a fresh folder, then swapped in: a kill mid-save leaves the previous state."""
        acc, tmp, old = self.accelerator, self.work_dir / f"{STATE_DIR}.tmp", self.work_dir / f"{STATE_DIR}.old"
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        if acc.is_main_process:
            write_json(tmp / "meta.json", self.state)
        acc.wait_for_everyone()
        if acc.is_main_process:
            if self.state_dir.exists():
                os.replace(self.state_dir, old)
            os.replace(tmp, self.state_dir)
            shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()

    def run_epoch(self, train_waves: list, labels: torch.Tensor, progress: bool) -> list[float]:
        from tqdm.auto import tqdm

        s, state, acc = self.settings, self.state, self.accelerator
        self.sampler.set_epoch(state["epoch"])
        loader = acc.skip_first_batches(self.loader, state["batch"]) if state["batch"] else self.loader
        self.model.train()
        losses = []
        bar = tqdm(total=len(self.loader), initial=state["batch"], desc=f"epoch {state['epoch'] + 1}/{s.epochs}",
                   disable=not (progress and acc.is_main_process), leave=False)
        for b, idx in enumerate(loader, start=state["batch"]):
            idx = idx.tolist()
            with acc.accumulate(self.model):
                losses.append(_train_batch(acc, self.model, [train_waves[i] for i in idx], labels[idx],
                                           self.loss_fn))
                if acc.sync_gradients:  # clip the true, summed gradients (unscaled under fp16)
                    acc.clip_grad_norm_(self.trainable, s.max_grad_norm)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
            bar.update(1)
            if acc.sync_gradients:
                state["step"] += 1
                state["batch"] = b + 1  # saved only at step boundaries: no half-accumulated gradient is lost
                if state["step"] % s.save_every_steps == 0:
                    self.save()
        bar.close()
        return losses

    def end_epoch(self, ua: float, losses: list[float]) -> None:
        state, acc = self.state, self.accelerator
        # The mean training loss over all processes' batches, as one process would report it.
        mean_loss = distributed.gather_objects([float(np.mean(losses)) if losses else None])
        mean_loss = [x for x in mean_loss if x is not None]
        state["history"].append({"epoch": state["epoch"] + 1, "val_ua": ua,
                                 "train_loss": float(np.mean(mean_loss)) if mean_loss else None})
        if ua > state["best_ua"]:
            state.update(best_ua=ua, best_epoch=state["epoch"] + 1, bad_epochs=0)
            if acc.is_main_process:
                _save(acc.unwrap_model(self.model).state_dict(), self.best_path)
        else:
            state["bad_epochs"] += 1
        state.update(epoch=state["epoch"] + 1, batch=0, done=state["bad_epochs"] >= self.settings.patience)
        self.save()


def finetune(
    model: SSLClassifier, train_waves: list, y_train: np.ndarray, val_waves: list, y_val: np.ndarray, *,
    settings: FinetuneSettings, work_dir: str | os.PathLike, device: str | None = None, progress: bool = True,
    accelerator=None,
) -> dict:
    """Train ``model`` in place; on return it holds the best-validation-UA weights (on every process).

    Returns a report: best epoch and UA, per-epoch history, where it resumed, the process layout and the
    effective batch size. ``accelerator`` defaults to :func:`mer_utils.experts.distributed.make_accelerator`.
    """
    if settings.epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {settings.epochs}")
    accum, effective = distributed.accumulation_steps(
        batch_size=settings.batch_size, grad_accum=settings.grad_accum,
        effective_batch_size=settings.effective_batch_size, num_processes=distributed.world_size())
    acc = accelerator or distributed.make_accelerator(device=device, amp=settings.amp, amp_dtype=settings.amp_dtype,
                                                      grad_accum=accum)
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    if settings.freeze_feature_encoder:
        freeze_feature_encoder(model)
    layout = {"num_processes": acc.num_processes, "per_device_batch_size": settings.batch_size,
              "grad_accum_per_process": accum, "effective_batch_size": effective,
              "mixed_precision": str(acc.mixed_precision), "device": str(acc.device)}
    if acc.is_main_process:
        print(f"fine-tuning on {acc.num_processes} process(es) ({acc.device.type}, precision "
              f"{acc.mixed_precision}): effective batch {effective} = {settings.batch_size} per device x "
              f"{acc.num_processes} x {accum} accumulated", flush=True)
    trainer = _Trainer(acc, model, y_train, len(train_waves), settings, accum, work_dir)
    resumed_from = trainer.restore()
    labels = torch.as_tensor(y_train, dtype=torch.long)
    while not trainer.state["done"] and trainer.state["epoch"] < settings.epochs:
        losses = trainer.run_epoch(train_waves, labels, progress)
        trainer.end_epoch(validation_ua(acc, trainer.model, val_waves, y_val), losses)
    if not trainer.state["done"]:
        trainer.state["done"] = True
        trainer.save()
    acc.wait_for_everyone()
    core = acc.unwrap_model(trainer.model)
    core.load_state_dict(torch.load(trainer.best_path, map_location="cpu", weights_only=True))
    state = trainer.state
    return {"best_epoch": state["best_epoch"], "best_val_ua": state["best_ua"], "history": state["history"],
            "optimizer_steps": state["step"], "resumed_from": resumed_from,
            "amp": layout["mixed_precision"].replace("no", "off"), **layout}


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
    accelerator: object = dataclasses.field(default=None, repr=False)

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
        from accelerate.utils import set_seed

        s = self.train_settings
        accum, _ = distributed.accumulation_steps(batch_size=s.batch_size, grad_accum=s.grad_accum,
                                                  effective_batch_size=s.effective_batch_size,
                                                  num_processes=distributed.world_size())
        # A one-layer head leaves the layers above it without gradients: DDP must be told.
        self.accelerator = distributed.make_accelerator(device=self.device, amp=s.amp, amp_dtype=s.amp_dtype,
                                                        grad_accum=accum,
                                                        find_unused_parameters=isinstance(self.head.layer, int))
        torch.manual_seed(s.seed)  # the head's initial weights: the same on every process
        self.labels = train.label_set
        self.model = build_classifier(self.model_name, labels=self.labels, head=self.head)
        # python, numpy (wav2vec2's time masks) and torch (dropout): one stream per process.
        set_seed(s.seed, device_specific=True)
        train_waves, ok_train = self._waves(train, "loading train audio")
        val_waves, ok_val = self._waves(val, "loading val audio")
        report = finetune(self.model, train_waves, train.label_indices()[ok_train], val_waves,
                          val.label_indices()[ok_val], settings=s, work_dir=work_dir, progress=self.progress,
                          accelerator=self.accelerator)
        self.report = {"model_name": self.model_name, "mode": "finetune", "selected_on": "val",
                       "head": dataclasses.asdict(self.head), **report}
        return self.report

    def predict_proba(self, clips: ClipSet) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("call fit() before predict_proba()")
        waves, ok = self._waves(clips, "loading audio")
        proba = np.full((len(clips), len(self.labels)), np.nan)
        if self.accelerator is not None:
            proba[ok] = predict_proba_sharded(self.accelerator, self.model, waves)
        else:
            proba[ok] = self.model.predict_proba_waves(waves, device=pick_device(self.device))
        return proba

    def save(self, path: str | os.PathLike) -> Path:
        from mer_utils.experts.audio.checkpoint import save_fitted_ssl

        return save_fitted_ssl(self, path)
