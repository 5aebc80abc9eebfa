"""Any labelled corpus as a CSV (``--data-root corpus.csv``): columns ``path, speaker, emotion`` (optional
``video_path, sex, age``), paths absolute or relative to the CSV's folder. Labels: the sorted ``emotion`` values;
clip id: the file stem (where stems repeat, the relative path)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from mer_utils.data.manifest import NOT_PROVIDED, CorpusInfo, ManifestResult, check_rows, clip_row, manifest_result

NAME = "csv"
REQUIRED = ("path", "speaker", "emotion")
OPTIONAL = ("video_path", "sex", "age")


def detect(data_root: Path) -> bool:
    return Path(data_root).suffix.lower() == ".csv" and Path(data_root).is_file()


def corpus_info(*, labels=("NEG", "POS"), name: str = NAME, **_options) -> CorpusInfo:
    return CorpusInfo(name=name, labels=tuple(labels))


def read_table(csv_path: Path) -> pd.DataFrame:
    """The CSV's rows, checked: required columns present, no blank path/speaker/emotion."""
    try:
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"{csv_path}: not a readable corpus CSV ({err}); expected columns "
                         f"{', '.join(REQUIRED)}") from None
    table.columns = [c.strip() for c in table.columns]
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise ValueError(f"{csv_path}: missing columns {missing}; a corpus CSV needs {', '.join(REQUIRED)} "
                         f"(optional: {', '.join(OPTIONAL)})")
    for column in REQUIRED:
        blank = table.index[table[column].str.strip() == ""]
        if len(blank):
            raise ValueError(f"{csv_path}: column {column!r} is blank on {len(blank)} rows (first: CSV line "
                             f"{blank[0] + 2}); fill it in or remove those rows")
    return table


def input_files(csv_path: Path) -> list[Path]:
    """Every media file the CSV lists (for the manifest's input signature)."""
    table = read_table(csv_path)
    columns = [c for c in ("path", "video_path") if c in table.columns]
    return [csv_path.parent / v.strip() for c in columns for v in table[c] if v.strip()]  # an absolute path stays


def read(data_root: str | os.PathLike, *, progress: bool = True, **_options) -> ManifestResult:
    csv_path = Path(data_root)
    table = read_table(csv_path)
    paths = table["path"].str.strip()
    ids = paths.map(lambda p: Path(p).stem)
    if ids.duplicated().any():  # stems repeat (e.g. spk1/001.wav, spk2/001.wav): the relative path keeps ids unique
        ids = paths.map(lambda p: str(Path(p).with_suffix("")).replace(os.sep, "__").replace("/", "__"))
    duplicates = ids[ids.duplicated()]
    if len(duplicates):
        raise ValueError(f"{csv_path}: {len(duplicates)} rows list the same file again (e.g. {duplicates.iloc[0]}); "
                         "each clip once")
    has_video = "video_path" in table.columns
    rows = [clip_row(clip_id, entry["speaker"].strip(), entry["emotion"].strip(), sex=entry.get("sex", "").strip(),
                     age=pd.to_numeric(entry.get("age", ""), errors="coerce"), audio_path=entry["path"].strip(),
                     video_path=entry["video_path"].strip() if has_video else "",
                     video_status="" if has_video else NOT_PROVIDED, corpus=NAME)
            for clip_id, (_, entry) in zip(ids, table.iterrows())]
    problems = check_rows(rows, csv_path.parent, progress=progress, default_path=lambda _, kind: f"(no {kind} path)")
    labels = tuple(sorted({row["emotion"] for row in rows}))
    if len(labels) < 2:
        raise ValueError(f"{csv_path}: the emotion column holds one label ({labels[0]!r}); a classifier needs two or more")
    return manifest_result(rows, problems, corpus_info(labels=labels, name=f"csv:{csv_path.stem}"), sort=False)
