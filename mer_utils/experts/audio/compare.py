"""Random vs speaker-independent, side by side: the gap measures how much of a score is speaker familiarity,
so the two runs must differ in their split alone (else refused, naming what differs)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from mer_utils.core.adaptation import DEFAULT_ADAPTATION, SHORT_NAMES, adaptation_of, check_same_scoring, pointer_key
from mer_utils.core.atomic_io import atomic_path, read_json, write_csv
from mer_utils.core.metrics import format_mean_std
from mer_utils.core.runs import resolve_latest

METRICS = ("wa", "ua", "macro_f1")
# What may differ between the two runs of a protocol comparison: the split and what spells it.
SPLIT_SETTINGS = frozenset({"protocol", "folds", "published_dir", "split"})


def run_scores(run_dir: str | os.PathLike, *, subset: str = "test") -> dict:
    """One row of scores (mean and std over folds) from a run's metrics.json."""
    run_dir = Path(run_dir)
    path = run_dir / "metrics.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; finish the run with `mer audio train` first")
    metrics = read_json(path)
    if subset not in metrics["summary"]:
        raise ValueError(f"{path} has no {subset!r} scores (subsets: {sorted(metrics['summary'])})")
    summary = metrics["summary"][subset]
    return {"corpus_key": metrics.get("corpus_key", ""), "protocol": metrics["protocol"], "split": metrics["split"],
            "backbone": metrics["backbone"], "mode": metrics.get("mode", ""), "adaptation": adaptation_of(metrics),
            "n_folds": summary["ua"]["n"],
            **{k + s: summary[k][stat] for k in METRICS for s, stat in (("", "mean"), ("_std", "std"))},
            "run_dir": str(run_dir)}


def compare_protocols(
    outputs: str | os.PathLike = "outputs", *, protocols: Sequence[str] = ("random", "speaker"),
    run_dirs: Sequence[str | os.PathLike] | None = None, subset: str = "test", missing: str = "raise",
    adapt: str = DEFAULT_ADAPTATION,
) -> pd.DataFrame:
    """Scores of the newest audio run of each protocol scored as ``adapt`` says (or of ``run_dirs``), then gap
    rows ``first - other`` (fractions). ``missing="skip"``: a protocol not run yet is left out, listed in
    ``table.attrs["missing"]``, as a notebook wants before its sibling has run."""
    if missing not in ("raise", "skip"):
        raise ValueError(f"missing must be 'raise' or 'skip', got {missing!r}")
    not_run, corpus_key = [], None
    if run_dirs is None:
        run_dirs = []
        for protocol in protocols:
            try:
                # The first protocol's newest run fixes the corpus; the others are that corpus's newest.
                run_dirs.append(resolve_latest(outputs, "audio", pointer_key(protocol, adapt), corpus_key=corpus_key))
                corpus_key = corpus_key or run_scores(run_dirs[-1], subset=subset)["corpus_key"] or None
            except FileNotFoundError:
                if missing == "raise":
                    raise
                not_run.append(protocol)
    check_like_for_like(run_dirs)
    rows = [run_scores(d, subset=subset) for d in run_dirs]
    table = pd.DataFrame(rows, columns=["corpus_key", "protocol", "split", "backbone", "mode", "adaptation", "n_folds",
                                        *[k + s for k in METRICS for s in ("", "_std")], "run_dir"])
    gaps = [{"corpus_key": rows[0]["corpus_key"], "protocol": f"gap ({rows[0]['protocol']} - {other['protocol']})",
             "split": "", "backbone": "", "mode": "", "adaptation": rows[0]["adaptation"], "n_folds": None,
             "run_dir": "", **{k + s: None if s else rows[0][k] - other[k] for k in METRICS for s in ("", "_std")}}
            for other in rows[1:]]
    if gaps:
        table = pd.concat([table, pd.DataFrame(gaps)], ignore_index=True)
    table.attrs["missing"] = not_run
    return table


def check_like_for_like(run_dirs: Sequence[str | os.PathLike]) -> None:
    """Refuse runs that differ in anything but their split (corpus, scoring or any result setting)."""
    run_dirs = [Path(d) for d in run_dirs]
    metrics = {str(d): read_json(d / "metrics.json") for d in run_dirs if (d / "metrics.json").exists()}
    corpora = {m.get("corpus_key", "") for m in metrics.values()}
    if len(corpora) > 1:
        raise ValueError(f"these runs are of different corpora ({', '.join(sorted(corpora))}): "
                         f"{', '.join(str(d) for d in run_dirs)}; compare protocols on one corpus")
    check_same_scoring(metrics, what="protocol comparison")
    settings = {str(d): {k: v for k, v in read_json(d / "settings.json").items() if k not in SPLIT_SETTINGS}
                for d in run_dirs if (d / "settings.json").exists()}
    if len(settings) > 1:
        first_dir, first = next(iter(settings.items()))
        for other_dir, other in settings.items():
            differ = sorted(k for k in set(first) | set(other) if first.get(k) != other.get(k))
            if differ:
                listed = ", ".join(f"{k}: {first.get(k)!r} vs {other.get(k)!r}" for k in differ)
                raise ValueError(f"protocol comparison: {first_dir} and {other_dir} differ in more than their split "
                                 f"({listed}); a gap between them would not measure speaker leakage alone. Train "
                                 "both protocols with the same options.")


def scores_table(metrics: dict) -> pd.DataFrame:
    """Per-fold and mean ± std scores of one run (its metrics.json), in percent."""
    rows = [{"fold": r["fold"], "subset": r["subset"], "n": r["n"],
             **{k: f"{100 * r[k]:.1f}" for k in METRICS}} for r in metrics["per_fold"]]
    for subset, summary in metrics["summary"].items():
        rows.append({"fold": "mean ± std", "subset": subset, "n": "",
                     **{k: format_mean_std(summary[k]["mean"], summary[k]["std"]) for k in METRICS}})
    return pd.DataFrame(rows).rename(columns={"wa": "WA", "ua": "UA", "macro_f1": "macro-F1"})


def format_comparison(table: pd.DataFrame) -> pd.DataFrame:
    """The table in percent with ``mean ± std``, as printed in the notebooks."""
    out = table[["protocol", "split", "backbone"]].copy()
    out["scoring"] = [SHORT_NAMES.get(a, a) for a in table["adaptation"]]
    for key in METRICS:
        out[key.upper() if key != "macro_f1" else "macro-F1"] = [
            format_mean_std(m, s) if pd.notna(s) else f"{100 * m:+.1f}"
            for m, s in zip(table[key], table[f"{key}_std"])]
    return out


def plot_comparison(table: pd.DataFrame):
    """Grouped bars (WA, UA, macro-F1) per protocol; a ``matplotlib.figure.Figure``."""
    from matplotlib.figure import Figure

    runs = table[~table["protocol"].str.startswith("gap")]
    fig = Figure(figsize=(6, 3.6), dpi=110)
    ax = fig.subplots()
    width = 0.8 / max(len(runs), 1)
    x = np.arange(len(METRICS))
    for i, (_, row) in enumerate(runs.iterrows()):
        means = [100 * row[k] for k in METRICS]
        stds = [100 * (row[f"{k}_std"] or 0) for k in METRICS]
        bars = ax.bar(x + i * width - 0.4 + width / 2, means, width, yerr=stds, capsize=3,
                      label=f"{row['protocol']} ({row['split']})")
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.axhline(100 / 6, color="grey", linestyle=":", linewidth=1, label="chance (6 classes)")
    ax.set_xticks(x, ["WA", "UA", "macro-F1"])
    ax.set(ylabel="%", ylim=(0, 100))
    scoring = SHORT_NAMES.get(runs["adaptation"].iloc[0], "") if len(runs) else ""
    ax.set_title(f"Speech emotion: protocols compared ({runs['backbone'].iloc[0] if len(runs) else ''}; {scoring})",
                 fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def save_protocol_comparison(table: pd.DataFrame, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``protocol_comparison.csv`` and ``protocol_comparison.png`` into ``out_dir``."""
    out_dir = Path(out_dir)
    csv_path = write_csv(out_dir / "protocol_comparison.csv", table, float_format="%.4f")
    png_path = out_dir / "protocol_comparison.png"
    with atomic_path(png_path) as tmp:
        plot_comparison(table).savefig(tmp, format="png")
    return csv_path, png_path
