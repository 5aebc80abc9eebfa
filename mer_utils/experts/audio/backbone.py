"""The clips a SER backbone consumes. Every backbone (``AcousticBackbone``, ``FinetuneBackbone``,
``FrozenBackbone``) has ``fit(train, val, work_dir=)``, ``predict_proba(clips) -> (n, K)`` (NaN rows for
undecodable clips), ``skipped`` and ``save(path)``."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from mer_utils.core.labels import check_label_set

if TYPE_CHECKING:  # pandas and the data layer load with a manifest: a demo that only predicts needs neither
    import pandas as pd


@dataclasses.dataclass
class ClipSet:
    """Clip ids, absolute audio paths, (optional) emotion labels, speaker ids and the label set."""

    clip_ids: list[str]
    paths: list[Path]
    labels: list[str] | None = None
    speakers: list | None = None  # actor ids, for speaker normalisation (never labels)
    label_set: tuple[str, ...] | None = None  # the corpus's classes, in order (required with labels)
    sentences: list | None = None  # what each clip says (the manifest's sentence id), for sentence normalisation

    def __post_init__(self):
        if len(self.clip_ids) != len(self.paths):
            raise ValueError(f"{len(self.clip_ids)} clip ids but {len(self.paths)} paths")
        if self.sentences is not None and len(self.sentences) != len(self.clip_ids):
            raise ValueError(f"{len(self.clip_ids)} clip ids but {len(self.sentences)} sentence ids")
        if self.label_set is not None:
            self.label_set = check_label_set(self.label_set)
        if self.labels is not None:
            if len(self.labels) != len(self.clip_ids):
                raise ValueError(f"{len(self.clip_ids)} clip ids but {len(self.labels)} labels")
            if self.label_set is None:
                raise ValueError("a labelled clip set needs its label_set (the corpus's classes, in order)")
            unknown = sorted(set(self.labels) - set(self.label_set))
            if unknown:
                raise ValueError(f"labels {unknown} are not in the corpus's label set {list(self.label_set)}")

    def __len__(self) -> int:
        return len(self.clip_ids)

    def take(self, index: Sequence[int] | np.ndarray) -> "ClipSet":
        index = np.flatnonzero(index) if np.asarray(index).dtype == bool else np.asarray(index, dtype=int)
        return ClipSet([self.clip_ids[i] for i in index], [self.paths[i] for i in index],
                       None if self.labels is None else [self.labels[i] for i in index],
                       None if self.speakers is None else [self.speakers[i] for i in index], self.label_set,
                       None if self.sentences is None else [self.sentences[i] for i in index])

    def label_indices(self) -> np.ndarray:
        if self.labels is None:
            raise ValueError("this clip set has no labels")
        return np.array([self.label_set.index(label) for label in self.labels], dtype=int)

    @classmethod
    def from_manifest(cls, manifest: pd.DataFrame, data_root: str | os.PathLike, clip_ids: Sequence[str], *,
                      labels: Sequence[str]) -> "ClipSet":
        """Clips of ``clip_ids`` (in that order) with their audio paths, emotions, speakers and sentence
        ids (when the manifest has them); ``labels`` is the corpus's label set."""
        from mer_utils.data.manifest import media_path

        table = manifest.set_index("clip_id")
        missing = [c for c in clip_ids if c not in table.index]
        if missing:
            raise ValueError(f"{len(missing)} split clips are not in the manifest (e.g. {missing[0]}); "
                             "the split and the manifest come from different data roots")
        rows = table.loc[list(clip_ids)]
        no_audio = rows.index[rows["audio_path"].astype(str) == ""].tolist()
        if no_audio:
            raise ValueError(f"{len(no_audio)} clips have no audio file (e.g. {no_audio[0]}); "
                             "add AudioWAV/ (or AudioMP3/) to the data root")
        paths = [media_path(data_root, rel) for rel in rows["audio_path"].astype(str)]
        sentences = rows["sentence"].tolist() if "sentence" in rows.columns else None
        return cls(list(clip_ids), paths, rows["emotion"].astype(str).tolist(), rows["actor_id"].tolist(),
                   tuple(labels), sentences)

