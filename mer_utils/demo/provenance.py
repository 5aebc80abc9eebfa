"""What each expert was trained on, and the plain warning when that makes the answer meaningless.

A model trained on the embedded synthetic corpus has learnt the synthesiser's
tones and drawn faces; on a real recording its answer is noise. Whether an
input is a synthetic clip is decided by the input itself
(:func:`~mer_utils.demo.inputs.is_synthetic_clip`), never by its name.
"""

from __future__ import annotations

from pathlib import Path

HOW_TO_GET_REAL = ("train on CREMA-D in Colab with the AUDIO_03, VISUAL_01 and FUSION_02 notebooks, or fetch a "
                   "shared set with `mer hub pull REPO_ID` (or `mer predict --checkpoints hf://REPO_ID`)")


def describe_expert(entry: dict) -> str:
    """One line: corpus (synthetic or real), clips and speakers, protocol, scores, commit, backbone."""
    from mer_utils.core.checkpoint_index import describe

    if entry.get("explicit"):
        return f"{entry['explicit']} (given explicitly, not in a checkpoint index: its training data is not recorded)"
    if entry.get("zero_shot"):
        return f"{entry['backbone']}: pretrained on {entry['corpus']}; {entry['note']}"
    text = describe(entry) + (f"; backbone {entry['backbone']}" if entry.get("backbone") else "")
    return text + "; " + scoring_note(entry)


def synthetic_warnings(provenance: dict, *, input_is_synthetic: bool) -> list[str]:
    """A warning per expert whose checkpoint was trained on the synthetic corpus, when the input is not a
    synthetic clip (empty when the input is one: that is what such a model is for)."""
    if input_is_synthetic:
        return []
    experts = [name for name, entry in provenance.items() if entry.get("synthetic")]
    if not experts:
        return []
    return [f"WARNING: the {' and '.join(experts)} expert{'s were' if len(experts) > 1 else ' was'} trained on the "
            "SYNTHETIC corpus and this input is not a synthetic clip: the answer below is NOT meaningful. "
            f"For real checkpoints, {HOW_TO_GET_REAL}."]


def scoring_note(entry: dict) -> str:
    """How the expert's test score was obtained: each test clip alone ("single clip", as the demo scores an
    input) or with other clips of the same speaker (test-time adaptation, which a lone input does not have).
    One recording has no other clips of its speaker: the demo always scores it alone (an adapted checkpoint
    answers with its single-clip model)."""
    from mer_utils.core.adaptation import SHORT_NAMES, WHAT_IT_USES, adaptation_of
    from mer_utils.core.atomic_io import read_json

    if entry.get("zero_shot") or entry.get("explicit"):
        return ""
    mode = adaptation_of(entry)
    config = Path(entry["run_dir"]) / "config.json" if entry.get("run_dir") else None
    if "adaptation" not in entry and entry.get("modality") == "audio" and config is not None and config.is_file():
        from mer_utils.experts.audio.config import AudioTrainConfig

        try:  # indexed before the mode was recorded: its config says it in the older options
            mode = AudioTrainConfig.upgrade_config(read_json(config)).get("adapt", mode)
        except ValueError:  # a per-speaker normalisation no longer offered: adapted all the same
            mode = "speaker"
    if mode == "none":
        return "single clip: each test clip scored alone, as this input is"
    return (f"its test UA is {SHORT_NAMES[mode]} ({WHAT_IT_USES[mode]}); this input is scored alone (single clip), "
            "which that score does not measure")
