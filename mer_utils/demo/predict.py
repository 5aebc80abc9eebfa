"""One-click inference: a video, a recording, a face image or a corpus clip in;
per-emotion probabilities for audio, visual and fused out, with where every
model came from.

The demo only loads checkpoints; it never trains. What it can use:

- the speech expert: the audio checkpoint of the index (none: face only);
- the face expert: the trained visual checkpoint of the index, else the
  pretrained FER2013 model zero-shot (:mod:`mer_utils.demo.face`);
- the fusion rule tuned with those two experts (the untuned product rule
  with the zero-shot face model, which no rule was tuned with).

An input longer than one window gets an emotion timeline
(:mod:`mer_utils.demo.timeline`) and its overall answer is the mean over the
windows. Every note the user needs (synthetic-trained models on real input,
audio or frames covering less than the input, a still image) travels in
:attr:`DemoResult.notes` and is printed by :func:`format_result`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mer_utils.core.labels import label_name
from mer_utils.demo.defaults import DEFAULT_HOP_S, DEFAULT_WINDOW_S
from mer_utils.demo.results import DemoInputs, DemoResult



def resolve_inputs(*, video=None, audio=None, clip_id: str | None = None, data_root=None,
                   outputs="outputs") -> DemoInputs:
    """Turn the user's choice (files, or a clip id of a corpus with its data root) into paths, with each
    file's kind (video, audio-only or still image) read from its content."""
    if clip_id:
        video, audio, label, name = _clip_media(clip_id, data_root, outputs)
    else:
        if video is None and audio is None:
            raise ValueError("give a video, a recording, a face image, or a clip id with a data root")
        from mer_utils.data.cremad_vocabulary import is_clip_id

        name = Path(video or audio).stem
        label = name.split("_")[2] if is_clip_id(name) else ""  # a CREMA-D file name carries its emotion
    return _classify(Path(video) if video else None, Path(audio) if audio else None, label, name)


def _clip_media(clip_id: str, data_root, outputs):
    from mer_utils.data import cremad
    from mer_utils.data.cremad_vocabulary import is_clip_id
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


def _classify(video: Path | None, audio: Path | None, label: str, name: str) -> DemoInputs:
    """Put each file where its content belongs: an audio-only container is a recording, a video given as
    the recording is a video, a PNG renamed .mp4 is a still image."""
    from mer_utils.demo.inputs import AUDIO, IMAGE, check_media, is_synthetic_clip, probe_media

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


def default_demo_clip(outputs: str | os.PathLike = "outputs") -> tuple[str, Path]:
    """A test clip of the embedded corpus's speaker-independent split (one no
    model trained on), and the corpus root."""
    from mer_utils.protocols.prepare import prepare_protocol

    prepared = prepare_protocol(None, "speaker", outputs=outputs, progress=False)
    test = prepared.split[prepared.split["subset"] == "test"]
    return str(test["clip_id"].iloc[0]), prepared.data_root


def predict_clip(
    *, video=None, audio=None, clip_id: str | None = None, data_root=None, checkpoints="checkpoints",
    audio_checkpoint=None, visual_checkpoint=None, outputs="outputs", window: float = DEFAULT_WINDOW_S,
    hop: float = DEFAULT_HOP_S, allow_synthetic: bool = False,
) -> DemoResult:
    """Run the experts from ``checkpoints/`` (a folder, or ``hf://REPO_ID``) on one input and fuse them.

    With no input at all, a held-out clip of the embedded synthetic corpus
    is used (see :func:`default_demo_clip`). An input longer than ``window``
    seconds is scored every ``hop`` seconds (:attr:`DemoResult.timeline`). Checkpoints trained on real data
    answer a real input; synthetic-trained ones only a synthetic clip, or any input with ``allow_synthetic``
    (:mod:`mer_utils.demo.selection`).
    """
    from mer_utils.demo import scoring, selection
    from mer_utils.demo.defaults import check_window

    check_window(window, hop)  # before anything is loaded: a bad option is the option's fault, not the input's
    weights_dir = "checkpoints" if str(checkpoints).startswith("hf://") else checkpoints
    checkpoints = _local_checkpoints(checkpoints)
    if video is None and audio is None and clip_id is None:
        clip_id, data_root = default_demo_clip(outputs)
    inputs = resolve_inputs(video=video, audio=audio, clip_id=clip_id, data_root=data_root, outputs=outputs)
    experts = selection.load_experts(inputs, checkpoints, audio_checkpoint, visual_checkpoint, weights_dir=weights_dir,
                                     allow_synthetic=allow_synthetic)
    return scoring.score(inputs, experts, checkpoints, window=window, hop=hop)


def _local_checkpoints(checkpoints):
    """``hf://REPO_ID`` -> the verified local snapshot of that shared set; a folder stays as it is."""
    if str(checkpoints).startswith("hf://"):
        from mer_utils.demo.hub import fetch_checkpoints

        return fetch_checkpoints(str(checkpoints)[len("hf://"):])
    return checkpoints


def format_result(result: DemoResult) -> str:
    """Notes and provenance first, then a text table of the probabilities, one row per emotion."""
    from mer_utils.demo.provenance import describe_expert

    lines = list(result.notes)
    lines += [f"clip: {result.inputs.name}" + (f" (intended emotion: {result.inputs.label})" if result.inputs.label else ""),
              f"audio from: {result.audio_source}", f"fusion: {result.fusion}"]
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
    """Write the figure (``<name>_prediction.png``) and, for a long input, ``<name>_timeline.csv`` and
    ``<name>_timeline.png``; returns ``{what: path}``."""
    from mer_utils.demo.timeline import plot_timeline, write_timeline_csv

    from mer_utils.core.runs import safe_name

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


def _drawable(text: str) -> str:
    """``text`` with the characters the figure's font cannot draw (CJK in DejaVu Sans, matplotlib's default)
    shown as ``?``: matplotlib would draw empty boxes and warn "Glyph … missing from font(s)" for each."""
    from matplotlib import font_manager

    charmap = font_manager.get_font(font_manager.findfont(font_manager.FontProperties())).get_charmap()
    return "".join(c if ord(c) in charmap or c == "\n" else "?" for c in text)


def _figure_title(result: DemoResult) -> str:
    truth = f", intended {result.inputs.label}" if result.inputs.label else ""
    title = f"{_drawable(result.inputs.name)}: fused top emotion {result.top_emotion}{truth}"
    if any(n.startswith("WARNING") for n in result.notes):
        title += "\n(models trained on the SYNTHETIC corpus: not meaningful on this input)"
    return title


def _provenance_caption(result: DemoResult) -> str:
    from mer_utils.demo.provenance import describe_expert

    lines = [f"{expert}: {describe_expert(entry)}" for expert, entry in result.provenance.items()]
    lines += [n for n in result.notes if n.startswith("WARNING")]
    return "\n".join(lines)


def plot_result(result: DemoResult, path: str | os.PathLike) -> Path:
    """Probability bars (audio, visual, fused) above the sampled frames with face boxes, with each expert's
    provenance (and any synthetic-model warning) written under the figure."""
    import textwrap

    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from mer_utils.core.atomic_io import atomic_path

    from mer_utils.experts.visual.video import sample_frame_indices

    n = 0 if result.visual is None else len(result.visual.frames)
    frames = sorted(set(sample_frame_indices(n, min(6, n)).tolist())) if n else []  # spread over the input
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
    ax.set_xticks(x, [label_name(e) for e in result.labels])
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability")
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
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)
