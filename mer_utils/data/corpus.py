"""What a corpus reader declares (:class:`CorpusInfo`, riding on the manifest) and how a data root finds its reader.
A reader module has ``NAME``, ``detect(root)``, ``corpus_info(**options)`` and ``read(root, *, progress, **options)``
and is listed in :data:`READERS` (see docs/architecture.md)."""

from __future__ import annotations

import dataclasses
import importlib
import os
from pathlib import Path
from typing import Sequence

from mer_utils.core.config import DictIO, one_of
from mer_utils.core.labels import check_label_set

# name -> module holding the reader; detection tries them in this order (CREMA-D last: the default).
READERS = {
    "csv": "mer_utils.data.csv_corpus",
    "ravdess": "mer_utils.data.ravdess",
    "iemocap": "mer_utils.data.iemocap",
    "cremad": "mer_utils.data.cremad",
}
DATASETS = ("auto", *READERS)


@dataclasses.dataclass(frozen=True)
class CorpusInfo(DictIO):
    """What downstream stages need to know about a corpus, and nothing corpus-specific beyond it."""

    name: str
    labels: tuple[str, ...]
    protocols: tuple[str, ...] = ("random", "speaker", "speaker-kfold")
    speaker_column: str = "actor_id"  # the unit of speaker independence
    group_column: str | None = None  # what leave-one-group-out holds out (IEMOCAP: session)
    synthetic: bool = False
    intensity_names: dict = dataclasses.field(default_factory=dict)
    expected: dict = dataclasses.field(default_factory=dict)  # e.g. {"clips": 7442, "speakers": 91}
    licence: str = ""
    # Every speaker recorded every emotion alike (acted corpora): only then does the offline speech expert match
    # a speaker's predictions to the training class prior.
    balanced_speakers: bool = False

    def __post_init__(self):
        object.__setattr__(self, "labels", check_label_set(self.labels, source=f"corpus {self.name!r}"))
        object.__setattr__(self, "protocols", tuple(self.protocols))


def reader(name: str):
    """The reader module of corpus ``name``."""
    return importlib.import_module(READERS[one_of(name, READERS, "corpus")])


def resolve_dataset(data_root: str | os.PathLike, dataset: str = "auto") -> str:
    """``dataset``, or for ``"auto"`` the first reader that recognises ``data_root``'s layout (else CREMA-D)."""
    if one_of(dataset, DATASETS, "dataset") != "auto":
        return dataset
    return next((name for name in READERS if reader(name).detect(Path(data_root))), "cremad")


def media_root(data_root: str | os.PathLike) -> Path:
    """The folder manifest media paths are relative to: the data root, or a corpus CSV's folder."""
    data_root = Path(data_root)
    return data_root.parent if data_root.is_file() else data_root


def labels_in_order(found: Sequence[str], declared: Sequence[str]) -> tuple[str, ...]:
    """The declared labels that occur in ``found``, in the declared order.

    >>> labels_in_order(["SAD", "ANG"], ("ANG", "DIS", "SAD"))
    ('ANG', 'SAD')
    """
    present = set(found)
    return tuple(label for label in declared if label in present)
