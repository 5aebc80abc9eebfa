"""The CREMA-D manifest: one row per clip, built once, read everywhere.

Media paths are stored relative to the data root, so a Drive folder can move
without breaking anything. Every media file gets a health status
(:mod:`mer_utils.data.media_health`); files that are not CREMA-D clips are listed
as problems rather than crashed on.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from mer_utils.core.atomic_io import read_json, write_csv, write_json
from mer_utils.data.cremad_names import parse_clip_id
from mer_utils.data.cremad_vocabulary import SENTENCES
from mer_utils.data.media_health import FIXES, OK, Health, audio_health, video_health

MANIFEST_VERSION = 1
# Preferred folder first: AudioWAV is what computational work uses; the MP3s
# are the raters' copies and serve only when the WAV is absent.
MEDIA_FOLDERS = {
    "audio": (("AudioWAV", ".wav"), ("AudioMP3", ".mp3")),
    "video": (("VideoFlash", ".flv"), ("VideoMP4", ".mp4")),
}
DATASETS = ("auto", "cremad", "ravdess")
NOT_PROVIDED = "not_provided"  # the whole folder is absent (e.g. an AudioWAV-only download)
MANIFEST_COLUMNS = (
    "clip_id", "actor_id", "sentence", "sentence_text", "emotion", "intensity", "sex", "age", "race",
    "ethnicity", "audio_path", "video_path", "audio_status", "video_status", "duration_s",
)
PROBLEM_COLUMNS = ("path", "clip_id", "kind", "status", "fix")


class ManifestResult(NamedTuple):
    manifest: pd.DataFrame
    problems: pd.DataFrame


def media_path(data_root: str | os.PathLike, relative_path: str) -> Path:
    """Absolute path of a manifest media entry."""
    if not relative_path:
        raise ValueError("this clip has no media file of that kind (empty path in the manifest)")
    return Path(data_root) / relative_path


def _scan_media(data_root: Path) -> tuple[dict, list[dict], set[str]]:
    """Find media files: ``{kind: {clip_id: relpath}}``, stray files, folders present."""
    found: dict[str, dict[str, str]] = {kind: {} for kind in MEDIA_FOLDERS}
    strays, present = [], set()
    for kind, folders in MEDIA_FOLDERS.items():
        for folder, suffix in folders:
            directory = data_root / folder
            if not directory.is_dir():
                continue
            present.add(kind)
            for entry in sorted(os.scandir(directory), key=lambda e: e.name):
                stem, ext = os.path.splitext(entry.name)
                rel = f"{folder}/{entry.name}"
                if entry.name.startswith(".") or not entry.is_file():
                    continue
                try:
                    parse_clip_id(stem)
                    if ext.lower() != suffix:
                        raise ValueError(f"expected {suffix} in {folder}/")
                except ValueError as err:
                    strays.append({"path": rel, "clip_id": "", "kind": kind, "status": "not_a_clip",
                                   "fix": f"not a CREMA-D clip ({err}); ignored"})
                    continue
                found[kind].setdefault(stem, rel)
    return found, strays, present


def _find_metadata(data_root: Path, metadata_dir: Path | None, name: str) -> Path | None:
    for base in (data_root, metadata_dir):
        if base is not None and (base / name).exists():
            return base / name
    return None


def _demographics(path: Path | None) -> pd.DataFrame:
    columns = ["actor_id", "age", "sex", "race", "ethnicity"]
    if path is None:
        return pd.DataFrame(columns=columns)
    frame = pd.read_csv(path)
    expected = ["ActorID", "Age", "Sex", "Race", "Ethnicity"]
    if list(frame.columns[:5]) != expected:
        raise ValueError(f"{path}: columns {list(frame.columns)}, expected {expected} (official VideoDemographics.csv)")
    frame.columns = columns + list(frame.columns[5:])
    return frame[columns].astype({"actor_id": int})


def _check_all(paths: list[tuple[str, Path]], *, progress: bool) -> dict[Path, Health]:
    from tqdm.auto import tqdm

    checks = {"audio": audio_health, "video": video_health}
    # Decoders release the GIL while reading, so threads overlap the I/O.
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        results = pool.map(lambda item: checks[item[0]](item[1]), paths)
        healths = list(tqdm(results, total=len(paths), desc="checking media", disable=not progress))
    return {path: health for (_, path), health in zip(paths, healths)}


def build_manifest(
    data_root: str | os.PathLike, *, metadata_dir: str | os.PathLike | None = None, progress: bool = True,
    dataset: str = "auto", keep_all_emotions: bool = False,
) -> ManifestResult:
    """Scan a CREMA-D folder (official or partial layout) into a manifest.

    ``dataset`` is ``"cremad"``, ``"ravdess"`` (see :mod:`mer_utils.data.ravdess`)
    or ``"auto"``: RAVDESS when the folder holds ``Actor_XX/`` folders;
    ``keep_all_emotions`` keeps RAVDESS's calm and surprised clips.

    ``metadata_dir`` is searched for ``VideoDemographics.csv`` and
    ``processedResults/`` when the data root lacks them. A
    ``SentenceFilenames.csv`` in the data root adds the clips it lists that
    have no media as ``missing``.
    """
    data_root = Path(data_root)
    if not data_root.is_dir():
        raise FileNotFoundError(f"CREMA-D data root not found at {data_root}; expected a folder with AudioWAV/ "
                                "and/or VideoFlash/ (the official repository layout)")
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {DATASETS}")
    from mer_utils.data.ravdess import build_ravdess_manifest, is_ravdess_root

    if dataset == "ravdess" or (dataset == "auto" and is_ravdess_root(data_root)):
        return build_ravdess_manifest(data_root, keep_all_emotions=keep_all_emotions, progress=progress)
    meta = Path(metadata_dir) if metadata_dir else None
    found, problems, present = _scan_media(data_root)
    if not present:
        raise RuntimeError(f"No media folder found in {data_root}; expected AudioWAV/, AudioMP3/, VideoFlash/ "
                           "or VideoMP4/ as in the official CREMA-D repository")
    clip_ids = set().union(*found.values())
    # Only the data root's own listing says which clips *should* be there; a
    # metadata folder given for demographics may describe a larger corpus.
    listing = data_root / "SentenceFilenames.csv"
    if listing.exists():
        clip_ids |= set(pd.read_csv(listing)["Filename"].astype(str))

    to_check = [(kind, data_root / rel) for kind in MEDIA_FOLDERS for rel in found[kind].values()]
    health = _check_all(to_check, progress=progress)
    rows = []
    for clip_id in sorted(clip_ids):
        name = parse_clip_id(clip_id)
        row = {"clip_id": clip_id, "actor_id": name.actor_id, "sentence": name.sentence,
               "sentence_text": SENTENCES[name.sentence], "emotion": name.emotion, "intensity": name.intensity}
        durations = []
        for kind in MEDIA_FOLDERS:
            rel = found[kind].get(clip_id, "")
            status = health[data_root / rel].status if rel else ("missing" if kind in present else NOT_PROVIDED)
            if rel:
                durations.append(health[data_root / rel].duration_s)
            row[f"{kind}_path"], row[f"{kind}_status"] = rel, status
            if status not in (OK, NOT_PROVIDED):
                problems.append({"path": rel or f"{MEDIA_FOLDERS[kind][0][0]}/{clip_id}{MEDIA_FOLDERS[kind][0][1]}",
                                 "clip_id": clip_id, "kind": kind, "status": status, "fix": FIXES[status]})
        row["duration_s"] = next((d for d in durations if d == d), float("nan"))  # first non-NaN
        rows.append(row)
    manifest = pd.DataFrame(rows)
    manifest = manifest.merge(_demographics(_find_metadata(data_root, meta, "VideoDemographics.csv")),
                              on="actor_id", how="left")
    results = _find_metadata(data_root, meta, "processedResults")
    if results is not None:
        from mer_utils.data.crowd_votes import read_vote_columns

        manifest = manifest.merge(read_vote_columns(results), on="clip_id", how="left")
    extra = [c for c in manifest.columns if c not in MANIFEST_COLUMNS]
    manifest = manifest[list(MANIFEST_COLUMNS) + extra]
    problems_frame = pd.DataFrame(problems, columns=list(PROBLEM_COLUMNS)).sort_values(["path"], kind="stable")
    return ManifestResult(manifest.reset_index(drop=True), problems_frame.reset_index(drop=True))


def load_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Read a manifest CSV written by :func:`write_manifest`, with a clear error."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Manifest not found at {path}; create it with `mer manifest --data-root DIR --out {path}`")
    frame = pd.read_csv(path, dtype={"clip_id": str, "audio_path": str, "video_path": str}, keep_default_na=False,
                        na_values={"age": [""], "duration_s": [""]})
    missing = [c for c in MANIFEST_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path} is not a mer manifest: missing columns {missing}")
    return frame


def write_manifest(result: ManifestResult, out_path: str | os.PathLike) -> tuple[Path, Path]:
    """Write the manifest and, beside it, ``<name>_problems.csv``."""
    out_path = Path(out_path)
    problems_path = out_path.with_name(out_path.stem + "_problems.csv")
    write_csv(out_path, result.manifest, float_format="%.4f")
    write_csv(problems_path, result.problems)
    return out_path, problems_path


def input_signature(data_root: str | os.PathLike, metadata_dir: str | os.PathLike | None = None,
                    dataset: str = "auto") -> str:
    """Hash of every input file's name, size and mtime: equal hash, equal manifest."""
    digest = hashlib.sha256(f"v{MANIFEST_VERSION}{dataset}".encode())
    for base in (Path(data_root), Path(metadata_dir) if metadata_dir else None):
        if base is None or not base.is_dir():
            continue
        for root, dirs, files in os.walk(base):
            dirs.sort()
            for name in sorted(files):
                stat = os.stat(os.path.join(root, name))
                rel = os.path.relpath(os.path.join(root, name), base)
                digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def default_manifest_path(data_root: str | os.PathLike, outputs: str | os.PathLike = "outputs") -> Path:
    root = Path(data_root).resolve()
    tag = hashlib.sha256(str(root).encode()).hexdigest()[:8]
    return Path(outputs) / "manifests" / f"{root.name}-{tag}.csv"


def prepare_manifest(
    data_root: str | os.PathLike, out_path: str | os.PathLike | None = None, *,
    metadata_dir: str | os.PathLike | None = None, outputs: str | os.PathLike = "outputs", progress: bool = True,
    dataset: str = "auto",
) -> pd.DataFrame:
    """Build the manifest unless an up-to-date one exists (same input signature)."""
    out_path = Path(out_path) if out_path else default_manifest_path(data_root, outputs)
    stamp_path = out_path.with_suffix(".json")
    signature = input_signature(data_root, metadata_dir, dataset)
    if out_path.exists() and stamp_path.exists() and read_json(stamp_path).get("signature") == signature:
        return load_manifest(out_path)
    result = build_manifest(data_root, metadata_dir=metadata_dir, progress=progress, dataset=dataset)
    write_manifest(result, out_path)
    write_json(stamp_path, {"signature": signature, "data_root": str(Path(data_root).resolve()),
                            "n_clips": len(result.manifest), "n_problems": len(result.problems)})
    return result.manifest
