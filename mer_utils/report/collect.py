"""Find every finished run (``outputs/<stage>/[<corpus key>/]<name>/metrics.json``) and what it says about itself;
folders without metrics.json are listed as skipped with the reason, so a table never silently lacks a row."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from mer_utils.protocols.splits import protocol_kind

from mer_utils.core.adaptation import ADAPTATIONS, adaptation_of
from mer_utils.core.atomic_io import read_json, sha256_file
from mer_utils.core.runs import settings_hash
from mer_utils.core.predictions import read_predictions

log = logging.getLogger(__name__)
REQUIRED_INFO = ("modality", "protocol", "split", "backbone")
MODALITY_ORDER = ("audio", "visual", "audio_visual")
# Clip-level random splits first, then the speaker-independent ones.
PROTOCOL_ORDER = ("random", "ogm-ge", "speaker", "speaker-kfold", "loso", "audeering", "hicmae")


class Collected(NamedTuple):
    runs: pd.DataFrame
    skipped: pd.DataFrame


def sort_key(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in paper order: corpus, single-clip before adapted, modality, protocol (random first), backbone, run."""
    def rank(column: str, order: tuple) -> pd.Series:
        return frame[column].map({v: i for i, v in enumerate(order)}).fillna(len(order))

    keyed = frame.assign(_a=rank("adaptation", ADAPTATIONS), _m=rank("modality", MODALITY_ORDER),
                         _p=rank("protocol", PROTOCOL_ORDER))
    by = ["corpus", "_a", "_m", "_p", "protocol", "backbone"] + (["run"] if "run" in frame.columns else [])
    return keyed.sort_values(by, kind="stable").drop(columns=["_a", "_m", "_p"]).reset_index(drop=True)


def _read_run(run_dir: Path, outputs: Path) -> dict:
    metrics = read_json(run_dir / "metrics.json")
    missing = [k for k in (*REQUIRED_INFO, "per_fold") if k not in metrics]
    if missing:
        raise ValueError(f"metrics.json lacks {missing}")
    env = read_json(run_dir / "env.json") if (run_dir / "env.json").exists() else {}
    return {
        "run": run_dir.relative_to(outputs).as_posix(), "stage": run_dir.relative_to(outputs).parts[0],
        # Runs written before runs named their corpus were CREMA-D (the embedded default included).
        "corpus": str(metrics.get("corpus", "cremad")) + (" (synthetic)" if metrics.get("synthetic") else ""),
        "corpus_key": str(metrics.get("corpus_key", "")),
        **{k: str(metrics[k]) for k in REQUIRED_INFO},
        "protocol_kind": protocol_kind(str(metrics["protocol"])), "adaptation": adaptation_of(metrics),
        "labels": json.dumps(list(metrics.get("labels") or [])),
        "n_folds": len({row["fold"] for row in metrics["per_fold"]}),
        "pool_key": pool_key(run_dir), "git_commit": env.get("git_commit") or "",
        "config_sha256": sha256_file(run_dir / "config.json"),  # run folders are those with a config.json
        "metrics_sha256": sha256_file(run_dir / "metrics.json"),
        "per_fold": json.dumps(metrics["per_fold"], sort_keys=True),
        "config": json.dumps(read_json(run_dir / "config.json"), sort_keys=True),
    }


# Settings that tell seeds apart (the seed, the run name that spells it, the split drawn with it): runs
# equal in all else are repetitions of one system and pool into one mean ± std.
_SEED_SETTINGS = ("seed", "name", "split")
_RUN_REFERENCES = ("audio_run", "visual_run")  # a fusion run's experts: compared by their own settings


def pool_key(run_dir: Path) -> str:
    """What a run is, less its seed (``settings.json``; a fusion run's experts by their own keys; else the folder)."""
    stamp = run_dir / "settings.json"
    if not stamp.exists():
        return run_dir.as_posix()
    settings = {k: v for k, v in read_json(stamp).items() if k not in _SEED_SETTINGS}
    for key in _RUN_REFERENCES:
        if settings.get(key):
            settings[key] = pool_key(Path(settings[key]))
    return settings_hash(settings)


def collect_runs(outputs: str | os.PathLike = "outputs") -> Collected:
    """Every finished run under ``outputs`` (one row each, sorted; JSON held as text), and the folders skipped."""
    outputs = Path(outputs)
    if not outputs.is_dir():
        raise FileNotFoundError(f"{outputs} does not exist; train an expert first (its notebook or "
                                "`mer audio train` / `mer visual train`), or pass --outputs DIR.")
    rows, skipped = [], []
    # Runs are <stage>/<run> and <stage>/<corpus key>/<run>; folders without config.json are no runs (the report).
    found = [p.parent for p in outputs.glob("*/*/config.json")]
    found += [p.parent for p in outputs.glob("*/*/*/config.json") if p.parent.parent not in found]
    for run_dir in sorted(found, key=lambda p: p.parts):
        try:
            if not (run_dir / "metrics.json").exists():
                raise FileNotFoundError("no metrics.json (unfinished or failed run)")
            rows.append(_read_run(run_dir, outputs))
        except (OSError, ValueError, KeyError) as err:
            log.warning("skipping %s: %s", run_dir, err)
            skipped.append({"run": run_dir.relative_to(outputs).as_posix(), "reason": str(err)})
    columns = ["run", "stage", "corpus", "corpus_key", *REQUIRED_INFO, "protocol_kind", "adaptation", "labels",
               "n_folds", "pool_key", "git_commit", "config_sha256", "metrics_sha256", "per_fold", "config"]
    runs = pd.DataFrame(rows, columns=columns)
    return Collected(sort_key(runs) if len(runs) else runs, pd.DataFrame(skipped, columns=["run", "reason"]))


def run_predictions(outputs: str | os.PathLike, runs_row, subset: str = "test") -> pd.DataFrame | None:
    """A collected run's predictions (None when it has none for ``subset``), refused, naming the file, when their
    split, modality or label set differ from the run's own record."""
    path = Path(outputs) / runs_row["run"] / f"predictions_{subset}.csv"
    if not path.exists():
        return None
    labels = json.loads(runs_row["labels"]) if runs_row.get("labels") else []
    return read_predictions(path, expected_split=runs_row["split"], expected_modality=runs_row["modality"],
                            expected_labels=labels or None)
