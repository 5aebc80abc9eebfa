"""Who the models fail: test scores by actor sex, age group, intensity and emotion, the demographics joined
from the manifest each run trained on (found from its config.json and metrics.json, else ``outputs/manifests/``)."""

from __future__ import annotations

import functools
import json
import logging
import os
from pathlib import Path

import pandas as pd

from mer_utils.core.atomic_io import read_json
from mer_utils.fusion.significance import fast_scores
from mer_utils.data.manifest import default_manifest_path, load_manifest
from mer_utils.core.predictions import labels_of
from mer_utils.report.collect import run_predictions

log = logging.getLogger(__name__)
FACTORS = ("sex", "age_group", "intensity", "emotion")
AGE_BINS = (0, 30, 40, 50, 60, 200)
AGE_LABELS = ("20-29", "30-39", "40-49", "50-59", "60+")


def manifest_candidates(run: pd.Series, runs: pd.DataFrame, outputs: str | os.PathLike) -> list[Path]:
    """Where the manifest of ``run`` may be, most specific first: named by its config.json or metrics.json, by
    those of a fusion run's experts, then ``outputs/manifests/``."""
    outputs, found = Path(outputs), []
    # A fusion run's metrics.json names its experts' run folders; they know the data.
    experts = read_json(outputs / run["run"] / "metrics.json").get("experts", {}).values()
    for row in [run, *(row for record in experts for _, row in runs[runs["run"] == record.get("run_dir")].iterrows())]:
        config = json.loads(row["config"])
        for record in (config, read_json(outputs / row["run"] / "metrics.json")):
            found += [Path(record[k]) for k in ("manifest", "manifest_path") if record.get(k)]
            if record.get("data_root"):
                # prepare_manifest caches it under the outputs folder the run used.
                for base in dict.fromkeys([config.get("outputs") or str(outputs), str(outputs)]):
                    found.append(default_manifest_path(record["data_root"], base))
    found += sorted((outputs / "manifests").glob("*.csv"))
    return list(dict.fromkeys(p for p in found if not p.name.endswith("_problems.csv")))


def breakdown_table(runs: pd.DataFrame, outputs: str | os.PathLike, *,
                    manifest: str | os.PathLike | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Test WA/UA/macro-F1 per run, factor and group; plus notes on runs left out."""
    @functools.cache
    def load(path: Path) -> pd.DataFrame | None:
        try:
            return load_manifest(path) if path.exists() else None
        except (OSError, ValueError) as err:
            log.warning("ignoring manifest candidate %s: %s", path, err)
            return None

    explicit = [Path(manifest)] if manifest else []
    if explicit:
        load_manifest(explicit[0])  # a user-given manifest must exist and be valid
    rows, notes = [], []
    for _, run in runs.iterrows():
        predictions = run_predictions(outputs, run)
        if predictions is None:
            notes.append(f"{run['run']}: no predictions_test.csv, left out of the breakdown")
            continue
        meta = next((m for path in explicit + manifest_candidates(run, runs, outputs) if (m := load(path)) is not None
                     and set(predictions["clip_id"]) <= set(m["clip_id"])), None)
        if meta is None:
            notes.append(f"{run['run']}: no manifest covering its clips was found (config.json data_root, "
                         "outputs/manifests/); pass --manifest PATH to include it in the breakdown")
            continue
        factors = meta.loc[:, ["clip_id", "sex", "age", "intensity", "emotion"]].drop_duplicates("clip_id")
        joined = predictions.merge(factors, on="clip_id", how="left", validate="many_to_one")
        joined["age_group"] = pd.cut(pd.to_numeric(joined["age"], errors="coerce"), bins=list(AGE_BINS),
                                     labels=list(AGE_LABELS), right=False).astype(str)
        names = meta.attrs.get("corpus", {}).get("intensity_names", {})
        joined["intensity"] = [f"{code} ({names[code]})" if code in names else code for code in joined["intensity"]]
        for factor in FACTORS:
            # Dozens of small groups per run: the vectorised scorer (tested equal to classification_scores) avoids
            # sklearn's per-call checks. For the emotion factor a group holds one true class, so UA is its recall.
            for group, part in joined.groupby(factor, sort=True):
                scores = fast_scores(part["y_true"], part["y_pred"], labels=labels_of(predictions))
                rows.append({"run": run["run"], "modality": run["modality"], "backbone": run["backbone"],
                             "protocol": run["protocol"], "factor": factor, "group": str(group), **scores})
    for note in notes:
        log.warning("%s", note)
    return pd.DataFrame(rows, columns=["run", "modality", "backbone", "protocol", "factor", "group", "n", "wa",
                                       "ua", "macro_f1"]), notes
