"""Which experts answer a demo input: models trained on real data first.

A checkpoint trained on the embedded synthetic corpus has learnt the synthesiser's tones and drawn faces; on a
real input its answer is noise. So for a real input the demo takes, per expert, a checkpoint trained on real
data whose label set covers CREMA-D's six emotions (any corpus: CREMA-D, RAVDESS speech ...); with no real face
checkpoint, the pretrained FER2013 model zero-shot. A synthetic-trained checkpoint answers a clip of the
synthetic corpus (what it is for), or any input when the user asks (``allow_synthetic``); otherwise it is left
out and the answer says so, with how to get a real one.

The fusion rule follows the experts (:func:`choose_fusion`): the rule tuned on validation clips both experts
scored when there is one, else the untuned rule of :mod:`mer_utils.fusion.untuned`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from mer_utils.core.checkpoint_gate import CheckpointError, first_usable
from mer_utils.core.checkpoint_index import entry_path, find_entries
from mer_utils.data.cremad_vocabulary import EMOTIONS
from mer_utils.demo.results import Experts

logger = logging.getLogger(__name__)
FUSION_RULE_NAME = "best_fusion.json"
HOW_TO_MAKE = {
    "audio": "run AUDIO_03_modeling_SER_speaker_independent_v01.ipynb or `mer audio train --protocol speaker`",
    "visual": "run VISUAL_01_modeling_FER_CREMA-D_video_v01.ipynb or `mer visual train --protocol speaker`",
}

# The label set of the demo's answers on real inputs: CREMA-D's six emotions.
DEMO_LABELS = EMOTIONS
REAL_SPEECH_IN_MINUTES = ("`mer download ravdess --out DIR && mer audio train --data-root DIR --protocol speaker` "
                          "(a real speech expert in minutes, RAVDESS, CC BY-NC-SA 4.0)")
_REAL_FACE = ("train one on CREMA-D with the VISUAL_01 notebook (`mer visual train --protocol speaker`) or fetch "
              "a shared set with `mer hub pull REPO_ID`")
_REAL_SPEECH = (f"get one with {REAL_SPEECH_IN_MINUTES}, train on CREMA-D with the AUDIO_03 notebook, or fetch a "
                "shared set with `mer hub pull REPO_ID`")
_EXPERT_NAME = {"audio": "speech", "visual": "face"}


def covers(labels, wanted=DEMO_LABELS) -> bool:
    """True when a checkpoint's label set holds every label of ``wanted``.

    >>> covers(("ANG", "CAL", "DIS", "FEA", "HAP", "NEU", "SAD", "SUR")), covers(("ANG", "HAP", "NEU", "SAD"))
    (True, False)
    """
    return set(wanted) <= set(labels or ())


def eligible_entries(checkpoints, kind: str, *, synthetic_input: bool, allow_synthetic: bool,
                     corpus_key: str | None = None) -> tuple[list[dict], list[dict]]:
    """``(usable, left_out)`` index entries of ``kind``, best first.

    Real input: real-data entries covering the six emotions (``corpus_key``'s first), then, with
    ``allow_synthetic``, synthetic ones; the synthetic ones otherwise come back as ``left_out``. Synthetic
    input: synthetic entries first (the models made for it), then real ones.
    """
    entries = find_entries(checkpoints, modality=kind)
    if corpus_key:  # stable sort: the other expert's corpus first, best first within each group
        entries = sorted(entries, key=lambda e: e.get("corpus_key") != corpus_key)
    synthetic = [e for e in entries if e.get("synthetic")]
    real = [e for e in entries if not e.get("synthetic") and covers(e.get("labels"))]
    if synthetic_input:
        return synthetic + real, []
    if allow_synthetic:
        return real + synthetic, []
    return real, synthetic


def find_real_first(kind: str, checkpoints, *, synthetic_input: bool, allow_synthetic: bool,
                    corpus_key: str | None = None) -> tuple[Path | None, dict, object | None, list[str]]:
    """``(path, entry, expert, notes)`` of the first usable eligible checkpoint (``None`` when there is none);
    ``notes`` say, when none answers, which synthetic-trained checkpoint was left out and how to get a real one."""

    usable, left_out = eligible_entries(checkpoints, kind, synthetic_input=synthetic_input,
                                        allow_synthetic=allow_synthetic, corpus_key=corpus_key)
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
    """``(path, {"explicit": path}, expert)`` for a checkpoint the user named: it must exist, and a broken one is an
    error (through the checkpoint gate), not skipped as an index candidate is."""
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
    """``expert`` itself when it answers over ``labels`` in that order, else an :class:`OverLabels` view (its
    label set must cover ``labels``; a smaller one stays as it is and the label check later names it)."""
    if tuple(expert.labels) == tuple(labels) or not covers(expert.labels, labels):
        return expert
    return OverLabels(expert, labels)


def load_experts(inputs, checkpoints, audio_checkpoint=None, visual_checkpoint=None, *, weights_dir="checkpoints",
                 allow_synthetic: bool = False):
    """The speech expert when there is sound, the face expert (trained, else FER2013 zero-shot) when there are
    pictures, chosen real-first; a checkpoint the user names is used as it is. Neither: a clear error saying
    how to get a checkpoint. Returns :class:`~mer_utils.demo.scoring.Experts`."""
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
    """``(rule, description)`` for fusing these two experts: the rule tuned on validation clips both scored
    (the index's fusion entry of the audio expert's corpus and protocol, else ``best_fusion.json`` when it was
    tuned on that corpus), else the untuned rule for experts never validated together."""
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
