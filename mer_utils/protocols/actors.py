"""Whole actors to subsets: the building blocks every speaker-independent split is made of."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from mer_utils.core.labels import SUBSETS


def actor_table(clips: pd.DataFrame) -> pd.DataFrame:
    """One row per actor (``actor_id``, ``sex``; an unknown sex is ``"unknown"``)."""
    actors = clips.groupby("actor_id", sort=True).agg(sex=("sex", "first")).reset_index()
    actors["sex"] = actors["sex"].fillna("unknown").replace("", "unknown")
    return actors


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
    parts = [pd.DataFrame({"clip_id": ids.to_numpy(), "split": name, "fold": fold, "subset": subset})
             for fold, subset, ids in assignments]
    frame = pd.concat(parts, ignore_index=True)
    order = {s: i for i, s in enumerate(SUBSETS)}
    frame = frame.assign(_o=frame["subset"].map(order)).sort_values(["fold", "_o", "clip_id"])
    return frame.drop(columns="_o").reset_index(drop=True)
