"""Import the splits used by published work, so results sit beside the papers'.

- ``ogm-ge``: ``train.csv`` / ``test.csv`` (``clip_id,EMO``) of OGM-GE, PMR,
  AGM, MMPareto… A random clip split: every actor is on both sides.
- ``audeering``: ``speaker_splits.json`` actor lists ``train/dev/test``.
- ``hicmae``: five actor-independent folds ``split0{1..5}_{train,test}.csv``
  (``face_dir wav_path label_index``).

Where the source has no validation set it is carved from training (never
from test), with the same logic as the generated protocols.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from mer_utils.data.cremad_vocabulary import EMOTIONS
from mer_utils.protocols.actors import carve_validation, split_frame

SOURCE_FILES = {
    "ogm-ge": ("ogm-ge/train.csv", "ogm-ge/test.csv"),
    "audeering": ("audeering/speaker_splits.json",),
    "hicmae": tuple(f"hicmae/split0{k}_{s}.csv" for k in range(1, 6) for s in ("train", "test")),
}


def _source(published_dir: str | os.PathLike | None, protocol: str) -> Path:
    if published_dir is None:
        raise ValueError(f"importing the {protocol!r} split needs --published-dir: a folder holding "
                         f"{', '.join(SOURCE_FILES[protocol])} (as released by the authors)")
    base = Path(published_dir)
    for rel in SOURCE_FILES[protocol]:
        if not (base / rel).exists():
            raise FileNotFoundError(f"{base / rel} not found; the {protocol!r} split needs {', '.join(SOURCE_FILES[protocol])} "
                                    f"under {base}")
    return base


def _check_labels(clip_ids: pd.Series, labels: pd.Series, source: Path) -> None:
    emotions = clip_ids.str.split("_").str[2]
    wrong = clip_ids[emotions.to_numpy() != labels.to_numpy()]
    if len(wrong):
        raise ValueError(f"{source}: {len(wrong)} labels disagree with the clip names, e.g. {wrong.iloc[0]}")


def _restrict(assign: pd.DataFrame, clips: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Keep the published clips that are usable here; count the rest."""
    known = assign["clip_id"].isin(clips["clip_id"])
    missing = sorted(assign.loc[~known, "clip_id"].unique())
    info = {"n_published_clips": int(assign["clip_id"].nunique()), "n_not_usable_here": len(missing),
            "not_usable_here_examples": missing[:10]}
    return assign[known], info


def _read_ogm_ge(base: Path) -> pd.DataFrame:
    parts = []
    for subset, rel in zip(("train", "test"), SOURCE_FILES["ogm-ge"]):
        frame = pd.read_csv(base / rel, header=None, names=["clip_id", "label"], dtype=str)
        _check_labels(frame["clip_id"], frame["label"], base / rel)
        parts.append(frame.assign(fold=0, subset=subset))
    return pd.concat(parts, ignore_index=True)


def _read_audeering(base: Path) -> dict[str, list[int]]:
    actors = json.loads((base / SOURCE_FILES["audeering"][0]).read_text())
    return {"train": actors["train"], "val": actors["dev"], "test": actors["test"]}


def _read_hicmae(base: Path) -> pd.DataFrame:
    parts = []
    for k in range(1, 6):
        for subset in ("train", "test"):
            path = base / f"hicmae/split0{k}_{subset}.csv"
            frame = pd.read_csv(path, sep=r"\s+", header=None, names=["face_dir", "wav", "label_index"])
            clip_ids = frame["face_dir"].astype(str).str.rstrip("/").str.split("/").str[-1]
            _check_labels(clip_ids, frame["label_index"].map(dict(enumerate(EMOTIONS))), path)
            parts.append(pd.DataFrame({"clip_id": clip_ids, "fold": k - 1, "subset": subset}))
    return pd.concat(parts, ignore_index=True)


def import_published_split(
    protocol: str, clips: pd.DataFrame, *, published_dir: str | os.PathLike | None, seed: int = 0,
    val_size: float = 0.1,
) -> tuple[pd.DataFrame, dict]:
    """Split frame for a published protocol over the usable ``clips``."""

    base = _source(published_dir, protocol)
    info: dict = {"source": [str(base / rel) for rel in SOURCE_FILES[protocol]]}
    by_id = clips.set_index("clip_id")
    if protocol == "audeering":
        actor_lists = _read_audeering(base)
        assign = pd.concat([clips.loc[clips["actor_id"].isin(ids), ["clip_id"]].assign(fold=0, subset=s)
                            for s, ids in actor_lists.items()], ignore_index=True)
        info["n_actors_published"] = {s: len(ids) for s, ids in actor_lists.items()}
        return split_frame([(0, s, g["clip_id"]) for s, g in assign.groupby("subset")], "audeering"), info

    assign, restrict_info = _restrict(_read_ogm_ge(base) if protocol == "ogm-ge" else _read_hicmae(base), clips)
    info.update(restrict_info)
    pieces = []
    for fold, group in assign.groupby("fold", sort=True):
        fold = int(fold)
        train = group.loc[group["subset"] == "train", "clip_id"]
        test = group.loc[group["subset"] == "test", "clip_id"]
        if protocol == "ogm-ge":  # a random split: carve validation clips, stratified by emotion
            train, val = train_test_split(train, test_size=val_size / (1 - len(test) / len(group)),
                                          random_state=seed, stratify=by_id.loc[train, "emotion"])
            pieces += [(fold, "train", train), (fold, "val", val)]
        else:  # actor-independent folds: carve whole validation actors
            pieces += carve_validation(clips[clips["clip_id"].isin(train)], val_size / 0.8, seed + fold, fold)
        pieces.append((fold, "test", test))
    # The validation carve depends on the seed, so the name carries it.
    return split_frame(pieces, f"{protocol}_seed{seed}"), info
