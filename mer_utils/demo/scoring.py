"""Score a demo input with the experts :mod:`mer_utils.demo.selection` chose (whole, or window by window),
fuse, and note what the user must know: synthetic-trained models on real input, audio or frames covering less
than the input.

An expert that has nothing to go on is left out, never fused on a guess: the speech expert when the mono mix
it hears is silent (a silent track, or stereo channels that cancel out), the face expert where no face was
found (its centre-crop fallback is a guess)."""

from __future__ import annotations

import numpy as np

from mer_utils.demo.results import DemoResult, Experts
from mer_utils.demo.selection import choose_fusion


def _input_audio(inputs) -> tuple[np.ndarray | None, int, str, str | None]:
    """Samples, rate, a description of where the audio came from, and a note when it is left out (samples
    None: no audio, or nothing audible in the mono mix the speech expert hears)."""
    from mer_utils.data.media_health import SAMPLE_RATE, silence
    from mer_utils.demo.inputs import decode_audio

    if inputs.audio is not None:
        samples, rate = decode_audio(inputs.audio)
        if silence(samples) is None:
            return samples, rate, str(inputs.audio), None
        return None, 0, f"none ({inputs.audio.name} is inaudible, see above)", _inaudible(inputs.audio)
    if inputs.kind != "video":
        return None, 0, "none", None
    from mer_utils.data.media_health import read_audio_track

    track = read_audio_track(inputs.video)
    if track is None or silence(track) is not None:  # the same check as a recording's
        return None, 0, "none (the video has no audible audio track; pass a recording to use the audio expert)", None
    return track, SAMPLE_RATE, f"audio track of {inputs.video.name}", None


def _inaudible(path) -> str:
    """Why a recording is left out: silent, or stereo channels that cancel out when mixed to mono (its own
    channels, which the decoded mono mix no longer has, say which)."""
    from mer_utils.data.media_health import FIXES, SILENCE_PEAK, audio_health

    if audio_health(path, max_seconds=None).status == "phase_cancelled":
        why = FIXES["phase_cancelled"]
    else:
        why = f"it is silent (no sample reaches {SILENCE_PEAK:g} of full scale)"
    return f"audio: {path}: {why}; the speech expert was left out"


def _without(experts: Experts, name: str) -> Experts:
    """``experts`` less one that did not answer (it is not listed with the answer)."""
    return experts._replace(**{"audio" if name == "audio" else "face": None},
                            paths={k: v for k, v in experts.paths.items() if k != name},
                            provenance={k: v for k, v in experts.provenance.items() if k != name})


def score(inputs, experts: Experts, checkpoints, *, window: float, hop: float):
    """Score ``inputs`` with ``experts``: whole when it fits one window, else window by window."""
    from mer_utils.demo.provenance import synthetic_warnings
    from mer_utils.demo.timeline import window_bounds

    samples, rate, audio_source, silent = (None, 0, "none", None) if experts.audio is None else _input_audio(inputs)
    if samples is None:  # a silent video or recording: the speech expert did not answer, so it is not listed
        experts = _without(experts, "audio")
    notes = synthetic_warnings(experts.provenance, input_is_synthetic=inputs.synthetic) + list(experts.notes)
    notes += list(inputs.notes) + ([silent] if silent else [])
    duration = max(inputs.duration_s, 0.0 if samples is None else len(samples) / rate)
    long = inputs.kind != "image" and duration > window + 1e-6
    starts, ends = window_bounds(duration, window=window, hop=hop) if long else (np.array([0.0]), np.array([duration]))
    if long:
        notes += _window_coverage(starts, ends, duration, window, hop)
    audio_probs = None
    if samples is not None:
        from mer_utils.demo.timeline import audio_windows

        audio_probs = experts.audio.predict_proba(audio_windows(samples, rate, starts, ends))
        notes += _audio_coverage(experts.audio, samples, rate, duration, ends - starts)
    visual, visual_probs, frame_times = None, None, None
    if experts.face is not None:
        visual, visual_probs, frame_times, face_notes = _score_face(
            inputs, experts.face, duration, starts, ends, window, long, speech=audio_probs is not None)
        notes += face_notes
        if np.isnan(visual_probs).all():  # no face anywhere: the face expert has nothing to answer from
            visual_probs, experts = None, _without(experts, "visual")
    if audio_probs is None and visual_probs is None:
        why = [n for n in notes if n.startswith("no face")] + [silent or f"audio: {audio_source}"]
        raise RuntimeError(f"{inputs.name}: neither expert can answer: " + "; ".join(why))
    fusion = choose_fusion(experts, checkpoints) if audio_probs is not None and visual_probs is not None else None
    fused, fusion = _fuse(audio_probs, visual_probs, fusion)
    labels = tuple(experts.audio.labels if experts.audio is not None else experts.face.labels)
    timeline = None
    if long:
        from mer_utils.demo.timeline import Timeline

        timeline = Timeline(starts, ends, audio_probs, visual_probs, fused, labels,
                            None if visual is None else visual.frames, frame_times)
    mean = (lambda p: None if p is None else np.nanmean(p, axis=0))  # windows without a face have no visual row
    fused_mean = mean(fused)
    return DemoResult(inputs, mean(audio_probs), mean(visual_probs), fused_mean, labels[int(np.argmax(fused_mean))],
                      fusion, visual, audio_source, experts.paths, labels, experts.provenance, tuple(notes), timeline)


def _window_coverage(starts, ends, duration, window, hop) -> list[str]:
    """A note when the windows leave part of the input unscored (a hop longer than the window)."""
    covered = float(np.sum(np.minimum(ends[:-1], starts[1:]) - starts[:-1]) + (ends[-1] - starts[-1]))
    if covered >= duration - 0.05:
        return []
    return [f"windows: {len(starts)} windows of {window:g} s every {hop:g} s score {covered:.1f} s of the input's "
            f"{duration:.1f} s; the {duration - covered:.1f} s between them were not scored (use --hop {window:g} "
            "or less to score all of it)"]


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


class _FaceFound:
    """:func:`~mer_utils.demo.timeline.face_windows`'s choice of frames per window, applied to the detection
    flags instead of the crops: whether any frame of a window shows a face."""

    @staticmethod
    def probs(flags) -> np.ndarray:
        return np.array([bool(np.any(flags))])


def _score_face(inputs, face, duration, starts, ends, window, long, *, speech: bool):
    """``(VideoPrediction, (W, L) probabilities, frame times, notes)`` for a video, a window sequence or a
    still; a window in none of whose frames a face was found has a row of NaN (the crops there are a centre
    guess). The prediction holds the frames the figures show (a long video keeps only a few)."""
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
    if long:
        probs = face_windows(face, cut.crops, times, starts, ends)
        found = face_windows(_FaceFound, cut.detected, times, starts, ends)[:, 0]
    else:
        probs, found = face.probs(cut.crops)[None], np.array([cut.detected.any()])
    probs = np.where(found[:, None], probs, np.nan)
    clip = probs[found].mean(axis=0) if found.any() else np.full(probs.shape[1], np.nan)
    shown = cut.kept
    visual = VideoPrediction(clip, cut.frames, cut.boxes[shown], cut.detected[shown], indices[shown],
                             np.full(len(shown), 1.0 / len(shown)), cut.crops[shown])
    notes = _face_notes(inputs, cut, probs, speech=speech)
    if long and times[-1] + duration / len(times) < duration - 0.5:  # a cut file: frames end early
        notes.append(f"video: frames could be read up to {times[-1]:.1f} s of the input's {duration:.1f} s; later "
                     "windows score the last frame read")
    return visual, probs, times[shown], notes


def _face_notes(inputs, cut, probs, *, speech: bool) -> list[str]:
    notes = []
    if inputs.kind == "image":
        notes.append(f"{inputs.name} is a still image: a face-only answer from one picture (no voice, no motion)")
    missing = np.isnan(probs).all(axis=1)
    rest = "the answer is from speech alone" if speech else "nothing else to answer from"
    if missing.all():
        notes.append(f"no face was found in any of the {len(cut.detected)} sampled frames (turned away, rotated "
                     f"or hidden; orange fallback boxes in the figure): the face expert was left out, {rest}")
    elif missing.any():
        notes.append(f"no face was found in {int(missing.sum())} of the {len(missing)} windows: there the face "
                     "expert was left out" + (" and the windows are answered from speech alone" if speech else ""))
    if cut.n_several >= min(2, len(cut.crops)):
        notes.append(f"several faces: {cut.n_several} of the {len(cut.crops)} sampled frames show more than one; "
                     "the face expert followed one person (the largest at first) and the answer is that "
                     "person's; crop the input to the person you mean")
    return notes


def _fuse(audio_probs, visual_probs, fusion):
    if audio_probs is None or visual_probs is None:
        only = "audio" if visual_probs is None else "visual"
        return (audio_probs if visual_probs is None else visual_probs), f"single modality ({only} expert only)"
    rule, description = fusion
    seen = ~np.isnan(visual_probs).any(axis=1)  # windows where a face was found
    fused = audio_probs.copy()
    fused[seen] = rule.fuse(audio_probs[seen], visual_probs[seen])
    if not seen.all():
        description += f"; speech alone in the {int((~seen).sum())} window(s) without a face"
    return fused, description
