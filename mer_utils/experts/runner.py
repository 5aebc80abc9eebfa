"""The one protocol runner behind every expert: per fold the plug-in (:class:`Expert`) fits and predicts, finished
folds are kept for a re-run, the best model is published to ``checkpoints/``; on N processes only rank 0 writes."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Callable, NamedTuple, Protocol, Sequence

import pandas as pd

from mer_utils.core.adaptation import adaptation_of, pointer_key
from mer_utils.core.atomic_io import read_json, write_csv, write_json
from mer_utils.core.checkpoint_index import register_checkpoint
from mer_utils.core.evaluation import save_run_outputs
from mer_utils.core.metrics import classification_scores
from mer_utils.core.predictions import labels_of, read_predictions, write_predictions
from mer_utils.core.run_lock import lock_run_dir, releasing_run_locks
from mer_utils.core.runs import corpus_key, frame_digest, new_run_dir, point_latest, safe_name, set_seed
from mer_utils.experts import distributed

logger = logging.getLogger(__name__)


class FoldResult(NamedTuple):
    predictions: pd.DataFrame  # val and test rows of the fold, contract columns
    report: dict  # JSON-able: what was chosen, timings, skipped clips
    save: Callable[[Path], Path]  # writes the fold's model at a path stem, returns the main file


class RunResult(NamedTuple):
    run_dir: Path
    metrics: dict  # empty while other processes' folds are pending
    checkpoint: Path | None
    pending: tuple = ()  # folds left to other processes (--run-folds)


class Expert(Protocol):
    """What the runner needs from an expert plug-in (see :mod:`mer_utils.experts.audio.train`)."""

    stage: str  # "audio" / "visual": the outputs/<stage>/ folder and the predictions' modality
    config: object  # the stage's dataclass (config.json)
    resume_files: tuple  # per-fold resume state, deleted once a fold is done

    def settings(self) -> dict: ...  # the options that change results (the run folder's hash)
    def begin(self, prepared) -> None: ...  # once per run, before the folds (e.g. load face crops)
    def fit_fold(self, prepared, fold: int, fold_dir: Path) -> FoldResult: ...
    def stable_name(self, prepared) -> str: ...  # the checkpoint's name in checkpoints/ (no suffix)
    def run_info(self, prepared, reports: list[dict]) -> dict: ...  # extra metrics.json fields
    def finish(self, run_dir: Path, reports: list[dict]) -> None: ...  # extra artefacts (figures)


class FoldLedger:
    """Which folds of a run are finished, and which fold's model is kept."""

    def __init__(self, run_dir: Path, *, split: str, labels: Sequence[str], modality: str):
        self.run_dir = Path(run_dir)
        # What the run's fold predictions must be: the reader refuses anything else, naming the file.
        self._expected = {"expected_split": split, "expected_labels": tuple(labels), "expected_modality": modality}

    def fold_dir(self, fold: int) -> Path:
        return self.run_dir / f"fold{fold}"

    def is_done(self, fold: int) -> bool:
        return (self.fold_dir(fold) / "done.json").exists() and (self.fold_dir(fold) / "predictions.csv").exists()

    def finished(self, fold: int) -> tuple[pd.DataFrame, dict]:
        """A done fold's predictions (checked by the reader) and report."""
        return (read_predictions(self.fold_dir(fold) / "predictions.csv", **self._expected),
                read_json(self.fold_dir(fold) / "done.json")["report"])

    @property
    def best(self) -> dict:
        """Read each time: processes running other folds (``--run-folds``) may have moved it."""
        path = self.run_dir / "best_fold.json"
        return read_json(path) if path.exists() else {}

    def offer_best(self, fold: int, val_ua: float, save: Callable[[], Path]) -> None:
        """Keep this fold's model (``save()`` writes it) if its validation UA is the best so far."""
        best = self.best
        if "checkpoint" not in best or val_ua > best["val_ua"]:
            write_json(self.run_dir / "best_fold.json", {"checkpoint": str(save()), "fold": int(fold),
                                                          "val_ua": float(val_ua)})

    def record(self, fold: int, predictions: pd.DataFrame, report: dict) -> None:
        """Mark the fold done (predictions first, so done.json never points at nothing)."""
        write_predictions(self.fold_dir(fold) / "predictions.csv", predictions)
        write_json(self.fold_dir(fold) / "done.json", {"report": report})


def val_ua(frame: pd.DataFrame) -> float:
    val = frame[frame["subset"] == "val"]
    return (classification_scores(val["y_true"], val["y_pred"], labels=labels_of(frame))["ua"] if len(val)
            else float("nan"))


@releasing_run_locks
def run_protocol(expert: Expert, prepare: Callable[[], object]) -> RunResult:
    """Run ``expert`` over every fold of the split ``prepare()`` returns. With ``config.run_folds`` this process
    trains only those folds; the process that finds every fold finished writes the run's results."""
    config = expert.config
    set_seed(config.seed)
    with distributed.main_process_first():
        prepared = prepare()
    key = corpus_key(prepared.corpus.name, prepared.manifest)
    # The split follows from the manifest and the settings, but a split re-made under the same name (published
    # files replaced, another version of the toolkit) must not reuse folds of the old one: it is in the key.
    split = f"{prepared.split_name}-{frame_digest(prepared.split[['clip_id', 'fold', 'subset']])}"
    settings = {**expert.settings(), "split": split}
    folds = sorted(int(f) for f in prepared.split["fold"].unique())
    chosen = tuple(getattr(config, "run_folds", ()) or ())
    if unknown := sorted(set(chosen) - set(folds)):
        raise ValueError(f"--run-folds {' '.join(map(str, unknown))}: the split {prepared.split_name} has folds "
                         f"{folds}")
    # Each process locks the folds it trains: other folds of the run may train in other processes.
    locks = [f"fold{f}" for f in (chosen or folds)]
    run_dir = None
    if distributed.is_main_process():  # its env.json names the process layout
        run_dir = new_run_dir(config.outputs, expert.stage, config.run_name(), config, corpus_key=key,
                              settings=settings, lock_parts=locks)
        env = {**read_json(run_dir / "env.json"), "num_processes": distributed.world_size(),
               "launcher": "accelerate/torchrun" if distributed.is_distributed() else "none"}
        write_json(run_dir / "env.json", env)
    run_dir = distributed.broadcast(run_dir)
    with distributed.main_process_first():
        expert.begin(prepared)
    ledger = FoldLedger(run_dir, split=prepared.split_name, labels=prepared.labels, modality=expert.stage)
    partial = bool(chosen) and set(chosen) != set(folds)
    for fold in folds:
        if ledger.is_done(fold):
            logger.info("fold %s already done; reusing its predictions", fold)
            continue
        if chosen and fold not in chosen:
            continue  # another process's fold (--run-folds)
        _train_fold(expert, prepared, ledger, fold, run_dir, keep_fold_model=partial)
    pending = [f for f in folds if not ledger.is_done(f)]  # others' folds may have finished meanwhile
    if pending:
        logger.info("folds %s of %s done; folds %s still to run (other --run-folds); the process that finishes "
                    "the last fold writes the run's metrics", list(chosen), run_dir, pending)
        return RunResult(run_dir, {}, None, tuple(pending))
    result = None
    if distributed.is_main_process():
        lock_run_dir(run_dir, "finish", wait_s=600)  # two processes ending their folds at once finish in turn
        result = _finish_run(expert, prepared, ledger, run_dir, key, folds)
    return distributed.broadcast(result)


def _train_fold(expert: Expert, prepared, ledger: FoldLedger, fold: int, run_dir: Path, *,
                keep_fold_model: bool) -> None:
    """One fold on every process; its records written by the main process."""
    fold_dir = ledger.fold_dir(fold)
    if distributed.is_main_process():
        fold_dir.mkdir(parents=True, exist_ok=True)
    distributed.wait_for_everyone()
    result = expert.fit_fold(prepared, fold, fold_dir)
    if distributed.is_main_process():
        report = result.report
        if keep_fold_model:
            # Folds run by other processes: the best one is chosen when all are done (no race on best_model).
            report = {**report, "fold_model": str(result.save(fold_dir / "fold_model"))}
        else:
            ledger.offer_best(fold, val_ua(result.predictions), lambda: result.save(run_dir / "best_model"))
        ledger.record(fold, result.predictions, report)
        # Resume state (a fine-tune's optimizer: ~3x the model) is only needed until the fold is done.
        for name in expert.resume_files:
            path = fold_dir / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    distributed.wait_for_everyone()


def _finish_run(expert: Expert, prepared, ledger: FoldLedger, run_dir: Path, key: str, folds: list) -> RunResult:
    """Metrics, predictions, best checkpoint, index and pointers of a run whose folds are all done."""
    config = expert.config
    frames, reports = zip(*(ledger.finished(fold) for fold in folds))
    for fold, frame, report in zip(folds, frames, reports):
        model = Path(report.get("fold_model", ""))
        if model.is_file():
            ledger.offer_best(fold, val_ua(frame), lambda m=model: _copy_model(m, run_dir / "best_model"))
    predictions = pd.concat(frames, ignore_index=True)
    skipped = _write_skipped(run_dir, prepared, reports)
    info = {"modality": expert.stage, "protocol": config.protocol, "split": prepared.split_name,
            "corpus": prepared.corpus.name, "corpus_key": key, "synthetic": prepared.corpus.synthetic,
            "n_clips": int(prepared.split["clip_id"].nunique()),
            "n_speakers": int(prepared.manifest.loc[prepared.manifest["clip_id"].isin(prepared.split["clip_id"]),
                                                    "actor_id"].nunique()),
            "checkpoint": ledger.best["checkpoint"], "checkpoint_fold": ledger.best["fold"],
            "n_skipped": len(skipped), **expert.run_info(prepared, reports), "data_root": str(prepared.data_root)}
    info["folds"] = [{k: v for k, v in r.items() if k != "history"} for r in reports]
    metrics = save_run_outputs(run_dir, predictions, info=info)
    expert.finish(run_dir, reports)
    checkpoint = publish_checkpoint(expert, prepared, run_dir, ledger, metrics)
    point_latest(config.outputs, expert.stage, pointer_key(config.protocol, adaptation_of(metrics)), run_dir,
                 corpus_key=key)
    return RunResult(run_dir, metrics, checkpoint)


def _copy_model(source: Path, stem: Path) -> Path:
    """Copy a saved model (every ``<stem>.*`` part) to ``stem``; returns the main file."""
    for part in sorted(source.parent.glob(f"{source.stem}.*")):
        shutil.copyfile(part, stem.with_suffix(part.suffix))
    return stem.with_suffix(source.suffix)


def publish_checkpoint(expert: Expert, prepared, run_dir: Path, ledger: FoldLedger, metrics: dict) -> Path:
    """Copy the run's best model to its stable name in ``checkpoints/`` (``<corpus>/`` but CREMA-D's) and index it."""
    from mer_utils.protocols.splits import SPEAKER_INDEPENDENT
    config, source = expert.config, Path(ledger.best["checkpoint"])
    folder = Path(config.checkpoints) / ("" if prepared.corpus.name == "cremad" else safe_name(prepared.corpus.name))
    stem = folder / expert.stable_name(prepared)
    folder.mkdir(parents=True, exist_ok=True)
    target = _copy_model(source, stem)
    summary = metrics["summary"]
    register_checkpoint(
        config.checkpoints, modality=expert.stage, protocol=config.protocol, path=target,
        corpus=prepared.corpus.to_dict(), corpus_key=str(metrics["corpus_key"]),
        speaker_independent=SPEAKER_INDEPENDENT.get(config.protocol, False), split=prepared.split_name,
        backbone=metrics.get("backbone"), mode=metrics.get("mode"), adaptation=adaptation_of(metrics),
        run_dir=str(run_dir.resolve()),
        run_checkpoint=str(source.resolve()), val_ua=summary.get("val", {}).get("ua", {}).get("mean"),
        test_ua=summary.get("test", {}).get("ua", {}).get("mean"), n_clips=metrics.get("n_clips"),
        n_speakers=metrics.get("n_speakers"), git_commit=read_json(run_dir / "env.json").get("git_commit"))
    logger.info("best %s checkpoint of %s: %s (indexed in %s/index.json)", expert.stage, run_dir, target,
                config.checkpoints)
    return target


def _write_skipped(run_dir: Path, prepared, reports: list[dict]) -> pd.DataFrame:
    """Clips left out (broken in the manifest, or undecodable at run time), with why."""
    rows = [{"clip_id": r["clip_id"], "fold": "", "subset": "", "reason": f"manifest: {r['reason']}"}
            for r in prepared.split.attrs.get("info", {}).get("excluded", [])]
    rows += [row for report in reports for row in report.get("skipped", [])]
    frame = pd.DataFrame(rows, columns=["clip_id", "fold", "subset", "reason"])
    write_csv(run_dir / "skipped_clips.csv", frame)
    if len(frame):
        logger.warning("%d clips skipped (broken or undecodable media); see %s", len(frame),
                       run_dir / "skipped_clips.csv")
    return frame
