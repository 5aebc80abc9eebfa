"""One-click inference: a video (and/or a WAV, or a CREMA-D clip id) in,
per-emotion probabilities for audio, visual and fused out, with a figure.

The demo only loads checkpoints; it never trains. A missing checkpoint is
reported with the notebook or command that makes it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mer_utils.core.labels import label_name

logger = logging.getLogger(__name__)
FUSION_RULE_NAME = "best_fusion.json"
_HOW_TO_MAKE = {
    "audio": "run AUDIO_03_modeling_SER_speaker_independent_v01.ipynb or `mer audio train --protocol speaker`",
    "visual": "run VISUAL_01_modeling_FER_CREMA-D_video_v01.ipynb or `mer visual train --protocol speaker`",
}


class DemoInputs(NamedTuple):
    video: Path | None
    audio: Path | None
    label: str  # the intended emotion when known (CREMA-D clip ids carry it), else ""
    name: str


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
    provenance: dict = {}  # expert -> what its checkpoint was trained on (from the checkpoint index)


def resolve_inputs(*, video=None, audio=None, clip_id: str | None = None, data_root=None,
                   outputs="outputs") -> DemoInputs:
    """Turn the user's choice (files, or a clip id of a corpus with its data root) into paths."""
    if clip_id:
        from mer_utils.data import cremad
        from mer_utils.data.cremad_names import is_clip_id
        from mer_utils.data.manifest import media_path, prepare_manifest

        if data_root is None:
            raise ValueError("a clip id needs --data-root (the corpus folder or CSV it comes from)")
        if is_clip_id(clip_id) and cremad.detect(Path(data_root)):
            # CREMA-D's layout names every file after its clip: no corpus scan for one clip.
            found = cremad.find_clip_media(data_root, clip_id)
            if not any(found.values()):
                raise FileNotFoundError(f"no media for {clip_id} under {data_root} (looked in AudioWAV/, "
                                        "AudioMP3/, VideoFlash/, VideoMP4/)")
            return DemoInputs(found["video"], found["audio"], clip_id.split("_")[2], clip_id)
        manifest = prepare_manifest(data_root, outputs=outputs, progress=False).set_index("clip_id")
        if clip_id not in manifest.index:
            raise FileNotFoundError(f"clip {clip_id!r} is not in the corpus at {data_root} (see its manifest)")
        row = manifest.loc[clip_id]
        found = {kind: media_path(data_root, row[f"{kind}_path"]) if row[f"{kind}_status"] == "ok" else None
                 for kind in ("video", "audio")}
        if not any(found.values()):
            raise FileNotFoundError(f"no usable media for {clip_id} under {data_root} (audio {row['audio_status']}, "
                                    f"video {row['video_status']})")
        return DemoInputs(found["video"], found["audio"], str(row["emotion"]), clip_id)
    if video is None and audio is None:
        raise ValueError("give a video, a WAV, both, or a clip id with a data root")
    for path in (video, audio):
        if path is not None and not Path(path).exists():
            raise FileNotFoundError(f"input file not found: {path}")
    stem = Path(video or audio).stem
    from mer_utils.data.cremad_names import is_clip_id

    label = stem.split("_")[2] if is_clip_id(stem) else ""  # a CREMA-D file name carries its emotion
    return DemoInputs(Path(video) if video else None, Path(audio) if audio else None, label, stem)


def find_checkpoint(kind: str, checkpoints: str | os.PathLike = "checkpoints", explicit=None, *,
                    corpus_key: str | None = None) -> tuple[Path, dict]:
    """The checkpoint for ``kind`` ("audio" or "visual") and its index entry, with a clear error.

    Without ``explicit``, the checkpoint index (:mod:`mer_utils.core.checkpoint_index`) is read:
    speaker-independent models first (a demo clip comes from someone the model has never heard),
    then the newest; ``corpus_key`` keeps the visual expert on the audio expert's corpus.
    """
    from mer_utils.core.checkpoint_gate import CheckpointError, first_usable
    from mer_utils.core.checkpoint_index import entry_path, find_entries

    load = _loader(kind)
    if explicit is not None:
        path = Path(explicit)
        if not path.exists() and not path.with_suffix(".safetensors").exists():
            raise FileNotFoundError(f"{kind} checkpoint not found: {path}; {_HOW_TO_MAKE[kind]}")
        load(path)  # the file the user named: a broken one is an error, not skipped
        return path, {}
    entries = find_entries(checkpoints, modality=kind, corpus_key=corpus_key) if corpus_key else []
    entries = entries or find_entries(checkpoints, modality=kind)
    candidates = [(path, entry) for entry in entries if (path := entry_path(checkpoints, entry)).exists()
                  or path.with_suffix(".safetensors").exists()]
    if not candidates:
        raise FileNotFoundError(f"no {kind} checkpoint in the index {Path(checkpoints) / 'index.json'}; "
                                f"{_HOW_TO_MAKE[kind]} to make one")
    try:
        path, entry, _, refused = first_usable(candidates, load)
    except CheckpointError as err:
        raise CheckpointError(f"no usable {kind} checkpoint in {Path(checkpoints) / 'index.json'} ({err}); "
                              f"{_HOW_TO_MAKE[kind]} to make one") from None
    for refusal in refused:
        logger.warning("skipped a broken %s checkpoint: %s", kind, refusal)
    return path, entry


def _loader(kind: str):
    if kind == "audio":
        from mer_utils.experts.audio.checkpoint import load_audio_expert

        return load_audio_expert
    from mer_utils.experts.visual.checkpoint import load_visual_expert

    return load_visual_expert


def _audio_probs(inputs: DemoInputs, checkpoint: Path) -> tuple[np.ndarray | None, str]:
    from mer_utils.experts.audio.checkpoint import load_audio_expert

    if inputs.audio is not None:
        source, clip = str(inputs.audio), str(inputs.audio)
    else:
        from mer_utils.data.media_health import SAMPLE_RATE
        from mer_utils.data.video_audio import read_audio_track

        track = read_audio_track(inputs.video)
        if track is None or not np.abs(track).max() > 1e-3:
            return None, "none (the video has no audible audio track; pass a WAV to use the audio expert)", ()
        source, clip = f"audio track of {inputs.video.name}", (track, SAMPLE_RATE)
    expert = load_audio_expert(checkpoint)
    return expert.predict_proba([clip])[0], source, tuple(expert.labels)


def default_demo_clip(outputs: str | os.PathLike = "outputs") -> tuple[str, Path]:
    """A test clip of the embedded corpus's speaker-independent split (one no
    model trained on), and the corpus root."""
    from mer_utils.protocols.prepare import prepare_protocol

    prepared = prepare_protocol(None, "speaker", outputs=outputs, progress=False)
    test = prepared.split[prepared.split["subset"] == "test"]
    return str(test["clip_id"].iloc[0]), prepared.data_root


def predict_clip(
    *, video=None, audio=None, clip_id: str | None = None, data_root=None, checkpoints="checkpoints",
    audio_checkpoint=None, visual_checkpoint=None, outputs="outputs",
) -> DemoResult:
    """Run both experts from ``checkpoints/`` on one clip and fuse them.

    With no input at all, a held-out clip of the embedded synthetic corpus
    is used (see :func:`default_demo_clip`).
    """
    if video is None and audio is None and clip_id is None:
        clip_id, data_root = default_demo_clip(outputs)
    inputs = resolve_inputs(video=video, audio=audio, clip_id=clip_id, data_root=data_root, outputs=outputs)
    used, entries, labels = {}, {}, {}
    audio_probs, audio_source = None, "none"
    if inputs.audio is not None or inputs.video is not None:
        used["audio"], entries["audio"] = find_checkpoint("audio", checkpoints, audio_checkpoint)
        audio_probs, audio_source, labels["audio"] = _audio_probs(inputs, used["audio"])
    visual = None
    if inputs.video is not None:
        from mer_utils.experts.visual.checkpoint import load_visual_expert

        used["visual"], entries["visual"] = find_checkpoint(
            "visual", checkpoints, visual_checkpoint, corpus_key=entries.get("audio", {}).get("corpus_key"))
        expert = load_visual_expert(used["visual"])
        visual, labels["visual"] = expert.predict_video(inputs.video), tuple(expert.labels)
    visual_probs = None if visual is None else np.asarray(visual.probs)
    if audio_probs is not None and visual_probs is not None:
        if labels["audio"] != labels["visual"]:
            raise ValueError(f"the audio checkpoint {used['audio']} predicts {list(labels['audio'])} but the visual "
                             f"checkpoint {used['visual']} predicts {list(labels['visual'])}; use two checkpoints of "
                             "one corpus (see checkpoints/index.json)")
        rule = _fusion_rule(checkpoints, entries.get("audio", {}))
        fused, fusion = rule.fuse(audio_probs, visual_probs), rule.description
    else:
        fused = audio_probs if audio_probs is not None else visual_probs
        fusion = "single modality (only one expert had input)"
    if fused is None:
        raise RuntimeError(f"{inputs.name}: neither expert could run (no video and no audible audio)")
    label_set = labels.get("audio") or labels.get("visual")  # () when the video had no audible track
    from mer_utils.core.checkpoint_index import describe

    provenance = {k: describe(e) for k, e in entries.items() if e}
    return DemoResult(inputs, audio_probs, visual_probs, np.asarray(fused), label_set[int(np.argmax(fused))],
                      fusion, visual, audio_source, {k: str(v) for k, v in used.items()}, label_set, provenance)


def _fusion_rule(checkpoints, audio_entry: dict):
    """The rule tuned with the audio expert's corpus and protocol (from the index), else ``best_fusion.json``."""
    from mer_utils.core.checkpoint_index import entry_path, find_entries
    from mer_utils.fusion.deploy import load_fusion_rule

    if audio_entry:
        for entry in find_entries(checkpoints, modality="fusion", corpus_key=audio_entry["corpus_key"],
                                  protocol=audio_entry["protocol"]):
            if entry_path(checkpoints, entry).exists():
                return load_fusion_rule(entry_path(checkpoints, entry))
    return load_fusion_rule(Path(checkpoints) / FUSION_RULE_NAME)


def format_result(result: DemoResult) -> str:
    """A text table of the probabilities, one row per emotion."""
    lines = [f"clip: {result.inputs.name}" + (f" (intended emotion: {result.inputs.label})" if result.inputs.label else ""),
             f"audio from: {result.audio_source}", f"fusion: {result.fusion}"]
    lines += [f"{expert} expert trained on: {text}" for expert, text in result.provenance.items()]
    lines.append(f"{'emotion':<10}{'audio':>8}{'visual':>8}{'fused':>8}")
    for i, emotion in enumerate(result.labels):
        cells = ["   n/a" if p is None else f"{p[i]:6.3f}" for p in (result.audio_probs, result.visual_probs)]
        lines.append(f"{label_name(emotion):<10}{cells[0]:>8}{cells[1]:>8}{result.fused_probs[i]:8.3f}")
    lines.append(f"top emotion: {result.top_emotion} ({label_name(result.top_emotion)})")
    return "\n".join(lines)


def plot_result(result: DemoResult, path: str | os.PathLike) -> Path:
    """Probability bars (audio, visual, fused) above the sampled frames with face boxes."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from mer_utils.core.atomic_io import atomic_path

    frames = [] if result.visual is None else list(range(min(6, len(result.visual.frames))))
    fig = Figure(figsize=(10, 5.2 if frames else 3.6), dpi=100)
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
    truth = f", intended {result.inputs.label}" if result.inputs.label else ""
    ax.set_title(f"{result.inputs.name}: fused top emotion {result.top_emotion}{truth}", fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    for col, k in enumerate(frames):
        axf = fig.add_subplot(grid[1, col])
        axf.imshow(result.visual.frames[k])
        bx, by, bw, bh = result.visual.boxes[k]
        found = bool(result.visual.detected[k])
        axf.add_patch(Rectangle((bx, by), bw, bh, fill=False, lw=1.5, color="lime" if found else "orange"))
        axf.set_title(f"frame {int(result.visual.frame_indices[k])}" + ("" if found else " (fallback)"), fontsize=7)
        axf.axis("off")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)
