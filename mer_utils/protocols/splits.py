"""Train/validation/test splits as files: random, speaker-independent, k-fold, leave-one-group-out.

A split frame has one row per clip and fold: ``clip_id, split, fold, subset``.
Its ``attrs["info"]`` (written beside the CSV as JSON) records the protocol,
seed, sizes, actor overlap and the clips left out because their media are
broken. Speaker protocols refuse to produce a split where an actor appears in
two subsets.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from mer_utils.core.atomic_io import read_json, sha256_file, write_csv, write_json
from mer_utils.core.labels import SUBSETS
from mer_utils.data.media_health import OK
from mer_utils.protocols.actors import actor_table, carve_validation, split_actors, split_frame
from mer_utils.protocols.published import import_published_split

# "loso": leave one group out (IEMOCAP: one session per fold), for corpora that declare a group column.
GENERATED_PROTOCOLS = ("random", "speaker", "speaker-kfold", "loso")
PUBLISHED_PROTOCOLS = ("ogm-ge", "audeering", "hicmae")  # CREMA-D's published splits
PROTOCOLS = GENERATED_PROTOCOLS + PUBLISHED_PROTOCOLS
SPEAKER_INDEPENDENT = {"random": False, "speaker": True, "speaker-kfold": True, "loso": True,
                       "ogm-ge": False, "audeering": True, "hicmae": True}
SPLIT_COLUMNS = ("clip_id", "split", "fold", "subset")


def protocol_kind(protocol: str) -> str:
    """``"random"`` for clip-level splits, ``"speaker"`` for speaker-independent ones (what two runs must share
    to be compared as one protocol).

    >>> protocol_kind("ogm-ge"), protocol_kind("loso")
    ('random', 'speaker')
    """
    return "speaker" if SPEAKER_INDEPENDENT.get(protocol, "speaker" in protocol) else "random"


def usable_clips(manifest: pd.DataFrame, *, require: tuple[str, ...] | str = "auto") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clips whose required media are ``ok``, and the excluded ones with the reason.

    ``require="auto"`` requires every modality the corpus provides (a clip
    must be usable by both experts, so fusion can join them clip by clip).
    """
    if require == "auto":
        require = tuple(k for k in ("audio", "video") if (manifest[f"{k}_status"] != "not_provided").any())
    bad = np.zeros(len(manifest), dtype=bool)
    reasons = pd.Series("", index=manifest.index)
    for kind in require:
        status = manifest[f"{kind}_status"]
        broken = status != OK
        reasons[broken] = reasons[broken] + f"{kind} " + status[broken].astype(str) + "; "
        bad |= broken.to_numpy()
    excluded = pd.DataFrame({"clip_id": manifest.loc[bad, "clip_id"], "reason": reasons[bad].str.rstrip("; ")})
    return manifest.loc[~bad].reset_index(drop=True), excluded.reset_index(drop=True)


def random_split(clips: pd.DataFrame, *, seed: int = 0, val_size: float = 0.1, test_size: float = 0.2) -> pd.DataFrame:
    """Clip-level split stratified by emotion: the same actor appears in every subset."""
    from sklearn.model_selection import train_test_split

    rest, test = train_test_split(clips, test_size=test_size, random_state=seed, stratify=clips["emotion"])
    train, val = train_test_split(rest, test_size=val_size / (1 - test_size), random_state=seed,
                                  stratify=rest["emotion"])
    return split_frame([(0, "train", train["clip_id"]), (0, "val", val["clip_id"]), (0, "test", test["clip_id"])],
                  f"random_seed{seed}")


def speaker_split(clips: pd.DataFrame, *, seed: int = 0, val_size: float = 0.1, test_size: float = 0.2) -> pd.DataFrame:
    """Actor-disjoint split, balanced by sex; emotions stay balanced because
    every CREMA-D actor records every emotion."""
    rest_ids, test_ids = split_actors(actor_table(clips), test_size, seed)
    rest = clips[clips["actor_id"].isin(rest_ids)]
    return split_frame([*carve_validation(rest, val_size / (1 - test_size), seed),
                        (0, "test", clips.loc[clips["actor_id"].isin(test_ids), "clip_id"])], f"speaker_seed{seed}")


def speaker_kfold_split(clips: pd.DataFrame, *, n_folds: int = 5, seed: int = 0, val_size: float = 0.1) -> pd.DataFrame:
    """K actor-disjoint test folds (``StratifiedGroupKFold``), each with a
    validation set of whole actors carved from its training actors."""
    if clips["actor_id"].nunique() < n_folds + 2:
        raise ValueError(f"speaker-kfold with {n_folds} folds needs at least {n_folds + 2} actors, "
                         f"found {clips['actor_id'].nunique()}")
    from sklearn.model_selection import StratifiedGroupKFold

    folds = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    assignments = []
    for fold, (train_idx, test_idx) in enumerate(folds.split(clips, clips["emotion"], groups=clips["actor_id"])):
        assignments += [*carve_validation(clips.iloc[train_idx], val_size / (1 - 1 / n_folds), seed + fold, fold),
                        (fold, "test", clips.iloc[test_idx]["clip_id"])]
    return split_frame(assignments, f"speaker-kfold{n_folds}_seed{seed}")


def leave_one_group_out_split(clips: pd.DataFrame, *, group_column: str, seed: int = 0,
                              val_size: float = 0.1) -> pd.DataFrame:
    """One fold per group (IEMOCAP: session): the group is the test set; validation speakers
    are carved from the other groups' speakers (sex-balanced), so no speaker is in two subsets."""
    groups = sorted(clips[group_column].unique())
    if len(groups) < 2:
        raise ValueError(f"leave-one-group-out needs at least two values of {group_column!r}, found {groups}")
    assignments = []
    for fold, group in enumerate(groups):
        held = clips[group_column] == group
        assignments += [*carve_validation(clips[~held], val_size / (1 - 1 / len(groups)), seed + fold, fold),
                        (fold, "test", clips.loc[held, "clip_id"])]
    return split_frame(assignments, f"loso_seed{seed}")


def actor_overlap(split: pd.DataFrame, manifest: pd.DataFrame) -> list[dict]:
    """Per fold, how many actors each pair of subsets shares."""
    actor_of = manifest.set_index("clip_id")["actor_id"]
    report = []
    for fold, group in split.groupby("fold", sort=True):
        actors = {s: set(actor_of.loc[group.loc[group["subset"] == s, "clip_id"]]) for s in SUBSETS}
        row = {"fold": int(fold), **{f"n_actors_{s}": len(actors[s]) for s in SUBSETS}}
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            row[f"shared_{a}_{b}"] = len(actors[a] & actors[b])
        report.append(row)
    return report


def check_speaker_independent(split: pd.DataFrame, manifest: pd.DataFrame) -> None:
    """Raise if any actor is in two subsets of the same fold."""
    for row in actor_overlap(split, manifest):
        shared = {k: v for k, v in row.items() if k.startswith("shared_") and v}
        if shared:
            raise ValueError(f"split {split['split'].iloc[0]!r} fold {row['fold']} is not speaker-independent: "
                             f"actors shared between subsets {shared}; refusing to write it")


def check_disjoint_clips(split: pd.DataFrame, *, source: str) -> None:
    """Raise if a clip sits in two subsets of one fold (e.g. a published train.csv and test.csv share it)."""
    dup = split[split.duplicated(["fold", "clip_id"], keep=False)]
    if len(dup):
        first = dup.iloc[0]
        where = sorted(dup.loc[(dup["fold"] == first["fold"]) & (dup["clip_id"] == first["clip_id"]), "subset"])
        raise ValueError(f"{source}: {dup['clip_id'].nunique()} clip(s) are in two subsets of one fold, e.g. "
                         f"{first['clip_id']} in {' and '.join(where)} of fold {first['fold']}; a clip scored on "
                         "the data it was trained or selected on inflates the result. Fix the split files "
                         "(each clip in one of train/test) and run again.")


def make_split(
    manifest: pd.DataFrame, *, protocol: str, seed: int = 0, val_size: float = 0.1, test_size: float = 0.2,
    n_folds: int = 5, published_dir: str | os.PathLike | None = None, require: tuple[str, ...] | str = "auto",
) -> pd.DataFrame:
    """Make (or import) a split of the usable clips of ``manifest``.

    The returned frame's ``attrs["info"]`` holds protocol, seed, subset sizes,
    actor overlap per fold and the excluded clips with their reasons.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")
    corpus = manifest.attrs.get("corpus") or {}
    if protocol in PUBLISHED_PROTOCOLS and corpus.get("name", "cremad") != "cremad":
        raise ValueError(f"the {protocol!r} split lists CREMA-D clips; this manifest is of corpus "
                         f"{corpus.get('name')!r}. Use random, speaker, speaker-kfold"
                         f"{' or loso' if corpus.get('group_column') else ''}")
    if protocol == "loso" and not corpus.get("group_column"):
        raise ValueError(f"protocol 'loso' holds out one group (e.g. an IEMOCAP session) per fold, but corpus "
                         f"{corpus.get('name', '?')!r} declares no group column; use speaker-kfold")
    clips, excluded = usable_clips(manifest, require=require)
    if clips.empty:
        raise ValueError("no usable clips: every clip's media are missing or broken (see the manifest problems CSV)")
    info: dict = {"protocol": protocol, "seed": seed, "speaker_independent": SPEAKER_INDEPENDENT[protocol]}
    if protocol == "random":
        split = random_split(clips, seed=seed, val_size=val_size, test_size=test_size)
    elif protocol == "speaker":
        split = speaker_split(clips, seed=seed, val_size=val_size, test_size=test_size)
    elif protocol == "speaker-kfold":
        split = speaker_kfold_split(clips, n_folds=n_folds, seed=seed, val_size=val_size)
    elif protocol == "loso":
        split = leave_one_group_out_split(clips, group_column=corpus["group_column"], seed=seed, val_size=val_size)
    else:
        split, source_info = import_published_split(protocol, clips, published_dir=published_dir, seed=seed,
                                                    val_size=val_size)
        info.update(source_info)
    check_disjoint_clips(split, source=", ".join(info.get("source", [])) or protocol)
    overlap = actor_overlap(split, manifest)
    if info["speaker_independent"]:
        check_speaker_independent(split, manifest)
    sizes = split.groupby(["fold", "subset"]).size()
    info.update({
        "name": str(split["split"].iloc[0]),
        "n_folds": int(split["fold"].nunique()),
        "sizes": {f"fold{f}_{s}": int(n) for (f, s), n in sizes.items()},
        "actor_overlap": overlap,
        "excluded": excluded.to_dict(orient="records"),
    })
    split.attrs["info"] = info
    if corpus:
        split.attrs["corpus"] = corpus
    return split


def write_split(split: pd.DataFrame, out_dir: str | os.PathLike) -> Path:
    """Write ``<name>.csv`` and ``<name>.json`` (its info and the CSV's sha256) into ``out_dir``.

    A split file is regenerated from the manifest and protocol on every run;
    one whose bytes no longer match the sha256 recorded when it was written
    was edited by hand, and is refused rather than silently overwritten.
    """
    name = str(split["split"].iloc[0])
    path = Path(out_dir) / f"{name}.csv"
    _refuse_edited(path)
    write_csv(path, split.loc[:, list(SPLIT_COLUMNS)])
    write_json(path.with_suffix(".json"), {**split.attrs.get("info", {}), "csv_sha256": sha256_file(path)})
    return path


def _refuse_edited(path: Path) -> None:
    sidecar = path.with_suffix(".json")
    if not (path.exists() and sidecar.exists()):
        return
    recorded = read_json(sidecar).get("csv_sha256")
    if recorded and recorded != sha256_file(path):
        raise ValueError(
            f"{path} was changed after it was written (its sha256 no longer matches {sidecar}); refusing to "
            "overwrite the edit. Splits here are generated from the manifest and protocol: to use your own "
            "split, give it as a corpus CSV or a published split (--published-dir); to go back to the generated "
            f"one, delete {path.name} and {sidecar.name}."
        )


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
