"""The audio expert as a plug-in of the protocol runner (:mod:`mer_utils.experts.runner`): ``mer audio train``
and the AUDIO notebooks. Per fold the backbone is fitted on ``train``, selects on ``val`` only, and predicts
``val`` and ``test``; the runner does the rest."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mer_utils.core.predictions import make_predictions_frame
from mer_utils.experts.audio.checkpoint import checkpoint_stem
from mer_utils.experts.audio.classical import AcousticBackbone
from mer_utils.experts.audio.config import AudioTrainConfig
from mer_utils.experts.audio.features import default_cache_dir
from mer_utils.experts.audio.loading import AudioSettings, ClipSet
from mer_utils.experts.runner import Expert, FoldResult, RunResult, run_protocol
from mer_utils.protocols.prepare import prepare_protocol
from mer_utils.protocols.splits import fold_subsets


def make_backbone(config: AudioTrainConfig, labels: tuple[str, ...]):
    """The backbone named by ``config`` (acoustic, or a speech model in finetune/frozen mode) over ``labels``."""
    settings = AudioSettings(trim_top_db=config.trim_top_db, max_seconds=config.max_seconds,
                             min_seconds=config.min_seconds)
    cache_dir = default_cache_dir(config.outputs)
    if config.is_acoustic:
        return AcousticBackbone(feature_set=config.backbone, settings=settings, c_grid=config.c_grid,
                                adapt=config.adapt, refit=config.refit, labels=labels, cache_dir=cache_dir,
                                n_jobs=config.n_jobs, progress=config.progress, seed=config.seed)
    from mer_utils.experts.audio.ssl_model import HeadConfig

    if config.resolved_mode == "frozen":
        from mer_utils.experts.audio.frozen import FrozenBackbone

        return FrozenBackbone(model_name=config.backbone, probe=config.probe, probe_hidden=config.head_hidden,
                              settings=settings, cache_dir=cache_dir, device=config.device, seed=config.seed,
                              progress=config.progress, labels=labels)
    from mer_utils.experts.audio.ssl_train import FinetuneBackbone

    layer = config.layer if config.layer == "weighted" else int(config.layer)
    head = HeadConfig(layer=layer, pooling=config.pooling, hidden=config.head_hidden)
    return FinetuneBackbone(config, head=head, settings=settings, labels=labels)


def check_adaptation_fits(adapt: str, corpus) -> None:
    """``balanced`` (prior matching) assumes every speaker recorded every emotion alike: refused elsewhere."""
    if adapt == "balanced" and not corpus.balanced_speakers:
        raise ValueError(f"--adapt balanced matches each speaker's predictions to the training class prior, which "
                         f"assumes every speaker was recorded in every emotion alike; corpus {corpus.name!r} does "
                         "not declare so (CorpusInfo.balanced_speakers). Use --adapt speaker or none.")


def _predict_frame(backbone, clips: ClipSet, *, labels, split_name: str, fold: int, subset: str,
                   skipped: list) -> pd.DataFrame:
    # An acoustic backbone refitted on train+val predicts val with its train-only model (out-of-sample).
    proba = backbone.predict_proba(clips, subset=subset) if hasattr(backbone, "held_out") else \
        backbone.predict_proba(clips)
    ok = np.isfinite(proba).all(axis=1)
    for i in np.flatnonzero(~ok):
        skipped.append({"clip_id": clips.clip_ids[i], "fold": fold, "subset": subset,
                        "reason": backbone.skipped.get(str(clips.paths[i]), "could not be decoded")})
    kept = clips.take(ok)
    return make_predictions_frame(clip_ids=kept.clip_ids, y_true=kept.labels, proba=proba[ok], labels=labels,
                                  split=split_name, fold=fold, subset=subset, modality="audio")


@dataclasses.dataclass
class AudioExpert(Expert):
    """The runner's audio plug-in (``begin`` and ``finish`` do nothing)."""

    config: AudioTrainConfig
    stage: str = "audio"
    resume_files: tuple = ("train_state",)  # a fine-tune's Trainer checkpoints
    family: str | None = None  # the speech model's family (wav2vec2, hubert, wavlm ...), once one is built

    def settings(self) -> dict:
        return self.config.result_settings()

    def fit_fold(self, prepared, fold: int, fold_dir: Path) -> FoldResult:
        subsets = fold_subsets(prepared.split, fold)
        clips = {s: ClipSet.from_manifest(prepared.manifest, prepared.data_root, ids, labels=prepared.labels)
                 for s, ids in subsets.items()}
        backbone = make_backbone(self.config, prepared.labels)
        if getattr(backbone, "uses_speaker_pool", False):
            # Every usable clip of the corpus, labels unused: see AcousticBackbone.speaker_pool.
            usable = prepared.split["clip_id"].drop_duplicates().tolist()
            backbone.speaker_pool = ClipSet.from_manifest(prepared.manifest, prepared.data_root, usable,
                                                          labels=prepared.labels)
        start = time.perf_counter()
        report = backbone.fit(clips["train"], clips["val"], work_dir=fold_dir)
        fit_s = time.perf_counter() - start
        skipped = [{"clip_id": cid, "fold": fold, "subset": "train", "reason": backbone.skipped[str(p)]}
                   for cid, p in zip(clips["train"].clip_ids, clips["train"].paths) if str(p) in backbone.skipped]
        frames = [_predict_frame(backbone, clips[s], labels=prepared.labels, split_name=prepared.split_name,
                                 fold=fold, subset=s, skipped=skipped) for s in ("val", "test") if len(clips[s])]
        report = {**report, "fold": fold, "fit_seconds": round(fit_s, 2),
                  "predict_seconds": round(time.perf_counter() - start - fit_s, 2), "skipped": skipped}
        if not self.config.is_acoustic:
            report["family"] = self.family = backbone.model.backbone.config.model_type
        return FoldResult(pd.concat(frames, ignore_index=True), report, backbone.save)

    def stable_name(self, prepared) -> str:
        return checkpoint_stem(backbone=self.config.backbone, protocol=self.config.protocol,
                               mode=self.config.resolved_mode, family=self.family, adapt=self.config.adapt)

    def run_info(self, prepared, reports: list[dict]) -> dict:
        # A run whose folds all resumed has built no model: its family is in the fold reports.
        self.family = self.family or next((r["family"] for r in reports if r.get("family")), None)
        return {"backbone": self.config.backbone, "mode": self.config.resolved_mode, "family": self.family,
                "adaptation": self.config.adapt}


def train_audio(config: AudioTrainConfig | None = None, **overrides) -> RunResult:
    """Run the audio expert under ``config.protocol``; ``overrides`` replace config fields (``backbone="librosa"``)."""
    config = dataclasses.replace(config or AudioTrainConfig(), **overrides)

    def prepare():
        prepared = prepare_protocol(
            config.data_root, config.protocol, seed=config.seed, outputs=config.outputs,
            published_dir=config.published_dir, metadata_dir=config.metadata_dir, n_folds=config.folds,
            progress=config.progress, dataset=config.dataset, all_emotions=config.all_emotions)
        check_adaptation_fits(config.adapt, prepared.corpus)  # before a run folder exists
        return prepared

    return run_protocol(AudioExpert(config), prepare)
