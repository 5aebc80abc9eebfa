"""The protocol runner behind ``mer visual train`` and the VISUAL notebook.

1. manifest + split of the protocol (:func:`mer_utils.protocols.prepare.prepare_protocol`);
2. face crops of every clip, cached (:func:`mer_utils.experts.visual.crops.prepare_crops`);
3. per fold: train on ``train`` with early stopping on ``val``, predict
   ``val`` and ``test``; finished folds are kept in ``<run>/fold<k>/`` and an
   interrupted fold resumes from its last epoch;
4. the fold with the best validation UA becomes
   ``checkpoints/best_visual_model.safetensors`` + ``.json``;
5. metrics, predictions and confusion matrix via
   :func:`mer_utils.experts.evaluation.save_run_outputs`, and
   ``outputs/visual/latest_<protocol>.json`` points at the run.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from mer_utils.core.atomic_io import read_json, write_csv, write_json
from mer_utils.data.cremad_vocabulary import EMOTIONS
from mer_utils.experts.fold_ledger import FoldLedger, run_fingerprint
from mer_utils.core.predictions import make_predictions_frame
from mer_utils.experts.visual.config import VisualTrainConfig

logger = logging.getLogger(__name__)
STAGE = "visual"
_NOT_IN_FINGERPRINT = ("progress", "outputs", "checkpoints", "device", "n_jobs")


class VisualRunResult(NamedTuple):
    run_dir: Path
    metrics: dict
    checkpoint: Path


class ClipData(NamedTuple):
    """Face crops of the usable clips of a split, in memory."""

    clip_ids: list
    labels: np.ndarray  # (N,) index into EMOTIONS
    crops: np.ndarray  # (N, K, S, S, 3) uint8
    row: dict  # clip_id -> index
    skipped: list  # [{"clip_id", "reason"}]
    cache_dir: Path
    report: pd.DataFrame


def fingerprint(config: VisualTrainConfig, prepared) -> str:
    """What a finished fold's results depend on: settings, data and split membership."""
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in _NOT_IN_FINGERPRINT}
    return run_fingerprint(settings, prepared, media="video")


def pick_device(device: str | None = None) -> str:
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def load_clip_data(prepared, config: VisualTrainConfig) -> ClipData:
    """Prepare (or reuse) the crops of every clip in the split and load them."""
    from mer_utils.experts.visual.crops import load_clip_crops, prepare_crops

    wanted = prepared.manifest[prepared.manifest["clip_id"].isin(set(prepared.split["clip_id"]))]
    cache_dir, report = prepare_crops(wanted, prepared.data_root, config=config.crop_config(),
                                      outputs=config.outputs, n_jobs=config.n_jobs or None,
                                      progress=config.progress)
    ok = report[report["status"].isin(["ok", "cached"])]["clip_id"].tolist()
    skipped = [{"clip_id": c, "reason": f"face crops {s}: {e}"} for c, s, e in
               report.loc[~report["status"].isin(["ok", "cached"]), ["clip_id", "status", "error"]].itertuples(index=False)]
    emotion = dict(zip(prepared.manifest["clip_id"], prepared.manifest["emotion"]))
    # Filled in place: the whole corpus is ~0.7 GB of uint8 at K=8, 64 px; a list + stack would double it.
    first = load_clip_crops(cache_dir, ok[0]).crops if ok else np.zeros((0, 1, 1, 3), np.uint8)
    crops = np.empty((len(ok), *first.shape), np.uint8)
    for i, clip_id in enumerate(ok):
        crops[i] = load_clip_crops(cache_dir, clip_id).crops
    labels = np.array([EMOTIONS.index(emotion[c]) for c in ok], dtype=np.int64)
    return ClipData(ok, labels, crops, {c: i for i, c in enumerate(ok)}, skipped, cache_dir, report)


def frozen_features(model, clips: ClipData, *, cache_key: str, device: str, batch_size: int = 64,
                    progress: bool = True) -> dict:
    """Frame features of every clip and of its mirror image, computed once and cached."""
    import torch

    path = clips.cache_dir / f"features_{cache_key}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as cached:
            if cached["clip_ids"].tolist() == list(clips.clip_ids):
                return {"features": torch.from_numpy(cached["features"]),
                        "mirrored": torch.from_numpy(cached["mirrored"])}
    from tqdm.auto import tqdm

    encoder = model.encoder.to(device).eval()
    encode = encoder.fused_features() if hasattr(encoder, "fused_features") else encoder
    out = {"features": [], "mirrored": []}
    with torch.inference_mode():
        for start in tqdm(range(0, len(clips.crops), batch_size), desc="frame features", unit="batch",
                          disable=not progress):
            batch = torch.from_numpy(clips.crops[start: start + batch_size]).to(device)
            for name, crops in (("features", batch), ("mirrored", batch.flip(-2))):
                n, k = crops.shape[:2]
                out[name].append(encode(crops.flatten(0, 1)).view(n, k, -1).cpu())
    model.to("cpu")
    data = {k: torch.cat(v) for k, v in out.items()}
    from mer_utils.core.atomic_io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, clip_ids=np.array(clips.clip_ids), **{k: v.numpy() for k, v in data.items()})
    return data


def _fold_indices(prepared, clips: ClipData, fold: int) -> dict[str, np.ndarray]:
    from mer_utils.protocols.splits import fold_subsets

    subsets = fold_subsets(prepared.split, fold)
    return {s: np.array([clips.row[c] for c in ids if c in clips.row], dtype=np.int64) for s, ids in subsets.items()}


def run_fold(config: VisualTrainConfig, prepared, clips: ClipData, data: dict, fold: int, fold_dir: Path):
    """Train and predict one fold; returns (predictions, report, model)."""
    import torch

    from mer_utils.experts.visual.fit import FitSettings, fit_fold, predict_proba
    from mer_utils.experts.visual.models import build_visual_model

    torch.manual_seed(config.seed * 1_000 + fold)
    index = _fold_indices(prepared, clips, fold)
    if len(index["train"]) == 0 or len(index["val"]) == 0:
        raise ValueError(f"fold {fold}: no usable training or validation clips (see {clips.cache_dir}/prepare_report.csv)")
    settings = FitSettings(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                           encoder_lr=config.encoder_lr, weight_decay=config.weight_decay, patience=config.patience,
                           augment=config.augment, frozen=config.mode == "frozen", seed=config.seed,
                           device=pick_device(config.device))
    model = build_visual_model(config.model_spec(), weights_dir=config.checkpoints)
    start = time.perf_counter()
    best, history = fit_fold(model, data, clips.labels, index["train"], index["val"], settings=settings, fold=fold,
                             state_path=fold_dir / "train_state.pt", progress=config.progress)
    model.load_state_dict(best)
    fit_s = time.perf_counter() - start
    frames = []
    for subset in ("val", "test"):
        if len(index[subset]):
            proba = predict_proba(model, data, index[subset], settings=settings)
            frames.append(make_predictions_frame(
                clip_ids=[clips.clip_ids[i] for i in index[subset]], y_true=[EMOTIONS[clips.labels[i]] for i in index[subset]],
                proba=proba, split=prepared.split_name, fold=fold, subset=subset, modality="visual"))
    report = {"fold": fold, "epochs": len(history), "best_val_ua": max(r["val_ua"] for r in history),
              "n_train": len(index["train"]), "fit_seconds": round(fit_s, 2), "history": history}
    return pd.concat(frames, ignore_index=True), report, model


def training_inputs(config: VisualTrainConfig, clips: ClipData) -> dict:
    """What the training loop indexes: frozen features (and their mirror images) or raw crops."""
    import torch

    from mer_utils.experts.visual.models import build_visual_model

    if config.mode == "finetune":
        return {"crops": torch.from_numpy(clips.crops)}
    model = build_visual_model(config.model_spec(), weights_dir=config.checkpoints)
    key = f"{config.backbone.replace(':', '-')}_{config.model_spec().input_size}"
    return frozen_features(model, clips, cache_key=key, device=pick_device(config.device), progress=config.progress)


def _fold_dir(run_dir: Path, fold: int, stamp: str) -> Path:
    """``<run>/fold<k>``, emptied first when an earlier, different config left it."""
    fold_dir = run_dir / f"fold{fold}"
    stamp_path = fold_dir / "fingerprint.json"
    if fold_dir.exists() and (not stamp_path.exists() or read_json(stamp_path).get("fingerprint") != stamp):
        shutil.rmtree(fold_dir)
    fold_dir.mkdir(parents=True, exist_ok=True)
    write_json(stamp_path, {"fingerprint": stamp})
    return fold_dir


def train_visual(config: VisualTrainConfig | None = None, **overrides) -> VisualRunResult:
    """Run the visual expert under ``config.protocol``; see the module docstring.

    Keyword ``overrides`` replace config fields, e.g.
    ``train_visual(protocol="speaker", pooling="attention")``.
    """
    from mer_utils.core.runs import new_run_dir, set_seed
    from mer_utils.experts.visual.checkpoint import BEST_NAME, save_visual_checkpoint
    from mer_utils.experts.visual.crops import summarize_report
    from mer_utils.protocols.prepare import prepare_protocol

    config = dataclasses.replace(config or VisualTrainConfig(), **overrides)
    set_seed(config.seed)
    prepared = prepare_protocol(config.data_root, config.protocol, seed=config.seed, outputs=config.outputs,
                                published_dir=config.published_dir, metadata_dir=config.metadata_dir,
                                n_folds=config.folds, progress=config.progress)
    run_dir = new_run_dir(config.outputs, STAGE, config.run_name(), config)
    clips = load_clip_data(prepared, config)
    if not clips.clip_ids:
        raise RuntimeError(f"no clip could be turned into face crops; see {clips.cache_dir}/prepare_report.csv")
    data = training_inputs(config, clips)
    stamp = fingerprint(config, prepared)
    ledger = FoldLedger(run_dir, stamp, prepared.split_name)
    frames, reports = [], []
    for fold in sorted(int(f) for f in prepared.split["fold"].unique()):
        done = ledger.finished(fold)
        if done is not None:
            frames.append(done.predictions)
            reports.append(done.report)
            continue
        fold_dir = _fold_dir(run_dir, fold, stamp)
        frame, report, model = run_fold(config, prepared, clips, data, fold, fold_dir)
        extra = {"protocol": config.protocol, "split": prepared.split_name, "fold": fold,
                 "val_ua": report["best_val_ua"], "mode": config.mode, "trained_on": str(prepared.data_root)}
        save_visual_checkpoint(fold_dir / "model", model, crop_config=config.crop_config(), extra=extra)
        ledger.offer_best(fold, report["best_val_ua"], lambda: save_visual_checkpoint(
            Path(config.checkpoints) / BEST_NAME, model, crop_config=config.crop_config(), extra=extra))
        ledger.record(fold, frame, report)
        (fold_dir / "train_state.pt").unlink(missing_ok=True)
        frames.append(frame)
        reports.append(report)
    return _finish(config, prepared, clips, run_dir, frames, reports, ledger, summarize_report(clips.report))


def _finish(config, prepared, clips, run_dir, frames, reports, ledger, face_summary) -> VisualRunResult:
    from mer_utils.experts.evaluation import save_run_outputs
    from mer_utils.core.runs import point_latest
    from mer_utils.experts.visual.figures import plot_training_curves

    predictions = pd.concat(frames, ignore_index=True)
    skipped = [{"clip_id": r["clip_id"], "reason": f"manifest: {r['reason']}"}
               for r in prepared.split.attrs.get("info", {}).get("excluded", [])] + clips.skipped
    write_csv(run_dir / "skipped_clips.csv", pd.DataFrame(skipped, columns=["clip_id", "reason"]))
    if skipped:
        logger.warning("%d clips skipped (no usable video); see %s", len(skipped), run_dir / "skipped_clips.csv")
    history = [row for report in reports for row in report["history"]]
    write_csv(run_dir / "history.csv", pd.DataFrame(history))
    plot_training_curves(history, path=run_dir / "training_curves.png", title=config.run_name())
    info = {"modality": "visual", "protocol": config.protocol, "split": prepared.split_name,
            "backbone": config.backbone, "mode": config.mode, "pooling": config.pooling,
            "n_frames": config.n_frames, "checkpoint": str(ledger.checkpoint), "checkpoint_fold": ledger.best["fold"],
            "n_skipped": len(skipped), "faces": face_summary, "crop_cache": str(clips.cache_dir),
            "folds": [{k: v for k, v in r.items() if k != "history"} for r in reports],
            "data_root": str(prepared.data_root)}
    metrics = save_run_outputs(run_dir, predictions, info=info)
    point_latest(config.outputs, STAGE, config.protocol, run_dir)
    return VisualRunResult(run_dir, metrics, ledger.checkpoint)
