"""``mer report``: every table and figure of a paper from the runs under ``outputs/``, byte-identical for the
same runs (docs/fusion.md, "mer report")."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from mer_utils.core.adaptation import ADAPTATIONS, SHORT_NAMES, WHAT_IT_USES
from mer_utils.core.atomic_io import save_png, write_csv, write_text
from mer_utils.core.formatting import CSV_FLOAT_FORMAT, markdown_table, write_table
from mer_utils.core.runs import safe_name
from mer_utils.data.human_baseline import human_baseline
from mer_utils.report.collect import collect_runs, run_predictions
from mer_utils.report.figures import breakdown_figure, confusion_figure, gap_figure, per_class_f1_figure
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
