"""Cross-corpus SER: the one acoustic model trained on one corpus (choices on its validation actors), tested on
every usable clip of another, over the emotions both share (``protocol="cross:<source>-><target>"``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from mer_utils.core.adaptation import ADAPTATIONS, DEFAULT_ADAPTATION, pointer_key
from mer_utils.core.config import field as _f
from mer_utils.core.evaluation import save_run_outputs
from mer_utils.core.predictions import make_predictions_frame
from mer_utils.core.run_lock import releasing_run_locks
from mer_utils.core.runs import new_run_dir, point_latest, safe_name, set_seed
from mer_utils.data.manifest import corpus_info, media_path, prepare_manifest
from mer_utils.experts.audio import DEFAULT_BACKBONE
from mer_utils.experts.audio.classical import recipe_for
from mer_utils.experts.audio.config import AudioTrainConfig
from mer_utils.experts.audio.features import default_cache_dir, feature_blocks
from mer_utils.experts.audio.train import check_adaptation_fits
from mer_utils.experts.audio.variants import Recipe, fit_recipe_held_out, predict_recipe
from mer_utils.protocols.splits import actor_table, split_actors, usable_clips


@dataclasses.dataclass
class CrossCorpusConfig:
    """Settings of one cross-corpus run (saved as the run's config.json)."""

    source_root: str = _f(dataclasses.MISSING, "training corpus (any layout a reader knows, or a corpus CSV)")
    target_root: str = _f(dataclasses.MISSING, "test corpus")
    source_name: str = _f("cremad", "name of the training corpus in the protocol label")
    target_name: str = _f("ravdess", "name of the test corpus in the protocol label")
    source_metadata_dir: str | None = _f(None, "VideoDemographics.csv folder if the CREMA-D root lacks it")
    backbone: str = _f(DEFAULT_BACKBONE, "offline feature sets, as `mer audio train --backbone` spells them")
    adapt: str = _f(DEFAULT_ADAPTATION, "how a target clip is scored: none (alone, the default), speaker (each "
                                         "corpus's speakers z-scored with their own clips) or balanced (+ sentence "
                                         "z-score and the source class prior per target speaker; both corpora must "
                                         "declare balanced speakers)", choices=ADAPTATIONS)
    refit: bool = _f(True, "refit the chosen C on source train+val for the test predictions")
    val_size: float = _f(0.2, "fraction of source actors held out to choose C")
    seed: int = _f(0, "seed of the validation actors and the classifiers")
    outputs: str = _f("outputs", "folder for run folders and caches")
    cache_dir: str | None = _f(None, "feature cache (None: <outputs>/cache/audio_features)")

    @property
    def protocol(self) -> str:
        return f"cross:{self.source_name}->{self.target_name}"

    def recipe(self) -> Recipe:
        return recipe_for(self.backbone, adapt=self.adapt, refit=self.refit)

    upgrade_config = AudioTrainConfig.upgrade_config  # a config.json from before `adapt` (--config replay)


def shared_emotions(source: pd.DataFrame, target: pd.DataFrame) -> list[str]:
    """Emotions present in both manifests, in the source corpus's label order.

    >>> shared_emotions(pd.DataFrame({"emotion": ["SAD", "ANG", "HAP"]}),
    ...                 pd.DataFrame({"emotion": ["SAD", "CAL", "ANG"]}))
    ['ANG', 'SAD']
    """
    order = corpus_info(source).labels if source.attrs.get("corpus") else tuple(sorted(set(source["emotion"])))
    both = set(source["emotion"]) & set(target["emotion"])
    shared = [e for e in order if e in both]
    if len(shared) < 2:
        raise ValueError(f"the corpora share {shared or 'no'} emotions; cross-corpus scoring needs at least two")
    return shared


def source_val_split(clips: pd.DataFrame, *, val_size: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training and validation clips of the source corpus, by whole actors (sex-balanced)."""
    actors = actor_table(clips)
    if len(actors) < 2:
        raise ValueError(f"the source corpus has {len(actors)} actor(s); a validation actor needs at least two")
    train_ids, val_ids = split_actors(actors, val_size, seed)
    return clips[clips["actor_id"].isin(train_ids)], clips[clips["actor_id"].isin(val_ids)]


def _usable(manifest: pd.DataFrame, emotions: list[str]) -> pd.DataFrame:
    clips, _ = usable_clips(manifest, require=("audio",))
    return clips[clips["emotion"].isin(emotions)].reset_index(drop=True)


@releasing_run_locks
def run_cross_corpus(config: CrossCorpusConfig, *, progress: bool = True) -> Path:
    """Train on ``config.source_root``, test on ``config.target_root``; returns the run folder."""
    set_seed(config.seed)
    outputs = Path(config.outputs)
    cache_dir = Path(config.cache_dir) if config.cache_dir else default_cache_dir(outputs)
    source = prepare_manifest(config.source_root, metadata_dir=config.source_metadata_dir, outputs=outputs,
                              progress=progress)
    target = prepare_manifest(config.target_root, outputs=outputs, progress=progress)
    for manifest in (source, target):  # prior matching rescales target speakers to the source prior
        check_adaptation_fits(config.adapt, corpus_info(manifest))
    emotions = shared_emotions(source, target)
    train_clips, val_clips = source_val_split(_usable(source, emotions), val_size=config.val_size, seed=config.seed)
    recipe, skipped = config.recipe(), []

    def block(clips: pd.DataFrame, root: str) -> dict:
        X, ok, bad = feature_blocks([media_path(root, p) for p in clips["audio_path"]], recipe.base_feature_sets,
                                    cache_dir=cache_dir, progress=progress)
        skipped.extend(bad)  # reported in metrics.json, never dropped silently
        return {"X": {k: v[ok] for k, v in X.items()}, "y": clips["emotion"].map(emotions.index).to_numpy()[ok],
                "speakers": clips["actor_id"].to_numpy()[ok], "clip_ids": clips["clip_id"].to_numpy()[ok].tolist(),
                "sentences": clips["sentence"].to_numpy(dtype=object)[ok] if "sentence" in clips.columns else None}

    data = {"train": block(train_clips, config.source_root), "val": block(val_clips, config.source_root),
            "test": block(_usable(target, emotions), config.target_root)}
    models, held_out, report = fit_recipe_held_out(recipe, data["train"], data["val"], seed=config.seed,
                                                   labels=tuple(emotions))

    split_name = f"cross_{config.source_name}-{config.target_name}_seed{config.seed}"
    frames = []
    for subset in ("val", "test"):
        # Validation from the train-only models: out-of-sample even when the test models were refitted.
        proba = predict_recipe(held_out if subset == "val" else models, recipe, data[subset]["X"],
                               data[subset]["speakers"], sentences=data[subset]["sentences"])
        frames.append(make_predictions_frame(clip_ids=data[subset]["clip_ids"],
                                             y_true=[emotions[i] for i in data[subset]["y"]], proba=proba,
                                             labels=emotions, split=split_name, fold=0, subset=subset, modality="audio"))
    run_name = (f"cross_{config.source_name}-{config.target_name}_{recipe.name.replace(' ', '_')}_adapt-{config.adapt}"
                f"_seed{config.seed}")
    run_dir = new_run_dir(outputs, "audio", run_name, config, corpus_key=f"cross-{config.source_name}-{config.target_name}",
                          settings=dataclasses.asdict(config))
    info = {"modality": "audio", "protocol": config.protocol, "split": split_name, "backbone": recipe.name,
            "adaptation": config.adapt, "shared_emotions": emotions, "selection": report, "skipped": skipped,
            "n_actors": {"train": int(train_clips["actor_id"].nunique()), "val": int(val_clips["actor_id"].nunique()),
                         "test": int(target["actor_id"].nunique())}}
    save_run_outputs(run_dir, pd.concat(frames, ignore_index=True), info=info)
    point_latest(outputs, "audio", safe_name(pointer_key(config.protocol, config.adapt)), run_dir)
    return run_dir
