"""The main job: every stage end to end, on the embedded default or a real corpus.

manifest -> splits -> audio expert (random and speaker-independent) ->
visual expert -> fusion -> report -> demo prediction. Each stage writes its
own run folder, so a re-run resumes finished folds instead of redoing them.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path


@dataclasses.dataclass
class PipelineConfig:
    """Parameters of ``mer run-all`` (also usable from a notebook)."""

    data_root: str | None = dataclasses.field(
        default=None, metadata={"help": "CREMA-D folder; None: the embedded synthetic corpus"})
    outputs: str = dataclasses.field(default="outputs", metadata={"help": "folder for every run, table and figure"})
    checkpoints: str = dataclasses.field(default="checkpoints", metadata={"help": "folder for the best checkpoints"})
    metadata_dir: str | None = dataclasses.field(
        default=None, metadata={"help": "CREMA-D metadata (processedResults/) for the human-baseline rows"})
    protocols: tuple = dataclasses.field(default=("random", "speaker"),
                                         metadata={"help": "protocols to run (the point: compare them)"})
    audio_backbone: str | None = dataclasses.field(
        default=None, metadata={"help": "audio backbone (None: the package default, an offline acoustic set)"})
    visual_backbone: str = dataclasses.field(default="fer2013", metadata={"help": "visual frame encoder"})
    seed: int = dataclasses.field(default=0, metadata={"help": "seed of splits and training"})
    progress: bool = dataclasses.field(default=True, metadata={"help": "show progress bars"})


def _has_video(manifest) -> bool:
    return bool((manifest["video_status"] == "ok").any())


def _demo_clip(outputs: Path, split_name: str, manifest) -> str:
    """A test clip of the split: one the models never saw."""
    from mer_utils.protocols.prepare import split_dir
    from mer_utils.protocols.splits import load_split

    split = load_split(split_dir(outputs, manifest) / f"{split_name}.csv")
    return str(split.loc[split["subset"] == "test", "clip_id"].iloc[0])


def run_all(config: PipelineConfig | None = None, **overrides) -> dict:
    """Run every stage; returns the paths of the report, tables and demo figure."""
    from mer_utils.experts.audio.compare import compare_protocols, save_protocol_comparison
    from mer_utils.experts.audio.train import train_audio
    from mer_utils.demo.predict import format_result, plot_result, predict_clip
    from mer_utils.fusion.run import fuse_runs
    from mer_utils.data.manifest import prepare_manifest
    from mer_utils.data.manifest_summary import summarize_manifest
    from mer_utils.report.build import make_report
    from mer_utils.experts.visual.train import train_visual
    from mer_utils.protocols.prepare import resolve_data_root

    config = dataclasses.replace(config or PipelineConfig(), **overrides)
    outputs, start = Path(config.outputs), time.perf_counter()
    root = resolve_data_root(config.data_root, outputs, seed=config.seed, progress=config.progress)
    manifest = prepare_manifest(root, metadata_dir=config.metadata_dir, outputs=outputs, progress=config.progress)
    print(f"[1/6] data: {root}\n{summarize_manifest(manifest)}")
    common = {"data_root": str(root), "outputs": str(outputs), "checkpoints": config.checkpoints,
              "seed": config.seed, "metadata_dir": config.metadata_dir, "progress": config.progress}
    audio_extra = {"backbone": config.audio_backbone} if config.audio_backbone else {}
    splits, corpus_key = {}, None
    for protocol in config.protocols:
        result = train_audio(protocol=protocol, **common, **audio_extra)
        splits[protocol], corpus_key = result.metrics["split"], result.metrics["corpus_key"]
        print(f"[2/6] audio expert, {protocol}: test UA {result.metrics['summary']['test']['ua']['mean']:.3f} "
              f"-> {result.run_dir}")
    comparison = save_protocol_comparison(compare_protocols(outputs, protocols=config.protocols),
                                          outputs / "audio")
    print(f"[2/6] random vs speaker-independent: {comparison[0]}")
    if _has_video(manifest):
        for protocol in config.protocols:
            result = train_visual(protocol=protocol, backbone=config.visual_backbone, **common)
            print(f"[3/6] visual expert, {protocol}: test UA "
                  f"{result.metrics['summary']['test']['ua']['mean']:.3f} -> {result.run_dir}")
        from mer_utils.fusion.run import latest_expert_runs

        for protocol in config.protocols:
            runs = latest_expert_runs(outputs, protocol, corpus_key=corpus_key)
            fusion_dir = fuse_runs(runs["audio"], runs["visual"], outputs=outputs, checkpoints=config.checkpoints,
                                   seed=config.seed)
            print(f"[4/6] fusion, {protocol}: {fusion_dir}")
    else:
        print("[3/6] no usable video in this corpus: visual expert and fusion skipped")
    report = make_report(outputs, metadata=config.metadata_dir)
    print(f"[5/6] report: {report}")
    demo_protocol = "speaker" if "speaker" in splits else next(iter(splits))
    clip_id = _demo_clip(outputs, splits[demo_protocol], manifest)
    prediction = predict_clip(clip_id=clip_id, data_root=root, checkpoints=config.checkpoints)
    figure = plot_result(prediction, outputs / "demo" / f"{clip_id}_prediction.png")
    print(f"[6/6] demo on {clip_id}:\n{format_result(prediction)}")
    elapsed = time.perf_counter() - start
    print(f"\ndone in {elapsed / 60:.1f} min. Tables and figures: {report.parent}/ (report.md), "
          f"protocol comparison: {comparison[0]}, demo figure: {figure}")
    return {"report": report, "comparison": comparison[0], "demo_figure": figure, "seconds": elapsed}
