"""CREMA-D vocabulary (label order, sentence and intensity codes) and clip names
``{ActorID}_{Sentence}_{Emotion}_{Level}``. Kept free of pandas: the demo imports it."""

from __future__ import annotations

import re
from typing import NamedTuple

# The label order is the contract of every predictions CSV (p_ANG … p_SAD) and checkpoint; alphabetical,
# as in HiCMAE's index files.
EMOTIONS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
PROB_COLUMNS = tuple(f"p_{e}" for e in EMOTIONS)

SENTENCES = {
    "IEO": "It's eleven o'clock",
    "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full",
    "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock",
    "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket",
    "ITS": "I think I've seen this before",
    "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}
INTENSITIES = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}

# The official corpus, for the "is my copy complete?" check.
CREMAD_N_CLIPS = 7442
CREMAD_N_ACTORS = 91
_CLIP_RE = re.compile(r"^(?P<actor>\d{4})_(?P<sentence>[A-Z]{3})_(?P<emotion>[A-Z]{3})_(?P<level>[A-Z]{2})$")


class ClipName(NamedTuple):
    clip_id: str
    actor_id: int
    sentence: str
    emotion: str
    intensity: str


def parse_clip_id(name: str) -> ClipName:
    """Split a CREMA-D clip id (or file stem) into its parts.

    >>> parse_clip_id("1001_DFA_ANG_XX").emotion
    'ANG'
    >>> parse_clip_id("1001_XYZ_ANG_XX")
    Traceback (most recent call last):
    ...
    ValueError: '1001_XYZ_ANG_XX' has unknown sentence code 'XYZ'; CREMA-D codes are DFA, IEO, IOM, ITH, ITS, IWL, IWW, MTI, TAI, TIE, TSI, WSI
    """
    match = _CLIP_RE.match(name)
    if not match:
        raise ValueError(f"{name!r} is not a CREMA-D clip name (expected e.g. '1001_DFA_ANG_XX')")
    parts = match.groupdict()
    for field, allowed in (("sentence", SENTENCES), ("emotion", EMOTIONS), ("level", INTENSITIES)):
        if parts[field] not in allowed:
            raise ValueError(f"{name!r} has unknown {field} code {parts[field]!r}; CREMA-D codes are "
                             f"{', '.join(sorted(allowed))}")
    return ClipName(name, int(parts["actor"]), parts["sentence"], parts["emotion"], parts["level"])


def is_clip_id(name: str) -> bool:
    try:
        parse_clip_id(name)
    except ValueError:
        return False
    return True
