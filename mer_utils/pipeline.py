"""``mer run-all``: manifest -> splits -> audio and visual experts under each protocol -> fusion -> report -> a demo
prediction, on the embedded default or a real corpus; every stage resumes from its run folder."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from mer_utils.core.adaptation import ADAPTATIONS
from mer_utils.core.config import field as _f
from mer_utils.core.runs import safe_name


@dataclasses.dataclass
class PipelineConfig:
    """Parameters of ``mer run-all`` (also usable from a notebook)."""

    data_root: str | None = _f(None, "CREMA-D folder; None: the embedded synthetic corpus")
    outputs: str = _f("outputs", "folder for every run, table and figure")
    checkpoints: str = _f("checkpoints", "folder for the best checkpoints")
    metadata_dir: str | None = _f(None, "CREMA-D metadata (processedResults/) for the human-baseline rows")
    protocols: list[str] = _f(("random", "speaker"), "protocols to run (the point: compare them)")
    audio_backbone: str | None = _f(None, "audio backbone (None: the package default, an offline acoustic set)")
    audio_adapt: str = _f("none", "how the audio expert scores a test clip, the same under every protocol: none "
                                  "(alone), speaker or balanced (test-time adaptation; see `mer audio train --help`)",
                          choices=ADAPTATIONS)
    visual_backbone: str = _f("fer2013", "visual frame encoder")
    seed: int = _f(0, "seed of splits and training")
    progress: bool = _f(True, "show progress bars")


def run_all(config: PipelineConfig | None = None, **overrides) -> dict:
    """Run every stage; returns the paths of the report, tables and demo figure. A corpus without usable audio or
    video runs the stages of the modality it has; each skipped stage says so in one line."""
    from mer_utils.experts.audio.compare import compare_protocols, save_protocol_comparison
    from mer_utils.experts.audio.train import train_audio
    from mer_utils.demo.predict import format_result, plot_result, predict_clip
    from mer_utils.fusion.run import fuse_runs, latest_expert_runs
    from mer_utils.data.manifest import (default_manifest_path, load_problems, modality_gap, prepare_manifest,
                                         problems_path_of, summarize_manifest)
    from mer_utils.report.build import make_report
    from mer_utils.experts.visual.train import train_visual
    from mer_utils.protocols.prepare import resolve_data_root, split_dir
    from mer_utils.protocols.splits import load_split

    config = dataclasses.replace(config or PipelineConfig(), **overrides)
    outputs, start = Path(config.outputs), time.perf_counter()
    root = resolve_data_root(config.data_root, outputs, seed=config.seed, progress=config.progress)
    manifest = prepare_manifest(root, metadata_dir=config.metadata_dir, outputs=outputs, progress=config.progress)
    manifest_path = default_manifest_path(root, outputs)
    problems = load_problems(manifest_path)
    print(f"[1/6] data: {root}\n{summarize_manifest(manifest, problems, problems_path=problems_path_of(manifest_path))}")
    common = {"data_root": str(root), "outputs": str(outputs), "checkpoints": config.checkpoints,
              "seed": config.seed, "metadata_dir": config.metadata_dir, "progress": config.progress}
    # Every protocol is scored alike (config.audio_adapt), so their gap measures the split alone.
    audio_extra = {"adapt": config.audio_adapt, **({"backbone": config.audio_backbone} if config.audio_backbone else {})}
    gaps = {kind: modality_gap(manifest, kind) for kind in ("audio", "video")}
    if gaps["audio"] and gaps["video"]:
        raise RuntimeError(f"{root}: nothing to train on: {gaps['audio']}; {gaps['video']}")
    splits, corpus_key, comparison = {}, None, None
    if gaps["audio"]:
        print(f"[2/6] audio expert skipped: {gaps['audio']}")
    else:
        for protocol in config.protocols:
            result = train_audio(protocol=protocol, **common, **audio_extra)
            splits[protocol], corpus_key = result.metrics["split"], result.metrics["corpus_key"]
            print(f"[2/6] audio expert, {protocol}: test UA {result.metrics['summary']['test']['ua']['mean']:.3f} "
                  f"-> {result.run_dir}")
        comparison = save_protocol_comparison(
            compare_protocols(outputs, protocols=config.protocols, adapt=config.audio_adapt), outputs / "audio")[0]
        print(f"[2/6] random vs speaker-independent: {comparison}")
    if gaps["video"]:
        print(f"[3/6] visual expert and fusion skipped: {gaps['video']}")
    else:
        for protocol in config.protocols:
            result = train_visual(protocol=protocol, backbone=config.visual_backbone, **common)
            splits.setdefault(protocol, result.metrics["split"])
            print(f"[3/6] visual expert, {protocol}: test UA "
                  f"{result.metrics['summary']['test']['ua']['mean']:.3f} -> {result.run_dir}")
        if gaps["audio"]:
            print("[4/6] fusion skipped: it needs both experts")
        else:
            for protocol in config.protocols:
                runs = latest_expert_runs(outputs, protocol, corpus_key=corpus_key, adapt=config.audio_adapt)
                fusion_dir = fuse_runs(runs["audio"], runs["visual"], outputs=outputs,
                                       checkpoints=config.checkpoints, seed=config.seed)
                print(f"[4/6] fusion, {protocol}: {fusion_dir}")
    report = make_report(outputs, metadata=config.metadata_dir)
    print(f"[5/6] report: {report}")
    figure = None
    if gaps["audio"]:
        # The demo starts from the audio expert; one of another corpus must not answer for this one.
        print(f"[6/6] demo skipped: it needs this corpus's audio expert ({gaps['audio']})")
    else:
        demo_protocol = "speaker" if "speaker" in splits else next(iter(splits))
        split = load_split(split_dir(outputs, manifest) / f"{splits[demo_protocol]}.csv")
        clip_id = str(split.loc[split["subset"] == "test", "clip_id"].iloc[0])  # one the models never saw
        prediction = predict_clip(clip_id=clip_id, data_root=root, checkpoints=config.checkpoints)
        figure = plot_result(prediction, outputs / "demo" / f"{safe_name(clip_id)}_prediction.png")
        print(f"[6/6] demo on {clip_id}:\n{format_result(prediction)}")
    elapsed = time.perf_counter() - start
    done = [f"Tables and figures: {report.parent}/ (report.md)"]
    done += [f"protocol comparison: {comparison}"] if comparison else []
    done += [f"demo figure: {figure}"] if figure else []
    print(f"\ndone in {elapsed / 60:.1f} min. " + ", ".join(done))
    return {"report": report, "comparison": comparison, "demo_figure": figure, "seconds": elapsed,
            "skipped_stages": {kind: gap for kind, gap in gaps.items() if gap}}
