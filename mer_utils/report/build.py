"""``mer report``: every table and figure of a paper from the runs under ``outputs/``, byte-identical for the
same runs (docs/fusion.md, "mer report")."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from mer_utils.core.adaptation import ADAPTATIONS, SHORT_NAMES, WHAT_IT_USES
from mer_utils.core.atomic_io import save_png, write_csv, write_text
from mer_utils.core.formatting import CSV_FLOAT_FORMAT, markdown_table, write_table
from mer_utils.core.metrics import classification_scores, confusion_frame
from mer_utils.core.predictions import labels_of
from mer_utils.core.runs import safe_name
from mer_utils.data.human_baseline import human_baseline
from mer_utils.report.collect import collect_runs, run_predictions
from mer_utils.report.tables import (breakdown_table, fusion_table, gap_table, human_table, model_table,
                                    published_table)

log = logging.getLogger(__name__)
SOURCE_COLUMNS = ("run", "stage", "modality", "protocol", "split", "backbone", "n_folds", "git_commit",
                  "config_sha256", "metrics_sha256")
_CAPTIONS = {
    "models": "Test scores (\\%) per modality and protocol, mean $\\pm$ std over folds and seeds.",
    "fusion": "Late-fusion strategies beside the single experts (tuned and selected on validation).",
    "human": "Human recognition of the intended emotion (\\%), CREMA-D crowd ratings.",
    "protocol_gap": "Random clip split vs speaker-independent split (test UA, \\%).",
    "published": "Published CREMA-D results with their split, model selection and scoring; ours beside them only "
                 "where all three match.",
}


def _protocol_figures(runs, outputs: Path, figures_dir: Path, breakdown: pd.DataFrame) -> list[Path]:
    written = []
    for protocol, subset in runs.groupby("protocol", sort=False):
        base = subset["modality"] + " (" + subset["backbone"] + ")"
        labels = dict(zip(subset["run"], base.where(~base.duplicated(keep=False),
                                                    base + " [" + subset["run"].str.split("/").str[-1] + "]")))
        panels = [(labels[run["run"]], frame) for _, run in subset.iterrows()
                  if (frame := run_predictions(outputs, run)) is not None]
        part = breakdown[breakdown["protocol"] == protocol]
        figures = [("confusion", confusion_figure, panels, "Test confusion matrices"),
                   ("per_class_f1", per_class_f1_figure, panels, "Per-class F1"),
                   ("breakdown", breakdown_figure, part.assign(label=part["run"].map(labels)), "Who the models fail")]
        name = safe_name(protocol)  # protocols such as "cross:ravdess-dev->ravdess-hidden" are no file names
        written += [save_png(draw(data, title=f"{title} — {protocol}"), figures_dir / f"{kind}_{name}.png")
                    for kind, draw, data, title in figures if len(data)]
    return written


def report_figures(report_dir: str | os.PathLike, *, protocol: str | None = None) -> list[Path]:
    """The PNGs of a written report: those of ``protocol`` (all if None), then the protocol gap."""
    folder = Path(report_dir) / "figures"
    pattern = f"*_{safe_name(protocol)}.png" if protocol else "*.png"
    found = [p for p in sorted(folder.glob(pattern)) if p.name != "protocol_gap.png"]
    return found + [p for p in [folder / "protocol_gap.png"] if p.exists()]


def make_report(outputs: str | os.PathLike = "outputs", *, out_dir: str | os.PathLike | None = None,
                metadata: str | os.PathLike | None = None, manifest: str | os.PathLike | None = None,
                figures: bool = True) -> Path:
    """Collect every run under ``outputs`` and write the report (default ``<outputs>/report``); returns ``report.md``.
    ``metadata``: CREMA-D's folder with ``processedResults/``, for the human-perception rows; ``manifest``: for the
    breakdown when the runs' configs do not lead to one; ``figures=False``: tables only."""
    outputs = Path(outputs)
    out_dir = Path(out_dir) if out_dir else outputs / "report"
    collected = collect_runs(outputs)
    runs = collected.runs
    if runs.empty:
        raise FileNotFoundError(f"no finished runs under {outputs}: train the experts first (notebooks "
                                "AUDIO/VISUAL, or `mer audio train` / `mer visual train`), then `mer fuse`.")
    for _, run in runs.iterrows():  # the numbers below come from these files: a broken one stops the report
        for subset in ("val", "test"):
            run_predictions(outputs, run, subset)
    tables_dir, figures_dir = out_dir / "tables", out_dir / "figures"
    sections, notes, written = [], [], set()

    def add_table(name: str, heading: str, numbers: pd.DataFrame, display: pd.DataFrame) -> None:
        written.update(write_table(numbers, display, tables_dir, name, caption=_CAPTIONS[name]).values())
        sections.append(f"## {heading}\n\n{markdown_table(display)}\nSource: `tables/{name}.csv`.\n")

    models = model_table(runs)
    add_table("models", "Models per modality and protocol", *models)
    notes += [f"Scoring \"{SHORT_NAMES[mode]}\" ({mode}): {WHAT_IT_USES[mode]}." for mode in ADAPTATIONS
              if mode in set(runs["adaptation"])]
    if set(runs["adaptation"]) - {"none"}:
        notes.append("Adapted rows use the test set's structure (unlabelled clips of each test speaker): they are "
                     "listed after the single-clip rows and never pooled, paired or ranked with them.")
    fusion = fusion_table(runs, outputs)
    if len(fusion[0]):
        add_table("fusion", "Fusion strategies", *fusion)
    else:
        notes.append("No fusion run yet: run `mer fuse` (or the FUSION notebook) for the fusion table.")
    if metadata:
        add_table("human", "Human perception (CREMA-D raters)", *human_table(human_baseline(metadata)))
    else:
        notes.append("Human-perception rows need the CREMA-D metadata with processedResults/: "
                     "pass --metadata DIR (e.g. ../shared/data/crema-d-meta).")
    add_table("published", "Published results, and ours where like for like", *published_table(models[0]))
    gap = gap_table(models[0])
    if len(gap[0]):
        add_table("protocol_gap", "Random vs speaker-independent split", *gap)
        if figures:
            written.add(save_png(gap_figure(gap[0]), figures_dir / "protocol_gap.png"))
    else:
        notes.append("No modality has both a random and a speaker-independent run: no protocol-gap table.")

    breakdown, breakdown_notes = breakdown_table(runs, outputs, manifest=manifest)
    notes += breakdown_notes
    written.add(write_csv(tables_dir / "breakdown.csv", breakdown, float_format=CSV_FLOAT_FORMAT))
    if figures:
        written.update(_protocol_figures(runs, outputs, figures_dir, breakdown))
    sources = write_csv(out_dir / "sources.csv", runs.loc[:, list(SOURCE_COLUMNS)])
    for folder in (tables_dir, figures_dir) if figures else (tables_dir,):
        for path in sorted(folder.glob("*")):  # an earlier report's files not rewritten (a protocol since deleted)
            if path.is_file() and path.suffix in (".csv", ".md", ".tex", ".png") and path not in written:
                path.unlink()

    parts = [f"# Results\n\n{len(runs)} runs collected from `{outputs.as_posix()}`; every row names its run "
             "folder, and `sources.csv` gives each run's config/metrics sha256 and git commit.\n", *sections]
    if images := sorted(p for p in written if p.suffix == ".png"):
        parts.append("## Figures\n\n" + "".join(f"![{p.stem}](figures/{p.name})\n\n" for p in images))
    if notes:
        parts.append("## Notes\n\n" + "".join(f"- {n}\n" for n in notes))
    if len(collected.skipped):
        parts.append("## Skipped folders\n\n" + "".join(f"- `{r.run}`: {r.reason}\n"
                                                        for r in collected.skipped.itertuples()))
    report = write_text(out_dir / "report.md", "\n".join(parts))
    log.info("report written to %s (sources: %s)", report, sources)
    return report


# The figures, on :class:`matplotlib.figure.Figure` (no pyplot state: safe in notebooks, tests and CI).
_FACTOR_TITLES = {"sex": "actor sex", "age_group": "actor age", "intensity": "intensity",
                  "emotion": "emotion (recall)"}


def _new_figure(n_panels: int, *, panel_size=(3.4, 3.1), max_cols: int = 4):
    from matplotlib.figure import Figure
    cols = min(n_panels, max_cols)
    rows = int(np.ceil(n_panels / cols))
    fig = Figure(figsize=(panel_size[0] * cols, panel_size[1] * rows), dpi=100)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def confusion_figure(panels: Sequence[tuple[str, pd.DataFrame]], *, title: str = ""):
    """Row-normalised test confusion matrices, one panel per ``(label, predictions)``."""
    fig, axes = _new_figure(len(panels))
    for ax, (label, frame) in zip(axes, panels):
        labels = labels_of(frame)
        norm = confusion_frame(frame["y_true"], frame["y_pred"], labels=labels, normalize=True).to_numpy()
        ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
        for i, j in np.ndindex(norm.shape):
            ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if norm[i, j] > 0.55 else "black")
        ax.set_xticks(range(len(labels)), labels, fontsize=7, rotation=45 if len(labels) > 6 else 0)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_xlabel("predicted", fontsize=7)
        ax.set_ylabel("true", fontsize=7)
        ax.set_title(label, fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def per_class_f1_figure(panels: Sequence[tuple[str, pd.DataFrame]], *, title: str = ""):
    """Per-emotion test F1, one bar group per emotion and one bar per run."""
    fig, (ax,) = _new_figure(1, panel_size=(7.5, 3.4))
    width = 0.8 / max(len(panels), 1)
    # Panels of one figure share a label set (the report groups runs by corpus).
    labels = labels_of(panels[0][1]) if panels else ()
    x = np.arange(len(labels))
    for k, (label, frame) in enumerate(panels):
        per_class = classification_scores(frame["y_true"], frame["y_pred"], labels=labels)["per_class"]
        ax.bar(x + (k - (len(panels) - 1) / 2) * width, [per_class[e]["f1"] for e in labels], width, label=label)
    ax.set(xticks=x, xticklabels=labels, ylim=(0, 1), ylabel="test F1")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def gap_figure(gap: pd.DataFrame):
    """Test UA on a random split vs a speaker-independent one, per modality and backbone."""
    fig, (ax,) = _new_figure(1, panel_size=(max(4.0, 1.3 * len(gap) + 2), 3.4))
    x = np.arange(len(gap))
    ax.bar(x - 0.2, gap["random_ua"], 0.4, label="random split")
    ax.bar(x + 0.2, gap["speaker_ua"], 0.4, label="speaker-independent")
    for xi, (r, s) in enumerate(zip(gap["random_ua"], gap["speaker_ua"])):
        ax.text(xi, max(r, s) + 0.02, f"{100 * (r - s):+.1f}", ha="center", fontsize=7)
    columns = ["modality", "backbone", "random_protocol", "speaker_protocol", "adaptation"]
    labels = [f"{m}\n{b}\n{rp} vs {sp}" + ("" if a == "none" else f"\nadapted: {a}")
              for m, b, rp, sp, a in gap[columns].itertuples(index=False)]
    ax.set_xticks(x, labels, fontsize=6)
    ax.set(ylim=(0, 1.1), ylabel="test UA")
    ax.set_title("Protocol gap (points above the bars)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def breakdown_figure(table: pd.DataFrame, *, title: str = ""):
    """Test UA per group of each factor (sex, age, intensity, emotion), one bar per run."""
    factors = [f for f in _FACTOR_TITLES if f in set(table["factor"])]
    fig, axes = _new_figure(len(factors), panel_size=(4.0, 3.2), max_cols=2)
    labels = list(dict.fromkeys(table["label"]))
    width = 0.8 / max(len(labels), 1)
    for ax, factor in zip(axes, factors):
        part = table[table["factor"] == factor]
        ua = part.pivot(index="group", columns="label", values="ua").sort_index().reindex(columns=labels)
        groups, x = list(ua.index), np.arange(len(ua))
        for k, label in enumerate(labels):
            ax.bar(x + (k - (len(labels) - 1) / 2) * width, ua[label].fillna(0), width, label=label)
        # Group sizes under the names: a bar over a handful of clips is not a finding.
        sizes = part.groupby("group")["n"].max().reindex(groups)
        ax.set_xticks(x, [f"{g}\nn={n}" for g, n in zip(groups, sizes)], fontsize=6)
        ax.set_ylim(0, 1)
        ax.set_ylabel("test UA", fontsize=7)
        ax.set_title(_FACTOR_TITLES[factor], fontsize=8)
    if len(axes):
        handles, names = axes[0].get_legend_handles_labels()
        fig.legend(handles, names, loc="lower center", ncol=min(len(names), 3), fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.04 + 0.03 * int(np.ceil(len(labels) / 3)), 1, 1))  # room for the shared legend
    return fig
