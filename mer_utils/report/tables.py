"""The tables of a paper, each as ``(numbers, display)``: raw values for the CSV, text for Markdown/LaTeX; every
row names its run folder(s) and git commit. The breakdown by speaker and emotion: ``(numbers, notes)``."""

from __future__ import annotations

import functools
import json
import logging
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from mer_utils.core.adaptation import SHORT_NAMES
from mer_utils.core.atomic_io import read_json
from mer_utils.core.metrics import SCORE_KEYS, mean_std
from mer_utils.core.predictions import labels_of
from mer_utils.data.manifest import default_manifest_path, load_manifest
from mer_utils.fusion.significance import fast_scores
from mer_utils.protocols.splits import protocol_kind
from mer_utils.report.collect import run_predictions, sort_key
from mer_utils.core.formatting import p_value, percent, percent_mean_std

log = logging.getLogger(__name__)

# Runs are pooled (seeds) only within one corpus and one way of scoring: rows of two corpora, or a
# single-clip and an adapted run, never share a mean.
GROUP = ("corpus", "adaptation", "modality", "backbone", "protocol")


def _short(commit: str) -> str:
    return commit[:10] if commit else "uncommitted"


def _mean_std_texts(numbers: pd.DataFrame, score: str, n: str) -> list[str]:
    return [percent_mean_std(m, s, k)
            for m, s, k in zip(numbers[f"{score}_mean"], numbers[f"{score}_std"], numbers[n])]


def model_table(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per modality × backbone × protocol: val UA and test WA/UA/macro-F1, mean ± std over every (run, fold) of
    the runs that differ only in their seed (one ``pool_key``)."""
    if runs.empty:
        return pd.DataFrame(), pd.DataFrame()
    rows = []
    for key, group in runs.groupby([*GROUP, "pool_key"], sort=False):
        folds = [row for text in group["per_fold"] for row in json.loads(text)]
        out = {**dict(zip(GROUP, key)), "split": ";".join(sorted(group["split"].unique()))}  # key: GROUP + pool_key
        for subset in ("val", "test"):
            scored = [row for row in folds if row["subset"] == subset]
            out[f"n_{subset}"] = len(scored)
            for score in SCORE_KEYS:
                mean, std = mean_std(r[score] for r in scored) if scored else (np.nan, np.nan)
                out[f"{subset}_{score}_mean"], out[f"{subset}_{score}_std"] = mean, std
        out["runs"] = ";".join(group["run"])
        out["git_commits"] = ";".join(sorted({_short(c) for c in group["git_commit"]}))
        rows.append(out)
    numbers = sort_key(pd.DataFrame(rows))
    display = numbers[["corpus", "modality", "backbone", "protocol"]].assign(
        scoring=numbers["adaptation"].map(SHORT_NAMES), n=numbers["n_test"])
    for subset, score, name in (("val", "ua", "val UA"), ("test", "wa", "test WA"), ("test", "ua", "test UA"),
                                ("test", "macro_f1", "test macro-F1")):
        display[name] = _mean_std_texts(numbers, f"{subset}_{score}", f"n_{subset}")
    return numbers, display.assign(run=numbers["runs"], commit=numbers["git_commits"])


def fusion_table(runs: pd.DataFrame, outputs: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every strategy of every fusion run, beside its single experts (from ``fusion_results.csv``)."""
    parts = []
    for _, run in runs[runs["stage"] == "fusion"].iterrows():
        if (path := Path(outputs) / run["run"] / "fusion_results.csv").exists():
            parts.append(pd.read_csv(path, keep_default_na=False, na_values={"mcnemar_p": [""]}).assign(
                run=run["run"], corpus=run["corpus"], protocol=run["protocol"], adaptation=run["adaptation"],
                git_commit=_short(run["git_commit"])))
    if not parts:
        return pd.DataFrame(), pd.DataFrame()
    numbers = pd.concat(parts, ignore_index=True)
    first = ["run", "corpus", "protocol", "adaptation", "method", "kind", "chosen", "params"]
    numbers = numbers[first + [c for c in numbers.columns if c not in first]].assign(
        chosen=lambda frame: frame["chosen"].astype(str) == "True")
    reference = numbers[numbers["best_single"].astype(str) == "True"].groupby("run")["method"].first()
    display = pd.DataFrame({
        "corpus": numbers["corpus"], "protocol": numbers["protocol"],
        "scoring": numbers["adaptation"].map(SHORT_NAMES),
        "method": [f"{m} (chosen)" if c else m for m, c in zip(numbers["method"], numbers["chosen"])],
        "val UA (selection)": numbers["selection_ua"].map(percent),
        **{f"test {s.upper()}": _mean_std_texts(numbers, f"test_{s}", "n_folds") for s in ("wa", "ua")},
        "test UA 95% CI": [f"[{percent(lo)}, {percent(hi)}]"
                           for lo, hi in zip(numbers["test_ua_ci_low"], numbers["test_ua_ci_high"])],
        "McNemar p": [p_value(p) if not pd.isna(p) else f"ref. ({reference[r]})"
                      for p, r in zip(numbers["mcnemar_p"], numbers["run"])],
        "run": numbers["run"], "commit": numbers["git_commit"],
    })
    return numbers, display


def human_table(baseline: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Crowd recognition rates per rating mode (from :func:`mer_utils.data.human_baseline.human_baseline`)."""
    overall = baseline[baseline["emotion"] == "all"].set_index("mode")
    per_emotion = baseline[baseline["emotion"] != "all"].pivot(index="mode", columns="emotion",
                                                                values="per_response_accuracy")
    emotions = [e for e in baseline["emotion"].drop_duplicates() if e != "all"]  # the baseline's own order
    numbers = overall[["n_clips", "per_response_accuracy", "majority_vote_accuracy", "paper_accuracy"]].join(
        per_emotion[emotions]).reset_index()
    display = pd.DataFrame({
        "rating mode": numbers["mode"], "clips": numbers["n_clips"],
        "per response": numbers["per_response_accuracy"].map(percent),
        "majority vote": numbers["majority_vote_accuracy"].map(percent),
        "paper (Cao et al. 2014)": numbers["paper_accuracy"].map(percent),
        **{e: numbers[e].map(percent) for e in emotions},
    })
    return numbers, display


def gap_table(models: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Random vs speaker-independent test scores of the same modality and backbone (fusion: the chosen strategies)."""
    if models.empty:
        return pd.DataFrame(), pd.DataFrame()
    # Pairs stay within one corpus and one way of scoring: a gap between two corpora, or between a single-clip and
    # an adapted run, would measure those, not leakage.
    kinds = models.assign(kind=models["protocol"].map(protocol_kind), _pos=np.arange(len(models)))
    kinds["_group"] = kinds.groupby(["corpus", "adaptation", "modality", kinds["backbone"].str.split(":").str[0]],
                                    sort=False).ngroup()
    pairs = kinds[kinds["kind"] == "random"].merge(kinds[kinds["kind"] == "speaker"], on="_group", suffixes=("", "_s"))
    pairs = pairs.sort_values(["_group", "_pos", "_pos_s"]).reset_index(drop=True)
    if pairs.empty:
        return pd.DataFrame(), pd.DataFrame()
    same = pairs["backbone"] == pairs["backbone_s"]
    numbers = pd.DataFrame({
        **pairs[["corpus", "adaptation", "modality"]],
        "backbone": pairs["backbone"].where(same, pairs["backbone"] + " / " + pairs["backbone_s"]),
        "random_protocol": pairs["protocol"], "speaker_protocol": pairs["protocol_s"],
        **{f"{side}_{score}": value for score in ("wa", "ua") for side, value in (
            ("random", pairs[f"test_{score}_mean"]), ("speaker", pairs[f"test_{score}_mean_s"]),
            ("gap", pairs[f"test_{score}_mean"] - pairs[f"test_{score}_mean_s"]))},
        "runs": pairs["runs"] + ";" + pairs["runs_s"],
    })
    display = pd.DataFrame({
        "corpus": numbers["corpus"], "scoring": numbers["adaptation"].map(SHORT_NAMES),
        "modality": numbers["modality"], "backbone": numbers["backbone"],
        "random split": numbers["random_protocol"], "speaker-independent": numbers["speaker_protocol"],
        "test UA random": numbers["random_ua"].map(percent),
        "test UA speaker-indep.": numbers["speaker_ua"].map(percent),
        **{f"gap {s.upper()} (points)": [f"{100 * v:+.1f}" for v in numbers[f"gap_{s}"]] for s in ("ua", "wa")},
    })
    return numbers, display


# Published CREMA-D results with their split, model selection and scoring (docs/published_results.md).
class Published(NamedTuple):
    method: str
    modality: str  # audio / visual / audio_visual, as our runs name them
    split: str  # "random" (clips; actors on both sides) or "speaker" (actor-independent)
    split_detail: str
    selection: str  # "validation" or what else chose the reported model
    inference: str  # "single clip" or the adaptation used
    metric: str
    number: float | None  # percent; None where the number could not be read in a primary source
    status: str  # where the number was read
    source: str


PUBLISHED = (
    Published("OGM-GE (Peng et al.)", "audio_visual", "random", "one train/test file over clips; actors on both sides",
              "best epoch on test (no validation set)", "single clip", "accuracy", None,
              "protocol read in the code; number not verified here",
              "CVPR 2022, arXiv:2203.15332; GeWu-Lab/OGM-GE_CVPR2022 main.py"),
    Published("G2D (Rakib & Bagavathi)", "audio_visual", "random", "OGM-GE's train/test files",
              "best epoch on test (no validation set)", "single clip", "accuracy", None,
              "protocol read in the code; number not verified here",
              "ICCV 2025, arXiv:2506.21514; rAIson-Lab/G2D student.py, teacher.py"),
    Published("HiCMAE-B (Sun et al.)", "audio_visual", "speaker", "5 actor-independent folds (18/18/18/18/19 actors)",
              "best epoch on the test fold (its validation loader reads test.csv)",
              "single clip (2 segments x 2 crops)", "WAR / UAR", 84.89,
              "quoted from the paper's Table 6 by a third party (UAR 84.91)",
              "Information Fusion 2024, arXiv:2401.05698; sunlicai/HiCMAE datasets_av.py"),
    Published("HiCMAE-B, audio only", "audio", "speaker", "as HiCMAE-B", "as HiCMAE-B", "single clip", "WAR", 71.01,
              "quoted from the paper's Table 6 by a third party", "as HiCMAE-B"),
    Published("WavLM-Plus (baseline in HiCMAE)", "audio", "speaker", "as reported in HiCMAE's Table 6",
              "not stated", "single clip", "WAR", 73.39, "quoted from HiCMAE's Table 6 by a third party",
              "arXiv:2401.05698, Table 6"),
    Published("EmoBox, Whisper large v3", "audio", "random", "one fold over clips; actors on both sides",
              "every saved epoch scored on test (no validation file)", "single clip", "WA", 76.48,
              "EmoBox leaderboard page (ranked by WA)",
              "Interspeech 2024, arXiv:2406.07162; emo-box/EmoBox data/cremad/fold_1, examples/sb/train.py"),
    Published("EVAR linear probes (M2D, BYOL-A)", "audio", "speaker", "63 / 9 / 19 speakers (train / val / test)",
              "validation (early stopping on validation accuracy)", "single clip", "accuracy", None,
              "protocol read in the code; numbers not verified here",
              "Niizumi et al., TASLP 2023/2024; nttcslab/eval-audio-repr evar/metadata/cremad.csv"),
)


def published_table(models: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The published rows, each with our like-for-like row of ``models`` or the reason there is none."""
    rows = []
    for item in PUBLISHED:
        ours, why = _ours_like_for_like(item, models)
        rows.append({**item._asdict(), "ours_test_ua": ours.get("test_ua_mean"),
                     "ours_test_wa": ours.get("test_wa_mean"), "ours_run": ours.get("runs", ""), "ours_note": why})
    numbers = pd.DataFrame(rows)
    display = pd.DataFrame({
        "published": numbers["method"], "modality": numbers["modality"],
        "split": numbers["split"].map({"random": "random clips", "speaker": "actor-independent"}),
        "selection": numbers["selection"], "scoring": numbers["inference"],
        "number (%)": [f"{n:.2f} {m}" if pd.notna(n) else f"— ({m})"
                       for n, m in zip(numbers["number"], numbers["metric"])],
        "status": numbers["status"], "source": numbers["source"],
        "ours, like for like (test UA / WA %)": [
            f"{100 * ua:.1f} / {100 * wa:.1f}" if pd.notna(ua) else note
            for ua, wa, note in zip(numbers["ours_test_ua"], numbers["ours_test_wa"], numbers["ours_note"])],
    })
    return numbers, display


def _ours_like_for_like(item: Published, models: pd.DataFrame) -> tuple[pd.Series | dict, str]:
    if not item.selection.startswith("validation"):  # how ours are selected
        return {}, "none: that number was selected on test, ours on validation"
    if not item.inference.startswith("single clip"):
        return {}, f"none: that number was scored with {item.inference}"
    if models.empty:
        return {}, "no run of ours yet"
    same = models[(models["corpus"] == "cremad") & (models["adaptation"] == "none")
                  & (models["modality"] == item.modality) & (models["protocol"].map(protocol_kind) == item.split)]
    if same.empty:
        return {}, (f"no single-clip {item.modality} run of ours on the real CREMA-D with an "
                    f"{'actor-independent' if item.split == 'speaker' else 'random'} split yet")
    return same.sort_values("test_ua_mean", ascending=False).iloc[0], ""


# Who the models fail: test scores by actor sex, age group, intensity and emotion, the demographics joined from the
# manifest each run trained on (found from its config.json and metrics.json, else ``outputs/manifests/``).
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
