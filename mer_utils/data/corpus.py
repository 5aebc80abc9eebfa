"""What a corpus reader declares, and how a data root finds its reader.

A reader (one module per corpus: :mod:`~mer_utils.data.cremad`,
:mod:`~mer_utils.data.ravdess`, :mod:`~mer_utils.data.iemocap`,
:mod:`~mer_utils.data.csv_corpus`) turns a data root into a manifest
(:mod:`mer_utils.data.manifest`) and declares, in a :class:`CorpusInfo`, the
label set, the speaker grouping and the corpus's standard protocols.
The info rides on the manifest (``manifest.attrs["corpus"]``, and the JSON
written beside the manifest CSV), so every later stage reads the label set
from the data instead of from a constant.

To add a corpus: write one reader module with ``NAME``, ``detect(root)``,
``corpus_info(**options)`` and ``read(root, *, progress, **options)``, and
add it to :data:`READERS` below (see docs/architecture.md).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from pathlib import Path
from typing import Sequence

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
class CorpusInfo:
    """What downstream stages need to know about a corpus, and nothing corpus-specific beyond it.

    ``speaker_column`` names the manifest column of speaker ids (the unit of
    speaker independence); ``group_column`` the column of larger groups that
    leave-one-group-out protocols hold out (IEMOCAP: ``session``), if any.
    ``balanced_speakers``: every speaker was recorded in every emotion in the
    same proportions (acted corpora such as CREMA-D and RAVDESS), so matching
    a speaker's predictions to the training class prior is sound; the offline
    speech expert does so only then.
    """

    name: str
    labels: tuple[str, ...]
    protocols: tuple[str, ...] = ("random", "speaker", "speaker-kfold")
    speaker_column: str = "actor_id"
    group_column: str | None = None
    synthetic: bool = False
    intensity_names: dict = dataclasses.field(default_factory=dict)
    expected: dict = dataclasses.field(default_factory=dict)  # e.g. {"clips": 7442, "speakers": 91}
    licence: str = ""
    balanced_speakers: bool = False

    def __post_init__(self):
        object.__setattr__(self, "labels", check_label_set(self.labels, source=f"corpus {self.name!r}"))
        object.__setattr__(self, "protocols", tuple(self.protocols))

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "CorpusInfo":
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in fields})


def reader(name: str):
    """The reader module of corpus ``name``."""
    if name not in READERS:
        raise ValueError(f"unknown corpus {name!r}; choose one of {DATASETS}")
    return importlib.import_module(READERS[name])


def detect_corpus(data_root: str | os.PathLike) -> str:
    """The corpus whose layout ``data_root`` has (a ``.csv`` file is a generic corpus)."""
    for name in READERS:
        if reader(name).detect(Path(data_root)):
            return name
    return "cremad"


def resolve_dataset(data_root: str | os.PathLike, dataset: str = "auto") -> str:
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {DATASETS}")
    return detect_corpus(data_root) if dataset == "auto" else dataset


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
