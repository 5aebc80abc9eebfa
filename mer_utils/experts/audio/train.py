"""The protocol runner behind ``mer audio train`` and the AUDIO notebooks.

For each fold of the split: fit the backbone on ``train`` (selecting on
``val`` only), predict ``val`` and ``test``, keep the fold's predictions in
``<run>/fold<k>/`` (so a re-run after a disconnect skips finished folds), and
save the checkpoint of the fold with the best validation UA under a stable
name in ``checkpoints/``. Finally write the run folder's metrics, predictions
and confusion matrix, and point ``outputs/audio/latest_<protocol>.json`` at it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from mer_utils.core.atomic_io import write_csv
from mer_utils.experts.audio.backbone import ClipSet
from mer_utils.experts.audio.checkpoint import checkpoint_stem
from mer_utils.experts.audio.config import AudioTrainConfig
from mer_utils.experts.audio.loading import AudioSettings
from mer_utils.experts.fold_ledger import FoldLedger, run_fingerprint
from mer_utils.core.predictions import make_predictions_frame

logger = logging.getLogger(__name__)
STAGE = "audio"
# Fields that change where or how verbosely a run happens, not its results.
_NOT_IN_FINGERPRINT = ("progress", "outputs", "checkpoints", "device", "n_jobs")
_RESUME_FILES = ("train_state.pt", "best_state.pt")


class AudioRunResult(NamedTuple):
    run_dir: Path
    metrics: dict
    checkpoint: Path


def audio_settings(config: AudioTrainConfig) -> AudioSettings:
    return AudioSettings(trim_top_db=config.trim_top_db, max_seconds=config.max_seconds,
                         min_seconds=config.min_seconds)


def make_backbone(config: AudioTrainConfig):
    """The backbone named by ``config`` (acoustic, or a speech model in finetune/frozen mode)."""
    from mer_utils.experts.audio.features import default_cache_dir

    settings = audio_settings(config)
    cache_dir = default_cache_dir(config.outputs)
    if config.is_acoustic:
        from mer_utils.experts.audio.classical import AcousticBackbone

        return AcousticBackbone(feature_set=config.backbone, settings=settings, c_grid=config.c_grid,
                                speaker_norm=config.speaker_norm,
                                cache_dir=cache_dir, n_jobs=config.n_jobs, progress=config.progress,
                                seed=config.seed)
    from mer_utils.experts.audio.ssl_model import HeadConfig

    if config.resolved_mode == "frozen":
        from mer_utils.experts.audio.frozen import FrozenBackbone

        return FrozenBackbone(model_name=config.backbone, probe=config.probe, probe_hidden=config.head_hidden,
                              settings=settings, cache_dir=cache_dir, device=config.device, seed=config.seed,
                              progress=config.progress)
    from mer_utils.experts.audio.ssl_train import FinetuneBackbone, FinetuneSettings

    train_settings = FinetuneSettings(
        epochs=config.epochs, batch_size=config.batch_size, grad_accum=config.grad_accum, lr=config.lr,
        head_lr=config.head_lr, warmup_ratio=config.warmup_ratio, patience=config.patience,
        freeze_feature_encoder=config.freeze_feature_encoder, amp=config.amp,
        save_every_steps=config.save_every_steps, seed=config.seed)
    head = HeadConfig(layer=config.head_layer, pooling=config.pooling, hidden=config.head_hidden)
    return FinetuneBackbone(model_name=config.backbone, head=head, train_settings=train_settings,
                            settings=settings, device=config.device, progress=config.progress)


def fingerprint(config: AudioTrainConfig, prepared) -> str:
    """What a finished fold's results depend on: settings, data and split membership."""
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in _NOT_IN_FINGERPRINT}
    return run_fingerprint(settings, prepared, media="audio")


def _predict_frame(backbone, clips: ClipSet, *, split_name: str, fold: int, subset: str,
                   skipped: list) -> pd.DataFrame:
    proba = backbone.predict_proba(clips)
    ok = np.isfinite(proba).all(axis=1)
    for i in np.flatnonzero(~ok):
        skipped.append({"clip_id": clips.clip_ids[i], "fold": fold, "subset": subset,
                        "reason": backbone.skipped.get(str(clips.paths[i]), "could not be decoded")})
    kept = clips.take(ok)
    return make_predictions_frame(clip_ids=kept.clip_ids, y_true=kept.labels, proba=proba[ok],
                                  split=split_name, fold=fold, subset=subset, modality="audio")


def run_fold(config: AudioTrainConfig, prepared, fold: int, fold_dir: Path) -> tuple[pd.DataFrame, dict, object]:
    """Fit and predict one fold; returns (predictions, report, fitted backbone)."""
    from mer_utils.protocols.splits import fold_subsets

    subsets = fold_subsets(prepared.split, fold)
    clips = {s: ClipSet.from_manifest(prepared.manifest, prepared.data_root, ids) for s, ids in subsets.items()}
    backbone = make_backbone(config)
    if getattr(backbone, "speaker_norm", None):
        # Every usable clip of the corpus, labels unused: see AcousticBackbone.speaker_pool.
        usable = prepared.split["clip_id"].drop_duplicates().tolist()
        backbone.speaker_pool = ClipSet.from_manifest(prepared.manifest, prepared.data_root, usable)
    start = time.perf_counter()
    report = backbone.fit(clips["train"], clips["val"], work_dir=fold_dir)
    fit_s = time.perf_counter() - start
    skipped = [{"clip_id": cid, "fold": fold, "subset": "train", "reason": backbone.skipped[str(p)]}
               for cid, p in zip(clips["train"].clip_ids, clips["train"].paths) if str(p) in backbone.skipped]
    frames = [_predict_frame(backbone, clips[s], split_name=prepared.split_name, fold=fold, subset=s,
                             skipped=skipped) for s in ("val", "test") if len(clips[s])]
    report = {**report, "fold": fold, "fit_seconds": round(fit_s, 2),
              "predict_seconds": round(time.perf_counter() - start - fit_s, 2), "skipped": skipped}
    return pd.concat(frames, ignore_index=True), report, backbone


def _val_ua(frame: pd.DataFrame) -> float:
    from mer_utils.core.metrics import classification_scores

    val = frame[frame["subset"] == "val"]
    return classification_scores(val["y_true"], val["y_pred"])["ua"] if len(val) else float("nan")


def _checkpoint_path(config: AudioTrainConfig, backbone) -> Path:
    family = None
    if not config.is_acoustic:
        family = backbone.model.backbone.config.model_type
    stem = checkpoint_stem(backbone=config.backbone, protocol=config.protocol, mode=config.resolved_mode,
                           family=family)
    return Path(config.checkpoints) / stem


def train_audio(config: AudioTrainConfig | None = None, **overrides) -> AudioRunResult:
    """Run the audio expert under ``config.protocol``; see the module docstring.

    Keyword ``overrides`` replace config fields, e.g.
    ``train_audio(protocol="speaker", backbone="librosa")``.
    """
    from mer_utils.experts.evaluation import save_run_outputs
    from mer_utils.core.runs import new_run_dir, point_latest, set_seed
    from mer_utils.protocols.prepare import prepare_protocol

    config = dataclasses.replace(config or AudioTrainConfig(), **overrides)
    set_seed(config.seed)
    prepared = prepare_protocol(config.data_root, config.protocol, seed=config.seed, outputs=config.outputs,
                                published_dir=config.published_dir, metadata_dir=config.metadata_dir,
                                n_folds=config.folds, progress=config.progress)
    run_dir = new_run_dir(config.outputs, STAGE, config.run_name(), config)
    ledger = FoldLedger(run_dir, fingerprint(config, prepared), prepared.split_name)
    frames, reports = [], []
    for fold in sorted(int(f) for f in prepared.split["fold"].unique()):
        done = ledger.finished(fold)
        if done is not None:
            logger.info("fold %s already done; reusing its predictions", fold)
            frames.append(done.predictions)
            reports.append(done.report)
            continue
        fold_dir = ledger.fold_dir(fold)
        frame, report, backbone = run_fold(config, prepared, fold, fold_dir)
        ledger.offer_best(fold, _val_ua(frame), lambda: backbone.save(_checkpoint_path(config, backbone)))
        ledger.record(fold, frame, report)
        # Fine-tuning resume state (optimizer included: ~3x the model) is only
        # needed until the fold is done; the kept model is in checkpoints/.
        for name in _RESUME_FILES:
            (fold_dir / name).unlink(missing_ok=True)
        frames.append(frame)
        reports.append(report)
    predictions = pd.concat(frames, ignore_index=True)
    skipped = _write_skipped(run_dir, prepared, reports)
    info = {"modality": "audio", "protocol": config.protocol, "split": prepared.split_name,
            "backbone": config.backbone, "mode": config.resolved_mode, "checkpoint": str(ledger.checkpoint),
            "checkpoint_fold": ledger.best["fold"], "n_skipped": len(skipped), "folds": reports,
            "data_root": str(prepared.data_root)}
    metrics = save_run_outputs(run_dir, predictions, info=info)
    point_latest(config.outputs, STAGE, config.protocol, run_dir)
    return AudioRunResult(run_dir, metrics, ledger.checkpoint)


def _write_skipped(run_dir: Path, prepared, reports: list[dict]) -> pd.DataFrame:
    """Clips left out (broken in the manifest, or undecodable at run time), with why."""
    rows = [{"clip_id": r["clip_id"], "fold": "", "subset": "", "reason": f"manifest: {r['reason']}"}
            for r in prepared.split.attrs.get("info", {}).get("excluded", [])]
    rows += [row for report in reports for row in report.get("skipped", [])]
    frame = pd.DataFrame(rows, columns=["clip_id", "fold", "subset", "reason"])
    write_csv(run_dir / "skipped_clips.csv", frame)
    if len(frame):
        logger.warning("%d clips skipped (broken or undecodable audio); see %s", len(frame),
                       run_dir / "skipped_clips.csv")
    return frame
