"""The tables of a paper, each as ``(numbers, display)``: raw values for the CSV, text for Markdown/LaTeX; every
row names its run folder(s) and git commit.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from mer_utils.core.adaptation import SHORT_NAMES
from mer_utils.core.metrics import mean_std
from mer_utils.protocols.splits import protocol_kind
from mer_utils.report.collect import per_fold, sort_key
from mer_utils.core.formatting import p_value, percent, percent_mean_std

SCORES = ("wa", "ua", "macro_f1")
# Runs are pooled (seeds) only within one corpus and one way of scoring: rows of two corpora, or a
# single-clip and an adapted run, never share a mean.
GROUP = ("corpus", "adaptation", "modality", "backbone", "protocol")


def _short(commit: str) -> str:
    return commit[:10] if commit else "uncommitted"


def model_table(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per modality × backbone × protocol: val UA and test WA/UA/macro-F1, mean ± std over every (run, fold) of
    the runs that differ only in their seed (one ``pool_key``)."""
    if runs.empty:
        return pd.DataFrame(), pd.DataFrame()
    rows = []
    pool = runs["pool_key"] if "pool_key" in runs.columns else runs["run"]
    for key, group in runs.assign(_pool=pool).groupby([*GROUP, "_pool"], sort=False):
        key = key[:len(GROUP)]
        folds = [row for _, run in group.iterrows() for row in per_fold(run)]
        out = dict(zip(GROUP, key))
        out["split"] = ";".join(sorted(group["split"].unique()))
        for subset in ("val", "test"):
            scored = [row for row in folds if row["subset"] == subset]
            out[f"n_{subset}"] = len(scored)
            for score in SCORES:
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
        display[name] = [percent_mean_std(m, s, n) for m, s, n in zip(
            numbers[f"{subset}_{score}_mean"], numbers[f"{subset}_{score}_std"], numbers[f"n_{subset}"])]
    return numbers, display.assign(run=numbers["runs"], commit=numbers["git_commits"])


def fusion_table(runs: pd.DataFrame, outputs: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every strategy of every fusion run, beside its single experts (from ``fusion_results.csv``)."""
    parts = []
    for _, run in runs[runs["stage"] == "fusion"].iterrows():
        path = Path(outputs) / run["run"] / "fusion_results.csv"
        if not path.exists():
            continue
        results = pd.read_csv(path, keep_default_na=False, na_values={"mcnemar_p": [""]})
        parts.append(results.assign(run=run["run"], corpus=run["corpus"], protocol=run["protocol"],
                                    adaptation=run["adaptation"], git_commit=_short(run["git_commit"])))
    if not parts:
        return pd.DataFrame(), pd.DataFrame()
    numbers = pd.concat(parts, ignore_index=True)
    first = ["run", "corpus", "protocol", "adaptation", "method", "kind", "chosen", "params"]
    numbers = numbers[first + [c for c in numbers.columns if c not in first]]
    numbers = numbers.assign(chosen=numbers["chosen"].astype(str) == "True")
    reference = {r: g.loc[g["best_single"].astype(str) == "True", "method"].iloc[0]
                 for r, g in numbers.groupby("run", sort=False)}
    display = pd.DataFrame({
        "corpus": numbers["corpus"], "protocol": numbers["protocol"],
        "scoring": numbers["adaptation"].map(SHORT_NAMES),
        "method": [f"{m} (chosen)" if c else m for m, c in zip(numbers["method"], numbers["chosen"])],
        "val UA (selection)": [percent(v) for v in numbers["selection_ua"]],
        "test WA": [percent_mean_std(m, s, n) for m, s, n in
                    zip(numbers["test_wa_mean"], numbers["test_wa_std"], numbers["n_folds"])],
        "test UA": [percent_mean_std(m, s, n) for m, s, n in
                    zip(numbers["test_ua_mean"], numbers["test_ua_std"], numbers["n_folds"])],
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
        "per response": [percent(v) for v in numbers["per_response_accuracy"]],
        "majority vote": [percent(v) for v in numbers["majority_vote_accuracy"]],
        "paper (Cao et al. 2014)": [percent(v) for v in numbers["paper_accuracy"]],
        **{e: [percent(v) for v in numbers[e]] for e in emotions},
    })
    return numbers, display


def gap_table(models: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Random vs speaker-independent test scores of the same modality and backbone (fusion: the chosen strategies)."""
    rows = []
    if len(models):
        kinds = models.assign(kind=models["protocol"].map(protocol_kind),
                              family=models["backbone"].str.split(":").str[0])
        # Pairs stay within one corpus and one way of scoring: a gap between two corpora, or between a
        # single-clip and an adapted run, would measure those, not leakage.
        for (corpus, adaptation, modality, _family), group in kinds.groupby(
                ["corpus", "adaptation", "modality", "family"], sort=False):
            for _, rnd in group[group["kind"] == "random"].iterrows():
                for _, spk in group[group["kind"] == "speaker"].iterrows():
                    backbone = rnd["backbone"] if rnd["backbone"] == spk["backbone"] else \
                        f"{rnd['backbone']} / {spk['backbone']}"
                    row = {"corpus": corpus, "adaptation": adaptation, "modality": modality, "backbone": backbone,
                           "random_protocol": rnd["protocol"], "speaker_protocol": spk["protocol"]}
                    for score in ("wa", "ua"):
                        row[f"random_{score}"] = rnd[f"test_{score}_mean"]
                        row[f"speaker_{score}"] = spk[f"test_{score}_mean"]
                        row[f"gap_{score}"] = rnd[f"test_{score}_mean"] - spk[f"test_{score}_mean"]
                    row["runs"] = f"{rnd['runs']};{spk['runs']}"
                    rows.append(row)
    numbers = pd.DataFrame(rows)
    if not rows:
        return numbers, numbers
    display = pd.DataFrame({
        "corpus": numbers["corpus"], "scoring": numbers["adaptation"].map(SHORT_NAMES),
        "modality": numbers["modality"], "backbone": numbers["backbone"],
        "random split": numbers["random_protocol"], "speaker-independent": numbers["speaker_protocol"],
        "test UA random": [percent(v) for v in numbers["random_ua"]],
        "test UA speaker-indep.": [percent(v) for v in numbers["speaker_ua"]],
        "gap UA (points)": [f"{100 * v:+.1f}" for v in numbers["gap_ua"]],
        "gap WA (points)": [f"{100 * v:+.1f}" for v in numbers["gap_wa"]],
    })
    return numbers, display
