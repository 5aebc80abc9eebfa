"""The IEMOCAP reader: the audio of ``Session1..5`` into a manifest, labels from ``dialog/EmoEvaluation/*.txt``, the
standard four classes (excited merged into happy). A speaker is a session plus a sex (``Ses01F``); the session is
the group that leave-one-session-out holds out."""

from __future__ import annotations

import os
import re
from pathlib import Path

from mer_utils.data.manifest import CorpusInfo, ManifestResult, check_rows, clip_row, manifest_result, problem_row

NAME = "iemocap"
LABELS = ("ANG", "HAP", "NEU", "SAD")
# IEMOCAP's categories -> the four classes; excited is merged into happy, as in most of the literature.
CATEGORY_TO_LABEL = {"ang": "ANG", "hap": "HAP", "exc": "HAP", "neu": "NEU", "sad": "SAD"}
_LINE_RE = re.compile(r"^\[(?P<start>[\d.]+) - (?P<end>[\d.]+)\]\t(?P<utt>Ses\d{2}[FM]_\S+)\t(?P<cat>\w+)\t")


def corpus_info(**_options) -> CorpusInfo:
    return CorpusInfo(name=NAME, labels=LABELS, protocols=("loso", "speaker", "speaker-kfold", "random"),
                      group_column="session", expected={"speakers": 10, "groups": 5},
                      licence="IEMOCAP licence agreement (USC SAIL): research use, no redistribution")


def _sessions(data_root: Path) -> list[Path]:
    return sorted(p for p in data_root.glob("Session[1-5]") if p.is_dir())


def detect(data_root: Path) -> bool:
    return bool(_sessions(Path(data_root)))


def speaker_of(utterance: str) -> tuple[str, int, str]:
    """``(speaker id, session, sex)`` of an utterance id.

    >>> speaker_of("Ses03M_script01_2_F011")
    ('Ses03F', 3, 'Female')
    """
    session = int(utterance[3:5])
    letter = utterance.rsplit("_", 1)[-1][0]
    if letter not in "FM":
        raise ValueError(f"{utterance!r}: cannot tell the speaker (expected the last part to start with F or M)")
    return f"Ses{session:02d}{letter}", session, "Female" if letter == "F" else "Male"


def read(data_root: str | os.PathLike, *, progress: bool = True, **_options) -> ManifestResult:
    """Manifest of the four-class utterances of every session found under ``data_root``."""
    data_root = Path(data_root)
    sessions = _sessions(data_root)
    if not sessions:
        raise FileNotFoundError(f"No IEMOCAP Session1..5/ folders in {data_root}; expected the distributed layout "
                                "IEMOCAP_full_release/Session1/sentences/wav/... (point --data-root at "
                                "IEMOCAP_full_release)")
    rows, problems = [], []
    for session_dir in sessions:
        labels = {}  # utterance id -> IEMOCAP category
        for path in sorted((session_dir / "dialog" / "EmoEvaluation").glob("*.txt")):
            lines = map(_LINE_RE.match, path.read_text(errors="replace").splitlines())
            labels.update((match["utt"], match["cat"]) for match in lines if match)
        if not labels:
            problems.append(problem_row(f"{session_dir.name}/dialog/EmoEvaluation", "", "audio", "missing",
                                        "no EmoEvaluation label files: the session's labels are missing; "
                                        "re-extract the IEMOCAP archive"))
        wavs = {p.stem: p.relative_to(data_root).as_posix() for p in session_dir.glob("sentences/wav/*/*.wav")}
        # Categories outside the four classes are left out by the standard protocol, not an error.
        for utterance, category in sorted((u, c) for u, c in labels.items() if c in CATEGORY_TO_LABEL):
            speaker, session, sex = speaker_of(utterance)
            rows.append(clip_row(utterance, speaker, CATEGORY_TO_LABEL[category], intensity=category, sex=sex,
                                 sentence=utterance.rsplit("_", 1)[0][7:], audio_path=wavs.get(utterance, ""),
                                 session=session, corpus=NAME))
    if not rows:
        raise RuntimeError(f"No labelled utterances of {LABELS} found under {data_root}")
    problems += check_rows(rows, data_root, progress=progress, default_path=lambda row, _: (
        f"Session{row['session']}/sentences/wav/{row['clip_id'].rsplit('_', 1)[0]}/{row['clip_id']}.wav"))
    return manifest_result(rows, problems, corpus_info())
