"""The CREMA-D reader: the official layout into a manifest. Partial copies work (an absent folder: ``not_provided``),
stray files become problems, clips a root ``SentenceFilenames.csv`` lists without media are ``missing``, and the
demographics and the crowd's votes (``processedResults/``) join the manifest when present."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from mer_utils.data.cremad_vocabulary import (CREMAD_N_ACTORS, CREMAD_N_CLIPS, EMOTIONS, INTENSITIES, SENTENCES,
                                              parse_clip_id)
from mer_utils.data.human_baseline import read_vote_columns
from mer_utils.data.manifest import NOT_PROVIDED, CorpusInfo, ManifestResult, check_rows, manifest_result, problem_row
from mer_utils.data.synthetic.corpus import CONFIG_NAME

NAME = "cremad"
# Preferred folder first: the MP3s are the raters' copies and serve only when the WAV is absent.
MEDIA_FOLDERS = {
    "audio": (("AudioWAV", ".wav"), ("AudioMP3", ".mp3")),
    "video": (("VideoFlash", ".flv"), ("VideoMP4", ".mp4")),
}
_FOLDERS = [folder for folders in MEDIA_FOLDERS.values() for folder, _ in folders]
# What a stage that lacks a modality tells the user to add (see manifest.modality_gap).
MEDIA_HINTS = {"audio": "add AudioWAV/ (or AudioMP3/) to the data root",
               "video": "add VideoFlash/ (or VideoMP4/) to the data root"}


def corpus_info(*, synthetic: bool = False, **_options) -> CorpusInfo:
    return CorpusInfo(name=NAME, labels=EMOTIONS, synthetic=synthetic, intensity_names=dict(INTENSITIES),
                      protocols=("random", "speaker", "speaker-kfold", "ogm-ge", "audeering", "hicmae"),
                      expected={"clips": CREMAD_N_CLIPS, "speakers": CREMAD_N_ACTORS},
                      licence="ODbL 1.0 (database), DbCL 1.0 (contents)",
                      balanced_speakers=True)  # every actor reads the sentences in every emotion


def detect(data_root: Path) -> bool:
    return data_root.is_dir() and any((data_root / folder).is_dir() for folder in _FOLDERS)


def find_clip_media(data_root: str | os.PathLike, clip_id: str) -> dict[str, Path | None]:
    """``{"audio": path or None, "video": path or None}`` of one clip, from the layout alone (no scan)."""
    parse_clip_id(clip_id)
    return {kind: next((p for p in (Path(data_root) / folder / f"{clip_id}{suffix}" for folder, suffix in folders)
                        if p.is_file()), None)
            for kind, folders in MEDIA_FOLDERS.items()}


def _scan_media(data_root: Path) -> tuple[dict, list[dict], set[str]]:
    """Find media files: ``{kind: {clip_id: relpath}}``, stray files, folders present."""
    found: dict[str, dict[str, str]] = {kind: {} for kind in MEDIA_FOLDERS}
    strays, present = [], set()
    for kind, folders in MEDIA_FOLDERS.items():
        for folder, suffix in folders:
            if not (data_root / folder).is_dir():
                continue
            present.add(kind)
            for path in sorted((data_root / folder).iterdir()):
                if path.name.startswith(".") or not path.is_file():
                    continue
                try:
                    parse_clip_id(path.stem)
                    if path.suffix.lower() != suffix:
                        raise ValueError(f"expected {suffix} in {folder}/")
                except ValueError as err:
                    strays.append(problem_row(f"{folder}/{path.name}", "", kind, "not_a_clip",
                                              f"not a CREMA-D clip ({err}); ignored"))
                    continue
                found[kind].setdefault(path.stem, f"{folder}/{path.name}")
    return found, strays, present


def _find_metadata(data_root: Path, metadata_dir: Path | None, name: str) -> Path | None:
    return next((base / name for base in (data_root, metadata_dir) if base and (base / name).exists()), None)


def _demographics(path: Path | None) -> pd.DataFrame:
    columns = ["actor_id", "age", "sex", "race", "ethnicity"]
    if path is None:
        return pd.DataFrame(columns=columns)
    frame = pd.read_csv(path)
    expected = ["ActorID", "Age", "Sex", "Race", "Ethnicity"]
    if list(frame.columns[:5]) != expected:
        raise ValueError(f"{path}: columns {list(frame.columns)}, expected {expected} (official VideoDemographics.csv)")
    return frame.iloc[:, :5].set_axis(columns, axis=1).astype({"actor_id": int})


def read(data_root: str | os.PathLike, *, metadata_dir: str | os.PathLike | None = None, progress: bool = True,
         **_options) -> ManifestResult:
    """Scan a CREMA-D folder into a manifest; ``metadata_dir``: where else to look for the metadata files."""
    data_root = Path(data_root)
    meta = Path(metadata_dir) if metadata_dir else None
    found, problems, present = _scan_media(data_root)
    if not present:
        hint = (f"; {data_root.name}/ is itself one of them: give the folder above it, --data-root "
                f"{data_root.parent}" if data_root.name.lower() in {f.lower() for f in _FOLDERS} else "")
        raise RuntimeError(f"No media folder found in {data_root}; expected AudioWAV/, AudioMP3/, VideoFlash/ "
                           f"or VideoMP4/ as in the official CREMA-D repository{hint}")
    clip_ids = set().union(*found.values())
    # Only the data root's own listing says which clips should be there (a metadata folder may list more).
    listing = data_root / "SentenceFilenames.csv"
    if listing.exists():
        clip_ids |= set(pd.read_csv(listing)["Filename"].astype(str))
    if not clip_ids:
        present_folders = ", ".join(f"{folder}/" for folder in _FOLDERS if (data_root / folder).is_dir())
        strays = f" ({len(problems)} other files ignored, e.g. {problems[0]['path']})" if problems else ""
        raise RuntimeError(f"no CREMA-D clips found in {data_root}: {present_folders} holds no clip files{strays}; "
                           "expected files named like 1001_DFA_ANG_XX.wav in AudioWAV/ (or .mp3 in AudioMP3/, .flv "
                           "in VideoFlash/, .mp4 in VideoMP4/), as in the official CREMA-D repository")

    rows = [{**name._asdict(), "sentence_text": SENTENCES[name.sentence],
             **{f"{kind}_path": found[kind].get(name.clip_id, "") for kind in MEDIA_FOLDERS},
             **{f"{kind}_status": "" if kind in present else NOT_PROVIDED for kind in MEDIA_FOLDERS}}
            for name in map(parse_clip_id, sorted(clip_ids))]
    problems += check_rows(rows, data_root, progress=progress, default_path=lambda row, kind: (
        f"{MEDIA_FOLDERS[kind][0][0]}/{row['clip_id']}{MEDIA_FOLDERS[kind][0][1]}"))
    manifest = pd.DataFrame(rows).merge(_demographics(_find_metadata(data_root, meta, "VideoDemographics.csv")),
                                        on="actor_id", how="left")
    results = _find_metadata(data_root, meta, "processedResults")
    if results is not None:
        manifest = manifest.merge(read_vote_columns(results), on="clip_id", how="left")
    problems.sort(key=lambda row: row["path"])
    synthetic = (data_root / CONFIG_NAME).exists()  # the embedded default marks itself
    return manifest_result(manifest, problems, corpus_info(synthetic=synthetic))
