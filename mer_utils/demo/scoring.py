"""Load the experts a demo input needs, score it (whole, or window by window), fuse, and note what the
user must know: synthetic-trained models on real input, audio or frames covering less than the input."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np


class Experts(NamedTuple):
    audio: object | None  # has start_predict_proba(inputs) -> finish(), predict_proba(inputs) and labels
    face: object | None  # mer_utils.demo.face.FaceExpert
    paths: dict  # expert -> checkpoint path (str)
    provenance: dict  # expert -> index entry
    notes: list


def load_experts(inputs, checkpoints, audio_checkpoint=None, visual_checkpoint=None, *,
                 weights_dir="checkpoints") -> Experts:
    """The speech expert when there is sound and a checkpoint; the face expert (trained, else FER2013
    zero-shot) when there are pictures. Neither: a clear error saying how to get a checkpoint."""
    from mer_utils.demo.face import trained_face_expert, zero_shot_face_expert
    from mer_utils.demo.predict import _FALLBACK_LABELS, _HOW_TO_MAKE, _optional_expert
    from mer_utils.demo.provenance import HOW_TO_GET_REAL

    paths, provenance, notes, audio = {}, {}, [], None
    has_pictures = inputs.kind in ("video", "image")
    if inputs.kind != "image":
        path, entry, loaded = _optional_expert("audio", checkpoints, audio_checkpoint)
        if path is not None:
            audio, paths["audio"] = loaded, str(path)
            provenance["audio"] = entry or _explicit(path)
        elif not has_pictures:
            raise FileNotFoundError(
                f"no audio checkpoint in {Path(checkpoints) / 'index.json'} and {inputs.name} has no pictures, so "
                f"neither expert can answer; {_HOW_TO_MAKE['audio']}, or {HOW_TO_GET_REAL}")
        else:
            notes.append(f"no audio checkpoint in {Path(checkpoints) / 'index.json'}: answering from the face alone "
                         f"({_HOW_TO_MAKE['audio']} for a speech expert)")
    face = None
    if has_pictures:
        key = provenance.get("audio", {}).get("corpus_key")
        path, entry, loaded = _optional_expert("visual", checkpoints, visual_checkpoint, corpus_key=key)
        if path is not None:
            face, paths["visual"] = trained_face_expert(loaded, entry or _explicit(path)), str(path)
        else:
            labels = tuple(audio.labels) if audio is not None else _FALLBACK_LABELS
            face = zero_shot_face_expert(weights_dir, labels=labels)
            paths["visual"] = "fer2013 (pretrained, zero-shot)"
            notes.append("no trained visual checkpoint: the face expert is the pretrained FER2013 model, zero-shot, "
                         f"mapped onto {', '.join(labels)}")
        provenance["visual"] = face.provenance
    if audio is not None and face is not None and tuple(audio.labels) != face.labels:
        raise ValueError(f"the audio checkpoint {paths['audio']} predicts {list(audio.labels)} but the visual "
                         f"checkpoint {paths['visual']} predicts {list(face.labels)}; use two checkpoints of "
                         "one corpus (see checkpoints/index.json)")
    return Experts(audio, face, paths, provenance, notes)


def _explicit(path) -> dict:
    return {"explicit": str(path)}


def _input_audio(inputs) -> tuple[np.ndarray | None, int, str]:
    """Samples, rate and a description of where the audio came from (None: no audible audio)."""
    from mer_utils.demo.inputs import decode_audio

    if inputs.audio is not None:
        samples, rate = decode_audio(inputs.audio)
        return samples, rate, str(inputs.audio)
    if inputs.kind != "video":
        return None, 0, "none"
    from mer_utils.data.media_health import SAMPLE_RATE
    from mer_utils.data.video_audio import read_audio_track

    track = read_audio_track(inputs.video)
    if track is None or not np.abs(track).max() > 1e-3:
        return None, 0, "none (the video has no audible audio track; pass a recording to use the audio expert)"
    return track, SAMPLE_RATE, f"audio track of {inputs.video.name}"


def score(inputs, experts: Experts, checkpoints, *, window: float, hop: float):
    """Score ``inputs`` with ``experts``: whole when it fits one window, else window by window."""
    from mer_utils.demo.predict import DemoResult
    from mer_utils.demo.provenance import synthetic_warnings
    from mer_utils.demo.timeline import window_bounds

    samples, rate, audio_source = (None, 0, "none") if experts.audio is None else _input_audio(inputs)
    if samples is None:  # a silent video: the speech expert did not answer, so it is not listed
        experts = experts._replace(audio=None, paths={k: v for k, v in experts.paths.items() if k != "audio"},
                                   provenance={k: v for k, v in experts.provenance.items() if k != "audio"})
    notes = synthetic_warnings(experts.provenance, input_is_synthetic=inputs.synthetic) + list(experts.notes)
    duration = max(inputs.duration_s, 0.0 if samples is None else len(samples) / rate)
    long = inputs.kind != "image" and duration > window + 1e-6
    starts, ends = window_bounds(duration, window=window, hop=hop) if long else (np.array([0.0]), np.array([duration]))
    audio_probs = None
    if samples is not None:
        from mer_utils.demo.timeline import audio_windows

        # Begun before the face is scored: a cold process computes part of the audio features meanwhile.
        audio_probs = experts.audio.start_predict_proba(audio_windows(samples, rate, starts, ends))
        notes += _audio_coverage(experts.audio, samples, rate, duration, ends - starts)
    visual, visual_probs, frame_times = None, None, None
    if experts.face is not None:
        visual, visual_probs, frame_times, face_notes = _score_face(inputs, experts.face, duration, starts, ends,
                                                                    window, long)
        notes += face_notes
    # Read while a cold process's audio features are still being computed in their own processes.
    fusion = _fusion(experts, checkpoints) if audio_probs is not None and visual_probs is not None else None
    audio_probs = None if audio_probs is None else audio_probs()
    if audio_probs is None and visual_probs is None:
        raise RuntimeError(f"{inputs.name}: neither expert could run (no pictures and no audible audio)")
    fused, fusion = _fuse(audio_probs, visual_probs, fusion)
    labels = tuple(experts.audio.labels if experts.audio is not None else experts.face.labels)
    timeline = None
    if long:
        from mer_utils.demo.timeline import Timeline

        timeline = Timeline(starts, ends, audio_probs, visual_probs, fused, labels,
                            None if visual is None else visual.frames, frame_times)
    mean = (lambda p: None if p is None else p.mean(axis=0))
    fused_mean = mean(fused)
    return DemoResult(inputs, mean(audio_probs), mean(visual_probs), fused_mean, labels[int(np.argmax(fused_mean))],
                      fusion, visual, audio_source, experts.paths, labels, experts.provenance, tuple(notes), timeline)


def _audio_coverage(expert, samples, rate, duration, lengths) -> list[str]:
    """Nothing is cut silently: the expert keeps at most ``max_seconds`` of each window, and a track may
    be shorter than the video."""
    notes = []
    cap = getattr(getattr(expert, "settings", None), "max_seconds", None)
    if cap is not None and float(lengths.max()) > cap + 1e-6:
        notes.append(f"audio: the expert reads at most {cap:g} s per clip, so of each {float(lengths.max()):g} s "
                     f"window only the first {cap:g} s were used (use a shorter --window)")
    heard = len(samples) / rate
    if heard < duration - 0.25:
        notes.append(f"audio: the track lasts {heard:.1f} s of the input's {duration:.1f} s; later windows have "
                     "less or no speech")
    return notes


def _score_face(inputs, face, duration, starts, ends, window, long):
    """``(VideoPrediction, (W, L) probabilities, frame times, notes)`` for a video, a window sequence or a
    still. The prediction holds the frames the figures show (a long video keeps only a few)."""
    from mer_utils.demo.inputs import read_image_rgb
    from mer_utils.demo.timeline import face_windows, video_faces
    from mer_utils.experts.visual.checkpoint import VideoPrediction
    from mer_utils.experts.visual.video import read_sampled_frames

    if inputs.kind == "image":
        cut = face.crops(read_image_rgb(inputs.video, max_side=face.crop_config.frame_side)[None])
        indices, times = np.array([0]), np.array([0.0])
    elif long:
        cut, times = video_faces(inputs.video, face, duration, window=window, per_window=face.n_frames)
        indices = np.arange(len(cut.crops))
    else:
        sampled = read_sampled_frames(inputs.video, face.n_frames)
        cut, indices, times = face.crops(sampled.frames), sampled.indices, np.zeros(face.n_frames)
    probs = face_windows(face, cut.crops, times, starts, ends) if long else face.probs(cut.crops)[None]
    shown = cut.kept
    visual = VideoPrediction(probs.mean(axis=0), cut.frames, cut.boxes[shown], cut.detected[shown], indices[shown],
                             np.full(len(shown), 1.0 / len(shown)), cut.crops[shown])
    notes = _face_notes(inputs, cut)
    if long and times[-1] + duration / len(times) < duration - 0.5:  # a cut file: frames end early
        notes.append(f"video: frames could be read up to {times[-1]:.1f} s of the input's {duration:.1f} s; later "
                     "windows score the last frame read")
    return visual, probs, times[shown], notes


def _face_notes(inputs, cut) -> list[str]:
    notes = []
    if inputs.kind == "image":
        notes.append(f"{inputs.name} is a still image: a face-only answer from one picture (no voice, no motion)")
    if not cut.detected.any():
        notes.append("no face was detected in any sampled frame: the face expert saw centre crops (fallback boxes)")
    if cut.n_several >= min(2, len(cut.crops)):
        notes.append(f"several faces: {cut.n_several} of the {len(cut.crops)} sampled frames show more than one; "
                     "the face expert followed one person (the largest at first) and the answer is that "
                     "person's; crop the input to the person you mean")
    return notes


def _fusion(experts: Experts, checkpoints) -> tuple:
    """``(rule, description)`` for fusing these two experts."""
    if experts.face.provenance.get("zero_shot"):
        from mer_utils.fusion.deploy import DEFAULT_RULE

        return DEFAULT_RULE, "untuned product fusion (no fusion rule was tuned with the zero-shot face model)"
    rule = _fusion_rule(checkpoints, experts.provenance.get("audio", {}))
    return rule, rule.description


def _fuse(audio_probs, visual_probs, fusion):
    if audio_probs is None or visual_probs is None:
        only = "audio" if visual_probs is None else "visual"
        return (audio_probs if visual_probs is None else visual_probs), f"single modality ({only} expert only)"
    rule, description = fusion
    return rule.fuse(audio_probs, visual_probs), description


def _fusion_rule(checkpoints, audio_entry: dict):
    """The rule tuned with the audio expert's corpus and protocol (from the index), else ``best_fusion.json``."""
    from mer_utils.core.checkpoint_index import entry_path, find_entries
    from mer_utils.demo.predict import FUSION_RULE_NAME
    from mer_utils.fusion.deploy import load_fusion_rule

    if audio_entry.get("corpus_key"):
        for entry in find_entries(checkpoints, modality="fusion", corpus_key=audio_entry["corpus_key"],
                                  protocol=audio_entry["protocol"]):
            if entry_path(checkpoints, entry).exists():
                return load_fusion_rule(entry_path(checkpoints, entry))
    return load_fusion_rule(Path(checkpoints) / FUSION_RULE_NAME)
