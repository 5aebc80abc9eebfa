"""Train/validation/test splits as files: random, speaker-independent, k-fold, leave-one-group-out, and CREMA-D's
published ones (OGM-GE, audEERING, HiCMAE). A split has one row per clip and fold; its ``attrs["info"]`` (the JSON
beside the CSV) records protocol, seed, sizes, actor overlap and excluded clips. Validation never comes from test."""

from __future__ import annotations

import json
import os
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import LeaveOneGroupOut, StratifiedGroupKFold, train_test_split

from mer_utils.core.atomic_io import read_json, sha256_file, write_csv, write_json
from mer_utils.core.config import one_of
from mer_utils.core.labels import SUBSETS
from mer_utils.data.cremad_vocabulary import EMOTIONS
from mer_utils.data.media_health import OK

# "loso": leave one group out (IEMOCAP: one session per fold), for corpora that declare a group column.
GENERATED_PROTOCOLS = ("random", "speaker", "speaker-kfold", "loso")
PUBLISHED_PROTOCOLS = ("ogm-ge", "audeering", "hicmae")  # CREMA-D's published splits
PROTOCOLS = GENERATED_PROTOCOLS + PUBLISHED_PROTOCOLS
SPEAKER_INDEPENDENT = {p: p not in ("random", "ogm-ge") for p in PROTOCOLS}  # OGM-GE's split is clip-level
SPLIT_COLUMNS = ("clip_id", "split", "fold", "subset")
SOURCE_FILES = {
    "ogm-ge": ("ogm-ge/train.csv", "ogm-ge/test.csv"),
    "audeering": ("audeering/speaker_splits.json",),
    "hicmae": tuple(f"hicmae/split0{k}_{s}.csv" for k in range(1, 6) for s in ("train", "test")),
}


def actor_table(clips: pd.DataFrame) -> pd.DataFrame:
    """One row per actor (``actor_id``, ``sex``; an unknown sex is ``"unknown"``)."""
    actors = clips.groupby("actor_id", sort=True).agg(sex=("sex", "first")).reset_index()
    return actors.assign(sex=actors["sex"].fillna("unknown").replace("", "unknown"))


def split_actors(actors: pd.DataFrame, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split actor ids in two, balanced by sex where every sex has >= 2 actors."""
    counts = actors["sex"].value_counts()
    n_small = max(1, int(round(fraction * len(actors))))
    stratify = actors["sex"] if counts.min() >= 2 and n_small >= counts.size else None
    big, small = train_test_split(actors["actor_id"].to_numpy(), test_size=n_small, random_state=seed,
                                  stratify=stratify)
    return np.sort(big), np.sort(small)


def carve_validation(pool: pd.DataFrame, fraction: float, seed: int, fold: int = 0) -> list[tuple]:
    """``[(fold, "train", clip ids), (fold, "val", clip ids)]``: whole validation actors carved from ``pool``'s."""
    train_ids, val_ids = split_actors(actor_table(pool), fraction, seed)
    by_actor = pool.set_index("actor_id")["clip_id"]
    return [(fold, "train", by_actor.loc[train_ids]), (fold, "val", by_actor.loc[val_ids])]


def split_frame(assignments: list[tuple[int, str, pd.Series]], name: str) -> pd.DataFrame:
    """The split CSV's rows from ``(fold, subset, clip ids)`` triples, sorted by fold, subset, clip."""
    frame = pd.concat([pd.DataFrame({"clip_id": ids.to_numpy(), "split": name, "fold": fold, "subset": subset})
                       for fold, subset, ids in assignments], ignore_index=True)
    return frame.sort_values(["fold", "subset", "clip_id"], ignore_index=True,
                             key=lambda c: c.map(SUBSETS.index) if c.name == "subset" else c)


def import_published_split(
    protocol: str, clips: pd.DataFrame, *, published_dir: str | os.PathLike | None, seed: int = 0,
    val_size: float = 0.1,
) -> tuple[pd.DataFrame, dict]:
    """Split frame for a published protocol over the usable ``clips``."""
    if published_dir is None:
        raise ValueError(f"importing the {protocol!r} split needs --published-dir: a folder holding "
                         f"{', '.join(SOURCE_FILES[protocol])} (as released by the authors)")
    paths = [Path(published_dir) / rel for rel in SOURCE_FILES[protocol]]
    for path in (p for p in paths if not p.exists()):
        raise FileNotFoundError(f"{path} not found; the {protocol!r} split needs "
                                f"{', '.join(SOURCE_FILES[protocol])} under {Path(published_dir)}")
    info: dict = {"source": [str(path) for path in paths]}
    if protocol == "audeering":
        actors = json.loads(paths[0].read_text())
        actor_lists = {"train": actors["train"], "val": actors["dev"], "test": actors["test"]}
        info["n_actors_published"] = {s: len(ids) for s, ids in actor_lists.items()}
        return split_frame([(0, s, clips.loc[clips["actor_id"].isin(ids), "clip_id"])
                            for s, ids in actor_lists.items()], "audeering"), info

    parts = []
    for i, path in enumerate(paths):  # (train, test) file pairs, one pair per fold
        if protocol == "ogm-ge":
            frame = pd.read_csv(path, header=None, names=["clip_id", "label"], dtype=str)
            clip_ids, labels = frame["clip_id"], frame["label"]
        else:
            frame = pd.read_csv(path, sep=r"\s+", header=None, names=["face_dir", "wav", "label_index"])
            clip_ids = frame["face_dir"].astype(str).str.rstrip("/").str.split("/").str[-1]
            labels = frame["label_index"].map(dict(enumerate(EMOTIONS)))
        wrong = clip_ids[clip_ids.str.split("_").str[2].to_numpy() != labels.to_numpy()]
        if len(wrong):
            raise ValueError(f"{path}: {len(wrong)} labels disagree with the clip names, e.g. {wrong.iloc[0]}")
        parts.append(pd.DataFrame({"clip_id": clip_ids, "fold": i // 2, "subset": ("train", "test")[i % 2]}))
    assign = pd.concat(parts, ignore_index=True)
    # Keep the published clips that are usable here; count the rest.
    known = assign["clip_id"].isin(clips["clip_id"])
    missing = sorted(assign.loc[~known, "clip_id"].unique())
    info.update({"n_published_clips": int(assign["clip_id"].nunique()), "n_not_usable_here": len(missing),
                 "not_usable_here_examples": missing[:10]})
    pieces = []
    for fold, group in assign[known].groupby("fold", sort=True):
        train, test = (group.loc[group["subset"] == subset, "clip_id"] for subset in ("train", "test"))
        if protocol == "ogm-ge":  # a random split: carve validation clips, stratified by emotion
            train, val = train_test_split(train, test_size=val_size / (1 - len(test) / len(group)), random_state=seed,
                                          stratify=clips.set_index("clip_id").loc[train, "emotion"])
            pieces += [(fold, "train", train), (fold, "val", val)]
        else:  # actor-independent folds: carve whole validation actors
            pieces += carve_validation(clips[clips["clip_id"].isin(train)], val_size / 0.8, seed + fold, fold)
        pieces.append((fold, "test", test))
    # The validation carve depends on the seed, so the name carries it.
    return split_frame(pieces, f"{protocol}_seed{seed}"), info


def protocol_kind(protocol: str) -> str:
    """``"random"`` (clip-level) or ``"speaker"`` (speaker-independent): what two compared runs must share.

    >>> protocol_kind("ogm-ge"), protocol_kind("loso")
    ('random', 'speaker')
    """
    return "speaker" if SPEAKER_INDEPENDENT.get(protocol, "speaker" in protocol) else "random"


def usable_clips(manifest: pd.DataFrame, *, require: tuple[str, ...] | str = "auto") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clips whose required media are ``ok``, and the excluded ones with the reason; ``"auto"`` requires every
    modality the corpus provides (so fusion can join the experts clip by clip)."""
    if require == "auto":
        require = tuple(k for k in ("audio", "video") if (manifest[f"{k}_status"] != "not_provided").any())
    reasons = pd.Series("", index=manifest.index)
    for kind in require:
        status = manifest[f"{kind}_status"].astype(str)
        reasons += (f"{kind} " + status + "; ").where(status != OK, "")
    bad = (reasons != "").to_numpy()
    excluded = pd.DataFrame({"clip_id": manifest.loc[bad, "clip_id"], "reason": reasons[bad].str.rstrip("; ")})
    return manifest.loc[~bad].reset_index(drop=True), excluded.reset_index(drop=True)


def fold_split(clips: pd.DataFrame, *, n_folds: int = 5, group_column: str | None = None, seed: int = 0,
               val_size: float = 0.1) -> pd.DataFrame:
    """Actor-disjoint test folds: ``n_folds`` (``StratifiedGroupKFold``), or with ``group_column`` one per group
    (IEMOCAP: session); each fold's validation actors are carved from its training ones."""
    if group_column:
        groups = sorted(clips[group_column].unique())
        if len(groups) < 2:
            raise ValueError(f"leave-one-group-out needs at least two values of {group_column!r}, found {groups}")
        n_folds, name = len(groups), f"loso_seed{seed}"
        folds = LeaveOneGroupOut().split(clips, groups=clips[group_column])  # one fold per group, in sorted order
    else:
        if clips["actor_id"].nunique() < n_folds + 2:
            raise ValueError(f"speaker-kfold with {n_folds} folds needs at least {n_folds + 2} actors, "
                             f"found {clips['actor_id'].nunique()}")
        name = f"speaker-kfold{n_folds}_seed{seed}"
        folds = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(
            clips, clips["emotion"], groups=clips["actor_id"])
    assignments = []
    for fold, (train_idx, test_idx) in enumerate(folds):
        assignments += [*carve_validation(clips.iloc[train_idx], val_size / (1 - 1 / n_folds), seed + fold, fold),
                        (fold, "test", clips.iloc[test_idx]["clip_id"])]
    return split_frame(assignments, name)


def actor_overlap(split: pd.DataFrame, manifest: pd.DataFrame) -> list[dict]:
    """Per fold, how many actors each pair of subsets shares."""
    actor_of = manifest.set_index("clip_id")["actor_id"]
    report = []
    for fold, group in split.groupby("fold", sort=True):
        actors = {s: set(actor_of.loc[group.loc[group["subset"] == s, "clip_id"]]) for s in SUBSETS}
        report.append({"fold": int(fold), **{f"n_actors_{s}": len(actors[s]) for s in SUBSETS},
                       **{f"shared_{a}_{b}": len(actors[a] & actors[b]) for a, b in combinations(SUBSETS, 2)}})
    return report


def check_speaker_independent(split: pd.DataFrame, manifest: pd.DataFrame) -> list[dict]:
    """Raise if any actor is in two subsets of the same fold; else return the :func:`actor_overlap`."""
    overlap = actor_overlap(split, manifest)
    for row in overlap:
        shared = {k: v for k, v in row.items() if k.startswith("shared_") and v}
        if shared:
            raise ValueError(f"split {split['split'].iloc[0]!r} fold {row['fold']} is not speaker-independent: "
                             f"actors shared between subsets {shared}; refusing to write it")
    return overlap


def make_split(manifest: pd.DataFrame, *, protocol: str, seed: int = 0, val_size: float = 0.1, test_size: float = 0.2,
               n_folds: int = 5, published_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Make (or import) a split of the usable clips of ``manifest``, with its ``attrs["info"]``."""
    one_of(protocol, PROTOCOLS, "protocol")
    corpus = manifest.attrs.get("corpus") or {}
    if protocol in PUBLISHED_PROTOCOLS and corpus.get("name", "cremad") != "cremad":
        raise ValueError(f"the {protocol!r} split lists CREMA-D clips; this manifest is of corpus "
                         f"{corpus.get('name')!r}. Use random, speaker, speaker-kfold"
                         f"{' or loso' if corpus.get('group_column') else ''}")
    if protocol == "loso" and not corpus.get("group_column"):
        raise ValueError(f"protocol 'loso' holds out one group (e.g. an IEMOCAP session) per fold, but corpus "
                         f"{corpus.get('name', '?')!r} declares no group column; use speaker-kfold")
    clips, excluded = usable_clips(manifest)
    if clips.empty:
        raise ValueError("no usable clips: every clip's media are missing or broken (see the manifest problems CSV)")
    info: dict = {"protocol": protocol, "seed": seed, "speaker_independent": SPEAKER_INDEPENDENT[protocol]}
    if protocol == "random":  # clip level, stratified by emotion: the same actor appears in every subset
        rest, test = train_test_split(clips, test_size=test_size, random_state=seed, stratify=clips["emotion"])
        train, val = train_test_split(rest, test_size=val_size / (1 - test_size), random_state=seed,
                                      stratify=rest["emotion"])
        split = split_frame([(0, "train", train["clip_id"]), (0, "val", val["clip_id"]),
                             (0, "test", test["clip_id"])], f"random_seed{seed}")
    elif protocol == "speaker":  # balanced by sex (and by emotion: every CREMA-D actor records every one)
        rest_ids, test_ids = split_actors(actor_table(clips), test_size, seed)
        rest = clips[clips["actor_id"].isin(rest_ids)]
        test = clips.loc[clips["actor_id"].isin(test_ids), "clip_id"]
        split = split_frame([*carve_validation(rest, val_size / (1 - test_size), seed), (0, "test", test)],
                            f"speaker_seed{seed}")
    elif protocol in ("speaker-kfold", "loso"):
        split = fold_split(clips, n_folds=n_folds, group_column=corpus["group_column"] if protocol == "loso" else None,
                           seed=seed, val_size=val_size)
    else:
        split, source_info = import_published_split(protocol, clips, published_dir=published_dir, seed=seed,
                                                    val_size=val_size)
        info.update(source_info)
    dup = split[split.duplicated(["fold", "clip_id"], keep=False)]  # e.g. a published train.csv and test.csv share it
    if len(dup):
        first = dup.iloc[0]
        where = sorted(dup.loc[(dup["fold"] == first["fold"]) & (dup["clip_id"] == first["clip_id"]), "subset"])
        raise ValueError(f"{', '.join(info.get('source', [])) or protocol}: {dup['clip_id'].nunique()} clip(s) are "
                         f"in two subsets of one fold, e.g. {first['clip_id']} in {' and '.join(where)} of fold "
                         f"{first['fold']}; a clip scored on the data it was trained or selected on inflates the "
                         "result. Fix the split files (each clip in one of train/test) and run again.")
    overlap = (check_speaker_independent if info["speaker_independent"] else actor_overlap)(split, manifest)
    sizes = split.groupby(["fold", "subset"]).size()
    info.update(name=str(split["split"].iloc[0]), n_folds=int(split["fold"].nunique()),
                sizes={f"fold{f}_{s}": int(n) for (f, s), n in sizes.items()}, actor_overlap=overlap,
                excluded=excluded.to_dict(orient="records"))
    split.attrs["info"] = info
    if corpus:
        split.attrs["corpus"] = corpus
    return split


def write_split(split: pd.DataFrame, out_dir: str | os.PathLike) -> Path:
    """Write ``<name>.csv`` and ``<name>.json`` (info, the CSV's sha256) into ``out_dir``; never over a hand edit."""
    path = Path(out_dir) / f"{split['split'].iloc[0]}.csv"
    sidecar = path.with_suffix(".json")
    recorded = read_json(sidecar).get("csv_sha256") if path.exists() and sidecar.exists() else None
    if recorded and recorded != sha256_file(path):
        raise ValueError(f"{path} was changed after it was written (its sha256 no longer matches {sidecar}); refusing "
                         "to overwrite the edit. Splits here are generated from the manifest and protocol: to use "
                         "your own split, give it as a corpus CSV or a published split (--published-dir); to go back "
                         f"to the generated one, delete {path.name} and {sidecar.name}.")
    write_csv(path, split.loc[:, list(SPLIT_COLUMNS)])
    write_json(sidecar, {**split.attrs.get("info", {}), "csv_sha256": sha256_file(path)})
    return path


def load_split(path: str | os.PathLike) -> pd.DataFrame:
    """Read a split CSV (and its info JSON when present), validating columns."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Split file not found at {path}; create it with `mer splits --manifest M --protocol P --out DIR`")
    split = pd.read_csv(path, dtype={"clip_id": str, "split": str, "subset": str})
    missing = [c for c in SPLIT_COLUMNS if c not in split.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; expected {list(SPLIT_COLUMNS)}")
    bad = set(split["subset"]) - set(SUBSETS)
    if bad:
        raise ValueError(f"{path}: unknown subsets {sorted(bad)}; expected {SUBSETS}")
    if split["split"].nunique() != 1:
        raise ValueError(f"{path}: one split per file expected, found {sorted(split['split'].unique())}")
    if path.with_suffix(".json").exists():
        split.attrs["info"] = read_json(path.with_suffix(".json"))
    return split


def fold_subsets(split: pd.DataFrame, fold: int) -> dict[str, list[str]]:
    """``{"train": [...], "val": [...], "test": [...]}`` clip ids of one fold."""
    group = split[split["fold"] == fold]
    if group.empty:
        raise ValueError(f"fold {fold} not in split (folds: {sorted(split['fold'].unique())})")
    return {s: group.loc[group["subset"] == s, "clip_id"].tolist() for s in SUBSETS}
