"""The one protocol runner behind every expert (``mer audio train``, ``mer visual train``, the notebooks).

For each fold of the split: the expert plug-in fits on ``train`` (selecting
on ``val`` only) and predicts ``val`` and ``test``; the fold's predictions are
kept in ``<run>/fold<k>/`` so a re-run after a disconnect skips finished folds;
the model of the fold with the best validation UA is kept as the run's
``best_model.*``. Then the run folder gets its metrics, predictions, confusion
matrix and skipped-clip list; ``latest_<protocol>`` pointers move to it; the
best checkpoint is copied to its stable name in ``checkpoints/`` and recorded
in the checkpoint index (:mod:`mer_utils.core.checkpoint_index`).

A plug-in (:class:`Expert`) supplies what differs between modalities. The
run folder is addressed by the corpus (name + manifest hash) and the
settings that change results (:func:`mer_utils.core.runs.new_run_dir`).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path
from typing import Callable, NamedTuple, Protocol

import pandas as pd

from mer_utils.core.atomic_io import write_csv
from mer_utils.experts.fold_ledger import FoldLedger, run_fingerprint
from mer_utils.core.run_lock import releasing_run_locks

logger = logging.getLogger(__name__)
_CORPUS_COLUMNS = ("clip_id", "actor_id", "emotion", "audio_path", "video_path", "audio_status", "video_status",
                   "duration_s")
SKIPPED_COLUMNS = ["clip_id", "fold", "subset", "reason"]


class FoldResult(NamedTuple):
    predictions: pd.DataFrame  # val and test rows of the fold, contract columns
    report: dict  # JSON-able: what was chosen, timings, skipped clips
    save: Callable[[Path], Path]  # writes the fold's model at a path stem, returns the main file


class RunResult(NamedTuple):
    run_dir: Path
    metrics: dict
    checkpoint: Path


class Expert(Protocol):
    """What the runner needs from an expert plug-in (see :mod:`mer_utils.experts.audio.train`)."""

    stage: str  # "audio" / "visual": the outputs/<stage>/ folder and the predictions' modality
    media: str  # the manifest's media column the expert reads ("audio" / "video")
    config: object  # the stage's dataclass (config.json)
    resume_files: tuple  # per-fold resume state, deleted once a fold is done

    def settings(self) -> dict: ...  # the options that change results (the run folder's hash)
    def begin(self, prepared) -> None: ...  # once per run, before the folds (e.g. load face crops)
    def fit_fold(self, prepared, fold: int, fold_dir: Path) -> FoldResult: ...
    def stable_name(self, prepared) -> str: ...  # the checkpoint's name in checkpoints/ (no suffix)
    def run_info(self, prepared, reports: list[dict]) -> dict: ...  # extra metrics.json fields
    def finish(self, run_dir: Path, reports: list[dict]) -> None: ...  # extra artefacts (figures)


def corpus_key(prepared) -> str:
    """``<corpus>-<hash of the manifest's clips, labels, speakers and media>``: runs on other data never share a folder."""
    frame = prepared.manifest.loc[:, [c for c in _CORPUS_COLUMNS if c in prepared.manifest.columns]].astype(str)
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()).hexdigest()[:8]
    return f"{prepared.corpus.name}-{digest}"


def val_ua(frame: pd.DataFrame) -> float:
    from mer_utils.core.metrics import classification_scores
    from mer_utils.core.predictions import labels_of

    val = frame[frame["subset"] == "val"]
    return classification_scores(val["y_true"], val["y_pred"], labels=labels_of(frame))["ua"] if len(val) else float("nan")


@releasing_run_locks
def run_protocol(expert: Expert, prepare: Callable[[], object]) -> RunResult:
    """Run ``expert`` over every fold of the split ``prepare()`` returns; see the module docstring."""
    from mer_utils.core.evaluation import save_run_outputs
    from mer_utils.core.runs import new_run_dir, point_latest, set_seed

    config = expert.config
    set_seed(config.seed)
    prepared = prepare()
    key = corpus_key(prepared)
    settings = expert.settings()
    run_dir = new_run_dir(config.outputs, expert.stage, config.run_name(), config, corpus_key=key,
                          settings=settings)
    expert.begin(prepared)
    ledger = FoldLedger(run_dir, run_fingerprint(settings, prepared, media=expert.media), prepared.split_name)
    frames, reports = [], []
    for fold in sorted(int(f) for f in prepared.split["fold"].unique()):
        done = ledger.finished(fold)
        if done is not None:
            logger.info("fold %s already done; reusing its predictions", fold)
            frames.append(done.predictions)
            reports.append(done.report)
            continue
        fold_dir = ledger.start_fold(fold)
        result = expert.fit_fold(prepared, fold, fold_dir)
        ledger.offer_best(fold, val_ua(result.predictions), lambda: result.save(run_dir / "best_model"))
        ledger.record(fold, result.predictions, result.report)
        # Resume state (a fine-tune's optimizer: ~3x the model) is only needed until the fold is done.
        for name in expert.resume_files:
            (fold_dir / name).unlink(missing_ok=True)
        frames.append(result.predictions)
        reports.append(result.report)
    predictions = pd.concat(frames, ignore_index=True)
    skipped = _write_skipped(run_dir, prepared, reports)
    info = {"modality": expert.stage, "protocol": config.protocol, "split": prepared.split_name,
            "corpus": prepared.corpus.name, "corpus_key": key, "synthetic": prepared.corpus.synthetic,
            "n_clips": int(prepared.split["clip_id"].nunique()),
            "n_speakers": int(prepared.manifest.loc[prepared.manifest["clip_id"].isin(prepared.split["clip_id"]),
                                                    "actor_id"].nunique()),
            "checkpoint": str(ledger.checkpoint), "checkpoint_fold": ledger.best["fold"],
            "n_skipped": len(skipped), **expert.run_info(prepared, reports), "data_root": str(prepared.data_root)}
    info["folds"] = [{k: v for k, v in r.items() if k != "history"} for r in reports]
    metrics = save_run_outputs(run_dir, predictions, info=info)
    expert.finish(run_dir, reports)
    checkpoint = publish_checkpoint(expert, prepared, run_dir, ledger, metrics)
    point_latest(config.outputs, expert.stage, config.protocol, run_dir, corpus_key=key)
    return RunResult(run_dir, metrics, checkpoint)


def publish_checkpoint(expert: Expert, prepared, run_dir: Path, ledger: FoldLedger, metrics: dict) -> Path:
    """Copy the run's best model to its stable name in ``checkpoints/`` and record it in the index.

    CREMA-D checkpoints keep the names users know (``best_wav2vec2_speaker_indep.pt``,
    ``best_visual_model.*``); other corpora's go to ``checkpoints/<corpus>/``.
    """
    from mer_utils.core.checkpoint_index import register_checkpoint
    from mer_utils.core.runs import safe_name
    from mer_utils.protocols.splits import SPEAKER_INDEPENDENT

    config, source = expert.config, ledger.checkpoint
    folder = Path(config.checkpoints)
    if prepared.corpus.name != "cremad":
        folder = folder / safe_name(prepared.corpus.name)
    stem = folder / expert.stable_name(prepared)
    folder.mkdir(parents=True, exist_ok=True)
    target = stem.with_suffix(source.suffix)
    for part in sorted(source.parent.glob(f"{source.stem}.*")):
        shutil.copyfile(part, stem.with_suffix(part.suffix))
    summary = metrics["summary"]
    register_checkpoint(
        config.checkpoints, modality=expert.stage, protocol=config.protocol, path=target,
        corpus=prepared.corpus.to_dict(), corpus_key=str(metrics["corpus_key"]),
        speaker_independent=SPEAKER_INDEPENDENT.get(config.protocol, False), split=prepared.split_name,
        backbone=metrics.get("backbone"), mode=metrics.get("mode"), run_dir=str(run_dir.resolve()),
        run_checkpoint=str(source.resolve()), val_ua=summary.get("val", {}).get("ua", {}).get("mean"),
        test_ua=summary.get("test", {}).get("ua", {}).get("mean"), n_clips=metrics.get("n_clips"),
        n_speakers=metrics.get("n_speakers"), git_commit=_commit(run_dir))
    logger.info("best %s checkpoint of %s: %s (indexed in %s/index.json)", expert.stage, run_dir, target,
                config.checkpoints)
    return target


def _commit(run_dir: Path) -> str | None:
    from mer_utils.core.atomic_io import read_json

    env = run_dir / "env.json"
    return read_json(env).get("git_commit") if env.exists() else None


def _write_skipped(run_dir: Path, prepared, reports: list[dict]) -> pd.DataFrame:
    """Clips left out (broken in the manifest, or undecodable at run time), with why."""
    rows = [{"clip_id": r["clip_id"], "fold": "", "subset": "", "reason": f"manifest: {r['reason']}"}
            for r in prepared.split.attrs.get("info", {}).get("excluded", [])]
    rows += [row for report in reports for row in report.get("skipped", [])]
    frame = pd.DataFrame(rows, columns=SKIPPED_COLUMNS)
    write_csv(run_dir / "skipped_clips.csv", frame)
    if len(frame):
        logger.warning("%d clips skipped (broken or undecodable media); see %s", len(frame),
                       run_dir / "skipped_clips.csv")
    return frame
