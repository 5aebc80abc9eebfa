"""Which modalities a manifest can feed, and, for one it cannot, why and what to add.

An AudioWAV-only download has no video and a VideoFlash-only one no audio: each stage that needs the
missing modality is skipped (``mer run-all``) or refused (``mer audio train``, ``mer visual prepare``)
with the same one line, built here from the manifest's media statuses and the reader's folder names.
"""

from __future__ import annotations

import pandas as pd

from mer_utils.data.corpus import CorpusInfo, reader
from mer_utils.data.media_health import OK

MODALITIES = ("audio", "video")


def modality_gap(manifest: pd.DataFrame, kind: str) -> str | None:
    """None when some clip has ``ok`` ``kind`` media; else one line saying why none has and what to add.

    >>> frame = pd.DataFrame({"clip_id": ["a"], "audio_status": ["not_provided"], "video_status": ["ok"]})
    >>> modality_gap(frame, "video") is None
    True
    >>> print(modality_gap(frame, "audio"))
    no clip has usable audio (audio: not_provided 1); add the corpus's audio files to the data root
    """
    if kind not in MODALITIES:
        raise ValueError(f"unknown modality {kind!r}; choose one of {MODALITIES}")
    status = manifest[f"{kind}_status"].astype(str)
    if (status == OK).any():
        return None
    counts = ", ".join(f"{name} {n}" for name, n in sorted(status.value_counts().items())) or "no clips"
    hints = {}
    if manifest.attrs.get("corpus"):
        hints = getattr(reader(CorpusInfo.from_dict(manifest.attrs["corpus"]).name), "MEDIA_HINTS", {})
    hint = hints.get(kind, f"add the corpus's {kind} files to the data root")
    return f"no clip has usable {kind} ({kind}: {counts}); {hint}"
