"""``checkpoints/index.json``: the best checkpoint of each (corpus, modality, protocol, adaptation) and its data."""

from __future__ import annotations

import os
from pathlib import Path

from mer_utils.core.adaptation import adaptation_of
from mer_utils.core.atomic_io import read_json, write_json
from mer_utils.core.config import one_of
from mer_utils.core.runs import timestamp

INDEX_NAME = "index.json"
INDEX_FORMAT = 1
MODALITIES = ("audio", "visual", "fusion")
_KEY = ("corpus_key", "modality", "protocol")  # and the adaptation: an adapted model never replaces a single-clip one


def index_path(checkpoints: str | os.PathLike) -> Path:
    return Path(checkpoints) / INDEX_NAME


def read_index(checkpoints: str | os.PathLike) -> list[dict]:
    """Every entry of the index (``[]`` when there is none yet)."""
    path = index_path(checkpoints)
    if not path.exists():
        return []
    try:
        data = read_json(path)
    except ValueError as err:
        raise ValueError(f"{path} is not a readable checkpoint index ({err}); delete it and re-run the training "
                         "stages, which rewrite it") from None
    if not isinstance(data, dict) or data.get("format") != INDEX_FORMAT or not isinstance(data.get("entries"), list):
        raise ValueError(f"{path} is not a checkpoint index of format {INDEX_FORMAT}; delete it and re-run training")
    return data["entries"]


def register_checkpoint(checkpoints: str | os.PathLike, *, modality: str, protocol: str, path: str | os.PathLike,
                        corpus: dict, corpus_key: str, **fields) -> dict:
    """Add or replace the entry of ``(corpus_key, modality, protocol, adaptation)`` (``corpus``: a CorpusInfo dict)."""
    one_of(modality, MODALITIES, "modality")
    checkpoints = Path(checkpoints)
    # Weights carry the licence of the data they were trained on (RAVDESS: CC BY-NC-SA 4.0, non-commercial).
    licence = {"licence": corpus["licence"]} if corpus.get("licence") else {}
    entry = {"modality": modality, "protocol": protocol, "corpus": corpus["name"], "corpus_key": corpus_key,
             "synthetic": bool(corpus.get("synthetic")), "labels": list(corpus["labels"]), **licence,
             "path": Path(os.path.relpath(Path(path).resolve(), checkpoints.resolve())).as_posix(),
             "updated": timestamp(), **fields}
    entry["adaptation"] = adaptation_of(entry)
    entries = [e for e in read_index(checkpoints) if _slot(e) != _slot(entry)]
    write_json(index_path(checkpoints), {"format": INDEX_FORMAT, "entries": [*entries, entry]})
    return entry


def update_entry(checkpoints: str | os.PathLike, entry: dict, **fields) -> dict:
    """Add ``fields`` to the index entry in ``entry``'s slot (what ``mer export onnx`` lists); returns it."""
    entries = read_index(checkpoints)
    for i, existing in enumerate(entries):
        if _slot(existing) == _slot(entry):
            entries[i] = {**existing, **fields}
            write_json(index_path(checkpoints), {"format": INDEX_FORMAT, "entries": entries})
            return entries[i]
    raise ValueError(f"{index_path(checkpoints)} has no entry for {entry.get('path')}; it changed meanwhile, re-run")


def _slot(entry: dict) -> tuple:
    return (*(entry.get(k) for k in _KEY), adaptation_of(entry))


def entry_path(checkpoints: str | os.PathLike, entry: dict) -> Path:
    """Absolute path of an entry's checkpoint."""
    return (Path(checkpoints) / entry["path"]).resolve()


def find_entries(checkpoints: str | os.PathLike, *, modality: str, corpus_key: str | None = None,
                 protocol: str | None = None) -> list[dict]:
    """Entries of ``modality`` (optionally of one corpus key or protocol), best first: single-clip before
    adapted, speaker-independent before clip-level, then the newest."""
    chosen = [e for e in read_index(checkpoints) if e["modality"] == modality and corpus_key in (None, e["corpus_key"])
              and protocol in (None, e["protocol"])]
    newest = sorted(chosen, key=lambda e: e["updated"], reverse=True)  # stable: the next sort keeps this order
    return sorted(newest, key=lambda e: (adaptation_of(e) != "none", not e.get("speaker_independent", False)))


def describe(entry: dict) -> str:
    """One line for the demo: what the checkpoint was trained on."""
    kind = "SYNTHETIC corpus" if entry.get("synthetic") else "real data"
    scores = ", ".join(f"{k.split('_')[0]} UA {entry[k]:.3f}" for k in ("val_ua", "test_ua") if isinstance(entry.get(k), float))
    size = ", ".join(f"{entry[k]} {k.split('_')[1]}" for k in ("n_clips", "n_speakers") if entry.get(k))
    adapted = "" if adaptation_of(entry) == "none" else f", test scored with {adaptation_of(entry)} adaptation"
    parts = [f"{entry['corpus']} ({kind})", f"protocol {entry['protocol']}{adapted}", size, scores,
             f"commit {str(entry['git_commit'])[:8]}" if entry.get("git_commit") else ""]
    return "; ".join(p for p in parts if p)

