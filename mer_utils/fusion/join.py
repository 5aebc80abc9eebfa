"""The master table: both experts' predictions side by side, one row per clip; any mismatch of split, clips or
labels is refused, naming the runs and the clips, instead of fusing whatever happens to overlap."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Mapping, NamedTuple

import numpy as np
import pandas as pd

from mer_utils.core.atomic_io import read_json
from mer_utils.core.config import one_of
from mer_utils.core.labels import prob_columns
from mer_utils.core.predictions import labels_of, read_predictions

KEY_COLUMNS = ("clip_id", "fold", "subset")
ON_MISSING = ("raise", "intersect")


class ExpertRun(NamedTuple):
    """A finished expert run: where it is, what it says about itself, its predictions."""

    run_dir: Path
    info: dict
    predictions: pd.DataFrame


def load_expert_run(run_dir: str | os.PathLike, *, modality: str) -> ExpertRun:
    """Read ``metrics.json`` and ``predictions_{val,test}.csv`` of one finished expert run of ``modality``."""
    run_dir = Path(run_dir)
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.exists():
        raise FileNotFoundError(f"{metrics_path} not found: {run_dir} is not a finished {modality} run. Train the "
                                f"{modality} expert (its notebook or `mer {modality} train`) and pass its run folder.")
    info = {k: v for k, v in read_json(metrics_path).items() if k not in ("per_fold", "summary")}
    if info.get("modality") != modality:
        raise ValueError(f"{metrics_path}: modality is {info.get('modality')!r}, expected {modality!r}; "
                         f"did you swap the audio and visual run folders?")
    frames = [read_predictions(run_dir / f"predictions_{subset}.csv", expected_split=info.get("split"),
                               expected_modality=modality, expected_labels=info.get("labels"))
              for subset in ("val", "test")]
    return ExpertRun(run_dir=run_dir, info=info, predictions=pd.concat(frames, ignore_index=True))


def _describe(keys: pd.DataFrame, limit: int = 5) -> str:
    shown = ", ".join(f"{r.clip_id} (fold {r.fold}, {r.subset})" for r in keys.head(limit).itertuples())
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return shown + more


def _check_same_split(frames: Mapping[str, pd.DataFrame], sources: Mapping[str, str]) -> str:
    splits = {name: sorted(frame["split"].astype(str).unique()) for name, frame in frames.items()}
    names = sorted({s for values in splits.values() for s in values})
    if len(names) != 1:
        detail = "; ".join(f"{name} ({sources[name]}): {values}" for name, values in splits.items())
        raise ValueError(f"experts were evaluated on different splits — {detail}. "
                         "Fuse runs trained on the same protocol and seed.")
    return names[0]


def _check_missing(frames: Mapping[str, pd.DataFrame], sources: Mapping[str, str], on_missing: str):
    keys = {name: pd.MultiIndex.from_frame(frame.loc[:, list(KEY_COLUMNS)]) for name, frame in frames.items()}
    common = functools.reduce(lambda a, b: a.intersection(b, sort=False), keys.values())
    dropped = pd.concat([keys[name].difference(common, sort=False).to_frame(index=False).assign(only_in=name)
                         for name in keys], ignore_index=True).sort_values(["only_in", *KEY_COLUMNS])
    if len(dropped) and on_missing == "raise":
        detail = "; ".join(f"{len(group)} clip rows of {name} ({sources[name]}) are missing from "
                           f"{', '.join(o for o in frames if o != name)}: {_describe(group)}"
                           for name, group in dropped.groupby("only_in", sort=True))
        raise ValueError(f"the experts did not predict the same clips — {detail}. Both runs must cover "
                         "the same clips; pass on_missing='intersect' (CLI: --on-missing intersect) to fuse "
                         "the common clips and list the others in dropped_clips.csv.")
    return common.to_frame(index=False), dropped.reset_index(drop=True)


def _check_label_sets(experts: Mapping[str, pd.DataFrame], sources: Mapping[str, str]) -> tuple[str, ...]:
    sets = {name: labels_of(frame) for name, frame in experts.items()}
    if len(set(sets.values())) != 1:
        detail = "; ".join(f"{name} ({sources[name]}): {list(labels)}" for name, labels in sets.items())
        raise ValueError(f"the experts predict different label sets — {detail}. Fuse runs of the same corpus "
                         "and label set.")
    return next(iter(sets.values()))


def _check_labels(merged: pd.DataFrame, names: list[str], labels: tuple[str, ...]) -> None:
    first = names[0]
    for other in names[1:]:
        differ = merged[merged[f"{first}_y_true"] != merged[f"{other}_y_true"]]
        if len(differ):
            raise ValueError(f"{len(differ)} clips have different true labels in {first} and {other} predictions, "
                             f"e.g. {_describe(differ)}: the experts' label mappings disagree. Re-export both with "
                             f"labels in the order {list(labels)}.")


def build_master_table(experts: Mapping[str, pd.DataFrame], *, sources: Mapping[str, str] | None = None,
                       on_missing: str = "raise") -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(master, dropped)`` from ``{name: predictions frame}``; ``sources`` names them in messages.
    ``on_missing="intersect"`` fuses the common clips and lists the others in ``dropped``; ``"raise"`` refuses.
    ``master``: ``clip_id, split, fold, subset, y_true``, then ``<name>_y_pred``, ``<name>_p_<label>`` per expert."""
    one_of(on_missing, ON_MISSING, "on_missing")
    if len(experts) < 2:
        raise ValueError(f"fusion needs at least two experts, got {list(experts)}")
    names = list(experts)
    sources = {name: (sources or {}).get(name, f"{name} predictions") for name in names}
    split = _check_same_split(experts, sources)
    labels = _check_label_sets(experts, sources)
    probs = prob_columns(labels)
    common, dropped = _check_missing(experts, sources, on_missing)
    if common.empty:
        raise ValueError(f"the experts have no clip in common ({', '.join(sources.values())}); "
                         "were they trained on the same corpus?")
    merged = common
    for name in names:
        part = experts[name].loc[:, [*KEY_COLUMNS, "y_true", "y_pred", *probs]]
        part = part.rename(columns={c: f"{name}_{c}" for c in ("y_true", "y_pred", *probs)})
        merged = merged.merge(part, on=list(KEY_COLUMNS), how="left")
    _check_labels(merged, names, labels)
    merged.insert(1, "split", split)
    merged["y_true"] = merged[f"{names[0]}_y_true"]
    ordered = ["clip_id", "split", "fold", "subset", "y_true"]
    ordered += [f"{name}_{c}" for name in names for c in ("y_pred", *probs)]
    master = merged.loc[:, ordered].sort_values(["fold", "subset", "clip_id"], kind="stable")
    return master.reset_index(drop=True), dropped


def expert_names(master: pd.DataFrame) -> list[str]:
    """Expert names present in a master table, in column order."""
    return [c[: -len("_y_pred")] for c in master.columns if c.endswith("_y_pred")]


def master_labels(master: pd.DataFrame) -> tuple[str, ...]:
    """The label set of a master table (the first expert's ``<name>_p_<label>`` columns)."""
    names = expert_names(master)
    if not names:
        raise ValueError("master table has no expert columns (<name>_y_pred)")
    prefix = f"{names[0]}_p_"
    return tuple(c[len(prefix):] for c in master.columns if c.startswith(prefix))


def expert_probabilities(master: pd.DataFrame, expert: str) -> np.ndarray:
    """The ``(n, K)`` probability matrix of one expert, in label order."""
    if expert not in expert_names(master):
        raise ValueError(f"master table has no expert {expert!r}; experts present: {expert_names(master)}")
    columns = [f"{expert}_{c}" for c in prob_columns(master_labels(master))]
    return master.loc[:, columns].to_numpy(dtype=float)
