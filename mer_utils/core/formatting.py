"""Write one table three ways: CSV (numbers), Markdown and LaTeX (formatted). Nothing time-dependent is
written, so a report regenerated from the same runs is byte-identical."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from mer_utils.core.atomic_io import write_csv, write_text

CSV_FLOAT_FORMAT = "%.6f"


def percent(value: float) -> str:
    """``0.6123 -> '61.2'``; missing values print as an en dash.

    >>> percent(0.6123), percent(float("nan"))
    ('61.2', '–')
    """
    return "–" if pd.isna(value) else f"{100 * value:.1f}"


def percent_mean_std(mean: float, std: float, n: int) -> str:
    """``'61.2 ± 1.3'`` when there are several folds or seeds, else ``'61.2'``."""
    if n is None or n <= 1 or pd.isna(std):
        return percent(mean)
    return f"{percent(mean)} ± {percent(std)}"


def p_value(value: float) -> str:
    """Three significant decimals, or ``<0.001``."""
    return "–" if pd.isna(value) else "<0.001" if value < 0.001 else f"{value:.3f}"


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of the frame's cells as text.

    >>> print(markdown_table(pd.DataFrame({"method": ["audio"], "UA": ["61.2"]})), end="")
    | method | UA |
    | --- | --- |
    | audio | 61.2 |
    """
    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in frame.columns) + " |",
             "| " + " | ".join("---" for _ in frame.columns) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def latex_table(frame: pd.DataFrame, *, caption: str = "", label: str) -> str:
    """A booktabs ``table`` environment (escaped, ``±`` as ``$\\pm$``)."""
    styler = frame.astype(str).style.hide(axis="index").format(escape="latex")
    styler = styler.format_index(escape="latex", axis=1)
    body = styler.to_latex(hrules=True, column_format="l" * frame.shape[1])
    body = body.replace("±", r"$\pm$").replace("–", "--")
    lines = [r"\begin{table}[t]", r"\centering", r"\small", *([rf"\caption{{{caption}}}"] if caption else []),
             rf"\label{{{label}}}"]
    return "\n".join([*lines, body.rstrip("\n"), r"\end{table}"]) + "\n"


def write_table(numbers: pd.DataFrame, display: pd.DataFrame, out_dir: str | os.PathLike, name: str, *,
                caption: str = "") -> dict[str, Path]:
    """Write ``name.csv`` (raw numbers), ``name.md`` and ``name.tex`` (formatted)."""
    out_dir = Path(out_dir)
    return {"csv": write_csv(out_dir / f"{name}.csv", numbers, float_format=CSV_FLOAT_FORMAT),
            "md": write_text(out_dir / f"{name}.md", markdown_table(display)),
            "tex": write_text(out_dir / f"{name}.tex", latex_table(display, caption=caption, label=f"tab:{name}"))}
