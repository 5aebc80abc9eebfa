"""Read CREMA-D's crowd ratings in ``processedResults/``.

``tabulatedVotes.csv`` has one row per clip and rating mode; its first column
is ``100000 * mode + clip number`` with mode 1 = voice only, 2 = face only
(silent video), 3 = audio-visual.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

RATING_MODES = {1: "voice", 2: "face", 3: "audio_visual"}
VOTE_LETTERS = ("A", "D", "F", "H", "N", "S")
_SUMMARY_COLUMNS = {"VoiceVote": "vote_voice", "FaceVote": "vote_face", "MultiModalVote": "vote_av"}
_AGREEMENT_COLUMNS = {"voice": "agreement_voice", "face": "agreement_face", "audio_visual": "agreement_av"}


def _require(path: Path, columns: list[str]) -> pd.DataFrame:
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found; it ships in processedResults/ of the official CREMA-D repository."
        )
    frame = pd.read_csv(path)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; is this the official CREMA-D file?")
    return frame


def read_tabulated_votes(results_dir: str | os.PathLike) -> pd.DataFrame:
    """One row per clip and rating mode: ``clip_id, mode, A..S, num_responses, agreement, emo_vote``."""
    path = Path(results_dir) / "tabulatedVotes.csv"
    frame = _require(path, ["fileName", "numResponses", "agreement", "emoVote", *VOTE_LETTERS])
    code = frame.iloc[:, 0].astype(int)
    frame = frame.assign(mode=(code // 100000).map(RATING_MODES), clip_number=code % 100000)
    if frame["mode"].isna().any():
        raise ValueError(f"{path}: first column must be 100000 x mode (1-3) + clip number")
    return frame.rename(columns={"fileName": "clip_id", "numResponses": "num_responses", "emoVote": "emo_vote"})[
        ["clip_id", "mode", "clip_number", *VOTE_LETTERS, "num_responses", "agreement", "emo_vote"]
    ]


def read_vote_columns(results_dir: str | os.PathLike) -> pd.DataFrame:
    """Per-clip crowd votes for the manifest: ``vote_voice, vote_face, vote_av`` (ties kept
    as ``N:S``) and the agreement of each rating mode."""
    results_dir = Path(results_dir)
    summary = _require(results_dir / "summaryTable.csv", ["FileName", *_SUMMARY_COLUMNS])
    votes = summary.rename(columns={"FileName": "clip_id", **_SUMMARY_COLUMNS})[["clip_id", *_SUMMARY_COLUMNS.values()]]
    tabulated = read_tabulated_votes(results_dir)
    agreement = tabulated.pivot_table(index="clip_id", columns="mode", values="agreement", aggfunc="first")
    agreement = agreement.rename(columns=_AGREEMENT_COLUMNS).reset_index()
    agreement = agreement[["clip_id", *_AGREEMENT_COLUMNS.values()]]
    return votes.merge(agreement, on="clip_id", how="left")
