"""CREMA-D's crowd ratings (``processedResults/``): the manifest's vote columns, and how well the raters recognised
the intended emotion, per response (the measure of Cao et al. 2014) and by majority vote (``..._with_ties``: a tie
counts when the intended emotion is among the tied ones)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from mer_utils.core.atomic_io import write_csv, write_text
from mer_utils.core.formatting import markdown_table, percent
from mer_utils.data.cremad_vocabulary import EMOTIONS

PAPER_ACCURACY = {"voice": 0.409, "face": 0.582, "audio_visual": 0.636}
MODE_ORDER = ("voice", "face", "audio_visual")
# tabulatedVotes.csv's first column is 100000 * mode + clip number.
RATING_MODES = {1: "voice", 2: "face", 3: "audio_visual"}
VOTE_LETTERS = tuple(emotion[0] for emotion in EMOTIONS)  # the raters' letters: A D F H N S
_SUMMARY_COLUMNS = {"VoiceVote": "vote_voice", "FaceVote": "vote_face", "MultiModalVote": "vote_av"}
_AGREEMENT_COLUMNS = {"voice": "agreement_voice", "face": "agreement_face", "audio_visual": "agreement_av"}


def _require(path: Path, columns: list[str]) -> pd.DataFrame:
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; it ships in processedResults/ of the official CREMA-D repository.")
    frame = pd.read_csv(path)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; is this the official CREMA-D file?")
    return frame


def read_tabulated_votes(results_dir: str | os.PathLike) -> pd.DataFrame:
    """One row per clip and rating mode: ``clip_id, mode, A..S, num_responses, agreement, emo_vote``."""
    path = Path(results_dir) / "tabulatedVotes.csv"
    frame = _require(path, ["fileName", "numResponses", "agreement", "emoVote", *VOTE_LETTERS])
    frame = frame.assign(mode=(frame.iloc[:, 0].astype(int) // 100000).map(RATING_MODES))
    if frame["mode"].isna().any():
        raise ValueError(f"{path}: first column must be 100000 x mode (1-3) + clip number")
    return frame.rename(columns={"fileName": "clip_id", "numResponses": "num_responses", "emoVote": "emo_vote"})[
        ["clip_id", "mode", *VOTE_LETTERS, "num_responses", "agreement", "emo_vote"]]


def read_vote_columns(results_dir: str | os.PathLike) -> pd.DataFrame:
    """Per-clip ``vote_voice, vote_face, vote_av`` (ties kept as ``N:S``) and each rating mode's agreement."""
    results_dir = Path(results_dir)
    summary = _require(results_dir / "summaryTable.csv", ["FileName", *_SUMMARY_COLUMNS])
    votes = summary.rename(columns={"FileName": "clip_id", **_SUMMARY_COLUMNS})[["clip_id", *_SUMMARY_COLUMNS.values()]]
    agreement = read_tabulated_votes(results_dir).pivot_table(index="clip_id", columns="mode", values="agreement",
                                                               aggfunc="first")
    agreement = agreement.rename(columns=_AGREEMENT_COLUMNS).reset_index()[["clip_id", *_AGREEMENT_COLUMNS.values()]]
    return votes.merge(agreement, on="clip_id", how="left")


def human_baseline(path: str | os.PathLike) -> pd.DataFrame:
    """Recognition rates per rating mode, overall (``emotion="all"``) and per emotion; ``path``: the data root, the
    metadata folder or processedResults/ itself."""
    path = Path(path)
    results = next((p for p in (path, path / "processedResults") if (p / "tabulatedVotes.csv").exists()), None)
    if results is None:
        raise FileNotFoundError(f"tabulatedVotes.csv not found in {path} or {path / 'processedResults'}; "
                                "it ships with the official CREMA-D repository (processedResults/)")
    votes = read_tabulated_votes(results)
    intended = votes["clip_id"].str.split("_").str[2]
    letters = intended.str[0]
    counts = votes[list(VOTE_LETTERS)].to_numpy()
    votes = votes.assign(emotion=intended, correct=counts[np.arange(len(votes)), letters.map(VOTE_LETTERS.index)],
                         majority=(votes["emo_vote"].astype(str) == letters),
                         majority_tie=[letter in str(v).split(":") for v, letter in zip(votes["emo_vote"], letters)])
    both = pd.concat([votes.assign(emotion="all"), votes])  # every clip counts once more, under "all"
    table = both.groupby(["mode", "emotion"]).agg(
        n_clips=("clip_id", "size"), n_responses=("num_responses", "sum"), correct=("correct", "sum"),
        majority_vote_accuracy=("majority", "mean"), majority_vote_accuracy_with_ties=("majority_tie", "mean"))
    order = pd.MultiIndex.from_product([MODE_ORDER, ("all", *EMOTIONS)], names=["mode", "emotion"])
    table = table.reindex(order).fillna({"n_clips": 0, "n_responses": 0, "correct": 0}).reset_index()
    table.insert(4, "per_response_accuracy", table.pop("correct") / table["n_responses"])
    table["paper_accuracy"] = table["mode"].map(PAPER_ACCURACY).where(table["emotion"] == "all")
    return table.astype({"n_clips": int, "n_responses": int})


def human_baseline_markdown(table: pd.DataFrame) -> str:
    """Modes as rows, emotions as columns (per-response %), paper figure beside."""
    rows = table.set_index(["mode", "emotion"])
    cells = {"all (per response)": ("all", "per_response_accuracy"),
             "majority vote": ("all", "majority_vote_accuracy"), "paper (Cao et al. 2014)": ("all", "paper_accuracy"),
             **{e: (e, "per_response_accuracy") for e in EMOTIONS}}
    return markdown_table(pd.DataFrame([{"rating mode": mode, **{name: percent(rows.loc[(mode, emotion), column])
                                                                 for name, (emotion, column) in cells.items()}}
                                        for mode in MODE_ORDER]))


def write_human_baseline(path: str | os.PathLike, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``human_baseline.csv`` and ``human_baseline.md`` into ``out_dir``."""
    table, out_dir = human_baseline(path), Path(out_dir)
    return (write_csv(out_dir / "human_baseline.csv", table, float_format="%.4f"),
            write_text(out_dir / "human_baseline.md", "Human recognition of the intended emotion (%), CREMA-D crowd "
                       "ratings\n\n" + human_baseline_markdown(table)))
