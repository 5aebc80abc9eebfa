"""Glue shared by every stage: the embedded default corpus and the manifest + split an expert trains on."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from mer_utils.data.manifest import CorpusInfo, corpus_info, prepare_manifest
from mer_utils.data.synthetic.corpus import GENERATOR_VERSION, make_synthetic_corpus
from mer_utils.protocols.splits import make_split, write_split

DEFAULT_CORPUS_DIRNAME = "synthetic_cremad"


class PreparedData(NamedTuple):
    data_root: Path
    manifest: pd.DataFrame
    split: pd.DataFrame
    split_name: str
    corpus: CorpusInfo

    @property
    def labels(self) -> tuple[str, ...]:
        return self.corpus.labels


def resolve_data_root(data_root: str | os.PathLike | None, outputs: str | os.PathLike = "outputs", *,
                      seed: int = 0, progress: bool = True) -> Path:
    """``data_root``, or for ``None`` the embedded default: a synthetic CREMA-D-shaped corpus generated under
    ``outputs/`` on first use (its folder name carries the generator version and seed, so neither reuses another)."""
    if data_root is not None:
        return Path(data_root)
    folder = Path(outputs) / f"{DEFAULT_CORPUS_DIRNAME}_v{GENERATOR_VERSION}_seed{seed}"
    return make_synthetic_corpus(folder, seed=seed, progress=progress)


def prepare_protocol(
    data_root: str | os.PathLike | None, protocol: str, *, seed: int = 0, outputs: str | os.PathLike = "outputs",
    published_dir: str | os.PathLike | None = None, metadata_dir: str | os.PathLike | None = None,
    n_folds: int = 5, progress: bool = True, dataset: str = "auto", all_emotions: bool = False,
) -> PreparedData:
    """Manifest (cached) and split for ``protocol``, written where every stage and the report read it;
    ``all_emotions`` keeps the emotions a reader would leave out (RAVDESS: calm and surprised)."""
    root = resolve_data_root(data_root, outputs, seed=seed, progress=progress)
    options = {"keep_all_emotions": True} if all_emotions else {}
    manifest = prepare_manifest(root, metadata_dir=metadata_dir, outputs=outputs, progress=progress,
                                dataset=dataset, **options)
    split = make_split(manifest, protocol=protocol, seed=seed, n_folds=n_folds, published_dir=published_dir)
    write_split(split, split_dir(outputs, manifest))
    return PreparedData(root, manifest, split, str(split["split"].iloc[0]), corpus_info(manifest))


def split_dir(outputs: str | os.PathLike, manifest: pd.DataFrame) -> Path:
    """``outputs/splits`` for CREMA-D (the embedded default included), else ``outputs/splits/<corpus>``."""
    name = corpus_info(manifest).name
    base = Path(outputs) / "splits"
    return base if name == "cremad" else base / name.replace(":", "-")
