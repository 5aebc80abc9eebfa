"""The manifest: one row per clip, built once by a corpus reader (a module listed in :data:`READERS`, see
docs/architecture.md; what it declares, :class:`CorpusInfo`, rides on the manifest), read everywhere, and its summary.
Media paths are relative to the data root (a corpus CSV's folder) and carry a health status; the JSON beside
``<name>.csv`` records the corpus info and the input signature that lets a re-run skip the scan."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple, Sequence

import pandas as pd

from mer_utils.core.atomic_io import read_json, write_csv, write_json
from mer_utils.core.config import DictIO, one_of
from mer_utils.core.labels import check_label_set
from mer_utils.data.media_health import FIXES, OK, audio_health, video_health

# name -> module holding the reader; detection tries them in this order (CREMA-D last: the default).
READERS = {
    "csv": "mer_utils.data.csv_corpus",
    "ravdess": "mer_utils.data.ravdess",
    "iemocap": "mer_utils.data.iemocap",
    "cremad": "mer_utils.data.cremad",
}
DATASETS = ("auto", *READERS)
MANIFEST_VERSION = 1
NOT_PROVIDED = "not_provided"  # the whole folder is absent (e.g. an AudioWAV-only download)
MANIFEST_COLUMNS = (
    "clip_id", "actor_id", "sentence", "sentence_text", "emotion", "intensity", "sex", "age", "race",
    "ethnicity", "audio_path", "video_path", "audio_status", "video_status", "duration_s",
)
PROBLEM_COLUMNS = ("path", "clip_id", "kind", "status", "fix")
MODALITIES = ("audio", "video")


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
    # Every speaker recorded every emotion alike (acted corpora): only then may --adapt balanced match class priors.
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


def labels_in_order(found: Sequence[str], declared: Sequence[str]) -> tuple[str, ...]:
    """The declared labels that occur in ``found``, in the declared order.

    >>> labels_in_order(["SAD", "ANG"], ("ANG", "DIS", "SAD"))
    ('ANG', 'SAD')
    """
    present = set(found)
    return tuple(label for label in declared if label in present)


class ManifestResult(NamedTuple):
    manifest: pd.DataFrame
    problems: pd.DataFrame
    corpus: CorpusInfo


def media_path(data_root: str | os.PathLike, relative_path: str) -> Path:
    """Absolute path of a manifest media entry: relative to the data root, or to a corpus CSV's folder."""
    if not relative_path:
        raise ValueError("this clip has no media file of that kind (empty path in the manifest)")
    data_root = Path(data_root)
    return (data_root.parent if data_root.is_file() else data_root) / relative_path  # an absolute entry stays


def problem_row(path: str, clip_id: str, kind: str, status: str, fix: str | None = None) -> dict:
    """One row of the problems CSV; ``fix`` defaults to the status's standard advice."""
    return {"path": path, "clip_id": clip_id, "kind": kind, "status": status, "fix": fix or FIXES.get(status, "")}


def clip_row(clip_id: str, actor_id, emotion: str, **columns) -> dict:
    """A reader's manifest row, the columns it does not give left blank (no video: ``not_provided``)."""
    return {"clip_id": clip_id, "actor_id": actor_id, "sentence": "", "sentence_text": "", "emotion": emotion,
            "intensity": "", "sex": "", "age": float("nan"), "race": "", "ethnicity": "", "audio_path": "",
            "video_path": "", "audio_status": "", "video_status": NOT_PROVIDED, **columns}


def check_rows(rows: list[dict], root: Path, *, progress: bool, default_path=None) -> list[dict]:
    """Fill in each row's ``{kind}_status`` and ``duration_s`` (the audio's, else the video's) from its media under
    ``root``; return the problem rows. A ``not_provided`` kind is skipped; an empty path is ``missing``."""
    from tqdm.auto import tqdm

    todo = [(kind, root / row[f"{kind}_path"]) for row in rows for kind in MODALITIES
            if row[f"{kind}_path"] and row[f"{kind}_status"] != NOT_PROVIDED]
    checks = {"audio": audio_health, "video": video_health}
    # Decoders release the GIL while reading, so threads overlap the I/O.
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        results = tqdm(pool.map(lambda item: checks[item[0]](item[1]), todo), total=len(todo),
                       desc="checking media", disable=not progress)
        health = {path: result for (_, path), result in zip(todo, results)}
    problems = []
    for row in rows:
        durations = []
        for kind in MODALITIES:
            rel = row[f"{kind}_path"]
            if row[f"{kind}_status"] == NOT_PROVIDED:
                continue
            status, duration = health[root / rel] if rel else ("missing", float("nan"))
            row[f"{kind}_status"] = status
            durations.append(duration)
            if status != OK:
                problems.append(problem_row(rel or default_path(row, kind), row["clip_id"], kind, status))
        row["duration_s"] = next((d for d in durations if d == d), float("nan"))  # first non-NaN
    return problems


def manifest_result(rows: list[dict] | pd.DataFrame, problems: list[dict], corpus: CorpusInfo, *,
                    sort: bool = True) -> ManifestResult:
    """The reader's result: the manifest columns then the reader's own (sorted by clip id), and the problems."""
    manifest = pd.DataFrame(rows)
    manifest = manifest[[*MANIFEST_COLUMNS, *(c for c in manifest.columns if c not in MANIFEST_COLUMNS)]]
    if sort:
        manifest = manifest.sort_values("clip_id", kind="stable")
    return ManifestResult(manifest.reset_index(drop=True), pd.DataFrame(problems, columns=list(PROBLEM_COLUMNS)),
                          corpus)


def build_manifest(
    data_root: str | os.PathLike, *, metadata_dir: str | os.PathLike | None = None, progress: bool = True,
    dataset: str = "auto", **options,
) -> ManifestResult:
    """Scan a data root into a manifest (corpus info in ``attrs["corpus"]``) with the reader ``dataset`` names."""
    data_root = Path(data_root)
    if not data_root.exists():
        raise FileNotFoundError(f"data root not found at {data_root}; expected a CREMA-D folder (AudioWAV/ and/or "
                                "VideoFlash/, the official layout), a RAVDESS or IEMOCAP folder, or a corpus CSV "
                                "with columns path, speaker, emotion")
    name = resolve_dataset(data_root, dataset)
    result = reader(name).read(data_root, metadata_dir=metadata_dir, progress=progress, **options)
    result.manifest.attrs["corpus"] = result.corpus.to_dict()
    return result


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
    # The corpus info written beside the manifest (what its reader declares now fills the fields an older sidecar
    # lacks), else the reader's, plus any labels it does not declare.
    sidecar = path.with_suffix(".json")
    stored = read_json(sidecar).get("corpus") if sidecar.exists() else None
    if stored:
        name = str(stored.get("name"))
        info = CorpusInfo.from_dict({**(reader(name).corpus_info().to_dict() if name in READERS else {}), **stored})
    else:
        name = str(frame["corpus"].iloc[0]) if "corpus" in frame.columns and len(frame) else "cremad"
        info, emotions = reader(name).corpus_info(), frame["emotion"].astype(str)
        extra = sorted(set(emotions) - set(info.labels))
        if extra:
            info = dataclasses.replace(info, labels=(*labels_in_order(emotions, info.labels), *extra))
    frame.attrs["corpus"] = info.to_dict()
    return frame


def corpus_info(manifest: pd.DataFrame) -> CorpusInfo:
    """The :class:`CorpusInfo` a manifest carries (see :func:`build_manifest`)."""
    stored = manifest.attrs.get("corpus")
    if not stored:
        raise ValueError("this manifest frame carries no corpus info; build it with build_manifest() or read it "
                         "with load_manifest()")
    return CorpusInfo.from_dict(stored)


def problems_path_of(manifest_path: str | os.PathLike) -> Path:
    """``<name>_problems.csv`` beside ``<name>.csv``: every unusable clip and file, with its fix."""
    return Path(manifest_path).with_name(Path(manifest_path).stem + "_problems.csv")


def load_problems(manifest_path: str | os.PathLike) -> pd.DataFrame:
    """The problems CSV written beside a manifest (empty when there is none)."""
    path = problems_path_of(manifest_path)
    empty = pd.DataFrame(columns=list(PROBLEM_COLUMNS))
    return pd.read_csv(path, dtype=str, keep_default_na=False) if path.exists() else empty


def write_manifest(result: ManifestResult, out_path: str | os.PathLike, *, stamp: dict | None = None
                   ) -> tuple[Path, Path]:
    """Write the manifest, ``<name>_problems.csv`` and ``<name>.json`` (corpus info, ``stamp``)."""
    paths = (write_csv(out_path, result.manifest, float_format="%.4f"),
             write_csv(problems_path_of(out_path), result.problems))
    write_json(Path(out_path).with_suffix(".json"), {**(stamp or {}), "corpus": result.corpus.to_dict()})
    return paths


def input_signature(data_root: str | os.PathLike, metadata_dir: str | os.PathLike | None = None,
                    dataset: str = "auto", **options) -> str:
    """Hash of every input file's name, size and mtime (and the reader options): equal hash, equal manifest."""
    digest = hashlib.sha256(f"v{MANIFEST_VERSION}{dataset}{sorted(options.items())}".encode())
    data_root, files = Path(data_root), []  # (name hashed, path)
    if data_root.is_file():  # a corpus CSV: its bytes, then the media it lists (read by its reader)
        digest.update(data_root.read_bytes())
        files = [(str(media), media) for media in reader(resolve_dataset(data_root, dataset)).input_files(data_root)]
    else:
        for base in [b for b in (data_root, Path(metadata_dir) if metadata_dir else None) if b and b.is_dir()]:
            for root, dirs, names in os.walk(base):
                dirs.sort()
                files += [(os.path.relpath(os.path.join(root, n), base), Path(root, n)) for n in sorted(names)]
    for name, path in files:
        stat = path.stat() if path.exists() else None
        digest.update(f"{name}\0{stat.st_size if stat else -1}\0{stat.st_mtime_ns if stat else -1}\n".encode())
    return digest.hexdigest()


def default_manifest_path(data_root: str | os.PathLike, outputs: str | os.PathLike = "outputs") -> Path:
    root = Path(data_root).resolve()
    tag = hashlib.sha256(str(root).encode()).hexdigest()[:8]
    return Path(outputs) / "manifests" / f"{root.stem if root.is_file() else root.name}-{tag}.csv"


def prepare_manifest(
    data_root: str | os.PathLike, out_path: str | os.PathLike | None = None, *,
    metadata_dir: str | os.PathLike | None = None, outputs: str | os.PathLike = "outputs", progress: bool = True,
    dataset: str = "auto", **options,
) -> pd.DataFrame:
    """Build the manifest unless an up-to-date one exists (same input signature)."""
    out_path = Path(out_path) if out_path else default_manifest_path(data_root, outputs)
    stamp_path = out_path.with_suffix(".json")
    signature = input_signature(data_root, metadata_dir, dataset, **options)
    if out_path.exists() and stamp_path.exists() and read_json(stamp_path).get("signature") == signature:
        return load_manifest(out_path)
    result = build_manifest(data_root, metadata_dir=metadata_dir, progress=progress, dataset=dataset, **options)
    write_manifest(result, out_path, stamp={"signature": signature, "data_root": str(Path(data_root).resolve()),
                                            "n_clips": len(result.manifest), "n_problems": len(result.problems)})
    # Read back: a fresh build and a cached one must be the same frame (types, rounding), clip for clip.
    return load_manifest(out_path)


def summarize_manifest(manifest: pd.DataFrame, problems: pd.DataFrame | None = None, *,
                       problems_path: str | os.PathLike | None = None) -> str:
    """Clips, speakers, per-label counts, media health with each problem's fix, and the completeness check where
    the corpus declares its size. Without ``problems`` (the problems table) the manifest's broken clips are listed."""
    corpus = CorpusInfo.from_dict(manifest.attrs["corpus"]) if manifest.attrs.get("corpus") else None
    n_clips, n_actors = len(manifest), manifest["actor_id"].nunique()
    lines = [f"{n_clips} clips from {n_actors} actors"]
    sexes = manifest.drop_duplicates("actor_id")["sex"].replace("", "unknown").fillna("unknown").value_counts()
    lines.append("actors by sex: " + ", ".join(f"{k} {v}" for k, v in sorted(sexes.items())))
    counts = manifest["emotion"].value_counts()
    labels = corpus.labels if corpus else tuple(sorted(counts.index))
    lines.append("clips per emotion: " + ", ".join(f"{e} {int(counts.get(e, 0))}" for e in labels))
    lines += [f"{kind}: " + ", ".join(f"{k} {v}" for k, v in sorted(manifest[f"{kind}_status"].value_counts().items()))
              for kind in MODALITIES]
    usable = (manifest["audio_status"] == OK) | (manifest["video_status"] == OK)
    provided = [f"{k}_status" for k in MODALITIES if (manifest[f"{k}_status"] != NOT_PROVIDED).any()]
    complete = manifest[provided].eq(OK).all(axis=1) if provided else usable
    lines.append(f"usable clips (audio or video ok): {int(usable.sum())}; with every provided modality ok "
                 f"(what the experts train and score on): {int(complete.sum())}")
    if problems is None:
        problems = pd.DataFrame([problem_row(row[f"{kind}_path"], row["clip_id"], kind, row[f"{kind}_status"])
                                 for kind in MODALITIES for _, row in manifest.iterrows()
                                 if row[f"{kind}_status"] not in (OK, NOT_PROVIDED)], columns=list(PROBLEM_COLUMNS))
    if len(problems):
        groups = problems.groupby("status")
        where = f", listed in {problems_path}" if problems_path else ""
        lines.append(f"problems: {len(problems)} ({', '.join(f'{k} {len(v)}' for k, v in groups)}){where}")
        for status, rows in groups:
            example = rows.iloc[0]
            lines.append(f"  {status} ({len(rows)}, e.g. {example['path'] or example['clip_id']}): {example['fix']}")
    else:
        lines.append("problems: none")
    expected = corpus.expected if corpus else {}
    if "clips" in expected and n_actors > expected.get("speakers", 0) // 2:  # looks like an attempt at the full corpus
        verdict = "matches" if (n_clips, n_actors) == (expected["clips"], expected["speakers"]) else "does NOT match"
        lines.append(f"official corpus check: {verdict} {expected['clips']} clips / {expected['speakers']} actors")
    return "\n".join(lines)


def modality_gap(manifest: pd.DataFrame, kind: str) -> str | None:
    """None when some clip has ``ok`` ``kind`` media; else one line saying why none has and what to add.

    >>> frame = pd.DataFrame({"clip_id": ["a"], "audio_status": ["not_provided"], "video_status": ["ok"]})
    >>> modality_gap(frame, "video") is None
    True
    >>> print(modality_gap(frame, "audio"))
    no clip has usable audio (audio: not_provided 1); add the corpus's audio files to the data root
    """
    status = manifest[f"{one_of(kind, MODALITIES, 'modality')}_status"].astype(str)
    if (status == OK).any():
        return None
    counts = ", ".join(f"{name} {n}" for name, n in sorted(status.value_counts().items())) or "no clips"
    corpus = manifest.attrs.get("corpus")
    hints = getattr(reader(corpus["name"]), "MEDIA_HINTS", {}) if corpus else {}
    hint = hints.get(kind, f"add the corpus's {kind} files to the data root")
    return f"no clip has usable {kind} ({kind}: {counts}); {hint}"
