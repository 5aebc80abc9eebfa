"""Human-readable summary of a manifest: counts, problems, completeness."""

from __future__ import annotations

import pandas as pd

from mer_utils.data.cremad_vocabulary import CREMAD_N_ACTORS, CREMAD_N_CLIPS, EMOTIONS
from mer_utils.data.media_health import OK


def summarize_manifest(manifest: pd.DataFrame, problems: pd.DataFrame | None = None) -> str:
    """Clips, actors, per-emotion counts, media health and the 7,442/91 check."""
    n_clips, n_actors = len(manifest), manifest["actor_id"].nunique()
    lines = [f"{n_clips} clips from {n_actors} actors"]
    sexes = manifest.drop_duplicates("actor_id")["sex"].replace("", "unknown").fillna("unknown").value_counts()
    lines.append("actors by sex: " + ", ".join(f"{k} {v}" for k, v in sorted(sexes.items())))
    counts = manifest["emotion"].value_counts()
    lines.append("clips per emotion: " + ", ".join(f"{e} {int(counts.get(e, 0))}" for e in EMOTIONS))
    for kind in ("audio", "video"):
        status = manifest[f"{kind}_status"].value_counts()
        lines.append(f"{kind}: " + ", ".join(f"{k} {v}" for k, v in sorted(status.items())))
    usable = (manifest["audio_status"] == OK) | (manifest["video_status"] == OK)
    lines.append(f"usable clips (audio or video ok): {int(usable.sum())}")
    if problems is not None and len(problems):
        by_status = problems["status"].value_counts()
        lines.append(f"problems: {len(problems)} (" + ", ".join(f"{k} {v}" for k, v in sorted(by_status.items())) + ")")
        if "lfs_pointer" in by_status:
            lines.append("  -> Git LFS pointers found: run `git lfs pull` inside your CREMA-D clone.")
    else:
        lines.append("problems: none")
    if n_actors > CREMAD_N_ACTORS // 2:  # looks like an attempt at the full corpus
        complete = n_clips == CREMAD_N_CLIPS and n_actors == CREMAD_N_ACTORS
        verdict = "matches" if complete else "does NOT match"
        lines.append(f"official corpus check: {verdict} {CREMAD_N_CLIPS} clips / {CREMAD_N_ACTORS} actors")
    return "\n".join(lines)
