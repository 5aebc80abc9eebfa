"""The RAVDESS reader: speech files ``Actor_XX/MM-VV-EE-II-SS-RR-AA.wav`` into a manifest (odd actors are male).
Emotions map onto CREMA-D's codes; calm and surprised are left out unless ``keep_all_emotions=True`` (then ``CAL``
and ``SUR``); song and video files are skipped with a note."""

from __future__ import annotations

import os
import re
from pathlib import Path

from mer_utils.data.cremad_vocabulary import EMOTIONS as SHARED_EMOTIONS  # the six RAVDESS shares with CREMA-D
from mer_utils.data.manifest import CorpusInfo, ManifestResult, check_rows, clip_row, manifest_result, problem_row

NAME = "ravdess"

EMOTION_CODES = {"01": "NEU", "02": "CAL", "03": "HAP", "04": "SAD", "05": "ANG", "06": "FEA", "07": "DIS",
                 "08": "SUR"}
EXTRA_EMOTIONS = ("CAL", "SUR")
ALL_EMOTIONS = tuple(sorted(SHARED_EMOTIONS + EXTRA_EMOTIONS))
INTENSITY_CODES = {"01": "normal", "02": "strong"}
STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
_NAME_RE = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")


def corpus_info(*, keep_all_emotions: bool = False, **_options) -> CorpusInfo:
    return CorpusInfo(name=NAME, labels=ALL_EMOTIONS if keep_all_emotions else SHARED_EMOTIONS,
                      expected={"speakers": 24}, licence="CC BY-NC-SA 4.0",
                      balanced_speakers=True)  # every actor records the same emotions, intensities and statements


def detect(path: str | os.PathLike) -> bool:
    """True when ``path`` holds RAVDESS ``Actor_XX/`` folders."""
    return any(p.is_dir() for p in Path(path).glob("Actor_[0-9][0-9]"))


def parse_ravdess_name(stem: str) -> dict:
    """Fields of a RAVDESS file stem.

    >>> parse_ravdess_name("03-01-05-02-01-01-07")["emotion"], parse_ravdess_name("03-01-05-02-01-01-07")["sex"]
    ('ANG', 'Male')
    """
    match = _NAME_RE.match(stem)
    if not match:
        raise ValueError(f"{stem!r} is not a RAVDESS file name (expected e.g. '03-01-05-01-01-01-01')")
    modality, channel, emotion, intensity, statement, repetition, actor = match.groups()
    if emotion not in EMOTION_CODES or intensity not in INTENSITY_CODES or statement not in STATEMENTS:
        raise ValueError(f"{stem!r} has an unknown emotion, intensity or statement code")
    return {"modality": modality, "vocal_channel": channel, "emotion": EMOTION_CODES[emotion],
            "intensity": INTENSITY_CODES[intensity], "statement": statement, "repetition": int(repetition),
            "actor_id": int(actor), "sex": "Male" if int(actor) % 2 else "Female"}


def read(data_root: str | os.PathLike, *, keep_all_emotions: bool = False, progress: bool = True,
         **_options) -> ManifestResult:
    """Manifest of RAVDESS speech files under ``Actor_XX/`` folders."""
    data_root = Path(data_root)
    if not detect(data_root):
        raise FileNotFoundError(f"No RAVDESS Actor_XX/ folders in {data_root}; expected the distributed layout "
                                "Actor_01/03-01-01-01-01-01-01.wav ...")
    rows, problems = [], []
    for path in sorted(data_root.glob("Actor_*/*")):
        rel = path.relative_to(data_root).as_posix()
        try:
            fields = parse_ravdess_name(path.stem)
        except ValueError as err:
            problems.append(problem_row(rel, "", "audio", "not_a_clip", f"{err}; ignored"))
            continue
        if fields["modality"] != "03" or path.suffix.lower() != ".wav":
            problems.append(problem_row(rel, path.stem, "video", "skipped_video",
                                        "RAVDESS video files are not used (audio-only corpus here); skipped"))
            continue
        if fields["vocal_channel"] != "01":
            problems.append(problem_row(rel, path.stem, "audio", "skipped_song",
                                        "song (vocal channel 02) is not speech; skipped"))
            continue
        if fields["emotion"] in EXTRA_EMOTIONS and not keep_all_emotions:
            continue  # not an error: calm/surprised have no CREMA-D class
        rows.append(clip_row(path.stem, fields["actor_id"], fields["emotion"], sentence=f"S{fields['statement']}",
                             sentence_text=STATEMENTS[fields["statement"]], intensity=fields["intensity"],
                             sex=fields["sex"], audio_path=rel, repetition=fields["repetition"], corpus=NAME))
    if not rows:
        raise RuntimeError(f"No RAVDESS speech files found under {data_root}/Actor_*/")
    problems += check_rows(rows, data_root, progress=progress)
    return manifest_result(rows, problems, corpus_info(keep_all_emotions=keep_all_emotions))
