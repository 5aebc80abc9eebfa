"""How well the CREMA-D raters recognised the intended emotion.

Cao et al. (2014) report 40.9 % (voice only), 58.2 % (face only) and 63.6 %
(audio-visual) recognition of the intended emotion. This module recomputes it
from ``processedResults/tabulatedVotes.csv`` per rating mode and emotion, in
two ways: per response (share of all ratings that name the intended emotion,
the paper's measure) and by majority vote (share of clips whose majority vote
is the intended emotion; a tie counts when the intended emotion is among the
tied ones, reported separately as ``majority_vote_accuracy_with_ties``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from mer_utils.core.atomic_io import write_csv, write_text
from mer_utils.data.cremad_vocabulary import EMOTIONS, VOTE_LETTER_TO_EMOTION
from mer_utils.data.crowd_votes import VOTE_LETTERS, read_tabulated_votes

PAPER_ACCURACY = {"voice": 0.409, "face": 0.582, "audio_visual": 0.636}
_LETTER = {emotion: letter for letter, emotion in VOTE_LETTER_TO_EMOTION.items()}
MODE_ORDER = ("voice", "face", "audio_visual")


def _results_dir(path: str | os.PathLike) -> Path:
    """Accept the data root, the metadata folder or processedResults/ itself."""
    path = Path(path)
    for candidate in (path, path / "processedResults"):
        if (candidate / "tabulatedVotes.csv").exists():
            return candidate
    raise FileNotFoundError(f"tabulatedVotes.csv not found in {path} or {path / 'processedResults'}; "
                            "it ships with the official CREMA-D repository (processedResults/)")


def human_baseline(path: str | os.PathLike) -> pd.DataFrame:
    """Recognition rates per rating mode, overall (``emotion="all"``) and per emotion."""
    votes = read_tabulated_votes(_results_dir(path))
    intended = votes["clip_id"].str.split("_").str[2]
    letters = intended.map(_LETTER)
    counts = votes[list(VOTE_LETTERS)].to_numpy()
    column = letters.map({letter: i for i, letter in enumerate(VOTE_LETTERS)}).to_numpy()
    votes = votes.assign(
        emotion=intended,
        correct=counts[np.arange(len(votes)), column],
        majority=(votes["emo_vote"].astype(str) == letters),
        majority_tie=[letter in str(v).split(":") for v, letter in zip(votes["emo_vote"], letters)],
    )
    rows = []
    for mode in MODE_ORDER:
        group_mode = votes[votes["mode"] == mode]
        for emotion in ("all", *EMOTIONS):
            group = group_mode if emotion == "all" else group_mode[group_mode["emotion"] == emotion]
            rows.append({
                "mode": mode, "emotion": emotion, "n_clips": len(group),
                "n_responses": int(group["num_responses"].sum()),
                "per_response_accuracy": group["correct"].sum() / group["num_responses"].sum(),
                "majority_vote_accuracy": group["majority"].mean(),
                "majority_vote_accuracy_with_ties": group["majority_tie"].mean(),
                "paper_accuracy": PAPER_ACCURACY[mode] if emotion == "all" else np.nan,
            })
    return pd.DataFrame(rows)


def human_baseline_markdown(table: pd.DataFrame) -> str:
    """Modes as rows, emotions as columns (per-response %), paper figure beside."""
    lines = ["| rating mode | all (per response) | majority vote | paper (Cao et al. 2014) | "
             + " | ".join(EMOTIONS) + " |", "|---" * (4 + len(EMOTIONS)) + "|"]
    for mode in MODE_ORDER:
        rows = table[table["mode"] == mode].set_index("emotion")
        overall = rows.loc["all"]
        cells = [f"{rows.loc[e, 'per_response_accuracy'] * 100:.1f}" for e in EMOTIONS]
        lines.append(f"| {mode} | {overall['per_response_accuracy'] * 100:.1f} | "
                     f"{overall['majority_vote_accuracy'] * 100:.1f} | {overall['paper_accuracy'] * 100:.1f} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_human_baseline(path: str | os.PathLike, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``human_baseline.csv`` and ``human_baseline.md`` into ``out_dir``."""
    table = human_baseline(path)
    out_dir = Path(out_dir)
    csv_path = write_csv(out_dir / "human_baseline.csv", table, float_format="%.4f")
    md_path = write_text(out_dir / "human_baseline.md",
                         "Human recognition of the intended emotion (%), CREMA-D crowd ratings\n\n"
                         + human_baseline_markdown(table))
    return csv_path, md_path
