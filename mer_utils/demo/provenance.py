"""What each expert was trained on, and the plain warning when that makes the answer meaningless.

A model trained on the embedded synthetic corpus has learnt the synthesiser's
tones and drawn faces; on a real recording its answer is noise. Whether an
input is a synthetic clip is decided by the input itself
(:func:`~mer_utils.demo.inputs.is_synthetic_clip`), never by its name.
"""

from __future__ import annotations

HOW_TO_GET_REAL = ("train on CREMA-D in Colab with the AUDIO_03, VISUAL_01 and FUSION_02 notebooks, or fetch a "
                   "shared set with `mer hub pull REPO_ID` (or `mer predict --checkpoints hf://REPO_ID`)")


def describe_expert(entry: dict) -> str:
    """One line: corpus (synthetic or real), clips and speakers, protocol, scores, commit, backbone."""
    from mer_utils.core.checkpoint_index import describe

    if entry.get("explicit"):
        return f"{entry['explicit']} (given explicitly, not in a checkpoint index: its training data is not recorded)"
    if entry.get("zero_shot"):
        return f"{entry['backbone']}: pretrained on {entry['corpus']}; {entry['note']}"
    text = describe(entry)
    # One recording has no other clips of its speaker: the demo always scores it alone, whatever the
    # checkpoint's reported scores used (an adapted checkpoint answers with its single-clip model).
    return text + (f"; backbone {entry['backbone']}" if entry.get("backbone") else "") + "; scoring: single clip"


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
