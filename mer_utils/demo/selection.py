"""Which experts answer a demo input, real-trained first, the fusion rule for them, and what each was trained on.

A synthetic-trained model answers only a synthetic clip, or any input with ``allow_synthetic``; otherwise it is
left out and the answer says so (docs/demo.md).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mer_utils.core.checkpoint_gate import CheckpointError, first_usable
from mer_utils.core.checkpoint_index import entry_path, find_entries
from mer_utils.data.cremad_vocabulary import EMOTIONS

logger = logging.getLogger(__name__)
FUSION_RULE_NAME = "best_fusion.json"
HOW_TO_MAKE = {
    "audio": "run AUDIO_03_modeling_SER_speaker_independent_v01.ipynb or `mer audio train --protocol speaker`",
    "visual": "run VISUAL_01_modeling_FER_CREMA-D_video_v01.ipynb or `mer visual train --protocol speaker`",
}
HOW_TO_GET_REAL = ("train on CREMA-D in Colab with the AUDIO_03, VISUAL_01 and FUSION_02 notebooks, or fetch a "
                   "shared set with `mer hub pull REPO_ID` (or `mer predict --checkpoints hf://REPO_ID`)")

# The label set of the demo's answers on real inputs: CREMA-D's six emotions.
DEMO_LABELS = EMOTIONS
REAL_SPEECH_IN_MINUTES = ("`mer download ravdess --out DIR && mer audio train --data-root DIR --protocol speaker` "
                          "(a real speech expert in minutes, RAVDESS, CC BY-NC-SA 4.0)")
_REAL_FACE = ("train one on CREMA-D with the VISUAL_01 notebook (`mer visual train --protocol speaker`) or fetch "
              "a shared set with `mer hub pull REPO_ID`")
_REAL_SPEECH = (f"get one with {REAL_SPEECH_IN_MINUTES}, train on CREMA-D with the AUDIO_03 notebook, or fetch a "
                "shared set with `mer hub pull REPO_ID`")
_EXPERT_NAME = {"audio": "speech", "visual": "face"}


class Experts(NamedTuple):
    audio: object | None  # has predict_proba(inputs) and labels
    face: object | None  # mer_utils.demo.face.FaceExpert
    paths: dict  # expert -> checkpoint path (str)
    provenance: dict  # expert -> index entry
    notes: list


def covers(labels, wanted=DEMO_LABELS) -> bool:
    """True when a checkpoint's label set holds every label of ``wanted``.

    >>> covers(("ANG", "CAL", "DIS", "FEA", "HAP", "NEU", "SAD", "SUR")), covers(("ANG", "HAP", "NEU", "SAD"))
    (True, False)
    """
    return set(wanted) <= set(labels or ())


def find_real_first(kind: str, checkpoints, *, synthetic_input: bool, allow_synthetic: bool,
                    corpus_key: str | None = None) -> tuple[Path | None, dict, object | None, list[str]]:
    """``(path, entry, expert, notes)`` of the first usable eligible checkpoint (None: none; the notes say why).

    Real input: real entries covering the six emotions (``corpus_key``'s first), then synthetic ones with
    ``allow_synthetic``, else those are left out. Synthetic input: synthetic entries first, then real ones.
    """
    entries = find_entries(checkpoints, modality=kind)
    if corpus_key:  # stable sort: the other expert's corpus first, best first within each group
        entries = sorted(entries, key=lambda e: e.get("corpus_key") != corpus_key)
    synthetic = [e for e in entries if e.get("synthetic")]
    real = [e for e in entries if not e.get("synthetic") and covers(e.get("labels"))]
    if synthetic_input or allow_synthetic:
        usable, left_out = (synthetic + real if synthetic_input else real + synthetic), []
    else:
        usable, left_out = real, synthetic
    candidates = [(path, entry) for entry in usable if (path := entry_path(checkpoints, entry)).exists()
                  or path.with_suffix(".safetensors").exists()]
    notes = [_left_out_note(kind, left_out)] if left_out else []
    if not candidates:
        return None, {}, None, notes
    try:
        path, entry, expert, refused = first_usable(candidates, expert_loader(kind))
    except CheckpointError as err:
        logger.warning("no usable %s checkpoint among the eligible ones (%s)", kind, err)
        return None, {}, None, notes
    for refusal in refused:
        logger.warning("skipped a broken %s checkpoint: %s", kind, refusal)
    return path, entry, expert, []  # a real expert answers: nothing the user misses


def _left_out_note(kind: str, left_out: list[dict]) -> str:
    name = _EXPERT_NAME[kind]
    entry = left_out[0]
    instead = ("the pretrained FER2013 face model answers zero-shot instead" if kind == "visual"
               else "the answer comes without a speech expert")
    how = _REAL_FACE if kind == "visual" else _REAL_SPEECH
    return (f"left out: the {name} expert in the checkpoint index ({entry['path']}) was trained on the SYNTHETIC "
            f"corpus and this input is not a synthetic clip, so its answer would not be meaningful; {instead}. "
            f"For a real {name} expert, {how}. (`--allow-synthetic` uses it anyway.)")


def named_expert(kind: str, path) -> tuple[Path, dict, object]:
    """``(path, {"explicit": path}, expert)`` for a checkpoint the user named: missing or broken is an error."""
    path = Path(path)
    if not path.exists() and not path.with_suffix(".safetensors").exists():
        raise FileNotFoundError(f"{kind} checkpoint not found: {path}; {HOW_TO_MAKE[kind]}")
    return path, {"explicit": str(path)}, expert_loader(kind)(path)


def expert_loader(kind: str):
    if kind == "audio":
        from mer_utils.experts.audio.checkpoint import load_audio_expert
        return load_audio_expert
    from mer_utils.experts.visual.checkpoint import load_visual_expert
    return load_visual_expert


class OverLabels:
    """An expert answering over a subset of its classes (e.g. RAVDESS with calm and surprised kept -> CREMA-D's
    six): the other classes' probability is dropped and the rest renormalised. Everything else is the expert's."""

    def __init__(self, expert, labels):
        self._expert, self.labels = expert, tuple(labels)
        self._columns = [list(expert.labels).index(label) for label in self.labels]

    def __getattr__(self, name):
        return getattr(self._expert, name)

    def _restrict(self, probs):
        probs = np.asarray(probs, dtype=float)[..., self._columns]
        return probs / np.clip(probs.sum(axis=-1, keepdims=True), 1e-12, None)

    def predict_proba(self, *args, **kwargs):
        return self._restrict(self._expert.predict_proba(*args, **kwargs))

    def predict_crops(self, *args, **kwargs):  # a visual expert
        return self._restrict(self._expert.predict_crops(*args, **kwargs))


def over_demo_labels(expert, labels=DEMO_LABELS):
    """``expert``, or an :class:`OverLabels` view when its label set covers ``labels`` in another order or more."""
    if tuple(expert.labels) == tuple(labels) or not covers(expert.labels, labels):
        return expert
    return OverLabels(expert, labels)


def load_experts(inputs, checkpoints, audio_checkpoint=None, visual_checkpoint=None, *, weights_dir="checkpoints",
                 allow_synthetic: bool = False):
    """The speech expert for sound and the face expert for pictures, real-first; a named checkpoint as it is."""
    from mer_utils.demo.face import trained_face_expert, zero_shot_face_expert
    from mer_utils.experts.onnx_export import with_listed_copy

    paths, provenance, notes, audio = {}, {}, [], None
    where = {"synthetic_input": inputs.synthetic, "allow_synthetic": allow_synthetic}
    has_pictures = inputs.kind in ("video", "image")
    index = Path(checkpoints) / "index.json"
    if inputs.kind != "image":
        if audio_checkpoint is not None:
            path, entry, loaded = named_expert("audio", audio_checkpoint)
        else:
            path, entry, loaded, left = find_real_first("audio", checkpoints, **where)
            notes += left
        if path is not None:
            loaded = with_listed_copy("audio", loaded, checkpoints, entry)  # its GE2E encoder's ONNX copy
            audio, paths["audio"], provenance["audio"] = over_demo_labels(loaded), str(path), entry
            if audio is not loaded:
                notes.append(f"the speech expert knows {', '.join(loaded.labels)}: it answers over "
                             f"{', '.join(audio.labels)} (the others dropped, the rest renormalised)")
        elif not has_pictures:
            which = " trained on real data" if notes else ""
            raise FileNotFoundError(
                f"no audio checkpoint{which} in {index} and {inputs.name} has no pictures, so neither expert can "
                f"answer; {_REAL_SPEECH}" + (" (or pass --allow-synthetic to use the synthetic-trained one, whose "
                                             "answer is not meaningful here)" if notes else ""))
        elif not notes:
            notes.append(f"no audio checkpoint in {index}: answering from the face alone "
                         f"({HOW_TO_MAKE['audio']}, or {REAL_SPEECH_IN_MINUTES}, for a speech expert)")
    face = None
    if has_pictures:
        labels = tuple(audio.labels) if audio is not None else DEMO_LABELS
        if visual_checkpoint is not None:
            path, entry, loaded = named_expert("visual", visual_checkpoint)
        else:
            key = provenance.get("audio", {}).get("corpus_key")
            path, entry, loaded, left = find_real_first("visual", checkpoints, corpus_key=key, **where)
            notes += left
        if path is not None:
            loaded = with_listed_copy("visual", loaded, checkpoints, entry)
            face, paths["visual"] = trained_face_expert(over_demo_labels(loaded, labels), entry), str(path)
        else:
            face = zero_shot_face_expert(weights_dir, labels=labels)
            paths["visual"] = "fer2013 (pretrained, zero-shot)"
            notes.append("no trained visual checkpoint for this input: the face expert is the pretrained FER2013 "
                         f"model, zero-shot, mapped onto {', '.join(labels)}")
        provenance["visual"] = face.provenance
    if audio is not None and face is not None and tuple(audio.labels) != face.labels:
        raise ValueError(f"the audio checkpoint {paths['audio']} predicts {list(audio.labels)} but the visual "
                         f"checkpoint {paths['visual']} predicts {list(face.labels)}; use two checkpoints of "
                         "one label set (see checkpoints/index.json)")
    return Experts(audio, face, paths, provenance, notes)


def choose_fusion(experts, checkpoints) -> tuple:
    """``(rule, description)``: the rule tuned on validation clips both experts scored (the index's fusion entry
    of the audio expert's corpus and protocol, else ``best_fusion.json`` of that corpus), else the untuned rule."""
    from mer_utils.fusion.rules import untuned_rule
    audio, visual = experts.provenance.get("audio", {}), experts.provenance.get("visual", {})
    together = (not visual.get("zero_shot") and audio.get("corpus_key")
                and audio.get("corpus_key") == visual.get("corpus_key"))
    rule = _tuned_rule(checkpoints, audio) if together else None
    if rule is None:
        rule = untuned_rule(audio, visual)
    return rule, rule.description


def _tuned_rule(checkpoints, audio_entry: dict):
    """The rule tuned with the audio expert's corpus (and protocol, from the index), else None."""
    from mer_utils.fusion.rules import load_fusion_rule
    key = audio_entry["corpus_key"]
    for entry in find_entries(checkpoints, modality="fusion", corpus_key=key, protocol=audio_entry.get("protocol")):
        if entry_path(checkpoints, entry).exists():
            return load_fusion_rule(entry_path(checkpoints, entry))
    path = Path(checkpoints) / FUSION_RULE_NAME
    if path.exists():
        rule = load_fusion_rule(path)
        if rule.corpus_key == key:  # tuned on these experts' corpus, not another set's
            return rule
    return None


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
    """A warning naming the synthetic-trained experts, unless the input is a synthetic clip (what they are for)."""
    experts = [] if input_is_synthetic else [name for name, entry in provenance.items() if entry.get("synthetic")]
    if not experts:
        return []
    return [f"WARNING: the {' and '.join(experts)} expert{'s were' if len(experts) > 1 else ' was'} trained on the "
            "SYNTHETIC corpus and this input is not a synthetic clip: the answer below is NOT meaningful. "
            f"For real checkpoints, {HOW_TO_GET_REAL}."]


def scoring_note(entry: dict) -> str:
    """How the expert's test score was obtained: each test clip alone, or adapted with other clips of its speaker,
    which a lone input never has (the demo always scores it alone)."""
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
