"""The IEMOCAP reader: the audio of ``Session1..5`` into a manifest, labels from ``dialog/EmoEvaluation/*.txt``, the
standard four classes (excited merged into happy). A speaker is a session plus a sex (``Ses01F``); the session is
the group that leave-one-session-out holds out."""

from __future__ import annotations

import os
import re
from pathlib import Path

from mer_utils.data.corpus import CorpusInfo
from mer_utils.data.manifest import ManifestResult, check_rows, clip_row, manifest_result, problem_row

NAME = "iemocap"
LABELS = ("ANG", "HAP", "NEU", "SAD")
# IEMOCAP's categories -> the four classes; excited is merged into happy, as in most of the literature.
CATEGORY_TO_LABEL = {"ang": "ANG", "hap": "HAP", "exc": "HAP", "neu": "NEU", "sad": "SAD"}
_SESSION_RE = re.compile(r"^Session([1-5])$")
_LINE_RE = re.compile(r"^\[(?P<start>[\d.]+) - (?P<end>[\d.]+)\]\t(?P<utt>Ses\d{2}[FM]_\S+)\t(?P<cat>\w+)\t")


def corpus_info(**_options) -> CorpusInfo:
    return CorpusInfo(name=NAME, labels=LABELS, protocols=("loso", "speaker", "speaker-kfold", "random"),
                      group_column="session", expected={"speakers": 10, "groups": 5},
                      licence="IEMOCAP licence agreement (USC SAIL): research use, no redistribution")


def _sessions(data_root: Path) -> list[Path]:
    if not data_root.is_dir():
        return []
    return sorted(p for p in data_root.iterdir() if p.is_dir() and _SESSION_RE.match(p.name))


def detect(data_root: Path) -> bool:
    return bool(_sessions(Path(data_root)))


def read_labels(session_dir: Path) -> dict[str, str]:
    """``{utterance id: IEMOCAP category}`` from a session's ``dialog/EmoEvaluation/*.txt``."""
    labels = {}
    for path in sorted((session_dir / "dialog" / "EmoEvaluation").glob("*.txt")):
        for line in path.read_text(errors="replace").splitlines():
            match = _LINE_RE.match(line)
            if match:
                labels[match["utt"]] = match["cat"]
    return labels


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
        labels = read_labels(session_dir)
        if not labels:
            problems.append(problem_row(f"{session_dir.name}/dialog/EmoEvaluation", "", "audio", "missing",
                                        "no EmoEvaluation label files: the session's labels are missing; "
                                        "re-extract the IEMOCAP archive"))
        wavs = {p.stem: p for p in (session_dir / "sentences" / "wav").glob("*/*.wav")}
        for utterance, category in sorted(labels.items()):
            label = CATEGORY_TO_LABEL.get(category)
            if label is None:
                continue  # not one of the four classes: left out by the standard protocol, not an error
            speaker, session, sex = speaker_of(utterance)
            path = wavs.get(utterance)
            rel = path.relative_to(data_root).as_posix() if path else ""
            rows.append(clip_row(utterance, speaker, label, sentence=utterance.rsplit("_", 1)[0][7:],
                                 intensity=category, sex=sex, audio_path=rel, session=session, corpus=NAME))
    if not rows:
        raise RuntimeError(f"No labelled utterances of {LABELS} found under {data_root}")
    problems += check_rows(rows, data_root, progress=progress, default_path=lambda row, _: (
        f"Session{row['session']}/sentences/wav/{row['clip_id'].rsplit('_', 1)[0]}/{row['clip_id']}.wav"))
    return manifest_result(rows, problems, corpus_info(), extra_columns=("session", "corpus"))
