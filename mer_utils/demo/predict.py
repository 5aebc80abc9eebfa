"""One-click inference: a video, a recording, a face image or a corpus clip in; per-emotion probabilities of
each expert and fused out, with where every model came from and every note the user needs (docs/demo.md)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mer_utils.core.atomic_io import save_png, write_csv
from mer_utils.core.labels import label_name
from mer_utils.core.runs import safe_name
from mer_utils.data.cremad_vocabulary import is_clip_id
from mer_utils.data.media_health import FIXES, SAMPLE_RATE, SILENCE_PEAK, audio_health, read_audio_track, silence
from mer_utils.demo import DEFAULT_HOP_S, DEFAULT_WINDOW_S, check_window
from mer_utils.demo.hub import local_checkpoints
from mer_utils.demo.inputs import (AUDIO, IMAGE, check_media, decode_audio, is_synthetic_clip, probe_media,
                                   read_image_rgb)
from mer_utils.demo.selection import Experts, choose_fusion, describe_expert, load_experts, synthetic_warnings
from mer_utils.experts.visual.checkpoint import VideoPrediction
from mer_utils.experts.visual.video import read_sampled_frames, sample_frame_indices, stream_frames

STRIP_FRAMES = 10  # frames shown in the timeline's strip


class DemoInputs(NamedTuple):
    video: Path | None  # a video, or a still image when kind == "image"
    audio: Path | None  # a recording (WAV/MP3/M4A/audio-only MP4), else the video's own track is used
    label: str  # the intended emotion when known (CREMA-D clip ids carry it), else ""
    name: str
    kind: str = "video"  # "video", "audio" or "image": what the input holds, decided by content
    duration_s: float = 0.0
    synthetic: bool = False  # a clip of the embedded synthetic corpus
    notes: tuple = ()  # what media health found in the files (a recording cut short), printed with the answer


class DemoResult(NamedTuple):
    inputs: DemoInputs
    audio_probs: np.ndarray | None
    visual_probs: np.ndarray | None
    fused_probs: np.ndarray
    top_emotion: str
    fusion: str
    visual: object | None  # mer_utils.experts.visual.checkpoint.VideoPrediction: frames, boxes, detected
    audio_source: str
    checkpoints: dict
    labels: tuple = ()  # the experts' label set, the order of every probability array
    provenance: dict = {}  # expert -> its index entry (what its checkpoint was trained on)
    notes: tuple = ()  # warnings and coverage notes, printed before the table
    timeline: Timeline | None = None  # for inputs longer than one window


def resolve_inputs(*, video=None, audio=None, clip_id: str | None = None, data_root=None,
                   outputs="outputs") -> DemoInputs:
    """The user's files, or a corpus clip id, as paths with each file's kind read from its content."""
    if clip_id:
        video, audio, label, name = _clip_media(clip_id, data_root, outputs)
    else:
        if video is None and audio is None:
            raise ValueError("give a video, a recording, a face image, or a clip id with a data root")
        name = Path(video or audio).stem
        label = name.split("_")[2] if is_clip_id(name) else ""  # a CREMA-D file name carries its emotion
    # Each file goes where its content belongs (an audio-only MP4 is a recording, a PNG renamed .mp4 an image).
    video, audio = Path(video) if video else None, Path(audio) if audio else None
    checked = {path: check_media(path, probe_media(path)) for path in (video, audio) if path is not None}
    infos = {path: info for path, (info, _) in checked.items()}
    notes = tuple(note for _, note in checked.values() if note)
    if video is not None and infos[video].kind == AUDIO:
        if audio is not None:
            raise ValueError(f"{video} holds no pictures (audio only) and a recording was given too; "
                             "give one recording")
        video, audio = None, video
    if audio is not None and infos[audio].kind == IMAGE:
        raise ValueError(f"{audio} is a still image, not a recording; pass it as the video/image input")
    kind = infos[video].kind if video is not None else AUDIO
    if kind == IMAGE and audio is not None:
        raise ValueError(f"{video} is a still image; a recording cannot be fused with it (no common time)")
    duration = max((i.duration_s for i in infos.values()), default=0.0)
    synthetic = all(is_synthetic_clip(p) for p in infos)
    return DemoInputs(video, audio, label, name, kind, duration, synthetic, notes)


def _clip_media(clip_id: str, data_root, outputs):
    from mer_utils.data import cremad
    from mer_utils.data.manifest import media_path, prepare_manifest
    if data_root is None:
        raise ValueError("a clip id needs --data-root (the corpus folder or CSV it comes from)")
    if is_clip_id(clip_id) and cremad.detect(Path(data_root)):
        # CREMA-D's layout names every file after its clip: no corpus scan for one clip.
        found = cremad.find_clip_media(data_root, clip_id)
        if not any(found.values()):
            raise FileNotFoundError(f"no media for {clip_id} under {data_root} (looked in AudioWAV/, "
                                    "AudioMP3/, VideoFlash/, VideoMP4/)")
        return found["video"], found["audio"], clip_id.split("_")[2], clip_id
    manifest = prepare_manifest(data_root, outputs=outputs, progress=False).set_index("clip_id")
    if clip_id not in manifest.index:
        raise FileNotFoundError(f"clip {clip_id!r} is not in the corpus at {data_root} (see its manifest)")
    row = manifest.loc[clip_id]
    found = {kind: media_path(data_root, row[f"{kind}_path"]) if row[f"{kind}_status"] == "ok" else None
             for kind in ("video", "audio")}
    if not any(found.values()):
        raise FileNotFoundError(f"no usable media for {clip_id} under {data_root} (audio {row['audio_status']}, "
                                f"video {row['video_status']})")
    return found["video"], found["audio"], str(row["emotion"]), clip_id


def predict_clip(*, video=None, audio=None, clip_id: str | None = None, data_root=None, checkpoints="checkpoints",
                 audio_checkpoint=None, visual_checkpoint=None, outputs="outputs", window: float = DEFAULT_WINDOW_S,
                 hop: float = DEFAULT_HOP_S, allow_synthetic: bool = False) -> DemoResult:
    """Run the experts from ``checkpoints`` (a folder or ``hf://REPO_ID``) on one input (none: a held-out clip of
    the embedded synthetic corpus) and fuse them; one longer than ``window`` s is scored every ``hop`` s."""
    check_window(window, hop)  # before anything is loaded: a bad option is the option's fault, not the input's
    weights_dir = "checkpoints" if str(checkpoints).startswith("hf://") else checkpoints
    checkpoints = local_checkpoints(checkpoints)
    if video is None and audio is None and clip_id is None:  # a test clip of the embedded corpus's speaker split
        from mer_utils.protocols.prepare import prepare_protocol
        prepared = prepare_protocol(None, "speaker", outputs=outputs, progress=False)
        clip_id = str(prepared.split.loc[prepared.split["subset"] == "test", "clip_id"].iloc[0])
        data_root = prepared.data_root
    inputs = resolve_inputs(video=video, audio=audio, clip_id=clip_id, data_root=data_root, outputs=outputs)
    experts = load_experts(inputs, checkpoints, audio_checkpoint, visual_checkpoint, weights_dir=weights_dir,
                           allow_synthetic=allow_synthetic)
    return score(inputs, experts, checkpoints, window=window, hop=hop)


def _input_audio(inputs) -> tuple[np.ndarray | None, int, str, str | None]:
    """``(samples, rate, where they came from, why left out)``; samples None: no audio, or an inaudible mono mix."""
    if inputs.audio is not None:
        samples, rate = decode_audio(inputs.audio)
        if silence(samples) is None:
            return samples, rate, str(inputs.audio), None
        why = (FIXES["phase_cancelled"] if audio_health(inputs.audio, max_seconds=None).status == "phase_cancelled"
               else f"it is silent (no sample reaches {SILENCE_PEAK:g} of full scale)")
        return (None, 0, f"none ({inputs.audio.name} is inaudible, see above)",
                f"audio: {inputs.audio}: {why}; the speech expert was left out")
    if inputs.kind != "video":
        return None, 0, "none", None
    track = read_audio_track(inputs.video)
    if track is None or silence(track) is not None:  # the same check as a recording's
        return None, 0, "none (the video has no audible audio track; pass a recording to use the audio expert)", None
    return track, SAMPLE_RATE, f"audio track of {inputs.video.name}", None


def _without(experts: Experts, name: str) -> Experts:
    return experts._replace(**{"audio" if name == "audio" else "face": None},
                            paths={k: v for k, v in experts.paths.items() if k != name},
                            provenance={k: v for k, v in experts.provenance.items() if k != name})


def score(inputs, experts: Experts, checkpoints, *, window: float, hop: float):
    """Score ``inputs`` whole when it fits one window, else window by window. An expert with nothing to go on is
    left out, never fused on a guess: speech when the mono mix is silent (stereo channels may cancel out), the face
    where no face was found (its fallback box is a guess)."""
    samples, rate, audio_source, silent = (None, 0, "none", None) if experts.audio is None else _input_audio(inputs)
    if samples is None:  # a silent video or recording: the speech expert did not answer, so it is not listed
        experts = _without(experts, "audio")
    notes = synthetic_warnings(experts.provenance, input_is_synthetic=inputs.synthetic) + list(experts.notes)
    notes += list(inputs.notes) + ([silent] if silent else [])
    duration = max(inputs.duration_s, 0.0 if samples is None else len(samples) / rate)
    long = inputs.kind != "image" and duration > window + 1e-6
    starts, ends = window_bounds(duration, window=window, hop=hop) if long else (np.array([0.0]), np.array([duration]))
    # Seconds between windows (a hop longer than the window) are not scored: the answer says so.
    covered = float(np.sum(np.minimum(ends[:-1], starts[1:]) - starts[:-1]) + (ends[-1] - starts[-1]))
    if long and covered < duration - 0.05:
        notes.append(f"windows: {len(starts)} windows of {window:g} s every {hop:g} s score {covered:.1f} s of the "
                     f"input's {duration:.1f} s; the {duration - covered:.1f} s between them were not scored (use "
                     f"--hop {window:g} or less to score all of it)")
    audio_probs = None
    if samples is not None:
        audio_probs = experts.audio.predict_proba([(samples[int(s * rate): int(e * rate)], rate)
                                                   for s, e in zip(starts, ends)])
        # The expert may read less than each window (max_seconds), or the track end before the input.
        cap = getattr(getattr(experts.audio, "settings", None), "max_seconds", None)
        longest = float((ends - starts).max())
        if cap is not None and longest > cap + 1e-6:
            notes.append(f"audio: the expert reads at most {cap:g} s per clip, so of each {longest:g} s window only "
                         f"the first {cap:g} s were used (use a shorter --window)")
        if len(samples) / rate < duration - 0.25:
            notes.append(f"audio: the track lasts {len(samples) / rate:.1f} s of the input's {duration:.1f} s; later "
                         "windows have less or no speech")
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
    if audio_probs is None or visual_probs is None:
        fused = audio_probs if visual_probs is None else visual_probs
        fusion = f"single modality ({'audio' if visual_probs is None else 'visual'} expert only)"
    else:
        rule = choose_fusion(experts, checkpoints)
        seen = ~np.isnan(visual_probs).any(axis=1)  # windows where a face was found
        fused = audio_probs.copy()
        fused[seen] = rule.fuse(audio_probs[seen], visual_probs[seen])
        fusion = rule.description
        if not seen.all():
            fusion += f"; speech alone in the {int((~seen).sum())} window(s) without a face"
    labels = tuple(experts.audio.labels if experts.audio is not None else experts.face.labels)
    timeline = None if not long else Timeline(starts, ends, audio_probs, visual_probs, fused, labels,
                                              None if visual is None else visual.frames, frame_times)
    mean = (lambda p: None if p is None else np.nanmean(p, axis=0))  # windows without a face have no visual row
    fused_mean = mean(fused)
    return DemoResult(inputs, mean(audio_probs), mean(visual_probs), fused_mean, labels[int(np.argmax(fused_mean))],
                      fusion, visual, audio_source, experts.paths, labels, experts.provenance, tuple(notes), timeline)


def _score_face(inputs, face, duration, starts, ends, window, long, *, speech: bool):
    """``(VideoPrediction, (W, L) probabilities, frame times, notes)``; NaN rows: windows without a face."""
    if inputs.kind == "image":
        cut = face.crops(read_image_rgb(inputs.video, max_side=face.crop_config.frame_side)[None])
        indices, times = np.array([0]), np.array([0.0])
    elif long:  # frames spread over the video, n_frames a window, streamed (flat memory)
        k = max(face.n_frames, int(np.ceil(duration / window * face.n_frames)))
        stream = stream_frames(inputs.video, k, max_side=face.crop_config.frame_side, span_s=duration)
        cut = face.crops(stream.frames, keep=set(strip_indices(k, STRIP_FRAMES)))
        indices, times = np.arange(len(cut.crops)), stream.times[:len(cut.crops)]
    else:
        sampled = read_sampled_frames(inputs.video, face.n_frames)
        cut, indices, times = face.crops(sampled.frames), sampled.indices, np.zeros(face.n_frames)
    inside = window_frames(times, starts, ends) if long else [np.arange(len(cut.crops))]
    probs = np.stack([face.probs(cut.crops[frames]) for frames in inside])
    found = np.array([cut.detected[frames].any() for frames in inside])
    probs = np.where(found[:, None], probs, np.nan)
    clip = probs[found].mean(axis=0) if found.any() else np.full(probs.shape[1], np.nan)
    shown = cut.kept  # the frames kept for figures
    visual = VideoPrediction(clip, cut.frames, cut.boxes[shown], cut.detected[shown], indices[shown], cut.crops[shown])
    notes = [f"{inputs.name} is a still image: a face-only answer from one picture (no voice, no motion)"
             ] if inputs.kind == "image" else []
    rest = "the answer is from speech alone" if speech else "nothing else to answer from"
    if not found.any():
        notes.append(f"no face was found in any of the {len(cut.detected)} sampled frames (turned away, rotated "
                     f"or hidden; orange fallback boxes in the figure): the face expert was left out, {rest}")
    elif not found.all():
        notes.append(f"no face was found in {int((~found).sum())} of the {len(found)} windows: there the face "
                     "expert was left out" + (" and the windows are answered from speech alone" if speech else ""))
    if cut.n_several >= min(2, len(cut.crops)):
        notes.append(f"several faces: {cut.n_several} of the {len(cut.crops)} sampled frames show more than one; "
                     "the face expert followed one person (the largest at first) and the answer is that "
                     "person's; crop the input to the person you mean")
    if long and times[-1] + duration / len(times) < duration - 0.5:  # a cut file: frames end early
        notes.append(f"video: frames could be read up to {times[-1]:.1f} s of the input's {duration:.1f} s; later "
                     "windows score the last frame read")
    return visual, probs, times[shown], notes


def format_result(result: DemoResult) -> str:
    """Notes and provenance first, then a text table of the probabilities, one row per emotion."""
    lines = list(result.notes)
    truth = f" (intended emotion: {result.inputs.label})" if result.inputs.label else ""
    lines += [f"clip: {result.inputs.name}{truth}", f"audio from: {result.audio_source}", f"fusion: {result.fusion}"]
    lines += [f"{expert} expert trained on: {describe_expert(entry)}" for expert, entry in result.provenance.items()]
    if result.timeline is not None:
        lines.append(f"timeline: {len(result.timeline.starts)} windows; the table is their mean")
    lines.append(f"{'emotion':<10}{'audio':>8}{'visual':>8}{'fused':>8}")
    for i, emotion in enumerate(result.labels):
        cells = ["   n/a" if p is None else f"{p[i]:6.3f}" for p in (result.audio_probs, result.visual_probs)]
        lines.append(f"{label_name(emotion):<10}{cells[0]:>8}{cells[1]:>8}{result.fused_probs[i]:8.3f}")
    lines.append(f"top emotion: {result.top_emotion} ({label_name(result.top_emotion)})")
    return "\n".join(lines)


def save_outputs(result: DemoResult, out_dir: str | os.PathLike = "outputs/demo", *, figure: bool = True) -> dict:
    """Write ``<name>_prediction.png`` and, for a long input, ``<name>_timeline.csv/png``; returns ``{what: path}``."""
    # Input names come from users' files: their letters are kept, other characters replaced, and a replaced
    # one adds a hash of the name, so `日本.mp4` and `中国.mp4` (or `a b` and `a+b`) never share an output.
    out_dir, name, written = Path(out_dir), safe_name(result.inputs.name, unique=True), {}
    if result.timeline is not None:
        written["timeline_csv"] = write_timeline_csv(result.timeline, out_dir / f"{name}_timeline.csv")
        if figure:
            written["timeline_figure"] = plot_timeline(result.timeline, out_dir / f"{name}_timeline.png",
                                                       title=_figure_title(result))
    if figure:
        written["figure"] = plot_result(result, out_dir / f"{name}_prediction.png")
    return written


def show_outputs(written: dict) -> list[Path]:
    """Display the PNGs :func:`save_outputs` wrote (the timeline first) in a notebook; returns their paths."""
    from IPython.display import Image, display
    figures = [Path(written[k]) for k in ("timeline_figure", "figure") if k in written]
    for figure in figures:
        display(Image(filename=str(figure)))
    return figures


def _figure_title(result: DemoResult) -> str:
    from matplotlib import font_manager
    # '?' for what the figure's font cannot draw (CJK), not empty boxes and a warning each.
    charmap = font_manager.get_font(font_manager.findfont(font_manager.FontProperties())).get_charmap()
    name = "".join(c if ord(c) in charmap or c == "\n" else "?" for c in result.inputs.name)
    truth = f", intended {result.inputs.label}" if result.inputs.label else ""
    title = f"{name}: fused top emotion {result.top_emotion}{truth}"
    if any(n.startswith("WARNING") for n in result.notes):
        title += "\n(models trained on the SYNTHETIC corpus: not meaningful on this input)"
    return title


def _provenance_caption(result: DemoResult) -> str:
    lines = [f"{expert}: {describe_expert(entry)}" for expert, entry in result.provenance.items()]
    lines += [n for n in result.notes if n.startswith("WARNING")]
    return "\n".join(lines)


def plot_result(result: DemoResult, path: str | os.PathLike) -> Path:
    """Probability bars above the sampled frames with face boxes, each expert's provenance written under them."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    n = 0 if result.visual is None else len(result.visual.frames)
    frames = strip_indices(n, 6) if n else []  # spread over the input
    caption = "\n".join(textwrap.fill(line, 150) for line in _provenance_caption(result).splitlines())
    extra = 0.16 * (caption.count("\n") + 1) if caption else 0
    fig = Figure(figsize=(10, (5.2 if frames else 3.6) + extra), dpi=100)
    grid = fig.add_gridspec(2 if frames else 1, max(len(frames), 1), height_ratios=[1.6, 1] if frames else [1])
    ax = fig.add_subplot(grid[0, :])
    x = np.arange(len(result.labels))
    series = [("audio", result.audio_probs, "#4C72B0"), ("visual", result.visual_probs, "#55A868"),
              ("fused", result.fused_probs, "#C44E52")]
    for offset, (name, probs, colour) in zip((-0.27, 0, 0.27), series):
        if probs is not None:
            ax.bar(x + offset, probs, width=0.26, label=name, color=colour)
    ax.set(xticks=x, xticklabels=[label_name(e) for e in result.labels], ylim=(0, 1), ylabel="probability")
    ax.set_title(_figure_title(result), fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    for col, k in enumerate(frames):
        axf = fig.add_subplot(grid[1, col])
        axf.imshow(result.visual.frames[k])
        bx, by, bw, bh = result.visual.boxes[k]
        found = bool(result.visual.detected[k])
        axf.add_patch(Rectangle((bx, by), bw, bh, fill=False, lw=1.5, color="lime" if found else "orange"))
        axf.set_title(f"frame {int(result.visual.frame_indices[k])}" + ("" if found else " (fallback)"), fontsize=7)
        axf.axis("off")
    fig.tight_layout(rect=(0, extra / fig.get_figheight(), 1, 1))
    if caption:
        warn = "WARNING" in caption
        fig.text(0.01, 0.005, caption, fontsize=7, va="bottom", ha="left", color="#B00020" if warn else "#333333")
    return save_png(fig, path)


# Emotion over time for inputs longer than one window: sliding windows (default 3 s every 1 s, the last one ending
# at the input's end), their CSV and figure (docs/demo.md, "Long inputs").
class Timeline(NamedTuple):
    starts: np.ndarray  # (W,) window starts, seconds
    ends: np.ndarray  # (W,)
    audio: np.ndarray | None  # (W, L)
    visual: np.ndarray | None  # (W, L)
    fused: np.ndarray  # (W, L)
    labels: tuple
    frames: np.ndarray | None  # (F, H, W, 3) a few frames spread over the input, for the figure
    frame_times: np.ndarray | None  # (F,) their times, seconds


def window_bounds(duration_s: float, *, window: float, hop: float) -> tuple[np.ndarray, np.ndarray]:
    """Window starts and ends covering ``[0, duration_s]``; the last one ends at the input's end.

    >>> starts, ends = window_bounds(5.5, window=3.0, hop=1.0)
    >>> starts.tolist(), ends.tolist()
    ([0.0, 1.0, 2.0, 2.5], [3.0, 4.0, 5.0, 5.5])
    """
    if duration_s <= window:
        return np.array([0.0]), np.array([float(duration_s)])
    starts = np.arange(0.0, duration_s - window + 1e-9, hop)
    if starts[-1] + window < duration_s - 1e-6:
        starts = np.append(starts, duration_s - window)
    starts = np.round(starts, 3)
    return starts, np.round(starts + window, 3)


def window_frames(frame_times: np.ndarray, starts, ends) -> list[np.ndarray]:
    """The positions of the frames inside each window.

    >>> [f.tolist() for f in window_frames(np.array([0.0, 0.5, 2.5]), [0.0, 1.0], [1.0, 2.0])]
    [[0, 1], [1]]
    """
    inside = [np.flatnonzero((frame_times >= s) & (frame_times < e)) for s, e in zip(starts, ends)]
    # A window narrower than the frame spacing: its nearest frame.
    return [f if len(f) else np.array([np.abs(frame_times - (s + e) / 2).argmin()])
            for f, s, e in zip(inside, starts, ends)]


def write_timeline_csv(timeline: Timeline, path: str | os.PathLike) -> Path:
    """One row per window: ``start_s, end_s, audio_p_*, visual_p_*, fused_p_*`` (empty cells: no such expert)."""
    import pandas as pd

    frame = pd.DataFrame({"start_s": timeline.starts, "end_s": timeline.ends, **{
        f"{name}_p_{label}": np.nan if probs is None else probs[:, j]
        for name, probs in (("audio", timeline.audio), ("visual", timeline.visual), ("fused", timeline.fused))
        for j, label in enumerate(timeline.labels)}})
    return write_csv(path, frame, float_format="%.4f")


def plot_timeline(timeline: Timeline, path: str | os.PathLike, *, title: str = "") -> Path:
    """One line plot per expert (probability of each emotion against window centre) over a strip of frames."""
    from matplotlib.figure import Figure

    panels = [(n, p) for n, p in (("audio", timeline.audio), ("visual", timeline.visual), ("fused", timeline.fused))
              if p is not None]
    strip = [] if timeline.frames is None else strip_indices(len(timeline.frames), STRIP_FRAMES)
    fig = Figure(figsize=(11, 2.1 * len(panels) + (1.6 if strip else 0.4)), dpi=100)
    rows = len(panels) + (1 if strip else 0)
    grid = fig.add_gridspec(rows, max(len(strip), 1), height_ratios=[2] * len(panels) + ([1.5] if strip else []))
    centres = (timeline.starts + timeline.ends) / 2
    colours = ["#C44E52", "#8172B2", "#937860", "#DD8452", "#8C8C8C", "#4C72B0", "#55A868"]
    for row, (name, probs) in enumerate(panels):
        ax = fig.add_subplot(grid[row, :])
        for j, label in enumerate(timeline.labels):
            ax.plot(centres, probs[:, j], marker="o", ms=3, lw=1.4, color=colours[j % len(colours)],
                    label=label_name(label))
        ax.set(xlim=(0, float(timeline.ends.max())), ylim=(0, 1))
        ax.set_ylabel(f"{name}\nprobability", fontsize=8)
        if row == 0:
            ax.set_title(title, fontsize=10)
            ax.legend(loc="upper right", fontsize=7, ncol=len(timeline.labels))
        if row == len(panels) - 1:
            ax.set_xlabel("time (s, window centre)")
    for col, k in enumerate(strip):
        axf = fig.add_subplot(grid[rows - 1, col])
        axf.imshow(timeline.frames[k])
        axf.set_title(f"{timeline.frame_times[k]:.1f} s", fontsize=7)
        axf.axis("off")
    fig.tight_layout()
    return save_png(fig, path)


def strip_indices(n: int, k: int) -> list[int]:
    """Up to ``k`` distinct frame positions spread over ``n`` frames, for a strip of pictures."""
    return sorted(set(sample_frame_indices(n, min(n, k)).tolist()))
