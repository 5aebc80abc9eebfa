"""Human-readable summary of a manifest (counts, problems, completeness), and which modalities it can feed."""

from __future__ import annotations

import os

import pandas as pd

from mer_utils.data.corpus import CorpusInfo, reader
from mer_utils.data.manifest import MODALITIES, NOT_PROVIDED, PROBLEM_COLUMNS, problem_row
from mer_utils.data.media_health import OK


def summarize_manifest(manifest: pd.DataFrame, problems: pd.DataFrame | None = None, *,
                       corpus: CorpusInfo | None = None, problems_path: str | os.PathLike | None = None) -> str:
    """Clips, speakers, per-label counts, media health with the fix of each problem, and, where the corpus
    declares its size, the completeness check (CREMA-D: 7,442 clips / 91 actors).

    ``problems`` is the manifest's problems table (stray files included); without it the broken clips of
    the manifest itself are listed. ``problems_path`` is named so the user can open the full list."""
    if corpus is None and manifest.attrs.get("corpus"):
        corpus = CorpusInfo.from_dict(manifest.attrs["corpus"])
    n_clips, n_actors = len(manifest), manifest["actor_id"].nunique()
    lines = [f"{n_clips} clips from {n_actors} actors"]
    sexes = manifest.drop_duplicates("actor_id")["sex"].replace("", "unknown").fillna("unknown").value_counts()
    lines.append("actors by sex: " + ", ".join(f"{k} {v}" for k, v in sorted(sexes.items())))
    counts = manifest["emotion"].value_counts()
    labels = corpus.labels if corpus else tuple(sorted(counts.index))
    lines.append("clips per emotion: " + ", ".join(f"{e} {int(counts.get(e, 0))}" for e in labels))
    for kind in ("audio", "video"):
        status = manifest[f"{kind}_status"].value_counts()
        lines.append(f"{kind}: " + ", ".join(f"{k} {v}" for k, v in sorted(status.items())))
    usable = (manifest["audio_status"] == OK) | (manifest["video_status"] == OK)
    provided = [k for k in ("audio", "video") if (manifest[f"{k}_status"] != "not_provided").any()]
    complete = pd.concat([manifest[f"{k}_status"] == OK for k in provided], axis=1).all(axis=1) if provided else usable
    lines.append(f"usable clips (audio or video ok): {int(usable.sum())}; with every provided modality ok "
                 f"(what the experts train and score on): {int(complete.sum())}")
    if problems is None:  # no problems file at hand: at least every broken clip of the manifest
        problems = _problems_in(manifest)
    if len(problems):
        by_status = problems["status"].value_counts()
        where = f", listed in {problems_path}" if problems_path else ""
        lines.append(f"problems: {len(problems)} (" + ", ".join(f"{k} {v}" for k, v in sorted(by_status.items()))
                     + f"){where}")
        for status, rows in sorted(problems.groupby("status"), key=lambda item: item[0]):
            example = rows.iloc[0]
            lines.append(f"  {status} ({len(rows)}, e.g. {example['path'] or example['clip_id']}): {example['fix']}")
    else:
        lines.append("problems: none")
    expected = corpus.expected if corpus else {}
    if "clips" in expected and n_actors > expected.get("speakers", 0) // 2:  # looks like an attempt at the full corpus
        complete = n_clips == expected["clips"] and n_actors == expected["speakers"]
        verdict = "matches" if complete else "does NOT match"
        lines.append(f"official corpus check: {verdict} {expected['clips']} clips / {expected['speakers']} actors")
    return "\n".join(lines)


def _problems_in(manifest: pd.DataFrame) -> pd.DataFrame:
    rows = [problem_row(row[f"{kind}_path"], row["clip_id"], kind, row[f"{kind}_status"])
            for kind in MODALITIES for _, row in manifest.iterrows() if row[f"{kind}_status"] not in (OK, NOT_PROVIDED)]
    return pd.DataFrame(rows, columns=list(PROBLEM_COLUMNS))


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
