"""Score a demo input with the experts :mod:`mer_utils.demo.selection` chose (whole, or window by window),
fuse, and note what the user must know: synthetic-trained models on real input, audio or frames covering less
than the input."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Experts(NamedTuple):
    audio: object | None  # has start_predict_proba(inputs) -> finish(), predict_proba(inputs) and labels
    face: object | None  # mer_utils.demo.face.FaceExpert
    paths: dict  # expert -> checkpoint path (str)
    provenance: dict  # expert -> index entry
    notes: list


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
        visual, visual_probs, frame_times = _score_face(inputs, experts.face, duration, starts, ends, window, long)
        notes += _face_notes(inputs, visual)
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
    """``(VideoPrediction, (W, L) probabilities, frame times)`` for a video, a window sequence or a still."""
    from mer_utils.demo.inputs import read_image_rgb
    from mer_utils.demo.timeline import face_windows, sample_video_frames
    from mer_utils.experts.visual.checkpoint import VideoPrediction
    from mer_utils.experts.visual.video import read_sampled_frames

    if inputs.kind == "image":
        frames, indices, times = read_image_rgb(inputs.video)[None], np.array([0]), np.array([0.0])
    elif long:
        frames, times = sample_video_frames(inputs.video, duration, window=window, per_window=face.n_frames)
        indices = np.arange(len(frames))
    else:
        sampled = read_sampled_frames(inputs.video, face.n_frames)
        frames, indices = sampled.frames, sampled.indices
        times = np.zeros(len(frames))
    cut = face.crops(frames)
    if long:
        probs = face_windows(face, cut.crops, times, starts, ends)
    else:
        probs = face.probs(cut.crops)[None]
    weights = np.full(len(frames), 1.0 / len(frames))
    return VideoPrediction(probs.mean(axis=0), frames, cut.boxes, cut.detected, indices, weights, cut.crops), probs, times


def _face_notes(inputs, visual) -> list[str]:
    notes = []
    if inputs.kind == "image":
        notes.append(f"{inputs.name} is a still image: a face-only answer from one picture (no voice, no motion)")
    if not visual.detected.any():
        notes.append("no face was detected in any sampled frame: the face expert saw centre crops (fallback boxes)")
    return notes


def _fusion(experts: Experts, checkpoints) -> tuple:
    """``(rule, description)`` for fusing these two experts (:func:`mer_utils.demo.selection.choose_fusion`)."""
    from mer_utils.demo.selection import choose_fusion

    return choose_fusion(experts, checkpoints)


def _fuse(audio_probs, visual_probs, fusion):
    if audio_probs is None or visual_probs is None:
        only = "audio" if visual_probs is None else "visual"
        return (audio_probs if visual_probs is None else visual_probs), f"single modality ({only} expert only)"
    rule, description = fusion
    return rule.fuse(audio_probs, visual_probs), description
