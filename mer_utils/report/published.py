"""Published CREMA-D results with their split, model selection and scoring, and ours beside them only where all
match on the real CREMA-D (docs/published_results.md).
"""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd


class Published(NamedTuple):
    method: str
    modality: str  # audio / visual / audio_visual, as our runs name them
    split: str  # "random" (clips; actors on both sides) or "speaker" (actor-independent)
    split_detail: str
    selection: str  # "validation" or what else chose the reported model
    inference: str  # "single clip" or the adaptation used
    metric: str
    number: float | None  # percent; None where the number could not be read in a primary source
    status: str  # where the number was read
    source: str


PUBLISHED = (
    Published("OGM-GE (Peng et al.)", "audio_visual", "random", "one train/test file over clips; actors on both sides",
              "best epoch on test (no validation set)", "single clip", "accuracy", None,
              "protocol read in the code; number not verified here",
              "CVPR 2022, arXiv:2203.15332; GeWu-Lab/OGM-GE_CVPR2022 main.py"),
    Published("G2D (Rakib & Bagavathi)", "audio_visual", "random", "OGM-GE's train/test files",
              "best epoch on test (no validation set)", "single clip", "accuracy", None,
              "protocol read in the code; number not verified here",
              "ICCV 2025, arXiv:2506.21514; rAIson-Lab/G2D student.py, teacher.py"),
    Published("HiCMAE-B (Sun et al.)", "audio_visual", "speaker", "5 actor-independent folds (18/18/18/18/19 actors)",
              "best epoch on the test fold (its validation loader reads test.csv)",
              "single clip (2 segments x 2 crops)", "WAR / UAR", 84.89,
              "quoted from the paper's Table 6 by a third party (UAR 84.91)",
              "Information Fusion 2024, arXiv:2401.05698; sunlicai/HiCMAE datasets_av.py"),
    Published("HiCMAE-B, audio only", "audio", "speaker", "as HiCMAE-B", "as HiCMAE-B", "single clip", "WAR", 71.01,
              "quoted from the paper's Table 6 by a third party", "as HiCMAE-B"),
    Published("WavLM-Plus (baseline in HiCMAE)", "audio", "speaker", "as reported in HiCMAE's Table 6",
              "not stated", "single clip", "WAR", 73.39, "quoted from HiCMAE's Table 6 by a third party",
              "arXiv:2401.05698, Table 6"),
    Published("EmoBox, Whisper large v3", "audio", "random", "one fold over clips; actors on both sides",
              "every saved epoch scored on test (no validation file)", "single clip", "WA", 76.48,
              "EmoBox leaderboard page (ranked by WA)",
              "Interspeech 2024, arXiv:2406.07162; emo-box/EmoBox data/cremad/fold_1, examples/sb/train.py"),
    Published("EVAR linear probes (M2D, BYOL-A)", "audio", "speaker", "63 / 9 / 19 speakers (train / val / test)",
              "validation (early stopping on validation accuracy)", "single clip", "accuracy", None,
              "protocol read in the code; numbers not verified here",
              "Niizumi et al., TASLP 2023/2024; nttcslab/eval-audio-repr evar/metadata/cremad.csv"),
)
OUR_SELECTION = "validation"


def published_table(models: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The published rows, each with our like-for-like row of ``models`` or the reason there is none."""
    rows = []
    for item in PUBLISHED:
        ours, why = _ours_like_for_like(item, models)
        rows.append({**item._asdict(), "ours_test_ua": None if ours is None else ours["test_ua_mean"],
                     "ours_test_wa": None if ours is None else ours["test_wa_mean"],
                     "ours_run": "" if ours is None else ours["runs"], "ours_note": why})
    numbers = pd.DataFrame(rows)
    display = pd.DataFrame({
        "published": numbers["method"], "modality": numbers["modality"],
        "split": numbers["split"].map({"random": "random clips", "speaker": "actor-independent"}),
        "selection": numbers["selection"], "scoring": numbers["inference"],
        "number (%)": [f"{n:.2f} {m}" if pd.notna(n) else f"— ({m})"
                       for n, m in zip(numbers["number"], numbers["metric"])],
        "status": numbers["status"], "source": numbers["source"],
        "ours, like for like (test UA / WA %)": [
            f"{100 * ua:.1f} / {100 * wa:.1f}" if pd.notna(ua) else note
            for ua, wa, note in zip(numbers["ours_test_ua"], numbers["ours_test_wa"], numbers["ours_note"])],
    })
    return numbers, display


def _ours_like_for_like(item: Published, models: pd.DataFrame) -> tuple[pd.Series | None, str]:
    if not item.selection.startswith(OUR_SELECTION):
        return None, "none: that number was selected on test, ours on validation"
    if not item.inference.startswith("single clip"):
        return None, f"none: that number was scored with {item.inference}"
    if models.empty:
        return None, "no run of ours yet"
    from mer_utils.protocols.splits import protocol_kind
    same = models[(models["corpus"] == "cremad") & (models["adaptation"] == "none")
                  & (models["modality"] == item.modality) & (models["protocol"].map(protocol_kind) == item.split)]
    if same.empty:
        return None, (f"no single-clip {item.modality} run of ours on the real CREMA-D with an "
                      f"{'actor-independent' if item.split == 'speaker' else 'random'} split yet")
    return same.sort_values("test_ua_mean", ascending=False).iloc[0], ""
