"""The visual expert as a plug-in of the protocol runner (:mod:`mer_utils.experts.runner`), one fold on
:mod:`mer_utils.experts.fine_tuning`: ``mer visual train`` and the VISUAL notebook."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from mer_utils.core.atomic_io import atomic_path, write_csv
from mer_utils.core.labels import class_weights
from mer_utils.core.predictions import make_predictions_frame
from mer_utils.experts.audio.checkpoint import protocol_tag
from mer_utils.experts.distributed import is_main_process, one_torch_thread, pick_device
from mer_utils.experts.runner import FoldResult, RunResult, run_protocol
from mer_utils.experts.visual.checkpoint import BEST_NAME, save_visual_checkpoint
from mer_utils.experts.visual.config import VisualTrainConfig
from mer_utils.experts.visual.crops import load_clip_crops, prepare_crops, summarize_report
from mer_utils.experts.visual.figures import plot_training_curves
from mer_utils.experts.visual.models import build_visual_model
from mer_utils.protocols.prepare import prepare_protocol
from mer_utils.protocols.splits import fold_subsets

STAGE = "visual"


class ClipData(NamedTuple):
    """Face crops of the usable clips of a split, in memory."""

    clip_ids: list
    labels: np.ndarray  # (N,) index into the corpus's label set
    crops: np.ndarray  # (N, K, S, S, 3) uint8
    row: dict  # clip_id -> index
    skipped: dict  # clip_id -> why it has no crops
    cache_dir: Path
    report: pd.DataFrame

    def rows(self, clip_ids) -> np.ndarray:
        """Indices of those of ``clip_ids`` that have crops."""
        return np.array([self.row[c] for c in clip_ids if c in self.row], dtype=np.int64)

    def predictions(self, prepared, rows: np.ndarray, proba: np.ndarray, *, fold: int, subset: str) -> pd.DataFrame:
        """The prediction contract's rows of clips ``rows``."""
        return make_predictions_frame(
            clip_ids=[self.clip_ids[i] for i in rows], y_true=[prepared.labels[self.labels[i]] for i in rows],
            proba=proba, labels=prepared.labels, split=prepared.split_name, fold=fold, subset=subset,
            modality=STAGE)


def prepare_visual_protocol(config: VisualTrainConfig):
    return prepare_protocol(config.data_root, config.protocol, seed=config.seed, outputs=config.outputs,
                            published_dir=config.published_dir, metadata_dir=config.metadata_dir,
                            n_folds=config.folds, progress=config.progress, dataset=config.dataset)


def load_clip_data(prepared, config: VisualTrainConfig) -> ClipData:
    """Prepare (or reuse) the crops of every clip in the split and load them."""
    wanted = prepared.manifest[prepared.manifest["clip_id"].isin(set(prepared.split["clip_id"]))]
    cache_dir, report = prepare_crops(wanted, prepared.data_root, config=config.crop_config(), outputs=config.outputs,
                                      n_jobs=config.n_jobs or None, progress=config.progress)
    done = report["status"].isin(["ok", "cached"])
    ok = report.loc[done, "clip_id"].tolist()
    skipped = {c: f"face crops {s}: {e}" for c, s, e in report.loc[~done, ["clip_id", "status", "error"]].values}
    emotion = dict(zip(prepared.manifest["clip_id"], prepared.manifest["emotion"]))
    # Filled in place: the whole corpus is ~0.7 GB of uint8 at K=8, 64 px; a list + stack would double it.
    first = load_clip_crops(cache_dir, ok[0]).crops if ok else np.zeros((0, 1, 1, 3), np.uint8)
    crops = np.empty((len(ok), *first.shape), np.uint8)
    for i, clip_id in enumerate(ok):
        crops[i] = load_clip_crops(cache_dir, clip_id).crops
    labels = np.array([prepared.labels.index(emotion[c]) for c in ok], dtype=np.int64)
    return ClipData(ok, labels, crops, {c: i for i, c in enumerate(ok)}, skipped, cache_dir, report)


def frozen_features(config: VisualTrainConfig, clips: ClipData, labels: tuple[str, ...], *,
                    batch_size: int = 64) -> dict:
    """Frame features of every clip and of its mirror image, computed once and cached."""
    model = build_visual_model(config.model_spec(labels), weights_dir=config.checkpoints)
    path = clips.cache_dir / f"features_{config.backbone.replace(':', '-')}_{model.spec.input_size}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as cached:
            if cached["clip_ids"].tolist() == list(clips.clip_ids):
                return {name: torch.from_numpy(cached[name]) for name in ("features", "mirrored")}
    device = pick_device(config.device)
    model.encoder.to(device).eval()
    encode = model.fast_frame_features()
    out = {"features": [], "mirrored": []}
    with torch.inference_mode():
        for start in tqdm(range(0, len(clips.crops), batch_size), desc="frame features", unit="batch",
                          disable=not config.progress):
            batch = torch.from_numpy(clips.crops[start: start + batch_size]).to(device)
            for name, crops in (("features", batch), ("mirrored", batch.flip(-2))):
                out[name].append(encode(crops).cpu())
    data = {k: torch.cat(v) for k, v in out.items()}
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, clip_ids=np.array(clips.clip_ids), **{k: v.numpy() for k, v in data.items()})
    return data


def augment_crops(crops: torch.Tensor) -> torch.Tensor:
    """Mirror, shift by up to 1/16 of the side, jitter brightness/contrast: uint8 -> float 0..255."""
    # The global torch generator: Trainer seeds it and restores it with each checkpoint (resume = uninterrupted).
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
    from mer_utils.experts.fine_tuning import fine_tune, training_arguments
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


@dataclasses.dataclass
class VisualExpert:
    """The runner's visual plug-in (see :class:`mer_utils.experts.runner.Expert`)."""

    config: VisualTrainConfig
    stage: str = STAGE
    resume_files: tuple = ("train_state",)  # the fold's Trainer checkpoints
    clips: ClipData | None = None
    data: dict | None = None

    def settings(self) -> dict:
        return self.config.result_settings()

    def begin(self, prepared) -> None:
        self.clips = load_clip_data(prepared, self.config)
        if not self.clips.clip_ids:
            raise RuntimeError("no clip could be turned into face crops; see "
                               f"{self.clips.cache_dir}/prepare_report.csv")
        self.data = ({"crops": torch.from_numpy(self.clips.crops)} if self.config.mode == "finetune" else
                     frozen_features(self.config, self.clips, prepared.labels))

    def fit_fold(self, prepared, fold: int, fold_dir: Path) -> FoldResult:
        from mer_utils.experts.fine_tuning import predict_proba
        config, clips = self.config, self.clips
        torch.manual_seed(config.seed * 1_000 + fold)
        subsets = fold_subsets(prepared.split, fold)
        index = {subset: clips.rows(ids) for subset, ids in subsets.items()}
        if len(index["train"]) == 0 or len(index["val"]) == 0:
            raise ValueError(f"fold {fold}: no usable training or validation clips "
                             f"(see {clips.cache_dir}/prepare_report.csv)")
        model = build_visual_model(config.model_spec(prepared.labels), weights_dir=config.checkpoints)
        start = time.perf_counter()
        trainer, report = fit_fold(model, self.data, clips.labels, index["train"], index["val"], config=config,
                                   fold=fold, work_dir=fold_dir)
        fit_s = time.perf_counter() - start
        frame = pd.concat([clips.predictions(prepared, index[s], predict_proba(trainer, index[s].tolist()), fold=fold,
                                             subset=s) for s in ("val", "test") if len(index[s])], ignore_index=True)
        report = {"fold": fold, "epochs": len(report["history"]), **report, "n_train": len(index["train"]),
                  "fit_seconds": round(fit_s, 2),
                  "skipped": [{"clip_id": c, "fold": fold, "subset": subset, "reason": clips.skipped[c]}
                              for subset, ids in subsets.items() for c in ids if c in clips.skipped]}
        extra = {"protocol": config.protocol, "split": prepared.split_name, "fold": fold,
                 "val_ua": report["best_val_ua"], "mode": config.mode, "trained_on": str(prepared.data_root)}
        save = functools.partial(save_visual_checkpoint, model=model.eval(), crop_config=config.crop_config(),
                                 extra=extra)  # save(stem) -> the weights file
        if is_main_process():  # launched: one process writes
            save(fold_dir / "model")
        return FoldResult(frame, report, save)

    def stable_name(self, prepared) -> str:
        # The demo's protocol keeps the name users know; the others get theirs, so no protocol overwrites another.
        return BEST_NAME if self.config.protocol == "speaker" else f"{BEST_NAME}_{protocol_tag(self.config.protocol)}"

    def run_info(self, prepared, reports: list[dict]) -> dict:
        return {"backbone": self.config.backbone, "mode": self.config.mode, "pooling": self.config.pooling,
                "n_frames": self.config.n_frames, "faces": summarize_report(self.clips.report),
                "crop_cache": str(self.clips.cache_dir)}

    def finish(self, run_dir: Path, reports: list[dict]) -> None:
        history = [row for report in reports for row in report["history"]]
        write_csv(run_dir / "history.csv", pd.DataFrame(history))
        plot_training_curves(history, path=run_dir / "training_curves.png", title=self.config.run_name())


def train_visual(config: VisualTrainConfig | None = None, **overrides) -> RunResult:
    """Run the visual expert, ``overrides`` replacing config fields: ``train_visual(protocol="speaker")``."""
    config = dataclasses.replace(config or VisualTrainConfig(), **overrides)
    return run_protocol(VisualExpert(config), lambda: prepare_visual_protocol(config))
